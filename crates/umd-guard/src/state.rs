//! The guard's memory across restarts: the last digest list it accepted.
//!
//! Reloads only swap in a list with a larger sequence number, but a guard
//! that restarts has forgotten its list: without a record, whoever can put an
//! older validly signed list in place (an old backup, a replayed download) and
//! get the guard restarted would roll it back — re-allowing programs a newer
//! list dropped. So the guard records the signer and the sequence number of
//! each list it accepts in a small file, and refuses, at start as on reload, a
//! list whose sequence is lower than the record.
//!
//! * A **missing** file is a first run: the list is accepted and recorded.
//! * An **unreadable or corrupt** file is an error naming the file (the guard
//!   does not start; a reload is refused), never a silent reset: resetting is
//!   exactly what an attacker would want. Removing the file is the
//!   administrator's explicit decision.
//! * A record for **another signing key** is an error too (the lists of a new
//!   key start their own sequence): remove the file when the key was replaced.
//!
//! Trust: the file is the guard's own (root-owned, in `/var/lib/umd`), but it
//! is read as untrusted text: at most 4 KiB, exactly four lines, digits only
//! where numbers go, anything else an error naming the file.
//!
//! The file is written atomically: a temporary file in the same directory,
//! written and fsynced, renamed over the old one, then the directory fsynced
//! (rename(2) is atomic; the fsyncs make the new record survive a crash).
//!
//! Format (text, one field a line):
//!
//! ```text
//! umd-guard-state 1
//! key 5a5a…(64 hex digits: the Ed25519 public key the lists are signed with)
//! sequence 7
//! created 1700000000
//! ```

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use umd_hash::Hex;

/// Where `umd guard` (and `umd serve --guard-*`) keep it by default.
pub const DEFAULT_PATH: &str = "/var/lib/umd/guard.state";

/// The state file is small; anything larger is not one.
const MAX_LEN: u64 = 4096;
const MAGIC: &str = "umd-guard-state 1";

/// What the guard remembers of the last list it accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    /// The public key the list was signed with.
    pub key: [u8; 32],
    /// The list's sequence number.
    pub sequence: u64,
    /// The list's creation time (seconds since the epoch; informational).
    pub created: u64,
}

/// Why the state file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// It exists but cannot be read.
    #[error("state file {path}: cannot read it: {source} (the guard does not start over without it)")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// It is not a state file.
    #[error(
        "state file {path} is corrupt: {why}. Refusing to guess the last accepted list; if the file \
         is beyond repair, remove it (the next list is then accepted as on a first run)"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// It records lists of another signing key.
    #[error(
        "state file {path} records lists signed by key {recorded}, but the guard verifies with {configured}; \
         if the signing key was replaced, remove the file"
    )]
    OtherKey {
        /// The file.
        path: PathBuf,
        /// The key it records (hex).
        recorded: String,
        /// The configured key (hex).
        configured: String,
    },
    /// It could not be written.
    #[error("state file {path}: cannot record the list: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

fn unhex32(s: &str) -> Option<[u8; 32]> {
    umd_hash::unhex(s.as_bytes())?.try_into().ok()
}

impl Record {
    fn encode(&self) -> String {
        format!("{MAGIC}\nkey {}\nsequence {}\ncreated {}\n", Hex(&self.key), self.sequence, self.created)
    }

    fn decode(text: &str) -> Result<Record, String> {
        let lines: Vec<&str> = text.split_terminator('\n').collect();
        let [magic, key, sequence, created] = lines.as_slice() else {
            return Err(format!("expected 4 lines, found {}", lines.len()));
        };
        if *magic != MAGIC {
            return Err(format!("first line is not '{MAGIC}'"));
        }
        if !text.ends_with('\n') {
            return Err("truncated (no final line ending)".into());
        }
        let field = |line: &str, name: &str| -> Result<String, String> {
            line.strip_prefix(name)
                .and_then(|v| v.strip_prefix(' '))
                .map(str::to_string)
                .ok_or_else(|| format!("expected '{name} …', found {line:?}"))
        };
        let number = |line: &str, name: &str| -> Result<u64, String> {
            let v = field(line, name)?;
            // Digits only: no sign, no blanks, no leading '+'.
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("{name} is not a number: {v:?}"));
            }
            v.parse().map_err(|_| format!("{name} is out of range: {v:?}"))
        };
        let key = unhex32(&field(key, "key")?).ok_or("key is not 64 hex digits")?;
        Ok(Record { key, sequence: number(sequence, "sequence")?, created: number(created, "created")? })
    }
}

/// Reads the record at `path`: `None` when the file does not exist (a first
/// run); an error, naming the file, when it cannot be read or is not a state
/// file.
pub fn load(path: &Path) -> Result<Option<Record>, StateError> {
    let read = |source| StateError::Read { path: path.to_owned(), source };
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(read(e)),
    };
    let mut bytes = Vec::new();
    f.take(MAX_LEN + 1).read_to_end(&mut bytes).map_err(read)?;
    let corrupt = |why: String| StateError::Corrupt { path: path.to_owned(), why };
    if bytes.len() as u64 > MAX_LEN {
        return Err(corrupt(format!("larger than {MAX_LEN} bytes")));
    }
    let text = String::from_utf8(bytes).map_err(|_| corrupt("not text".into()))?;
    Record::decode(&text).map(Some).map_err(corrupt)
}

/// Checks `record` against the configured signing key.
pub fn check_key(path: &Path, record: &Record, key: &[u8; 32]) -> Result<(), StateError> {
    if &record.key != key {
        return Err(StateError::OtherKey {
            path: path.to_owned(),
            recorded: Hex(&record.key).to_string(),
            configured: Hex(key).to_string(),
        });
    }
    Ok(())
}

/// Writes `record` to `path` atomically (temporary file, fsync, rename, fsync
/// of the directory). The directory is created if missing (mode 0755).
pub fn store(path: &Path, record: &Record) -> Result<(), StateError> {
    let write = |source| StateError::Write { path: path.to_owned(), source };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(write)?;
    let name = path.file_name().ok_or_else(|| write(std::io::Error::other("the path names no file")))?;
    let tmp = dir.join(format!(".{}.{}.tmp", name.to_string_lossy(), std::process::id()));
    // A leftover of a crash with this pid: it is ours to replace.
    let _ = std::fs::remove_file(&tmp);
    let result = (|| {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o644).open(&tmp)?;
        f.write_all(record.encode().as_bytes())?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(write)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(sequence: u64) -> Record {
        Record { key: [0x5a; 32], sequence, created: 1_700_000_000 }
    }

    #[test]
    fn a_record_round_trips_through_its_file_and_a_missing_file_is_a_first_run() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/guard.state");
        assert!(load(&path).unwrap().is_none());
        store(&path, &record(7)).unwrap();
        assert_eq!(load(&path).unwrap(), Some(record(7)));
        store(&path, &record(8)).unwrap();
        assert_eq!(load(&path).unwrap(), Some(record(8)));
        // No temporary file left behind.
        let names: Vec<_> =
            std::fs::read_dir(dir.path().join("sub")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["guard.state"]);
    }

    #[test]
    fn a_corrupt_file_is_an_error_naming_it_never_a_first_run() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("guard.state");
        let good = record(3).encode();
        for bad in [
            String::new(),
            "garbage".into(),
            good.replace("umd-guard-state 1", "umd-guard-state 2"),
            good.replace("sequence 3", "sequence -3"),
            good.replace("sequence 3", "sequence 3x"),
            good.replace("sequence 3", "sequence  3"),
            good.replace("sequence 3", "sequence 99999999999999999999999"),
            good.replace("key 5a", "key 5g"),
            good.trim_end().to_string(),
            format!("{good}extra\n"),
            "\u{0}".repeat(5000),
        ] {
            std::fs::write(&path, &bad).unwrap();
            match load(&path) {
                Err(e @ StateError::Corrupt { .. }) => {
                    assert!(e.to_string().contains(path.to_str().unwrap()))
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        std::fs::write(&path, [0xff, 0xfe]).unwrap();
        assert!(matches!(load(&path), Err(StateError::Corrupt { .. })));
    }

    #[test]
    fn an_unreadable_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the file should be: it exists and cannot be read as one.
        let path = dir.path().join("guard.state");
        std::fs::create_dir(&path).unwrap();
        assert!(matches!(load(&path), Err(StateError::Read { .. })));
        assert!(matches!(store(&path, &record(1)), Err(StateError::Write { .. })));
    }

    #[test]
    fn a_record_of_another_key_is_refused() {
        let p = Path::new("/x/guard.state");
        assert!(check_key(p, &record(1), &[0x5a; 32]).is_ok());
        let e = check_key(p, &record(1), &[0x11; 32]).unwrap_err();
        assert!(e.to_string().contains("/x/guard.state") && e.to_string().contains("1111"), "{e}");
    }
}
