//! The manager's own OpenPGP cryptography: hashes, signature hashing,
//! verification, fingerprints and key facts (RFC 9580 §5.2.4, §5.5.4, §12).
//!
//! Role in the manager/handler split: the handler parses packets, the manager
//! re-encodes every described field and compares it with the raw bytes (see
//! `packet`). Everything here works only from those already-checked fields
//! ([`CheckedKey`], [`CheckedSig`]: only `packet::check` makes them), and
//! never from a value the handler merely *claims*
//! (a digest, a key ID, a fingerprint): the manager hashes the data itself,
//! computes fingerprints itself and runs the signature check with RustCrypto.
//!
//! Nothing here decides what is *acceptable* (SHA-1, key sizes, expiry): that
//! is the [`crate::policy`] module's job. This module only says whether the
//! mathematics holds. Every function returns an error rather than panicking on
//! any input: wrong lengths, zero or huge MPIs, points off the curve.
//!
//! ```
//! use umd_pgp::crypto::{HashAlgo, fingerprint};
//! // RFC 9580 §A.3: the v6 sample certificate's primary key.
//! let body = [
//!     &[0x06, 0x63, 0x87, 0x7f, 0xe3, 0x1b, 0, 0, 0, 0x20][..],
//!     &[0xf9, 0x4d, 0xa7, 0xbb, 0x48, 0xd6, 0x0a, 0x61, 0xe5, 0x67, 0x70, 0x6a, 0x65, 0x87,
//!       0xd0, 0x33, 0x19, 0x99, 0xbb, 0x9d, 0x89, 0x1a, 0x08, 0x24, 0x2e, 0xad, 0x84, 0x54,
//!       0x3d, 0xf8, 0x95, 0xa3][..],
//! ].concat();
//! let fpr = fingerprint(6, &body).unwrap();
//! assert_eq!(fpr.to_string(), "CB186C4F0609A697E4D52DFA6C722B0C1F1E27C18A56708F6525EC27BAD9ACC9");
//! assert_eq!(fpr.key_id().to_string(), "CB186C4F0609A697");
//! assert_eq!(HashAlgo::from_id(8).unwrap(), HashAlgo::Sha256);
//! ```

use std::fmt;

use umd_hash::Hex;

use crate::packet::{CheckedField as Field, CheckedKey, CheckedSig};

/// What went wrong while hashing or verifying. Each variant names the
/// algorithm, field or length at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// A hash algorithm id this manager does not implement.
    #[error("unknown or unsupported hash algorithm id {0}")]
    UnknownHash(u8),
    /// A public key algorithm (or algorithm/curve pair) this manager does not verify.
    #[error("unsupported public key algorithm {algo} ({})", algo_name(*algo))]
    UnsupportedAlgorithm {
        /// The OpenPGP public key algorithm id.
        algo: u8,
    },
    /// An elliptic curve OID this manager does not support for this algorithm.
    #[error("unsupported curve OID {oid} for public key algorithm {algo} ({})", algo_name(*algo))]
    UnsupportedCurve {
        /// The public key algorithm id.
        algo: u8,
        /// The OID octets, in hex.
        oid: String,
    },
    /// Only v4 and v6 keys and signatures exist in RFC 9580 for our purposes.
    #[error("unsupported {what} version {version} (only 4 and 6)")]
    UnsupportedVersion {
        /// "key" or "signature".
        what: &'static str,
        /// The version octet.
        version: u8,
    },
    /// RFC 9580 §5.2.3: v6 keys make v6 signatures, v4 keys v4 signatures.
    #[error("a v{key} key cannot make a v{sig} signature")]
    VersionMismatch {
        /// The key's version.
        key: u8,
        /// The signature's version.
        sig: u8,
    },
    /// The signature names a different public key algorithm than the key's.
    #[error("signature algorithm {sig} ({}) does not match key algorithm {key} ({})", algo_name(*sig), algo_name(*key))]
    AlgorithmMismatch {
        /// The key's algorithm id.
        key: u8,
        /// The signature's algorithm id.
        sig: u8,
    },
    /// The key's algorithm-specific fields do not have the expected shape.
    #[error("bad {} key material: {why}", algo_name(*algo))]
    BadKeyMaterial {
        /// The public key algorithm id.
        algo: u8,
        /// What is wrong.
        why: &'static str,
    },
    /// The signature's algorithm-specific fields do not have the expected shape.
    #[error("bad {} signature values: {why}", algo_name(*algo))]
    BadSignatureValues {
        /// The public key algorithm id.
        algo: u8,
        /// What is wrong.
        why: &'static str,
    },
    /// The digest handed to [`verify`] is not as long as the signature's hash.
    #[error("digest is {got} octets, but {hash} digests are {expected}")]
    DigestLength {
        /// The signature's hash algorithm.
        hash: HashAlgo,
        /// Its digest length.
        expected: usize,
        /// The length given.
        got: usize,
    },
    /// The signature's "left 16 bits" do not match the computed digest: the
    /// data, the key or the signature is not the one that was signed.
    #[error("left 16 bits of the digest are {got:02X?}, the signature says {expected:02X?}")]
    Left16Mismatch {
        /// What the signature packet carries.
        expected: [u8; 2],
        /// The first two octets of the computed digest.
        got: [u8; 2],
    },
    /// The mathematics failed: the signature was not made by this key over this digest.
    #[error("{} signature does not verify", algo_name(*algo))]
    BadSignature {
        /// The public key algorithm id.
        algo: u8,
    },
    /// A subpacket cannot be written with the length form it claims.
    #[error("subpacket type {typ}: length {len} cannot be encoded in {len_octets} octet(s)")]
    SubpacketLength {
        /// The subpacket type.
        typ: u8,
        /// Its length (type octet and body).
        len: usize,
        /// The length form it claims (1, 2 or 5).
        len_octets: u8,
    },
    /// A v4 hashed area is limited to 65535 octets, a v6 one to 2³²-1.
    #[error("v{version} hashed subpacket area of {len} octets is too long")]
    HashedAreaTooLong {
        /// The signature version.
        version: u8,
        /// The area's length.
        len: usize,
    },
    /// RFC 9580 §9.5: a v6 signature's salt length is fixed by its hash; v4 has none.
    #[error("v{version} signature with {hash} has a {got}-octet salt, expected {expected}")]
    SaltLength {
        /// The signature version.
        version: u8,
        /// The hash algorithm.
        hash: HashAlgo,
        /// The required length (0 for v4).
        expected: usize,
        /// The salt's length.
        got: usize,
    },
    /// RFC 9580 §9.5: SHA-1 has no salt size, so no v6 signature may use it.
    #[error("{hash} cannot be used in a v6 signature")]
    HashNotForV6 {
        /// The hash algorithm.
        hash: HashAlgo,
    },
    /// A key too long to be framed for hashing (v4 keys have a 2-octet length).
    #[error("v{version} key body of {len} octets is too long to hash")]
    KeyTooLong {
        /// The framing version.
        version: u8,
        /// The body length.
        len: usize,
    },
    /// A fingerprint whose length does not fit its key version (20 for v4, 32 for v6).
    #[error("a v{version} fingerprint cannot be {len} octets")]
    FingerprintLength {
        /// The key version.
        version: u8,
        /// The length given.
        len: usize,
    },
    /// A user ID or attribute longer than a 4-octet length.
    #[error("{what} of {len} octets is too long to hash")]
    TooLong {
        /// "user ID" or "user attribute".
        what: &'static str,
        /// Its length.
        len: usize,
    },
}

/// The RFC 9580 §9.1 name of a public key algorithm id, for messages.
pub fn algo_name(algo: u8) -> &'static str {
    match algo {
        1 => "RSA",
        2 => "RSA encrypt-only",
        3 => "RSA sign-only",
        16 => "ElGamal",
        17 => "DSA",
        18 => "ECDH",
        19 => "ECDSA",
        20 => "ElGamal (reserved)",
        22 => "EdDSALegacy",
        25 => "X25519",
        26 => "X448",
        27 => "Ed25519",
        28 => "Ed448",
        _ => "unknown",
    }
}

// ---------------------------------------------------------------------------
// Hashes
// ---------------------------------------------------------------------------

/// The hash algorithms (one type for OpenPGP, rpm and digest lists: see
/// [`umd_hash`]).
pub use umd_hash::{HashAlgo, Hasher};

impl From<umd_hash::UnknownHash> for CryptoError {
    fn from(e: umd_hash::UnknownHash) -> CryptoError {
        CryptoError::UnknownHash(e.0)
    }
}

/// The PKCS#1 v1.5 DigestInfo prefix (RFC 9580 §5.2.2): the DER of the
/// hash OID, written before the digest inside an RSA signature.
fn pkcs1_prefix(hash: HashAlgo) -> &'static [u8] {
    match hash {
        HashAlgo::Sha1 => {
            &[0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2B, 0x0E, 0x03, 0x02, 0x1A, 0x05, 0x00, 0x04, 0x14]
        }
        HashAlgo::Sha224 => &[
            0x30, 0x2D, 0x30, 0x0D, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x04, 0x05,
            0x00, 0x04, 0x1C,
        ],
        HashAlgo::Sha256 => &[
            0x30, 0x31, 0x30, 0x0D, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
            0x00, 0x04, 0x20,
        ],
        HashAlgo::Sha384 => &[
            0x30, 0x41, 0x30, 0x0D, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05,
            0x00, 0x04, 0x30,
        ],
        HashAlgo::Sha512 => &[
            0x30, 0x51, 0x30, 0x0D, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05,
            0x00, 0x04, 0x40,
        ],
    }
}

// ---------------------------------------------------------------------------
// Signature hashing (RFC 9580 §5.2.4)
// ---------------------------------------------------------------------------

/// The signature's own contribution to its hash, appended after the signed
/// data (RFC 9580 §5.2.4):
///
/// - v4: version, type, public key algo, hash algo, 2-octet hashed area
///   length, the hashed area, then `0x04 0xFF` and the 4-octet length of the
///   hashed portion (6 + area length);
/// - v6: the same with a 4-octet area length, then `0x06 0xFF` and the
///   4-octet length of the hashed portion (8 + area length).
///
/// The salt of a v6 signature is *not* part of this: it is hashed first (see
/// [`SigHasher`]).
pub fn hashed_trailer(sig: &CheckedSig) -> Result<Vec<u8>, CryptoError> {
    let area = sig.hashed_area()?;
    let too_long = || CryptoError::HashedAreaTooLong { version: sig.version(), len: area.len() };
    let mut out = vec![sig.version(), sig.sig_type(), sig.pk_algo(), sig.hash_algo()];
    match sig.version() {
        4 => {
            let l = u16::try_from(area.len()).map_err(|_| too_long())?;
            out.extend_from_slice(&l.to_be_bytes());
        }
        6 => {
            let l = u32::try_from(area.len()).map_err(|_| too_long())?;
            out.extend_from_slice(&l.to_be_bytes());
        }
        v => return Err(CryptoError::UnsupportedVersion { what: "signature", version: v }),
    }
    out.extend_from_slice(&area);
    let hashed_len = u32::try_from(out.len()).map_err(|_| too_long())?;
    out.push(sig.version());
    out.push(0xff);
    out.extend_from_slice(&hashed_len.to_be_bytes());
    Ok(out)
}

/// Hashes what a signature covers, in the order RFC 9580 §5.2.4 prescribes:
/// the salt (v6), then the signed objects, then the signature's
/// [`hashed_trailer`].
///
/// Which objects depend on the signature type, and are the caller's choice:
///
/// | type | objects |
/// |---|---|
/// | 0x00 binary, 0x01 text | [`data`](Self::data) (text already canonicalized: CRLF line ends) |
/// | 0x10–0x13, 0x30 on a user ID | [`key`](Self::key) (primary), [`user_id`](Self::user_id) |
/// | same on a user attribute | [`key`](Self::key), [`user_attribute`](Self::user_attribute) |
/// | 0x18, 0x19, 0x28 bindings | [`key`](Self::key) (primary), [`key`](Self::key) (subkey) |
/// | 0x1F, 0x20 direct key | [`key`](Self::key) |
///
/// It takes only a [`CheckedSig`]: a signature packet whose description
/// `packet::check` found to be its bytes.
///
/// ```
/// use umd_pgp::crypto::SigHasher;
/// use umd_pgp::packet::{check, encode_sig};
/// use umd_pgp_wire::{Body, Description, Field, Packet, Sig};
/// let sig = Sig { version: 4, sig_type: 0, pk_algo: 27, hash_algo: 8, hashed: vec![],
///     unhashed: vec![], left16: [0, 0], salt: vec![], values: vec![Field::Raw(vec![1; 64])] };
/// let body = encode_sig(&sig).unwrap();
/// let stream = [&[0xc2, body.len() as u8][..], &body].concat();
/// let desc = Description { packets: vec![Packet { offset: 0, header_len: 2,
///     body_len: body.len() as u64, tag: 2, body: Body::Signature(sig) }] };
/// let packets = check(&stream, desc).unwrap();
/// let mut h = SigHasher::new(packets[0].signature().unwrap()).unwrap();
/// h.data(b"OpenPGP");
/// assert_eq!(h.finish().len(), 32);
/// ```
#[derive(Debug, Clone)]
pub struct SigHasher {
    version: u8,
    hash_algo: u8,
    salt: Vec<u8>,
    hasher: Hasher,
    trailer: Vec<u8>,
}

impl SigHasher {
    /// Starts hashing for `sig`: checks its version, hash and salt length,
    /// prepares the trailer and hashes the salt (v6).
    pub fn new(sig: &CheckedSig) -> Result<SigHasher, CryptoError> {
        let hash = HashAlgo::from_id(sig.hash_algo())?;
        let expected = match sig.version() {
            4 => 0,
            6 => hash.v6_salt_len().ok_or(CryptoError::HashNotForV6 { hash })?,
            v => return Err(CryptoError::UnsupportedVersion { what: "signature", version: v }),
        };
        if sig.salt().len() != expected {
            return Err(CryptoError::SaltLength {
                version: sig.version(),
                hash,
                expected,
                got: sig.salt().len(),
            });
        }
        let trailer = hashed_trailer(sig)?;
        let mut hasher = hash.hasher();
        // RFC 9580 §5.2.4: for v6 signatures the salt comes before anything else.
        hasher.update(sig.salt());
        Ok(SigHasher {
            version: sig.version(),
            hash_algo: sig.hash_algo(),
            salt: sig.salt().to_vec(),
            hasher,
            trailer,
        })
    }

    /// This hasher's state, with `sig`'s trailer, if `sig` hashes the same
    /// prefix: same version, hash algorithm and salt. A document with several
    /// signatures over it (Debian's `InRelease` has three) is then hashed once:
    /// feed the data to the first signature's hasher, then take a copy of it for
    /// each of the others before [`finish`](SigHasher::finish).
    pub fn for_signature(&self, sig: &CheckedSig) -> Result<Option<SigHasher>, CryptoError> {
        if (sig.version(), sig.hash_algo(), sig.salt())
            != (self.version, self.hash_algo, self.salt.as_slice())
        {
            return Ok(None);
        }
        let trailer = hashed_trailer(sig)?;
        Ok(Some(SigHasher { trailer, ..self.clone() }))
    }

    /// Hashes document bytes as given (binary), or text the caller has already
    /// canonicalized (type 0x01).
    pub fn data(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
    }

    /// Hashes a public key packet body: v4 as `0x99`, 2-octet length, body;
    /// v6 as `0x9B`, 4-octet length, body.
    pub fn key(&mut self, key_body: &[u8]) -> Result<(), CryptoError> {
        let frame = key_frame(self.version, key_body.len())?;
        self.hasher.update(&frame);
        self.hasher.update(key_body);
        Ok(())
    }

    /// Hashes a user ID: `0xB4`, 4-octet length, the ID.
    pub fn user_id(&mut self, id: &[u8]) -> Result<(), CryptoError> {
        self.framed(0xb4, "user ID", id)
    }

    /// Hashes a user attribute: `0xD1`, 4-octet length, the packet body.
    pub fn user_attribute(&mut self, body: &[u8]) -> Result<(), CryptoError> {
        self.framed(0xd1, "user attribute", body)
    }

    fn framed(&mut self, tag: u8, what: &'static str, bytes: &[u8]) -> Result<(), CryptoError> {
        let len = u32::try_from(bytes.len()).map_err(|_| CryptoError::TooLong { what, len: bytes.len() })?;
        self.hasher.update(&[tag]);
        self.hasher.update(&len.to_be_bytes());
        self.hasher.update(bytes);
        Ok(())
    }

    /// Appends the trailer and returns the digest to give to [`verify`].
    pub fn finish(mut self) -> Vec<u8> {
        self.hasher.update(&self.trailer);
        self.hasher.finish()
    }
}

/// The octets written before a key body when it is hashed (for signatures and
/// fingerprints alike, RFC 9580 §5.2.4 and §5.5.4).
fn key_frame(version: u8, len: usize) -> Result<Vec<u8>, CryptoError> {
    match version {
        4 => {
            let l = u16::try_from(len).map_err(|_| CryptoError::KeyTooLong { version, len })?;
            let mut v = vec![0x99];
            v.extend_from_slice(&l.to_be_bytes());
            Ok(v)
        }
        6 => {
            let l = u32::try_from(len).map_err(|_| CryptoError::KeyTooLong { version, len })?;
            let mut v = vec![0x9b];
            v.extend_from_slice(&l.to_be_bytes());
            Ok(v)
        }
        v => Err(CryptoError::UnsupportedVersion { what: "key", version: v }),
    }
}

// ---------------------------------------------------------------------------
// Fingerprints and key IDs (RFC 9580 §5.5.4)
// ---------------------------------------------------------------------------

/// A key fingerprint the manager computed itself: 20 octets (v4, SHA-1) or
/// 32 octets (v6, SHA2-256).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Fingerprint(Vec<u8>);

impl Fingerprint {
    /// The key version the fingerprint belongs to (4 or 6).
    pub fn version(&self) -> u8 {
        if self.0.len() == 32 {
            6
        } else {
            4
        }
    }

    /// The octets.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The key ID: the last 8 octets (v4) or the first 8 (v6).
    pub fn key_id(&self) -> KeyId {
        let mut id = [0; 8];
        let n = self.0.len();
        match self.version() {
            4 => id.copy_from_slice(&self.0[n - 8..]),
            _ => id.copy_from_slice(&self.0[..8]),
        }
        KeyId(id)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}", Hex(&self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// A key ID (8 octets). Only ever derived from a [`Fingerprint`] the manager
/// computed, or read from a *hashed* issuer subpacket and then matched against one.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId(pub [u8; 8]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}", Hex(&self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// The fingerprint of a public key packet body (RFC 9580 §5.5.4): v4 is
/// SHA-1 over `0x99`, 2-octet length, body; v6 is SHA2-256 over `0x9B`,
/// 4-octet length, body.
pub fn fingerprint(version: u8, key_body: &[u8]) -> Result<Fingerprint, CryptoError> {
    let mut h = match version {
        4 => HashAlgo::Sha1.hasher(),
        6 => HashAlgo::Sha256.hasher(),
        v => return Err(CryptoError::UnsupportedVersion { what: "key", version: v }),
    };
    h.update(&key_frame(version, key_body.len())?);
    h.update(key_body);
    Ok(Fingerprint(h.finish()))
}

/// The key ID of a fingerprint given as octets, checking the length fits the
/// version: v4 is the last 8 octets of 20, v6 the first 8 of 32.
pub fn key_id(version: u8, fingerprint: &[u8]) -> Result<KeyId, CryptoError> {
    match (version, fingerprint.len()) {
        (4, 20) | (6, 32) => Ok(Fingerprint(fingerprint.to_vec()).key_id()),
        (4 | 6, len) => Err(CryptoError::FingerprintLength { version, len }),
        _ => Err(CryptoError::UnsupportedVersion { what: "key", version }),
    }
}

// ---------------------------------------------------------------------------
// Key facts
// ---------------------------------------------------------------------------

/// Largest RSA modulus the manager will exponentiate with (bits). OpenPGP
/// implementations generate at most 4096 or 8192 bits; 16384 bounds the work
/// a hostile key can cause while accepting every real key.
pub const MAX_RSA_BITS: usize = 16384;

/// An elliptic curve the manager supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Curve {
    /// NIST P-256 (OID 1.2.840.10045.3.1.7).
    NistP256,
    /// NIST P-384 (OID 1.3.132.0.34).
    NistP384,
    /// NIST P-521 (OID 1.3.132.0.35).
    NistP521,
    /// Ed25519 in its legacy EdDSA form (OID 1.3.6.1.4.1.11591.15.1).
    Ed25519Legacy,
}

const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
const OID_P521: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x23];
const OID_ED25519_LEGACY: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0xda, 0x47, 0x0f, 0x01];

impl Curve {
    /// From the OID octets (without their length octet), if supported.
    pub fn from_oid(oid: &[u8]) -> Option<Curve> {
        match oid {
            OID_P256 => Some(Curve::NistP256),
            OID_P384 => Some(Curve::NistP384),
            OID_P521 => Some(Curve::NistP521),
            OID_ED25519_LEGACY => Some(Curve::Ed25519Legacy),
            _ => None,
        }
    }

    /// The OID octets.
    pub fn oid(self) -> &'static [u8] {
        match self {
            Curve::NistP256 => OID_P256,
            Curve::NistP384 => OID_P384,
            Curve::NistP521 => OID_P521,
            Curve::Ed25519Legacy => OID_ED25519_LEGACY,
        }
    }

    /// Octets of a field element / scalar.
    pub fn field_len(self) -> usize {
        match self {
            Curve::NistP256 | Curve::Ed25519Legacy => 32,
            Curve::NistP384 => 48,
            Curve::NistP521 => 66,
        }
    }
}

impl fmt::Display for Curve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Curve::NistP256 => "NIST P-256",
            Curve::NistP384 => "NIST P-384",
            Curve::NistP521 => "NIST P-521",
            Curve::Ed25519Legacy => "Ed25519 (legacy)",
        })
    }
}

/// What a key *is*, as far as the policy cares: the algorithm and its
/// strength. Computed by the manager from the key material (see [`key_kind`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// RSA (algo 1 or 3) with a modulus of this many bits.
    Rsa {
        /// Modulus size in bits.
        bits: u32,
    },
    /// ECDSA (algo 19) on a NIST curve.
    Ecdsa(Curve),
    /// EdDSALegacy (algo 22) on Ed25519.
    EdDsaLegacy,
    /// Ed25519 (algo 27).
    Ed25519,
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyKind::Rsa { bits } => write!(f, "RSA-{bits}"),
            KeyKind::Ecdsa(c) => write!(f, "ECDSA {c}"),
            KeyKind::EdDsaLegacy => f.write_str("EdDSALegacy Ed25519"),
            KeyKind::Ed25519 => f.write_str("Ed25519"),
        }
    }
}

/// Size in bits of a big-endian magnitude (leading zero octets ignored).
pub fn bit_len(magnitude: &[u8]) -> u32 {
    let m = strip(magnitude);
    match m.first() {
        None => 0,
        Some(&b) => (m.len() as u32 - 1).saturating_mul(8).saturating_add(8 - b.leading_zeros()),
    }
}

/// Classifies a key and checks its material has the right shape for its
/// algorithm (field kinds, lengths, curve). Does not validate points; that
/// happens when a verifier is built from them.
pub fn key_kind(key: &CheckedKey) -> Result<KeyKind, CryptoError> {
    Ok(match parse_key(key)? {
        PublicKey::Rsa { n, .. } => KeyKind::Rsa { bits: bit_len(n) },
        PublicKey::Ecdsa { curve, .. } => KeyKind::Ecdsa(curve),
        PublicKey::EdDsaLegacy(_) => KeyKind::EdDsaLegacy,
        PublicKey::Ed25519(_) => KeyKind::Ed25519,
    })
}

/// A key's material, borrowed and shape-checked.
enum PublicKey<'a> {
    Rsa { n: &'a [u8], e: &'a [u8] },
    Ecdsa { curve: Curve, point: &'a [u8] },
    EdDsaLegacy(&'a [u8; 32]),
    Ed25519(&'a [u8; 32]),
}

fn strip(mut m: &[u8]) -> &[u8] {
    while let [0, rest @ ..] = m {
        m = rest;
    }
    m
}

/// Left-pads a magnitude to exactly `len` octets, or fails if it is longer.
fn left_pad(m: &[u8], len: usize) -> Option<Vec<u8>> {
    let m = strip(m);
    if m.len() > len {
        return None;
    }
    let mut v = vec![0; len - m.len()];
    v.extend_from_slice(m);
    Some(v)
}

fn parse_key(key: &CheckedKey) -> Result<PublicKey<'_>, CryptoError> {
    let (algo, version) = (key.algo(), key.version());
    let bad = |why| CryptoError::BadKeyMaterial { algo, why };
    if version != 4 && version != 6 {
        return Err(CryptoError::UnsupportedVersion { what: "key", version });
    }
    match (algo, key.material().as_slice()) {
        (1 | 3, &[Field::Mpi(n), Field::Mpi(e)]) => Ok(PublicKey::Rsa { n, e }),
        (1 | 3, _) => Err(bad("expected the MPIs n and e")),
        (19, &[Field::Oid(oid), Field::Mpi(point)]) => match Curve::from_oid(oid) {
            Some(curve @ (Curve::NistP256 | Curve::NistP384 | Curve::NistP521)) => {
                // RFC 9580 §5.5.5.5 / §11.2.1: NIST points are uncompressed SEC1.
                if point.len() != 1 + 2 * curve.field_len() || point[0] != 0x04 {
                    return Err(bad("expected an uncompressed point 0x04 || x || y"));
                }
                Ok(PublicKey::Ecdsa { curve, point })
            }
            _ => Err(CryptoError::UnsupportedCurve { algo, oid: format!("{:X}", Hex(oid)) }),
        },
        (19, _) => Err(bad("expected a curve OID and a point MPI")),
        (22, &[Field::Oid(oid), Field::Mpi(point)]) => {
            if Curve::from_oid(oid) != Some(Curve::Ed25519Legacy) {
                return Err(CryptoError::UnsupportedCurve { algo, oid: format!("{:X}", Hex(oid)) });
            }
            // RFC 9580 §5.5.5.5: EdDSALegacy is for v4 keys only.
            if version != 4 {
                return Err(bad("EdDSALegacy is only defined for v4 keys"));
            }
            // The point is the native 32 octets behind a 0x40 prefix (§11.2.2).
            match point {
                [0x40, rest @ ..] => rest
                    .try_into()
                    .map(PublicKey::EdDsaLegacy)
                    .map_err(|_| bad("expected 0x40 and 32 octets")),
                _ => Err(bad("expected 0x40 and 32 octets")),
            }
        }
        (22, _) => Err(bad("expected a curve OID and a point MPI")),
        (27, &[Field::Raw(k)]) => {
            k.try_into().map(PublicKey::Ed25519).map_err(|_| bad("expected 32 raw octets"))
        }
        (27, _) => Err(bad("expected 32 raw octets")),
        _ => Err(CryptoError::UnsupportedAlgorithm { algo }),
    }
}

// ---------------------------------------------------------------------------
// Verification
// ---------------------------------------------------------------------------

/// Checks that `sig` was made by `key` over `digest` (the output of a
/// [`SigHasher`] the manager ran itself).
///
/// Checks, in order: versions and algorithms agree, the digest has the
/// signature's hash length, the left 16 bits match, then the public key
/// operation — RSA PKCS#1 v1.5 with the hash's DigestInfo, ECDSA (P-256,
/// P-384, P-521) on the prehashed digest, EdDSALegacy and Ed25519 over the
/// digest (strict verification: no small-order keys, canonical `s`).
///
/// ```
/// use ed25519_dalek::{Signer, SigningKey};
/// use umd_pgp::crypto::{verify, SigHasher};
/// use umd_pgp::packet::{check, encode_key, encode_sig, CheckedBody};
/// use umd_pgp_wire::{Body, Description, Field, Key, Packet, Sig};
/// // A key packet and a signature packet, described and checked.
/// fn checked(packets: Vec<(u8, Vec<u8>, Body)>) -> Vec<CheckedBody> {
///     let (mut stream, mut desc) = (Vec::new(), Description { packets: vec![] });
///     for (tag, bytes, body) in packets {
///         let (offset, body_len) = (stream.len() as u64, bytes.len() as u64);
///         stream.extend_from_slice(&[0xc0 | tag, bytes.len() as u8]);
///         stream.extend_from_slice(&bytes);
///         desc.packets.push(Packet { offset, header_len: 2, body_len, tag, body });
///     }
///     check(&stream, desc).unwrap().into_iter().map(|p| p.fields().clone()).collect()
/// }
/// let sk = SigningKey::from_bytes(&[7; 32]);
/// let key = Key { version: 6, created: 0, algo: 27,
///     material: vec![Field::Raw(sk.verifying_key().to_bytes().to_vec())] };
/// let mut sig = Sig { version: 6, sig_type: 0, pk_algo: 27, hash_algo: 8, hashed: vec![],
///     unhashed: vec![], left16: [0, 0], salt: vec![9; 16], values: vec![Field::Raw(vec![0; 64])] };
/// // The signer's side: hash, then sign (values are not hashed).
/// let unsigned = checked(vec![(2, encode_sig(&sig).unwrap(), Body::Signature(sig.clone()))]);
/// let [CheckedBody::Signature(unsigned)] = &unsigned[..] else { unreachable!() };
/// let mut h = SigHasher::new(unsigned).unwrap();
/// h.data(b"hello");
/// let digest = h.finish();
/// sig.left16 = [digest[0], digest[1]];
/// sig.values = vec![Field::Raw(sk.sign(&digest).to_bytes().to_vec())];
/// // The manager's side.
/// let packets = checked(vec![
///     (6, encode_key(&key).unwrap(), Body::PublicKey(key)),
///     (2, encode_sig(&sig).unwrap(), Body::Signature(sig)),
/// ]);
/// let [CheckedBody::PublicKey(key), CheckedBody::Signature(sig)] = &packets[..] else { unreachable!() };
/// assert!(verify(key, sig, &digest).is_ok());
/// assert!(verify(key, sig, &[0; 32]).is_err());
/// ```
pub fn verify(key: &CheckedKey, sig: &CheckedSig, digest: &[u8]) -> Result<(), CryptoError> {
    let version = sig.version();
    if version != 4 && version != 6 {
        return Err(CryptoError::UnsupportedVersion { what: "signature", version });
    }
    if key.version() != version {
        return Err(CryptoError::VersionMismatch { key: key.version(), sig: version });
    }
    if key.algo() != sig.pk_algo() {
        return Err(CryptoError::AlgorithmMismatch { key: key.algo(), sig: sig.pk_algo() });
    }
    let hash = HashAlgo::from_id(sig.hash_algo())?;
    if digest.len() != hash.digest_len() {
        return Err(CryptoError::DigestLength { hash, expected: hash.digest_len(), got: digest.len() });
    }
    let got = [digest[0], digest[1]];
    if got != sig.left16() {
        return Err(CryptoError::Left16Mismatch { expected: sig.left16(), got });
    }
    let values = sig.values();
    let algo = sig.pk_algo();
    let bad_values = |why| CryptoError::BadSignatureValues { algo, why };
    let failed = CryptoError::BadSignature { algo };
    match parse_key(key)? {
        PublicKey::Rsa { n, e } => {
            let &[Field::Mpi(s)] = values.as_slice() else {
                return Err(bad_values("expected one MPI"));
            };
            verify_rsa(algo, n, e, hash, digest, s)
        }
        PublicKey::Ecdsa { curve, point } => {
            let &[Field::Mpi(r), Field::Mpi(s)] = values.as_slice() else {
                return Err(bad_values("expected the MPIs r and s"));
            };
            let n = curve.field_len();
            let (Some(r), Some(s)) = (left_pad(r, n), left_pad(s, n)) else {
                return Err(bad_values("r or s is longer than the curve's scalars"));
            };
            let rs = [r, s].concat();
            // An ECDSA digest shorter than the field is used as an integer as
            // is, i.e. left-padded (FIPS 186-5 §6.4.1); the RustCrypto prehash
            // API refuses digests under half the field size (SHA-256 on
            // P-521), so pad here, which is the same integer.
            let prehash = left_pad(digest, n.max(digest.len())).unwrap_or_else(|| digest.to_vec());
            let bad_point = CryptoError::BadKeyMaterial { algo, why: "point is not on the curve" };
            let bad_rs = bad_values("r or s is zero or not below the group order");
            match curve {
                Curve::NistP256 => {
                    use p256::ecdsa::{signature::hazmat::PrehashVerifier, Signature, VerifyingKey};
                    let vk = VerifyingKey::from_sec1_bytes(point).map_err(|_| bad_point)?;
                    let sig = Signature::from_slice(&rs).map_err(|_| bad_rs)?;
                    vk.verify_prehash(&prehash, &sig).map_err(|_| failed)
                }
                Curve::NistP384 => {
                    use p384::ecdsa::{signature::hazmat::PrehashVerifier, Signature, VerifyingKey};
                    let vk = VerifyingKey::from_sec1_bytes(point).map_err(|_| bad_point)?;
                    let sig = Signature::from_slice(&rs).map_err(|_| bad_rs)?;
                    vk.verify_prehash(&prehash, &sig).map_err(|_| failed)
                }
                Curve::NistP521 => {
                    use p521::ecdsa::{signature::hazmat::PrehashVerifier, Signature, VerifyingKey};
                    let vk = VerifyingKey::from_sec1_bytes(point).map_err(|_| bad_point)?;
                    let sig = Signature::from_slice(&rs).map_err(|_| bad_rs)?;
                    vk.verify_prehash(&prehash, &sig).map_err(|_| failed)
                }
                Curve::Ed25519Legacy => Err(CryptoError::UnsupportedAlgorithm { algo }),
            }
        }
        PublicKey::EdDsaLegacy(k) => {
            let &[Field::Mpi(r), Field::Mpi(s)] = values.as_slice() else {
                return Err(bad_values("expected the MPIs r and s"));
            };
            // RFC 9580 §5.2.3.3: r and s are the two 32-octet halves of the
            // native signature, as MPIs (so leading zeros are stripped).
            let (Some(r), Some(s)) = (left_pad(r, 32), left_pad(s, 32)) else {
                return Err(bad_values("r or s is longer than 32 octets"));
            };
            verify_ed25519(algo, k, &[r, s].concat(), digest)
        }
        PublicKey::Ed25519(k) => {
            let &[Field::Raw(rs)] = values.as_slice() else {
                return Err(bad_values("expected 64 raw octets"));
            };
            if rs.len() != 64 {
                return Err(bad_values("expected 64 raw octets"));
            }
            verify_ed25519(algo, k, rs, digest)
        }
    }
}

fn verify_rsa(
    algo: u8,
    n: &[u8],
    e: &[u8],
    hash: HashAlgo,
    digest: &[u8],
    s: &[u8],
) -> Result<(), CryptoError> {
    let bad_key = |why| CryptoError::BadKeyMaterial { algo, why };
    let n = strip(n);
    if n.len() * 8 > MAX_RSA_BITS {
        return Err(bad_key("modulus larger than 16384 bits"));
    }
    if strip(e).len() > 8 {
        return Err(bad_key("public exponent too large"));
    }
    // The MPI drops leading zeros; PKCS#1 wants exactly the modulus length.
    let s = left_pad(s, n.len())
        .ok_or(CryptoError::BadSignatureValues { algo, why: "signature longer than the modulus" })?;
    if rsa_fast_path(n, strip(e), hash, digest, &s) {
        return Ok(());
    }
    rsa_reference(algo, n, e, hash, digest, &s)
}

/// The `rsa` crate's verdict: the reference for [`rsa_fast_path`], and the one
/// that names what is wrong.
fn rsa_reference(
    algo: u8,
    n: &[u8],
    e: &[u8],
    hash: HashAlgo,
    digest: &[u8],
    s: &[u8],
) -> Result<(), CryptoError> {
    let bad_key = |why| CryptoError::BadKeyMaterial { algo, why };
    // Precision in whole 64-bit limbs, enough for each number.
    let boxed = |b: &[u8]| {
        let bits = ((b.len() * 8).max(64)).next_multiple_of(64) as u32;
        rsa::BoxedUint::from_be_slice(b, bits).ok()
    };
    let (bn, be) = (boxed(n).ok_or(bad_key("modulus"))?, boxed(strip(e)).ok_or(bad_key("exponent"))?);
    // The size floor is the policy's decision (`Policy::min_rsa_bits`); this
    // layer only refuses what it cannot compute with.
    let pk = rsa::PublicKey::new_with_size_limits(bn, be, 512..=MAX_RSA_BITS)
        .map_err(|_| bad_key("not a valid RSA public key (n odd, 2 < e < n, e odd)"))?;
    let scheme = rsa::Pkcs1v15Sign { hash_len: Some(hash.digest_len()), prefix: pkcs1_prefix(hash).into() };
    pk.verify(scheme, digest, s).map_err(|_| CryptoError::BadSignature { algo })
}

/// Whether AWS-LC says `s` is a PKCS#1 v1.5 signature of `digest` by (`n`, `e`).
///
/// The speed of `umd verify` is mostly RSA-4096 public-key operations (Debian's
/// archive keys): AWS-LC does one in ~65 µs here, crypto-bigint (the `rsa`
/// crate) in ~290 µs. AWS-LC covers only some sizes and hashes, and may refuse
/// a key the `rsa` crate takes (an exponent over 33 bits): so a "yes" from it is
/// final (the mathematics holds), and anything else — a size or hash it does
/// not cover, a key it refuses, a signature that fails — goes to the `rsa`
/// crate, which gives the verdict and the precise error. Both paths agree on
/// every input (tested), the fast one is only quicker.
pub(crate) fn rsa_fast_path(n: &[u8], e: &[u8], hash: HashAlgo, digest: &[u8], s: &[u8]) -> bool {
    use aws_lc_rs::digest as d;
    use aws_lc_rs::encoding::AsDer as _;
    use aws_lc_rs::signature as sig;
    let Some(first) = n.first() else { return false };
    let bits = n.len() * 8 - first.leading_zeros() as usize;
    let (params, algorithm) = match hash {
        HashAlgo::Sha1 => (&sig::RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY, &d::SHA1_FOR_LEGACY_USE_ONLY),
        HashAlgo::Sha256 => (&sig::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY, &d::SHA256),
        HashAlgo::Sha384 => (&sig::RSA_PKCS1_2048_8192_SHA384, &d::SHA384),
        HashAlgo::Sha512 => (&sig::RSA_PKCS1_1024_8192_SHA512_FOR_LEGACY_USE_ONLY, &d::SHA512),
        HashAlgo::Sha224 => return false,
    };
    if !(params.min_modulus_len() as usize..=params.max_modulus_len() as usize).contains(&bits) {
        return false;
    }
    let Ok(digest) = d::Digest::import_less_safe(digest, algorithm) else { return false };
    let Ok(key) = (sig::RsaPublicKeyComponents { n, e }).as_der() else { return false };
    sig::UnparsedPublicKey::new(params, key.as_ref()).verify_digest(&digest, s).is_ok()
}

fn verify_ed25519(algo: u8, key: &[u8; 32], rs: &[u8], digest: &[u8]) -> Result<(), CryptoError> {
    let vk = ed25519_dalek::VerifyingKey::from_bytes(key)
        .map_err(|_| CryptoError::BadKeyMaterial { algo, why: "not a valid Ed25519 point" })?;
    let sig = ed25519_dalek::Signature::from_slice(rs)
        .map_err(|_| CryptoError::BadSignatureValues { algo, why: "expected 64 octets" })?;
    // OpenPGP signs the digest as the EdDSA message. Strict verification
    // refuses weak (small-order) keys and non-canonical signatures, which an
    // honest signer never produces.
    vk.verify_strict(digest, &sig).map_err(|_| CryptoError::BadSignature { algo })
}

#[cfg(test)]
mod tests {
    use rsa09::traits::PublicKeyParts as _;
    use sha2::Digest as _;

    use super::*;

    fn pkcs1(hash: HashAlgo) -> rsa09::Pkcs1v15Sign {
        match hash {
            HashAlgo::Sha1 => rsa09::Pkcs1v15Sign::new::<sha1::Sha1>(),
            HashAlgo::Sha224 => rsa09::Pkcs1v15Sign::new::<sha2::Sha224>(),
            HashAlgo::Sha256 => rsa09::Pkcs1v15Sign::new::<sha2::Sha256>(),
            HashAlgo::Sha384 => rsa09::Pkcs1v15Sign::new::<sha2::Sha384>(),
            HashAlgo::Sha512 => rsa09::Pkcs1v15Sign::new::<sha2::Sha512>(),
        }
    }

    /// AWS-LC's "yes" is final and its "no" falls back to the `rsa` crate: so it
    /// must never say yes where the `rsa` crate says no, and (to be worth having)
    /// it must say yes wherever it covers the size and hash and the `rsa` crate
    /// says yes. Signatures by an independent implementation (rsa 0.9), good and
    /// tampered, with both common exponents.
    #[test]
    fn the_rsa_fast_path_agrees_with_the_reference_on_good_and_bad_signatures() {
        let mut rng = rand::thread_rng();
        let hashes = [HashAlgo::Sha1, HashAlgo::Sha224, HashAlgo::Sha256, HashAlgo::Sha384, HashAlgo::Sha512];
        for (bits, exp) in [(1024, 65537u32), (1024, 3), (2048, 65537)] {
            let sk = rsa09::RsaPrivateKey::new_with_exp(&mut rng, bits, &rsa09::BigUint::from(exp)).unwrap();
            let (n, e) = (sk.n().to_bytes_be(), sk.e().to_bytes_be());
            for hash in hashes {
                let digest: Vec<u8> =
                    sha2::Sha512::digest([bits as u8, hash as u8])[..hash.digest_len()].into();
                let good = sk.sign(pkcs1(hash), &digest).unwrap();
                let mut bad_sig = good.clone();
                bad_sig[good.len() / 2] ^= 1;
                let mut bad_digest = digest.clone();
                bad_digest[0] ^= 0x80;
                let covered = hash != HashAlgo::Sha224 && !(hash == HashAlgo::Sha384 && bits < 2048);
                for (what, d, s, valid) in [
                    ("good", &digest, &good, true),
                    ("tampered signature", &digest, &bad_sig, false),
                    ("other digest", &bad_digest, &good, false),
                    ("zero signature", &digest, &vec![0; good.len()], false),
                ] {
                    let fast = rsa_fast_path(&n, &e, hash, d, s);
                    let reference = rsa_reference(1, &n, &e, hash, d, s).is_ok();
                    let case = format!("{bits} bits, e={exp}, {hash}, {what}");
                    assert_eq!(reference, valid, "{case}: reference");
                    if covered {
                        assert_eq!(fast, reference, "{case}: fast path");
                    } else {
                        assert!(!fast, "{case}: not covered, yet the fast path answered");
                    }
                    assert_eq!(verify_rsa(1, &n, &e, hash, d, s).is_ok(), valid, "{case}: verify_rsa");
                }
            }
        }
    }
}
