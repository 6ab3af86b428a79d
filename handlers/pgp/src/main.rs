//! `umd-pgp-handler`: the OpenPGP handler program (framed wire format).
//!
//! Request: `umd_pgp_wire::Command::Describe`, then a binary packet stream. Reply:
//! the encoded `umd_pgp_wire::Description`, or an error frame. All the parsing is in
//! the library (`umd_pgp_handler`), so that it can be tested in-process.

fn main() -> std::process::ExitCode {
    umd_handler::serve_framed(umd_pgp_handler::handle)
}
