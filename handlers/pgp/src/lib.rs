//! The OpenPGP handler's logic: describe every top-level packet of an untrusted
//! packet stream, field by field, in the form [`umd_pgp_wire`] defines.
//!
//! This is the *handler* side of the `pgp` driver: the only code in umd that parses
//! OpenPGP, run in a sandboxed process. The manager believes none of what it says:
//! it checks that the packets tile the stream, re-reads each header and re-encodes
//! each key and signature body from the described fields (RFC 9580) and compares
//! the result with the stream, byte for byte. So a description must be *exact* —
//! every field as it lies in the bytes — and this module refuses (returns `Err`)
//! rather than describe a key, user ID or signature packet it cannot describe
//! exactly.
//!
//! How a stream is described:
//!
//! 1. The packet framing (RFC 9580 §4.2) is read here: offset, header length, body
//!    length and tag of each top-level packet. Containers (compressed or encrypted
//!    data) are not entered; like every packet the manager does not use, they are
//!    [`Body::Opaque`].
//! 2. Public keys and subkeys (tags 6, 14) and signatures (tag 2) are parsed
//!    strictly into their fields; user IDs (13) and user attributes (17) are named.
//! 3. Each described body is re-encoded from its fields and compared with the
//!    stream (the manager's own check, run here first so that an inexact
//!    description is a clear error from the handler, not a mismatch in the manager).
//! 4. Sequoia parses the same stream independently; the packet sequence, and for
//!    keys and signatures their versions, algorithms, times, key material,
//!    signature values and subpacket types, must agree with ours. Two parsers that
//!    agree are harder to fool than one.
//!
//! Everything is bounded: the input is a slice, every length is checked against
//! what remains, and embedded signatures nest at most [`MAX_EMBEDDING`] deep.
//!
//! ```
//! // A user ID packet (new format, tag 13, 5 body octets).
//! let d = umd_pgp_handler::describe(b"\xcd\x05alice").unwrap();
//! assert_eq!(d.packets.len(), 1);
//! assert_eq!((d.packets[0].header_len, d.packets[0].body_len), (2, 5));
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use sequoia_openpgp as openpgp;

use openpgp::parse::{Dearmor, PacketParserBuilder, PacketParserResult, Parse};
use openpgp::serialize::MarshalInto;
use umd_pgp_wire::{Body, Command, Description, Field, Key, Packet, Sig, Subpacket};

/// How deep embedded signatures (subpacket 32) may nest: a signature inside a
/// signature (a subkey binding's primary key binding) is the only use; anything
/// deeper is refused.
pub const MAX_EMBEDDING: usize = 1;

/// How many packets and subpackets one request may describe, all together. The
/// description costs memory in the handler (tens of octets per item) and must fit
/// the manager's [`umd_pgp_wire::MAX_DESCRIPTION`]; keyrings hold far fewer (the
/// Debian archive keyring: about a hundred packets).
pub const MAX_ITEMS: usize = 1 << 20;

/// What is left of [`MAX_ITEMS`] for this request.
struct Budget(usize);

impl Budget {
    fn spend(&mut self) -> Result<(), String> {
        self.0 = self.0.checked_sub(1).ok_or(format!("more than {MAX_ITEMS} packets and subpackets"))?;
        Ok(())
    }
}

// Packet tags the handler describes (RFC 9580 §5).
const TAG_SIGNATURE: u8 = 2;
const TAG_PUBLIC_KEY: u8 = 6;
const TAG_USER_ID: u8 = 13;
const TAG_PUBLIC_SUBKEY: u8 = 14;
const TAG_USER_ATTRIBUTE: u8 = 17;

/// Subpacket type of an embedded signature.
const SUBPACKET_EMBEDDED_SIGNATURE: u8 = 32;

/// Serves one framed request: the [`Command`] byte, then a binary packet stream.
/// Fills `out` with the encoded [`Description`], or returns the error message the
/// runtime sends as an error frame.
pub fn handle(request: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    let (&command, stream) = request.split_first().ok_or("empty request (no command byte)")?;
    if command != Command::Describe as u8 {
        return Err(format!("unknown command {command}"));
    }
    let description = describe(stream)?;
    let bytes = description.encode().map_err(|e| format!("encoding the description: {e}"))?;
    // The manager's limits, applied here first, so that a stream an honest
    // description cannot fit is refused with a message that names the
    // limit, instead of a reply the manager refuses and a handler it shuts
    // down. (Decoding costs a fraction of describing.)
    Description::decode(&bytes, stream.len())
        .map_err(|e| format!("{} packets: {e}", description.packets.len()))?;
    out.extend_from_slice(&bytes);
    Ok(())
}

/// Describes every top-level packet of a binary OpenPGP packet stream (no armor).
///
/// Returns `Err` with a message naming the packet (index, tag, offset) if the
/// stream does not parse, or if a key, user ID or signature packet cannot be
/// described exactly.
pub fn describe(stream: &[u8]) -> Result<Description, String> {
    let mut packets = Vec::new();
    let mut budget = Budget(MAX_ITEMS);
    let mut offset = 0usize;
    while offset < stream.len() {
        let index = packets.len();
        budget.spend().map_err(|e| format!("packet {index} at offset {offset}: {e}"))?;
        let frame = frame(stream, offset).map_err(|e| format!("packet {index} at offset {offset}: {e}"))?;
        let at = |e: String| format!("packet {index} (tag {}) at offset {offset}: {e}", frame.tag);
        let body_start = offset + frame.header_len;
        let body_end = body_start + frame.body_len;
        let body_bytes = &stream[body_start..body_end];
        let body = match frame.tag {
            TAG_SIGNATURE | TAG_PUBLIC_KEY | TAG_PUBLIC_SUBKEY | TAG_USER_ID | TAG_USER_ATTRIBUTE
                if frame.partial =>
            {
                return Err(at(
                    "partial or indeterminate body lengths are allowed only on data packets".into()
                ));
            }
            TAG_PUBLIC_KEY => Body::PublicKey(exact_key(body_bytes).map_err(at)?),
            TAG_PUBLIC_SUBKEY => Body::PublicSubkey(exact_key(body_bytes).map_err(at)?),
            TAG_SIGNATURE => Body::Signature(exact_sig(body_bytes, &mut budget).map_err(at)?),
            TAG_USER_ID => Body::UserId,
            TAG_USER_ATTRIBUTE => Body::UserAttribute,
            _ => Body::Opaque,
        };
        packets.push(Packet {
            offset: offset as u64,
            header_len: frame.header_len as u32,
            body_len: frame.body_len as u64,
            tag: frame.tag,
            body,
        });
        offset = body_end;
    }
    let description = Description { packets };
    crosscheck(stream, &description)?;
    Ok(description)
}

/// A packet's framing (RFC 9580 §4.2).
struct Frame {
    tag: u8,
    header_len: usize,
    /// For partial body lengths: everything after the first header, up to the end
    /// of the last chunk (the later chunks' length octets included).
    body_len: usize,
    partial: bool,
}

/// Reads the header of the packet at `offset` and finds where its body ends.
fn frame(stream: &[u8], offset: usize) -> Result<Frame, String> {
    let mut r = Reader::new(&stream[offset..], "stream");
    let ctb = r.u8()?;
    if ctb & 0x80 == 0 {
        return Err(format!("not a packet header (octet {ctb:#04x} lacks bit 7)"));
    }
    if ctb & 0x40 == 0 {
        // Legacy format: tag in bits 5..2, length type in bits 1..0.
        let tag = (ctb >> 2) & 0x0f;
        let body_len = match ctb & 3 {
            0 => usize::from(r.u8()?),
            1 => usize::from(r.u16()?),
            2 => r.u32()? as usize,
            // Indeterminate: the packet runs to the end of the stream.
            _ => r.remaining(),
        };
        let header_len = r.pos;
        r.take(body_len).map_err(|_| format!("body of {body_len} octets runs past the end"))?;
        // An indeterminate length counts as partial: like partial lengths it is
        // for data packets only, and the manager refuses it on the packets it uses.
        return Ok(Frame { tag: nonzero_tag(tag)?, header_len, body_len, partial: ctb & 3 == 3 });
    }
    let tag = nonzero_tag(ctb & 0x3f)?;
    let (first, mut partial_chunk) = new_length(&mut r)?;
    let header_len = r.pos;
    let body_start = r.pos;
    r.take(first).map_err(|_| format!("body of {first} octets runs past the end"))?;
    let partial = partial_chunk;
    while partial_chunk {
        let (len, more) = new_length(&mut r)?;
        r.take(len).map_err(|_| format!("partial body chunk of {len} octets runs past the end"))?;
        partial_chunk = more;
    }
    Ok(Frame { tag, header_len, body_len: r.pos - body_start, partial })
}

fn nonzero_tag(tag: u8) -> Result<u8, String> {
    if tag == 0 {
        Err("packet tag 0 is reserved".into())
    } else {
        Ok(tag)
    }
}

/// A new-format length: `(length, is_partial_chunk)`.
fn new_length(r: &mut Reader) -> Result<(usize, bool), String> {
    let o1 = r.u8()?;
    Ok(match o1 {
        0..=191 => (usize::from(o1), false),
        192..=223 => ((usize::from(o1 - 192) << 8) + usize::from(r.u8()?) + 192, false),
        224..=254 => (1usize << (o1 & 0x1f), true),
        255 => (r.u32()? as usize, false),
    })
}

/// A cursor over untrusted bytes: every read is checked.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// What the bytes are, for error messages ("header", "body", ...).
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8], what: &'static str) -> Self {
        Reader { bytes, pos: 0, what }
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if n > self.remaining() {
            return Err(format!(
                "truncated: {n} octets needed at offset {} of the {}, {} left",
                self.pos,
                self.what,
                self.remaining()
            ));
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn rest(&mut self) -> &'a [u8] {
        let s = &self.bytes[self.pos..];
        self.pos = self.bytes.len();
        s
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, String> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn end(&self, what: &str) -> Result<(), String> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(format!("{n} unexpected octets after the {what}")),
        }
    }
}

/// A multiprecision integer (RFC 9580 §3.2), refused unless canonical: its bit
/// count must be that of its magnitude, or the manager could not re-encode it.
fn mpi(r: &mut Reader) -> Result<Field, String> {
    let bits = usize::from(r.u16()?);
    let magnitude = r.take(bits.div_ceil(8))?;
    if mpi_bits(magnitude) != bits {
        return Err(format!(
            "non-canonical MPI: bit count {bits}, magnitude of {} bits",
            mpi_bits(magnitude)
        ));
    }
    Ok(Field::Mpi(magnitude.to_vec()))
}

fn mpi_bits(magnitude: &[u8]) -> usize {
    match magnitude.first() {
        None => 0,
        Some(&first) => magnitude.len() * 8 - first.leading_zeros() as usize,
    }
}

/// A curve OID: a length octet (0 and 0xff are reserved), then the octets.
fn oid(r: &mut Reader) -> Result<Field, String> {
    let len = r.u8()?;
    if len == 0 || len == 0xff {
        return Err(format!("reserved curve OID length {len}"));
    }
    Ok(Field::Oid(r.take(usize::from(len))?.to_vec()))
}

/// ECDH KDF parameters: a length octet, then the octets.
fn sized(r: &mut Reader) -> Result<Field, String> {
    let len = r.u8()?;
    if len == 0 || len == 0xff {
        return Err(format!("reserved KDF parameter length {len}"));
    }
    Ok(Field::Sized(r.take(usize::from(len))?.to_vec()))
}

fn raw(r: &mut Reader, n: usize) -> Result<Field, String> {
    Ok(Field::Raw(r.take(n)?.to_vec()))
}

/// The public key material of algorithm `algo` (RFC 9580 §5.5.5). The material of
/// an algorithm this handler does not know is one [`Field::Raw`] (exact, but the
/// manager cannot use it).
fn key_material(algo: u8, r: &mut Reader) -> Result<Vec<Field>, String> {
    Ok(match algo {
        // RSA (encrypt or sign, encrypt-only, sign-only): n, e.
        1..=3 => vec![mpi(r)?, mpi(r)?],
        // ElGamal (encrypt-only, and the deprecated encrypt-or-sign): p, g, y.
        16 | 20 => vec![mpi(r)?, mpi(r)?, mpi(r)?],
        // DSA: p, q, g, y.
        17 => vec![mpi(r)?, mpi(r)?, mpi(r)?, mpi(r)?],
        // ECDH: curve, point, KDF parameters.
        18 => vec![oid(r)?, mpi(r)?, sized(r)?],
        // ECDSA, EdDSA (legacy): curve, point.
        19 | 22 => vec![oid(r)?, mpi(r)?],
        25 => vec![raw(r, 32)?], // X25519
        26 => vec![raw(r, 56)?], // X448
        27 => vec![raw(r, 32)?], // Ed25519
        28 => vec![raw(r, 57)?], // Ed448
        _ => vec![Field::Raw(r.rest().to_vec())],
    })
}

/// The signature values of algorithm `algo` (RFC 9580 §5.2.3.1, §5.2.3.3).
fn sig_values(algo: u8, r: &mut Reader) -> Result<Vec<Field>, String> {
    Ok(match algo {
        // RSA: m^d mod n.
        1..=3 => vec![mpi(r)?],
        // DSA, ECDSA, EdDSA (legacy), and historical ElGamal signatures: r, s.
        17 | 19 | 22 | 16 | 20 => vec![mpi(r)?, mpi(r)?],
        27 => vec![raw(r, 64)?],  // Ed25519
        28 => vec![raw(r, 114)?], // Ed448
        _ => vec![Field::Raw(r.rest().to_vec())],
    })
}

/// Parses a public key or subkey body (RFC 9580 §5.5.2).
fn parse_key(body: &[u8]) -> Result<Key, String> {
    let mut r = Reader::new(body, "key body");
    let version = r.u8()?;
    let created = r.u32()?;
    let algo = r.u8()?;
    let material = match version {
        4 => key_material(algo, &mut r)?,
        6 => {
            let len = r.u32()? as usize;
            let mut m = Reader::new(r.take(len)?, "key material");
            let material = key_material(algo, &mut m)?;
            m.end("key material (its length octets say more)")?;
            material
        }
        v => return Err(format!("key version {v} is not described (only 4 and 6)")),
    };
    r.end("key material")?;
    Ok(Key { version, created, algo, material })
}

/// Parses a signature body (RFC 9580 §5.2.3); `depth` counts enclosing signatures.
fn parse_sig(body: &[u8], depth: usize, budget: &mut Budget) -> Result<Sig, String> {
    let mut r = Reader::new(body, "signature body");
    let version = r.u8()?;
    if version != 4 && version != 6 {
        return Err(format!("signature version {version} is not described (only 4 and 6)"));
    }
    let sig_type = r.u8()?;
    let pk_algo = r.u8()?;
    let hash_algo = r.u8()?;
    let area_len = |r: &mut Reader| -> Result<usize, String> {
        Ok(if version == 4 { usize::from(r.u16()?) } else { r.u32()? as usize })
    };
    let len = area_len(&mut r)?;
    let hashed = subpackets(r.take(len)?, depth, budget).map_err(|e| format!("hashed area: {e}"))?;
    let len = area_len(&mut r)?;
    let unhashed = subpackets(r.take(len)?, depth, budget).map_err(|e| format!("unhashed area: {e}"))?;
    let left = r.take(2)?;
    let left16 = [left[0], left[1]];
    let salt = if version == 6 {
        let len = r.u8()?;
        r.take(usize::from(len))?.to_vec()
    } else {
        Vec::new()
    };
    let values = sig_values(pk_algo, &mut r)?;
    r.end("signature values")?;
    Ok(Sig { version, sig_type, pk_algo, hash_algo, hashed, unhashed, left16, salt, values })
}

/// Parses a subpacket area (RFC 9580 §5.2.3.7), keeping each length's encoding.
fn subpackets(area: &[u8], depth: usize, budget: &mut Budget) -> Result<Vec<Subpacket>, String> {
    let mut r = Reader::new(area, "subpacket area");
    let mut out = Vec::new();
    while r.remaining() > 0 {
        budget.spend()?;
        let i = out.len();
        let at = |e: String| format!("subpacket {i}: {e}");
        let o1 = r.u8().map_err(at)?;
        let (len, len_octets) = match o1 {
            0..=191 => (usize::from(o1), 1),
            192..=254 => ((usize::from(o1 - 192) << 8) + usize::from(r.u8().map_err(at)?) + 192, 2),
            255 => (r.u32().map_err(at)? as usize, 5),
        };
        // The length counts the type octet.
        let content = r.take(len).map_err(at)?;
        let (&t, body) = content.split_first().ok_or_else(|| at("length 0 (no type octet)".into()))?;
        let typ = t & 0x7f;
        let embedded = if typ == SUBPACKET_EMBEDDED_SIGNATURE {
            if depth >= MAX_EMBEDDING {
                return Err(at(format!("embedded signatures nested more than {MAX_EMBEDDING} deep")));
            }
            Some(Box::new(
                parse_sig(body, depth + 1, budget).map_err(|e| at(format!("embedded signature: {e}")))?,
            ))
        } else {
            None
        };
        out.push(Subpacket { len_octets, critical: t & 0x80 != 0, typ, body: body.to_vec(), embedded });
    }
    Ok(out)
}

/// Parses a key and checks that its fields re-encode to exactly `body`.
fn exact_key(body: &[u8]) -> Result<Key, String> {
    let key = parse_key(body)?;
    if encode_key(&key) != body {
        return Err("the key's fields do not re-encode to its body".into());
    }
    Ok(key)
}

/// Parses a signature and checks that its fields re-encode to exactly `body`.
fn exact_sig(body: &[u8], budget: &mut Budget) -> Result<Sig, String> {
    let sig = parse_sig(body, 0, budget)?;
    if encode_sig(&sig)? != body {
        return Err("the signature's fields do not re-encode to its body".into());
    }
    check_embedded(&sig)?;
    Ok(sig)
}

/// Each embedded signature's fields must re-encode to its subpacket body.
fn check_embedded(sig: &Sig) -> Result<(), String> {
    for sp in sig.hashed.iter().chain(&sig.unhashed) {
        if let Some(e) = &sp.embedded {
            if encode_sig(e)? != sp.body {
                return Err("an embedded signature's fields do not re-encode to its body".into());
            }
            check_embedded(e)?;
        }
    }
    Ok(())
}

// The re-encoding below is the manager's check (RFC 9580), done here too.

/// Appends algorithm-specific fields in wire form (RFC 9580 §3.2 for MPIs).
pub fn encode_fields(fields: &[Field], out: &mut Vec<u8>) {
    for f in fields {
        match f {
            Field::Mpi(m) => {
                out.extend_from_slice(&(mpi_bits(m) as u16).to_be_bytes());
                out.extend_from_slice(m);
            }
            Field::Oid(b) | Field::Sized(b) => {
                out.push(b.len() as u8);
                out.extend_from_slice(b);
            }
            Field::Raw(b) => out.extend_from_slice(b),
        }
    }
}

fn encode_key(key: &Key) -> Vec<u8> {
    let mut out = vec![key.version];
    out.extend_from_slice(&key.created.to_be_bytes());
    out.push(key.algo);
    let mut material = Vec::new();
    encode_fields(&key.material, &mut material);
    if key.version == 6 {
        out.extend_from_slice(&(material.len() as u32).to_be_bytes());
    }
    out.extend_from_slice(&material);
    out
}

fn encode_sig(sig: &Sig) -> Result<Vec<u8>, String> {
    let mut out = vec![sig.version, sig.sig_type, sig.pk_algo, sig.hash_algo];
    for area in [&sig.hashed, &sig.unhashed] {
        let mut a = Vec::new();
        for sp in area {
            encode_subpacket(sp, &mut a)?;
        }
        if sig.version == 4 {
            let len = u16::try_from(a.len()).map_err(|_| "subpacket area too long for v4")?;
            out.extend_from_slice(&len.to_be_bytes());
        } else {
            out.extend_from_slice(&(a.len() as u32).to_be_bytes());
        }
        out.extend_from_slice(&a);
    }
    out.extend_from_slice(&sig.left16);
    if sig.version == 6 {
        out.push(sig.salt.len() as u8);
        out.extend_from_slice(&sig.salt);
    }
    encode_fields(&sig.values, &mut out);
    Ok(out)
}

fn encode_subpacket(sp: &Subpacket, out: &mut Vec<u8>) -> Result<(), String> {
    let len = sp.body.len() + 1;
    match sp.len_octets {
        1 if len < 192 => out.push(len as u8),
        2 if (192..=16319).contains(&len) => {
            let l = len - 192;
            out.extend_from_slice(&[(l >> 8) as u8 + 192, l as u8]);
        }
        5 => {
            out.push(255);
            out.extend_from_slice(&(len as u32).to_be_bytes());
        }
        n => return Err(format!("subpacket length of {len} cannot take {n} octets")),
    }
    out.push(sp.typ | if sp.critical { 0x80 } else { 0 });
    out.extend_from_slice(&sp.body);
    Ok(())
}

/// Sequoia parses the stream on its own; its view must match ours.
fn crosscheck(stream: &[u8], d: &Description) -> Result<(), String> {
    let mut ppr = PacketParserBuilder::from_bytes(stream)
        .and_then(|b| b.dearmor(Dearmor::Disabled).build())
        .map_err(sq)?;
    let mut index = 0;
    while let PacketParserResult::Some(pp) = ppr {
        let (packet, next) = pp.next().map_err(sq)?;
        let ours = d
            .packets
            .get(index)
            .ok_or_else(|| format!("sequoia sees more than our {} packets", d.packets.len()))?;
        let at = |e: String| {
            format!("packet {index} (tag {}) at offset {}: sequoia disagrees: {e}", ours.tag, ours.offset)
        };
        let tag = u8::from(packet.tag());
        if tag != ours.tag {
            return Err(at(format!("tag {tag}")));
        }
        match (&packet, &ours.body) {
            (openpgp::Packet::PublicKey(k), Body::PublicKey(o)) => {
                same_key(k.version(), k.creation_time(), k.pk_algo().into(), k.mpis(), o).map_err(at)?
            }
            (openpgp::Packet::PublicSubkey(k), Body::PublicSubkey(o)) => {
                same_key(k.version(), k.creation_time(), k.pk_algo().into(), k.mpis(), o).map_err(at)?
            }
            (openpgp::Packet::Signature(s), Body::Signature(o)) => same_sig(s, o, 0).map_err(at)?,
            (
                openpgp::Packet::Unknown(u),
                Body::PublicKey(_) | Body::PublicSubkey(_) | Body::Signature(_),
            ) => {
                return Err(at(format!("it cannot parse the packet: {}", u.error())));
            }
            (_, Body::PublicKey(_) | Body::PublicSubkey(_) | Body::Signature(_)) => {
                return Err(at("unexpected packet kind".into()));
            }
            _ => {}
        }
        ppr = next;
        index += 1;
    }
    if index != d.packets.len() {
        return Err(format!("sequoia sees {index} packets, we see {}", d.packets.len()));
    }
    Ok(())
}

/// Sequoia's errors, as a message.
fn sq(e: impl std::fmt::Display) -> String {
    format!("sequoia: {e}")
}

fn same_key(
    version: u8,
    created: std::time::SystemTime,
    algo: u8,
    mpis: &openpgp::crypto::mpi::PublicKey,
    ours: &Key,
) -> Result<(), String> {
    let created = openpgp::types::Timestamp::try_from(created).map(u32::from).map_err(|e| e.to_string())?;
    if (version, created, algo) != (ours.version, ours.created, ours.algo) {
        return Err(format!("key version {version}, created {created}, algorithm {algo}"));
    }
    let mut material = Vec::new();
    encode_fields(&ours.material, &mut material);
    let theirs = mpis.to_vec().map_err(|e| e.to_string())?;
    if theirs != material {
        return Err("key material".into());
    }
    Ok(())
}

fn same_sig(s: &openpgp::packet::Signature, ours: &Sig, depth: usize) -> Result<(), String> {
    let theirs =
        (s.version(), u8::from(s.typ()), u8::from(s.pk_algo()), u8::from(s.hash_algo()), *s.digest_prefix());
    if theirs != (ours.version, ours.sig_type, ours.pk_algo, ours.hash_algo, ours.left16) {
        return Err(format!("signature header {theirs:?}"));
    }
    let salt: &[u8] = match s {
        openpgp::packet::Signature::V6(s6) => s6.salt(),
        _ => &[],
    };
    if salt != ours.salt.as_slice() {
        return Err("salt".into());
    }
    let mut values = Vec::new();
    encode_fields(&ours.values, &mut values);
    if s.mpis().to_vec().map_err(|e| e.to_string())? != values {
        return Err("signature values".into());
    }
    for (area, mine, name) in
        [(s.hashed_area(), &ours.hashed, "hashed"), (s.unhashed_area(), &ours.unhashed, "unhashed")]
    {
        let subs: Vec<_> = area.iter().collect();
        if subs.len() != mine.len() {
            return Err(format!("{} {name} subpackets, we see {}", subs.len(), mine.len()));
        }
        for (i, (t, m)) in subs.iter().zip(mine).enumerate() {
            if (u8::from(t.tag()), t.critical()) != (m.typ, m.critical) {
                return Err(format!("{name} subpacket {i}: type {}", u8::from(t.tag())));
            }
            match (t.value(), &m.embedded) {
                (openpgp::packet::signature::subpacket::SubpacketValue::EmbeddedSignature(e), Some(me))
                    if depth < MAX_EMBEDDING =>
                {
                    same_sig(e, me, depth + 1).map_err(|e| format!("{name} subpacket {i}: embedded: {e}"))?
                }
                (_, Some(_)) => {
                    return Err(format!("{name} subpacket {i}: not an embedded signature to sequoia"));
                }
                _ => {}
            }
        }
    }
    Ok(())
}
