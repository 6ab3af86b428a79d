//! `umd-rpm-handler`: the RPM handler program (framed wire format).
//!
//! Request: a `umd_rpm_wire::Command` byte, then a package file's first bytes or
//! one rpmdb header blob. Reply: the encoded `umd_rpm_wire::Description`, or an
//! error frame. The parsing is in the library (`umd_rpm_handler`), so that it can
//! be tested and fuzzed in-process.

fn main() -> std::process::ExitCode {
    umd_handler::serve_framed(umd_rpm_handler::handle)
}
