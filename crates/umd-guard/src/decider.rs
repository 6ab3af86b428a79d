//! The decider threads: hash the file, look it up, answer, cache.
//!
//! A decider takes a queued event, `fstat`s the file through the event's fd,
//! answers from the user table if this very version of the file was allowed
//! under the list in use, and otherwise hashes it ([`crate::hash`]), looks
//! every digest up in the list and keeps the packages marked *verified*. A file
//! whose `fstat` moved while it was read is judged changed: what was hashed is
//! not what will run. Listed → allow; not listed → deny in enforce, allow and
//! log in audit. The verdict is answered through the pending table (unless the
//! watchdog answered first) and, if allowed, cached.
//!
//! Trust: this is where the guard meets hostile bytes — the contents of any
//! file a user can put on a marked mount and execute. They are only hashed,
//! never parsed, never more than [`GuardConfig::max_file_size`](crate::GuardConfig::max_file_size)
//! bytes, read through the kernel's fd of the very file being opened (no path
//! lookup to race). A file that blocks the read (a hung FUSE file) stalls one
//! decider; the watchdog answers its event.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use umd_digest_list::Mark;

use crate::config::{Mode, Verdict};
use crate::decision::{fd_path, Decision, Reason};
use crate::guard::Shared;
use crate::hash::{self, FileStamp, HashError};
use crate::list::Loaded;
use crate::stats::bump;
use crate::LOG;

/// An event queued by the reader for a decider (it is in the pending table too).
pub(crate) struct Job {
    /// The event fd's number: what the answer names.
    pub(crate) fdnum: RawFd,
    /// The file being opened.
    pub(crate) fd: Arc<OwnedFd>,
    /// The process opening it.
    pub(crate) pid: i32,
    /// The event's bits.
    pub(crate) mask: u64,
    /// When the reader read it.
    pub(crate) since: Instant,
}

/// A decider thread: decides queued events until the queue closes.
pub(crate) fn decider(s: &Shared, rx: &Mutex<Receiver<Job>>) {
    let mut buf = vec![0u8; hash::CHUNK];
    loop {
        let job = match rx.lock() {
            Ok(r) => r.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        decide(s, job, &mut buf);
    }
}

fn decide(s: &Shared, job: Job, buf: &mut [u8]) {
    // Read before the list: a verdict is cached only if nothing was
    // invalidated (a new list included) while it was made.
    let epoch0 = s.cache.epoch();
    let loaded = s.lists.current();
    let path = fd_path(job.fdnum);
    let mut d = Decision::new(
        Verdict::Allow,
        s.mode,
        Reason::Listed,
        job.mask,
        path,
        job.pid,
        loaded.list.sequence(),
    );
    #[cfg(feature = "test-hooks")]
    crate::test_hooks::hang_if_named(s, &d.path);
    let fd = job.fd.as_fd();
    let (listed, reason) = match FileStamp::of(fd) {
        Err(_) => (false, Reason::Unreadable),
        Ok(st) if !st.regular => (true, Reason::NotRegular),
        Ok(st) if s.cache.hit(&st, loaded.list.sequence()) => {
            bump(&s.counters.cache_hits);
            (true, Reason::Cached)
        }
        Ok(st) => {
            let r = check(&loaded, fd, st, s.max_file_size, buf, &mut d);
            if r.0 {
                s.cache.remember(&s.group, &s.counters, fd, st, epoch0, loaded.list.sequence());
            }
            r
        }
    };
    d.reason = reason;
    d.verdict = match (listed, s.mode) {
        (true, _) | (false, Mode::Audit) => Verdict::Allow,
        (false, Mode::Enforce) => Verdict::Deny,
    };
    d.would_deny = !listed;
    d.micros = job.since.elapsed().as_micros() as u64;
    if s.answer(job.fdnum, d.verdict) {
        if !listed && s.mode == Mode::Audit {
            bump(&s.counters.audited);
        }
        if reason == Reason::Cached {
            tracing::debug!(target: LOG, path = %d.path, "umd guard: cached allow");
            if let Some(sink) = &s.sink {
                sink(&d);
            }
        } else {
            s.log(&d);
        }
    } else {
        bump(&s.counters.late);
        tracing::warn!(
            target: LOG, path = %d.path, verdict = ?d.verdict,
            "umd guard: decision after the watchdog answered; discarded"
        );
    }
}

/// Hashes and looks up; fills the decision's digest and packages. Returns
/// whether the file is listed, and why.
fn check(
    loaded: &Loaded,
    fd: BorrowedFd<'_>,
    st: FileStamp,
    max_file_size: u64,
    buf: &mut [u8],
    d: &mut Decision,
) -> (bool, Reason) {
    let digests = match hash::hash_fd(fd, st.size, max_file_size, &loaded.algos, buf) {
        Ok(v) => v,
        Err(HashError::TooLarge { .. }) => return (false, Reason::TooLarge),
        Err(HashError::Changed) => return (false, Reason::Changed),
        Err(HashError::Io(_)) => return (false, Reason::Unreadable),
    };
    if let Some(dg) = digests.first() {
        d.digest = Some(format!("{}:{dg}", dg.algo().name().to_ascii_lowercase()));
    }
    for dg in &digests {
        for p in loaded.list.lookup(dg) {
            if p.mark == Mark::Verified && !d.packages.iter().any(|n| n == p.name) {
                d.packages.push(p.name.to_owned());
            }
        }
    }
    // Written while we read it? Then what we hashed is not what will run.
    if FileStamp::of(fd).ok() != Some(st) {
        return (false, Reason::Changed);
    }
    if d.packages.is_empty() {
        (false, Reason::NotListed)
    } else {
        (true, Reason::Listed)
    }
}
