//! Hash algorithms and digests: one type each, whichever format named them.
//!
//! Three formats name hash algorithms by number, and they share the numbering:
//! OpenPGP (RFC 9580 §9.5, one octet), rpm headers (`PGPHASHALGO_*`, the
//! OpenPGP ids as 32-bit values) and the tables of a digest list (the same ids,
//! SHA-2 256/384/512 only). [`HashAlgo`] is what they name, with a conversion
//! from and to each; [`HashId`] is an id as a header gave it, implemented or
//! not (to say which algorithm was refused). A [`Digest`] is an algorithm's
//! output, of its length by construction, printed as lower-case hex; [`Hex`]
//! is the one hex formatter (`{}` and `{:x}` lower case, `{:X}` upper case, as
//! OpenPGP fingerprints are printed).
//!
//! Trust level: trusted. Nothing here parses; it hashes bytes and prints.
//!
//! ```
//! use umd_hash::{Digest, HashAlgo, Hex};
//! let algo = HashAlgo::from_id(8).unwrap();
//! assert_eq!((algo, algo.name(), algo.to_string()), (HashAlgo::Sha256, "SHA256", "SHA2-256".into()));
//! assert_eq!(HashAlgo::from_rpm(8), Some(algo));
//! assert_eq!(HashAlgo::from_list_id(algo.list_id().unwrap()), Some(algo));
//! let d = Digest::of(algo, b"abc");
//! assert!(d.to_string().starts_with("ba7816bf"));
//! assert_eq!(Digest::from_hex(algo, d.to_string().as_bytes()), Some(d));
//! assert_eq!(format!("{:X}", Hex(&[0xab, 0x01])), "AB01");
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::fmt;

use sha2::Digest as _;

/// An OpenPGP hash algorithm id this project does not implement (MD5,
/// RIPEMD-160, SHA-3, or unassigned).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown or unsupported hash algorithm id {0}")]
pub struct UnknownHash(pub u8);

/// A hash algorithm this project implements.
///
/// Which ones are *acceptable* is not decided here but by each driver's
/// policy (SHA-1 and SHA2-224 are implemented for OpenPGP signatures that a
/// policy may still refuse).
///
/// ```
/// use umd_hash::HashAlgo;
/// let h = HashAlgo::from_id(10).unwrap();
/// assert_eq!((h, h.id(), h.digest_len()), (HashAlgo::Sha512, 10, 64));
/// assert!(HashAlgo::from_id(1).is_err()); // MD5
/// assert_eq!(HashAlgo::Sha1.list_id(), None); // digest lists carry SHA-2 256/384/512
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlgo {
    /// SHA-1 (id 2): collisions are practical; see the policies.
    Sha1,
    /// SHA2-224 (id 11).
    Sha224,
    /// SHA2-256 (id 8).
    Sha256,
    /// SHA2-384 (id 9).
    Sha384,
    /// SHA2-512 (id 10).
    Sha512,
}

/// The longest digest of a [`HashAlgo`] (SHA2-512).
pub const MAX_DIGEST_LEN: usize = 64;

impl HashAlgo {
    /// Every implemented algorithm.
    pub const ALL: [HashAlgo; 5] =
        [HashAlgo::Sha1, HashAlgo::Sha224, HashAlgo::Sha256, HashAlgo::Sha384, HashAlgo::Sha512];

    /// From the OpenPGP id (RFC 9580 §9.5). MD5 (1), RIPEMD-160 (3), SHA3 (12,
    /// 14) and anything unknown are refused.
    pub fn from_id(id: u8) -> Result<HashAlgo, UnknownHash> {
        Ok(match id {
            2 => HashAlgo::Sha1,
            8 => HashAlgo::Sha256,
            9 => HashAlgo::Sha384,
            10 => HashAlgo::Sha512,
            11 => HashAlgo::Sha224,
            _ => return Err(UnknownHash(id)),
        })
    }

    /// The OpenPGP id.
    pub fn id(self) -> u8 {
        match self {
            HashAlgo::Sha1 => 2,
            HashAlgo::Sha256 => 8,
            HashAlgo::Sha384 => 9,
            HashAlgo::Sha512 => 10,
            HashAlgo::Sha224 => 11,
        }
    }

    /// From an rpm header's algorithm value (`PGPHASHALGO_*`: the OpenPGP ids).
    pub fn from_rpm(id: u32) -> Option<HashAlgo> {
        u8::try_from(id).ok().and_then(|id| HashAlgo::from_id(id).ok())
    }

    /// As an rpm header writes it.
    pub fn rpm_id(self) -> u32 {
        u32::from(self.id())
    }

    /// From a digest list table's algorithm field: SHA2-256, -384 and -512
    /// only (`docs/digest-list.md`).
    pub fn from_list_id(id: u32) -> Option<HashAlgo> {
        HashAlgo::from_rpm(id).filter(|a| a.list_id().is_some())
    }

    /// A digest list table's algorithm field for this algorithm, if lists
    /// carry it.
    pub fn list_id(self) -> Option<u32> {
        match self {
            HashAlgo::Sha256 | HashAlgo::Sha384 | HashAlgo::Sha512 => Some(self.rpm_id()),
            HashAlgo::Sha1 | HashAlgo::Sha224 => None,
        }
    }

    /// Digest length in octets.
    pub fn digest_len(self) -> usize {
        match self {
            HashAlgo::Sha1 => 20,
            HashAlgo::Sha224 => 28,
            HashAlgo::Sha256 => 32,
            HashAlgo::Sha384 => 48,
            HashAlgo::Sha512 => 64,
        }
    }

    /// The salt length of a v6 OpenPGP signature using this hash (RFC 9580
    /// §9.5), or `None` if v6 signatures may not use it.
    pub fn v6_salt_len(self) -> Option<usize> {
        match self {
            HashAlgo::Sha1 => None,
            HashAlgo::Sha224 | HashAlgo::Sha256 => Some(16),
            HashAlgo::Sha384 => Some(24),
            HashAlgo::Sha512 => Some(32),
        }
    }

    /// The name rpm (`rpm -qi`'s digest names) and umd's digest list output
    /// print: `SHA256`. [`fmt::Display`] gives RFC 9580's (`SHA2-256`), as the
    /// OpenPGP messages do.
    pub fn name(self) -> &'static str {
        match self {
            HashAlgo::Sha1 => "SHA1",
            HashAlgo::Sha224 => "SHA224",
            HashAlgo::Sha256 => "SHA256",
            HashAlgo::Sha384 => "SHA384",
            HashAlgo::Sha512 => "SHA512",
        }
    }

    /// A fresh streaming hasher.
    pub fn hasher(self) -> Hasher {
        Hasher {
            algo: self,
            state: match self {
                HashAlgo::Sha1 => State::Sha1(sha1::Sha1::new()),
                HashAlgo::Sha224 => State::Sha224(sha2::Sha224::new()),
                HashAlgo::Sha256 => State::Sha256(sha2::Sha256::new()),
                HashAlgo::Sha384 => State::Sha384(sha2::Sha384::new()),
                HashAlgo::Sha512 => State::Sha512(sha2::Sha512::new()),
            },
        }
    }
}

impl fmt::Display for HashAlgo {
    /// RFC 9580's name: `SHA-1`, `SHA2-256`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HashAlgo::Sha1 => "SHA-1",
            HashAlgo::Sha224 => "SHA2-224",
            HashAlgo::Sha256 => "SHA2-256",
            HashAlgo::Sha384 => "SHA2-384",
            HashAlgo::Sha512 => "SHA2-512",
        })
    }
}

/// A hash algorithm id as a header or packet gave it (OpenPGP/rpm numbering),
/// implemented or not: what a refusal names. Serialized as the number.
///
/// ```
/// use umd_hash::{HashAlgo, HashId};
/// assert_eq!(HashId(8).algo(), Some(HashAlgo::Sha256));
/// assert_eq!([HashId(8), HashId(1), HashId(7)].map(|i| i.to_string()), ["SHA256", "MD5", "algorithm 7"]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize), serde(transparent))]
pub struct HashId(pub u32);

impl HashId {
    /// MD5 (rpm's file digest algorithm when a header names none).
    pub const MD5: HashId = HashId(1);

    /// The implemented algorithm it names, if any.
    pub fn algo(self) -> Option<HashAlgo> {
        HashAlgo::from_rpm(self.0)
    }
}

impl From<HashAlgo> for HashId {
    fn from(a: HashAlgo) -> HashId {
        HashId(a.rpm_id())
    }
}

impl fmt::Display for HashId {
    /// [`HashAlgo::name`]; `MD5`; else `algorithm N`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.algo(), *self) {
            (Some(a), _) => f.write_str(a.name()),
            (None, HashId::MD5) => f.write_str("MD5"),
            (None, HashId(n)) => write!(f, "algorithm {n}"),
        }
    }
}

/// A streaming hash over one of the [`HashAlgo`]s.
///
/// ```
/// use umd_hash::HashAlgo;
/// let mut h = HashAlgo::Sha256.hasher();
/// h.update(b"ab");
/// h.update(b"c");
/// assert_eq!(h.finish()[..4], [0xba, 0x78, 0x16, 0xbf]);
/// ```
#[derive(Clone)]
pub struct Hasher {
    algo: HashAlgo,
    state: State,
}

#[derive(Clone)]
enum State {
    Sha1(sha1::Sha1),
    Sha224(sha2::Sha224),
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
}

impl Hasher {
    /// Feeds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        match &mut self.state {
            State::Sha1(h) => h.update(bytes),
            State::Sha224(h) => h.update(bytes),
            State::Sha256(h) => h.update(bytes),
            State::Sha384(h) => h.update(bytes),
            State::Sha512(h) => h.update(bytes),
        }
    }

    /// The algorithm.
    pub fn algo(&self) -> HashAlgo {
        self.algo
    }

    /// The digest.
    pub fn digest(self) -> Digest {
        let mut d = Digest { algo: self.algo, bytes: [0; MAX_DIGEST_LEN] };
        let len = self.algo.digest_len();
        match self.state {
            State::Sha1(h) => d.bytes[..len].copy_from_slice(&h.finalize()),
            State::Sha224(h) => d.bytes[..len].copy_from_slice(&h.finalize()),
            State::Sha256(h) => d.bytes[..len].copy_from_slice(&h.finalize()),
            State::Sha384(h) => d.bytes[..len].copy_from_slice(&h.finalize()),
            State::Sha512(h) => d.bytes[..len].copy_from_slice(&h.finalize()),
        }
        d
    }

    /// The digest's octets (for code that keeps digests as bytes, such as
    /// the OpenPGP signature check).
    pub fn finish(self) -> Vec<u8> {
        self.digest().as_bytes().to_vec()
    }
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Hasher").field(&self.algo).finish()
    }
}

/// The output of a [`HashAlgo`]: exactly its digest length, by construction.
/// Printed (`{}`, `{:x}`) as lower-case hex, as rpm and `sha256sum` print
/// digests; `{:X}` upper case. Serialized (feature `serde`) as that hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest {
    algo: HashAlgo,
    /// The digest, then zeros (so that the derived comparisons hold).
    bytes: [u8; MAX_DIGEST_LEN],
}

impl Digest {
    /// `bytes` as a digest of `algo`, if they are as long as its digests.
    pub fn new(algo: HashAlgo, bytes: &[u8]) -> Option<Digest> {
        if bytes.len() != algo.digest_len() {
            return None;
        }
        let mut d = Digest { algo, bytes: [0; MAX_DIGEST_LEN] };
        d.bytes[..bytes.len()].copy_from_slice(bytes);
        Some(d)
    }

    /// A digest of `algo` written in hex (either case), if it is one.
    pub fn from_hex(algo: HashAlgo, hex: &[u8]) -> Option<Digest> {
        if hex.len() != 2 * algo.digest_len() {
            return None;
        }
        Digest::new(algo, &unhex(hex)?)
    }

    /// Hashes `data`.
    pub fn of(algo: HashAlgo, data: &[u8]) -> Digest {
        let mut h = algo.hasher();
        h.update(data);
        h.digest()
    }

    /// The algorithm.
    pub fn algo(&self) -> HashAlgo {
        self.algo
    }

    /// The digest's octets.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.algo.digest_len()]
    }
}

impl AsRef<[u8]> for Digest {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&Hex(self.as_bytes()), f)
    }
}

impl fmt::LowerHex for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::LowerHex::fmt(&Hex(self.as_bytes()), f)
    }
}

impl fmt::UpperHex for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::UpperHex::fmt(&Hex(self.as_bytes()), f)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({}:{self})", self.algo.name())
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Hashes what `reader` yields with each of `algos` in one pass, 64 KiB at a
/// time: a file is never held whole. The digests come in the order of `algos`.
pub fn hash_reader(algos: &[HashAlgo], mut reader: impl std::io::Read) -> std::io::Result<Vec<Digest>> {
    let mut hs: Vec<Hasher> = algos.iter().map(|a| a.hasher()).collect();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        for h in &mut hs {
            h.update(&buf[..n]);
        }
    }
    Ok(hs.into_iter().map(Hasher::digest).collect())
}

/// Bytes printed as hex: `{}` and `{:x}` lower case, `{:X}` upper case (the
/// case OpenPGP tools print fingerprints and key IDs in).
///
/// ```
/// use umd_hash::Hex;
/// assert_eq!(Hex(b"\x00\xff").to_string(), "00ff");
/// assert_eq!(format!("{:X}", Hex(b"\x00\xff")), "00FF");
/// ```
#[derive(Clone, Copy)]
pub struct Hex<'a>(pub &'a [u8]);

impl Hex<'_> {
    fn write(&self, f: &mut fmt::Formatter<'_>, digits: &[u8; 16]) -> fmt::Result {
        let mut buf = [0u8; 128];
        for chunk in self.0.chunks(buf.len() / 2) {
            for (i, b) in chunk.iter().enumerate() {
                buf[2 * i] = digits[usize::from(b >> 4)];
                buf[2 * i + 1] = digits[usize::from(b & 0xf)];
            }
            f.write_str(std::str::from_utf8(&buf[..2 * chunk.len()]).map_err(|_| fmt::Error)?)?;
        }
        Ok(())
    }
}

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::LowerHex::fmt(self, f)
    }
}

impl fmt::LowerHex for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, b"0123456789abcdef")
    }
}

impl fmt::UpperHex for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, b"0123456789ABCDEF")
    }
}

/// Hex (either case, no separators, no sign) to bytes; `None` if it is not.
///
/// ```
/// assert_eq!(umd_hash::unhex(b"00fF"), Some(vec![0, 255]));
/// assert_eq!(umd_hash::unhex(b"+f"), None);
/// ```
pub fn unhex(s: &[u8]) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    let nib = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    s.chunks_exact(2).map(|p| Some(nib(p[0])? << 4 | nib(p[1])?)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_number_space_round_trips_and_agrees() {
        for a in HashAlgo::ALL {
            assert_eq!(HashAlgo::from_id(a.id()), Ok(a));
            assert_eq!(HashAlgo::from_rpm(a.rpm_id()), Some(a));
            assert_eq!(HashId::from(a).algo(), Some(a));
            if let Some(l) = a.list_id() {
                assert_eq!(HashAlgo::from_list_id(l), Some(a));
            }
            assert_eq!(Digest::of(a, b"").as_bytes().len(), a.digest_len());
        }
        for id in [0, 1, 3, 12, 14, 255] {
            assert_eq!(HashAlgo::from_id(id), Err(UnknownHash(id)));
        }
        assert_eq!(HashAlgo::from_rpm(256 + 8), None);
        assert_eq!(HashAlgo::from_list_id(2), None);
        assert_eq!(HashAlgo::from_list_id(11), None);
    }

    #[test]
    fn digests_print_as_sha256sum_does() {
        let d = Digest::of(HashAlgo::Sha256, b"hello\n");
        assert_eq!(d.to_string(), "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03");
        assert_eq!(format!("{d:X}"), d.to_string().to_uppercase());
        assert_eq!(Digest::from_hex(HashAlgo::Sha256, d.to_string().to_uppercase().as_bytes()), Some(d));
        assert_eq!(Digest::from_hex(HashAlgo::Sha512, d.to_string().as_bytes()), None);
        assert_eq!(Digest::new(HashAlgo::Sha256, &[0; 31]), None);
        let long: Vec<u8> = (0..=255).collect();
        let want: String = long.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(Hex(&long).to_string(), want);
    }

    #[test]
    fn hashing_a_reader_agrees_with_hashing_the_bytes() {
        let data = vec![7u8; 200_000];
        let got = hash_reader(&[HashAlgo::Sha256, HashAlgo::Sha512], &data[..]).unwrap();
        assert_eq!(got, [Digest::of(HashAlgo::Sha256, &data), Digest::of(HashAlgo::Sha512, &data)]);
    }
}
