//! Digest lists: which file contents are trusted, by digest, and from which
//! package — signed by the builder with Ed25519.
//!
//! The format ([`docs/digest-list.md`](../../docs/digest-list.md)) is one file:
//! a fixed header, a table per digest algorithm of fixed-size records (digest,
//! package index) sorted by digest, a package table, a string table, and a
//! signature trailer over everything before it. A reader verifies the signature
//! first, then parses with every offset bounds-checked, then answers lookups by
//! a prefix index and interpolation search in place — no per-entry allocation.
//!
//! ```
//! use umd_digest_list::*;
//! let key = SigningKey::from_bytes(&[7; 32]);
//! let mut b = Builder::new();
//! let p = b.add_package("hello-1.0-1.noarch", Mark::Verified);
//! let d = Digest::of(HashAlgo::Sha256, b"hello\n");
//! b.add_digest(&d, p).unwrap();
//! let bytes = b.finish(1_700_000_000, 1, &key);
//! let list = DigestList::open(bytes, &key.verifying_key()).unwrap();
//! let hits: Vec<_> = list.lookup(&d).collect();
//! assert_eq!(hits[0].name, "hello-1.0-1.noarch");
//! assert_eq!(list.sequence(), 1);
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::collections::BTreeMap;

use ed25519_dalek::Signer;

pub mod fapolicyd;
pub use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use sha2::Digest as _;

/// File magic.
pub const MAGIC: [u8; 8] = *b"UMDDIGL\0";
/// Format version written and read.
pub const VERSION: u16 = 1;
/// Header length.
pub const HEADER_LEN: usize = 64;
/// Length of one table directory entry.
pub const TABLE_ENTRY_LEN: usize = 24;
/// Length of one package record.
pub const PACKAGE_LEN: usize = 16;
/// Trailer magic.
pub const TRAILER_MAGIC: [u8; 8] = *b"UMDSIG01";
/// Trailer length: magic, public key, signature.
pub const TRAILER_LEN: usize = 8 + 32 + 64;
/// Largest list read (4 GiB would be ~100 million SHA-256 digests).
pub const MAX_LIST: usize = 1 << 32;

/// The hash algorithms and digests (one type for every format: a table's
/// algorithm field is [`HashAlgo::list_id`]).
pub use umd_hash::{Digest, HashAlgo};

/// The digest length of a table's algorithm field, if the format carries it.
fn digest_len(list_id: u32) -> Option<usize> {
    HashAlgo::from_list_id(list_id).map(HashAlgo::digest_len)
}

/// How far a package was trusted when it was listed. Only [`Mark::Verified`]
/// packages are listed by default; the others only under the builder's explicit
/// flag, and the mark says so.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Mark {
    /// A header signature by a keyring key verified.
    Verified = 0,
    /// No header signature.
    Unsigned = 1,
    /// Signed by a key outside the keyring.
    UnknownKey = 2,
    /// A header signature failed.
    BadSignature = 3,
    /// The payload did not match the signed header.
    PayloadMismatch = 4,
}

impl Mark {
    fn from_u8(b: u8) -> Option<Mark> {
        Some(match b {
            0 => Mark::Verified,
            1 => Mark::Unsigned,
            2 => Mark::UnknownKey,
            3 => Mark::BadSignature,
            4 => Mark::PayloadMismatch,
            _ => return None,
        })
    }

    /// A short name.
    pub fn name(self) -> &'static str {
        match self {
            Mark::Verified => "verified",
            Mark::Unsigned => "unsigned",
            Mark::UnknownKey => "unknown-key",
            Mark::BadSignature => "bad-signature",
            Mark::PayloadMismatch => "payload-mismatch",
        }
    }
}

/// Why a list could not be built or read.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// A digest of an algorithm the format does not carry (SHA-1, SHA2-224).
    #[error("{0} digests cannot be listed")]
    NotCarried(HashAlgo),
    /// A digest of a package that was not added.
    #[error("no package {0} in the list")]
    NoPackage(u32),
    /// Not a digest list, or a version this reader does not know.
    #[error("not a digest list: {0}")]
    Format(String),
    /// The signature does not verify with the given key.
    #[error("the list's signature does not verify with the given key{0}")]
    Signature(&'static str),
}

fn format(why: impl Into<String>) -> ListError {
    ListError::Format(why.into())
}

/// Collects packages and digests, then writes a signed list.
#[derive(Default)]
pub struct Builder {
    packages: Vec<(String, Mark, u32)>,
    tables: BTreeMap<u32, Vec<u8>>,
}

impl Builder {
    /// An empty list.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Adds a package; returns its index for [`Builder::add_digest`].
    pub fn add_package(&mut self, name: &str, mark: Mark) -> u32 {
        self.packages.push((name.to_owned(), mark, 0));
        (self.packages.len() - 1) as u32
    }

    /// Adds one file digest of package `package`.
    pub fn add_digest(&mut self, digest: &Digest, package: u32) -> Result<(), ListError> {
        let algo = digest.algo().list_id().ok_or(ListError::NotCarried(digest.algo()))?;
        if package as usize >= self.packages.len() {
            return Err(ListError::NoPackage(package));
        }
        let t = self.tables.entry(algo).or_default();
        t.extend_from_slice(digest.as_bytes());
        t.extend_from_slice(&package.to_le_bytes());
        self.packages[package as usize].2 += 1;
        Ok(())
    }

    /// Number of digests added.
    pub fn len(&self) -> usize {
        self.tables.iter().map(|(a, t)| t.len() / (digest_len(*a).unwrap_or(0) + 4)).sum()
    }

    /// Whether no digest was added.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sorts, lays out and signs the list.
    pub fn finish(self, created: u64, sequence: u64, key: &SigningKey) -> Vec<u8> {
        let mut out = vec![0u8; HEADER_LEN];
        let n_tables = self.tables.len();
        let dir_at = out.len();
        out.resize(dir_at + n_tables * TABLE_ENTRY_LEN, 0);
        let mut dir = Vec::new();
        for (&algo, raw) in &self.tables {
            let rec = digest_len(algo).unwrap_or(0) + 4;
            let mut recs: Vec<&[u8]> = raw.chunks_exact(rec).collect();
            recs.sort_unstable();
            recs.dedup();
            pad8(&mut out);
            dir.push((algo, rec - 4, recs.len() as u64, out.len() as u64));
            for r in recs {
                out.extend_from_slice(r);
            }
        }
        for (i, (algo, len, count, off)) in dir.into_iter().enumerate() {
            let e = &mut out[dir_at + i * TABLE_ENTRY_LEN..dir_at + (i + 1) * TABLE_ENTRY_LEN];
            e[0..4].copy_from_slice(&algo.to_le_bytes());
            e[4..8].copy_from_slice(&(len as u32).to_le_bytes());
            e[8..16].copy_from_slice(&count.to_le_bytes());
            e[16..24].copy_from_slice(&off.to_le_bytes());
        }
        pad8(&mut out);
        let packages_at = out.len();
        let mut strings = Vec::new();
        for (name, mark, files) in &self.packages {
            out.extend_from_slice(&(strings.len() as u32).to_le_bytes());
            out.extend_from_slice(&(name.len() as u32).to_le_bytes());
            out.push(*mark as u8);
            out.extend_from_slice(&[0; 3]);
            out.extend_from_slice(&files.to_le_bytes());
            strings.extend_from_slice(name.as_bytes());
        }
        let strings_at = out.len();
        out.extend_from_slice(&strings);
        let h = &mut out[..HEADER_LEN];
        h[0..8].copy_from_slice(&MAGIC);
        h[8..10].copy_from_slice(&VERSION.to_le_bytes());
        h[12..16].copy_from_slice(&(HEADER_LEN as u32).to_le_bytes());
        h[16..24].copy_from_slice(&created.to_le_bytes());
        h[24..32].copy_from_slice(&sequence.to_le_bytes());
        h[32..36].copy_from_slice(&(n_tables as u32).to_le_bytes());
        h[36..40].copy_from_slice(&(self.packages.len() as u32).to_le_bytes());
        h[40..48].copy_from_slice(&(packages_at as u64).to_le_bytes());
        h[48..56].copy_from_slice(&(strings_at as u64).to_le_bytes());
        h[56..64].copy_from_slice(&(strings.len() as u64).to_le_bytes());
        let sig = key.sign(&signed_message(&out));
        out.extend_from_slice(&TRAILER_MAGIC);
        out.extend_from_slice(key.verifying_key().as_bytes());
        out.extend_from_slice(&sig.to_bytes());
        out
    }
}

/// Domain separation for the list signature.
pub const SIGNATURE_CONTEXT: &[u8] = b"umd digest list v1\0";

/// What the Ed25519 signature covers: [`SIGNATURE_CONTEXT`], then SHA-256 of
/// every byte before the trailer. One SHA-256 pass (hardware-accelerated on
/// most CPUs) instead of Ed25519's SHA-512 over the whole list: opening a list
/// of a million digests measured ~3.6x one SHA-256 pass with the whole list
/// signed, about 1.5x this way.
pub fn signed_message(body: &[u8]) -> Vec<u8> {
    let mut m = SIGNATURE_CONTEXT.to_vec();
    m.extend_from_slice(&sha2::Sha256::digest(body));
    m
}

fn pad8(v: &mut Vec<u8>) {
    while v.len() % 8 != 0 {
        v.push(0);
    }
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn le64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

#[derive(Clone, Copy, Debug)]
struct Table {
    algo: HashAlgo,
    len: usize,
    count: usize,
    offset: usize,
}

/// One package of a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Package<'a> {
    /// Its index.
    pub index: u32,
    /// Name-[epoch:]version-release.arch.
    pub name: &'a str,
    /// How it was trusted.
    pub mark: Mark,
    /// How many digests it contributed.
    pub digests: u32,
}

/// A list whose signature verified, parsed and bounds-checked, held in memory.
///
/// Why not a memory map: the signature must be checked over every byte before
/// any is believed, so opening touches the whole file either way, and a mapped
/// file truncated by someone else turns a read into SIGBUS. One read, one
/// verification, then lookups in the same memory (no time-of-check gap).
pub struct DigestList {
    bytes: Vec<u8>,
    body: usize,
    tables: Vec<Table>,
    /// Per table: where each 2-byte digest prefix starts (65 537 entries),
    /// built while checking the table's order at open (256 KiB a table).
    buckets: Vec<Vec<u32>>,
    packages: usize,
    n_packages: usize,
    strings: usize,
    strings_len: usize,
}

impl DigestList {
    /// Verifies the list's signature with `key` and parses it.
    pub fn open(bytes: Vec<u8>, key: &VerifyingKey) -> Result<DigestList, ListError> {
        let (body, signer, sig) = split_trailer(&bytes)?;
        if signer != *key {
            return Err(ListError::Signature(" (it was signed by another key)"));
        }
        key.verify_strict(&signed_message(&bytes[..body]), &sig).map_err(|_| ListError::Signature(""))?;
        DigestList::parse(bytes, body)
    }

    /// The key that signed a list (unverified: for messages only).
    pub fn claimed_signer(bytes: &[u8]) -> Result<VerifyingKey, ListError> {
        Ok(split_trailer(bytes)?.1)
    }

    fn parse(bytes: Vec<u8>, body: usize) -> Result<DigestList, ListError> {
        let b = &bytes[..body];
        if b.len() < HEADER_LEN || b[..8] != MAGIC {
            return Err(format("no magic"));
        }
        let version = u16::from_le_bytes([b[8], b[9]]);
        if version != VERSION {
            return Err(format(format!("version {version}, this reader knows {VERSION}")));
        }
        let n_tables = le32(b, 32) as usize;
        let n_packages = le32(b, 36) as usize;
        let (packages, strings, strings_len) = (le64(b, 40), le64(b, 48), le64(b, 56));
        let within = |off: u64, len: u64| off.checked_add(len).is_some_and(|e| e <= body as u64);
        if !within(HEADER_LEN as u64, (n_tables as u64).saturating_mul(TABLE_ENTRY_LEN as u64))
            || !within(packages, (n_packages as u64).saturating_mul(PACKAGE_LEN as u64))
            || !within(strings, strings_len)
        {
            return Err(format("a section lies outside the file"));
        }
        let mut tables = Vec::with_capacity(n_tables);
        for i in 0..n_tables {
            let e = HEADER_LEN + i * TABLE_ENTRY_LEN;
            let (algo, len, count, offset) =
                (le32(b, e), le32(b, e + 4) as usize, le64(b, e + 8), le64(b, e + 16));
            let carried = HashAlgo::from_list_id(algo).filter(|a| a.digest_len() == len);
            let Some(algo) = carried.filter(|&a| tables.iter().all(|t: &Table| t.algo != a)) else {
                return Err(format(format!("table {i}: algorithm {algo} with {len}-byte digests")));
            };
            if !within(offset, count.saturating_mul(len as u64 + 4)) {
                return Err(format(format!("table {i} lies outside the file")));
            }
            tables.push(Table { algo, len, count: count as usize, offset: offset as usize });
        }
        let mut list = DigestList {
            body,
            buckets: Vec::new(),
            tables,
            packages: packages as usize,
            n_packages,
            strings: strings as usize,
            strings_len: strings_len as usize,
            bytes,
        };
        for i in 0..n_packages {
            list.package_checked(i as u32)?;
        }
        let mut all_buckets = Vec::with_capacity(list.tables.len());
        for t in &list.tables {
            let rec = t.len + 4;
            if t.count > u32::MAX as usize {
                return Err(format("a table of more than 2^32 records"));
            }
            let mut buckets = Vec::with_capacity(BUCKETS + 1);
            for r in 0..t.count {
                let at = t.offset + r * rec;
                let p = le32(&list.bytes, at + t.len);
                if p as usize >= n_packages {
                    return Err(format(format!("a record names package {p} of {n_packages}")));
                }
                if r > 0 && list.bytes[at - rec..at] >= list.bytes[at..at + rec] {
                    return Err(format("a table is not sorted"));
                }
                let b = bucket(&list.bytes[at..at + t.len]);
                while buckets.len() <= b {
                    buckets.push(r as u32);
                }
            }
            buckets.resize(BUCKETS + 1, t.count as u32);
            all_buckets.push(buckets);
        }
        list.buckets = all_buckets;
        Ok(list)
    }

    fn package_checked(&self, i: u32) -> Result<Package<'_>, ListError> {
        let at = self.packages + i as usize * PACKAGE_LEN;
        let b = &self.bytes;
        let (off, len) = (le32(b, at) as usize, le32(b, at + 4) as usize);
        let mark = Mark::from_u8(b[at + 8]).ok_or_else(|| format(format!("package {i}: unknown mark")))?;
        let end =
            off.checked_add(len).filter(|&e| e <= self.strings_len).ok_or_else(|| format("name outside"))?;
        let name = std::str::from_utf8(&b[self.strings + off..self.strings + end])
            .map_err(|_| format(format!("package {i}: name is not UTF-8")))?;
        Ok(Package { index: i, name, mark, digests: le32(b, at + 12) })
    }

    /// Package `i` (checked when the list was opened).
    pub fn package(&self, i: u32) -> Option<Package<'_>> {
        if (i as usize) < self.n_packages {
            self.package_checked(i).ok()
        } else {
            None
        }
    }

    /// Every package.
    pub fn packages(&self) -> impl Iterator<Item = Package<'_>> {
        (0..self.n_packages as u32).filter_map(|i| self.package(i))
    }

    /// The packages listing `digest`.
    ///
    /// A first-level index built at open (where each 2-byte prefix starts)
    /// narrows the search to the records sharing the digest's first two bytes
    /// (a million digests: ~15, one or two cache lines); digests are uniformly
    /// distributed, so an interpolation search on the next 8 bytes finishes
    /// it. The interpolation rounds are bounded, then it bisects: correct for
    /// any distribution, O(log n) at worst.
    pub fn lookup<'a>(&'a self, digest: &'a Digest) -> impl Iterator<Item = Package<'a>> + 'a {
        let i = self.tables.iter().position(|t| t.algo == digest.algo());
        let digest = digest.as_bytes();
        let t = i.map(|i| self.tables[i]);
        let (start, end) = match (t, i) {
            (Some(t), Some(i)) => {
                let key = |r: usize| &self.bytes[t.offset + r * (t.len + 4)..][..t.len];
                // The records sharing the digest's first two bytes, then an
                // interpolation search among them on the next eight.
                let b = bucket(digest);
                let (first, last) = (self.buckets[i][b] as usize, self.buckets[i][b + 1] as usize);
                let (target, rank) = (prefix(&digest[2..]), |r: usize| prefix(&key(first + r)[2..]));
                let lo = first + interpolate(last - first, target, rank, |r| key(first + r) < digest);
                let mut hi = lo;
                while hi < t.count && key(hi) == digest {
                    hi += 1;
                }
                (lo, hi)
            }
            _ => (0, 0),
        };
        (start..end).filter_map(move |r| {
            let t = t?;
            self.package(le32(&self.bytes, t.offset + r * (t.len + 4) + t.len))
        })
    }

    /// The algorithms with a table, and their digest counts.
    pub fn algorithms(&self) -> Vec<(HashAlgo, usize)> {
        self.tables.iter().map(|t| (t.algo, t.count)).collect()
    }

    /// Number of digest records.
    pub fn len(&self) -> usize {
        self.tables.iter().map(|t| t.count).sum()
    }

    /// Whether it lists nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Creation time (seconds since the epoch, from the builder's clock).
    pub fn created(&self) -> u64 {
        le64(&self.bytes, 16)
    }

    /// The builder's sequence number: a later list has a larger one.
    pub fn sequence(&self) -> u64 {
        le64(&self.bytes, 24)
    }

    /// Size of the file in bytes.
    pub fn size(&self) -> usize {
        self.bytes.len()
    }

    /// Whether this list may replace `current`: a larger sequence number.
    pub fn supersedes(&self, current: &DigestList) -> bool {
        self.sequence() > current.sequence()
    }

    #[doc(hidden)]
    pub fn body_len(&self) -> usize {
        self.body
    }
}

/// Buckets of the first-level index: one per 2-byte digest prefix.
const BUCKETS: usize = 1 << 16;

/// A digest's bucket: its first two bytes.
fn bucket(d: &[u8]) -> usize {
    usize::from(d[0]) << 8 | usize::from(d[1])
}

/// A digest's first 8 bytes as a big-endian number (its rank estimate).
fn prefix(d: &[u8]) -> u64 {
    let mut x = [0u8; 8];
    let n = d.len().min(8);
    x[..n].copy_from_slice(&d[..n]);
    u64::from_be_bytes(x)
}

/// Interpolation rounds before [`interpolate`] falls back to bisection.
const MAX_INTERPOLATIONS: usize = 6;

/// As [`partition`] over sorted records, where `rank(i)` is record `i`'s
/// 8-byte prefix and `target` the searched one's: interpolation rounds
/// (bounded), then bisection of what is left.
fn interpolate(n: usize, target: u64, rank: impl Fn(usize) -> u64, below: impl Fn(usize) -> bool) -> usize {
    // Invariant: below(i) for i < lo, !below(i) for i >= hi.
    let (mut lo, mut hi) = (0usize, n);
    for _ in 0..MAX_INTERPOLATIONS {
        if hi - lo <= 16 {
            break;
        }
        let (a, b) = (rank(lo), rank(hi - 1));
        if target < a {
            return lo;
        }
        if target > b {
            return hi;
        }
        let span = (b - a).max(1) as u128;
        let g = lo + ((u128::from(target - a) * (hi - 1 - lo) as u128) / span) as usize;
        let g = g.min(hi - 1);
        if below(g) {
            lo = g + 1;
        } else {
            hi = g;
        }
    }
    lo + partition(hi - lo, |i| below(lo + i))
}

/// The first index in `0..n` where `below` turns false (it must be monotone).
fn partition(n: usize, below: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if below(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

fn split_trailer(bytes: &[u8]) -> Result<(usize, VerifyingKey, Signature), ListError> {
    if bytes.len() > MAX_LIST {
        return Err(format("larger than the 4 GiB limit"));
    }
    let body = bytes.len().checked_sub(TRAILER_LEN).ok_or_else(|| format("too short"))?;
    let t = &bytes[body..];
    if t[..8] != TRAILER_MAGIC {
        return Err(format("no signature trailer"));
    }
    let mut pk = [0u8; 32];
    pk.copy_from_slice(&t[8..40]);
    let key = VerifyingKey::from_bytes(&pk).map_err(|_| ListError::Signature(" (malformed key)"))?;
    let mut sig = [0u8; 64];
    sig.copy_from_slice(&t[40..]);
    Ok((body, key, Signature::from_bytes(&sig)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[3; 32])
    }

    fn sample() -> (Vec<u8>, Vec<Digest>) {
        let mut b = Builder::new();
        let p0 = b.add_package("a-1-1.noarch", Mark::Verified);
        let p1 = b.add_package("b-2-1.x86_64", Mark::Unsigned);
        let mut ds = Vec::new();
        for i in 0..100u32 {
            let d = Digest::of(HashAlgo::Sha256, &i.to_le_bytes());
            b.add_digest(&d, if i % 2 == 0 { p0 } else { p1 }).unwrap();
            ds.push(d);
        }
        let shared = Digest::of(HashAlgo::Sha512, b"shared");
        b.add_digest(&shared, p0).unwrap();
        b.add_digest(&shared, p1).unwrap();
        ds.push(shared);
        (b.finish(42, 7, &key()), ds)
    }

    #[test]
    fn every_added_digest_is_found_with_its_package() {
        let (bytes, ds) = sample();
        let l = DigestList::open(bytes, &key().verifying_key()).unwrap();
        for (i, d) in ds[..100].iter().enumerate() {
            let hits: Vec<_> = l.lookup(d).collect();
            assert_eq!(hits.len(), 1);
            assert_eq!(hits[0].index, (i % 2) as u32);
        }
        let hits: Vec<_> = l.lookup(&ds[100]).map(|p| p.name).collect();
        assert_eq!(hits, ["a-1-1.noarch", "b-2-1.x86_64"]);
        let zeros = |a| Digest::new(a, &[0; 64][..HashAlgo::digest_len(a)]).unwrap();
        assert_eq!(l.lookup(&zeros(HashAlgo::Sha256)).count(), 0);
        assert_eq!(l.lookup(&zeros(HashAlgo::Sha384)).count(), 0);
        assert_eq!((l.created(), l.sequence(), l.len()), (42, 7, 102));
        let algos: Vec<_> = l.algorithms();
        assert_eq!(algos, [(HashAlgo::Sha256, 100), (HashAlgo::Sha512, 2)]);
    }

    #[test]
    fn only_carried_algorithms_and_added_packages_are_listed() {
        let mut b = Builder::new();
        let p = b.add_package("a-1-1.noarch", Mark::Verified);
        let sha1 = Digest::of(HashAlgo::Sha1, b"x");
        assert!(matches!(b.add_digest(&sha1, p), Err(ListError::NotCarried(HashAlgo::Sha1))));
        let d = Digest::of(HashAlgo::Sha256, b"x");
        assert!(matches!(b.add_digest(&d, p + 1), Err(ListError::NoPackage(1))));
        assert!(b.is_empty());
    }

    #[test]
    fn only_a_later_sequence_number_supersedes_a_list() {
        let k = key();
        let list = |seq| DigestList::open(Builder::new().finish(1, seq, &k), &k.verifying_key()).unwrap();
        assert!(list(8).supersedes(&list(7)));
        assert!(!list(7).supersedes(&list(7)));
        assert!(!list(6).supersedes(&list(7)));
    }

    #[test]
    fn the_interpolation_search_finds_the_first_of_equal_records_in_any_distribution() {
        let mut v: Vec<u64> = (0..200).map(|i| i * i * i).collect();
        v.extend([u64::MAX - 1; 40]);
        v.extend((0..100).map(|i| u64::MAX - 1 + (i / 99)));
        v.sort();
        let mut targets: Vec<u64> = v.clone();
        targets.extend([0, 1, 5, 9, 26, 28, u64::MAX, u64::MAX - 2, 1 << 40]);
        for target in targets {
            let want = v.partition_point(|&x| x < target);
            assert_eq!(interpolate(v.len(), target, |i| v[i], |i| v[i] < target), want, "target {target}");
        }
        assert_eq!(interpolate(0, 5, |_| 0, |_| true), 0);
    }

    #[test]
    fn a_list_signed_by_another_key_or_changed_is_refused() {
        let (bytes, _) = sample();
        let other = SigningKey::from_bytes(&[4; 32]).verifying_key();
        assert!(matches!(DigestList::open(bytes.clone(), &other), Err(ListError::Signature(_))));
        for at in [0, 20, 30, 100, bytes.len() - 70, bytes.len() - 1] {
            let mut b = bytes.clone();
            b[at] ^= 1;
            assert!(DigestList::open(b, &key().verifying_key()).is_err(), "byte {at}");
        }
        assert!(DigestList::open(bytes[..bytes.len() - 1].to_vec(), &key().verifying_key()).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_signed_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..400)) {
            // Signed garbage: the signature verifies, so parsing must hold.
            let k = key();
            let mut bytes = body.clone();
            let sig = k.sign(&signed_message(&bytes));
            bytes.extend_from_slice(&TRAILER_MAGIC);
            bytes.extend_from_slice(k.verifying_key().as_bytes());
            bytes.extend_from_slice(&sig.to_bytes());
            let _ = DigestList::open(bytes, &k.verifying_key());
        }

        #[test]
        fn signed_mutations_of_a_valid_list_never_panic(at in 0usize..2000, x in 1u8..=255) {
            let (bytes, _) = sample();
            let body = bytes.len() - TRAILER_LEN;
            let mut b = bytes[..body].to_vec();
            let at = at % body;
            b[at] ^= x;
            let k = key();
            let sig = k.sign(&signed_message(&b));
            b.extend_from_slice(&TRAILER_MAGIC);
            b.extend_from_slice(k.verifying_key().as_bytes());
            b.extend_from_slice(&sig.to_bytes());
            if let Ok(l) = DigestList::open(b, &k.verifying_key()) {
                for p in l.packages() { let _ = p.name; }
                let _ = l.lookup(&Digest::of(HashAlgo::Sha256, b"")).count();
            }
        }
    }
}
