//! `umd-pgp-liar-handler`: an OpenPGP handler that lies, for the manager's tests.
//! Never shipped: only tests embed it (`crates/umd-pgp/tests/lies.rs`).
//!
//! It describes each stream honestly with [`umd_pgp_handler::describe`], then
//! falsifies the description as its arguments say and answers with the lie. The
//! manager must never accept a key or a signature because of it: every lie must
//! end in a refused description (the manager's re-encoding, tiling or header
//! check) or in a verdict no better than the honest handler's.
//!
//! Usage: `umd-pgp-liar-handler LIE [TARGET] [VALUE]` (the arguments after the lie
//! in any order). TARGET picks the signatures a signature lie applies to: `any`
//! (the default), `document` (types 0x00–0x02), `certification` (0x10–0x13),
//! `binding` (0x18, 0x19, 0x1F) or `revocation` (0x20, 0x28, 0x30). VALUE is a
//! number (decimal or `0x…`), or for `change-issuer` a v4 fingerprint in hex.
//!
//! A lie that finds nothing to lie about in a stream (the manager's start-up
//! probe is a lone user ID) leaves the description honest, so the liar passes
//! `post_start` and tells its lie where it matters. Where it can, it lies
//! *smartly*: it changes only what the lie needs and keeps everything else as
//! the bytes have it — same lengths, same length forms, packets that still tile —
//! so the manager's checks have as little as possible to catch.
//!
//! Lies about keys (every primary key and subkey):
//!
//! * `swap-key-material` — the key material of the first primary key the liar
//!   was ever shown (it remembers across requests) is claimed for every key of
//!   the same algorithm; in that first stream, another key's of the same
//!   algorithm, if there is one.
//! * `change-key-creation-time SECS` — every key claims that creation time.
//! * `change-key-expiry SECS` — the hashed key expiration time (subpacket 9) of
//!   every target signature becomes SECS (default 0: never expires).
//! * `change-key-flags BITS` — the hashed key flags (27) of every target signature
//!   become BITS (default 0x03: certify and sign), in the same length.
//! * `raw-key-material` — every key's material is described as one raw field
//!   holding its octets: the same bytes, in a form the manager cannot use.
//!
//! Lies about signatures (every target signature):
//!
//! * `change-issuer FPR` — the issuer fingerprint (33) and key ID (16)
//!   subpackets, in both areas, name FPR instead (same lengths).
//! * `change-hash-algo ID` — the hash algorithm (default 8, SHA2-256).
//! * `change-sig-creation-time SECS` — the hashed creation time (2).
//! * `change-sig-type TYPE` — the signature type.
//! * `drop-subpacket TYPE` — hashed subpackets of TYPE vanish; the subpacket
//!   before claims their octets as part of its body, so the area keeps its
//!   length and only that subpacket's length octets differ from the bytes.
//! * `flip-critical` — every critical hashed subpacket is claimed non-critical.
//! * `swap-signature-values` — the signature values and left 16 bits of the
//!   first target signature the liar was ever shown (remembered across
//!   requests), for every later one of the same algorithm.
//! * `hide-embedded-signature` — in the last target signature that embeds a
//!   signature (subpacket 32, e.g. a back signature), the embedded signature is
//!   described without its fields; the subpacket's bytes are left as they are.
//! * `raw-signature-values` — the values of every target signature are
//!   described as one raw field holding their octets: the same bytes, in a form
//!   the manager cannot verify (a signature it cannot verify is one it drops).
//!
//! Lies about packets:
//!
//! * `omit-packet` — target signatures are left out; the others keep their
//!   offsets.
//! * `omit-revocation` — revocations (0x20, 0x28, 0x30) are left out, and the
//!   packet before each claims its octets as body, so the rest still tiles.
//! * `reorder-packets` — target signatures are moved to the end, with offsets
//!   recomputed so that the packets tile.
//! * `invent-packet` — a copy of the first target signature is described after
//!   the end of the stream.
//! * `overlap-packet` — the first target signature is described twice, at the
//!   same offset.
//! * `opaque-signature` — target signatures are described as opaque.
//! * `wrong-tag` — target signature packets are described as trust packets
//!   (tag 12), opaque.
//! * `replay` — the first description with a target signature the liar made is
//!   its answer to every later request.
//! * `empty` — no packet at all, even for the start-up probe.
//! * `bloat` — a description holding a target signature gets 400,000 more
//!   (opaque, empty) packets: 2 MB, far more bytes than the stream could need.
//!
//! Lies about size and shape, each within every bound the manager announces
//! (the reply is no larger than the stream allows,
//! [`umd_pgp_wire::max_description`]), on streams holding a target signature
//! — or on every stream, the start-up probe's included, with the argument
//! `always`:
//!
//! * `wide-packets` — as many more empty opaque packets as the reply can
//!   carry: five bytes each on the wire, some 140 in memory.
//! * `wide-subpackets` — the first target signature's hashed area gets as
//!   many empty subpackets as the reply can carry.
//! * `deep-embedding` — the reply is a signature embedding a signature
//!   embedding … as deep as the reply can carry (written as bytes: the
//!   description type cannot hold it).
//! * `stall-frame` — announces as large a reply as the stream allows, sends
//!   4 KiB of it and waits.
//!
//! Not lies, for the manager's recovery tests (honest answers otherwise; the
//! start-up probe, a lone user ID, is answered at once):
//!
//! * `slow MS` — waits MS milliseconds before answering, time for a test to kill
//!   it under a request.
//! * `crash` — aborts instead of answering (a parser taken over, or a bug).

use std::process::ExitCode;

use umd_pgp_wire::{Body, Command, Description, Field, Key, Packet, Sig, Subpacket};

/// Which signatures a signature lie applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    Any,
    Document,
    Certification,
    Binding,
    Revocation,
}

impl Target {
    fn parse(s: &str) -> Option<Target> {
        Some(match s {
            "any" => Target::Any,
            "document" => Target::Document,
            "certification" => Target::Certification,
            "binding" => Target::Binding,
            "revocation" => Target::Revocation,
            _ => return None,
        })
    }

    fn matches(self, sig_type: u8) -> bool {
        match self {
            Target::Any => true,
            Target::Document => matches!(sig_type, 0x00..=0x02),
            Target::Certification => matches!(sig_type, 0x10..=0x13),
            Target::Binding => matches!(sig_type, 0x18 | 0x19 | 0x1f),
            Target::Revocation => is_revocation(sig_type),
        }
    }
}

fn is_revocation(sig_type: u8) -> bool {
    matches!(sig_type, 0x20 | 0x28 | 0x30)
}

/// The lie to tell, with its argument.
#[derive(Clone, Debug)]
enum Lie {
    SwapKeyMaterial,
    ChangeKeyCreationTime(u32),
    ChangeKeyExpiry(u32),
    ChangeKeyFlags(u8),
    RawKeyMaterial,
    ChangeIssuer([u8; 20]),
    ChangeHashAlgo(u8),
    ChangeSigCreationTime(u32),
    ChangeSigType(u8),
    DropSubpacket(u8),
    FlipCritical,
    SwapSignatureValues,
    HideEmbeddedSignature,
    RawSignatureValues,
    OmitPacket,
    OmitRevocation,
    ReorderPackets,
    InventPacket,
    OverlapPacket,
    OpaqueSignature,
    WrongTag,
    Replay,
    Empty,
    Bloat,
    WidePackets,
    WideSubpackets,
    DeepEmbedding,
    StallFrame,
    Slow(u32),
    Crash,
}

/// What the liar remembers from one request to the next.
#[derive(Default)]
struct Memory {
    /// The first primary key it was shown.
    key: Option<Key>,
    /// The first target signature it was shown: algorithm, values, left 16 bits.
    values: Option<(u8, Vec<Field>, [u8; 2])>,
    /// The first description holding a target signature.
    description: Option<Description>,
}

fn parse_args(args: &[String]) -> Result<(Lie, Target, bool), String> {
    let (name, rest) =
        args.split_first().ok_or("usage: umd-pgp-liar-handler LIE [TARGET] [VALUE] [always]")?;
    let mut target = Target::Any;
    let mut value: Option<&str> = None;
    let mut always = false;
    for a in rest {
        match Target::parse(a) {
            Some(t) => target = t,
            None if a == "always" => always = true,
            None => value = Some(a),
        }
    }
    let number = |default: Option<u32>| -> Result<u32, String> {
        match value {
            None => default.ok_or_else(|| format!("{name} needs a value")),
            Some(v) => match v.strip_prefix("0x") {
                Some(hex) => u32::from_str_radix(hex, 16),
                None => v.parse(),
            }
            .map_err(|e| format!("{name}: bad value {v:?}: {e}")),
        }
    };
    let octet = |default: Option<u32>| -> Result<u8, String> {
        u8::try_from(number(default)?).map_err(|_| format!("{name}: value over 255"))
    };
    let lie = match name.as_str() {
        "swap-key-material" => Lie::SwapKeyMaterial,
        "change-key-creation-time" => Lie::ChangeKeyCreationTime(number(None)?),
        "change-key-expiry" => Lie::ChangeKeyExpiry(number(Some(0))?),
        "change-key-flags" => Lie::ChangeKeyFlags(octet(Some(0x03))?),
        "raw-key-material" => Lie::RawKeyMaterial,
        "raw-signature-values" => Lie::RawSignatureValues,
        "change-issuer" => {
            let hex = value.ok_or("change-issuer needs a fingerprint")?;
            Lie::ChangeIssuer(fingerprint(hex).ok_or_else(|| format!("not a v4 fingerprint: {hex}"))?)
        }
        "change-hash-algo" => Lie::ChangeHashAlgo(octet(Some(8))?),
        "change-sig-creation-time" => Lie::ChangeSigCreationTime(number(None)?),
        "change-sig-type" => Lie::ChangeSigType(octet(None)?),
        "drop-subpacket" => Lie::DropSubpacket(octet(None)?),
        "flip-critical" => Lie::FlipCritical,
        "swap-signature-values" => Lie::SwapSignatureValues,
        "hide-embedded-signature" => Lie::HideEmbeddedSignature,
        "omit-packet" => Lie::OmitPacket,
        "omit-revocation" => Lie::OmitRevocation,
        "reorder-packets" => Lie::ReorderPackets,
        "invent-packet" => Lie::InventPacket,
        "overlap-packet" => Lie::OverlapPacket,
        "opaque-signature" => Lie::OpaqueSignature,
        "wrong-tag" => Lie::WrongTag,
        "replay" => Lie::Replay,
        "empty" => Lie::Empty,
        "bloat" => Lie::Bloat,
        "wide-packets" => Lie::WidePackets,
        "wide-subpackets" => Lie::WideSubpackets,
        "deep-embedding" => Lie::DeepEmbedding,
        "stall-frame" => Lie::StallFrame,
        "slow" => Lie::Slow(number(None)?),
        "crash" => Lie::Crash,
        _ => return Err(format!("unknown lie {name:?}")),
    };
    Ok((lie, target, always))
}

/// 40 hex digits.
fn fingerprint(hex: &str) -> Option<[u8; 20]> {
    let mut out = [0u8; 20];
    if hex.len() != 40 {
        return None;
    }
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (lie, target, always) = match parse_args(&args) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("umd-pgp-liar-handler: {e}");
            return ExitCode::from(2);
        }
    };
    let mut memory = Memory::default();
    umd_handler::serve_framed(move |request, out| {
        let (&command, stream) = request.split_first().ok_or("empty request (no command byte)")?;
        if command != Command::Describe as u8 {
            return Err(format!("unknown command {command}"));
        }
        let mut d = umd_pgp_handler::describe(stream)?;
        let targeted = always || d.packets.iter().any(|p| is_target(p, target));
        // What the size bound leaves beside the honest description.
        let honest = d.encode().map_err(|e| format!("encoding the description: {e}"))?.len();
        let room = umd_pgp_wire::max_description(stream.len()).saturating_sub(honest + 64);
        match &lie {
            Lie::DeepEmbedding if targeted => {
                out.extend_from_slice(&deep_embedding(room));
                return Ok(());
            }
            Lie::StallFrame if targeted => stall(umd_pgp_wire::max_description(stream.len())),
            _ => {}
        }
        tell(&lie, target, &mut d, &mut memory);
        if targeted {
            widen(&lie, &mut d, room);
        }
        out.extend_from_slice(&d.encode().map_err(|e| format!("encoding the description: {e}"))?);
        Ok(())
    })
}

/// Grows the description's vectors for the `wide-*` lies, by about `room`
/// bytes on the wire.
fn widen(lie: &Lie, d: &mut Description, room: usize) {
    match lie {
        Lie::Bloat => {
            let filler = Packet { offset: 0, tag: 10, header_len: 2, body_len: 0, body: Body::Opaque };
            d.packets.extend(std::iter::repeat_n(filler, 400_000));
        }
        Lie::WidePackets => {
            // Five bytes each (offset 0, header 2, body 0, tag 10, opaque).
            let filler = Packet { offset: 0, tag: 10, header_len: 2, body_len: 0, body: Body::Opaque };
            d.packets.extend(std::iter::repeat_n(filler, room / 5));
        }
        Lie::WideSubpackets => {
            if d.packets.iter().all(|p| !matches!(p.body, Body::Signature(_))) {
                // Nothing to widen (the probe): a signature packet of its own.
                d.packets.push(Packet {
                    offset: 0,
                    tag: 2,
                    header_len: 2,
                    body_len: 0,
                    body: Body::Signature(Sig {
                        version: 4,
                        sig_type: 0,
                        pk_algo: 1,
                        hash_algo: 8,
                        hashed: Vec::new(),
                        unhashed: Vec::new(),
                        left16: [0, 0],
                        salt: Vec::new(),
                        values: Vec::new(),
                    }),
                });
            }
            if let Some(s) = sigs(d, Target::Any).next() {
                // Five bytes each (length form, critical, type, empty body, none).
                let empty =
                    Subpacket { len_octets: 1, critical: false, typ: 20, body: Vec::new(), embedded: None };
                s.hashed.extend(std::iter::repeat_n(empty, room / 5));
            }
        }
        _ => {}
    }
}

/// A description of one signature packet whose signature embeds signatures as
/// deep as `room` bytes allow (15 bytes a level).
fn deep_embedding(room: usize) -> Vec<u8> {
    let depth = room / 15;
    let mut v = vec![1, 0, 2, 0, 2, 5]; // one packet at 0, header 2, body 0, tag 2, Signature
    for _ in 0..depth {
        // v4, type 0, RSA, SHA-256, one hashed subpacket: 1-octet length,
        // not critical, type 32, empty body, Some(
        v.extend_from_slice(&[4, 0, 1, 8, 1, 1, 0, 32, 0, 1]);
    }
    v.extend_from_slice(&[4, 0, 1, 8, 0, 0, 0, 0, 0, 0]);
    for _ in 0..depth {
        v.extend_from_slice(&[0, 0, 0, 0, 0]);
    }
    v
}

/// Announces a reply of `len` bytes, sends 4 KiB of it, then waits for the
/// manager to give up (it kills the handler at its deadline).
fn stall(len: usize) -> ! {
    let mut frame = vec![b'U', b'M', 1, 2];
    frame.extend_from_slice(&(len as u32).to_le_bytes());
    frame.extend_from_slice(&[0u8; 4096]);
    let mut stdout = std::io::stdout();
    let _ = std::io::Write::write_all(&mut stdout, &frame);
    let _ = std::io::Write::flush(&mut stdout);
    let _ = std::io::Read::read(&mut std::io::stdin(), &mut [0u8; 1]);
    std::process::abort()
}

/// Sleeps with ppoll(2) on no fds: ppoll is on the handler's allow-list,
/// nanosleep is not.
fn sleep(ms: u32) {
    let ts =
        rustix::time::Timespec { tv_sec: i64::from(ms / 1000), tv_nsec: i64::from(ms % 1000) * 1_000_000 };
    let _ = rustix::event::poll(&mut [], Some(&ts));
}

/// Every key of the description.
fn keys(d: &mut Description) -> impl Iterator<Item = &mut Key> {
    d.packets.iter_mut().filter_map(|p| match &mut p.body {
        Body::PublicKey(k) | Body::PublicSubkey(k) => Some(k),
        _ => None,
    })
}

/// Every target signature of the description.
fn sigs(d: &mut Description, target: Target) -> impl Iterator<Item = &mut Sig> {
    d.packets.iter_mut().filter_map(move |p| match &mut p.body {
        Body::Signature(s) if target.matches(s.sig_type) => Some(s),
        _ => None,
    })
}

fn is_target(p: &Packet, target: Target) -> bool {
    matches!(&p.body, Body::Signature(s) if target.matches(s.sig_type))
}

/// A packet's octets, header included.
fn extent(p: &Packet) -> u64 {
    u64::from(p.header_len) + p.body_len
}

/// Offsets recomputed so that the packets, in their new order, tile.
fn retile(packets: &mut [Packet]) {
    let mut offset = 0;
    for p in packets {
        p.offset = offset;
        offset += extent(p);
    }
}

/// A subpacket in wire form (its length in the described form, type, body).
fn wire_form(sp: &Subpacket) -> Vec<u8> {
    let len = sp.body.len() + 1;
    let mut out = match sp.len_octets {
        1 => vec![len as u8],
        2 => {
            let l = len - 192;
            vec![((l >> 8) + 192) as u8, l as u8]
        }
        _ => {
            let mut v = vec![0xff];
            v.extend_from_slice(&(len as u32).to_be_bytes());
            v
        }
    };
    out.push(sp.typ | if sp.critical { 0x80 } else { 0 });
    out.extend_from_slice(&sp.body);
    out
}

/// Fields in wire form, as the honest handler encodes them.
fn octets(fields: &[Field]) -> Vec<u8> {
    let mut out = Vec::new();
    umd_pgp_handler::encode_fields(fields, &mut out);
    out
}

/// The shortest length form for a subpacket body of `body_len` octets.
fn len_octets(body_len: usize) -> u8 {
    match body_len + 1 {
        0..=191 => 1,
        192..=8383 => 2,
        _ => 5,
    }
}

/// Sets the body of every hashed subpacket of type `typ`, keeping its length.
fn set_hashed(sig: &mut Sig, typ: u8, value: &[u8]) {
    for sp in sig.hashed.iter_mut().filter(|sp| sp.typ == typ) {
        let mut body = value.to_vec();
        body.resize(sp.body.len().max(1), 0);
        sp.body = body;
    }
}

fn tell(lie: &Lie, target: Target, d: &mut Description, memory: &mut Memory) {
    match lie {
        Lie::SwapKeyMaterial => {
            let donor = match &memory.key {
                Some(k) => Some(k.clone()),
                None => {
                    memory.key = d.packets.iter().find_map(|p| match &p.body {
                        Body::PublicKey(k) => Some(k.clone()),
                        _ => None,
                    });
                    // In the first stream: another key of the same algorithm.
                    let all: Vec<Key> = keys(d).map(|k| k.clone()).collect();
                    all.iter()
                        .skip(1)
                        .find(|k| k.algo == all[0].algo && k.material != all[0].material)
                        .cloned()
                }
            };
            if let Some(donor) = donor {
                for k in keys(d).filter(|k| k.algo == donor.algo) {
                    k.material = donor.material.clone();
                }
            }
        }
        Lie::ChangeKeyCreationTime(t) => keys(d).for_each(|k| k.created = *t),
        Lie::RawKeyMaterial => keys(d).for_each(|k| k.material = vec![Field::Raw(octets(&k.material))]),
        Lie::ChangeKeyExpiry(t) => sigs(d, target).for_each(|s| set_hashed(s, 9, &t.to_be_bytes())),
        Lie::ChangeKeyFlags(f) => sigs(d, target).for_each(|s| set_hashed(s, 27, &[*f])),
        Lie::ChangeIssuer(fpr) => {
            for s in sigs(d, target) {
                for sp in s.hashed.iter_mut().chain(&mut s.unhashed) {
                    match sp.typ {
                        16 if sp.body.len() == 8 => sp.body = fpr[12..].to_vec(),
                        33 if sp.body.len() == 21 => {
                            sp.body = std::iter::once(4).chain(fpr.iter().copied()).collect()
                        }
                        _ => {}
                    }
                }
            }
        }
        Lie::ChangeHashAlgo(h) => sigs(d, target).for_each(|s| s.hash_algo = *h),
        Lie::ChangeSigCreationTime(t) => sigs(d, target).for_each(|s| set_hashed(s, 2, &t.to_be_bytes())),
        Lie::ChangeSigType(t) => sigs(d, target).for_each(|s| s.sig_type = *t),
        Lie::DropSubpacket(typ) => {
            for s in sigs(d, target) {
                let mut kept: Vec<Subpacket> = Vec::new();
                for sp in s.hashed.drain(..) {
                    match kept.last_mut() {
                        // The previous subpacket claims the dropped one's octets.
                        Some(prev) if sp.typ == *typ && prev.embedded.is_none() => {
                            prev.body.extend_from_slice(&wire_form(&sp));
                            prev.len_octets = prev.len_octets.max(len_octets(prev.body.len()));
                        }
                        None if sp.typ == *typ => {}
                        _ => kept.push(sp),
                    }
                }
                s.hashed = kept;
            }
        }
        Lie::FlipCritical => {
            sigs(d, target).flat_map(|s| s.hashed.iter_mut()).for_each(|sp| sp.critical = false)
        }
        Lie::SwapSignatureValues => {
            for s in sigs(d, target) {
                match &memory.values {
                    None => memory.values = Some((s.pk_algo, s.values.clone(), s.left16)),
                    Some((algo, values, left16)) if *algo == s.pk_algo => {
                        s.values = values.clone();
                        s.left16 = *left16;
                    }
                    Some(_) => {}
                }
            }
        }
        Lie::HideEmbeddedSignature => {
            let embeds = |s: &Sig| s.hashed.iter().chain(&s.unhashed).any(|sp| sp.embedded.is_some());
            if let Some(s) = sigs(d, target).filter(|s| embeds(s)).last() {
                for sp in s.hashed.iter_mut().chain(&mut s.unhashed) {
                    sp.embedded = None;
                }
            }
        }
        Lie::RawSignatureValues => {
            sigs(d, target).for_each(|s| s.values = vec![Field::Raw(octets(&s.values))])
        }
        Lie::OmitPacket => d.packets.retain(|p| !is_target(p, target)),
        Lie::OmitRevocation => {
            let mut kept: Vec<Packet> = Vec::new();
            for p in d.packets.drain(..) {
                let revocation = matches!(&p.body, Body::Signature(s) if is_revocation(s.sig_type));
                match kept.last_mut() {
                    Some(prev) if revocation => prev.body_len += extent(&p),
                    None if revocation => {}
                    _ => kept.push(p),
                }
            }
            d.packets = kept;
        }
        Lie::ReorderPackets => {
            let (mut moved, mut kept): (Vec<Packet>, Vec<Packet>) =
                d.packets.drain(..).partition(|p| is_target(p, target));
            kept.append(&mut moved);
            retile(&mut kept);
            d.packets = kept;
        }
        Lie::InventPacket => {
            if let Some(p) = d.packets.iter().find(|p| is_target(p, target)) {
                let mut invented = p.clone();
                invented.offset = d.packets.iter().map(extent).sum();
                d.packets.push(invented);
            }
        }
        Lie::OverlapPacket => {
            if let Some(i) = d.packets.iter().position(|p| is_target(p, target)) {
                let again = d.packets[i].clone();
                d.packets.insert(i + 1, again);
            }
        }
        Lie::OpaqueSignature => {
            d.packets.iter_mut().filter(|p| is_target(p, target)).for_each(|p| p.body = Body::Opaque)
        }
        Lie::WrongTag => d.packets.iter_mut().filter(|p| is_target(p, target)).for_each(|p| {
            p.tag = 12;
            p.body = Body::Opaque;
        }),
        Lie::Replay => match &memory.description {
            Some(first) => *d = first.clone(),
            None if d.packets.iter().any(|p| is_target(p, target)) => memory.description = Some(d.clone()),
            None => {}
        },
        Lie::Empty => d.packets.clear(),
        // Told by `widen`, on targeted streams.
        Lie::WidePackets | Lie::WideSubpackets | Lie::DeepEmbedding | Lie::StallFrame | Lie::Bloat => {}
        // Anything but the start-up probe (a lone user ID).
        Lie::Slow(_) | Lie::Crash if d.packets.iter().all(|p| matches!(p.body, Body::UserId)) => {}
        Lie::Slow(ms) => sleep(*ms),
        Lie::Crash => std::process::abort(),
    }
}
