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

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;
use umd_digest_list::{DigestList, ListError, Mark, VerifyingKey};

pub mod fanotify;
pub mod hash;
pub mod state;

use fanotify::{Group, MarkScope};
use hash::{FileStamp, HashError};
use state::StateError;

pub use fanotify::MarkScope as Scope;

/// Default bound on the size of a file the guard hashes (see [`GuardConfig::max_file_size`]).
pub const DEFAULT_MAX_FILE_SIZE: u64 = 1 << 30;
/// Default deadline after which the watchdog answers an event.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(5);
/// Entries of the user-space verdict table at most (then it starts afresh).
pub const MAX_USER_CACHE: usize = 1 << 16;
/// Bound on a digest list the guard reads (the format allows 4 GiB; a guard
/// holding that in memory would be a problem of its own).
pub const MAX_LIST_BYTES: u64 = 1 << 30;

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
    /// The file is larger than [`GuardConfig::max_file_size`]; it was not read.
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

/// How to run a guard.
#[derive(Clone)]
pub struct GuardConfig {
    /// The digest list (re-read by [`Guard::reload`]).
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
    /// logged in audit ([`Reason::TooLarge`]).
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
    /// Test hook: a decider that is given a file of this name hangs (until the
    /// guard stops), so the watchdog must answer.
    pub test_hang_on: Option<OsString>,
    /// Where the last accepted list is recorded ([`state`]): a list with a
    /// lower sequence number is refused at start and on reload, across
    /// restarts. `None` (the library's default) keeps no record, so only
    /// reloads are protected; `umd guard` always keeps one
    /// ([`state::DEFAULT_PATH`] unless `--state`).
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
            test_hang_on: None,
            state: None,
        }
    }

    fn perm_mask(&self) -> u64 {
        fanotify::OPEN_EXEC_PERM | if self.open_perm { fanotify::OPEN_PERM } else { 0 }
    }
}

/// Why the guard could not start, or a list was refused.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    /// Bad configuration.
    #[error("configuration: {0}")]
    Config(String),
    /// `fanotify_init` failed (needs `CAP_SYS_ADMIN` and a kernel with fanotify).
    #[error("fanotify_init: {0} (the guard needs CAP_SYS_ADMIN)")]
    Init(#[source] std::io::Error),
    /// A mark could not be placed.
    #[error("marking {path}: {source}")]
    Mark {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The mark would land on the root mount or filesystem.
    #[error(
        "{path} is on the root {what}: marking it guards every program of the system; \
         pass --allow-root-mount (allow_root_mount) if that is meant"
    )]
    RootMount {
        /// The path.
        path: PathBuf,
        /// `mount` or `filesystem`.
        what: &'static str,
    },
    /// The list could not be read.
    #[error("digest list {path}: {source}")]
    ListRead {
        /// The list.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The list's signature or structure is bad.
    #[error("digest list {path}: {source}")]
    ListInvalid {
        /// The list.
        path: PathBuf,
        /// The error.
        source: ListError,
    },
    /// The list is not newer than the one in use.
    #[error(
        "digest list {path}: sequence {new} (created {}) does not supersede the current list's {current} \
         (created {}); keeping the current list",
        utc(*.new_created), utc(*.current_created)
    )]
    ListNotNewer {
        /// The list.
        path: PathBuf,
        /// Its sequence number.
        new: u64,
        /// Its creation time.
        new_created: u64,
        /// The current one's.
        current: u64,
        /// The current one's creation time.
        current_created: u64,
    },
    /// A thread could not be started.
    #[error("starting the {0} thread: {1}")]
    Thread(&'static str, #[source] std::io::Error),
    /// The state file could not be read, is corrupt, or could not be written.
    #[error("{0}")]
    State(#[from] StateError),
    /// The list is older than the last one accepted (a rollback).
    #[error(
        "digest list {path}: sequence {sequence} is lower than {recorded}, the last list accepted (recorded in \
         {state}); refusing to roll back"
    )]
    Rollback {
        /// The list.
        path: PathBuf,
        /// Its sequence number.
        sequence: u64,
        /// The sequence number recorded.
        recorded: u64,
        /// The state file.
        state: PathBuf,
    },
}

/// Counters (since start).
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Stats {
    /// Permission events read.
    pub events: u64,
    /// Events answered allow (any reason).
    pub allowed: u64,
    /// Events answered deny (any reason).
    pub denied: u64,
    /// Unlisted files allowed because of audit mode.
    pub audited: u64,
    /// Events of this process or an excluded pid, allowed at once.
    pub excluded: u64,
    /// Events answered by the watchdog.
    pub timeouts: u64,
    /// Events answered by the reader because the deciders' queue was full.
    pub overloads: u64,
    /// Decisions that came after the watchdog had answered (discarded).
    pub late: u64,
    /// User-space cache hits.
    pub cache_hits: u64,
    /// Ignore marks placed (kernel cache).
    pub ignore_marks: u64,
    /// Invalidations by write-close events.
    pub invalidations: u64,
    /// Lists swapped in after the first.
    pub reloads: u64,
    /// Lists refused on reload.
    pub reload_refusals: u64,
    /// Sequence number of the list in use.
    pub list_sequence: u64,
}

#[derive(Default)]
struct Counters {
    events: AtomicU64,
    allowed: AtomicU64,
    denied: AtomicU64,
    audited: AtomicU64,
    excluded: AtomicU64,
    timeouts: AtomicU64,
    overloads: AtomicU64,
    late: AtomicU64,
    cache_hits: AtomicU64,
    ignore_marks: AtomicU64,
    invalidations: AtomicU64,
    reloads: AtomicU64,
    reload_refusals: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// A list in use, with what the deciders need precomputed.
struct Loaded {
    list: DigestList,
    algos: Vec<u32>,
}

/// The list file's identity, to notice a replacement without reading it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct ListStamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
}

fn list_stamp(path: &Path) -> Option<ListStamp> {
    let st = rustix::fs::stat(path).ok()?;
    Some(ListStamp {
        dev: st.st_dev,
        ino: st.st_ino,
        size: st.st_size as u64,
        mtime: (st.st_mtime, st.st_mtime_nsec as i64),
    })
}

/// Seconds since the epoch as RFC 3339 UTC, for messages.
fn utc(secs: u64) -> impl std::fmt::Display {
    // Clamped to the last second RFC 3339 can write (the formatter fails past it).
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(secs.min(253_402_300_799)))
}

/// Checks a verified `list` against the state file at `path`: a missing file
/// (a first run) passes; a record of another key, an unreadable or corrupt
/// file, or a larger recorded sequence number is an error.
fn not_a_rollback(
    path: &Path,
    key: &VerifyingKey,
    list_path: &Path,
    list: &DigestList,
) -> Result<(), GuardError> {
    let Some(r) = state::load(path)? else { return Ok(()) };
    state::check_key(path, &r, key.as_bytes())?;
    if list.sequence() < r.sequence {
        return Err(GuardError::Rollback {
            path: list_path.to_owned(),
            sequence: list.sequence(),
            recorded: r.sequence,
            state: path.to_owned(),
        });
    }
    Ok(())
}

/// Records `list` as the last one accepted (atomically).
fn record(path: &Path, key: &VerifyingKey, list: &DigestList) -> Result<(), GuardError> {
    let r = state::Record { key: *key.as_bytes(), sequence: list.sequence(), created: list.created() };
    if state::load(path)?.as_ref() == Some(&r) {
        return Ok(()); // a restart with the same list: nothing to write
    }
    Ok(state::store(path, &r)?)
}

/// Reads and verifies a list (bounded size).
pub fn load_list(path: &Path, key: &VerifyingKey) -> Result<DigestList, GuardError> {
    use std::io::Read;
    let read_err = |source| GuardError::ListRead { path: path.to_owned(), source };
    let f = std::fs::File::open(path).map_err(read_err)?;
    let mut bytes = Vec::new();
    f.take(MAX_LIST_BYTES + 1).read_to_end(&mut bytes).map_err(read_err)?;
    if bytes.len() as u64 > MAX_LIST_BYTES {
        return Err(read_err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than the guard's {MAX_LIST_BYTES}-byte bound"),
        )));
    }
    DigestList::open(bytes, key).map_err(|source| GuardError::ListInvalid { path: path.to_owned(), source })
}

/// An event waiting for its answer. Its fd stays open until it is answered.
struct Pending {
    fd: Arc<OwnedFd>,
    since: Instant,
    pid: i32,
    mask: u64,
}

struct Job {
    fdnum: RawFd,
    fd: Arc<OwnedFd>,
    pid: i32,
    mask: u64,
    since: Instant,
}

#[derive(Clone, Copy)]
struct CacheEntry {
    stamp: FileStamp,
    list_sequence: u64,
}

struct Shared {
    group: Group,
    mode: Mode,
    cache: CacheMode,
    perm_mask: u64,
    max_file_size: u64,
    deadline: Duration,
    timeout_verdict: Verdict,
    list_path: PathBuf,
    verify_key: VerifyingKey,
    list: RwLock<Arc<Loaded>>,
    list_stamp: Mutex<Option<ListStamp>>,
    pending: Mutex<HashMap<RawFd, Pending>>,
    user_cache: Mutex<HashMap<(u64, u64), CacheEntry>>,
    /// Bumped by every invalidation (write-close, overflow, new list); a decider
    /// caches a verdict only if it did not move while it decided.
    epoch: AtomicU64,
    self_pid: i32,
    excluded: RwLock<Vec<i32>>,
    stop: AtomicBool,
    /// Every marked mount is a local filesystem whose `fstat` cannot hang
    /// (not FUSE, not NFS): only then does the reader `fstat` event files itself.
    local_fs: bool,
    /// The reader gave up: marks removed, nothing is guarded.
    failed: AtomicBool,
    counters: Counters,
    sink: Option<DecisionSink>,
    hang_on: Option<OsString>,
    state: Option<PathBuf>,
}

/// A running guard. [`stop`](Guard::stop) it, or drop it (same thing).
pub struct Guard {
    shared: Arc<Shared>,
    wake: Option<OwnedFd>,
    threads: Vec<JoinHandle<()>>,
}

fn fd_path(fd: RawFd) -> String {
    std::fs::read_link(format!("/proc/self/fd/{fd}"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "?".into())
}

/// Whether `path` is on a filesystem whose metadata lives in this kernel
/// (tmpfs, ext2/3/4, xfs, btrfs, f2fs, squashfs, iso9660, vfat, erofs), so that
/// `fstat` of its files never waits for another process or the network.
fn local_fs(path: &Path) -> bool {
    const LOCAL: &[u64] = &[
        0x0102_1994, // tmpfs
        0xef53,      // ext2/3/4
        0x5846_5342, // xfs
        0x9123_683e, // btrfs
        0xf2f5_2010, // f2fs
        0x7371_7368, // squashfs
        0x9660,      // iso9660
        0x4d44,      // vfat
        0xe0f5_e1e2, // erofs
    ];
    rustix::fs::statfs(path).is_ok_and(|s| LOCAL.contains(&(s.f_type as u64)))
}

fn root_check(path: &Path, scope: MarkScope) -> Result<bool, GuardError> {
    use rustix::fs::{statx, AtFlags, StatxFlags, CWD};
    let sx = |p: &Path| {
        statx(CWD, p, AtFlags::empty(), StatxFlags::MNT_ID)
            .map_err(|e| GuardError::Mark { path: p.to_owned(), source: e.into() })
    };
    let (a, root) = (sx(path)?, sx(Path::new("/"))?);
    Ok(match scope {
        MarkScope::Mount => a.stx_mnt_id == root.stx_mnt_id,
        MarkScope::Filesystem => {
            (a.stx_dev_major, a.stx_dev_minor) == (root.stx_dev_major, root.stx_dev_minor)
        }
    })
}

impl Guard {
    /// Loads and verifies the list, creates the fanotify group, marks the
    /// mounts and starts the threads. When it returns, every exec on the marked
    /// mounts is checked.
    pub fn start(config: GuardConfig) -> Result<Guard, GuardError> {
        if config.mounts.is_empty() {
            return Err(GuardError::Config("no mount to guard".into()));
        }
        if config.deciders == 0 || config.deciders > 64 {
            return Err(GuardError::Config(format!("deciders must be 1..=64, not {}", config.deciders)));
        }
        if config.queue_len == 0 || config.deadline.is_zero() {
            return Err(GuardError::Config("queue length and deadline must be positive".into()));
        }
        let list = load_list(&config.list_path, &config.verify_key)?;
        for m in &config.mounts {
            if root_check(m, config.scope)? && !config.allow_root_mount {
                let what = if config.scope == MarkScope::Mount { "mount" } else { "filesystem" };
                return Err(GuardError::RootMount { path: m.clone(), what });
            }
        }
        // Not older than the last list accepted; recorded once the guard runs.
        if let Some(path) = &config.state {
            not_a_rollback(path, &config.verify_key, &config.list_path, &list)?;
        }
        let algos: Vec<u32> = list.algorithms().into_iter().map(|(a, _)| a).collect();
        let stamp = list_stamp(&config.list_path);
        let group = Group::new().map_err(GuardError::Init)?;
        let perm_mask = config.perm_mask();
        // Write-close notifications keep kernel-cached verdicts honest for stores
        // through shared writable mappings, which emit no modify event.
        let mask = perm_mask | if config.cache == CacheMode::Kernel { fanotify::CLOSE_WRITE } else { 0 };
        for m in &config.mounts {
            group
                .mark(config.scope, m, mask)
                .map_err(|source| GuardError::Mark { path: m.clone(), source })?;
        }
        let shared = Arc::new(Shared {
            group,
            mode: config.mode,
            cache: config.cache,
            perm_mask,
            max_file_size: config.max_file_size,
            deadline: config.deadline,
            timeout_verdict: config.timeout_verdict,
            list_path: config.list_path.clone(),
            verify_key: config.verify_key,
            list: RwLock::new(Arc::new(Loaded { list, algos })),
            list_stamp: Mutex::new(stamp),
            pending: Mutex::new(HashMap::new()),
            user_cache: Mutex::new(HashMap::new()),
            epoch: AtomicU64::new(0),
            self_pid: rustix::process::getpid().as_raw_nonzero().get(),
            excluded: RwLock::new(config.exclude_pids.clone()),
            stop: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            local_fs: config.mounts.iter().all(|m| local_fs(m)),
            counters: Counters::default(),
            sink: config.sink.clone(),
            hang_on: config.test_hang_on.clone(),
            state: config.state.clone(),
        });
        let (wake_r, wake_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
            .map_err(|e| GuardError::Init(e.into()))?;
        let mut guard = Guard { shared: shared.clone(), wake: Some(wake_w), threads: Vec::new() };
        let (tx, rx) = sync_channel::<Job>(config.queue_len);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..config.deciders {
            let (s, rx) = (shared.clone(), rx.clone());
            let h = std::thread::Builder::new()
                .name(format!("guard-decider-{i}"))
                .spawn(move || decider(&s, &rx))
                .map_err(|e| GuardError::Thread("decider", e))?;
            guard.threads.push(h);
        }
        let s = shared.clone();
        let h = std::thread::Builder::new()
            .name("guard-watchdog".into())
            .spawn(move || watchdog(&s))
            .map_err(|e| GuardError::Thread("watchdog", e))?;
        guard.threads.push(h);
        let s = shared.clone();
        let h = std::thread::Builder::new()
            .name("guard-reader".into())
            .spawn(move || reader(&s, tx, wake_r))
            .map_err(|e| GuardError::Thread("reader", e))?;
        guard.threads.push(h);
        if config.scope == MarkScope::Mount {
            let ns = |p: &str| std::fs::read_link(p).ok();
            let (ours, init) = (ns("/proc/self/ns/mnt"), ns("/proc/1/ns/mnt"));
            if ours.is_some() && init.is_some() && ours != init {
                // A service unit with PrivateTmp=, ProtectSystem=, ... runs here.
                tracing::warn!(
                    "umd guard: this process is in another mount namespace than PID 1: mount marks \
                     guard only processes that see these mounts (use filesystem marks to guard all)"
                );
            }
        }
        if let Some(path) = &config.state {
            // Dropping `guard` on this error stops it (marks first).
            record(path, &config.verify_key, &shared.current().list)?;
        }
        tracing::info!(
            mounts = ?config.mounts, mode = ?config.mode, cache = ?config.cache, open_perm = config.open_perm,
            list = %config.list_path.display(), sequence = shared.current().list.sequence(),
            digests = shared.current().list.len(), "umd guard: watching"
        );
        Ok(guard)
    }

    /// Always allow opens by `pid` (e.g. a handler process of the service
    /// running the guard). This process is always excluded.
    pub fn exclude_pid(&self, pid: i32) {
        if let Ok(mut v) = self.shared.excluded.write() {
            if !v.contains(&pid) {
                v.push(pid);
            }
        }
    }

    /// Stops excluding `pid`.
    pub fn include_pid(&self, pid: i32) {
        if let Ok(mut v) = self.shared.excluded.write() {
            v.retain(|&p| p != pid);
        }
    }

    /// Reads the list file again; if its signature verifies and it supersedes
    /// the current list (larger sequence number, not older), swaps it in
    /// atomically and drops every cached verdict. Otherwise the current list
    /// stays and the refusal is returned (and counted).
    pub fn reload(&self) -> Result<u64, GuardError> {
        self.shared.reload()
    }

    /// [`reload`](Guard::reload) if the list file was replaced or changed since
    /// it was last read (device, inode, size or mtime); `Ok(None)` if not.
    pub fn reload_if_changed(&self) -> Result<Option<u64>, GuardError> {
        let now = list_stamp(&self.shared.list_path);
        let changed = match self.shared.list_stamp.lock() {
            Ok(s) => now.is_some() && *s != now,
            Err(_) => false,
        };
        if changed {
            self.shared.reload().map(Some)
        } else {
            Ok(None)
        }
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Stops the threads and closes the group (the kernel then allows every
    /// open that was still waiting). Returns the final counters.
    pub fn stop(mut self) -> Stats {
        self.shutdown();
        self.shared.stats()
    }

    /// Whether the guard stopped guarding on its own (its reader failed): it
    /// removed its marks (fail-open, as if it had died). A supervisor should
    /// stop it and start a new one.
    pub fn failed(&self) -> bool {
        self.shared.failed.load(Ordering::SeqCst)
    }

    fn shutdown(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // No new events from here on, even if a decider is stuck and keeps the
        // group open after this returns (a library user's process goes on).
        if let Err(e) = self.shared.group.flush_all_marks() {
            tracing::error!("umd guard: removing the marks: {e}");
        }
        if let Some(w) = self.wake.take() {
            let _ = rustix::io::write(&w, b"x");
        }
        // Reader and watchdog first (they never block for long); then events
        // already read are answered; deciders get a bounded wait, and one stuck
        // in a read (a hung FUSE file) is left behind rather than hanging stop().
        let (deciders, others): (Vec<_>, Vec<_>) = self
            .threads
            .drain(..)
            .partition(|h| h.thread().name().is_some_and(|n| n.starts_with("guard-decider")));
        for h in others {
            let _ = h.join();
        }
        // Whatever is still pending is allowed now rather than at close: the
        // same answer the kernel would give, but explicit.
        let left: Vec<RawFd> =
            self.shared.pending.lock().map(|p| p.keys().copied().collect()).unwrap_or_default();
        for fd in left {
            self.shared.answer(fd, Verdict::Allow);
        }
        let until = Instant::now() + Duration::from_secs(2);
        for h in deciders {
            while !h.is_finished() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(5));
            }
            if h.is_finished() {
                let _ = h.join();
            } else {
                tracing::error!("umd guard: a decider did not stop within 2 s; left behind");
            }
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.shutdown();
        }
    }
}

impl Shared {
    fn current(&self) -> Arc<Loaded> {
        match self.list.read() {
            Ok(l) => l.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn stats(&self) -> Stats {
        let c = &self.counters;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Stats {
            events: g(&c.events),
            allowed: g(&c.allowed),
            denied: g(&c.denied),
            audited: g(&c.audited),
            excluded: g(&c.excluded),
            timeouts: g(&c.timeouts),
            overloads: g(&c.overloads),
            late: g(&c.late),
            cache_hits: g(&c.cache_hits),
            ignore_marks: g(&c.ignore_marks),
            invalidations: g(&c.invalidations),
            reloads: g(&c.reloads),
            reload_refusals: g(&c.reload_refusals),
            list_sequence: self.current().list.sequence(),
        }
    }

    fn reload(&self) -> Result<u64, GuardError> {
        let stamp = list_stamp(&self.list_path);
        // Remember what was looked at even if refused, so a periodic check
        // does not retry (and log) the same bad file every time.
        if let Ok(mut s) = self.list_stamp.lock() {
            *s = stamp;
        }
        let refuse = |e: GuardError| {
            bump(&self.counters.reload_refusals);
            tracing::warn!("umd guard: list refused: {e}");
            e
        };
        let new = load_list(&self.list_path, &self.verify_key).map_err(refuse)?;
        let cur = self.current();
        if !new.supersedes(&cur.list) || new.created() < cur.list.created() {
            return Err(refuse(GuardError::ListNotNewer {
                path: self.list_path.clone(),
                new: new.sequence(),
                new_created: new.created(),
                current: cur.list.sequence(),
                current_created: cur.list.created(),
            }));
        }
        // The list in use is always the one recorded: record it first, and
        // keep the current list if that fails (or the record forbids it).
        if let Some(path) = &self.state {
            not_a_rollback(path, &self.verify_key, &self.list_path, &new)
                .and_then(|()| record(path, &self.verify_key, &new))
                .map_err(refuse)?;
        }
        let seq = new.sequence();
        let algos = new.algorithms().into_iter().map(|(a, _)| a).collect();
        match self.list.write() {
            Ok(mut l) => *l = Arc::new(Loaded { list: new, algos }),
            Err(p) => *p.into_inner() = Arc::new(Loaded { list: new, algos }),
        }
        // Verdicts cached under the old list may not hold under the new one.
        self.invalidate_all();
        bump(&self.counters.reloads);
        tracing::info!(from = cur.list.sequence(), to = seq, "umd guard: new digest list in use");
        Ok(seq)
    }

    fn invalidate_all(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut c) = self.user_cache.lock() {
            c.clear();
        }
        if self.cache == CacheMode::Kernel {
            if let Err(e) = self.group.flush_inode_marks() {
                tracing::error!("umd guard: dropping cached verdicts (ignore marks): {e}");
            }
        }
    }

    fn invalidate(&self, fd: &OwnedFd) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        bump(&self.counters.invalidations);
        if self.cache == CacheMode::Kernel {
            if let Err(e) = self.group.unignore(fd.as_fd(), self.perm_mask) {
                tracing::error!("umd guard: dropping a cached verdict: {e}; dropping all");
                self.invalidate_all();
            }
        }
        // (The table's entries are checked against ctime anyway: this only
        // frees the entry early, and only where fstat cannot block the reader.)
        if self.local_fs {
            if let Ok(st) = FileStamp::of(fd.as_fd()) {
                if let Ok(mut c) = self.user_cache.lock() {
                    c.remove(&(st.dev, st.ino));
                }
            }
        }
    }

    /// Answers the pending event `fdnum` if nobody has: returns whether this
    /// call answered it.
    fn answer(&self, fdnum: RawFd, verdict: Verdict) -> bool {
        let p = match self.pending.lock() {
            Ok(mut p) => p.remove(&fdnum),
            Err(p) => p.into_inner().remove(&fdnum),
        };
        let Some(p) = p else { return false };
        // `p.fd` is still open here: the number cannot name another event.
        if let Err(e) = self.group.respond(fdnum, verdict == Verdict::Allow) {
            tracing::error!(fd = fdnum, pid = p.pid, "umd guard: answering the kernel: {e}");
        }
        match verdict {
            Verdict::Allow => bump(&self.counters.allowed),
            Verdict::Deny => bump(&self.counters.denied),
        }
        drop(p);
        true
    }

    fn log(&self, d: &Decision) {
        let digest = d.digest.as_deref().unwrap_or("-");
        let packages = d.packages.join(",");
        match (d.verdict, d.would_deny) {
            (Verdict::Deny, _) => tracing::warn!(
                target: "umd_guard::decision", verdict = "deny", reason = ?d.reason, path = %d.path, pid = d.pid,
                digest, event = d.event, "denied"
            ),
            (Verdict::Allow, true) => tracing::warn!(
                target: "umd_guard::decision", verdict = "allow", reason = ?d.reason, path = %d.path, pid = d.pid,
                digest, event = d.event, "allowed (audit: would deny)"
            ),
            (Verdict::Allow, false) => tracing::info!(
                target: "umd_guard::decision", verdict = "allow", reason = ?d.reason, path = %d.path, pid = d.pid,
                digest, packages = %packages, event = d.event, "allowed"
            ),
        }
        if let Some(s) = &self.sink {
            s(d);
        }
    }

    fn decision(&self, verdict: Verdict, reason: Reason, job_mask: u64, path: String, pid: i32) -> Decision {
        Decision {
            verdict,
            mode: self.mode,
            reason,
            would_deny: false,
            event: if job_mask & fanotify::OPEN_EXEC_PERM != 0 { "exec" } else { "open" },
            path,
            pid,
            digest: None,
            packages: Vec::new(),
            list_sequence: self.current().list.sequence(),
            micros: 0,
        }
    }
}

fn reader(s: &Shared, tx: SyncSender<Job>, wake: OwnedFd) {
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
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => tracing::error!("umd guard: {e}"),
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
    tracing::error!("umd guard: {why}: no longer guarding (marks removed)");
    s.failed.store(true, Ordering::SeqCst);
    if let Err(e) = s.group.flush_all_marks() {
        tracing::error!("umd guard: removing the marks: {e}");
    }
}

fn on_event(s: &Shared, tx: &SyncSender<Job>, ev: fanotify::Event) {
    if ev.mask & fanotify::Q_OVERFLOW != 0 {
        tracing::error!("umd guard: event queue overflow: dropping every cached verdict");
        s.invalidate_all();
        return;
    }
    let Some(fd) = ev.fd else { return };
    if ev.mask & s.perm_mask == 0 {
        // A write-close: in queue order, before any later exec of the file is seen.
        if ev.mask & fanotify::CLOSE_WRITE != 0 {
            s.invalidate(&fd);
        }
        return;
    }
    bump(&s.counters.events);
    let fdnum = fd.as_raw_fd();
    let excluded = ev.pid == s.self_pid || s.excluded.read().map(|v| v.contains(&ev.pid)).unwrap_or(false);
    if excluded {
        // Our own opens (a list reload, a log file) must never wait for us.
        bump(&s.counters.excluded);
        bump(&s.counters.allowed);
        if let Err(e) = s.group.respond(fdnum, true) {
            tracing::error!("umd guard: answering the kernel: {e}");
        }
        return;
    }
    // A user-space cache hit costs one fstat: answered here, without waking a
    // decider (a cross-CPU wake-up costs more than everything else together).
    if s.cache != CacheMode::Off && s.local_fs {
        let since = Instant::now();
        let seq = s.current().list.sequence();
        let hit = FileStamp::of(fd.as_fd()).ok().filter(|st| st.regular).is_some_and(|st| {
            s.user_cache
                .lock()
                .ok()
                .and_then(|c| c.get(&(st.dev, st.ino)).copied())
                .is_some_and(|e| e.stamp == st && e.list_sequence == seq)
        });
        if hit {
            bump(&s.counters.cache_hits);
            bump(&s.counters.allowed);
            if let Err(e) = s.group.respond(fdnum, true) {
                tracing::error!("umd guard: answering the kernel: {e}");
            }
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
    if let Ok(mut p) = s.pending.lock() {
        p.insert(fdnum, Pending { fd: fd.clone(), since, pid: ev.pid, mask: ev.mask });
    }
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

fn decider(s: &Shared, rx: &Mutex<Receiver<Job>>) {
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
    let epoch0 = s.epoch.load(Ordering::SeqCst);
    let loaded = s.current();
    let path = fd_path(job.fdnum);
    let mut d = s.decision(Verdict::Allow, Reason::Listed, job.mask, path, job.pid);
    d.list_sequence = loaded.list.sequence();
    if let Some(name) = &s.hang_on {
        if Path::new(&d.path).file_name() == Some(name.as_os_str()) {
            tracing::warn!(path = %d.path, "umd guard: test hook: decider hangs");
            while !s.stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    let fd = job.fd.as_fd();
    let (listed, reason) = match FileStamp::of(fd) {
        Err(_) => (false, Reason::Unreadable),
        Ok(st) if !st.regular => (true, Reason::NotRegular),
        Ok(st) => {
            let hit = s.cache != CacheMode::Off
                && s.user_cache
                    .lock()
                    .ok()
                    .and_then(|c| c.get(&(st.dev, st.ino)).copied())
                    .is_some_and(|e| e.stamp == st && e.list_sequence == loaded.list.sequence());
            if hit {
                bump(&s.counters.cache_hits);
                (true, Reason::Cached)
            } else {
                let r = check(s, &loaded, fd, st, buf, &mut d);
                if r.0 {
                    cache(s, &job, st, epoch0, &loaded);
                }
                r
            }
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
            tracing::debug!(path = %d.path, "umd guard: cached allow");
            if let Some(sink) = &s.sink {
                sink(&d);
            }
        } else {
            s.log(&d);
        }
    } else {
        bump(&s.counters.late);
        tracing::warn!(path = %d.path, verdict = ?d.verdict, "umd guard: decision after the watchdog answered; discarded");
    }
}

/// Hashes and looks up; fills the decision's digest and packages.
fn check(
    s: &Shared,
    loaded: &Loaded,
    fd: std::os::fd::BorrowedFd<'_>,
    st: FileStamp,
    buf: &mut [u8],
    d: &mut Decision,
) -> (bool, Reason) {
    let digests = match hash::hash_fd(fd, st.size, s.max_file_size, &loaded.algos, buf) {
        Ok(v) => v,
        Err(HashError::TooLarge { .. }) => return (false, Reason::TooLarge),
        Err(HashError::Changed) => return (false, Reason::Changed),
        Err(HashError::Io(_)) => return (false, Reason::Unreadable),
    };
    if let Some((algo, dg)) = digests.first() {
        d.digest =
            Some(format!("{}:{}", umd_digest_list::algo_name(*algo).to_ascii_lowercase(), hash::hex(dg)));
    }
    for (algo, dg) in &digests {
        for p in loaded.list.lookup(*algo, dg) {
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

/// Remembers an allowed verdict, unless an invalidation happened since the
/// decider started (then what it hashed may already be stale).
fn cache(s: &Shared, job: &Job, st: FileStamp, epoch0: u64, loaded: &Loaded) {
    match s.cache {
        CacheMode::Off => {}
        // Only root can write this file: a store through a shared writable
        // mapping (no modify event) needs root, who can stop the guard anyway.
        // Anyone else's file goes to the user-space table, which sees such
        // stores in ctime.
        CacheMode::Kernel if st.root_only_writable => {
            if let Err(e) = s.group.ignore(job.fd.as_fd(), s.perm_mask) {
                tracing::warn!("umd guard: caching a verdict (ignore mark): {e}");
                return;
            }
            bump(&s.counters.ignore_marks);
            // A write between our last fstat and the mark emitted its modify
            // event before the mark existed: check again, after placing it.
            let unchanged = FileStamp::of(job.fd.as_fd()).ok() == Some(st);
            if !unchanged || s.epoch.load(Ordering::SeqCst) != epoch0 {
                let _ = s.group.unignore(job.fd.as_fd(), s.perm_mask);
            }
        }
        CacheMode::User | CacheMode::Kernel => {
            if let Ok(mut c) = s.user_cache.lock() {
                if s.epoch.load(Ordering::SeqCst) == epoch0 {
                    // Bounded: a flood of distinct files costs re-hashing, not memory.
                    if c.len() >= MAX_USER_CACHE {
                        c.clear();
                    }
                    c.insert(
                        (st.dev, st.ino),
                        CacheEntry { stamp: st, list_sequence: loaded.list.sequence() },
                    );
                }
            }
        }
    }
}

fn watchdog(s: &Shared) {
    let tick = (s.deadline / 4).clamp(Duration::from_millis(1), Duration::from_millis(100));
    while !s.stop.load(Ordering::SeqCst) {
        std::thread::sleep(tick);
        let now = Instant::now();
        let expired: Vec<(RawFd, i32, u64, Arc<OwnedFd>)> = match s.pending.lock() {
            Ok(p) => p
                .iter()
                .filter(|(_, e)| now.duration_since(e.since) >= s.deadline)
                .map(|(&fd, e)| (fd, e.pid, e.mask, e.fd.clone()))
                .collect(),
            Err(_) => continue,
        };
        for (fdnum, pid, mask, fd) in expired {
            // `fd` keeps the number from being reused while we look at it.
            let path = fd_path(fdnum);
            if s.answer(fdnum, s.timeout_verdict) {
                bump(&s.counters.timeouts);
                let mut d = s.decision(s.timeout_verdict, Reason::Timeout, mask, path, pid);
                d.micros = s.deadline.as_micros() as u64;
                d.would_deny = s.timeout_verdict == Verdict::Deny;
                tracing::error!(
                    path = %d.path, pid, verdict = ?s.timeout_verdict,
                    "umd guard: no decision within {:?}: the watchdog answered", s.deadline
                );
                s.log(&d);
            }
            drop(fd);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use umd_digest_list::{Builder, SigningKey, ALGO_SHA256};

    fn list(seq: u64, key: &SigningKey) -> Vec<u8> {
        let mut b = Builder::new();
        let p = b.add_package("p-1-1.noarch", Mark::Verified);
        b.add_digest(ALGO_SHA256, &umd_digest_list::hash(ALGO_SHA256, b"x").unwrap(), p).unwrap();
        b.finish(1_700_000_000, seq, key)
    }

    #[test]
    fn load_list_verifies_the_signature_and_the_signer() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::from_bytes(&[1; 32]);
        let path = dir.path().join("l");
        std::fs::write(&path, list(4, &key)).unwrap();
        assert_eq!(load_list(&path, &key.verifying_key()).unwrap().sequence(), 4);
        let other = SigningKey::from_bytes(&[2; 32]);
        assert!(matches!(load_list(&path, &other.verifying_key()), Err(GuardError::ListInvalid { .. })));
        let mut bytes = list(4, &key);
        bytes[20] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        assert!(matches!(load_list(&path, &key.verifying_key()), Err(GuardError::ListInvalid { .. })));
        assert!(matches!(
            load_list(&dir.path().join("missing"), &key.verifying_key()),
            Err(GuardError::ListRead { .. })
        ));
    }

    #[test]
    fn bad_configurations_are_refused_before_anything_is_marked() {
        let key = SigningKey::from_bytes(&[1; 32]).verifying_key();
        let mut c = GuardConfig::new("/nonexistent".into(), key, vec![]);
        assert!(matches!(Guard::start(c.clone()), Err(GuardError::Config(_))));
        c.mounts = vec!["/tmp".into()];
        c.deciders = 0;
        assert!(matches!(Guard::start(c), Err(GuardError::Config(_))));
    }
}
