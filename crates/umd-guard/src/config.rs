//! How a guard runs: the caller's settings and their defaults.
//!
//! Trusted: everything here comes from the program that starts the guard (the
//! `umd guard` command line, the service's configuration), never from the files
//! or the processes being judged. [`GuardConfig::check`] refuses what cannot
//! run before anything is read or marked.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use umd_digest_list::VerifyingKey;

use crate::decision::DecisionSink;
use crate::error::GuardError;
use crate::fanotify::{self, MarkScope};

/// Default bound on the size of a file the guard hashes (see [`GuardConfig::max_file_size`]).
pub const DEFAULT_MAX_FILE_SIZE: u64 = 1 << 30;
/// Default deadline after which the watchdog answers an event.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(5);

/// What happens to a file that is not listed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Allow it and log that it would have been denied.
    Audit,
    /// Deny it: the `execve` (or open) fails with `EPERM`.
    Enforce,
}

/// An answer to the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The open proceeds.
    Allow,
    /// The open fails with `EPERM`.
    Deny,
}

/// Where allowed verdicts are remembered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheMode {
    /// Fanotify ignore marks on allowed inodes: no round trip for a cached exec;
    /// cleared by the kernel on modification and by the guard on write-close.
    Kernel,
    /// A table in this process keyed by (device, inode) and checked against
    /// size, ctime and mtime: one round trip per exec, no hashing.
    User,
    /// Hash every time.
    Off,
}

/// How to run a guard.
#[derive(Clone)]
pub struct GuardConfig {
    /// The digest list (re-read by [`Guard::reload`](crate::Guard::reload)).
    pub list_path: PathBuf,
    /// The key the list must be signed with.
    pub verify_key: VerifyingKey,
    /// Paths whose mounts (or filesystems) are marked.
    pub mounts: Vec<PathBuf>,
    /// Mount marks (default) or filesystem marks.
    pub scope: MarkScope,
    /// Allow a mark that lands on the root mount (or, with filesystem marks, the
    /// root filesystem). Off by default: see the README's risks.
    pub allow_root_mount: bool,
    /// Audit or enforce.
    pub mode: Mode,
    /// Also check every open (`FAN_OPEN_PERM`) on the marked mounts: covers
    /// `sh script`, `python3 file.py` and libraries, at a cost on every open.
    pub open_perm: bool,
    /// Where allowed verdicts are cached.
    pub cache: CacheMode,
    /// Files larger than this are not read: denied in enforce, allowed and
    /// logged in audit ([`Reason::TooLarge`](crate::Reason::TooLarge)).
    pub max_file_size: u64,
    /// The watchdog answers an event unanswered for this long.
    pub deadline: Duration,
    /// What the watchdog (and an overloaded reader) answers.
    pub timeout_verdict: Verdict,
    /// Decider threads.
    pub deciders: usize,
    /// Events queued for the deciders at most (then: overload verdict).
    pub queue_len: usize,
    /// Processes whose opens are always allowed at once (besides this one).
    pub exclude_pids: Vec<i32>,
    /// Called with every decision, besides the `tracing` log.
    pub sink: Option<DecisionSink>,
    /// Test hook, only with the `test-hooks` feature: a decider that is given
    /// a file of this name hangs (until the guard stops), so the watchdog must
    /// answer.
    #[cfg(feature = "test-hooks")]
    pub test_hang_on: Option<std::ffi::OsString>,
    /// Where the last accepted list is recorded ([`state`](crate::state)): a
    /// list with a lower sequence number is refused at start and on reload,
    /// across restarts. `None` (the library's default) keeps no record, so only
    /// reloads are protected; `umd guard` always keeps one
    /// ([`state::DEFAULT_PATH`](crate::state::DEFAULT_PATH) unless `--state`).
    pub state: Option<PathBuf>,
}

impl GuardConfig {
    /// A configuration with defaults: enforce, mount marks, kernel cache,
    /// exec events only, 1 GiB file bound, 5 s deadline answered by deny, two
    /// deciders.
    pub fn new(list_path: PathBuf, verify_key: VerifyingKey, mounts: Vec<PathBuf>) -> GuardConfig {
        GuardConfig {
            list_path,
            verify_key,
            mounts,
            scope: MarkScope::Mount,
            allow_root_mount: false,
            mode: Mode::Enforce,
            open_perm: false,
            cache: CacheMode::Kernel,
            max_file_size: DEFAULT_MAX_FILE_SIZE,
            deadline: DEFAULT_DEADLINE,
            timeout_verdict: Verdict::Deny,
            deciders: 2,
            queue_len: 4096,
            exclude_pids: Vec::new(),
            sink: None,
            #[cfg(feature = "test-hooks")]
            test_hang_on: None,
            state: None,
        }
    }

    /// Refuses a configuration that cannot run, before anything is read or marked.
    pub(crate) fn check(&self) -> Result<(), GuardError> {
        if self.mounts.is_empty() {
            return Err(GuardError::Config("no mount to guard".into()));
        }
        if self.deciders == 0 || self.deciders > 64 {
            return Err(GuardError::Config(format!("deciders must be 1..=64, not {}", self.deciders)));
        }
        if self.queue_len == 0 || self.deadline.is_zero() {
            return Err(GuardError::Config("queue length and deadline must be positive".into()));
        }
        Ok(())
    }

    /// The permission events the guard answers.
    pub(crate) fn perm_mask(&self) -> u64 {
        fanotify::OPEN_EXEC_PERM | if self.open_perm { fanotify::OPEN_PERM } else { 0 }
    }
}
