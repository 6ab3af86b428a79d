//! The RPM handler's parsers: a hand-written, bounded reader of RPM headers,
//! and the rpm database (`rpmdb.sqlite`) opened with SQLite from memory.
//!
//! Why not the `rpm` crate: version 0.30 panics on malformed headers (an
//! unchecked range a fuzzer finds in seconds), cannot read database headers
//! (stored without the header magic) and verifies over a re-serialized header;
//! its signature features pull a second OpenPGP stack. The format itself is
//! small — a count, a length, 16-byte index entries and a data store — so the
//! reader here is short, checks every offset and count before it slices, caps
//! every count at rpm's own limits, and returns an error instead of panicking.
//!
//! The database is SQLite: a format as hostile as any when the file comes from
//! elsewhere (a container image, a backup), and a large parser. It is opened
//! here, in the sandbox, from the sealed memfd the manager sends ([`db`]).
//!
//! It runs in the sandboxed handler; the manager (`umd-rpm`) checks everything
//! it says against the bytes.

pub mod db;

use umd_rpm_wire::{
    ty, used_sig_tag, used_tag, Command, Description, Entry, Header, Value, HEADER_MAGIC, LEAD_LEN,
    LEAD_MAGIC, MAX_DATA, MAX_ENTRIES, MAX_SIG_DATA, MAX_SIG_ENTRIES,
};

/// Answers one request (the function `umd_handler::serve_framed` calls).
pub fn handle(request: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    let (&command, input) = request.split_first().ok_or("empty request (no command byte)")?;
    let command = Command::from_u8(command).ok_or_else(|| format!("unknown command {command}"))?;
    if command == Command::DbBlobs {
        return db::blobs(input, out);
    }
    let d = describe(command, input)?;
    let bytes = d.encode().map_err(|e| format!("encoding the description: {e}"))?;
    within_the_managers_bounds(&bytes, input.len())?;
    out.extend_from_slice(&bytes);
    Ok(())
}

/// Whether the manager will take this description of `input_len` bytes: its
/// size, and the memory it and the file list the manager derives from it take
/// (the manager's own bounded decoding and assembly, run here first, so that a
/// header an honest description cannot fit is refused with the limit named
/// instead of a reply the manager refuses).
fn within_the_managers_bounds(bytes: &[u8], input_len: usize) -> Result<(), String> {
    let mut budget = umd_wire::decode::Budget::new(umd_rpm_wire::max_memory(input_len));
    let mut d = Description::decode_charging(bytes, input_len, &mut budget).map_err(|e| e.to_string())?;
    umd_rpm_wire::assemble_files(&mut d.main.entries, &mut budget).map(|_| ())
}

/// Describes a package file (lead, signature header, main header) or one
/// database header.
pub fn describe(command: Command, input: &[u8]) -> Result<Description, String> {
    match command {
        Command::Package => {
            let lead = input.get(..LEAD_LEN).ok_or("package: shorter than its 96-byte lead")?;
            if lead[..4] != LEAD_MAGIC {
                return Err("package: no RPM lead magic".into());
            }
            let (sig, sig_end) = header(input, LEAD_LEN, true, true)?;
            // The signature header is padded to a multiple of 8 bytes.
            let main_at = sig_end.checked_add((8 - sig_end % 8) % 8).ok_or("offset overflow")?;
            let (main, _) = header(input, main_at, true, false)?;
            Ok(Description { lead: Some(0), signature: Some(sig), main })
        }
        Command::DbHeader => {
            let (main, end) = header(input, 0, false, false)?;
            if end != input.len() {
                return Err(format!("database header: {} trailing bytes", input.len() - end));
            }
            Ok(Description { lead: None, signature: None, main })
        }
        Command::DbBlobs => Err("a database is not described (it is opened: see `db`)".into()),
    }
}

fn be32(b: &[u8], at: usize) -> Result<u32, String> {
    let s = at.checked_add(4).and_then(|e| b.get(at..e)).ok_or_else(|| format!("truncated at {at}"))?;
    Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// Reads the header at `at`; returns it and the offset just past it.
fn header(input: &[u8], at: usize, magic: bool, signature: bool) -> Result<(Header, usize), String> {
    let what = if signature { "signature header" } else { "header" };
    let mut p = at;
    if magic {
        let m = input.get(p..p + 8).ok_or_else(|| format!("{what}: truncated magic at {p}"))?;
        if m != HEADER_MAGIC {
            return Err(format!("{what}: bad magic at {p}"));
        }
        p += 8;
    }
    let il = be32(input, p)?;
    let dl = be32(input, p + 4)?;
    let (max_il, max_dl) = if signature { (MAX_SIG_ENTRIES, MAX_SIG_DATA) } else { (MAX_ENTRIES, MAX_DATA) };
    if il == 0 || il > max_il || dl > max_dl {
        return Err(format!("{what}: {il} entries, {dl} data bytes: out of range"));
    }
    let index_at = p + 8;
    let data_at = index_at + 16 * il as usize;
    let end = data_at + dl as usize;
    let data = input.get(data_at..end).ok_or_else(|| format!("{what}: truncated ({end} bytes needed)"))?;
    let mut entries = Vec::with_capacity(il as usize);
    for i in 0..il as usize {
        let e = index_at + 16 * i;
        let (t, typ, off, count) =
            (be32(input, e)?, be32(input, e + 4)?, be32(input, e + 8)? as i32, be32(input, e + 12)?);
        let used = if signature { used_sig_tag(t) } else { used_tag(t) };
        // Region tags are not "used" (the manager reads regions itself), so
        // they, like every tag the manager ignores, are described opaque.
        let value = match used {
            Some(_) => {
                value(data, typ, off, count).map_err(|e| format!("{what}: entry {i} (tag {t}): {e}"))?
            }
            None => Value::Opaque,
        };
        entries.push(Entry { tag: t, ty: typ, offset: off, count, value });
    }
    Ok((Header { offset: at as u64, magic, il, dl, entries }, end))
}

fn value(data: &[u8], typ: u32, off: i32, count: u32) -> Result<Value, String> {
    let off = usize::try_from(off).map_err(|_| "negative offset")?;
    if count == 0 || count > 0x000f_ffff && typ != ty::BIN {
        return Err(format!("count {count} out of range"));
    }
    let n = count as usize;
    let slice = |len: usize| -> Result<&[u8], String> {
        off.checked_add(len)
            .and_then(|e| data.get(off..e))
            .ok_or_else(|| "value beyond the data store".into())
    };
    Ok(match typ {
        ty::INT16 => {
            Value::Int16(slice(2 * n)?.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect())
        }
        ty::INT32 => Value::Int32(
            slice(4 * n)?.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]])).collect(),
        ),
        ty::INT64 => Value::Int64(
            slice(8 * n)?
                .chunks_exact(8)
                .map(|c| u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect(),
        ),
        ty::BIN => Value::Bin(slice(n)?.to_vec()),
        ty::STRING => {
            if count != 1 {
                return Err("a STRING with count other than 1".into());
            }
            Value::String(strings(data, off, 1)?.pop().unwrap_or_default())
        }
        ty::STRING_ARRAY | ty::I18NSTRING => Value::StringArray(strings(data, off, n)?),
        t => return Err(format!("type {t} is not described")),
    })
}

fn strings(data: &[u8], mut off: usize, n: usize) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::with_capacity(n.min(data.len()));
    for _ in 0..n {
        let rest = data.get(off..).ok_or("string beyond the data store")?;
        let len = rest.iter().position(|&b| b == 0).ok_or("unterminated string")?;
        out.push(rest[..len].to_vec());
        off += len + 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn arbitrary_input_never_panics(cmd in 1u8..3, bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let mut req = vec![cmd];
            req.extend_from_slice(&bytes);
            let _ = handle(&req, &mut Vec::new());
        }
    }

    #[test]
    fn empty_and_unknown_requests_are_refused() {
        assert!(handle(&[], &mut Vec::new()).is_err());
        assert!(handle(&[9, 1, 2], &mut Vec::new()).is_err());
        assert!(handle(&[2, 0, 0, 0, 1, 0, 0, 0, 0], &mut Vec::new()).is_err());
    }
}
