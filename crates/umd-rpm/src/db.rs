//! Reading header blobs from an rpm database (`rpmdb.sqlite`).
//!
//! The database is SQLite (rpm ≥ 4.16's default backend): table `Packages`,
//! columns `hnum` (the header number) and `blob` (the header without its magic).
//! The manager reads the table itself with SQLite, read-only, and sends each
//! blob to the handler: SQLite is a storage container the manager has to open
//! anyway, while the header inside is the untrusted format the handler parses.
//! Only the sqlite backend is read (Berkeley DB and ndb are not).

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

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
    /// SQLite failed (missing file, not a database, no `Packages` table, …).
    #[error("rpm database {path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// Why.
        source: rusqlite::Error,
    },
    /// A blob is larger than [`MAX_BLOB`].
    #[error("rpm database {path}: header {hnum} is {len} bytes, over the limit")]
    TooLarge {
        /// The database file.
        path: PathBuf,
        /// Header number.
        hnum: i64,
        /// Its size.
        len: usize,
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

/// Every header blob of the database, in header-number order.
pub fn headers(path: &Path) -> Result<Vec<(i64, Vec<u8>)>, DbError> {
    let file = sqlite_file(path);
    let err = |source| DbError::Sqlite { path: file.clone(), source };
    // Read-only; rpm may hold the database open in WAL mode, which SQLite
    // handles for readers.
    let conn = Connection::open_with_flags(
        &file,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(err)?;
    let mut stmt = conn.prepare("SELECT hnum, blob FROM Packages ORDER BY hnum").map_err(err)?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))).map_err(err)?;
    let mut out = Vec::new();
    for r in rows {
        let (hnum, blob) = r.map_err(err)?;
        if blob.len() > MAX_BLOB {
            return Err(DbError::TooLarge { path: file.clone(), hnum, len: blob.len() });
        }
        out.push((hnum, blob));
    }
    Ok(out)
}
