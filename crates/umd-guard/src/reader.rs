//! The reader thread: every event of the group, in the kernel's order.
//!
//! For each event it
//! 1. drops every cached verdict on a queue overflow (a write-close may be lost);
//! 2. on a write-close (a notification, kernel cache only), drops the file's
//!    cached verdict — in queue order, before any later exec of the file is seen;
//! 3. allows at once the opens of this process and of excluded pids (a list
//!    reload, a service's handlers: they must never wait for the guard);
//! 4. allows at once a user-table hit, found with one `fstat` (only on local
//!    filesystems, where `fstat` cannot block);
//! 5. otherwise enters the event in the pending table and queues it for the
//!    deciders; when their queue is full it answers with the overload verdict.
//!
//! It never blocks on anything but `poll` and the read: a reader that waited
//! would hold every exec on the marked mounts. If reading fails for good it
//! removes the marks (fail-open, as a dead guard does) and the guard reports
//! [`failed`](crate::Guard::failed).
//!
//! Trust: the events are caused by any process that can open a file on the
//! marked mounts — at any rate, with any name. The kernel's records are decoded
//! with bounds checks in [`crate::fanotify`]; a record that does not parse ends
//! its batch (the fds it carried are closed, so the kernel allows those opens).

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Instant;

use crate::config::Verdict;
use crate::decider::Job;
use crate::decision::{fd_path, Reason};
use crate::fanotify;
use crate::guard::Shared;
use crate::hash::FileStamp;
use crate::pending::Pending;
use crate::stats::bump;
use crate::LOG;

/// Reads events until the guard stops (a byte on `wake`) or reading fails.
pub(crate) fn reader(s: &Shared, tx: SyncSender<Job>, wake: OwnedFd) {
    use rustix::event::{poll, PollFd, PollFlags};
    let mut buf = vec![0u8; 64 * 1024];
    let mut events = Vec::new();
    while !s.stop.load(Ordering::SeqCst) {
        let mut fds = [PollFd::new(&s.group, PollFlags::IN), PollFd::new(&wake, PollFlags::IN)];
        match poll(&mut fds, None) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return reader_failed(s, &format!("poll: {e}")),
        }
        if !fds[1].revents().is_empty() {
            break;
        }
        if fds[0].revents().is_empty() {
            continue;
        }
        match s.group.read_events(&mut buf, &mut events) {
            Ok(()) => {}
            // A record we cannot parse: the batch's valid events are handled,
            // the rest of it is lost (their fds closed, the kernel allows them).
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                tracing::error!(target: LOG, "umd guard: {e}")
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return reader_failed(s, &format!("reading events: {e}")),
        }
        for ev in events.drain(..) {
            on_event(s, &tx, ev);
        }
    }
}

/// Nobody reads events any more: unanswered, they would hang every exec on
/// the marked mounts. Remove the marks (fail-open, as a dead guard does).
fn reader_failed(s: &Shared, why: &str) {
    tracing::error!(target: LOG, "umd guard: {why}: no longer guarding (marks removed)");
    s.failed.store(true, Ordering::SeqCst);
    if let Err(e) = s.group.flush_all_marks() {
        tracing::error!(target: LOG, "umd guard: removing the marks: {e}");
    }
}

fn on_event(s: &Shared, tx: &SyncSender<Job>, ev: fanotify::Event) {
    if ev.mask & fanotify::Q_OVERFLOW != 0 {
        tracing::error!(target: LOG, "umd guard: event queue overflow: dropping every cached verdict");
        s.cache.invalidate_all(&s.group);
        return;
    }
    let Some(fd) = ev.fd else { return };
    if ev.mask & s.perm_mask == 0 {
        // A write-close: in queue order, before any later exec of the file is seen.
        if ev.mask & fanotify::CLOSE_WRITE != 0 {
            s.cache.invalidate(&s.group, &s.counters, fd.as_fd());
        }
        return;
    }
    bump(&s.counters.events);
    let fdnum = fd.as_raw_fd();
    let excluded = ev.pid == s.self_pid || s.excluded.read().map(|v| v.contains(&ev.pid)).unwrap_or(false);
    if excluded {
        // Our own opens (a list reload, a log file) must never wait for us.
        bump(&s.counters.excluded);
        allow_now(s, fdnum);
        return;
    }
    if s.cache.reader_may_look_up() {
        let since = Instant::now();
        let seq = s.lists.current().list.sequence();
        let hit =
            FileStamp::of(fd.as_fd()).ok().filter(|st| st.regular).is_some_and(|st| s.cache.hit(&st, seq));
        if hit {
            bump(&s.counters.cache_hits);
            allow_now(s, fdnum);
            if let Some(sink) = &s.sink {
                let mut d = s.decision(Verdict::Allow, Reason::Cached, ev.mask, fd_path(fdnum), ev.pid);
                d.micros = since.elapsed().as_micros() as u64;
                sink(&d);
            }
            return;
        }
    }
    let fd = Arc::new(fd);
    let since = Instant::now();
    s.pending.insert(fdnum, Pending { fd: fd.clone(), since, pid: ev.pid, mask: ev.mask });
    match tx.try_send(Job { fdnum, fd, pid: ev.pid, mask: ev.mask, since }) {
        Ok(()) => {}
        Err(TrySendError::Full(j)) | Err(TrySendError::Disconnected(j)) => {
            if s.answer(j.fdnum, s.timeout_verdict) {
                bump(&s.counters.overloads);
                let d =
                    s.decision(s.timeout_verdict, Reason::Overload, j.mask, fd_path(j.fd.as_raw_fd()), j.pid);
                s.log(&d);
            }
        }
    }
}

/// Allows an event that is in no table (so nobody else answers it).
fn allow_now(s: &Shared, fdnum: RawFd) {
    bump(&s.counters.allowed);
    if let Err(e) = s.group.respond(fdnum, true) {
        tracing::error!(target: LOG, "umd guard: answering the kernel: {e}");
    }
}
