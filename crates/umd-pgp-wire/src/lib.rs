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
//! Encoding: `postcard` (compact, no schema drift: both sides link this crate).
//! Request payload: [`Command`] byte, then the packet stream.
//!
//! ```
//! use umd_pgp_wire::*;
//! let d = Description { packets: vec![Packet { offset: 0, header_len: 2, body_len: 3, tag: 13, body: Body::UserId }] };
//! let bytes = d.encode().unwrap();
//! assert_eq!(Description::decode(&bytes).unwrap(), d);
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use serde::{Deserialize, Serialize};

/// Largest description the manager accepts (bytes of postcard).
pub const MAX_DESCRIPTION: usize = 64 << 20;

/// The largest description the manager accepts for a stream of `stream_len`
/// bytes: 8 bytes per stream byte and 64 KiB more, at most [`MAX_DESCRIPTION`].
///
/// An honest description mirrors the bytes: fields are copies of them, an
/// embedded signature is there twice (raw in its subpacket, and as fields), and
/// each packet (at least 2 bytes) adds a few bytes of offsets and lengths. The
/// manager refuses a larger reply *before* decoding it, because decoding
/// allocates more than the reply's size (an empty vector is one byte on the
/// wire and 24 in memory): with this bound, what a lying handler can make the
/// manager allocate grows with the input it was given, not up to the fixed cap.
///
/// ```
/// use umd_pgp_wire::{max_description, MAX_DESCRIPTION};
/// assert_eq!(max_description(0), 64 << 10);
/// assert_eq!(max_description(1000), 8000 + (64 << 10));
/// assert_eq!(max_description(usize::MAX), MAX_DESCRIPTION);
/// ```
pub fn max_description(stream_len: usize) -> usize {
    stream_len.saturating_mul(8).saturating_add(64 << 10).min(MAX_DESCRIPTION)
}

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

    /// Decodes with postcard (never panics; refuses trailing bytes).
    pub fn decode(bytes: &[u8]) -> Result<Description, postcard::Error> {
        let (d, rest) = postcard::take_from_bytes(bytes)?;
        if !rest.is_empty() {
            return Err(postcard::Error::DeserializeBadEncoding);
        }
        Ok(d)
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
    Mpi(Vec<u8>),
    /// An OID: 1-octet length, then the octets.
    Oid(Vec<u8>),
    /// Fixed-size octets (e.g. an Ed25519 key or signature in v6 form).
    Raw(Vec<u8>),
    /// 1-octet length, then the octets (e.g. ECDH KDF parameters).
    Sized(Vec<u8>),
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
    pub body: Vec<u8>,
    /// For an embedded signature (type 32), and only then: its fields,
    /// re-encoded and checked against `body` like any signature.
    pub embedded: Option<Box<Sig>>,
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(Description::decode(&d.encode().unwrap()).unwrap(), d);
        assert!(Description::decode(&[0xff; 7]).is_err());
        let mut extra = d.encode().unwrap();
        extra.push(0);
        assert!(Description::decode(&extra).is_err());
    }
}
