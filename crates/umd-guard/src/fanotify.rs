//! A thin, safe wrapper over the fanotify calls the guard uses.
//!
//! rustix has no fanotify, and nix's reader owns each event's fd inside its event
//! value, while the guard must hand that fd to a decider *and* keep it reachable by
//! the watchdog until exactly one of them answers. So this module wraps the three
//! calls directly: `fanotify_init(2)`, `fanotify_mark(2)`, and `read(2)`/`write(2)`
//! on the group fd, with every event fd returned as an [`OwnedFd`].
//!
//! Trust: the records come from the kernel, but they are still decoded as
//! bytes: a record with an unknown metadata version or a length that does not
//! fit the buffer ends the batch with an error, and every event fd is owned
//! (so closed) before anything else about its record is checked. The events
//! themselves are caused by any process on the marked mounts: what they mean
//! is decided elsewhere ([`crate::Guard`]).
//!
//! # References
//! fanotify(7), fanotify_init(2), fanotify_mark(2).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Exec permission event (the file is opened for `execve`/`execveat`, or a
/// script opened by the kernel's `#!` loader).
pub const OPEN_EXEC_PERM: u64 = libc::FAN_OPEN_EXEC_PERM;
/// Open permission event (any open).
pub const OPEN_PERM: u64 = libc::FAN_OPEN_PERM;
/// A file open for writing was closed (notification, not permission).
pub const CLOSE_WRITE: u64 = libc::FAN_CLOSE_WRITE;
/// The event queue overflowed and events were lost.
pub const Q_OVERFLOW: u64 = libc::FAN_Q_OVERFLOW;

/// Which object a mark is placed on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarkScope {
    /// One mount (`FAN_MARK_MOUNT`): only accesses through that mount.
    Mount,
    /// The whole filesystem the path is on (`FAN_MARK_FILESYSTEM`), every mount of it.
    Filesystem,
}

/// A fanotify group of class `FAN_CLASS_CONTENT` (permission events allowed).
pub struct Group {
    fd: OwnedFd,
}

/// One event read from the group.
pub struct Event {
    /// Event bits (`FAN_*`).
    pub mask: u64,
    /// The file, opened read-only by the kernel for us (`None` for queue overflow).
    pub fd: Option<OwnedFd>,
    /// The process that caused the event (its thread-group id).
    pub pid: i32,
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

impl Group {
    /// `fanotify_init(FAN_CLASS_CONTENT | FAN_CLOEXEC | FAN_UNLIMITED_QUEUE |
    /// FAN_UNLIMITED_MARKS, O_RDONLY | O_LARGEFILE | O_CLOEXEC)`. Needs
    /// `CAP_SYS_ADMIN`.
    ///
    /// The queue is unlimited so that no write-close notification is lost (a lost
    /// one would leave a cached verdict in place); permission events are never
    /// dropped by the kernel anyway. Marks are unlimited because every allowed
    /// file gets an (evictable) ignore mark.
    pub fn new() -> io::Result<Group> {
        let flags = libc::FAN_CLASS_CONTENT
            | libc::FAN_CLOEXEC
            | libc::FAN_UNLIMITED_QUEUE
            | libc::FAN_UNLIMITED_MARKS;
        let event_flags = (libc::O_RDONLY | libc::O_LARGEFILE | libc::O_CLOEXEC) as libc::c_uint;
        // SAFETY: plain system call with integer arguments.
        let fd = cvt(unsafe { libc::fanotify_init(flags, event_flags) })?;
        // SAFETY: the call returned a new fd that nothing else owns.
        Ok(Group { fd: unsafe { OwnedFd::from_raw_fd(fd) } })
    }

    fn mark_raw(&self, flags: libc::c_uint, mask: u64, dirfd: RawFd, path: Option<&Path>) -> io::Result<()> {
        let cpath = match path {
            Some(p) => Some(
                CString::new(p.as_os_str().as_bytes())
                    .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?,
            ),
            None => None,
        };
        let ptr = cpath.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
        // SAFETY: the group fd is ours and open; `ptr` is NULL or a NUL-terminated
        // string that outlives the call.
        cvt(unsafe { libc::fanotify_mark(self.fd.as_raw_fd(), flags, mask, dirfd, ptr) })?;
        Ok(())
    }

    /// Adds `mask` to a mount or filesystem mark on `path`.
    pub fn mark(&self, scope: MarkScope, path: &Path, mask: u64) -> io::Result<()> {
        let kind = match scope {
            MarkScope::Mount => libc::FAN_MARK_MOUNT,
            MarkScope::Filesystem => libc::FAN_MARK_FILESYSTEM,
        };
        self.mark_raw(libc::FAN_MARK_ADD | kind, mask, libc::AT_FDCWD, Some(path))
    }

    /// Adds `mask` to the ignore mask of the inode behind `file` (an event fd):
    /// the kernel answers those events on this inode itself, with no round trip.
    ///
    /// No `FAN_MARK_IGNORED_SURV_MODIFY`: the kernel clears the ignore mask on the
    /// inode's next modification (`write`, `truncate`, `fallocate`, ...).
    /// `FAN_MARK_EVICTABLE`: the mark does not pin the inode in memory; if the
    /// kernel evicts the inode, the mark (and the cached verdict) goes with it.
    pub fn ignore(&self, file: BorrowedFd<'_>, mask: u64) -> io::Result<()> {
        let flags = libc::FAN_MARK_ADD | libc::FAN_MARK_IGNORED_MASK | libc::FAN_MARK_EVICTABLE;
        self.mark_raw(flags, mask, file.as_raw_fd(), None)
    }

    /// Removes `mask` from the ignore mask of the inode behind `file`. A missing
    /// mark (`ENOENT`) is not an error: there was nothing cached.
    pub fn unignore(&self, file: BorrowedFd<'_>, mask: u64) -> io::Result<()> {
        match self.mark_raw(libc::FAN_MARK_REMOVE | libc::FAN_MARK_IGNORED_MASK, mask, file.as_raw_fd(), None)
        {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
            r => r,
        }
    }

    /// Removes every mark of the group — mount, filesystem and inode marks: no
    /// new event is generated after this returns (events already queued or
    /// pending still need their answer).
    pub fn flush_all_marks(&self) -> io::Result<()> {
        self.mark_raw(libc::FAN_MARK_FLUSH | libc::FAN_MARK_MOUNT, 0, libc::AT_FDCWD, None)?;
        self.mark_raw(libc::FAN_MARK_FLUSH | libc::FAN_MARK_FILESYSTEM, 0, libc::AT_FDCWD, None)?;
        self.flush_inode_marks()
    }

    /// Removes every inode mark of the group (all cached verdicts); mount and
    /// filesystem marks stay.
    pub fn flush_inode_marks(&self) -> io::Result<()> {
        self.mark_raw(libc::FAN_MARK_FLUSH, 0, libc::AT_FDCWD, None)
    }

    /// Reads the events available (blocking if there are none) into `out`.
    ///
    /// Each event's fd is returned owned: dropping it closes it. Records with an
    /// unknown metadata version or impossible lengths end the batch with an error
    /// (after closing any fd they carried, so none leaks).
    pub fn read_events(&self, buf: &mut [u8], out: &mut Vec<Event>) -> io::Result<()> {
        let n = loop {
            // SAFETY: reading into a buffer we own, of the length given.
            let r = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if r >= 0 {
                break r as usize;
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        };
        let meta_len = std::mem::size_of::<libc::fanotify_event_metadata>();
        let mut at = 0usize;
        while n - at >= meta_len {
            // SAFETY: at least `meta_len` initialized bytes remain at `at`; the read
            // is unaligned-safe.
            let m: libc::fanotify_event_metadata =
                unsafe { std::ptr::read_unaligned(buf[at..].as_ptr().cast()) };
            // Own the fd first, so that it is closed whatever happens next.
            let fd = if m.fd >= 0 {
                // SAFETY: the kernel installed this fd in our table for us alone.
                Some(unsafe { OwnedFd::from_raw_fd(m.fd) })
            } else {
                None
            };
            let len = m.event_len as usize;
            if m.vers != libc::FANOTIFY_METADATA_VERSION || len < meta_len || len > n - at {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("fanotify event with version {} and length {len}", m.vers),
                ));
            }
            out.push(Event { mask: m.mask, fd, pid: m.pid });
            at += len;
        }
        Ok(())
    }

    /// Answers a permission event: allow or deny the open (a denied open fails
    /// with `EPERM`).
    pub fn respond(&self, event_fd: RawFd, allow: bool) -> io::Result<()> {
        let r = libc::fanotify_response {
            fd: event_fd,
            response: if allow { libc::FAN_ALLOW } else { libc::FAN_DENY },
        };
        let len = std::mem::size_of::<libc::fanotify_response>();
        // SAFETY: writing a plain struct of the length given from our stack.
        let w =
            unsafe { libc::write(self.fd.as_raw_fd(), (&r as *const libc::fanotify_response).cast(), len) };
        if w < 0 {
            return Err(io::Error::last_os_error());
        }
        if w as usize != len {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "short fanotify response write"));
        }
        Ok(())
    }
}

impl AsFd for Group {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
