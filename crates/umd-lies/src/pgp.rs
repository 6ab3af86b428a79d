//! Lies about OpenPGP packet descriptions ([`umd_pgp_wire::Description`]).

use umd_pgp::packet::{self, Checked};
use umd_pgp_wire::{max_description, Body, Description, Field, Key, Packet, Sig, Subpacket};

use crate::{
    bytes, corrupt_byte, elements, encoded_len, grow, mutated, number, pick, same_as_honest, vector, Choices,
    GROWTH_ODDS,
};

/// An honest input: the stream, its honest description, and what the
/// manager accepts from it.
pub struct Honest {
    /// The packet stream.
    pub stream: Vec<u8>,
    /// The honest handler's description of it.
    pub description: Description,
}

impl Honest {
    /// Describes `stream` with the honest handler's parser (in-process).
    pub fn new(stream: Vec<u8>) -> Result<Honest, String> {
        let description = umd_pgp_handler::describe(&stream)?;
        Ok(Honest { stream, description })
    }

    /// What the manager accepts from the honest description.
    pub fn checked(&self) -> Result<Vec<Checked<'_>>, String> {
        packet::check(&self.stream, self.description.clone()).map_err(|e| e.to_string())
    }
}

/// The lie `choices` make of `honest`'s description, encoded as a handler
/// would send it. The first choice byte may also say to send bytes the
/// description type cannot hold (a nesting deeper than it allows).
pub fn lie(honest: &Honest, choices: &[u8]) -> Vec<u8> {
    let mut c = Choices::new(choices);
    let d = mutated(&honest.description, max_description(honest.stream.len()), &mut c, mutate);
    let mut out = postcard::to_allocvec(&d).unwrap_or_default();
    // Some lies are made of bytes: embedded signatures nested past what the
    // type holds, or the encoding itself changed.
    if c.one_in(8) {
        out = nested(1 + c.below(1 << 16));
    } else if c.one_in(7) {
        corrupt_byte(&mut out, &mut c);
    }
    out
}

/// One vector of the honest description grown to the size bound (what
/// [`lie`] does once in [`GROWTH_ODDS`](crate::GROWTH_ODDS) of its growth
/// draws), `choices` picking which: the lie that costs the manager most
/// memory, for the tests to make every time.
pub fn grown(honest: &Honest, choices: &[u8]) -> Vec<u8> {
    let mut c = Choices::new(choices);
    let mut d = honest.description.clone();
    let used = encoded_len(&d);
    grow_somewhere(&mut d, &mut c, max_description(honest.stream.len()).saturating_sub(used));
    postcard::to_allocvec(&d).unwrap_or_default()
}

/// One mutation, anywhere in the description.
fn mutate(d: &mut Description, room: usize, c: &mut Choices) {
    match c.below(9) {
        0 => vector(&mut d.packets, c, |c| Some(opaque(c))),
        1 => {
            if let Some(p) = pick(&mut d.packets, c) {
                header(p, c)
            }
        }
        2 => {
            // A body swapped with another packet's, or made of nothing.
            if d.packets.len() > 1 && c.below(2) == 0 {
                let (i, j) = (c.below(d.packets.len()), c.below(d.packets.len()));
                let b = d.packets[j].body.clone();
                d.packets[i].body = b;
            } else if let Some(p) = pick(&mut d.packets, c) {
                p.body = match c.below(4) {
                    0 => Body::Opaque,
                    1 => Body::UserId,
                    2 => Body::UserAttribute,
                    _ => Body::Signature(empty_sig()),
                };
            }
        }
        3 => {
            if let Some(k) = pick_key(d, c) {
                key(k, c)
            }
        }
        4 | 5 => {
            if let Some(s) = pick_sig(d, c) {
                sig(s, c)
            }
        }
        6 => {
            if let Some(sp) = pick_subpacket(d, c) {
                subpacket(sp, c)
            }
        }
        7 => {
            // Growth into what is left of the bound, once in `GROWTH_ODDS`.
            if c.one_in(GROWTH_ODDS) {
                let used = encoded_len(&*d);
                grow_somewhere(d, c, room.saturating_sub(used))
            }
        }
        _ => {
            // A signature embedded into another (or into itself).
            let inner = pick_sig(d, c).cloned();
            if let (Some(inner), Some(sp)) = (inner, pick_subpacket(d, c)) {
                sp.typ = 32;
                sp.embedded = Some(Box::new(inner));
            }
        }
    }
}

fn opaque(c: &mut Choices) -> Packet {
    let tag = [2u8, 6, 10, 11, 12, 13, 14, 17][c.below(8)];
    Packet {
        offset: u64::from(c.u32()) % 4096,
        header_len: 2,
        body_len: u64::from(c.byte()),
        tag,
        body: Body::Opaque,
    }
}

fn empty_sig() -> Sig {
    Sig {
        version: 4,
        sig_type: 0,
        pk_algo: 1,
        hash_algo: 8,
        hashed: vec![],
        unhashed: vec![],
        left16: [0, 0],
        salt: vec![],
        values: vec![Field::Mpi(vec![1])],
    }
}

fn header(p: &mut Packet, c: &mut Choices) {
    match c.below(4) {
        0 => p.offset = number(p.offset, u64::MAX, c),
        1 => p.header_len = number(u64::from(p.header_len), u64::from(u32::MAX), c) as u32,
        2 => p.body_len = number(p.body_len, u64::MAX, c),
        _ => p.tag = number(u64::from(p.tag), 0x3f, c) as u8,
    }
}

fn pick_key<'d>(d: &'d mut Description, c: &mut Choices) -> Option<&'d mut Key> {
    let keys: Vec<usize> = (0..d.packets.len())
        .filter(|&i| matches!(d.packets[i].body, Body::PublicKey(_) | Body::PublicSubkey(_)))
        .collect();
    let i = *keys.get(c.below(keys.len()))?;
    match &mut d.packets[i].body {
        Body::PublicKey(k) | Body::PublicSubkey(k) => Some(k),
        _ => None,
    }
}

fn key(k: &mut Key, c: &mut Choices) {
    match c.below(4) {
        0 => k.version = number(u64::from(k.version), 0xff, c) as u8,
        1 => k.created = number(u64::from(k.created), u64::from(u32::MAX), c) as u32,
        2 => k.algo = number(u64::from(k.algo), 0xff, c) as u8,
        _ => elements(&mut k.material, c, |c| Some(field(c)), field_change),
    }
}

fn field(c: &mut Choices) -> Field {
    let mut v = Vec::new();
    bytes(&mut v, c);
    match c.below(4) {
        0 => Field::Mpi(v),
        1 => Field::Oid(v),
        2 => Field::Raw(v),
        _ => Field::Sized(v),
    }
}

fn field_change(f: &mut Field, c: &mut Choices) {
    let v = match f {
        Field::Mpi(v) | Field::Oid(v) | Field::Raw(v) | Field::Sized(v) => v,
    };
    if c.below(3) == 0 {
        // The same octets in another form.
        let v = std::mem::take(v);
        *f = match c.below(4) {
            0 => Field::Mpi(v),
            1 => Field::Oid(v),
            2 => Field::Raw(v),
            _ => Field::Sized(v),
        };
    } else {
        bytes(v, c)
    }
}

/// A signature: top-level, or embedded in one.
fn pick_sig<'d>(d: &'d mut Description, c: &mut Choices) -> Option<&'d mut Sig> {
    let sigs: Vec<usize> =
        (0..d.packets.len()).filter(|&i| matches!(d.packets[i].body, Body::Signature(_))).collect();
    let i = *sigs.get(c.below(sigs.len()))?;
    let Body::Signature(s) = &mut d.packets[i].body else { return None };
    if c.below(3) == 0 {
        let embedded: Vec<(bool, usize)> = [false, true]
            .into_iter()
            .flat_map(|h| {
                let area = if h { &s.hashed } else { &s.unhashed };
                (0..area.len()).filter(move |&j| area[j].embedded.is_some()).map(move |j| (h, j))
            })
            .collect();
        if let Some(&(h, j)) = embedded.get(c.below(embedded.len())) {
            let area = if h { &mut s.hashed } else { &mut s.unhashed };
            return area[j].embedded.as_deref_mut();
        }
    }
    Some(s)
}

fn sig(s: &mut Sig, c: &mut Choices) {
    match c.below(10) {
        0 => s.version = number(u64::from(s.version), 0xff, c) as u8,
        1 => s.sig_type = number(u64::from(s.sig_type), 0xff, c) as u8,
        2 => s.pk_algo = number(u64::from(s.pk_algo), 0xff, c) as u8,
        3 => s.hash_algo = number(u64::from(s.hash_algo), 0xff, c) as u8,
        4 => s.left16 = [c.byte(), c.byte()],
        5 => bytes(&mut s.salt, c),
        6 => elements(&mut s.values, c, |c| Some(field(c)), field_change),
        7 => vector(&mut s.hashed, c, |c| Some(new_subpacket(c))),
        8 => vector(&mut s.unhashed, c, |c| Some(new_subpacket(c))),
        _ => {
            // A subpacket moved from one area to the other.
            let (from, to) = if c.below(2) == 0 {
                (&mut s.hashed, &mut s.unhashed)
            } else {
                (&mut s.unhashed, &mut s.hashed)
            };
            if !from.is_empty() {
                let i = c.below(from.len());
                let sp = from.remove(i);
                let at = c.below(to.len() + 1);
                to.insert(at, sp);
            }
        }
    }
}

fn new_subpacket(c: &mut Choices) -> Subpacket {
    let mut body = Vec::new();
    bytes(&mut body, c);
    Subpacket {
        len_octets: [1, 2, 5][c.below(3)],
        critical: c.below(2) == 0,
        typ: c.byte(),
        body,
        embedded: None,
    }
}

fn pick_subpacket<'d>(d: &'d mut Description, c: &mut Choices) -> Option<&'d mut Subpacket> {
    let s = pick_sig(d, c)?;
    let area = if c.below(2) == 0 { &mut s.hashed } else { &mut s.unhashed };
    pick(area, c)
}

fn subpacket(sp: &mut Subpacket, c: &mut Choices) {
    match c.below(6) {
        0 => sp.len_octets = number(u64::from(sp.len_octets), 0xff, c) as u8,
        1 => sp.critical = !sp.critical,
        2 => sp.typ = number(u64::from(sp.typ), 0xff, c) as u8,
        3 => bytes(&mut sp.body, c),
        4 => sp.embedded = None,
        _ => {
            if let Some(e) = sp.embedded.as_deref_mut() {
                sig(e, c)
            }
        }
    }
}

/// Grows one vector of the description by about `room` bytes on the wire.
fn grow_somewhere(d: &mut Description, c: &mut Choices, room: usize) {
    match c.below(5) {
        0 => grow(&mut d.packets, c, opaque(&mut Choices::new(&[])), room),
        1 => {
            if let Some(s) = pick_sig(d, c) {
                grow(&mut s.hashed, c, new_subpacket(&mut Choices::new(&[])), room)
            }
        }
        2 => {
            if let Some(s) = pick_sig(d, c) {
                grow(&mut s.values, c, Field::Raw(vec![]), room)
            }
        }
        3 => {
            if let Some(k) = pick_key(d, c) {
                grow(&mut k.material, c, Field::Raw(vec![]), room)
            }
        }
        _ => {
            if let Some(sp) = pick_subpacket(d, c) {
                sp.body.extend(std::iter::repeat_n(0, room.min(64 << 20)))
            }
        }
    }
}

/// A description of one signature packet whose signature embeds a
/// signature `depth` levels deep, as bytes (the type cannot hold it).
pub fn nested(depth: usize) -> Vec<u8> {
    let mut v = vec![1, 0, 2, 0, 2, 5];
    for _ in 0..depth {
        v.extend_from_slice(&[4, 0, 1, 8, 1, 1, 0, 32, 0, 1]);
    }
    v.extend_from_slice(&[4, 0, 1, 8, 0, 0, 0, 0, 0, 0]);
    for _ in 0..depth {
        v.extend_from_slice(&[0, 0, 0, 0, 0]);
    }
    v
}

/// The manager's judgement of a reply about `honest`'s stream, held to the
/// property: `Ok(true)` accepted (and equal to the honest result), `Ok(false)`
/// refused, `Err` the property broken (a lie accepted with another result).
/// The caller measures the memory.
pub fn judge(honest: &Honest, reply: &[u8]) -> Result<bool, String> {
    let stream = &honest.stream;
    let accepted = umd_pgp_wire::Description::decode(reply, stream.len())
        .map_err(|e| e.to_string())
        .and_then(|d| packet::check(stream, d).map_err(|e| e.to_string()));
    same_as_honest(accepted, || honest.checked())
}
