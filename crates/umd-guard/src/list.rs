//! The digest list: read with a bound, verified, swapped in only when newer,
//! never rolled back.
//!
//! Trust: the list file is hostile until its Ed25519 signature verifies
//! ([`umd_digest_list::DigestList::open`] checks the signature, then the
//! structure). Whoever can write where it lives can replace it, so the guard
//! reads at most [`MAX_LIST_BYTES`] and uses nothing from a list that does not
//! verify under the configured key. A validly signed *old* list is the
//! remaining attack: a reload swaps in only a list with a larger sequence number
//! (and no earlier creation time), and the state file ([`crate::state`]) makes
//! that hold across restarts.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use umd_digest_list::{DigestList, HashAlgo, VerifyingKey};

use crate::error::GuardError;
use crate::hash::FileStamp;
use crate::state;

/// Bound on a digest list the guard reads (the format allows 4 GiB; a guard
/// holding that in memory would be a problem of its own).
pub const MAX_LIST_BYTES: u64 = 1 << 30;

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

/// A verified list in use, with what the deciders need precomputed.
pub(crate) struct Loaded {
    /// The list.
    pub(crate) list: DigestList,
    /// The algorithms it has a table for, in its order (the first one names
    /// the digest in a [`Decision`](crate::Decision)).
    pub(crate) algos: Vec<HashAlgo>,
}

impl Loaded {
    fn new(list: DigestList) -> Loaded {
        let algos = list.algorithms().into_iter().map(|(a, _)| a).collect();
        Loaded { list, algos }
    }
}

/// The list file's identity, to notice a replacement without reading it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct ListStamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
}

/// The stamp of the file at `path`, `None` if it cannot be `stat`ed. Not its
/// ctime: a `chmod` or `chown` of the list is no reason to read it again.
fn list_stamp(path: &Path) -> Option<ListStamp> {
    let st = FileStamp::of_path(path).ok()?;
    Some(ListStamp { dev: st.dev, ino: st.ino, size: st.size, mtime: st.mtime })
}

/// A list swapped in by [`Lists::reload`].
pub(crate) struct Swapped {
    /// Sequence number of the list it replaced.
    pub(crate) from: u64,
    /// Sequence number of the list now in use.
    pub(crate) to: u64,
}

/// The list in use and where it comes from: the file, its signer, and the
/// state file that remembers the last list accepted.
pub(crate) struct Lists {
    path: PathBuf,
    key: VerifyingKey,
    state: Option<PathBuf>,
    current: RwLock<Arc<Loaded>>,
    /// The file as last read (accepted or not). Its lock is also held for a
    /// whole reload, so two reloads never interleave.
    stamp: Mutex<Option<ListStamp>>,
}

impl Lists {
    /// The list `list`, just read from `path` and verified under `key`, about
    /// to be used: refused if the state file records a newer one (a rollback).
    pub(crate) fn new(
        path: &Path,
        key: VerifyingKey,
        state: Option<&Path>,
        list: DigestList,
    ) -> Result<Lists, GuardError> {
        if let Some(state) = state {
            not_a_rollback(state, &key, path, &list)?;
        }
        Ok(Lists {
            path: path.to_owned(),
            key,
            state: state.map(Path::to_owned),
            stamp: Mutex::new(list_stamp(path)),
            current: RwLock::new(Arc::new(Loaded::new(list))),
        })
    }

    /// The list in use (a reload swaps it; holders keep the one they took).
    pub(crate) fn current(&self) -> Arc<Loaded> {
        match self.current.read() {
            Ok(l) => l.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Records the list in use in the state file, if there is one (done once
    /// the guard runs, so a guard that failed to start records nothing).
    pub(crate) fn record_current(&self) -> Result<(), GuardError> {
        match &self.state {
            Some(path) => record(path, &self.key, &self.current().list),
            None => Ok(()),
        }
    }

    /// Whether the file was replaced or changed (device, inode, size or mtime)
    /// since it was last read.
    pub(crate) fn changed(&self) -> bool {
        let now = list_stamp(&self.path);
        now.is_some() && *self.stamp.lock().unwrap_or_else(PoisonError::into_inner) != now
    }

    /// Reads the file again and swaps it in if it verifies, supersedes the list
    /// in use (larger sequence number, not older) and is not a rollback by the
    /// state file, which records it first. Otherwise the list in use stays.
    pub(crate) fn reload(&self) -> Result<Swapped, GuardError> {
        let mut stamp = self.stamp.lock().unwrap_or_else(PoisonError::into_inner);
        // Remember what was looked at even if refused, so a periodic check
        // does not retry (and log) the same bad file every time.
        *stamp = list_stamp(&self.path);
        let new = load_list(&self.path, &self.key)?;
        let cur = self.current();
        if !new.supersedes(&cur.list) || new.created() < cur.list.created() {
            return Err(GuardError::ListNotNewer {
                path: self.path.clone(),
                new: new.sequence(),
                new_created: new.created(),
                current: cur.list.sequence(),
                current_created: cur.list.created(),
            });
        }
        // The list in use is always the one recorded: record it first, and
        // keep the current list if that fails (or the record forbids it).
        if let Some(path) = &self.state {
            not_a_rollback(path, &self.key, &self.path, &new)?;
            record(path, &self.key, &new)?;
        }
        let to = new.sequence();
        let loaded = Arc::new(Loaded::new(new));
        match self.current.write() {
            Ok(mut l) => *l = loaded,
            Err(p) => *p.into_inner() = loaded,
        }
        drop(stamp);
        Ok(Swapped { from: cur.list.sequence(), to })
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use umd_digest_list::{Builder, Digest, Mark, SigningKey};

    fn list(seq: u64, key: &SigningKey) -> Vec<u8> {
        list_at(seq, 1_700_000_000, key)
    }

    fn list_at(seq: u64, created: u64, key: &SigningKey) -> Vec<u8> {
        let mut b = Builder::new();
        let p = b.add_package("p-1-1.noarch", Mark::Verified);
        b.add_digest(&Digest::of(HashAlgo::Sha256, b"x"), p).unwrap();
        b.finish(created, seq, key)
    }

    /// A directory holding a list numbered 4 at `l`, and its signing key.
    fn lab() -> (tempfile::TempDir, SigningKey, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::from_bytes(&[1; 32]);
        let path = dir.path().join("l");
        std::fs::write(&path, list(4, &key)).unwrap();
        (dir, key, path)
    }

    #[test]
    fn load_list_verifies_the_signature_and_the_signer() {
        let (dir, key, path) = lab();
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

    /// The list at `path`, opened as a guard's start would.
    fn lists(path: &Path, key: &SigningKey, state: Option<&Path>) -> Result<Lists, GuardError> {
        Lists::new(path, key.verifying_key(), state, load_list(path, &key.verifying_key())?)
    }

    #[test]
    fn a_reload_swaps_in_only_a_newer_list_and_a_refused_file_is_not_read_twice() {
        let (_dir, key, path) = lab();
        let l = lists(&path, &key, None).unwrap();
        assert!(!l.changed());
        // The same sequence number, or a larger one created earlier: refused.
        for bytes in [list(4, &key), list_at(5, 1_600_000_000, &key)] {
            std::fs::write(&path, bytes).unwrap();
            assert!(matches!(l.reload(), Err(GuardError::ListNotNewer { .. })));
            assert_eq!(l.current().list.sequence(), 4);
            assert!(!l.changed(), "a refused file counts as read");
        }
        std::fs::write(&path, list(6, &key)).unwrap();
        let s = l.reload().unwrap();
        assert_eq!((s.from, s.to, l.current().list.sequence()), (4, 6, 6));
        assert_eq!(l.current().algos, [HashAlgo::Sha256]);
    }

    #[test]
    fn the_state_file_refuses_a_rollback_at_start_and_on_reload() {
        let (dir, key, path) = lab();
        let state = dir.path().join("guard.state");
        std::fs::write(&path, list(7, &key)).unwrap();
        let l = lists(&path, &key, Some(&state)).unwrap();
        assert!(!state.exists(), "recorded once the guard runs, not before");
        l.record_current().unwrap();
        assert_eq!(state::load(&state).unwrap().map(|r| r.sequence), Some(7));
        // A restart with an older list is refused.
        std::fs::write(&path, list(6, &key)).unwrap();
        assert!(matches!(lists(&path, &key, Some(&state)), Err(GuardError::Rollback { recorded: 7, .. })));
        // A reload is refused if the record moved past the new list (another
        // guard with the same state file accepted a newer one).
        std::fs::write(&path, list(8, &key)).unwrap();
        state::store(
            &state,
            &state::Record { key: *key.verifying_key().as_bytes(), sequence: 9, created: 0 },
        )
        .unwrap();
        assert!(matches!(l.reload(), Err(GuardError::Rollback { recorded: 9, .. })));
        assert_eq!(l.current().list.sequence(), 7);
        // A newer one is recorded before it is used.
        std::fs::write(&path, list(10, &key)).unwrap();
        assert_eq!(l.reload().unwrap().to, 10);
        assert_eq!(state::load(&state).unwrap().map(|r| r.sequence), Some(10));
    }
}
