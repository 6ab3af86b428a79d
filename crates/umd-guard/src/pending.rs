//! Events waiting for their answer, answered exactly once, in time.
//!
//! The kernel holds the opener until the guard writes an answer naming the
//! event's fd, so every event queued for a decider is entered in a table. Whoever
//! takes it out — a decider with its verdict, the watchdog at the deadline, the
//! reader when the queue is full, [`Guard::stop`](crate::Guard::stop) at the
//! end — answers it; a decider that comes later finds it gone and drops its
//! verdict (counted as `late`). The event's fd stays open until it is answered,
//! so its number cannot be reused for another event meanwhile.
//!
//! The watchdog thread wakes every quarter of the deadline (1 to 100 ms) and
//! answers what waited longer with [`GuardConfig::timeout_verdict`](crate::GuardConfig::timeout_verdict):
//! a hung decider (a stuck read, a bug) stalls an `exec` for at most the deadline.
//!
//! Trust: only the guard's own bookkeeping; the fds are the kernel's.

use std::collections::HashMap;
use std::os::fd::{OwnedFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::config::Verdict;
use crate::decision::{fd_path, Reason};
use crate::fanotify::Group;
use crate::guard::Shared;
use crate::stats::{bump, Counters};
use crate::LOG;

/// An event waiting for its answer. Its fd stays open until it is answered.
#[derive(Clone)]
pub(crate) struct Pending {
    /// The event's file, shared with the decider that has it.
    pub(crate) fd: Arc<OwnedFd>,
    /// When the event was read.
    pub(crate) since: Instant,
    /// The process that opened the file.
    pub(crate) pid: i32,
    /// The event's bits.
    pub(crate) mask: u64,
}

/// The events waiting, by fd number.
#[derive(Default)]
pub(crate) struct PendingTable(Mutex<HashMap<RawFd, Pending>>);

impl PendingTable {
    /// The table, even after a panic in another thread: each entry is a
    /// whole event, so it stays usable, and an event left out of it would
    /// never be answered.
    fn lock(&self) -> MutexGuard<'_, HashMap<RawFd, Pending>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Enters an event that will be answered later.
    pub(crate) fn insert(&self, fdnum: RawFd, p: Pending) {
        self.lock().insert(fdnum, p);
    }

    /// Answers the pending event `fdnum` if nobody has: returns whether this
    /// call answered it.
    pub(crate) fn answer(&self, group: &Group, counters: &Counters, fdnum: RawFd, verdict: Verdict) -> bool {
        let Some(p) = self.lock().remove(&fdnum) else { return false };
        // `p.fd` is still open here: the number cannot name another event.
        if let Err(e) = group.respond(fdnum, verdict == Verdict::Allow) {
            tracing::error!(target: LOG, fd = fdnum, pid = p.pid, "umd guard: answering the kernel: {e}");
        }
        match verdict {
            Verdict::Allow => bump(&counters.allowed),
            Verdict::Deny => bump(&counters.denied),
        }
        // Closed only now, after the answer (unless a decider still holds it).
        drop(p.fd);
        true
    }

    /// The fd numbers of every event still waiting.
    pub(crate) fn fds(&self) -> Vec<RawFd> {
        self.lock().keys().copied().collect()
    }

    /// The events read `deadline` or longer before `now`. Each copy holds the
    /// event's fd, which keeps its number from being reused while the caller
    /// looks at it.
    fn expired(&self, now: Instant, deadline: Duration) -> Vec<(RawFd, Pending)> {
        let t = self.lock();
        t.iter()
            .filter(|(_, e)| now.duration_since(e.since) >= deadline)
            .map(|(&fd, e)| (fd, e.clone()))
            .collect()
    }
}

/// The watchdog thread: answers every event still unanswered after the
/// deadline, until the guard stops.
pub(crate) fn watchdog(s: &Shared) {
    let tick = (s.deadline / 4).clamp(Duration::from_millis(1), Duration::from_millis(100));
    while !s.stop.load(Ordering::SeqCst) {
        std::thread::sleep(tick);
        for (fdnum, p) in s.pending.expired(Instant::now(), s.deadline) {
            // `p.fd` keeps the number from being reused while we look at it.
            let path = fd_path(fdnum);
            if s.answer(fdnum, s.timeout_verdict) {
                bump(&s.counters.timeouts);
                let mut d = s.decision(s.timeout_verdict, Reason::Timeout, p.mask, path, p.pid);
                d.micros = s.deadline.as_micros() as u64;
                d.would_deny = s.timeout_verdict == Verdict::Deny;
                tracing::error!(
                    target: LOG, path = %d.path, pid = p.pid, verdict = ?s.timeout_verdict,
                    "umd guard: no decision within {:?}: the watchdog answered", s.deadline
                );
                s.log(&d);
            }
            drop(p);
        }
    }
}
