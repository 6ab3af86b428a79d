//! The `pgp` driver's wire format: what the OpenPGP handler returns, and the one
//! place that decides it.
//!
//! The manager sends a binary OpenPGP packet stream (armor already removed by the
//! manager). The handler — the only code that *parses* OpenPGP — answers with a
//! [`Description`]: one [`Packet`] per packet, in order, each saying where its bytes
//! lie and, for the packets the manager uses (keys, user IDs, signatures), every
//! field. The manager trusts none of it: the packets must tile the stream exactly,
//! each header is re-read, and each described body is *re-encoded* from its fields
//! and compared byte for byte with the stream. A field that survives that check is
//! the field in the bytes; a lie fails it.
//!
//! Encoding: `postcard`. Request payload: [`Command`] byte, then the packet
//! stream. The manager decodes a reply only through [`Description::decode`]:
//! the bounded decoder of `umd-wire`, with the size, depth and memory limits
//! below, all relative to the stream the handler was given.
//!
//! The shape is not recursive where it matters: an embedded signature's own
//! subpackets cannot embed another signature ([`Subpacket::embedded`] decodes
//! a second level as an error, not as a value), so no reply can nest deeper
//! than an honest one.
//!
//! ```
//! use umd_pgp_wire::*;
//! let d = Description { packets: vec![Packet { offset: 0, header_len: 2, body_len: 3, tag: 13, body: Body::UserId }] };
//! let bytes = d.encode().unwrap();
//! assert_eq!(Description::decode(&bytes, 5).unwrap(), d);
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use serde::{Deserialize, Serialize};
use umd_wire::decode::{DecodeError, DecodeLimits};

/// Largest description the manager accepts at all (bytes of postcard).
pub const MAX_DESCRIPTION: usize = 64 << 20;

/// The constant part of [`max_description`]: what any stream may take.
pub const DESCRIPTION_SLACK: usize = 1 << 20;

/// The constant part of [`max_memory`].
pub const MEMORY_SLACK: usize = 4 << 20;

/// Deepest nesting of an honest description, as the decoder counts it: the
/// description, its packets, a packet, its body, a signature, a subpacket
/// area, a subpacket, its embedded signature, that one's area, a subpacket of
/// it and its bytes are 12 levels. The limit leaves a little room; the type
/// itself allows no more (see [`Subpacket::embedded`]).
pub const MAX_DEPTH: usize = 16;

/// The largest description (bytes on the wire) the manager accepts for a
/// stream of `stream_len` bytes: one and a half times the stream and 1 MiB
/// more, at most [`MAX_DESCRIPTION`].
///
/// An honest description mirrors the bytes: fields are copies of them, an
/// embedded signature is there twice (raw in its subpacket, and as fields),
/// and each packet, subpacket and field adds a few bytes of offsets and
/// lengths. Real streams (certificates, signature blocks) take 1.0–1.3 times
/// their size; a stream of many tiny packets or subpackets (a million empty
/// user IDs) would take more, and is refused by the handler with this limit
/// named.
///
/// ```
/// use umd_pgp_wire::{max_description, MAX_DESCRIPTION};
/// assert_eq!(max_description(0), 1 << 20);
/// assert_eq!(max_description(1000), 1500 + (1 << 20));
/// assert_eq!(max_description(usize::MAX), MAX_DESCRIPTION);
/// ```
pub fn max_description(stream_len: usize) -> usize {
    stream_len.saturating_add(stream_len / 2).saturating_add(DESCRIPTION_SLACK).min(MAX_DESCRIPTION)
}

/// The most memory a description of a stream of `stream_len` bytes may take
/// in the manager once decoded, as the bounded decoder charges it: twice the
/// stream and 4 MiB more.
///
/// Decoded, a packet takes some 140 bytes, a subpacket 50 and a field 32
/// beside the bytes they hold, so a stream of many small items decodes to many
/// times its size. The 4 MiB cover every real certificate and signature block
/// (tens of thousands of packets); beyond them each item must be backed by
/// bytes of its own. A stream that needs more (a flooded certificate with a
/// hundred thousand third-party signatures, a stream of empty packets) is
/// refused, by the handler before it answers, and by the manager's decoder if
/// a handler answers anyway.
///
/// ```
/// assert_eq!(umd_pgp_wire::max_memory(1 << 20), (2 << 20) + (4 << 20));
/// ```
pub fn max_memory(stream_len: usize) -> usize {
    stream_len.saturating_mul(2).saturating_add(MEMORY_SLACK)
}

/// The decoder's limits for a description of a stream of `stream_len` bytes.
pub fn decode_limits(stream_len: usize) -> DecodeLimits {
    DecodeLimits { max_depth: MAX_DEPTH, max_memory: max_memory(stream_len) }
}

/// Why a description was refused before it was checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DescriptionError {
    /// Larger than [`max_description`] allows for the stream: refused undecoded.
    TooLarge {
        /// Its size.
        len: usize,
        /// The stream's.
        stream_len: usize,
        /// The limit.
        max: usize,
    },
    /// The bounded decoder refused it.
    Decode(DecodeError),
}

impl std::fmt::Display for DescriptionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DescriptionError::TooLarge { len, stream_len, max } => write!(
                f,
                "a {len}-byte description of a {stream_len}-byte stream (at most {max}: the \
                 stream and a half, and 1 MiB; too many small packets or subpackets): refused undecoded"
            ),
            DescriptionError::Decode(DecodeError::Memory { reason }) => write!(
                f,
                "the description would take {reason} once decoded (at most twice the stream and \
                 4 MiB: too many small packets or subpackets)"
            ),
            DescriptionError::Decode(e) => write!(f, "undecodable description: {e}"),
        }
    }
}

impl std::error::Error for DescriptionError {}

/// What the manager asks (first byte of the request payload).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Command {
    /// Describe every packet of the stream that follows.
    Describe = 1,
}

/// The handler's answer: every packet of the stream, in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Description {
    /// The packets, in stream order; they must tile the stream.
    pub packets: Vec<Packet>,
}

impl Description {
    /// Encodes with postcard.
    pub fn encode(&self) -> Result<Vec<u8>, postcard::Error> {
        postcard::to_allocvec(self)
    }

    /// Decodes a description of a stream of `stream_len` bytes, the one way
    /// the manager does: refused undecoded if larger than [`max_description`],
    /// then through the bounded decoder with [`decode_limits`] (depth and
    /// memory charged while decoding). Never panics; trailing bytes are an
    /// error.
    pub fn decode(bytes: &[u8], stream_len: usize) -> Result<Description, DescriptionError> {
        let max = max_description(stream_len);
        if bytes.len() > max {
            return Err(DescriptionError::TooLarge { len: bytes.len(), stream_len, max });
        }
        umd_wire::decode::decode(bytes, &decode_limits(stream_len)).map_err(DescriptionError::Decode)
    }
}

/// One packet: where it lies, and what it holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Packet {
    /// Offset of the packet's first header byte in the stream.
    pub offset: u64,
    /// Length of the header (tag byte and length octets).
    pub header_len: u32,
    /// Length of the body. Packets with partial body lengths are described as
    /// [`Body::Opaque`] with `body_len` covering everything after the first header.
    pub body_len: u64,
    /// The packet tag (RFC 9580 §5).
    pub tag: u8,
    /// The fields, for packets the manager uses.
    pub body: Body,
}

/// A packet's fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    /// Not described: the manager checks only the header (tag and length) and does
    /// not use the packet. A key, user ID or signature packet may not be opaque.
    Opaque,
    /// Tag 6: a primary public key.
    PublicKey(Key),
    /// Tag 14: a public subkey.
    PublicSubkey(Key),
    /// Tag 13: a user ID (its body is the ID; nothing to describe).
    UserId,
    /// Tag 17: a user attribute (hashed as it is; nothing to describe).
    UserAttribute,
    /// Tag 2: a signature.
    Signature(Sig),
}

/// A public key packet's fields (RFC 9580 §5.5.2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Key {
    /// Version: 4 or 6.
    pub version: u8,
    /// Creation time (seconds since the epoch).
    pub created: u32,
    /// Public key algorithm id.
    pub algo: u8,
    /// The algorithm-specific fields, in wire order (RFC 9580 §5.5.5): RSA `[Mpi n,
    /// Mpi e]`; DSA 4 `Mpi`; ElGamal 3 `Mpi`; ECDSA and EdDSA (legacy) `[Oid, Mpi
    /// point]`; ECDH `[Oid, Mpi point, Sized kdf]`; X25519, X448, Ed25519, Ed448 one
    /// `Raw`. For an algorithm the handler does not know, one `Raw` holding all of
    /// the material. A v6 key's 4-octet material length is not a field: the
    /// re-encoding computes it. Any other form of the same octets is refused.
    pub material: Vec<Field>,
}

/// One algorithm-specific field, with its encoding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Field {
    /// A multiprecision integer: 2-octet bit count, then the magnitude (no
    /// leading zero octets).
    Mpi(#[serde(with = "serde_bytes")] Vec<u8>),
    /// An OID: 1-octet length, then the octets.
    Oid(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Fixed-size octets (e.g. an Ed25519 key or signature in v6 form).
    Raw(#[serde(with = "serde_bytes")] Vec<u8>),
    /// 1-octet length, then the octets (e.g. ECDH KDF parameters).
    Sized(#[serde(with = "serde_bytes")] Vec<u8>),
}

/// A signature packet's fields (RFC 9580 §5.2.3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sig {
    /// Version: 4 or 6.
    pub version: u8,
    /// Signature type.
    pub sig_type: u8,
    /// Public key algorithm id.
    pub pk_algo: u8,
    /// Hash algorithm id.
    pub hash_algo: u8,
    /// Hashed subpackets, in order.
    pub hashed: Vec<Subpacket>,
    /// Unhashed subpackets, in order.
    pub unhashed: Vec<Subpacket>,
    /// The left 16 bits of the signed hash.
    pub left16: [u8; 2],
    /// The salt (v6 only; empty for v4).
    #[serde(with = "serde_bytes")]
    pub salt: Vec<u8>,
    /// The signature values, in wire order: RSA `[Mpi]`; DSA, ECDSA, EdDSA (legacy)
    /// `[Mpi r, Mpi s]`; Ed25519 `[Raw(64)]`; Ed448 `[Raw(114)]`. For an algorithm
    /// the handler does not know, one `Raw` holding all of the values. Any other
    /// form of the same octets is refused.
    pub values: Vec<Field>,
}

/// One signature subpacket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subpacket {
    /// How many octets its length took (1, 2 or 5): lengths may be encoded in a
    /// longer form than needed, and the re-encoding must match the bytes.
    pub len_octets: u8,
    /// The critical bit.
    pub critical: bool,
    /// The subpacket type (without the critical bit).
    pub typ: u8,
    /// The subpacket body.
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
    /// For an embedded signature (type 32), and only then: its fields,
    /// re-encoded and checked against `body` like any signature.
    ///
    /// On the wire, `None` or `Some` and the signature (postcard's encoding of
    /// an option). Decoded as a sequence of at most one signature whose own
    /// subpackets embed nothing: a signature embedded in an embedded one is a
    /// decoding error, so the decoder never recurses.
    #[serde(deserialize_with = "embedded::deserialize")]
    pub embedded: Option<Box<Sig>>,
}

/// Decoding [`Subpacket::embedded`]: one level, no more.
mod embedded {
    use serde::de::{self, Deserializer, SeqAccess, Visitor};
    use serde::Deserialize;

    use super::{Field, Sig, Subpacket};

    /// A signature inside a subpacket: a [`Sig`] whose subpackets are leaves.
    #[derive(Deserialize)]
    struct Embedded {
        version: u8,
        sig_type: u8,
        pk_algo: u8,
        hash_algo: u8,
        hashed: Vec<Leaf>,
        unhashed: Vec<Leaf>,
        left16: [u8; 2],
        #[serde(with = "serde_bytes")]
        salt: Vec<u8>,
        values: Vec<Field>,
    }

    /// A subpacket of an embedded signature: the layout of [`Subpacket`] (so
    /// the conversion reuses the vector), with no embedded signature.
    #[derive(Deserialize)]
    struct Leaf {
        len_octets: u8,
        critical: bool,
        typ: u8,
        #[serde(with = "serde_bytes")]
        body: Vec<u8>,
        #[serde(deserialize_with = "none")]
        embedded: Option<Box<Sig>>,
    }

    impl From<Leaf> for Subpacket {
        fn from(l: Leaf) -> Subpacket {
            Subpacket {
                len_octets: l.len_octets,
                critical: l.critical,
                typ: l.typ,
                body: l.body,
                embedded: l.embedded,
            }
        }
    }

    impl From<Embedded> for Sig {
        fn from(e: Embedded) -> Sig {
            Sig {
                version: e.version,
                sig_type: e.sig_type,
                pk_algo: e.pk_algo,
                hash_algo: e.hash_algo,
                hashed: e.hashed.into_iter().map(Subpacket::from).collect(),
                unhashed: e.unhashed.into_iter().map(Subpacket::from).collect(),
                left16: e.left16,
                salt: e.salt,
                values: e.values,
            }
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Box<Sig>>, D::Error> {
        let e: Option<Box<Embedded>> = umd_wire::decode::at_most_one(d)?;
        Ok(e.map(|e| Box::new(Sig::from(*e))))
    }

    /// The embedded field of a leaf: nothing, or an error.
    fn none<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Box<Sig>>, D::Error> {
        struct Nothing;
        impl<'de> Visitor<'de> for Nothing {
            type Value = Option<Box<Sig>>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("no signature embedded in an embedded signature")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                match seq.next_element::<de::IgnoredAny>() {
                    Ok(None) => Ok(None),
                    _ => Err(de::Error::custom("a signature embedded more than one level deep")),
                }
            }
        }
        d.deserialize_seq(Nothing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Byte strings are encoded with `serde_bytes` (one copy instead of one
    /// call per byte): postcard writes them exactly as it writes a sequence
    /// of `u8`, so handlers built before and after agree on every byte.
    #[test]
    fn byte_strings_keep_the_wire_format_of_byte_sequences() {
        #[derive(Serialize)]
        struct PlainSubpacket {
            len_octets: u8,
            critical: bool,
            typ: u8,
            body: Vec<u8>,
            embedded: Option<()>,
        }
        #[derive(Serialize)]
        enum PlainField {
            Mpi(Vec<u8>),
            _Oid(Vec<u8>),
            Raw(Vec<u8>),
        }
        let body: Vec<u8> = (0..=255).collect();
        let sp = Subpacket { len_octets: 2, critical: true, typ: 33, body: body.clone(), embedded: None };
        let plain =
            PlainSubpacket { len_octets: 2, critical: true, typ: 33, body: body.clone(), embedded: None };
        assert_eq!(postcard::to_allocvec(&sp).unwrap(), postcard::to_allocvec(&plain).unwrap());
        for (f, p) in [
            (Field::Mpi(body.clone()), PlainField::Mpi(body.clone())),
            (Field::Raw(vec![]), PlainField::Raw(vec![])),
        ] {
            assert_eq!(postcard::to_allocvec(&f).unwrap(), postcard::to_allocvec(&p).unwrap());
        }
        let salt: Vec<u8> = vec![7; 32];
        let mut bytes =
            postcard::to_allocvec(&(6u8, 0u8, 27u8, 10u8, Vec::<()>::new(), Vec::<()>::new(), [1u8, 2]))
                .unwrap();
        bytes.extend(postcard::to_allocvec(&(salt.clone(), Vec::<()>::new())).unwrap());
        let sig = Sig {
            version: 6,
            sig_type: 0,
            pk_algo: 27,
            hash_algo: 10,
            hashed: vec![],
            unhashed: vec![],
            left16: [1, 2],
            salt,
            values: vec![],
        };
        assert_eq!(postcard::to_allocvec(&sig).unwrap(), bytes);
    }

    #[test]
    fn descriptions_round_trip_and_garbage_is_refused() {
        let sig = Sig {
            version: 4,
            sig_type: 0,
            pk_algo: 22,
            hash_algo: 8,
            hashed: vec![Subpacket {
                len_octets: 1,
                critical: false,
                typ: 2,
                body: vec![0, 0, 0, 1],
                embedded: None,
            }],
            unhashed: vec![],
            left16: [1, 2],
            salt: vec![],
            values: vec![Field::Mpi(vec![1; 32]), Field::Mpi(vec![2; 32])],
        };
        let d = Description {
            packets: vec![Packet {
                offset: 0,
                header_len: 2,
                body_len: 100,
                tag: 2,
                body: Body::Signature(sig),
            }],
        };
        assert_eq!(Description::decode(&d.encode().unwrap(), 100).unwrap(), d);
        assert!(Description::decode(&[0xff; 7], 100).is_err());
        let mut extra = d.encode().unwrap();
        extra.push(0);
        assert!(Description::decode(&extra, 100).is_err());
    }

    /// A description of one signature packet whose signature embeds a
    /// signature `depth` levels deep (built by hand: serializing it would
    /// recurse as deep).
    fn nested(depth: usize) -> Vec<u8> {
        let mut v = vec![1, 0, 2, 0, 2, 5]; // one packet at 0, header 2, body 0, tag 2, Signature
        for _ in 0..depth {
            // v4 type 0 RSA SHA-256; one hashed subpacket: 1-octet length, not
            // critical, type 32, empty body, Some(
            v.extend_from_slice(&[4, 0, 1, 8, 1, 1, 0, 32, 0, 1]);
        }
        v.extend_from_slice(&[4, 0, 1, 8, 0, 0, 0, 0, 0, 0]); // the innermost signature
        for _ in 0..depth {
            v.extend_from_slice(&[0, 0, 0, 0, 0]); // no unhashed, left16, no salt, no values
        }
        v
    }

    #[test]
    fn one_embedded_level_decodes_and_a_second_is_refused() {
        let one = Description::decode(&nested(1), 1000).unwrap();
        let Body::Signature(s) = &one.packets[0].body else { panic!("{one:?}") };
        assert!(s.hashed[0].embedded.as_ref().is_some_and(|e| e.hashed.is_empty()));
        let e = Description::decode(&nested(2), 1000).unwrap_err();
        assert!(e.to_string().contains("a signature embedded more than one level deep"), "{e}");
    }

    #[test]
    fn signatures_embedded_ten_thousand_deep_are_refused_without_recursing() {
        // The issue's reproduction: 150 KB, inside the size bound of a 100 KB
        // stream; decoded with plain postcard it overflowed the stack.
        let deep = nested(10_000);
        assert!(deep.len() <= max_description(100_000));
        assert!(Description::decode(&deep, 100_000).is_err());
    }

    #[test]
    fn a_description_larger_than_its_bound_is_refused_undecoded() {
        let big = vec![0u8; max_description(10) + 1];
        assert!(matches!(Description::decode(&big, 10), Err(DescriptionError::TooLarge { .. })));
    }

    #[test]
    fn empty_packets_by_the_million_exceed_the_memory_bound() {
        // A million opaque packets: 6 bytes each on the wire, ~140 in memory.
        let n = 1_000_000usize;
        let mut v = vec![0xc0, 0x84, 0x3d]; // varint 1_000_000
        for _ in 0..n {
            v.extend_from_slice(&[0, 2, 0, 12, 0]);
        }
        let e = Description::decode(&v, 3 << 20).unwrap_err();
        assert!(matches!(e, DescriptionError::Decode(umd_wire::decode::DecodeError::Memory { .. })), "{e}");
        assert!(e.to_string().contains("too many small packets"), "{e}");
    }
}
