//! Checking a handler's packet description against the bytes (RFC 9580 §4–§5).
//!
//! The handler parses; the manager checks. [`check`] accepts a [`Description`]
//! only if
//!
//! 1. its packets **tile** the stream: the first starts at 0, each starts where
//!    the previous one ends, the last ends at the end — nothing skipped, nothing
//!    reordered, nothing invented;
//! 2. every packet **header** read by the manager itself gives the described tag,
//!    header length and body length (so an opaque packet cannot hide a signature:
//!    its tag is the one in the bytes);
//! 3. every packet the manager uses (keys, subkeys, signatures, user IDs) is
//!    described, and its body **re-encoded** from the described fields equals the
//!    bytes exactly.
//!
//! What comes out ([`Checked`]) is therefore the stream's own content, borrowed
//! from the stream; the unchecked wire types never reach the verification code.

use umd_pgp_wire::{Body, Description, Field, Key, Packet, Sig, Subpacket};

use crate::crypto;

/// Packet tags the manager uses (RFC 9580 §5).
pub mod tag {
    /// Signature.
    pub const SIGNATURE: u8 = 2;
    /// Public key (primary).
    pub const PUBLIC_KEY: u8 = 6;
    /// User ID.
    pub const USER_ID: u8 = 13;
    /// Public subkey.
    pub const PUBLIC_SUBKEY: u8 = 14;
    /// User attribute.
    pub const USER_ATTRIBUTE: u8 = 17;
}

/// A packet header as the manager reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The tag.
    pub tag: u8,
    /// Octets of tag and length.
    pub header_len: usize,
    /// The body length; `None` for a partial or indeterminate length.
    pub body_len: Option<u64>,
}

/// Why a description was refused. Each names the packet (index and offset).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PacketError {
    /// The description has no packets, or the stream is empty.
    #[error("empty packet stream")]
    Empty,
    /// A packet does not start where the previous one ended.
    #[error("packet {index}: described at offset {described}, but the previous packet ends at {expected} (a gap, an overlap or a reordering)")]
    NotTiled {
        /// Packet index.
        index: usize,
        /// Offset the handler gave.
        described: u64,
        /// Where it must start.
        expected: u64,
    },
    /// The packets end before or after the stream does.
    #[error("the packets cover {covered} bytes of a {len}-byte stream")]
    Coverage {
        /// Bytes described.
        covered: u64,
        /// Stream length.
        len: u64,
    },
    /// The header in the bytes is not a valid packet header.
    #[error("packet {index} at offset {offset}: malformed header: {why}")]
    BadHeader {
        /// Packet index.
        index: usize,
        /// Its offset.
        offset: u64,
        /// What is wrong.
        why: &'static str,
    },
    /// The header in the bytes disagrees with the description.
    #[error("packet {index} at offset {offset}: described as tag {described_tag}, header {described_header}+{described_body} bytes, but the bytes say tag {tag}, header {header}+{body:?}")]
    HeaderMismatch {
        /// Packet index.
        index: usize,
        /// Its offset.
        offset: u64,
        /// Described tag.
        described_tag: u8,
        /// Described header length.
        described_header: u32,
        /// Described body length.
        described_body: u64,
        /// Tag in the bytes.
        tag: u8,
        /// Header length in the bytes.
        header: usize,
        /// Body length in the bytes (`None`: partial).
        body: Option<u64>,
    },
    /// A packet the manager uses was described as opaque or as another kind.
    #[error("packet {index} at offset {offset}: tag {tag} must be described as {expected}")]
    WrongKind {
        /// Packet index.
        index: usize,
        /// Its offset.
        offset: u64,
        /// The tag.
        tag: u8,
        /// What its body must be described as.
        expected: &'static str,
    },
    /// The re-encoded body differs from the bytes.
    #[error("packet {index} at offset {offset} (tag {tag}): the described fields do not re-encode to the bytes (first difference at body byte {at})")]
    FieldsMismatch {
        /// Packet index.
        index: usize,
        /// Its offset.
        offset: u64,
        /// The tag.
        tag: u8,
        /// First differing body byte.
        at: usize,
    },
    /// A described field cannot be encoded (too long, a non-canonical MPI).
    #[error("packet {index} at offset {offset}: a described field cannot be encoded: {why}")]
    Unencodable {
        /// Packet index.
        index: usize,
        /// Its offset.
        offset: u64,
        /// Why.
        why: &'static str,
    },
}

/// Reads the packet header at `offset` (old or new format).
pub fn read_header(stream: &[u8], offset: usize) -> Result<Header, &'static str> {
    let b = |i: usize| stream.get(offset + i).copied().ok_or("truncated header");
    let ctb = b(0)?;
    if ctb & 0x80 == 0 {
        return Err("bit 7 of the tag octet is clear");
    }
    if ctb & 0x40 != 0 {
        // New format.
        let tag = ctb & 0x3f;
        let l0 = b(1)?;
        let (header_len, body_len) = match l0 {
            0..=191 => (2, Some(u64::from(l0))),
            192..=223 => (3, Some(((u64::from(l0) - 192) << 8) + u64::from(b(2)?) + 192)),
            255 => {
                let len = u32::from_be_bytes([b(2)?, b(3)?, b(4)?, b(5)?]);
                (6, Some(u64::from(len)))
            }
            _ => (2, None), // partial body length
        };
        Ok(Header { tag, header_len, body_len })
    } else {
        // Old format.
        let tag = (ctb >> 2) & 0x0f;
        let (header_len, body_len) = match ctb & 3 {
            0 => (2, Some(u64::from(b(1)?))),
            1 => (3, Some(u64::from(u16::from_be_bytes([b(1)?, b(2)?])))),
            2 => (5, Some(u64::from(u32::from_be_bytes([b(1)?, b(2)?, b(3)?, b(4)?])))),
            _ => (1, None), // indeterminate: to the end of the stream
        };
        Ok(Header { tag, header_len, body_len })
    }
}

/// A packet as the manager's own header walk finds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Where it starts.
    pub offset: usize,
    /// Its header.
    pub header: Header,
    /// Header and body: where the next packet starts is `offset + extent`.
    pub extent: usize,
}

impl Frame {
    /// The body octets (all chunks, with their length octets, for a partial body).
    pub fn body<'a>(&self, stream: &'a [u8]) -> &'a [u8] {
        &stream[self.offset + self.header.header_len..self.offset + self.extent]
    }
}

/// Where the packet at `offset` ends: header and body, all chunks of a partial
/// body, the rest of the stream for an old-format indeterminate length.
fn extent_at(stream: &[u8], offset: usize, h: &Header) -> Result<u64, &'static str> {
    match h.body_len {
        Some(len) => (h.header_len as u64).checked_add(len).ok_or("length overflow"),
        None if h.header_len == 1 => Ok((stream.len() - offset) as u64),
        None => partial_extent(stream, offset),
    }
}

/// The manager's own walk over a stream's packet headers, with no handler: the
/// framing only (tags and lengths), every byte in exactly one packet. The
/// verifier uses it to cut a keyring into certificates and find each one's
/// fingerprints from the raw key bodies, so that the handler describes only
/// the certificates a signature needs. What a certificate holds is still known
/// only from a description that [`check`] accepted.
pub fn frames(stream: &[u8]) -> Result<Vec<Frame>, PacketError> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < stream.len() {
        let (index, offset) = (out.len(), at as u64);
        let bad = |why| PacketError::BadHeader { index, offset, why };
        let header = read_header(stream, at).map_err(bad)?;
        let extent = extent_at(stream, at, &header).map_err(bad)?;
        let end = offset.saturating_add(extent);
        if end > stream.len() as u64 {
            return Err(PacketError::Coverage { covered: end, len: stream.len() as u64 });
        }
        out.push(Frame { offset: at, header, extent: extent as usize });
        at = end as usize;
    }
    Ok(out)
}

/// How many packets of tag `t` the stream holds, by the manager's own walk
/// over its headers ([`frames`], without keeping them): cheap enough to run
/// before anything is described.
pub fn count_tag(stream: &[u8], t: u8) -> Result<usize, PacketError> {
    let (mut at, mut index, mut count) = (0, 0, 0);
    while at < stream.len() {
        let offset = at as u64;
        let bad = |why| PacketError::BadHeader { index, offset, why };
        let header = read_header(stream, at).map_err(bad)?;
        let extent = extent_at(stream, at, &header).map_err(bad)?;
        let end = offset.saturating_add(extent);
        if end > stream.len() as u64 {
            return Err(PacketError::Coverage { covered: end, len: stream.len() as u64 });
        }
        count += usize::from(header.tag == t);
        index += 1;
        at = end as usize;
    }
    Ok(count)
}

/// Length of a packet with partial body lengths (new format), header included:
/// the manager walks the chunks itself.
fn partial_extent(stream: &[u8], offset: usize) -> Result<u64, &'static str> {
    let mut pos = offset + 1; // after the tag octet
    loop {
        let l0 = *stream.get(pos).ok_or("truncated partial length")?;
        match l0 {
            224..=254 => {
                let chunk = 1usize << (l0 & 0x1f);
                pos = pos.checked_add(1 + chunk).ok_or("length overflow")?;
            }
            0..=191 => return Ok((pos + 1 + usize::from(l0) - offset) as u64),
            192..=223 => {
                let l1 = *stream.get(pos + 1).ok_or("truncated partial length")?;
                let len = ((usize::from(l0) - 192) << 8) + usize::from(l1) + 192;
                return Ok((pos + 2 + len - offset) as u64);
            }
            255 => {
                let l = stream.get(pos + 1..pos + 5).ok_or("truncated partial length")?;
                let len = u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize;
                return Ok((pos + 5 + len - offset) as u64);
            }
        }
    }
}

/// A checked packet: its tag, its body bytes (borrowed from the stream) and, for
/// packets the manager uses, its fields — now known to be the bytes' own.
/// Only [`check`] makes one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checked<'a> {
    tag: u8,
    offset: u64,
    body: &'a [u8],
    fields: CheckedBody,
}

impl<'a> Checked<'a> {
    /// The tag.
    pub fn tag(&self) -> u8 {
        self.tag
    }

    /// Offset of the packet in the stream.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The body bytes.
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// The fields.
    pub fn fields(&self) -> &CheckedBody {
        &self.fields
    }

    /// The signature, if this is a signature packet.
    pub fn signature(&self) -> Option<&CheckedSig> {
        match &self.fields {
            CheckedBody::Signature(s) => Some(s),
            _ => None,
        }
    }
}

/// The fields of a checked packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckedBody {
    /// Not used by the manager.
    Opaque,
    /// A primary key.
    PublicKey(CheckedKey),
    /// A subkey.
    PublicSubkey(CheckedKey),
    /// A user ID (its value is the body).
    UserId,
    /// A user attribute.
    UserAttribute,
    /// A signature.
    Signature(CheckedSig),
}

/// One algorithm-specific field of a checked key or signature, borrowed: the
/// form RFC 9580 gives the algorithm (§5.5.5, §5.2.3), which [`check`]
/// required.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckedField<'a> {
    /// A multiprecision integer's magnitude (no leading zero octets).
    Mpi(&'a [u8]),
    /// An OID's octets.
    Oid(&'a [u8]),
    /// Fixed-size octets.
    Raw(&'a [u8]),
    /// Length-prefixed octets (ECDH KDF parameters).
    Sized(&'a [u8]),
}

fn field_view(f: &Field) -> CheckedField<'_> {
    match f {
        Field::Mpi(v) => CheckedField::Mpi(v),
        Field::Oid(v) => CheckedField::Oid(v),
        Field::Raw(v) => CheckedField::Raw(v),
        Field::Sized(v) => CheckedField::Sized(v),
    }
}

/// A public key packet's fields (primary or subkey) that re-encode to the
/// packet's bytes, in their algorithm's form. Only [`check`] makes one: the
/// verification code ([`crypto`], the policy, certificates) takes no other
/// key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedKey {
    key: Key,
}

impl CheckedKey {
    /// Version: 4 or 6 (the re-encoding refuses any other).
    pub fn version(&self) -> u8 {
        self.key.version
    }

    /// Creation time (seconds since the epoch).
    pub fn created(&self) -> u32 {
        self.key.created
    }

    /// Public key algorithm id.
    pub fn algo(&self) -> u8 {
        self.key.algo
    }

    /// The algorithm-specific fields, in wire order.
    pub fn material(&self) -> Vec<CheckedField<'_>> {
        self.key.material.iter().map(field_view).collect()
    }
}

/// A signature's fields that re-encode to the packet's bytes (or, for an
/// embedded signature, to its subpacket's body), in their algorithm's form.
/// Only [`check`] makes one: the verification code (hashing, [`crypto`], the
/// policy, issuer hints) takes no other signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedSig {
    sig: Sig,
}

impl CheckedSig {
    /// Version: 4 or 6 (the re-encoding refuses any other).
    pub fn version(&self) -> u8 {
        self.sig.version
    }

    /// Signature type.
    pub fn sig_type(&self) -> u8 {
        self.sig.sig_type
    }

    /// Public key algorithm id.
    pub fn pk_algo(&self) -> u8 {
        self.sig.pk_algo
    }

    /// Hash algorithm id.
    pub fn hash_algo(&self) -> u8 {
        self.sig.hash_algo
    }

    /// The left 16 bits of the signed hash.
    pub fn left16(&self) -> [u8; 2] {
        self.sig.left16
    }

    /// The salt (v6; empty for v4).
    pub fn salt(&self) -> &[u8] {
        &self.sig.salt
    }

    /// The signature values, in wire order.
    pub fn values(&self) -> Vec<CheckedField<'_>> {
        self.sig.values.iter().map(field_view).collect()
    }

    /// The hashed subpackets, in order.
    pub fn hashed(&self) -> impl Iterator<Item = CheckedSubpacket<'_>> + Clone {
        self.sig.hashed.iter().map(|sp| CheckedSubpacket { sp })
    }

    /// The unhashed subpackets, in order (not covered by the signature).
    pub fn unhashed(&self) -> impl Iterator<Item = CheckedSubpacket<'_>> + Clone {
        self.sig.unhashed.iter().map(|sp| CheckedSubpacket { sp })
    }

    /// The hashed subpacket area as it is in the bytes (without its length
    /// prefix): what the signature's hash covers.
    pub fn hashed_area(&self) -> Result<Vec<u8>, crypto::CryptoError> {
        let mut out = Vec::new();
        for sp in &self.sig.hashed {
            encode_subpacket(sp, &mut out)?;
        }
        Ok(out)
    }
}

/// A subpacket of a [`CheckedSig`], borrowed.
#[derive(Clone, Copy, Debug)]
pub struct CheckedSubpacket<'a> {
    sp: &'a Subpacket,
}

impl<'a> CheckedSubpacket<'a> {
    /// The subpacket type (without the critical bit).
    pub fn typ(&self) -> u8 {
        self.sp.typ
    }

    /// The critical bit.
    pub fn critical(&self) -> bool {
        self.sp.critical
    }

    /// The body.
    pub fn body(&self) -> &'a [u8] {
        &self.sp.body
    }

    /// For an embedded signature (type 32): its fields, which re-encode to
    /// this subpacket's body (checked with the signature that holds it).
    pub fn embedded(&self) -> Option<CheckedSig> {
        self.sp.embedded.as_deref().map(|s| CheckedSig { sig: s.clone() })
    }
}

/// Checks a description against the stream (see the module docs). The
/// description is consumed: the checked fields are moved out of it, not
/// copied, so checking costs no second copy of what was decoded.
pub fn check(stream: &[u8], desc: Description) -> Result<Vec<Checked<'_>>, PacketError> {
    if stream.is_empty() || desc.packets.is_empty() {
        return Err(PacketError::Empty);
    }
    let mut expected: u64 = 0;
    let mut out = Vec::with_capacity(desc.packets.len());
    for (index, p) in desc.packets.into_iter().enumerate() {
        if p.offset != expected {
            return Err(PacketError::NotTiled { index, described: p.offset, expected });
        }
        let offset = p.offset;
        let at = usize::try_from(offset)
            .map_err(|_| PacketError::Coverage { covered: offset, len: stream.len() as u64 })?;
        let h = read_header(stream, at).map_err(|why| PacketError::BadHeader { index, offset, why })?;
        let extent = match h.body_len {
            Some(len) => (h.header_len as u64).checked_add(len),
            None => Some(extent_at(stream, at, &h).map_err(|why| PacketError::BadHeader {
                index,
                offset,
                why,
            })?),
        };
        let described_extent = u64::from(p.header_len).checked_add(p.body_len);
        let header_ok = h.tag == p.tag
            && h.header_len == p.header_len as usize
            && match h.body_len {
                Some(len) => len == p.body_len,
                None => extent == described_extent, // partial: the extent must agree
            };
        if !header_ok || extent.is_none() {
            return Err(PacketError::HeaderMismatch {
                index,
                offset,
                described_tag: p.tag,
                described_header: p.header_len,
                described_body: p.body_len,
                tag: h.tag,
                header: h.header_len,
                body: h.body_len,
            });
        }
        let end = offset.saturating_add(described_extent.unwrap_or(u64::MAX));
        if end > stream.len() as u64 {
            return Err(PacketError::Coverage { covered: end, len: stream.len() as u64 });
        }
        let body = &stream[at + p.header_len as usize..end as usize];
        let tag = p.tag;
        let fields = check_body(index, p, h.body_len.is_some(), body)?;
        out.push(Checked { tag, offset, body, fields });
        expected = end;
    }
    if expected != stream.len() as u64 {
        return Err(PacketError::Coverage { covered: expected, len: stream.len() as u64 });
    }
    Ok(out)
}

fn check_body(index: usize, p: Packet, definite: bool, body: &[u8]) -> Result<CheckedBody, PacketError> {
    let (offset, ptag) = (p.offset, p.tag);
    let wrong = |expected| Err(PacketError::WrongKind { index, offset, tag: ptag, expected });
    let compare = |encoded: Result<Vec<u8>, &'static str>| -> Result<(), PacketError> {
        let encoded = encoded.map_err(|why| PacketError::Unencodable { index, offset, why })?;
        if encoded != body {
            let at =
                encoded.iter().zip(body).position(|(a, b)| a != b).unwrap_or(encoded.len().min(body.len()));
            return Err(PacketError::FieldsMismatch { index, offset, tag: ptag, at });
        }
        Ok(())
    };
    // Packets the manager uses never have partial lengths (RFC 9580 §4.2.1.4).
    let used = matches!(
        p.tag,
        tag::SIGNATURE | tag::PUBLIC_KEY | tag::PUBLIC_SUBKEY | tag::USER_ID | tag::USER_ATTRIBUTE
    );
    if used && !definite {
        return Err(PacketError::BadHeader {
            index,
            offset,
            why: "partial body length on a packet that may not have one",
        });
    }
    match (p.tag, p.body) {
        (tag::PUBLIC_KEY, Body::PublicKey(key)) => {
            compare(encode_key(&key)).map(|()| CheckedBody::PublicKey(CheckedKey { key }))
        }
        (tag::PUBLIC_SUBKEY, Body::PublicSubkey(key)) => {
            compare(encode_key(&key)).map(|()| CheckedBody::PublicSubkey(CheckedKey { key }))
        }
        (tag::SIGNATURE, Body::Signature(sig)) => {
            compare(encode_sig(&sig)).map(|()| CheckedBody::Signature(CheckedSig { sig }))
        }
        (tag::USER_ID, Body::UserId) => Ok(CheckedBody::UserId),
        (tag::USER_ATTRIBUTE, Body::UserAttribute) => Ok(CheckedBody::UserAttribute),
        (tag::PUBLIC_KEY, _) => wrong("a public key"),
        (tag::PUBLIC_SUBKEY, _) => wrong("a public subkey"),
        (tag::SIGNATURE, _) => wrong("a signature"),
        (tag::USER_ID, _) => wrong("a user ID"),
        (tag::USER_ATTRIBUTE, _) => wrong("a user attribute"),
        (_, Body::Opaque) => Ok(CheckedBody::Opaque),
        (_, _) => wrong("opaque (the manager does not use this tag)"),
    }
}

/// Encodes one algorithm-specific field.
pub fn encode_field(f: &Field, out: &mut Vec<u8>) -> Result<(), &'static str> {
    match f {
        Field::Mpi(m) => {
            if m.first() == Some(&0) {
                return Err("an MPI with a leading zero octet");
            }
            let bits = match m.first() {
                None => 0,
                Some(&b) => (m.len() - 1) * 8 + (8 - b.leading_zeros() as usize),
            };
            let bits = u16::try_from(bits).map_err(|_| "an MPI over 65535 bits")?;
            out.extend_from_slice(&bits.to_be_bytes());
            out.extend_from_slice(m);
        }
        Field::Oid(o) | Field::Sized(o) => {
            let len = u8::try_from(o.len()).map_err(|_| "a length-prefixed field over 255 octets")?;
            if matches!(f, Field::Oid(_)) && (len == 0 || len == 0xff) {
                return Err("an OID of reserved length");
            }
            out.push(len);
            out.extend_from_slice(o);
        }
        Field::Raw(r) => out.extend_from_slice(r),
    }
    Ok(())
}

/// Whether `fields` have the form RFC 9580 gives the algorithm's key material
/// (§5.5.5, `material`) or signature values (§5.2.3), as [`umd_pgp_wire`]
/// documents it; an algorithm the manager does not know has one raw field.
///
/// Raw octets re-encode like any split of them, so without this a handler could
/// describe the bytes exactly in a form the manager cannot use: a signature it
/// cannot verify is one it drops, and a dropped revocation revokes nothing. In
/// the algorithm's form (MPIs, length-prefixed and fixed-size fields) there is
/// only one reading of the octets.
fn in_algorithm_form(algo: u8, fields: &[Field], material: bool) -> bool {
    use Field::{Mpi, Oid, Raw, Sized};
    let raw = |n: usize| matches!(fields, [Raw(r)] if r.len() == n);
    match (material, algo) {
        (true, 1..=3) => matches!(fields, [Mpi(_), Mpi(_)]),
        (true, 16 | 20) => matches!(fields, [Mpi(_), Mpi(_), Mpi(_)]),
        (true, 17) => matches!(fields, [Mpi(_), Mpi(_), Mpi(_), Mpi(_)]),
        (true, 18) => matches!(fields, [Oid(_), Mpi(_), Sized(_)]),
        (true, 19 | 22) => matches!(fields, [Oid(_), Mpi(_)]),
        (true, 25 | 27) => raw(32),
        (true, 26) => raw(56),
        (true, 28) => raw(57),
        (false, 1..=3) => matches!(fields, [Mpi(_)]),
        (false, 16 | 17 | 19 | 20 | 22) => matches!(fields, [Mpi(_), Mpi(_)]),
        (false, 27) => raw(64),
        (false, 28) => raw(114),
        _ => matches!(fields, [Raw(_)]),
    }
}

/// Re-encodes a public key packet body.
pub fn encode_key(k: &Key) -> Result<Vec<u8>, &'static str> {
    if !in_algorithm_form(k.algo, &k.material, true) {
        return Err("key material not in its algorithm's form");
    }
    let mut material = Vec::new();
    for f in &k.material {
        encode_field(f, &mut material)?;
    }
    let mut out = vec![k.version];
    out.extend_from_slice(&k.created.to_be_bytes());
    out.push(k.algo);
    match k.version {
        4 => {}
        6 => out.extend_from_slice(
            &u32::try_from(material.len()).map_err(|_| "key material too long")?.to_be_bytes(),
        ),
        _ => return Err("a key version other than 4 or 6"),
    }
    out.extend_from_slice(&material);
    Ok(out)
}

/// Appends one subpacket in wire form (RFC 9580 §5.2.3.7): its length in the
/// `len_octets` form it was described with, the type octet (0x80 set if
/// critical), then the body. The length counts the type octet and the body.
///
/// The length form is kept as described, because a sender may use a longer
/// form than needed and the hashed bytes must be exactly the packet's bytes.
/// A form that cannot carry the length (a 1-octet form for 192 or more, a
/// 2-octet form outside 192..=16319) is an error, not a silent re-encoding.
pub fn encode_subpacket(sp: &Subpacket, out: &mut Vec<u8>) -> Result<(), crypto::CryptoError> {
    let len = sp.body.len() + 1;
    let bad = || crypto::CryptoError::SubpacketLength { typ: sp.typ, len, len_octets: sp.len_octets };
    match sp.len_octets {
        1 if len < 192 => out.push(len as u8),
        2 if (192..=16319).contains(&len) => {
            let l = len - 192;
            out.push(((l >> 8) + 192) as u8);
            out.push((l & 0xff) as u8);
        }
        5 => {
            let l = u32::try_from(len).map_err(|_| bad())?;
            out.push(0xff);
            out.extend_from_slice(&l.to_be_bytes());
        }
        _ => return Err(bad()),
    }
    if sp.typ > 0x7f {
        // The type is described without the critical bit; a type with it set
        // would be a second way to say "critical", so it does not re-encode.
        return Err(bad());
    }
    out.push(sp.typ | if sp.critical { 0x80 } else { 0 });
    out.extend_from_slice(&sp.body);
    Ok(())
}

/// Encodes a subpacket area (without its length prefix) with
/// [`encode_subpacket`], also checking that each embedded signature's
/// fields re-encode to its subpacket's body.
///
/// An embedded signature subpacket (type 32) must come with its fields: its
/// body alone re-encodes, but without the fields the manager cannot read it,
/// and a signature it cannot read is one it drops — a handler could then void a
/// revocation, or a newer binding that expired a subkey, by describing the
/// bytes exactly and leaving the fields out.
pub fn encode_subpackets(area: &[Subpacket]) -> Result<Vec<u8>, &'static str> {
    let mut out = Vec::new();
    for sp in area {
        encode_subpacket(sp, &mut out)
            .map_err(|_| "a subpacket whose length form or type cannot be encoded")?;
        match (&sp.embedded, sp.typ) {
            (Some(embedded), 32) => {
                if encode_sig_inner(embedded, false)? != sp.body {
                    return Err("the embedded signature's fields do not re-encode to its subpacket");
                }
            }
            (Some(_), _) => return Err("an embedded signature in a subpacket that is not of type 32"),
            (None, 32) => return Err("an embedded signature subpacket (type 32) without its fields"),
            (None, _) => {}
        }
    }
    Ok(out)
}

/// Re-encodes a signature packet body.
pub fn encode_sig(s: &Sig) -> Result<Vec<u8>, &'static str> {
    encode_sig_inner(s, true)
}

fn encode_sig_inner(s: &Sig, allow_embedded: bool) -> Result<Vec<u8>, &'static str> {
    if !allow_embedded && (s.hashed.iter().chain(&s.unhashed)).any(|sp| sp.embedded.is_some()) {
        return Err("a signature embedded more than one level deep");
    }
    if !in_algorithm_form(s.pk_algo, &s.values, false) {
        return Err("signature values not in their algorithm's form");
    }
    let hashed = encode_subpackets(&s.hashed)?;
    let unhashed = encode_subpackets(&s.unhashed)?;
    let mut out = vec![s.version, s.sig_type, s.pk_algo, s.hash_algo];
    match s.version {
        4 => {
            if !s.salt.is_empty() {
                return Err("a salt in a v4 signature");
            }
            out.extend_from_slice(
                &u16::try_from(hashed.len()).map_err(|_| "hashed area too long")?.to_be_bytes(),
            );
            out.extend_from_slice(&hashed);
            out.extend_from_slice(
                &u16::try_from(unhashed.len()).map_err(|_| "unhashed area too long")?.to_be_bytes(),
            );
            out.extend_from_slice(&unhashed);
            out.extend_from_slice(&s.left16);
        }
        6 => {
            out.extend_from_slice(
                &u32::try_from(hashed.len()).map_err(|_| "hashed area too long")?.to_be_bytes(),
            );
            out.extend_from_slice(&hashed);
            out.extend_from_slice(
                &u32::try_from(unhashed.len()).map_err(|_| "unhashed area too long")?.to_be_bytes(),
            );
            out.extend_from_slice(&unhashed);
            out.extend_from_slice(&s.left16);
            out.push(u8::try_from(s.salt.len()).map_err(|_| "salt too long")?);
            out.extend_from_slice(&s.salt);
        }
        _ => return Err("a signature version other than 4 or 6"),
    }
    for f in &s.values {
        encode_field(f, &mut out)?;
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// What [`check`] makes of a one-packet stream: `body` described as
    /// itself, its bytes the fields' encoding (a 5-octet length header).
    fn check_one(tag: u8, body: Body) -> CheckedBody {
        let bytes = match &body {
            Body::PublicKey(k) | Body::PublicSubkey(k) => encode_key(k),
            Body::Signature(s) => encode_sig(s),
            _ => Ok(vec![]),
        };
        let bytes = bytes.expect("fields that encode");
        let mut stream = vec![0xC0 | tag, 0xFF];
        stream.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        stream.extend_from_slice(&bytes);
        let p = Packet { offset: 0, header_len: 6, body_len: bytes.len() as u64, tag, body };
        let mut checked = check(&stream, Description { packets: vec![p] }).expect("a packet that checks");
        checked.remove(0).fields
    }

    /// A key, through [`check`].
    pub(crate) fn checked_key(k: Key) -> CheckedKey {
        match check_one(tag::PUBLIC_KEY, Body::PublicKey(k)) {
            CheckedBody::PublicKey(k) => k,
            other => panic!("{other:?}"),
        }
    }

    /// A signature, through [`check`].
    pub(crate) fn checked_sig(s: Sig) -> CheckedSig {
        match check_one(tag::SIGNATURE, Body::Signature(s)) {
            CheckedBody::Signature(s) => s,
            other => panic!("{other:?}"),
        }
    }

    fn uid_packet(id: &[u8]) -> Vec<u8> {
        let mut p = vec![0xC0 | tag::USER_ID, id.len() as u8];
        p.extend_from_slice(id);
        p
    }

    fn key() -> Key {
        Key {
            version: 4,
            created: 1_700_000_000,
            algo: 22,
            material: vec![
                Field::Oid(vec![0x2B, 0x06, 0x01, 0x04, 0x01, 0xDA, 0x47, 0x0F, 0x01]),
                Field::Mpi({
                    let mut v = vec![0x40];
                    v.extend_from_slice(&[7; 32]);
                    v
                }),
            ],
        }
    }

    fn sig() -> Sig {
        Sig {
            version: 4,
            sig_type: 0x13,
            pk_algo: 22,
            hash_algo: 10,
            hashed: vec![
                Subpacket {
                    len_octets: 1,
                    critical: false,
                    typ: 2,
                    body: vec![0x65, 0, 0, 0],
                    embedded: None,
                },
                Subpacket { len_octets: 5, critical: true, typ: 27, body: vec![0x03], embedded: None },
            ],
            unhashed: vec![Subpacket {
                len_octets: 1,
                critical: false,
                typ: 16,
                body: vec![1; 8],
                embedded: None,
            }],
            left16: [0xAB, 0xCD],
            salt: vec![],
            values: vec![Field::Mpi(vec![0x7f; 32]), Field::Mpi(vec![0x01; 31])],
        }
    }

    fn packet(tag: u8, body: &[u8]) -> Vec<u8> {
        // New-format header with a two-octet length where needed.
        let mut p = vec![0xC0 | tag];
        if body.len() < 192 {
            p.push(body.len() as u8);
        } else {
            let l = body.len() - 192;
            p.push((l >> 8) as u8 + 192);
            p.push((l & 0xff) as u8);
        }
        p.extend_from_slice(body);
        p
    }

    fn stream_and_desc() -> (Vec<u8>, Description) {
        let k = key();
        let s = sig();
        let kp = packet(tag::PUBLIC_KEY, &encode_key(&k).unwrap());
        let up = uid_packet(b"Alice <alice@example.org>");
        let sp = packet(tag::SIGNATURE, &encode_sig(&s).unwrap());
        let mut stream = Vec::new();
        let mut packets = Vec::new();
        for (bytes, body) in [(kp, Body::PublicKey(k)), (up, Body::UserId), (sp, Body::Signature(s))] {
            let h = read_header(&bytes, 0).unwrap();
            packets.push(Packet {
                offset: stream.len() as u64,
                header_len: h.header_len as u32,
                body_len: h.body_len.unwrap(),
                tag: h.tag,
                body,
            });
            stream.extend_from_slice(&bytes);
        }
        (stream, Description { packets })
    }

    #[test]
    fn an_honest_description_checks_out() {
        let (stream, desc) = stream_and_desc();
        let checked = check(&stream, desc).unwrap();
        assert_eq!(checked.len(), 3);
        assert_eq!(checked[1].body(), b"Alice <alice@example.org>");
        assert!(matches!(checked[2].fields(), CheckedBody::Signature(_)));
    }

    #[test]
    fn omitted_reordered_or_invented_packets_are_refused() {
        let (stream, desc) = stream_and_desc();
        let mut omitted = desc.clone();
        omitted.packets.remove(1);
        assert!(matches!(check(&stream, omitted), Err(PacketError::NotTiled { index: 1, .. })));
        let mut last_dropped = desc.clone();
        last_dropped.packets.pop();
        assert!(matches!(check(&stream, last_dropped), Err(PacketError::Coverage { .. })));
        let mut swapped = desc.clone();
        swapped.packets.swap(1, 2);
        assert!(check(&stream, swapped).is_err());
        let mut longer = desc.clone();
        longer.packets[2].body_len += 1;
        assert!(matches!(check(&stream, longer), Err(PacketError::HeaderMismatch { .. })));
    }

    #[test]
    fn every_lie_about_a_field_is_caught_by_re_encoding() {
        let (stream, desc) = stream_and_desc();
        type Lie = Box<dyn Fn(&mut Description)>;
        let lies: Vec<Lie> = vec![
            Box::new(|d| {
                if let Body::PublicKey(k) = &mut d.packets[0].body {
                    k.created += 1
                }
            }),
            Box::new(|d| {
                if let Body::PublicKey(k) = &mut d.packets[0].body {
                    k.material[1] = Field::Mpi(vec![0x40; 33])
                }
            }),
            Box::new(|d| {
                if let Body::Signature(s) = &mut d.packets[2].body {
                    s.hash_algo = 2
                }
            }),
            Box::new(|d| {
                if let Body::Signature(s) = &mut d.packets[2].body {
                    s.hashed[0].body = vec![0x70, 0, 0, 0]
                }
            }),
            Box::new(|d| {
                if let Body::Signature(s) = &mut d.packets[2].body {
                    s.hashed[1].critical = false
                }
            }),
            Box::new(|d| {
                if let Body::Signature(s) = &mut d.packets[2].body {
                    s.hashed.remove(1);
                }
            }),
            Box::new(|d| {
                if let Body::Signature(s) = &mut d.packets[2].body {
                    s.unhashed[0].body = vec![2; 8]
                }
            }),
            Box::new(|d| {
                if let Body::Signature(s) = &mut d.packets[2].body {
                    s.sig_type = 0x30
                }
            }),
            // The same octets in another form: one raw field.
            Box::new(|d| {
                if let Body::Signature(s) = &mut d.packets[2].body {
                    let mut raw = Vec::new();
                    s.values.iter().for_each(|f| encode_field(f, &mut raw).unwrap());
                    s.values = vec![Field::Raw(raw)];
                }
            }),
            Box::new(|d| {
                if let Body::PublicKey(k) = &mut d.packets[0].body {
                    let mut raw = Vec::new();
                    k.material.iter().for_each(|f| encode_field(f, &mut raw).unwrap());
                    k.material = vec![Field::Raw(raw)];
                }
            }),
            Box::new(|d| d.packets[2].body = Body::Opaque),
            Box::new(|d| d.packets[1].body = Body::Opaque),
            Box::new(|d| d.packets[0].tag = 14),
        ];
        for (i, lie) in lies.iter().enumerate() {
            let mut d = desc.clone();
            lie(&mut d);
            assert!(check(&stream, d).is_err(), "lie {i} was accepted");
        }
    }

    #[test]
    fn an_embedded_signature_must_be_described_with_its_fields() {
        let mut outer = sig();
        let inner = sig();
        let body = encode_sig(&inner).unwrap();
        let embedded = Subpacket { len_octets: 1, critical: false, typ: 32, body, embedded: None };
        outer.hashed.push(Subpacket { embedded: Some(Box::new(inner)), ..embedded.clone() });
        assert!(encode_sig(&outer).is_ok());
        // The same bytes with the fields left out: refused.
        outer.hashed.pop();
        outer.hashed.push(embedded);
        assert_eq!(encode_sig(&outer), Err("an embedded signature subpacket (type 32) without its fields"));
    }

    #[test]
    fn old_format_and_five_octet_headers_are_read() {
        assert_eq!(read_header(&[0x88, 5], 0), Ok(Header { tag: 2, header_len: 2, body_len: Some(5) }));
        assert_eq!(read_header(&[0x99, 1, 0], 0), Ok(Header { tag: 6, header_len: 3, body_len: Some(256) }));
        assert_eq!(
            read_header(&[0xC2, 0xFF, 0, 1, 0, 0], 0),
            Ok(Header { tag: 2, header_len: 6, body_len: Some(65536) })
        );
        assert_eq!(read_header(&[0x42], 0), Err("bit 7 of the tag octet is clear"));
        assert_eq!(read_header(&[0xC2], 0), Err("truncated header"));
    }

    proptest::proptest! {
        #[test]
        fn checking_never_panics_on_garbage(stream in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
                                            offs in proptest::collection::vec(0u64..400, 0..5)) {
            let packets = offs.iter().map(|&o| Packet { offset: o, header_len: 2, body_len: o / 3, tag: (o % 20) as u8, body: Body::Opaque }).collect();
            let _ = check(&stream, Description { packets });
            for i in 0..stream.len() { let _ = read_header(&stream, i); let _ = partial_extent(&stream, i); }
        }
    }
}
