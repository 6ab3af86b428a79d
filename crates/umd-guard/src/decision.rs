//! What the guard decided about one event, and how that is reported.
//!
//! A [`Decision`] is built by whoever answers an event (the reader, a decider,
//! the watchdog) and reported once: to the `tracing` log (target
//! `umd_guard::decision`) and to the caller's [`DecisionSink`].
//!
//! Trust: the record is the guard's own, but two of its fields describe what
//! others control — `path` is the name a user gave the file (any bytes but NUL
//! and `/`, read back from `/proc/self/fd`: for people, never for decisions),
//! and `pid` the process that opened it. Verdicts are made from the file's
//! contents through its event fd, never from the name.

use std::os::fd::RawFd;
use std::sync::Arc;

use serde::Serialize;

use crate::config::{Mode, Verdict};
use crate::fanotify;

/// Why a verdict was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// The digest is in the list (from a verified package).
    Listed,
    /// A user-space cache hit for an unchanged file.
    Cached,
    /// The digest is not in the list (or only from unverified packages).
    NotListed,
    /// The file is larger than [`GuardConfig::max_file_size`](crate::GuardConfig::max_file_size); it was not read.
    TooLarge,
    /// The file could not be read.
    Unreadable,
    /// The file changed while it was being hashed.
    Changed,
    /// Not a regular file (the kernel refuses to execute those anyway).
    NotRegular,
    /// No decider answered before the deadline: the watchdog did.
    Timeout,
    /// The deciders' queue was full.
    Overload,
}

/// One logged decision.
#[derive(Clone, Debug, Serialize)]
pub struct Decision {
    /// The answer given.
    pub verdict: Verdict,
    /// The mode at the time.
    pub mode: Mode,
    /// Why.
    pub reason: Reason,
    /// Whether the file would be denied in enforce mode (audit mode allowed it).
    pub would_deny: bool,
    /// `exec` (`FAN_OPEN_EXEC_PERM`) or `open` (`FAN_OPEN_PERM`).
    pub event: &'static str,
    /// The file's path as `/proc/self/fd` shows it (for people: a path can be raced).
    pub path: String,
    /// The process that opened it.
    pub pid: i32,
    /// `sha256:<hex>` (the first algorithm of the list), when hashed.
    pub digest: Option<String>,
    /// Verified packages listing it.
    pub packages: Vec<String>,
    /// Sequence number of the list used.
    pub list_sequence: u64,
    /// Time from the event's read to the answer, in microseconds.
    pub micros: u64,
}

/// A callback given every decision (e.g. to print JSON lines).
pub type DecisionSink = Arc<dyn Fn(&Decision) + Send + Sync>;

impl Decision {
    /// A decision about the event with bits `mask` (exec or open) on `path` by
    /// `pid`, under the list numbered `list_sequence`; digest and packages
    /// empty, `would_deny` false, no time yet.
    pub(crate) fn new(
        verdict: Verdict,
        mode: Mode,
        reason: Reason,
        mask: u64,
        path: String,
        pid: i32,
        list_sequence: u64,
    ) -> Decision {
        Decision {
            verdict,
            mode,
            reason,
            would_deny: false,
            event: if mask & fanotify::OPEN_EXEC_PERM != 0 { "exec" } else { "open" },
            path,
            pid,
            digest: None,
            packages: Vec::new(),
            list_sequence,
            micros: 0,
        }
    }

    /// Logs it (a denial, or an audit-mode allow that enforce would deny, as a
    /// warning) and gives it to `sink`.
    pub(crate) fn report(&self, sink: Option<&DecisionSink>) {
        let digest = self.digest.as_deref().unwrap_or("-");
        let packages = self.packages.join(",");
        match (self.verdict, self.would_deny) {
            (Verdict::Deny, _) => tracing::warn!(
                target: "umd_guard::decision", verdict = "deny", reason = ?self.reason, path = %self.path, pid = self.pid,
                digest, event = self.event, "denied"
            ),
            (Verdict::Allow, true) => tracing::warn!(
                target: "umd_guard::decision", verdict = "allow", reason = ?self.reason, path = %self.path, pid = self.pid,
                digest, event = self.event, "allowed (audit: would deny)"
            ),
            (Verdict::Allow, false) => tracing::info!(
                target: "umd_guard::decision", verdict = "allow", reason = ?self.reason, path = %self.path, pid = self.pid,
                digest, packages = %packages, event = self.event, "allowed"
            ),
        }
        if let Some(s) = sink {
            s(self);
        }
    }
}

/// The path of the open file `fd` as `/proc/self/fd` shows it (`?` if it
/// cannot be read): what a person reads in the log.
pub(crate) fn fd_path(fd: RawFd) -> String {
    std::fs::read_link(format!("/proc/self/fd/{fd}"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "?".into())
}
