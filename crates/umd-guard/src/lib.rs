//! Exec control: allow or deny program execution by a signed digest list.
//!
//! The guard is a fanotify group of class `FAN_CLASS_CONTENT` with
//! `FAN_OPEN_EXEC_PERM` marks on chosen mounts (or filesystems). Each time a
//! process opens a file there for execution (`execve`, or the kernel opening a
//! `#!` script), the kernel holds the opener and hands us a read-only fd of the
//! file. The guard hashes the file from that fd, looks the digest up in a digest
//! list whose Ed25519 signature it checked ([`umd_digest_list`]), and answers:
//! allow if listed, else deny ([`Mode::Enforce`], the opener gets `EPERM`) or allow
//! and log ([`Mode::Audit`]).
//!
//! # Threads, and why the guard cannot deadlock itself
//!
//! * **reader** — reads events, answers at once those caused by this process (or
//!   by pids excluded with [`Guard::exclude_pid`]: the handlers of a service
//!   running the guard), applies write-close invalidations in queue order, and
//!   queues the rest for the deciders. It never blocks on anything but the read:
//!   when the deciders' queue is full it answers with the overload verdict.
//! * **deciders** — hash, look up, cache, answer.
//! * **watchdog** — answers any event still unanswered after the deadline with
//!   [`GuardConfig::timeout_verdict`] (counted in [`Stats::timeouts`] and logged),
//!   so a hung decider (a stuck read, a bug) stalls an `exec` for at most the
//!   deadline. Every event is answered exactly once: whoever takes it out of the
//!   pending table answers it, and its fd stays open until then (the kernel
//!   matches answers by fd number).
//!
//! # Cached verdicts
//!
//! [`CacheMode::Kernel`] (the default): an allowed file gets a fanotify *ignore
//! mark* on its inode, so its next execs never leave the kernel. Without
//! `FAN_MARK_IGNORED_SURV_MODIFY` the kernel clears it on the inode's next
//! modification; write-closes on the marked mounts also clear it (a store through
//! a shared writable mapping emits no modify event). [`CacheMode::User`]: a table
//! keyed by device and inode, checked against size, change time and modification
//! time (a writable-mapping store moves them too) — every exec still makes the
//! round trip. See the workspace README for measurements and the choice.
//!
//! # Rollback
//!
//! A reload swaps in only a list with a larger sequence number; across
//! restarts the guard remembers the last list it accepted in a state file
//! ([`state`], [`GuardConfig::state`]) and refuses to start with an older one.
//!
//! # Fail-open
//!
//! If the guard's process dies, the kernel destroys the group and allows every
//! pending and later open: run it under a supervisor that restarts it
//! (`dist/systemd/umd-guard.service`).
//!
//! # Modules, and what each one trusts
//!
//! | module | role | input |
//! |---|---|---|
//! | `config` | [`GuardConfig`], [`Mode`], [`Verdict`], [`CacheMode`], defaults | trusted: the caller's |
//! | `guard` | [`Guard`]: start, reload, stop; what the threads share | trusted |
//! | `reader` | the reader thread: excluded pids, write-close invalidations, reader-side cache hits, the deciders' queue | **hostile**: events caused by any process on the marked mounts, at any rate, with any file name |
//! | `decider` | the decider threads: hash, look up, answer, cache | **hostile**: the contents of any file executed there (hashed, never parsed, bounded) |
//! | [`hash`] | `pread` + SHA-2 of an event fd; `fstat` stamps | **hostile** bytes, only hashed |
//! | `pending` | events waiting for their answer (exactly once); the watchdog | trusted |
//! | `cache` | verdict caches: kernel ignore marks, the user-space table, the epoch | trusted, keyed by `fstat` of hostile files |
//! | `list` | reading (bounded), verifying and swapping the digest list; rollback checks | the list file: hostile until its signature verifies |
//! | [`state`] | the record of the last list accepted | a root-owned file, read as untrusted text |
//! | [`fanotify`] | the kernel interface: group, marks, event records, answers | the kernel's records, decoded with bounds checks |
//! | `decision` | [`Decision`], [`Reason`], the decision log | trusted record; the path in it is a user's file name |
//! | `stats` | [`Stats`] and the counters behind it (one list) | trusted |
//! | `error` | [`GuardError`] | trusted |
//!
//! # Test hooks
//!
//! The `test-hooks` feature adds `GuardConfig::test_hang_on` (a decider that
//! hangs, so the watchdog's tests have something to answer) and nothing else; a
//! production build carries no test code. `cargo test` of the `umd` command
//! turns it on through a dev-dependency, and [`if_test_hooks!`] lets that crate
//! declare its hidden `--test-hang-on` option only then.
//!
//! # Example
//!
//! ```no_run
//! use umd_guard::{CacheMode, Guard, GuardConfig, Mode};
//! # fn key() -> umd_digest_list::VerifyingKey { unimplemented!() }
//! let mut config = GuardConfig::new("/etc/umd/digests.list".into(), key(), vec!["/opt".into()]);
//! config.mode = Mode::Audit;
//! config.cache = CacheMode::Kernel;
//! let guard = Guard::start(config)?;
//! // ... later, on SIGHUP:
//! guard.reload()?;
//! let stats = guard.stop();
//! println!("{} events, {} denied", stats.events, stats.denied);
//! # Ok::<(), umd_guard::GuardError>(())
//! ```
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

mod cache;
mod config;
mod decider;
mod decision;
mod error;
pub mod fanotify;
mod guard;
pub mod hash;
mod list;
mod pending;
mod reader;
pub mod state;
mod stats;
mod test_hooks;

pub use cache::MAX_USER_CACHE;
pub use config::{CacheMode, GuardConfig, Mode, Verdict, DEFAULT_DEADLINE, DEFAULT_MAX_FILE_SIZE};
pub use decision::{Decision, DecisionSink, Reason};
pub use error::GuardError;
pub use fanotify::MarkScope as Scope;
pub use guard::Guard;
pub use list::{load_list, MAX_LIST_BYTES};
pub use stats::Stats;

// The README's example compiles (as a doc test).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// The `tracing` target of the guard's own messages, whichever module logs
/// them (decisions go to `umd_guard::decision`).
const LOG: &str = "umd_guard";
