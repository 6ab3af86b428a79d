//! The manager's own crypto, against RFC 9580's sample keys and signatures,
//! against GnuPG, and against keys made with the RustCrypto crates; hostile
//! inputs must be refused, never panic.

use std::process::Command;

use proptest::prelude::*;
use rand::rngs::OsRng;
use rand::RngCore;
use umd_pgp::crypto::*;
use umd_pgp_wire::{Field, Key, Sig, Subpacket};

mod craft;

// The crypto takes only checked keys and signatures. These take wire values,
// as a handler describes them, through `packet::check` first: `Err(None)`
// for a form the check already refuses (it never reaches the crypto).

fn verify(key: &Key, sig: &Sig, digest: &[u8]) -> Result<(), Option<CryptoError>> {
    let (Some(k), Some(s)) = (craft::checked_key(key), craft::checked_sig(sig)) else { return Err(None) };
    umd_pgp::crypto::verify(&k, &s, digest).map_err(Some)
}

fn key_kind(key: &Key) -> Result<KeyKind, Option<CryptoError>> {
    umd_pgp::crypto::key_kind(&craft::checked_key(key).ok_or(None)?).map_err(Some)
}

fn hasher(sig: &Sig) -> Result<SigHasher, Option<CryptoError>> {
    SigHasher::new(&craft::checked_sig(sig).ok_or(None)?).map_err(Some)
}

fn hashed_trailer(sig: &Sig) -> Result<Vec<u8>, Option<CryptoError>> {
    umd_pgp::crypto::hashed_trailer(&craft::checked_sig(sig).ok_or(None)?).map_err(Some)
}

fn encode_subpackets(area: &[Subpacket]) -> Result<Vec<u8>, CryptoError> {
    let mut out = Vec::new();
    for sp in area {
        umd_pgp::packet::encode_subpacket(sp, &mut out)?;
    }
    Ok(out)
}

/// Fields of the form RFC 9580 gives algorithm `algo`'s key material
/// (`material`) or signature values: what the check requires.
fn placeholder(algo: u8, material: bool) -> Vec<Field> {
    let mpis = |n| vec![Field::Mpi(vec![1]); n];
    match (material, algo) {
        (true, 1..=3) => mpis(2),
        (true, 16 | 20) => mpis(3),
        (true, 17) => mpis(4),
        (true, 18) => vec![Field::Oid(vec![1]), Field::Mpi(vec![1]), Field::Sized(vec![1])],
        (true, 19 | 22) => vec![Field::Oid(vec![1]), Field::Mpi(vec![1])],
        (true, 25 | 27) => vec![Field::Raw(vec![1; 32])],
        (true, 26) => vec![Field::Raw(vec![1; 56])],
        (true, 28) => vec![Field::Raw(vec![1; 57])],
        (false, 1..=3) => mpis(1),
        (false, 16 | 17 | 19 | 20 | 22) => mpis(2),
        (false, 27) => vec![Field::Raw(vec![1; 64])],
        (false, 28) => vec![Field::Raw(vec![1; 114])],
        _ => vec![Field::Raw(vec![1])],
    }
}

fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn sp(typ: u8, critical: bool, body: &[u8]) -> Subpacket {
    Subpacket { len_octets: 1, critical, typ, body: body.to_vec(), embedded: None }
}

// ---------------------------------------------------------------------------
// A test-only reader for the few packets GnuPG and RFC 9580 hand us. The
// manager itself never parses packets: the handler does, and the manager
// re-encodes. Here we only need to turn known-good bytes into wire structs.
// ---------------------------------------------------------------------------

fn packets(mut b: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while let [t, rest @ ..] = b {
        assert!(t & 0x80 != 0, "not a packet header");
        let (tag, len, hl) = if t & 0x40 != 0 {
            match rest[0] {
                l @ 0..=191 => (t & 0x3f, l as usize, 2),
                l @ 192..=223 => (t & 0x3f, ((l as usize - 192) << 8) + rest[1] as usize + 192, 3),
                255 => (t & 0x3f, u32::from_be_bytes(rest[1..5].try_into().unwrap()) as usize, 6),
                _ => panic!("partial lengths not expected"),
            }
        } else {
            let n = [1, 2, 4][(t & 3) as usize];
            let len = rest[..n].iter().fold(0usize, |a, &x| (a << 8) | x as usize);
            ((t >> 2) & 0xf, len, 1 + n)
        };
        out.push((tag, b[hl..hl + len].to_vec()));
        b = &b[hl + len..];
    }
    out
}

fn take<'a>(b: &mut &'a [u8], n: usize) -> &'a [u8] {
    let (h, t) = b.split_at(n);
    *b = t;
    h
}

fn mpi(b: &mut &[u8]) -> Field {
    let bits = u16::from_be_bytes(take(b, 2).try_into().unwrap()) as usize;
    Field::Mpi(take(b, bits.div_ceil(8)).to_vec())
}

fn parse_key(body: &[u8]) -> Key {
    let mut b = body;
    let version = take(&mut b, 1)[0];
    let created = u32::from_be_bytes(take(&mut b, 4).try_into().unwrap());
    let algo = take(&mut b, 1)[0];
    if version == 6 {
        take(&mut b, 4);
    }
    let material = match algo {
        1 | 3 => vec![mpi(&mut b), mpi(&mut b)],
        19 | 22 => {
            let n = take(&mut b, 1)[0] as usize;
            vec![Field::Oid(take(&mut b, n).to_vec()), mpi(&mut b)]
        }
        27 => vec![Field::Raw(take(&mut b, 32).to_vec())],
        _ => panic!("algo {algo}"),
    };
    assert!(b.is_empty());
    Key { version, created, algo, material }
}

fn subpackets(mut b: &[u8]) -> Vec<Subpacket> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let (len, lo) = match b[0] {
            l @ 0..=191 => (l as usize, 1),
            l @ 192..=254 => (((l as usize - 192) << 8) + b[1] as usize + 192, 2),
            255 => (u32::from_be_bytes(b[1..5].try_into().unwrap()) as usize, 5),
        };
        let t = b[lo];
        out.push(Subpacket {
            len_octets: lo as u8,
            critical: t & 0x80 != 0,
            typ: t & 0x7f,
            body: b[lo + 1..lo + len].to_vec(),
            embedded: None,
        });
        b = &b[lo + len..];
    }
    out
}

fn parse_sig(body: &[u8]) -> Sig {
    let mut b = body;
    let h = take(&mut b, 4);
    let (version, sig_type, pk_algo, hash_algo) = (h[0], h[1], h[2], h[3]);
    let area_len = |b: &mut &[u8]| {
        if version == 6 {
            u32::from_be_bytes(take(b, 4).try_into().unwrap()) as usize
        } else {
            u16::from_be_bytes(take(b, 2).try_into().unwrap()) as usize
        }
    };
    let n = area_len(&mut b);
    let hashed = subpackets(take(&mut b, n));
    let n = area_len(&mut b);
    let unhashed = subpackets(take(&mut b, n));
    let left16 = take(&mut b, 2).try_into().unwrap();
    let salt = if version == 6 {
        let n = take(&mut b, 1)[0] as usize;
        take(&mut b, n).to_vec()
    } else {
        vec![]
    };
    let values = match pk_algo {
        1 | 3 => vec![mpi(&mut b)],
        19 | 22 => vec![mpi(&mut b), mpi(&mut b)],
        27 => vec![Field::Raw(take(&mut b, 64).to_vec())],
        _ => panic!("algo {pk_algo}"),
    };
    assert!(b.is_empty());
    Sig { version, sig_type, pk_algo, hash_algo, hashed, unhashed, left16, salt, values }
}

// ---------------------------------------------------------------------------
// RFC 9580 Appendix A samples
// ---------------------------------------------------------------------------

/// RFC 9580 §A.3, the v6 sample certificate, as packet bodies.
const V6_PRIMARY: &str =
    "0663877fe31b00000020f94da7bb48d60a61e567706a6587d0331999bb9d891a08242ead84543df895a3";
const V6_DIRECT_KEY_SIG: &str = "061f1b0a00000042058263877fe3030b090705150a0e080c021600029b03021e09222106cb186c4f0609a697e4d52dfa6c722b0c1f1e27c18a56708f6525ec27bad9acc905270902070200000000ad2820103e2d7d227ec0e6d7ce4471db36bfc97083253690271498a7ef0576c07faae14585b3b903b0127ec4fda2f023045a2ec76bcb4f9571a9651e14aee1137a1d668442c88f951e33c4ffd33fb9a17d511eed758fc6d9cc50cb5fd793b2039d5804";
const V6_SUBKEY: &str =
    "0663877fe319000000208693248367f9e5015db922f8f48095dda784987f2d5985b12fbad16caf5e4435";
const V6_SUBKEY_BINDING: &str = "06181b0a0000002c058263877fe3029b0c222106cb186c4f0609a697e4d52dfa6c722b0c1f1e27c18a56708f6525ec27bad9acc900000000040120a6e9186d9d5935fc8fe56314cdb527486a5a5120f9b762a235a729f039010a56516b673700c4334835daf631a1633c63cd56f9b1c1c3cd3923c9165645d4eaf14e8be1d6beffe2adaee87c9bb5e8d9e852485c96452b934997b9b66fca5e0606";
/// RFC 9580 §A.2, the v4 EdDSALegacy sample key and its signature over "OpenPGP".
const V4_LEGACY_KEY: &str =
    "0453f35f0b16092b06010401da470f010107403f098994bdd916ed4053197934e4a87c80733a1280d62f8010992e43ee3b2406";
const V4_LEGACY_SIG: &str = "040016080006050255f95f95000a09108cfde12197965a9af62200ff56f90cca98e2102637bd983fdb16c131dfd27ed82bf4dde5606e0d756aed33660100d09c4fa11527f038e0f57f2201d82f2ea2c9033265fa6ceb489e854bae61b404";

#[test]
fn rfc9580_v6_sample_fingerprint_and_key_id() {
    let fpr = fingerprint(6, &unhex(V6_PRIMARY)).unwrap();
    assert_eq!(fpr.to_string(), "CB186C4F0609A697E4D52DFA6C722B0C1F1E27C18A56708F6525EC27BAD9ACC9");
    assert_eq!(fpr.key_id().to_string(), "CB186C4F0609A697");
    assert_eq!(fpr.version(), 6);
    let sub = fingerprint(6, &unhex(V6_SUBKEY)).unwrap();
    assert_eq!(sub.to_string(), "12C83F1E706F6308FE151A417743A1F033790E93E9978488D1DB378DA9930885");
}

#[test]
fn rfc9580_v4_legacy_sample_fingerprint_and_key_id() {
    let fpr = fingerprint(4, &unhex(V4_LEGACY_KEY)).unwrap();
    assert_eq!(fpr.to_string(), "C959BDBAFA32A2F89A153B678CFDE12197965A9A");
    assert_eq!(fpr.key_id().to_string(), "8CFDE12197965A9A");
    assert_eq!(key_id(4, fpr.as_bytes()).unwrap(), fpr.key_id());
    assert!(key_id(6, fpr.as_bytes()).is_err());
    assert!(key_id(5, fpr.as_bytes()).is_err());
}

#[test]
fn rfc9580_v6_direct_key_signature_verifies() {
    let key = parse_key(&unhex(V6_PRIMARY));
    let sig = parse_sig(&unhex(V6_DIRECT_KEY_SIG));
    assert_eq!(key_kind(&key).unwrap(), KeyKind::Ed25519);
    let mut h = hasher(&sig).unwrap();
    h.key(&unhex(V6_PRIMARY)).unwrap();
    let digest = h.finish();
    verify(&key, &sig, &digest).unwrap();

    // The same signature does not cover another key.
    let mut h = hasher(&sig).unwrap();
    h.key(&unhex(V6_SUBKEY)).unwrap();
    assert!(matches!(verify(&key, &sig, &h.finish()), Err(Some(CryptoError::Left16Mismatch { .. }))));
}

#[test]
fn rfc9580_v6_subkey_binding_verifies_and_salt_comes_first() {
    let key = parse_key(&unhex(V6_PRIMARY));
    let sig = parse_sig(&unhex(V6_SUBKEY_BINDING));
    let mut h = hasher(&sig).unwrap();
    h.key(&unhex(V6_PRIMARY)).unwrap();
    h.key(&unhex(V6_SUBKEY)).unwrap();
    verify(&key, &sig, &h.finish()).unwrap();

    // By hand: salt, primary, subkey, trailer.
    let mut h = HashAlgo::Sha512.hasher();
    h.update(&sig.salt);
    for body in [V6_PRIMARY, V6_SUBKEY] {
        let body = unhex(body);
        h.update(&[0x9b]);
        h.update(&(body.len() as u32).to_be_bytes());
        h.update(&body);
    }
    h.update(&hashed_trailer(&sig).unwrap());
    verify(&key, &sig, &h.finish()).unwrap();

    // A wrong salt length is refused before hashing.
    let mut short = sig.clone();
    short.salt.pop();
    assert!(matches!(hasher(&short), Err(Some(CryptoError::SaltLength { expected: 32, got: 31, .. }))));
}

#[test]
fn rfc9580_v4_legacy_signature_over_openpgp_verifies() {
    let key = parse_key(&unhex(V4_LEGACY_KEY));
    let sig = parse_sig(&unhex(V4_LEGACY_SIG));
    assert_eq!(key_kind(&key).unwrap(), KeyKind::EdDsaLegacy);
    let digest = |data: &[u8]| {
        let mut h = hasher(&sig).unwrap();
        h.data(data);
        h.finish()
    };
    verify(&key, &sig, &digest(b"OpenPGP")).unwrap();
    assert!(verify(&key, &sig, &digest(b"OpenPGp")).is_err());

    // The v4 trailer, byte for byte.
    assert_eq!(hashed_trailer(&sig).unwrap(), unhex("04 00 16 08 0006 050255f95f95 04ff 0000000c"));
}

// ---------------------------------------------------------------------------
// Subpacket and trailer encoding
// ---------------------------------------------------------------------------

#[test]
fn subpacket_lengths_keep_their_described_form() {
    let s = |len_octets, n: usize| Subpacket {
        len_octets,
        critical: false,
        typ: 20,
        body: vec![0; n - 1],
        embedded: None,
    };
    assert_eq!(encode_subpackets(&[s(1, 191)]).unwrap()[..2], [191, 20]);
    assert_eq!(encode_subpackets(&[s(2, 192)]).unwrap()[..3], [192, 0, 20]);
    assert_eq!(encode_subpackets(&[s(2, 8383)]).unwrap()[..3], [223, 255, 20]);
    // Subpacket lengths (unlike packet lengths) take two octets up to 16319
    // (RFC 9580 §5.2.3.1: first octet 192..=254).
    assert_eq!(encode_subpackets(&[s(2, 8384)]).unwrap()[..3], [224, 0, 20]);
    assert_eq!(encode_subpackets(&[s(2, 16319)]).unwrap()[..3], [254, 255, 20]);
    assert_eq!(encode_subpackets(&[s(5, 1)]).unwrap(), [0xff, 0, 0, 0, 1, 20]);
    assert_eq!(encode_subpackets(&[s(5, 100_000)]).unwrap()[..6], [0xff, 0, 1, 0x86, 0xa0, 20]);
    // A form that cannot carry the length is refused, not silently fixed.
    for (lo, n) in [(1, 192), (2, 191), (2, 16320), (3, 10), (0, 10)] {
        assert!(
            matches!(encode_subpackets(&[s(lo, n)]), Err(CryptoError::SubpacketLength { .. })),
            "{lo} {n}"
        );
    }
    // The critical bit lives in `critical`, not in the type.
    let mut crit = sp(2, true, &[1, 2, 3, 4]);
    assert_eq!(encode_subpackets(std::slice::from_ref(&crit)).unwrap(), [5, 0x82, 1, 2, 3, 4]);
    crit.typ = 0x82;
    assert!(encode_subpackets(&[crit]).is_err());
}

#[test]
fn v4_hashed_area_over_65535_octets_is_refused() {
    let big = Subpacket { len_octets: 5, critical: false, typ: 20, body: vec![0; 70_000], embedded: None };
    let sig = Sig {
        version: 4,
        sig_type: 0,
        pk_algo: 1,
        hash_algo: 8,
        hashed: vec![big.clone()],
        unhashed: vec![],
        left16: [0; 2],
        salt: vec![],
        values: placeholder(1, false),
    };
    // Its area does not fit a v4 signature packet: the check refuses it.
    assert!(umd_pgp::packet::encode_sig(&sig).is_err());
    assert!(matches!(hashed_trailer(&sig), Err(None)));
    let v6 = Sig { version: 6, salt: vec![0; 16], ..sig };
    let t = hashed_trailer(&v6).unwrap();
    assert_eq!(t[t.len() - 6..], [6, 0xff, 0, 1, 0x11, 0x7e]); // 8 + (5 + 1 + 70_000)
}

#[test]
fn unknown_hashes_and_v6_sha1_are_refused() {
    for id in [0, 1, 3, 12, 14, 100] {
        assert_eq!(HashAlgo::from_id(id).map_err(CryptoError::from), Err(CryptoError::UnknownHash(id)));
    }
    let sig = Sig {
        version: 6,
        sig_type: 0,
        pk_algo: 27,
        hash_algo: 2,
        hashed: vec![],
        unhashed: vec![],
        left16: [0; 2],
        salt: vec![],
        values: placeholder(27, false),
    };
    assert!(matches!(hasher(&sig), Err(Some(CryptoError::HashNotForV6 { .. }))));
    // A salt in a v4 signature: the check refuses it.
    let v4_salted = Sig { version: 4, hash_algo: 8, salt: vec![1], ..sig };
    assert!(matches!(hasher(&v4_salted), Err(None)));
}

// ---------------------------------------------------------------------------
// Generated keys: every algorithm, good and tampered
// ---------------------------------------------------------------------------

fn strip(mut b: &[u8]) -> Vec<u8> {
    while let [0, rest @ ..] = b {
        b = rest;
    }
    b.to_vec()
}

/// A v4 signature shell over `data`, with its digest; the caller fills `values`.
fn shell(version: u8, pk_algo: u8, hash: HashAlgo, data: &[u8]) -> (Sig, Vec<u8>) {
    let salt = if version == 6 { vec![0x5a; hash.v6_salt_len().unwrap()] } else { vec![] };
    let mut sig = Sig {
        version,
        sig_type: 0,
        pk_algo,
        hash_algo: hash.id(),
        hashed: vec![sp(2, false, &[0x66, 0, 0, 0])],
        unhashed: vec![],
        left16: [0; 2],
        salt,
        values: placeholder(pk_algo, false),
    };
    let mut h = hasher(&sig).unwrap();
    h.data(data);
    let digest = h.finish();
    sig.left16 = [digest[0], digest[1]];
    (sig, digest)
}

fn flip(f: &Field, i: usize) -> Field {
    let mut f = f.clone();
    let (Field::Mpi(b) | Field::Raw(b) | Field::Oid(b) | Field::Sized(b)) = &mut f;
    let i = i % b.len();
    b[i] ^= 0x01;
    f
}

/// The good signature verifies; a changed digest (with left16 fixed up), a
/// flipped bit in any signature value or any key field does not (refused by
/// the crypto, or already by the check: a flipped bit can make a leading zero).
fn check_good_and_tampered(key: &Key, sig: &Sig, digest: &[u8]) {
    verify(key, sig, digest).unwrap();
    // Flip a bit past the left 16 bits but early enough that ECDSA's
    // truncation to the field size (SHA-512 on P-256) keeps it.
    let mut d = digest.to_vec();
    d[2] ^= 1;
    assert!(matches!(verify(key, sig, &d), Err(Some(CryptoError::BadSignature { .. }))), "tampered digest");
    for v in 0..sig.values.len() {
        for i in [0, 7, 31, 1000] {
            let mut s = sig.clone();
            s.values[v] = flip(&s.values[v], i);
            assert!(verify(key, &s, digest).is_err(), "tampered value {v} octet {i}");
        }
    }
    for m in 0..key.material.len() {
        for i in [1, 5, 20, 1000] {
            let mut k = key.clone();
            k.material[m] = flip(&k.material[m], i);
            assert!(verify(&k, sig, digest).is_err(), "tampered key field {m} octet {i}");
        }
    }
    let mut s = sig.clone();
    s.left16[1] ^= 1;
    assert!(matches!(verify(key, &s, digest), Err(Some(CryptoError::Left16Mismatch { .. }))));
    let mut s = sig.clone();
    // Another algorithm whose values have the same form.
    s.pk_algo = match key.algo {
        1 => 3,
        3 => 1,
        19 => 22,
        22 => 19,
        _ => 100,
    };
    assert!(matches!(verify(key, &s, digest), Err(Some(CryptoError::AlgorithmMismatch { .. }))));
    assert!(matches!(verify(key, sig, &digest[1..]), Err(Some(CryptoError::DigestLength { .. }))));
}

#[test]
fn ed25519_v6_and_v4_signatures_verify_and_tampering_fails() {
    for version in [4, 6] {
        let mut seed = [0; 32];
        OsRng.fill_bytes(&mut seed);
        let sk = ed25519_dalek::SigningKey::from_bytes(&seed);
        let key = Key {
            version,
            created: 0x6000_0000,
            algo: 27,
            material: vec![Field::Raw(sk.verifying_key().to_bytes().to_vec())],
        };
        for hash in [HashAlgo::Sha256, HashAlgo::Sha512] {
            let (mut sig, digest) = shell(version, 27, hash, b"ed25519 data");
            use ed25519_dalek::Signer;
            sig.values = vec![Field::Raw(sk.sign(&digest).to_bytes().to_vec())];
            check_good_and_tampered(&key, &sig, &digest);
            // A v6 key does not make v4 signatures, nor the reverse.
            let other = Key { version: 10 - version, ..key.clone() };
            assert!(matches!(verify(&other, &sig, &digest), Err(Some(CryptoError::VersionMismatch { .. }))));
        }
    }
}

#[test]
fn eddsa_legacy_signatures_verify_with_stripped_mpis() {
    // Find a key/message whose r or s has a leading zero octet, so the MPI is
    // shorter than 32 octets and must be padded back.
    let mut tried = 0;
    loop {
        let mut seed = [0; 32];
        OsRng.fill_bytes(&mut seed);
        let sk = ed25519_dalek::SigningKey::from_bytes(&seed);
        let point = [&[0x40][..], &sk.verifying_key().to_bytes()].concat();
        let key = Key {
            version: 4,
            created: 0,
            algo: 22,
            material: vec![Field::Oid(Curve::Ed25519Legacy.oid().to_vec()), Field::Mpi(point)],
        };
        let (mut sig, digest) = shell(4, 22, HashAlgo::Sha256, &seed);
        use ed25519_dalek::Signer;
        let rs = sk.sign(&digest).to_bytes();
        sig.values = vec![Field::Mpi(strip(&rs[..32])), Field::Mpi(strip(&rs[32..]))];
        verify(&key, &sig, &digest).unwrap();
        tried += 1;
        if rs[0] == 0 || rs[32] == 0 || tried > 2000 {
            check_good_and_tampered(&key, &sig, &digest);
            // EdDSALegacy on a v6 key is not defined (RFC 9580).
            let v6 = Key { version: 6, ..key.clone() };
            assert!(key_kind(&v6).is_err());
            assert!(rs[0] == 0 || rs[32] == 0, "no short MPI found in {tried} tries");
            break;
        }
    }
}

fn ecdsa_key(curve: Curve, sec1: &[u8]) -> Key {
    Key {
        version: 4,
        created: 0,
        algo: 19,
        material: vec![Field::Oid(curve.oid().to_vec()), Field::Mpi(sec1.to_vec())],
    }
}

fn rs_mpis(rs: &[u8]) -> Vec<Field> {
    let (r, s) = rs.split_at(rs.len() / 2);
    vec![Field::Mpi(strip(r)), Field::Mpi(strip(s))]
}

#[test]
fn ecdsa_p256_p384_p521_verify_with_every_hash_and_tampering_fails() {
    use p256::ecdsa::signature::hazmat::PrehashSigner;
    for hash in [HashAlgo::Sha256, HashAlgo::Sha384, HashAlgo::Sha512] {
        let (mut sig, digest) = shell(4, 19, hash, b"p256");
        let sk = p256::ecdsa::SigningKey::random(&mut OsRng);
        let s: p256::ecdsa::Signature = sk.sign_prehash(&digest).unwrap();
        sig.values = rs_mpis(&s.to_bytes());
        let key = ecdsa_key(Curve::NistP256, sk.verifying_key().to_encoded_point(false).as_bytes());
        assert_eq!(key_kind(&key).unwrap(), KeyKind::Ecdsa(Curve::NistP256));
        check_good_and_tampered(&key, &sig, &digest);

        let sk = p384::ecdsa::SigningKey::random(&mut OsRng);
        let s: p384::ecdsa::Signature = sk.sign_prehash(&digest).unwrap();
        sig.values = rs_mpis(&s.to_bytes());
        let key384 = ecdsa_key(Curve::NistP384, sk.verifying_key().to_encoded_point(false).as_bytes());
        check_good_and_tampered(&key384, &sig, &digest);

        let sk = p521::ecdsa::SigningKey::random(&mut OsRng);
        // The signer refuses digests under half the field (SHA-256 on
        // P-521); the integer is the same when left-padded.
        let padded = [vec![0; 66usize.saturating_sub(digest.len())], digest.clone()].concat();
        let s: p521::ecdsa::Signature = sk.sign_prehash(&padded).unwrap();
        sig.values = rs_mpis(&s.to_bytes());
        let key521 = ecdsa_key(
            Curve::NistP521,
            p521::ecdsa::VerifyingKey::from(&sk).to_encoded_point(false).as_bytes(),
        );
        check_good_and_tampered(&key521, &sig, &digest);

        // The P-521 signature under the P-384 key's OID: wrong curve.
        let mut wrong = key521.clone();
        wrong.material[0] = Field::Oid(Curve::NistP384.oid().to_vec());
        assert!(matches!(verify(&wrong, &sig, &digest), Err(Some(CryptoError::BadKeyMaterial { .. }))));
    }
}

#[test]
fn ecdsa_refuses_compressed_points_unknown_curves_and_zero_scalars() {
    let sk = p256::ecdsa::SigningKey::random(&mut OsRng);
    let compressed = ecdsa_key(Curve::NistP256, sk.verifying_key().to_encoded_point(true).as_bytes());
    assert!(key_kind(&compressed).is_err());
    let good = ecdsa_key(Curve::NistP256, sk.verifying_key().to_encoded_point(false).as_bytes());
    let mut k256 = good.clone();
    k256.material[0] = Field::Oid(vec![0x2b, 0x81, 0x04, 0x00, 0x0a]); // secp256k1
    assert!(matches!(key_kind(&k256), Err(Some(CryptoError::UnsupportedCurve { .. }))));
    let (mut sig, digest) = shell(4, 19, HashAlgo::Sha256, b"x");
    sig.values = vec![Field::Mpi(vec![]), Field::Mpi(vec![1])];
    assert!(matches!(verify(&good, &sig, &digest), Err(Some(CryptoError::BadSignatureValues { .. }))));
    sig.values = vec![Field::Mpi(vec![0xff; 33]), Field::Mpi(vec![1])];
    assert!(matches!(verify(&good, &sig, &digest), Err(Some(CryptoError::BadSignatureValues { .. }))));
    // Not on the curve.
    sig.values = vec![Field::Mpi(vec![1]), Field::Mpi(vec![1])];
    let mut off = [0x04; 65];
    off[64] = 0x05;
    assert!(matches!(
        verify(&ecdsa_key(Curve::NistP256, &off), &sig, &digest),
        Err(Some(CryptoError::BadKeyMaterial { .. }))
    ));
}

fn rsa_key_1024() -> &'static rsa09::RsaPrivateKey {
    static KEY: std::sync::OnceLock<rsa09::RsaPrivateKey> = std::sync::OnceLock::new();
    // 1024 bits keeps the debug-build test fast; size is the policy's business.
    KEY.get_or_init(|| rsa09::RsaPrivateKey::new(&mut OsRng, 1024).unwrap())
}

fn rsa_pub(sk: &rsa09::RsaPrivateKey) -> Key {
    use rsa09::traits::PublicKeyParts;
    Key {
        version: 4,
        created: 0,
        algo: 1,
        material: vec![Field::Mpi(sk.n().to_bytes_be()), Field::Mpi(sk.e().to_bytes_be())],
    }
}

#[test]
fn rsa_pkcs1_signatures_verify_for_every_hash_with_the_crates_own_digestinfo() {
    use rsa09::Pkcs1v15Sign;
    let sk = rsa_key_1024();
    let key = rsa_pub(sk);
    assert_eq!(key_kind(&key).unwrap(), KeyKind::Rsa { bits: 1024 });
    let schemes = [
        (HashAlgo::Sha1, Pkcs1v15Sign::new::<sha1::Sha1>()),
        (HashAlgo::Sha224, Pkcs1v15Sign::new::<sha2::Sha224>()),
        (HashAlgo::Sha256, Pkcs1v15Sign::new::<sha2::Sha256>()),
        (HashAlgo::Sha384, Pkcs1v15Sign::new::<sha2::Sha384>()),
        (HashAlgo::Sha512, Pkcs1v15Sign::new::<sha2::Sha512>()),
    ];
    for (hash, scheme) in schemes {
        let (mut sig, digest) = shell(4, 1, hash, b"rsa");
        sig.values = vec![Field::Mpi(strip(&sk.sign(scheme, &digest).unwrap()))];
        check_good_and_tampered(&key, &sig, &digest);
        // Sign-only RSA (algo 3) is the same mathematics.
        let k3 = Key { algo: 3, ..key.clone() };
        let s3 = Sig { pk_algo: 3, ..sig.clone() };
        verify(&k3, &s3, &digest).unwrap();
        // A signature made with another hash's DigestInfo does not verify.
        let mut other = sig.clone();
        other.hash_algo = if hash == HashAlgo::Sha256 { 10 } else { 8 };
        let d = {
            let mut h = hasher(&other).unwrap();
            h.data(b"rsa");
            h.finish()
        };
        other.left16 = [d[0], d[1]];
        assert!(verify(&key, &other, &d).is_err());
    }
}

#[test]
fn rsa_refuses_malformed_keys_and_values() {
    let sk = rsa_key_1024();
    let key = rsa_pub(sk);
    let (mut sig, digest) = shell(4, 1, HashAlgo::Sha256, b"x");
    sig.values = vec![Field::Mpi(vec![1; 129])];
    assert!(matches!(verify(&key, &sig, &digest), Err(Some(CryptoError::BadSignatureValues { .. }))));
    sig.values = vec![Field::Mpi(vec![])];
    assert!(matches!(verify(&key, &sig, &digest), Err(Some(CryptoError::BadSignature { .. }))));
    for material in [
        vec![Field::Mpi(vec![]), Field::Mpi(vec![1, 0, 1])],
        vec![Field::Mpi(vec![0xff; 128]), Field::Mpi(vec![])],
        vec![Field::Mpi(vec![0xfe; 128]), Field::Mpi(vec![1, 0, 1])], // even n
        vec![Field::Mpi(vec![0xff; 128]), Field::Mpi(vec![0xff; 129])], // e > n
        vec![Field::Mpi(vec![0xff; 3000]), Field::Mpi(vec![1, 0, 1])], // 24000 bits
    ] {
        let k = Key { material, ..key.clone() };
        assert!(
            matches!(verify(&k, &sig, &digest), Err(Some(CryptoError::BadKeyMaterial { .. }))),
            "{:?}",
            k.material.len()
        );
    }
    // Material not in RSA's form (two MPIs) is refused by the check already.
    for material in
        [vec![Field::Mpi(vec![0xff; 128])], vec![Field::Raw(vec![0xff; 128]), Field::Mpi(vec![3])]]
    {
        let k = Key { material, ..key.clone() };
        assert!(umd_pgp::packet::encode_key(&k).is_err());
        assert!(matches!(verify(&k, &sig, &digest), Err(None)));
    }
}

#[test]
fn other_algorithms_are_unsupported() {
    for algo in [2, 16, 17, 18, 20, 25, 26, 28, 99] {
        let key = Key { version: 4, created: 0, algo, material: placeholder(algo, true) };
        let (sig, digest) = shell(4, algo, HashAlgo::Sha256, b"x");
        assert_eq!(verify(&key, &sig, &digest), Err(Some(CryptoError::UnsupportedAlgorithm { algo })));
    }
}

#[test]
fn rsa_bits_come_from_the_modulus() {
    assert_eq!(bit_len(&[]), 0);
    assert_eq!(bit_len(&[0, 0]), 0);
    assert_eq!(bit_len(&[1]), 1);
    assert_eq!(bit_len(&[0, 0x80, 0]), 16);
    assert_eq!(bit_len(&[0x7f; 256]), 2047);
}

// ---------------------------------------------------------------------------
// GnuPG as the reference
// ---------------------------------------------------------------------------

struct GpgHome(std::path::PathBuf);

impl Drop for GpgHome {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf").env("GNUPGHOME", &self.0).args(["--kill", "all"]).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn gpg(home: &GpgHome, args: &[&str]) -> Vec<u8> {
    let out = Command::new("gpg")
        .env("GNUPGHOME", &home.0)
        .args(["--batch", "--quiet", "--no-tty"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "gpg {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// Makes a key with `gpg`, exports it and signs a file with it; checks our
/// fingerprint against gpg's and verifies gpg's signature. Skipped (with a
/// note) where gpg is not installed.
fn against_gpg(algo: &str, expect: KeyKind) {
    if Command::new("gpg").arg("--version").output().is_err() {
        eprintln!("gpg not installed: skipping the GnuPG known-answer test");
        return;
    }
    let dir = std::env::temp_dir().join(format!("umd-pgp-gpg-{}-{algo}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let home = GpgHome(dir);
    std::fs::set_permissions(&home.0, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    gpg(&home, &["--passphrase", "", "--quick-gen-key", "T <t@example>", algo, "sign", "never"]);
    let colons = String::from_utf8(gpg(&home, &["--with-colons", "--fingerprint"])).unwrap();
    let fpr_line = colons.lines().find(|l| l.starts_with("fpr:")).unwrap();
    let gpg_fpr = fpr_line.split(':').nth(9).unwrap();

    let exported = gpg(&home, &["--export"]);
    let pk = packets(&exported);
    assert_eq!(pk[0].0, 6);
    let ours = fingerprint(4, &pk[0].1).unwrap();
    assert_eq!(ours.to_string(), gpg_fpr);
    let key = parse_key(&pk[0].1);
    assert_eq!(key_kind(&key).unwrap(), expect);

    // gpg's self-certification of the user ID verifies with our hashing.
    let (uid, cert) = (&pk[1], &pk[2]);
    assert_eq!((uid.0, cert.0), (13, 2));
    let cert = parse_sig(&cert.1);
    let mut h = hasher(&cert).unwrap();
    h.key(&pk[0].1).unwrap();
    h.user_id(&uid.1).unwrap();
    verify(&key, &cert, &h.finish()).unwrap();

    // And a detached binary signature over a file.
    let data = home.0.join("data");
    std::fs::write(&data, b"signed by gpg\n").unwrap();
    let sig = gpg(&home, &["--detach-sign", "--output", "-", data.to_str().unwrap()]);
    let sp = packets(&sig);
    let sig = parse_sig(&sp[0].1);
    let mut h = hasher(&sig).unwrap();
    h.data(b"signed by gpg\n");
    let digest = h.finish();
    verify(&key, &sig, &digest).unwrap();
    let mut h = hasher(&sig).unwrap();
    h.data(b"signed by gpg!\n");
    assert!(verify(&key, &sig, &h.finish()).is_err());
}

#[test]
fn gpg_ed25519_key_fingerprint_and_signatures_match() {
    against_gpg("ed25519", KeyKind::EdDsaLegacy);
}

#[test]
fn gpg_nistp256_key_fingerprint_and_signatures_match() {
    against_gpg("nistp256", KeyKind::Ecdsa(Curve::NistP256));
}

#[test]
fn gpg_rsa2048_key_fingerprint_and_signatures_match() {
    against_gpg("rsa2048", KeyKind::Rsa { bits: 2048 });
}

// ---------------------------------------------------------------------------
// Hostile input never panics
// ---------------------------------------------------------------------------

fn field() -> impl Strategy<Value = Field> {
    let bytes = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..80),
        proptest::collection::vec(any::<u8>(), 60..140),
        Just(vec![0x40; 33]),
        Just(vec![0x04; 65]),
        Just(Curve::NistP256.oid().to_vec()),
        Just(Curve::NistP521.oid().to_vec()),
        Just(Curve::Ed25519Legacy.oid().to_vec()),
    ];
    (0..4u8, bytes).prop_map(|(k, b)| match k {
        0 => Field::Mpi(b),
        1 => Field::Oid(b),
        2 => Field::Raw(b),
        _ => Field::Sized(b),
    })
}

fn subpacket() -> impl Strategy<Value = Subpacket> {
    (0..7u8, any::<bool>(), any::<u8>(), proptest::collection::vec(any::<u8>(), 0..300)).prop_map(
        |(len_octets, critical, typ, body)| Subpacket { len_octets, critical, typ, body, embedded: None },
    )
}

/// Hostile values in the form the check accepts: `verify_never_panics` feeds
/// any fields, and since the crypto code takes only checked values, few of its
/// cases get past `packet::check`. Here every key and signature has its
/// algorithm's shape (as [`placeholder`]) with random contents, so the
/// mathematics, the curve and key-size checks and the hashing see them; most
/// must pass the check, or this test no longer tests the crypto code.
#[test]
fn verify_never_panics_on_hostile_values_of_the_checked_form() {
    /// A fixed xorshift stream: the same cases on every run.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn bytes(&mut self, n: usize) -> Vec<u8> {
            (0..n).map(|_| self.next() as u8).collect()
        }
        /// `f`'s shape with random contents.
        fn fill(&mut self, f: &Field) -> Field {
            let oids: [&[u8]; 4] = [
                Curve::NistP256.oid(),
                Curve::NistP521.oid(),
                Curve::Ed25519Legacy.oid(),
                &[0x2b, 0x06, 0x01],
            ];
            let pick = self.next();
            match f {
                Field::Mpi(_) => {
                    let mut m = self.bytes(1 + (pick % 520) as usize);
                    m[0] |= 1;
                    Field::Mpi(m)
                }
                Field::Oid(_) => Field::Oid(oids[(pick % 4) as usize].to_vec()),
                Field::Sized(_) => Field::Sized(self.bytes(1 + (pick % 4) as usize)),
                Field::Raw(v) => Field::Raw(self.bytes(v.len())),
            }
        }
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut checked = 0;
    let cases = 512;
    for _ in 0..cases {
        let r = rng.next();
        let algo = [1u8, 17, 19, 22, 27, 28][(r % 6) as usize];
        let version = if matches!(algo, 27 | 28) && r & 64 != 0 { 6 } else { 4 };
        let hash_algo = [8u8, 9, 10, 11][((r >> 8) % 4) as usize];
        let salt_len = match hash_algo {
            9 => 24,
            10 => 32,
            _ => 16,
        };
        let material = placeholder(algo, true).iter().map(|f| rng.fill(f)).collect();
        let values = placeholder(algo, false).iter().map(|f| rng.fill(f)).collect();
        let key = Key { version, created: rng.next() as u32, algo, material };
        let created = rng.bytes(4);
        let sig = Sig {
            version,
            sig_type: 0,
            pk_algo: algo,
            hash_algo,
            hashed: vec![sp(2, false, &created)],
            unhashed: vec![],
            left16: [rng.next() as u8, rng.next() as u8],
            salt: if version == 6 { rng.bytes(salt_len) } else { vec![] },
            values,
        };
        let digest = rng.bytes(64);
        if craft::checked_key(&key).is_some() && craft::checked_sig(&sig).is_some() {
            checked += 1;
        }
        let _ = verify(&key, &sig, &digest);
        let _ = key_kind(&key);
        let _ = hashed_trailer(&sig);
        if let Ok(mut h) = hasher(&sig) {
            h.data(&digest);
            let d = h.finish();
            let _ = verify(&key, &sig, &d);
        }
    }
    eprintln!("{checked} of {cases} cases passed the check");
    assert!(checked * 2 >= cases, "only {checked} of {cases} cases passed the check");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn verify_never_panics(
        version in prop_oneof![Just(4u8), Just(6u8), any::<u8>()],
        algo in prop_oneof![Just(1u8), Just(3), Just(19), Just(22), Just(27), any::<u8>()],
        hash_algo in prop_oneof![Just(2u8), Just(8), Just(9), Just(10), Just(11), any::<u8>()],
        material in proptest::collection::vec(field(), 0..3),
        values in proptest::collection::vec(field(), 0..3),
        hashed in proptest::collection::vec(subpacket(), 0..3),
        salt in proptest::collection::vec(any::<u8>(), 0..40),
        digest in proptest::collection::vec(any::<u8>(), 0..70),
        fix_left16 in any::<bool>(),
    ) {
        let key = Key { version, created: 0, algo, material };
        let mut sig = Sig { version, sig_type: 0, pk_algo: algo, hash_algo, hashed, unhashed: vec![], left16: [0; 2], salt, values };
        if fix_left16 && digest.len() >= 2 {
            sig.left16 = [digest[0], digest[1]];
        }
        let _ = verify(&key, &sig, &digest);
        let _ = key_kind(&key);
        let _ = hashed_trailer(&sig);
        if let Ok(mut h) = hasher(&sig) {
            h.data(&digest);
            let _ = h.key(&digest);
            let _ = h.user_id(&digest);
            let d = h.finish();
            let _ = verify(&key, &sig, &d);
        }
    }

    #[test]
    fn fingerprint_never_panics(version in any::<u8>(), body in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(f) = fingerprint(version, &body) {
            prop_assert!(version == 4 || version == 6);
            prop_assert_eq!(f.as_bytes().len(), if version == 4 { 20 } else { 32 });
            let _ = f.key_id();
        }
        let _ = key_id(version, &body);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// The manager's framing walk over arbitrary bytes: no panic, and when it
    /// succeeds the packets tile the stream exactly.
    #[test]
    fn the_framing_walk_never_panics_and_tiles_what_it_accepts(
        stream in proptest::collection::vec(any::<u8>(), 0..600),
    ) {
        if let Ok(frames) = umd_pgp::packet::frames(&stream) {
            let mut at = 0;
            for f in &frames {
                prop_assert_eq!(f.offset, at);
                prop_assert!(f.extent >= f.header.header_len && f.extent > 0);
                prop_assert!(f.body(&stream).len() == f.extent - f.header.header_len);
                at += f.extent;
            }
            prop_assert_eq!(at, stream.len());
        }
    }
}

/// A packet with a valid header in one of the length forms (new format 1-, 2-
/// or 5-octet, old format 1-, 2- or 4-octet).
fn framed_packet() -> impl Strategy<Value = Vec<u8>> {
    (1..16u8, 0..6u8, proptest::collection::vec(any::<u8>(), 0..400)).prop_map(|(tag, form, body)| {
        let n = body.len();
        let mut p = match form {
            0 if n < 192 => vec![0xc0 | tag, n as u8],
            1 if (192..8384).contains(&n) => {
                vec![0xc0 | tag, (((n - 192) >> 8) + 192) as u8, (n - 192) as u8]
            }
            2 => [&[0xc0 | tag, 0xff][..], &(n as u32).to_be_bytes()].concat(),
            3 if n < 256 => vec![0x80 | (tag << 2), n as u8],
            4 => [&[0x80 | (tag << 2) | 1][..], &(n as u16).to_be_bytes()].concat(),
            _ => [&[0x80 | (tag << 2) | 2][..], &(n as u32).to_be_bytes()].concat(),
        };
        p.extend_from_slice(&body);
        p
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Well-framed streams are walked packet by packet; cutting one short
    /// anywhere inside the last packet is refused, never read past.
    #[test]
    fn the_framing_walk_finds_every_packet_and_refuses_truncations(
        packets in proptest::collection::vec(framed_packet(), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let stream = packets.concat();
        let frames = umd_pgp::packet::frames(&stream).unwrap();
        prop_assert_eq!(frames.len(), packets.len());
        let last = stream.len() - packets.last().unwrap().len();
        let cut = last + 1 + cut.index(stream.len() - last);
        if cut < stream.len() {
            prop_assert!(umd_pgp::packet::frames(&stream[..cut]).is_err());
        }
    }
}
