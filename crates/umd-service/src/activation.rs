//! systemd socket activation (`sd_listen_fds(3)`): the listening socket arrives
//! as fd 3, announced by `LISTEN_PID` and `LISTEN_FDS`.
//!
//! # References
//! - [`sd_listen_fds(3)`](https://www.freedesktop.org/software/systemd/man/sd_listen_fds.html)

use std::os::fd::{FromRawFd, OwnedFd};

/// The first passed fd.
const SD_LISTEN_FDS_START: i32 = 3;

/// Takes the socket systemd passed, if any: `Ok(None)` when the environment
/// announces none for this process. More than one socket, or one that is not a
/// listening Unix stream socket, is an error. The variables are removed, so
/// handlers and other children never see them.
///
/// Call it before any thread starts (it edits the environment).
pub fn take_listener() -> Result<Option<OwnedFd>, String> {
    let pid = std::env::var("LISTEN_PID").ok();
    let fds = std::env::var("LISTEN_FDS").ok();
    for v in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(v);
    }
    let (Some(pid), Some(fds)) = (pid, fds) else { return Ok(None) };
    if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
        // Meant for another process (an ancestor passed its environment on).
        return Ok(None);
    }
    let n: i32 = fds.trim().parse().map_err(|_| format!("LISTEN_FDS={fds:?} is not a number"))?;
    if n != 1 {
        return Err(format!("{n} sockets passed; umd serve takes exactly one (ListenStream= once)"));
    }
    // SAFETY: by the sd_listen_fds protocol fd 3 was passed to this process (its
    // pid matched) and nothing else in it owns the fd.
    let fd = unsafe { OwnedFd::from_raw_fd(SD_LISTEN_FDS_START) };
    let stat = rustix::fs::fstat(&fd).map_err(|e| format!("fd 3: {e}"))?;
    if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::Socket {
        return Err("fd 3 is not a socket".into());
    }
    let listening = rustix::net::sockopt::socket_acceptconn(&fd).map_err(|e| format!("fd 3: {e}"))?;
    let ty = rustix::net::sockopt::socket_type(&fd).map_err(|e| format!("fd 3: {e}"))?;
    if !listening || ty != rustix::net::SocketType::STREAM {
        return Err("fd 3 is not a listening stream socket (the unit needs ListenStream=)".into());
    }
    let addr = rustix::net::getsockname(&fd).map_err(|e| format!("fd 3: {e}"))?;
    if addr.address_family() != rustix::net::AddressFamily::UNIX {
        return Err("fd 3 is not a Unix socket (ListenStream= must be a path)".into());
    }
    rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC).map_err(|e| format!("fd 3: {e}"))?;
    Ok(Some(fd))
}
