//! Cached verdicts: an allowed file is not hashed again until it may have
//! changed.
//!
//! Two places, chosen by [`CacheMode`]:
//! * **Kernel** — a fanotify ignore mark on the allowed inode, so its next
//!   execs never leave the kernel. The kernel clears it on the inode's next
//!   modification (no `FAN_MARK_IGNORED_SURV_MODIFY`), and the reader clears it
//!   on every write-close on the marked mounts, because a store through a
//!   shared writable mapping emits no modify event. Only for files only root
//!   can write (a non-root writer could store through a mapping between two
//!   closes); every other allowed file goes to the table.
//! * **User** — a table keyed by (device, inode), an entry valid while the
//!   file's size, ctime and mtime and the list's sequence number are unchanged
//!   (a writable-mapping store moves ctime, which no user can set back). Every
//!   exec still makes the round trip, without hashing. Bounded by
//!   [`MAX_USER_CACHE`] entries.
//!
//! Trust: everything here is keyed by what `fstat` says about a file someone
//! else controls. A verdict is cached only if nothing was invalidated while it
//! was being decided (the epoch below): what was hashed may be stale otherwise.

use std::collections::HashMap;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::config::CacheMode;
use crate::fanotify::Group;
use crate::hash::FileStamp;
use crate::stats::{bump, Counters};
use crate::LOG;

/// Entries of the user-space verdict table at most (then it starts afresh).
pub const MAX_USER_CACHE: usize = 1 << 16;

/// An allowed file, as it was when it was allowed.
#[derive(Clone, Copy)]
struct Entry {
    stamp: FileStamp,
    list_sequence: u64,
}

/// Both caches, and the epoch that tells a decider whether its verdict may
/// still be cached.
pub(crate) struct VerdictCache {
    mode: CacheMode,
    /// The permission events an ignore mark covers.
    perm_mask: u64,
    /// Every marked mount is a local filesystem whose `fstat` cannot hang
    /// (not FUSE, not NFS): only then does the reader `fstat` event files itself.
    local_fs: bool,
    table: Mutex<HashMap<(u64, u64), Entry>>,
    /// Bumped by every invalidation (write-close, overflow, new list); a decider
    /// caches a verdict only if it did not move while it decided.
    epoch: AtomicU64,
}

impl VerdictCache {
    /// Empty caches of kind `mode` for events `perm_mask`.
    pub(crate) fn new(mode: CacheMode, perm_mask: u64, local_fs: bool) -> VerdictCache {
        VerdictCache {
            mode,
            perm_mask,
            local_fs,
            table: Mutex::new(HashMap::new()),
            epoch: AtomicU64::new(0),
        }
    }

    /// Whether the reader may look a file up itself: a hit then costs one
    /// `fstat` and no decider wake-up (a cross-CPU wake-up costs more than
    /// everything else together). Not where `fstat` could block the reader.
    pub(crate) fn reader_may_look_up(&self) -> bool {
        self.mode != CacheMode::Off && self.local_fs
    }

    /// Where the decisions stand: read before deciding, handed back to
    /// [`remember`](VerdictCache::remember).
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Whether the table holds an allow for this very version of the file
    /// under the list numbered `list_sequence`.
    pub(crate) fn hit(&self, st: &FileStamp, list_sequence: u64) -> bool {
        self.mode != CacheMode::Off
            && self
                .table
                .lock()
                .ok()
                .and_then(|c| c.get(&(st.dev, st.ino)).copied())
                .is_some_and(|e| e.stamp == *st && e.list_sequence == list_sequence)
    }

    /// Remembers an allowed verdict for the file behind `fd` (as `st` saw it),
    /// unless an invalidation happened since `epoch0` (then what the decider
    /// hashed may already be stale).
    pub(crate) fn remember(
        &self,
        group: &Group,
        counters: &Counters,
        fd: BorrowedFd<'_>,
        st: FileStamp,
        epoch0: u64,
        list_sequence: u64,
    ) {
        match self.mode {
            CacheMode::Off => {}
            // Only root can write this file: a store through a shared writable
            // mapping (no modify event) needs root, who can stop the guard anyway.
            // Anyone else's file goes to the user-space table, which sees such
            // stores in ctime.
            CacheMode::Kernel if st.root_only_writable => {
                if let Err(e) = group.ignore(fd, self.perm_mask) {
                    tracing::warn!(target: LOG, "umd guard: caching a verdict (ignore mark): {e}");
                    return;
                }
                bump(&counters.ignore_marks);
                // A write between our last fstat and the mark emitted its modify
                // event before the mark existed: check again, after placing it.
                let unchanged = FileStamp::of(fd).ok() == Some(st);
                if !unchanged || self.epoch() != epoch0 {
                    let _ = group.unignore(fd, self.perm_mask);
                }
            }
            CacheMode::User | CacheMode::Kernel => {
                if let Ok(mut c) = self.table.lock() {
                    if self.epoch() == epoch0 {
                        // Bounded: a flood of distinct files costs re-hashing, not memory.
                        if c.len() >= MAX_USER_CACHE {
                            c.clear();
                        }
                        c.insert((st.dev, st.ino), Entry { stamp: st, list_sequence });
                    }
                }
            }
        }
    }

    /// Forgets the verdict for the file behind `fd`, which was just closed
    /// after a write.
    pub(crate) fn invalidate(&self, group: &Group, counters: &Counters, fd: BorrowedFd<'_>) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        bump(&counters.invalidations);
        if self.mode == CacheMode::Kernel {
            if let Err(e) = group.unignore(fd, self.perm_mask) {
                tracing::error!(target: LOG, "umd guard: dropping a cached verdict: {e}; dropping all");
                self.invalidate_all(group);
            }
        }
        // (The table's entries are checked against ctime anyway: this only
        // frees the entry early, and only where fstat cannot block the reader.)
        if self.local_fs {
            if let Ok(st) = FileStamp::of(fd) {
                if let Ok(mut c) = self.table.lock() {
                    c.remove(&(st.dev, st.ino));
                }
            }
        }
    }

    /// Forgets every verdict (a new list, a lost event).
    pub(crate) fn invalidate_all(&self, group: &Group) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut c) = self.table.lock() {
            c.clear();
        }
        if self.mode == CacheMode::Kernel {
            if let Err(e) = group.flush_inode_marks() {
                tracing::error!(target: LOG, "umd guard: dropping cached verdicts (ignore marks): {e}");
            }
        }
    }
}
