//! Handler-side runtime for umd: the small loop a handler program runs.
//!
//! A handler reads requests on fd 0 and writes replies on fd 1, nothing else. This
//! crate is linked into every handler built with umd, so it is kept small and
//! depends only on [`umd_wire`], `umd-seccomp` and the system call wrappers
//! (`rustix`, `libc`): it is the code that meets hostile input.
//!
//! * [`serve_raw`] — fixed-size request, fixed-size reply, no header (the kernel's
//!   sample wire format).
//! * [`serve_framed`] — length-prefixed frames; requests may arrive as sealed memfds
//!   and large replies leave as sealed memfds when the channel is a socket.
//!
//! Both first run the start-up handshake when the manager started the handler
//! (see `umd_wire::handshake`): the handler confines itself with the seccomp
//! allow-list before it reads its first request.
//!
//! ```no_run
//! // An echo handler in framed mode.
//! fn main() -> std::process::ExitCode {
//!     umd_handler::serve_framed(|req, out| {
//!         out.extend_from_slice(req);
//!         Ok(())
//!     })
//! }
//! ```
#![deny(missing_docs)]

mod confine;

use std::os::fd::BorrowedFd;
use std::process::ExitCode;

use umd_wire::chan::{self, ChanError, Endpoint, Payload, Received};
use umd_wire::memfd::SealedMemfd;
use umd_wire::{Kind, Limits, RawSizes};

pub use umd_wire as wire;

/// Replies larger than this leave as a sealed memfd when the channel can carry fds
/// (and must: it is the manager's default inline limit). Measured on this project's
/// reference VM, copying through the socket is faster than filling a fresh memfd at
/// every size up to 16 MiB (fresh shared-memory pages fault and clear one by one),
/// so memfds are used only where inline cannot go.
pub const MEMFD_REPLY_THRESHOLD: usize = umd_wire::DEFAULT_MAX_INLINE as usize;

/// This handler's channel: fd 0 to read, fd 1 to write, and whether they are a
/// socket (memfds can travel) rather than pipes.
pub fn endpoint() -> Endpoint<'static> {
    let rx = rustix::stdio::stdin();
    let tx = rustix::stdio::stdout();
    let socket = rustix::fs::fstat(rx)
        .map(|st| rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Socket)
        .unwrap_or(false);
    Endpoint { rx, tx, socket }
}

fn report(what: &str, e: &ChanError) -> ExitCode {
    // stderr goes to the manager's log.
    eprintln!("handler: {what}: {e}");
    ExitCode::from(2)
}

/// Serves raw requests until the manager closes the channel: reads exactly
/// `sizes.request` bytes, calls `f(request, reply)` with the reply buffer of
/// `sizes.reply` bytes, writes the whole reply. Returns success on a clean end of
/// input between requests.
///
/// The reply buffer starts zeroed and is *reused*: `f` sees what it left there last
/// time, so a handler that changes a few bytes can undo just those instead of
/// clearing the whole buffer on every request.
pub fn serve_raw(sizes: RawSizes, mut f: impl FnMut(&[u8], &mut [u8])) -> ExitCode {
    let ep = endpoint();
    if let Err(e) = confine::startup(ep) {
        eprintln!("handler: start-up: {e}");
        return ExitCode::from(2);
    }
    let mut req = vec![0u8; sizes.request];
    let mut reply = vec![0u8; sizes.reply];
    let mut fds = Vec::new();
    loop {
        match chan::read_exact(ep, &mut req, &mut fds, None) {
            Ok(()) => {}
            Err(ChanError::Eof { got: 0, .. }) => return ExitCode::SUCCESS,
            Err(e) => return report("reading request", &e),
        }
        fds.clear();
        f(&req, &mut reply);
        if let Err(e) = chan::write_all(ep, &[&reply], None, None) {
            return report("writing reply", &e);
        }
    }
}

/// Serves framed requests until the manager closes the channel. For each request
/// `f(request, out)` fills `out` (cleared before each call) and returns `Ok` to
/// reply with it, or `Err(message)` to send an error frame instead.
pub fn serve_framed(mut f: impl FnMut(&[u8], &mut Vec<u8>) -> Result<(), String>) -> ExitCode {
    let ep = endpoint();
    if let Err(e) = confine::startup(ep) {
        eprintln!("handler: start-up: {e}");
        return ExitCode::from(2);
    }
    let limits = Limits::default();
    let mut buf = Vec::new();
    let mut out = Vec::new();
    loop {
        let result = match chan::recv_frame(ep, &limits, &mut buf, None) {
            Ok(Received::Inline { kind: Kind::Request, len }) => {
                out.clear();
                f(&buf[..len], &mut out)
            }
            Ok(Received::Memfd { kind: Kind::MemfdRequest, memfd }) => match memfd.map() {
                Ok(map) => {
                    out.clear();
                    f(&map, &mut out)
                }
                Err(e) => Err(format!("mapping request memfd: {e}")),
            },
            Ok(Received::Inline { kind, .. } | Received::Memfd { kind, .. }) => {
                return report("reading request", &ChanError::UnexpectedKind(kind))
            }
            Err(ChanError::Eof { got: 0, .. }) => return ExitCode::SUCCESS,
            Err(e) => return report("reading request", &e),
        };
        let sent = match &result {
            Ok(()) if ep.socket && out.len() > MEMFD_REPLY_THRESHOLD => {
                match SealedMemfd::from_bytes(c"umd-reply", &out, umd_wire::memfd::Exec::Data) {
                    Ok(m) => chan::send_frame(ep, Kind::MemfdReply, Payload::Memfd(&m), &limits, None),
                    Err(e) => {
                        let msg = format!("creating reply memfd: {e}");
                        chan::send_frame(ep, Kind::Error, Payload::Inline(msg.as_bytes()), &limits, None)
                    }
                }
            }
            Ok(()) => chan::send_frame(ep, Kind::Reply, Payload::Inline(&out), &limits, None),
            Err(msg) => chan::send_frame(ep, Kind::Error, Payload::Inline(msg.as_bytes()), &limits, None),
        };
        if let Err(e) = sent {
            return report("writing reply", &e);
        }
    }
}

/// The handler's standard error, for diagnostics that end up in the manager's log.
pub fn stderr() -> BorrowedFd<'static> {
    rustix::stdio::stderr()
}
