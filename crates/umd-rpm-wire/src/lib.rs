//! The `rpm` driver's wire format: what the RPM handler returns, and the one place
//! that names the RPM header tags and types the project uses.
//!
//! The manager sends an RPM package file (lead, signature header, main header,
//! payload — only a bounded prefix holding the headers, see [`MAX_INPUT`]) or one
//! header blob from the rpm database. The handler — the only code that *parses*
//! RPM headers — answers with a [`Description`]: for each header where it lies,
//! every index entry as the bytes have it, and for the tags the manager uses
//! ([`used_tag`]) the decoded value. The manager trusts none of it: it re-reads
//! each index entry, recomputes the immutable region from the bytes, re-encodes
//! each value and compares it with the data store at the entry's offset, and
//! derives the file list itself from the checked values ([`assemble_files`];
//! the handler sends none: a list the manager derives need not be believed).
//!
//! The rpm database itself (`rpmdb.sqlite`, an SQLite file) is also the
//! handler's to open ([`Command::DbBlobs`]): it answers with the header blobs
//! ([`DbBlobs`]), each then described like any header.
//!
//! Encoding: `postcard`. Request payload: a [`Command`] byte, then the bytes
//! (for [`Command::DbBlobs`], the database travels alone in a sealed memfd).
//! The manager decodes replies only through [`Description::decode`] and
//! [`DbBlobs::decode`]: the bounded decoder of `umd-wire`, with size, depth and
//! memory limits relative to the input the handler was given.
//!
//! ```
//! use umd_rpm_wire::*;
//! let d = Description { lead: None, signature: None, main: Header {
//!     offset: 0, magic: false, il: 0, dl: 0, entries: vec![] } };
//! assert_eq!(Description::decode(&d.encode().unwrap(), 100).unwrap(), d);
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use serde::{Deserialize, Serialize};
use umd_wire::decode::{Charge, DecodeError, DecodeLimits};

/// Largest description the manager accepts at all (bytes of postcard).
pub const MAX_DESCRIPTION: usize = 64 << 20;

/// Deepest nesting of an honest reply, as the decoder counts it (a
/// description, a header, its entries, an entry, its value, a string array,
/// a string: 7); the limit leaves a little room.
pub const MAX_DEPTH: usize = 10;

/// The largest description (bytes on the wire) the manager accepts for an
/// input of `input_len` bytes: one and a half times the input and 1 MiB more.
///
/// An honest description holds an index entry's four numbers (at most 16
/// bytes, as in the header) and the values of the used tags, whose varints
/// and lengths take at most 1.5 times their bytes in the data store (an INT16
/// takes up to 3).
///
/// ```
/// assert_eq!(umd_rpm_wire::max_description(1000), 1500 + (1 << 20));
/// ```
pub fn max_description(input_len: usize) -> usize {
    input_len.saturating_add(input_len / 2).saturating_add(1 << 20).min(MAX_DESCRIPTION)
}

/// The most memory the manager spends on a header it checks, as the bounded
/// decoder and [`assemble_files`] charge it: the decoded description and the
/// file list derived from it together take at most two and a half times the
/// input and 4 MiB more.
///
/// A decoded index entry takes 48 bytes, a string 24 beside its bytes, a file
/// of the list 56 beside its path and digest. A real package spends well
/// under twice its header on them (its header also holds what the manager
/// does not read: changelogs, dependencies, sizes, owners); a header of
/// hundreds of thousands of empty names, or of files sharing a long directory
/// name, would spend more, and is refused with this limit named.
///
/// ```
/// assert_eq!(umd_rpm_wire::max_memory(1 << 20), (5 << 19) + (4 << 20));
/// ```
pub fn max_memory(input_len: usize) -> usize {
    input_len.saturating_mul(5).saturating_div(2).saturating_add(4 << 20)
}

/// Why a reply was refused before it was checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplyError {
    /// Larger than its bound allows for the input: refused undecoded.
    TooLarge {
        /// Its size.
        len: usize,
        /// The input's.
        input_len: usize,
        /// The limit.
        max: usize,
    },
    /// The bounded decoder refused it.
    Decode(DecodeError),
}

impl std::fmt::Display for ReplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplyError::TooLarge { len, input_len, max } => {
                write!(f, "a {len}-byte reply about {input_len} bytes (at most {max}): refused undecoded")
            }
            ReplyError::Decode(DecodeError::Memory { reason }) => write!(
                f,
                "the description would take {reason} once decoded (at most two and a half times \
                 the input and 4 MiB: too many small entries or strings)"
            ),
            ReplyError::Decode(e) => write!(f, "undecodable reply: {e}"),
        }
    }
}

impl std::error::Error for ReplyError {}

/// Largest input sent to the handler: the inline frame limit minus the command
/// byte. A package whose lead and headers do not fit is refused; its payload is
/// never sent (the manager hashes it itself).
pub const MAX_INPUT: usize = (16 << 20) - 1;

/// Most index entries in one header (rpm: `HEADER_TAGS_MAX`).
pub const MAX_ENTRIES: u32 = 0xffff;

/// Largest data store of a main header (rpm: `HEADER_DATA_MAX`, 256 MiB).
pub const MAX_DATA: u32 = 0x0fff_ffff;

/// Most index entries in a signature header (rpm: 32).
pub const MAX_SIG_ENTRIES: u32 = 32;

/// Largest data store of a signature header (rpm: 64 MiB).
pub const MAX_SIG_DATA: u32 = 64 << 20;

/// The 96-byte lead of a package file starts with this.
pub const LEAD_MAGIC: [u8; 4] = [0xed, 0xab, 0xee, 0xdb];
/// Length of the lead.
pub const LEAD_LEN: usize = 96;
/// A header in a package file starts with this (magic, version 1, 4 reserved bytes).
pub const HEADER_MAGIC: [u8; 8] = [0x8e, 0xad, 0xe8, 0x01, 0, 0, 0, 0];

/// What the manager asks (first byte of the request payload).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Command {
    /// Describe a package file: lead, signature header, main header.
    Package = 1,
    /// Describe one header blob from the rpm database (no magic, no lead).
    DbHeader = 2,
    /// Open an rpm database (`rpmdb.sqlite`, given whole in a sealed memfd)
    /// and return its header blobs ([`DbBlobs`]).
    DbBlobs = 3,
}

impl Command {
    /// The command of a request's first byte.
    pub fn from_u8(b: u8) -> Option<Command> {
        Some(match b {
            1 => Command::Package,
            2 => Command::DbHeader,
            3 => Command::DbBlobs,
            _ => return None,
        })
    }
}

/// RPM header tags used here (`rpmtag.h`).
pub mod tag {
    /// The signature header's region.
    pub const HEADERSIGNATURES: u32 = 62;
    /// The main header's immutable region.
    pub const HEADERIMMUTABLE: u32 = 63;
    /// Old region tag, accepted in a signature region trailer (as rpm does).
    pub const HEADERIMAGE: u32 = 61;
    /// OpenPGP signature over the header (DSA; rpm 4.18 also puts EdDSA here).
    pub const DSAHEADER: u32 = 267;
    /// OpenPGP signature over the header (RSA).
    pub const RSAHEADER: u32 = 268;
    /// SHA-256 of the header, hex (in the signature header).
    pub const SHA256HEADER: u32 = 273;
    /// Package name.
    pub const NAME: u32 = 1000;
    /// Version.
    pub const VERSION: u32 = 1001;
    /// Release.
    pub const RELEASE: u32 = 1002;
    /// Epoch (INT32, optional).
    pub const EPOCH: u32 = 1003;
    /// Architecture.
    pub const ARCH: u32 = 1022;
    /// Old-style full file names (refused: not written by rpm ≥ 4.1 builds).
    pub const OLDFILENAMES: u32 = 1027;
    /// File sizes (INT32), when every file is under 4 GiB.
    pub const FILESIZES: u32 = 1028;
    /// File modes (INT16).
    pub const FILEMODES: u32 = 1030;
    /// File digests, hex (STRING_ARRAY).
    pub const FILEDIGESTS: u32 = 1035;
    /// File flags (INT32): config, doc, ghost, …
    pub const FILEFLAGS: u32 = 1037;
    /// Index into [`DIRNAMES`] per file (INT32).
    pub const DIRINDEXES: u32 = 1116;
    /// File base names (STRING_ARRAY).
    pub const BASENAMES: u32 = 1117;
    /// Directory names, with the trailing slash (STRING_ARRAY).
    pub const DIRNAMES: u32 = 1118;
    /// File sizes (INT64), instead of [`FILESIZES`] when a file is 4 GiB or more.
    pub const LONGFILESIZES: u32 = 5008;
    /// File digest algorithm (INT32, OpenPGP hash ids; absent: MD5).
    pub const FILEDIGESTALGO: u32 = 5011;
    /// Digest of the compressed payload, hex (STRING_ARRAY).
    pub const PAYLOADDIGEST: u32 = 5092;
    /// Its algorithm (INT32).
    pub const PAYLOADDIGESTALGO: u32 = 5093;
}

/// RPM data types (`rpmtag.h`, `rpmTagType`).
pub mod ty {
    /// No data.
    pub const NULL: u32 = 0;
    /// Bytes.
    pub const CHAR: u32 = 1;
    /// Bytes.
    pub const INT8: u32 = 2;
    /// Big-endian u16s.
    pub const INT16: u32 = 3;
    /// Big-endian u32s.
    pub const INT32: u32 = 4;
    /// Big-endian u64s.
    pub const INT64: u32 = 5;
    /// One NUL-terminated string (count 1).
    pub const STRING: u32 = 6;
    /// Bytes (count = length).
    pub const BIN: u32 = 7;
    /// NUL-terminated strings.
    pub const STRING_ARRAY: u32 = 8;
    /// NUL-terminated strings (translations).
    pub const I18NSTRING: u32 = 9;
}

/// Whether the handler must describe this tag's value (else [`Value::Opaque`] is
/// allowed), and the data type the manager requires for it. The region tags are
/// not here: the manager reads regions from the bytes itself.
pub fn used_tag(tag: u32) -> Option<&'static [u32]> {
    use self::tag::*;
    use self::ty::*;
    Some(match tag {
        DSAHEADER | RSAHEADER => &[BIN],
        SHA256HEADER => &[STRING],
        NAME | VERSION | RELEASE | ARCH => &[STRING],
        EPOCH | FILEDIGESTALGO | PAYLOADDIGESTALGO | FILEFLAGS | DIRINDEXES | FILESIZES => &[INT32],
        LONGFILESIZES => &[INT64],
        FILEMODES => &[INT16],
        FILEDIGESTS | BASENAMES | DIRNAMES | OLDFILENAMES | PAYLOADDIGEST => &[STRING_ARRAY],
        _ => return None,
    })
}

/// As [`used_tag`], for the signature header of a package file (its tags
/// are numbered apart: 1000 there is the size, not the name).
pub fn used_sig_tag(tag: u32) -> Option<&'static [u32]> {
    use self::tag::*;
    use self::ty::*;
    Some(match tag {
        DSAHEADER | RSAHEADER => &[BIN],
        SHA256HEADER => &[STRING],
        _ => return None,
    })
}

/// The handler's answer about a package or a database header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Description {
    /// Package files: the lead's offset (always 0) — `None` for database headers.
    pub lead: Option<u64>,
    /// Package files: the signature header.
    pub signature: Option<Header>,
    /// The main header.
    pub main: Header,
}

impl Description {
    /// Encodes with postcard.
    pub fn encode(&self) -> Result<Vec<u8>, postcard::Error> {
        postcard::to_allocvec(self)
    }

    /// Decodes a description of an input of `input_len` bytes, the one way the
    /// manager does: refused undecoded if larger than [`max_description`], then
    /// through the bounded decoder, charging `charge` (whose limit is
    /// [`max_memory`], shared with the file list). Never panics; trailing bytes
    /// are an error.
    pub fn decode_charging(
        bytes: &[u8],
        input_len: usize,
        charge: &mut dyn Charge,
    ) -> Result<Description, ReplyError> {
        let max = max_description(input_len);
        if bytes.len() > max {
            return Err(ReplyError::TooLarge { len: bytes.len(), input_len, max });
        }
        umd_wire::decode::decode_charging(bytes, MAX_DEPTH, charge).map_err(ReplyError::Decode)
    }

    /// As [`Description::decode_charging`], with a budget of its own of
    /// [`max_memory`].
    pub fn decode(bytes: &[u8], input_len: usize) -> Result<Description, ReplyError> {
        let mut budget = umd_wire::decode::Budget::new(max_memory(input_len));
        Description::decode_charging(bytes, input_len, &mut budget)
    }
}

/// The handler's answer about an rpm database: every header blob of its
/// `Packages` table, in header-number order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbBlobs {
    /// The headers.
    pub headers: Vec<DbBlob>,
}

/// One row of the `Packages` table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbBlob {
    /// The header number (`hnum`).
    pub hnum: u32,
    /// The header, as stored (no magic): untrusted, described like any.
    #[serde(with = "serde_bytes")]
    pub blob: Vec<u8>,
}

impl DbBlobs {
    /// Encodes with postcard.
    pub fn encode(&self) -> Result<Vec<u8>, postcard::Error> {
        postcard::to_allocvec(self)
    }

    /// The largest reply about a database of `db_len` bytes: the blobs are in
    /// the file (SQLite stores them as they are, across its pages), so no
    /// more than the file and 1 MiB of numbers and lengths.
    pub fn max_reply(db_len: usize) -> usize {
        db_len.saturating_add(1 << 20)
    }

    /// Decodes a reply about a database of `db_len` bytes: refused undecoded
    /// beyond [`DbBlobs::max_reply`], decoded within twice the database and
    /// 4 MiB.
    pub fn decode(bytes: &[u8], db_len: usize) -> Result<DbBlobs, ReplyError> {
        let max = DbBlobs::max_reply(db_len);
        if bytes.len() > max {
            return Err(ReplyError::TooLarge { len: bytes.len(), input_len: db_len, max });
        }
        let limits = DecodeLimits::relative(MAX_DEPTH, db_len, 2, 4 << 20);
        umd_wire::decode::decode(bytes, &limits).map_err(ReplyError::Decode)
    }
}

/// One header: where it lies, and every index entry in index order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Offset of its first byte in the input (the magic, or the entry count).
    pub offset: u64,
    /// Whether it starts with [`HEADER_MAGIC`] (package files) or not (database).
    pub magic: bool,
    /// Number of index entries.
    pub il: u32,
    /// Length of the data store.
    pub dl: u32,
    /// Every index entry, in order.
    pub entries: Vec<Entry>,
}

/// One index entry (16 bytes in the header) and its value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Tag.
    pub tag: u32,
    /// Data type ([`ty`]).
    pub ty: u32,
    /// Offset of the value in the data store (for a region tag, as stored).
    pub offset: i32,
    /// Element count.
    pub count: u32,
    /// The value.
    pub value: Value,
}

/// A value, decoded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Value {
    /// Not described (allowed only for tags the manager does not use).
    Opaque,
    /// INT16 elements.
    Int16(Vec<u16>),
    /// INT32 elements.
    Int32(Vec<u32>),
    /// One STRING, without its NUL.
    String(#[serde(with = "serde_bytes")] Vec<u8>),
    /// BIN bytes.
    Bin(#[serde(with = "serde_bytes")] Vec<u8>),
    /// STRING_ARRAY elements, without their NULs.
    StringArray(Vec<Vec<u8>>),
    /// INT64 elements.
    Int64(Vec<u64>),
}

/// One file of the package, as the manager assembles it ([`assemble_files`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct File {
    /// Directory name + base name.
    #[serde(with = "serde_bytes")]
    pub path: Vec<u8>,
    /// The digest as the header has it (hex; empty for directories, links, …).
    #[serde(with = "serde_bytes")]
    pub digest: Vec<u8>,
    /// Mode (`st_mode` bits).
    pub mode: u16,
    /// RPM file flags.
    pub flags: u32,
    /// Size in bytes ([`tag::FILESIZES`] or [`tag::LONGFILESIZES`]); `None`
    /// if the header has neither.
    pub size: Option<u64>,
}

fn find(entries: &[Entry], t: u32) -> Option<&Value> {
    entries.iter().find(|e| e.tag == t).map(|e| &e.value)
}

/// Assembles the file list from a main header's entries (the manager, from
/// the entries it checked). No files: no `BASENAMES`. Old-style
/// `OLDFILENAMES` headers are refused.
///
/// The digests are moved out of the `FILEDIGESTS` value into the list (that
/// entry is left [`Value::Opaque`]: its values now live in the list), so the
/// list costs its paths and its records, not a second copy of the digests.
/// What it allocates is charged to `charge` first: a header of a million
/// files sharing a long directory name cannot make the list outgrow the
/// budget.
pub fn assemble_files(entries: &mut [Entry], charge: &mut dyn Charge) -> Result<Vec<File>, String> {
    if find(entries, tag::OLDFILENAMES).is_some() {
        return Err("old-style file names (OLDFILENAMES) are not supported".into());
    }
    let Some(Value::StringArray(base)) = find(entries, tag::BASENAMES) else {
        return Ok(Vec::new());
    };
    let n = base.len();
    let Some(Value::StringArray(dirs)) = find(entries, tag::DIRNAMES) else {
        return Err("BASENAMES without DIRNAMES".into());
    };
    let int32 = |t: u32| match find(entries, t) {
        Some(Value::Int32(v)) if v.len() == n => Ok(v.as_slice()),
        _ => Err(format!("tag {t}: missing, or not {n} INT32 values")),
    };
    let idx = int32(tag::DIRINDEXES)?;
    let flags = int32(tag::FILEFLAGS)?;
    let Some(Value::Int16(modes)) =
        find(entries, tag::FILEMODES).filter(|v| matches!(v, Value::Int16(m) if m.len() == n))
    else {
        return Err(format!("FILEMODES: missing, or not {n} INT16 values"));
    };
    if !matches!(find(entries, tag::FILEDIGESTS), Some(Value::StringArray(d)) if d.len() == n) {
        return Err(format!("FILEDIGESTS: missing, or not {n} values"));
    }
    // rpm writes LONGFILESIZES instead of FILESIZES when a file is 4 GiB or more.
    // Read in place: the list holds each size, no second copy is made.
    let (long, short): (Option<&[u64]>, Option<&[u32]>) =
        match (find(entries, tag::LONGFILESIZES), find(entries, tag::FILESIZES)) {
            (Some(Value::Int64(v)), _) if v.len() == n => (Some(v), None),
            (Some(_), _) => return Err(format!("LONGFILESIZES: not {n} INT64 values")),
            (None, Some(Value::Int32(v))) if v.len() == n => (None, Some(v)),
            (None, Some(_)) => return Err(format!("FILESIZES: not {n} INT32 values")),
            (None, None) => (None, None),
        };
    let over = |why: String| format!("a list of {n} files would take {why} (the limit for this header)");
    charge.charge(n.saturating_mul(std::mem::size_of::<File>())).map_err(over)?;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let dir = usize::try_from(idx[i]).ok().and_then(|d| dirs.get(d));
        let dir = dir.ok_or_else(|| format!("file {i}: directory index {} out of range", idx[i]))?;
        charge.charge(dir.len() + base[i].len()).map_err(over)?;
        let mut path = Vec::with_capacity(dir.len() + base[i].len());
        path.extend_from_slice(dir);
        path.extend_from_slice(&base[i]);
        let size = long.map(|l| l[i]).or_else(|| short.map(|s| u64::from(s[i])));
        out.push(File { path, digest: Vec::new(), mode: modes[i], flags: flags[i], size });
    }
    let digests = entries
        .iter_mut()
        .find(|e| e.tag == tag::FILEDIGESTS)
        .map(|e| std::mem::replace(&mut e.value, Value::Opaque));
    if let Some(Value::StringArray(digests)) = digests {
        for (f, d) in out.iter_mut().zip(digests) {
            f.digest = d;
        }
    }
    Ok(out)
}

/// Hash algorithm ids used by rpm (the OpenPGP ids, RFC 9580 §9.5).
pub mod hash {
    /// MD5 (the default when a header names none).
    pub const MD5: u32 = 1;
    /// SHA-1.
    pub const SHA1: u32 = 2;
    /// SHA2-256.
    pub const SHA256: u32 = 8;
    /// SHA2-384.
    pub const SHA384: u32 = 9;
    /// SHA2-512.
    pub const SHA512: u32 = 10;
    /// SHA2-224.
    pub const SHA224: u32 = 11;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Byte strings are encoded with `serde_bytes` (one copy, not a call per
    /// byte): postcard writes them as it writes a sequence of `u8`.
    #[test]
    fn byte_strings_keep_the_wire_format_of_byte_sequences() {
        #[derive(Serialize)]
        enum PlainValue {
            _Opaque,
            _Int16(Vec<u16>),
            _Int32(Vec<u32>),
            String(Vec<u8>),
            Bin(Vec<u8>),
        }
        let b: Vec<u8> = (0..=255).collect();
        for (v, p) in [
            (Value::String(b.clone()), PlainValue::String(b.clone())),
            (Value::Bin(vec![]), PlainValue::Bin(vec![])),
        ] {
            assert_eq!(postcard::to_allocvec(&v).unwrap(), postcard::to_allocvec(&p).unwrap());
        }
        let f =
            File { path: b"/usr/bin/x".to_vec(), digest: b.clone(), mode: 0o100755, flags: 0, size: Some(5) };
        let plain = (b"/usr/bin/x".to_vec(), b.clone(), 0o100755u16, 0u32, Some(5u64));
        assert_eq!(postcard::to_allocvec(&f).unwrap(), postcard::to_allocvec(&plain).unwrap());
    }

    #[test]
    fn file_sizes_come_from_filesizes_or_longfilesizes() {
        let e = |tag, value| Entry { tag, ty: 0, offset: 0, count: 0, value };
        let mut entries = vec![
            e(tag::BASENAMES, Value::StringArray(vec![b"a".to_vec(), b"b".to_vec()])),
            e(tag::DIRNAMES, Value::StringArray(vec![b"/d/".to_vec()])),
            e(tag::DIRINDEXES, Value::Int32(vec![0, 0])),
            e(tag::FILEFLAGS, Value::Int32(vec![0, 0])),
            e(tag::FILEMODES, Value::Int16(vec![0o100644, 0o100644])),
            e(tag::FILEDIGESTS, Value::StringArray(vec![b"00".to_vec(), b"11".to_vec()])),
        ];
        let sizes = |entries: &[Entry]| {
            let mut budget = umd_wire::decode::Budget::new(1 << 20);
            assemble_files(&mut entries.to_vec(), &mut budget)
                .map(|f| f.iter().map(|f| f.size).collect::<Vec<_>>())
        };
        assert_eq!(sizes(&entries), Ok(vec![None, None]));
        entries.push(e(tag::FILESIZES, Value::Int32(vec![1, 2])));
        assert_eq!(sizes(&entries), Ok(vec![Some(1), Some(2)]));
        entries.push(e(tag::LONGFILESIZES, Value::Int64(vec![5 << 32, 3])));
        assert_eq!(sizes(&entries), Ok(vec![Some(5 << 32), Some(3)]));
        entries.pop();
        entries.push(e(tag::LONGFILESIZES, Value::Int64(vec![1])));
        assert!(sizes(&entries).is_err(), "a size per file");
    }
}
