//! A running guard: starting it, what its threads share, reloading, stopping.
//!
//! [`Guard::start`] checks the configuration, reads and verifies the list,
//! refuses a mark on the root mount unless asked, creates the fanotify group,
//! marks the mounts and starts the threads — the reader ([`crate::reader`]),
//! the deciders ([`crate::decider`]) and the watchdog ([`crate::pending`]) —
//! which share one [`Shared`]. [`Guard::stop`] (or dropping the guard) removes
//! the marks first, so no new event comes, then answers what is left.
//!
//! Trust: trusted. The caller's configuration and the guard's own state; the
//! hostile inputs are handled by the modules named above.

use std::os::fd::{OwnedFd, RawFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::cache::VerdictCache;
use crate::config::{CacheMode, GuardConfig, Mode, Verdict};
use crate::decider::{decider, Job};
use crate::decision::{Decision, DecisionSink, Reason};
use crate::error::GuardError;
use crate::fanotify::{self, Group, MarkScope};
use crate::list::{load_list, Lists};
use crate::pending::{watchdog, PendingTable};
use crate::reader::reader;
use crate::stats::{bump, Counters, Stats};
use crate::LOG;

/// A running guard. [`stop`](Guard::stop) it, or drop it (same thing).
pub struct Guard {
    shared: Arc<Shared>,
    wake: Option<OwnedFd>,
    threads: Vec<JoinHandle<()>>,
}

/// What the reader, the deciders, the watchdog and the [`Guard`] share.
pub(crate) struct Shared {
    pub(crate) group: Group,
    pub(crate) mode: Mode,
    /// The permission events answered (exec, and open with `open_perm`).
    pub(crate) perm_mask: u64,
    pub(crate) max_file_size: u64,
    pub(crate) deadline: Duration,
    pub(crate) timeout_verdict: Verdict,
    pub(crate) lists: Lists,
    pub(crate) cache: VerdictCache,
    pub(crate) pending: PendingTable,
    pub(crate) counters: Counters,
    pub(crate) self_pid: i32,
    pub(crate) excluded: RwLock<Vec<i32>>,
    pub(crate) stop: AtomicBool,
    /// The reader gave up: marks removed, nothing is guarded.
    pub(crate) failed: AtomicBool,
    pub(crate) sink: Option<DecisionSink>,
    /// Test hook: deciders hang on files of this name.
    #[cfg(feature = "test-hooks")]
    pub(crate) hang_on: Option<std::ffi::OsString>,
}

impl Guard {
    /// Loads and verifies the list, creates the fanotify group, marks the
    /// mounts and starts the threads. When it returns, every exec on the marked
    /// mounts is checked.
    pub fn start(config: GuardConfig) -> Result<Guard, GuardError> {
        config.check()?;
        let list = load_list(&config.list_path, &config.verify_key)?;
        for m in &config.mounts {
            if root_check(m, config.scope)? && !config.allow_root_mount {
                let what = if config.scope == MarkScope::Mount { "mount" } else { "filesystem" };
                return Err(GuardError::RootMount { path: m.clone(), what });
            }
        }
        // Not older than the last list accepted; recorded once the guard runs.
        let lists = Lists::new(&config.list_path, config.verify_key, config.state.as_deref(), list)?;
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
            perm_mask,
            max_file_size: config.max_file_size,
            deadline: config.deadline,
            timeout_verdict: config.timeout_verdict,
            lists,
            cache: VerdictCache::new(config.cache, perm_mask, config.mounts.iter().all(|m| local_fs(m))),
            pending: PendingTable::default(),
            counters: Counters::default(),
            self_pid: rustix::process::getpid().as_raw_nonzero().get(),
            excluded: RwLock::new(config.exclude_pids.clone()),
            stop: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            sink: config.sink.clone(),
            #[cfg(feature = "test-hooks")]
            hang_on: config.test_hang_on.clone(),
        });
        let (wake_r, wake_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
            .map_err(|e| GuardError::Init(e.into()))?;
        let mut guard = Guard { shared: shared.clone(), wake: Some(wake_w), threads: Vec::new() };
        let (tx, rx) = sync_channel::<Job>(config.queue_len);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..config.deciders {
            let rx = rx.clone();
            guard.spawn(format!("guard-decider-{i}"), "decider", move |s| decider(s, &rx))?;
        }
        guard.spawn("guard-watchdog".into(), "watchdog", watchdog)?;
        guard.spawn("guard-reader".into(), "reader", move |s| reader(s, tx, wake_r))?;
        if config.scope == MarkScope::Mount {
            warn_if_not_init_mount_namespace();
        }
        // Dropping `guard` on this error stops it (marks first).
        shared.lists.record_current()?;
        let current = shared.lists.current();
        tracing::info!(
            target: LOG,
            mounts = ?config.mounts, mode = ?config.mode, cache = ?config.cache, open_perm = config.open_perm,
            list = %config.list_path.display(), sequence = current.list.sequence(),
            digests = current.list.len(), "umd guard: watching"
        );
        Ok(guard)
    }

    /// Starts the thread `name` running `f` on the shared state (`what` names
    /// it in the error).
    fn spawn(
        &mut self,
        name: String,
        what: &'static str,
        f: impl FnOnce(&Shared) + Send + 'static,
    ) -> Result<(), GuardError> {
        let s = self.shared.clone();
        let h = std::thread::Builder::new()
            .name(name)
            .spawn(move || f(&s))
            .map_err(|e| GuardError::Thread(what, e))?;
        self.threads.push(h);
        Ok(())
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
        if self.shared.lists.changed() {
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
            tracing::error!(target: LOG, "umd guard: removing the marks: {e}");
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
        for fd in self.shared.pending.fds() {
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
                tracing::error!(target: LOG, "umd guard: a decider did not stop within 2 s; left behind");
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
    /// Answers the pending event `fdnum` if nobody has: returns whether this
    /// call answered it.
    pub(crate) fn answer(&self, fdnum: RawFd, verdict: Verdict) -> bool {
        self.pending.answer(&self.group, &self.counters, fdnum, verdict)
    }

    /// A decision under the list in use (see [`Decision::new`]).
    pub(crate) fn decision(
        &self,
        verdict: Verdict,
        reason: Reason,
        mask: u64,
        path: String,
        pid: i32,
    ) -> Decision {
        Decision::new(verdict, self.mode, reason, mask, path, pid, self.lists.current().list.sequence())
    }

    /// Logs `d` and gives it to the caller's sink.
    pub(crate) fn log(&self, d: &Decision) {
        d.report(self.sink.as_ref());
    }

    fn stats(&self) -> Stats {
        self.counters.snapshot(self.lists.current().list.sequence())
    }

    fn reload(&self) -> Result<u64, GuardError> {
        match self.lists.reload() {
            Ok(swapped) => {
                // Verdicts cached under the old list may not hold under the new one.
                self.cache.invalidate_all(&self.group);
                bump(&self.counters.reloads);
                tracing::info!(
                    target: LOG, from = swapped.from, to = swapped.to, "umd guard: new digest list in use"
                );
                Ok(swapped.to)
            }
            Err(e) => {
                bump(&self.counters.reload_refusals);
                tracing::warn!(target: LOG, "umd guard: list refused: {e}");
                Err(e)
            }
        }
    }
}

/// Whether `path` is on the root mount (mount marks) or the root filesystem
/// (filesystem marks): a mark there guards every program of the system.
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

/// Mount marks guard only the processes that see these mounts: says so when
/// this process is not in PID 1's mount namespace (a service unit with
/// `PrivateTmp=`, `ProtectSystem=`, ... runs in one of its own).
fn warn_if_not_init_mount_namespace() {
    let ns = |p: &str| std::fs::read_link(p).ok();
    let (ours, init) = (ns("/proc/self/ns/mnt"), ns("/proc/1/ns/mnt"));
    if ours.is_some() && init.is_some() && ours != init {
        tracing::warn!(
            target: LOG,
            "umd guard: this process is in another mount namespace than PID 1: mount marks \
             guard only processes that see these mounts (use filesystem marks to guard all)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use umd_digest_list::SigningKey;

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
