//! The rpm database (`rpmdb.sqlite`), opened with SQLite from memory.
//!
//! rpm ≥ 4.16 keeps its database in SQLite: table `Packages`, columns `hnum`
//! (the header number) and `blob` (the header without its magic). The manager
//! sends the file whole, in a sealed memfd; SQLite reads it in place (its
//! in-memory database, `sqlite3_deserialize`, read-only) with the settings
//! SQLite recommends for databases from elsewhere: defensive mode, no trusted
//! schema, cell size checks, temporary tables in memory. Nothing here opens a
//! file — the sandbox would not let it — and every blob goes back to the
//! manager as untrusted bytes, to be described and checked like any header.

use rusqlite::{ffi, Connection};
use umd_rpm_wire::{DbBlob, DbBlobs, MAX_INPUT};

/// The first 16 bytes of every SQLite database file.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// Opens `db` (an `rpmdb.sqlite` image) and appends its encoded [`DbBlobs`]
/// to `out`.
pub fn blobs(db: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    let headers = read(db)?;
    let bytes = DbBlobs { headers }.encode().map_err(|e| format!("encoding the blobs: {e}"))?;
    let max = DbBlobs::max_reply(db.len());
    if bytes.len() > max {
        return Err(format!(
            "the blobs take {} bytes, more than the {}-byte database holds",
            bytes.len(),
            db.len()
        ));
    }
    out.extend_from_slice(&bytes);
    Ok(())
}

/// Every header blob of the database image `db`, in header-number order.
pub fn read(db: &[u8]) -> Result<Vec<DbBlob>, String> {
    if db.len() < 100 || db[..16] != SQLITE_MAGIC[..] {
        return Err("not an SQLite database (no SQLite header)".into());
    }
    // Bytes 18 and 19: the file format's write and read versions, 1 for a
    // rollback journal, 2 for WAL. SQLite opens an image from memory only in
    // rollback mode; the manager marks the copy it sends so.
    if (db[18], db[19]) != (1, 1) {
        return Err(format!(
            "database in journal mode {}/{} (the manager sends rollback mode, 1/1)",
            db[18], db[19]
        ));
    }
    let sqlite = |e: rusqlite::Error| format!("rpm database: {e}");
    let conn = Connection::open_in_memory().map_err(sqlite)?;
    let len = i64::try_from(db.len()).map_err(|_| "database too large")?;
    // SAFETY: `conn` is a live connection and "main" a NUL-terminated schema
    // name. SQLite reads the `len` bytes at `db` in place: without
    // SQLITE_DESERIALIZE_FREEONCLOSE it never frees them, and with
    // SQLITE_DESERIALIZE_READONLY (and not RESIZEABLE) it never writes or
    // grows them, so the read-only mapping behind `db` is enough (a write would
    // fault, killing this handler, not corrupt anything). `conn` is dropped at
    // the end of this function, before `db`'s borrow ends, so SQLite never
    // reads the bytes after they are gone.
    let rc = unsafe {
        ffi::sqlite3_deserialize(
            conn.handle(),
            c"main".as_ptr(),
            db.as_ptr().cast_mut(),
            len,
            len,
            ffi::SQLITE_DESERIALIZE_READONLY,
        )
    };
    if rc != ffi::SQLITE_OK {
        return Err(format!("rpm database: SQLite cannot open the image (error {rc})"));
    }
    // SQLite's advice for databases that may have been tampered with
    // ("Defense Against The Dark Arts", sqlite.org/security.html).
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true).map_err(sqlite)?;
    conn.pragma_update(None, "trusted_schema", false).map_err(sqlite)?;
    conn.pragma_update(None, "cell_size_check", true).map_err(sqlite)?;
    conn.pragma_update(None, "temp_store", "MEMORY").map_err(sqlite)?;
    let mut stmt = conn.prepare("SELECT hnum, blob FROM Packages ORDER BY hnum").map_err(sqlite)?;
    let mut rows = stmt.query([]).map_err(sqlite)?;
    let mut out = Vec::new();
    let mut total = 0usize;
    while let Some(row) = rows.next().map_err(sqlite)? {
        let hnum: i64 = row.get(0).map_err(sqlite)?;
        let hnum = u32::try_from(hnum).map_err(|_| format!("header number {hnum} is not an rpm one"))?;
        let blob = row.get_ref(1).map_err(sqlite)?.as_blob().map_err(|e| format!("header {hnum}: {e}"))?;
        if blob.len() > MAX_INPUT {
            return Err(format!("header {hnum} is {} bytes, over the {MAX_INPUT}-byte limit", blob.len()));
        }
        // The blobs are in the file: more than the file holds is a database
        // that lies (a view, or a function, building blobs).
        total = total.saturating_add(blob.len());
        if total > db.len() {
            return Err("the headers take more bytes than the database file holds".into());
        }
        out.push(DbBlob { hnum, blob: blob.to_vec() });
    }
    Ok(out)
}
