//! Checking a handler's description against the bytes.
//!
//! Framing the manager does itself (bounded, fixed-size fields): the header
//! magic, entry count and data length; each 16-byte index entry; the region tag
//! and its trailer. Everything else the handler decoded is *re-encoded* here
//! and compared byte for byte with the data store at the entry's offset, so a
//! value that passes is the bytes' own. Rules beyond rpm's:
//!
//! * every value the manager uses must lie inside the immutable region — in its
//!   index and in its data, before the region trailer — because only the region
//!   is signed (a database header carries unsigned install-time tags after it);
//! * a used tag may appear only once (which of two would rpm read?);
//! * a used tag must be described with its value, an unused one must not: there
//!   is one description of given bytes;
//! * the file list is derived by the manager from the checked values
//!   ([`umd_rpm_wire::assemble_files`]); the handler sends none.
//!
//! The wire types ([`umd_rpm_wire`]) stop here: what passes is a [`Checked`]
//! of [`CheckedHeader`]s and [`CheckedFile`]s, with private fields, made only
//! by [`check`], and read through typed accessors.
use std::borrow::Cow;

use umd_rpm_wire::{
    assemble_files, tag, ty, used_sig_tag, used_tag, Command, Description, Entry, File, Header, Value,
    HEADER_MAGIC, LEAD_LEN, LEAD_MAGIC, MAX_DATA, MAX_ENTRIES, MAX_SIG_DATA, MAX_SIG_ENTRIES,
};
use umd_wire::decode::Charge;

/// Why a description was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// The bytes are not a package or header (the manager's own framing).
    #[error("{what}: {why}")]
    Framing {
        /// Which part.
        what: &'static str,
        /// Why.
        why: String,
    },
    /// The description disagrees with the bytes: a lying or broken handler.
    #[error("{what}: the description disagrees with the bytes: {why}")]
    Mismatch {
        /// Which part.
        what: &'static str,
        /// Why.
        why: String,
    },
    /// The header is well formed but not usable (e.g. a used value outside the
    /// signed region).
    #[error("{what}: {why}")]
    Refused {
        /// Which part.
        what: &'static str,
        /// Why.
        why: String,
    },
}

fn framing(what: &'static str, why: impl Into<String>) -> CheckError {
    CheckError::Framing { what, why: why.into() }
}
fn mismatch(what: &'static str, why: impl Into<String>) -> CheckError {
    CheckError::Mismatch { what, why: why.into() }
}
fn refused(what: &'static str, why: impl Into<String>) -> CheckError {
    CheckError::Refused { what, why: why.into() }
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// A header whose framing, region and used values were checked (made only by
/// [`check`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedHeader<'a> {
    /// Offset of the header's first byte in the input.
    offset: usize,
    /// Offset just past its data store.
    end: usize,
    /// Index entries in the immutable region.
    ril: u32,
    /// Data bytes in the immutable region (up to and including its trailer).
    rdl: u32,
    /// The header's bytes, from its magic (or entry count) to the end of its
    /// data store.
    whole: &'a [u8],
    index: &'a [u8],
    data: &'a [u8],
    entries: Vec<Entry>,
}

impl<'a> CheckedHeader<'a> {
    /// Offset of the header's first byte in the input.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Offset just past its data store (a package's payload starts there).
    pub fn end(&self) -> usize {
        self.end
    }

    /// The bytes rpm hashes for a header signature (`hdrblobDigestUpdate`): the
    /// header magic, the region's entry count and data length (big-endian), its
    /// index entries and its data. For a package header this is the header as
    /// stored (borrowed, not copied); for a database header it is the region
    /// cut out of the blob.
    pub fn signed_bytes(&self) -> Cow<'a, [u8]> {
        let ri = &self.index[..16 * self.ril as usize];
        let rd = &self.data[..self.rdl as usize];
        let all_region = self.ril as usize * 16 == self.index.len() && self.rdl as usize == self.data.len();
        if all_region && self.whole.starts_with(&HEADER_MAGIC) {
            return Cow::Borrowed(self.whole);
        }
        let mut out = Vec::with_capacity(16 + ri.len() + rd.len());
        out.extend_from_slice(&HEADER_MAGIC);
        out.extend_from_slice(&self.ril.to_be_bytes());
        out.extend_from_slice(&self.rdl.to_be_bytes());
        out.extend_from_slice(ri);
        out.extend_from_slice(rd);
        Cow::Owned(out)
    }

    /// The checked value of a used tag, if present.
    fn value(&self, t: u32) -> Option<&Value> {
        self.entries.iter().find(|e| e.tag == t).map(|e| &e.value)
    }

    /// The checked string value of a used tag (`RPM_STRING_TYPE`), if present.
    pub fn string(&self, t: u32) -> Option<&[u8]> {
        match self.value(t) {
            Some(Value::String(s)) => Some(s),
            _ => None,
        }
    }

    /// The first string of a used tag's checked string array, if present.
    pub fn first_string(&self, t: u32) -> Option<&[u8]> {
        match self.value(t) {
            Some(Value::StringArray(v)) => v.first().map(Vec::as_slice),
            _ => None,
        }
    }

    /// The first number of a used tag's checked 32-bit integers, if present.
    pub fn int32(&self, t: u32) -> Option<u32> {
        match self.value(t) {
            Some(Value::Int32(v)) => v.first().copied(),
            _ => None,
        }
    }

    /// The checked binary value of a used tag, if present.
    pub fn bin(&self, t: u32) -> Option<&[u8]> {
        match self.value(t) {
            Some(Value::Bin(b)) => Some(b),
            _ => None,
        }
    }
}

/// A file of a checked main header, derived by the manager from its checked
/// values (made only by [`check`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedFile(File);

impl CheckedFile {
    /// Directory name + base name.
    pub fn path(&self) -> &[u8] {
        &self.0.path
    }

    /// The digest as the header writes it (hex, unchecked: empty for
    /// directories, links, …).
    pub fn digest_text(&self) -> &[u8] {
        &self.0.digest
    }

    /// Mode (`st_mode` bits).
    pub fn mode(&self) -> u16 {
        self.0.mode
    }

    /// RPM file flags.
    pub fn flags(&self) -> u32 {
        self.0.flags
    }

    /// Size in bytes (`FILESIZES` or `LONGFILESIZES`); `None` if the header
    /// has neither.
    pub fn size(&self) -> Option<u64> {
        self.0.size
    }
}

/// A description that checked out (made only by [`check`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checked<'a> {
    signature: Option<CheckedHeader<'a>>,
    main: CheckedHeader<'a>,
    files: Vec<CheckedFile>,
}

impl<'a> Checked<'a> {
    /// The signature header of a package file.
    pub fn signature(&self) -> Option<&CheckedHeader<'a>> {
        self.signature.as_ref()
    }

    /// The main header.
    pub fn main(&self) -> &CheckedHeader<'a> {
        &self.main
    }

    /// The files, derived by the manager from the checked values.
    pub fn files(&self) -> &[CheckedFile] {
        &self.files
    }

    /// The signature header, the main header and the files.
    pub fn into_parts(self) -> (Option<CheckedHeader<'a>>, CheckedHeader<'a>, Vec<CheckedFile>) {
        (self.signature, self.main, self.files)
    }
}

/// The headers of a description that checked out, before the file list is
/// derived from them (made only by [`check_headers`]).
#[derive(Clone, Debug)]
pub struct CheckedHeaders<'a> {
    signature: Option<CheckedHeader<'a>>,
    main: CheckedHeader<'a>,
}

impl<'a> CheckedHeaders<'a> {
    /// Derives the file list from the checked main header and completes the
    /// check.
    pub fn with_files(mut self, charge: &mut dyn Charge) -> Result<Checked<'a>, CheckError> {
        let files = files(&mut self.main, charge)?;
        Ok(Checked { signature: self.signature, main: self.main, files })
    }
}

/// The file list of a checked main header, assembled by the manager from its
/// checked values; what it takes is charged to `charge` first. The file
/// digests move from the header into the list (the header's `FILEDIGESTS`
/// value is then opaque).
fn files(main: &mut CheckedHeader<'_>, charge: &mut dyn Charge) -> Result<Vec<CheckedFile>, CheckError> {
    let files = assemble_files(&mut main.entries, charge).map_err(|e| refused("file list", e))?;
    Ok(files.into_iter().map(CheckedFile).collect())
}

fn align(t: u32) -> usize {
    match t {
        ty::INT16 => 2,
        ty::INT32 => 4,
        ty::INT64 => 8,
        _ => 1,
    }
}

/// The one encoding of a value of type `t` with `count` elements.
fn encode(what: &'static str, t: u32, count: u32, v: &Value) -> Result<Vec<u8>, CheckError> {
    let n = count as usize;
    let bad = |why: &str| mismatch(what, why.to_string());
    let mut out = Vec::new();
    match (t, v) {
        (ty::INT16, Value::Int16(x)) if x.len() == n => x.iter().for_each(|x| out.extend(x.to_be_bytes())),
        (ty::INT32, Value::Int32(x)) if x.len() == n => x.iter().for_each(|x| out.extend(x.to_be_bytes())),
        (ty::INT64, Value::Int64(x)) if x.len() == n => x.iter().for_each(|x| out.extend(x.to_be_bytes())),
        (ty::BIN, Value::Bin(x)) if x.len() == n => out.extend_from_slice(x),
        (ty::STRING, Value::String(s)) if n == 1 => {
            if s.contains(&0) {
                return Err(bad("a string holds a NUL"));
            }
            out.extend_from_slice(s);
            out.push(0);
        }
        (ty::STRING_ARRAY, Value::StringArray(x)) if x.len() == n => {
            for s in x {
                if s.contains(&0) {
                    return Err(bad("a string holds a NUL"));
                }
                out.extend_from_slice(s);
                out.push(0);
            }
        }
        _ => return Err(bad(&format!("a value of the wrong form for type {t} and count {count}"))),
    }
    Ok(out)
}

/// Which header is checked.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Signature,
    Package,
    Db,
}

fn header(input: &[u8], at: usize, h: Header, kind: Kind) -> Result<CheckedHeader<'_>, CheckError> {
    let what = match kind {
        Kind::Signature => "signature header",
        Kind::Package => "main header",
        Kind::Db => "database header",
    };
    if h.offset != at as u64 {
        return Err(mismatch(what, format!("described at {}, lies at {at}", h.offset)));
    }
    let magic = kind != Kind::Db;
    if h.magic != magic {
        return Err(mismatch(what, "wrong magic flag"));
    }
    let mut p = at;
    if magic {
        if input.get(p..p + 8) != Some(&HEADER_MAGIC[..]) {
            return Err(framing(what, format!("no header magic at {p}")));
        }
        p += 8;
    }
    let (il, dl) = match (be32(input, p), be32(input, p + 4)) {
        (Some(il), Some(dl)) => (il, dl),
        _ => return Err(framing(what, "truncated")),
    };
    let (max_il, max_dl) =
        if kind == Kind::Signature { (MAX_SIG_ENTRIES, MAX_SIG_DATA) } else { (MAX_ENTRIES, MAX_DATA) };
    if il == 0 || il > max_il || dl > max_dl {
        return Err(framing(what, format!("{il} entries and {dl} data bytes: out of range")));
    }
    if (h.il, h.dl) != (il, dl) {
        return Err(mismatch(what, format!("described with {} entries, {} bytes", h.il, h.dl)));
    }
    let index_at = p + 8;
    let data_at = index_at + 16 * il as usize;
    let end = data_at + dl as usize;
    let (Some(index), Some(data)) = (input.get(index_at..data_at), input.get(data_at..end)) else {
        return Err(framing(what, format!("truncated: {end} bytes needed, {} there", input.len())));
    };
    if h.entries.len() != il as usize {
        return Err(mismatch(what, format!("{} entries described, {il} in the index", h.entries.len())));
    }
    for (i, e) in h.entries.iter().enumerate() {
        let raw = &index[16 * i..16 * i + 16];
        let mut want = [0u8; 16];
        want[..4].copy_from_slice(&e.tag.to_be_bytes());
        want[4..8].copy_from_slice(&e.ty.to_be_bytes());
        want[8..12].copy_from_slice(&e.offset.to_be_bytes());
        want[12..].copy_from_slice(&e.count.to_be_bytes());
        if raw != want {
            return Err(mismatch(what, format!("index entry {i} is not the entry in the bytes")));
        }
    }

    // The region: entry 0 names it, a 16-byte trailer in the data store closes it.
    let region_tag = if kind == Kind::Signature { tag::HEADERSIGNATURES } else { tag::HEADERIMMUTABLE };
    let first = &h.entries[0];
    if first.tag != region_tag || first.ty != ty::BIN || first.count != 16 {
        return Err(refused(what, "no immutable region (the first entry is not its tag)"));
    }
    let trailer_at = usize::try_from(first.offset)
        .ok()
        .filter(|&o| o.checked_add(16).is_some_and(|e| e <= dl as usize))
        .ok_or_else(|| framing(what, "region trailer outside the data store"))?;
    let tt = be32(data, trailer_at).unwrap_or(0);
    let ttype = be32(data, trailer_at + 4).unwrap_or(0);
    let toff = be32(data, trailer_at + 8).unwrap_or(0) as i32;
    let tcount = be32(data, trailer_at + 12).unwrap_or(0);
    let tag_ok = tt == region_tag || kind == Kind::Signature && tt == tag::HEADERIMAGE;
    if !tag_ok || ttype != ty::BIN || tcount != 16 || toff >= 0 || toff.unsigned_abs() % 16 != 0 {
        return Err(framing(what, "bad region trailer"));
    }
    let ril = toff.unsigned_abs() / 16;
    let rdl = trailer_at as u32 + 16;
    if ril == 0 || ril > il {
        return Err(framing(what, format!("region of {ril} entries in a header of {il}")));
    }
    if kind != Kind::Db && (ril != il || rdl != dl) {
        return Err(refused(what, "a package header must be all region"));
    }
    if first.value != Value::Opaque {
        return Err(mismatch(what, "the region tag is described with a value"));
    }

    let mut seen = std::collections::BTreeSet::new();
    for (i, e) in h.entries.iter().enumerate().skip(1) {
        let used = if kind == Kind::Signature { used_sig_tag(e.tag) } else { used_tag(e.tag) };
        let Some(types) = used else {
            if e.value != Value::Opaque {
                return Err(mismatch(
                    what,
                    format!("entry {i}: unused tag {} described with a value", e.tag),
                ));
            }
            continue;
        };
        if e.tag == region_tag || !seen.insert(e.tag) {
            return Err(refused(what, format!("tag {} appears twice", e.tag)));
        }
        if !types.contains(&e.ty) {
            return Err(refused(what, format!("tag {} has type {}, expected {:?}", e.tag, e.ty, types)));
        }
        if e.value == Value::Opaque {
            return Err(mismatch(what, format!("entry {i}: tag {} is used but not described", e.tag)));
        }
        let bytes = encode(what, e.ty, e.count, &e.value)?;
        let off =
            usize::try_from(e.offset).map_err(|_| framing(what, format!("entry {i}: negative offset")))?;
        if off % align(e.ty) != 0 {
            return Err(framing(what, format!("entry {i}: misaligned offset {off}")));
        }
        let stored = off.checked_add(bytes.len()).and_then(|end| data.get(off..end));
        if stored != Some(&bytes[..]) {
            return Err(mismatch(
                what,
                format!("entry {i} (tag {}): the value does not re-encode to the bytes", e.tag),
            ));
        }
        // Signature tags in a database header live after the region (rpm adds
        // them at install); every other used value must be signed.
        let is_sig = matches!(e.tag, tag::RSAHEADER | tag::DSAHEADER | tag::SHA256HEADER);
        let in_region = i < ril as usize && off + bytes.len() <= rdl as usize - 16;
        if !is_sig && kind != Kind::Signature && !in_region {
            return Err(refused(what, format!("tag {} lies outside the signed region", e.tag)));
        }
    }
    let whole = &input[at..end];
    Ok(CheckedHeader { offset: at, end, ril, rdl, whole, index, data, entries: h.entries })
}

/// Checks a description of `input` (as sent to the handler with `command`):
/// the headers, then the file list derived from them, charged to `charge`.
/// The description is consumed: the checked values are moved out of it, not
/// copied.
pub fn check<'a>(
    command: Command,
    input: &'a [u8],
    d: Description,
    charge: &mut dyn Charge,
) -> Result<Checked<'a>, CheckError> {
    check_headers(command, input, d)?.with_files(charge)
}

/// Checks the headers of a description of `input`, without deriving the file
/// list yet (the driver derives it once the reply's buffer is gone).
pub fn check_headers(
    command: Command,
    input: &[u8],
    d: Description,
) -> Result<CheckedHeaders<'_>, CheckError> {
    match command {
        Command::Package => {
            if input.get(..4) != Some(&LEAD_MAGIC[..]) || input.len() < LEAD_LEN {
                return Err(framing("lead", "not an RPM package (no lead magic)"));
            }
            if d.lead != Some(0) {
                return Err(mismatch("lead", "not described at 0"));
            }
            let sig_d = d.signature.ok_or_else(|| mismatch("signature header", "missing"))?;
            let sig = header(input, LEAD_LEN, sig_d, Kind::Signature)?;
            let main_at = sig.end + (8 - sig.end % 8) % 8;
            let main = header(input, main_at, d.main, Kind::Package)?;
            Ok(CheckedHeaders { signature: Some(sig), main })
        }
        Command::DbHeader => {
            if d.lead.is_some() || d.signature.is_some() {
                return Err(mismatch("database header", "described with a lead or signature header"));
            }
            let main = header(input, 0, d.main, Kind::Db)?;
            if main.end != input.len() {
                return Err(framing("database header", "trailing bytes"));
            }
            Ok(CheckedHeaders { signature: None, main })
        }
        Command::DbBlobs => Err(framing("database", "a database is not a header")),
    }
}
