//! Reading header blobs from an rpm database (`rpmdb.sqlite`), through the
//! handler.
//!
//! The database is SQLite (rpm ≥ 4.16's default backend): table `Packages`,
//! columns `hnum` (the header number) and `blob` (the header without its magic).
//! SQLite is a large parser of a format that can come from anywhere (a
//! container image, a backup, a mounted disk), so the manager does not open it:
//! it copies the file into a sealed memfd and the sandboxed `rpm` handler opens
//! that with SQLite, from memory ([`RpmDriver::db_blobs`]). The blobs that come
//! back are untrusted bytes, each then described and checked like any header.
//! Only the sqlite backend is read (Berkeley DB and ndb are not).

use std::io::Read;
use std::path::{Path, PathBuf};

use umd::SealedMemfd;
use umd_rpm_wire::{Command, DbBlob};

use crate::driver::{DescribeError, RpmDriver, MAX_DATABASE};

/// The usual database directory (rpm's compiled-in `%_dbpath` on most
/// distributions; Debian's rpm says `~/.rpmdb`, see [`default_dbpath`]).
pub const DEFAULT_DBPATH: &str = "/var/lib/rpm";

/// The database rpm itself uses: `rpm --eval %{_dbpath}` if rpm is installed
/// and answers with an absolute path, else [`DEFAULT_DBPATH`].
pub fn default_dbpath() -> PathBuf {
    let asked = std::process::Command::new("rpm")
        .args(["--eval", "%{_dbpath}"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| PathBuf::from(s.trim()))
        .filter(|p| p.is_absolute());
    asked.unwrap_or_else(|| PathBuf::from(DEFAULT_DBPATH))
}

/// Largest header blob read from the database.
pub const MAX_BLOB: usize = umd_rpm_wire::MAX_INPUT;

/// Why the database could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The file could not be read.
    #[error("rpm database {path}: {source}")]
    Io {
        /// The database file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Larger than [`MAX_DATABASE`].
    #[error("rpm database {path}: {len} bytes, over the {MAX_DATABASE}-byte limit")]
    TooLarge {
        /// The database file.
        path: PathBuf,
        /// Its size.
        len: u64,
    },
    /// Changes are waiting in the write-ahead log beside the database: the
    /// file alone is not the database's current state.
    #[error(
        "rpm database {path}: {wal} holds {len} bytes of changes not yet in the database (rpm is \
         running, or stopped uncleanly): let rpm finish (or run an rpm query as root), then retry"
    )]
    Wal {
        /// The database file.
        path: PathBuf,
        /// The log.
        wal: PathBuf,
        /// Its size.
        len: u64,
    },
    /// The handler could not open it (not SQLite, no `Packages` table, a
    /// malformed file) or lied about it.
    #[error("rpm database {path}: {source}")]
    Handler {
        /// The database file.
        path: PathBuf,
        /// Why (boxed: the driver's errors are large, this one is rare).
        source: Box<DescribeError>,
    },
}

/// The `rpmdb.sqlite` file for a path: the file itself, or inside a directory.
pub fn sqlite_file(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join("rpmdb.sqlite")
    } else {
        path.to_path_buf()
    }
}

/// Copies the database file into a sealed memfd, after the command byte,
/// without holding it on the heap. SQLite opens an image from memory only in
/// rollback-journal mode, so the copy is marked so: bytes 18 and 19 of the
/// file header (the write and read format versions: 2 for WAL, 1 for a
/// rollback journal) become 1 when they are 2. That changes how SQLite would
/// write the copy, not what its tables hold; nothing else is looked at here.
fn memfd_of(file: &Path) -> Result<SealedMemfd, DbError> {
    let io = |source| DbError::Io { path: file.to_path_buf(), source };
    let mut f = std::fs::File::open(file).map_err(io)?;
    let len = f.metadata().map_err(io)?.len();
    if len > MAX_DATABASE {
        return Err(DbError::TooLarge { path: file.to_path_buf(), len });
    }
    let wal = PathBuf::from(format!("{}-wal", file.display()));
    if let Ok(m) = std::fs::metadata(&wal) {
        if m.len() > 0 {
            return Err(DbError::Wal { path: file.to_path_buf(), wal, len: m.len() });
        }
    }
    let size = usize::try_from(len).map_err(|_| DbError::TooLarge { path: file.to_path_buf(), len })?;
    let mut read = Ok(());
    let memfd = SealedMemfd::build(c"umd-rpmdb", size + 1, |buf| {
        buf[0] = Command::DbBlobs as u8;
        read = f.read_exact(&mut buf[1..]);
        if buf.len() > 20 && buf[1..17] == *b"SQLite format 3\0" && buf[19..21] == [2, 2] {
            buf[19] = 1;
            buf[20] = 1;
        }
    })
    .map_err(io)?;
    read.map_err(io)?;
    Ok(memfd)
}

/// Every header blob of the database at `path` (a directory holding
/// `rpmdb.sqlite`, or the file), in header-number order, as the handler reads
/// them.
pub fn headers(driver: &RpmDriver, path: &Path) -> Result<Vec<DbBlob>, DbError> {
    let file = sqlite_file(path);
    let memfd = memfd_of(&file)?;
    let blobs = driver
        .db_blobs(&memfd)
        .map_err(|source| DbError::Handler { path: file.clone(), source: Box::new(source) })?;
    // The handler's bound, checked again: a blob is an untrusted header that
    // must still fit a describe request.
    if let Some(b) = blobs.iter().find(|b| b.blob.len() > MAX_BLOB) {
        let source = DescribeError::TooLarge(b.blob.len());
        return Err(DbError::Handler { path: file, source: Box::new(source) });
    }
    Ok(blobs)
}
