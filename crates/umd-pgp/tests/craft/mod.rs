//! Certificates and signatures built with Ed25519 keys (EdDSALegacy, v4) and
//! the manager's own encoders and hashing: what gpg will not make (a
//! revocation with a critical notation, SHA-1 or a date in the future, a
//! binding made tomorrow, the Sequoia layout of back-signatures).
#![allow(dead_code)] // each test file uses its part

use ed25519_dalek::{Signer, SigningKey};
use umd_pgp::cert::CertError;
use umd_pgp::crypto::{fingerprint, Fingerprint, SigHasher};
use umd_pgp::packet::{check, encode_key, encode_sig, read_header, tag, CheckedBody, CheckedKey, CheckedSig};
use umd_pgp::verify::BadReason;
use umd_pgp_wire::{Body, Description, Field, Key, Packet, Sig, Subpacket};

const OID_ED25519: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0xda, 0x47, 0x0f, 0x01];

/// The user ID of [`primary`].
pub const UID: &[u8] = b"Crafted <crafted@example.org>";

pub struct EdKey {
    sk: SigningKey,
    pub body: Vec<u8>,
    pub fpr: Fingerprint,
}

pub fn key(seed: u8, created: u32) -> EdKey {
    let sk = SigningKey::from_bytes(&[seed; 32]);
    let mut point = vec![0x40];
    point.extend_from_slice(&sk.verifying_key().to_bytes());
    let key = Key {
        version: 4,
        created,
        algo: 22,
        material: vec![Field::Oid(OID_ED25519.to_vec()), Field::Mpi(point)],
    };
    let body = encode_key(&key).unwrap();
    let fpr = fingerprint(4, &body).unwrap();
    EdKey { sk, body, fpr }
}

pub fn sp(typ: u8, body: &[u8]) -> Subpacket {
    Subpacket { len_octets: 1, critical: false, typ, body: body.to_vec(), embedded: None }
}

/// A subpacket marked critical.
pub fn critical(typ: u8, body: &[u8]) -> Subpacket {
    Subpacket { critical: true, ..sp(typ, body) }
}

/// A subpacket embedding `sig` (type 32).
pub fn embed(sig: &Sig) -> Subpacket {
    Subpacket { embedded: Some(Box::new(sig.clone())), ..sp(32, &encode_sig(sig).unwrap()) }
}

fn mpi(mut b: &[u8]) -> Field {
    while let [0, rest @ ..] = b {
        b = rest;
    }
    Field::Mpi(b.to_vec())
}

/// A v4 SHA2-256 signature by `signer`: hashed creation time, issuer
/// fingerprint, then `extra`; unhashed issuer key ID.
pub fn sign(
    signer: &EdKey,
    sig_type: u8,
    created: u32,
    extra: Vec<Subpacket>,
    feed: impl FnOnce(&mut SigHasher),
) -> Sig {
    sign_with(signer, sig_type, 8, created, extra, feed)
}

/// As [`sign`], with the hash algorithm `hash_algo`.
pub fn sign_with(
    signer: &EdKey,
    sig_type: u8,
    hash_algo: u8,
    created: u32,
    extra: Vec<Subpacket>,
    feed: impl FnOnce(&mut SigHasher),
) -> Sig {
    let mut issuer = vec![4];
    issuer.extend_from_slice(signer.fpr.as_bytes());
    let mut hashed = vec![sp(2, &created.to_be_bytes()), sp(33, &issuer)];
    hashed.extend(extra);
    let mut sig = Sig {
        version: 4,
        sig_type,
        pk_algo: 22,
        hash_algo,
        hashed,
        unhashed: vec![sp(16, &signer.fpr.key_id().0)],
        left16: [0, 0],
        salt: vec![],
        // Placeholders of the algorithm's form: values are not hashed.
        values: vec![Field::Mpi(vec![1]), Field::Mpi(vec![1])],
    };
    let mut h = SigHasher::new(&checked_sig(&sig).expect("a signature that checks")).unwrap();
    feed(&mut h);
    let digest = h.finish();
    sig.left16 = [digest[0], digest[1]];
    let rs = signer.sk.sign(&digest).to_bytes();
    sig.values = vec![mpi(&rs[..32]), mpi(&rs[32..])];
    sig
}

/// Whether a signature is bad because the key that made it is not valid for
/// a reason `why` accepts: its own, or its primary key's.
pub fn key_not_valid(reason: &BadReason, why: impl Fn(&CertError) -> bool) -> bool {
    match reason {
        BadReason::KeyNotValid { why: CertError::PrimaryNotValid(primary), .. } => why(primary),
        BadReason::KeyNotValid { why: w, .. } => why(w),
        _ => false,
    }
}

/// A packet with a new-format header.
pub fn packet(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut p = vec![0xc0 | tag];
    match body.len() {
        n @ 0..=191 => p.push(n as u8),
        n @ 192..=8383 => {
            let l = n - 192;
            p.extend_from_slice(&[((l >> 8) + 192) as u8, l as u8]);
        }
        n => {
            p.push(0xff);
            p.extend_from_slice(&(n as u32).to_be_bytes());
        }
    }
    p.extend_from_slice(body);
    p
}

/// What `packet::check` makes of a one-packet stream holding `bytes`,
/// described as `body`.
pub fn checked(tag: u8, bytes: &[u8], body: Body) -> Result<CheckedBody, umd_pgp::packet::PacketError> {
    let stream = packet(tag, bytes);
    let h = read_header(&stream, 0).unwrap();
    let p = Packet { offset: 0, header_len: h.header_len as u32, body_len: bytes.len() as u64, tag, body };
    Ok(check(&stream, Description { packets: vec![p] })?[0].fields().clone())
}

/// A key, checked as the packet its fields encode to (`None`: the check
/// refuses that form).
pub fn checked_key(k: &Key) -> Option<CheckedKey> {
    match checked(tag::PUBLIC_KEY, &encode_key(k).ok()?, Body::PublicKey(k.clone())).ok()? {
        CheckedBody::PublicKey(k) => Some(k),
        _ => None,
    }
}

/// A signature, checked as the packet its fields encode to (`None`: the
/// check refuses that form).
pub fn checked_sig(s: &Sig) -> Option<CheckedSig> {
    match checked(tag::SIGNATURE, &encode_sig(s).ok()?, Body::Signature(s.clone())).ok()? {
        CheckedBody::Signature(s) => Some(s),
        _ => None,
    }
}

pub fn sig_packet(sig: &Sig) -> Vec<u8> {
    packet(tag::SIGNATURE, &encode_sig(sig).unwrap())
}

/// A primary key with a user ID, self-certified at `t0` with `flags`.
pub fn primary(seed: u8, t0: u32, flags: u8) -> (EdKey, Vec<u8>) {
    primary_with(seed, t0, flags, vec![])
}

/// As [`primary`], with `extra` hashed subpackets in the self-certification
/// (a key expiry, say).
pub fn primary_with(seed: u8, t0: u32, flags: u8, extra: Vec<Subpacket>) -> (EdKey, Vec<u8>) {
    let p = key(seed, t0);
    let mut hashed = vec![sp(27, &[flags])];
    hashed.extend(extra);
    let cert = self_certification(&p, t0, hashed);
    let mut stream = packet(tag::PUBLIC_KEY, &p.body);
    stream.extend(packet(tag::USER_ID, UID));
    stream.extend(sig_packet(&cert));
    (p, stream)
}

/// A self-certification of [`UID`] by `p` at `created` (0x13).
pub fn self_certification(p: &EdKey, created: u32, hashed: Vec<Subpacket>) -> Sig {
    sign(p, 0x13, created, hashed, |h| {
        h.key(&p.body).unwrap();
        h.user_id(UID).unwrap();
    })
}

/// A detached document signature over `data` by `signer` at `created`.
pub fn document(signer: &EdKey, created: u32, data: &[u8]) -> Vec<u8> {
    sig_packet(&sign(signer, 0x00, created, vec![], |h| h.data(data)))
}
