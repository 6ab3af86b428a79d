//! The OpenPGP handler's descriptions, checked the way the manager checks them:
//! the packets tile the stream, every header re-reads to the described tag and
//! lengths, and every key and signature body re-encodes (RFC 9580) from the
//! described fields to exactly the bytes in the stream.
//!
//! Inputs: keys and signatures made by `gpg` at test time (Ed25519, RSA 3072,
//! NIST P-256, with encryption and signing subkeys), v6 certificates and
//! signatures made by Sequoia, and the Debian archive keyring when installed.
//! Then hostile inputs: truncations and bit flips of all of them, and random bytes,
//! which must never panic and, when described, must still describe exactly.

use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use sequoia_openpgp as openpgp;

use umd_pgp_handler::describe;
use umd_pgp_wire::{Body, Command as PgpCommand, Description, Field, Key, Sig, Subpacket};
use umd_testkeys::CipherSuite;

// ---------------------------------------------------------------------------
// The manager's check, written independently of the handler.

/// Re-reads a packet header: `(tag, header_len, body_len)`. Partial lengths: the
/// body runs over all chunks.
fn read_header(s: &[u8]) -> (u8, usize, usize) {
    let ctb = s[0];
    assert!(ctb & 0x80 != 0);
    if ctb & 0x40 == 0 {
        let tag = (ctb >> 2) & 0xf;
        return match ctb & 3 {
            0 => (tag, 2, s[1] as usize),
            1 => (tag, 3, u16::from_be_bytes([s[1], s[2]]) as usize),
            2 => (tag, 5, u32::from_be_bytes([s[1], s[2], s[3], s[4]]) as usize),
            _ => (tag, 1, s.len() - 1),
        };
    }
    let tag = ctb & 0x3f;
    // (length, octets, partial)
    let len = |s: &[u8]| match s[0] {
        o @ 0..=191 => (o as usize, 1, false),
        o @ 192..=223 => (((o as usize - 192) << 8) + s[1] as usize + 192, 2, false),
        o @ 224..=254 => (1 << (o & 0x1f), 1, true),
        255 => (u32::from_be_bytes([s[1], s[2], s[3], s[4]]) as usize, 5, false),
    };
    let (first, octets, mut partial) = len(&s[1..]);
    let header_len = 1 + octets;
    let mut end = header_len + first;
    while partial {
        let (l, o, p) = len(&s[end..]);
        end += o + l;
        partial = p;
    }
    (tag, header_len, end - header_len)
}

fn enc_fields(fields: &[Field]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in fields {
        match f {
            Field::Mpi(m) => {
                let bits = if m.is_empty() { 0 } else { m.len() * 8 - m[0].leading_zeros() as usize };
                out.extend_from_slice(&(bits as u16).to_be_bytes());
                out.extend_from_slice(m);
            }
            Field::Oid(b) | Field::Sized(b) => {
                out.push(b.len() as u8);
                out.extend_from_slice(b);
            }
            Field::Raw(b) => out.extend_from_slice(b),
        }
    }
    out
}

fn enc_key(k: &Key) -> Vec<u8> {
    let mut out = vec![k.version];
    out.extend_from_slice(&k.created.to_be_bytes());
    out.push(k.algo);
    let m = enc_fields(&k.material);
    if k.version == 6 {
        out.extend_from_slice(&(m.len() as u32).to_be_bytes());
    }
    out.extend_from_slice(&m);
    out
}

fn enc_subpacket(sp: &Subpacket) -> Vec<u8> {
    let len = sp.body.len() + 1;
    let mut out = match sp.len_octets {
        1 => vec![len as u8],
        2 => vec![((len - 192) >> 8) as u8 + 192, (len - 192) as u8],
        5 => {
            let mut v = vec![255];
            v.extend_from_slice(&(len as u32).to_be_bytes());
            v
        }
        n => panic!("bad len_octets {n}"),
    };
    out.push(sp.typ | if sp.critical { 0x80 } else { 0 });
    out.extend_from_slice(&sp.body);
    out
}

fn enc_sig(s: &Sig) -> Vec<u8> {
    let mut out = vec![s.version, s.sig_type, s.pk_algo, s.hash_algo];
    for area in [&s.hashed, &s.unhashed] {
        let a: Vec<u8> = area.iter().flat_map(enc_subpacket).collect();
        if s.version == 4 {
            out.extend_from_slice(&(a.len() as u16).to_be_bytes());
        } else {
            out.extend_from_slice(&(a.len() as u32).to_be_bytes());
        }
        out.extend_from_slice(&a);
    }
    out.extend_from_slice(&s.left16);
    if s.version == 6 {
        out.push(s.salt.len() as u8);
        out.extend_from_slice(&s.salt);
    }
    out.extend_from_slice(&enc_fields(&s.values));
    out
}

/// Checks an embedded signature's fields against its subpacket body; returns how
/// many were checked.
fn check_embedded(s: &Sig) -> usize {
    let mut n = 0;
    for sp in s.hashed.iter().chain(&s.unhashed) {
        assert_eq!(sp.embedded.is_some(), sp.typ == 32, "embedded set exactly for type 32");
        if let Some(e) = &sp.embedded {
            assert_eq!(enc_sig(e), sp.body, "embedded signature re-encodes to its subpacket body");
            n += 1 + check_embedded(e);
        }
    }
    n
}

/// What a stream held, for the tests to assert on.
#[derive(Debug, Default)]
struct Seen {
    keys: Vec<(u8, u8)>, // (version, algo), primary and subkeys
    sigs: Vec<(u8, u8)>, // (version, pk_algo)
    user_ids: usize,
    embedded: usize,
}

/// The manager's check: size bound, tiling, headers, and re-encoded bodies.
fn check(stream: &[u8], d: &Description) -> Seen {
    let encoded = d.encode().expect("encodes");
    let bound = umd_pgp_wire::max_description(stream.len());
    assert!(
        encoded.len() <= bound,
        "a {}-byte description of {} bytes exceeds {bound}",
        encoded.len(),
        stream.len()
    );
    // And within the memory the manager's decoder allows for the stream.
    let mut charged = umd_wire::decode::Budget::new(usize::MAX);
    let _: Description =
        umd_wire::decode::decode_charging(&encoded, umd_pgp_wire::MAX_DEPTH, &mut charged).expect("decodes");
    let max = umd_pgp_wire::max_memory(stream.len());
    assert!(
        charged.used <= max,
        "{} bytes decoded for {} stream bytes exceed {max}",
        charged.used,
        stream.len()
    );
    if std::env::var_os("UMD_PRINT_RATIOS").is_some() {
        eprintln!(
            "ratio: stream {} wire {} ({:.2}x) memory {} ({:.2}x)",
            stream.len(),
            encoded.len(),
            encoded.len() as f64 / stream.len() as f64,
            charged.used,
            charged.used as f64 / stream.len() as f64
        );
    }
    let mut seen = Seen::default();
    let mut at = 0usize;
    for p in &d.packets {
        assert_eq!(p.offset as usize, at, "packets tile the stream");
        let (tag, header_len, body_len) = read_header(&stream[at..]);
        assert_eq!((tag, header_len, body_len), (p.tag, p.header_len as usize, p.body_len as usize));
        let body = &stream[at + header_len..at + header_len + body_len];
        match &p.body {
            Body::PublicKey(k) | Body::PublicSubkey(k) => {
                assert_eq!(enc_key(k), body, "key at {at} re-encodes");
                seen.keys.push((k.version, k.algo));
            }
            Body::Signature(s) => {
                assert_eq!(enc_sig(s), body, "signature at {at} re-encodes");
                seen.sigs.push((s.version, s.pk_algo));
                seen.embedded += check_embedded(s);
            }
            Body::UserId => seen.user_ids += 1,
            Body::UserAttribute | Body::Opaque => {}
        }
        let expected_kind = match tag {
            6 => matches!(p.body, Body::PublicKey(_)),
            14 => matches!(p.body, Body::PublicSubkey(_)),
            2 => matches!(p.body, Body::Signature(_)),
            13 => matches!(p.body, Body::UserId),
            17 => matches!(p.body, Body::UserAttribute),
            _ => matches!(p.body, Body::Opaque),
        };
        assert!(expected_kind, "tag {tag} described as {:?}", p.body);
        at += header_len + body_len;
    }
    assert_eq!(at, stream.len(), "packets cover the whole stream");
    seen
}

/// Describes through the handler's request entry point (command byte, encoded
/// reply), checks, and returns what was seen.
fn describe_and_check(name: &str, stream: &[u8]) -> Seen {
    let mut req = vec![PgpCommand::Describe as u8];
    req.extend_from_slice(stream);
    let mut out = Vec::new();
    umd_pgp_handler::handle(&req, &mut out).unwrap_or_else(|e| panic!("{name}: {e}"));
    let d = Description::decode(&out, stream.len()).expect("reply decodes");
    assert_eq!(d, describe(stream).unwrap());
    check(stream, &d)
}

// ---------------------------------------------------------------------------
// Inputs.

fn gpg(home: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("gpg")
        .arg("--homedir")
        .arg(home)
        .args(["--batch", "--quiet", "--no-tty", "--pinentry-mode", "loopback", "--passphrase", ""])
        .args(args)
        .output()
        .expect("running gpg");
    assert!(out.status.success(), "gpg {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// Removes ASCII armor (a cleartext signature's signature block) with Sequoia.
fn dearmor(armored: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(armored).unwrap();
    let block = &text[text.find("-----BEGIN PGP SIGNATURE-----").expect("signature block")..];
    let mut r = openpgp::armor::Reader::from_bytes(
        block.as_bytes(),
        openpgp::armor::ReaderMode::Tolerant(Some(openpgp::armor::Kind::Signature)),
    );
    let mut out = Vec::new();
    r.read_to_end(&mut out).unwrap();
    out
}

struct GpgKey {
    algo: &'static str,
    /// (exported certificate, detached signature, cleartext signature dearmored)
    cert: Vec<u8>,
    detached: Vec<u8>,
    clearsigned: Vec<u8>,
}

/// Keys made by gpg once for all tests: a primary of each algorithm, with an
/// encryption subkey and a signing subkey (whose binding embeds a back signature).
fn gpg_keys() -> Option<&'static [GpgKey]> {
    static KEYS: OnceLock<Option<Vec<GpgKey>>> = OnceLock::new();
    KEYS.get_or_init(|| {
        if Command::new("gpg").arg("--version").output().is_err() {
            eprintln!("gpg not installed: skipping the gpg inputs");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("gnupg");
        std::fs::create_dir(&home).unwrap();
        std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        let data = dir.path().join("data.txt");
        std::fs::write(&data, "signed text\n- with a dash line\n").unwrap();
        let mut keys = Vec::new();
        // gpg 2.2 refuses a nistp256 signing subkey ("Wrong key usage"): that
        // certificate gets an Ed25519 one.
        for (algo, enc, sign, uid) in [
            ("ed25519", "cv25519", "ed25519", "Ed <ed@example.org>"),
            ("rsa3072", "rsa3072", "rsa3072", "Rsa <rsa@example.org>"),
            ("nistp256", "nistp256", "ed25519", "P256 <p256@example.org>"),
        ] {
            gpg(&home, &["--quick-gen-key", uid, algo, "sign,cert", "never"]);
            let listing = String::from_utf8(gpg(&home, &["--with-colons", "--list-keys", uid])).unwrap();
            let fpr = listing
                .lines()
                .find(|l| l.starts_with("fpr:"))
                .and_then(|l| l.split(':').nth(9))
                .expect("fingerprint")
                .to_string();
            gpg(&home, &["--quick-add-key", &fpr, enc, "encr", "never"]);
            gpg(&home, &["--quick-add-key", &fpr, sign, "sign", "never"]);
            let cert = gpg(&home, &["--export", &fpr]);
            let signer = format!("{fpr}!");
            let detached = gpg(&home, &["--detach-sign", "-u", &signer, "-o", "-", data.to_str().unwrap()]);
            let clear = gpg(&home, &["--clearsign", "-u", &signer, "-o", "-", data.to_str().unwrap()]);
            keys.push(GpgKey { algo, cert, detached, clearsigned: dearmor(&clear) });
        }
        // Stop the agent gpg started for this home before the directory goes.
        let _ = Command::new("gpgconf").arg("--homedir").arg(&home).args(["--kill", "gpg-agent"]).status();
        drop(dir);
        Some(keys)
    })
    .as_ref()
    .map(Vec::as_slice)
}

/// A v6 input: (cipher suite name, certificate, detached signature).
type V6Input = (&'static str, Vec<u8>, Vec<u8>);

/// v6 certificates and signatures made by Sequoia.
fn v6_inputs() -> &'static [V6Input] {
    static V6: OnceLock<Vec<V6Input>> = OnceLock::new();
    V6.get_or_init(|| {
        [
            ("cv25519", CipherSuite::Cv25519),
            ("cv448", CipherSuite::Cv448),
            ("p256", CipherSuite::P256),
            ("mldsa65-ed25519", CipherSuite::MLDSA65_Ed25519),
        ]
        .into_iter()
        .map(|(name, suite)| {
            let v6 = umd_testkeys::v6(suite, &format!("v6 {name} <v6@example.org>"), true);
            let sig = umd_testkeys::sign(&v6.signer, b"signed by a v6 key\n", None);
            (name, v6.keyring, sig)
        })
        .collect()
    })
}

const DEBIAN_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// Every valid input, named.
fn all_inputs() -> Vec<(String, Vec<u8>)> {
    let mut v = Vec::new();
    for k in gpg_keys().unwrap_or(&[]) {
        v.push((format!("gpg {} cert", k.algo), k.cert.clone()));
        v.push((format!("gpg {} detached", k.algo), k.detached.clone()));
        v.push((format!("gpg {} clearsigned", k.algo), k.clearsigned.clone()));
    }
    for (name, cert, sig) in v6_inputs() {
        v.push((format!("v6 {name} cert"), cert.clone()));
        v.push((format!("v6 {name} sig"), sig.clone()));
    }
    if let Ok(k) = std::fs::read(DEBIAN_KEYRING) {
        v.push(("debian keyring".into(), k));
    }
    v
}

// ---------------------------------------------------------------------------
// Valid inputs are described exactly.

#[test]
fn gpg_certificates_are_described_exactly() {
    let Some(keys) = gpg_keys() else { return };
    for k in keys {
        let seen = describe_and_check(k.algo, &k.cert);
        let (primary, enc, sign) = match k.algo {
            "ed25519" => (22, 18, 22),
            "rsa3072" => (1, 1, 1),
            _ => (19, 18, 22),
        };
        assert_eq!(seen.keys, [(4, primary), (4, enc), (4, sign)], "{}", k.algo);
        assert_eq!(seen.user_ids, 1);
        // Self-signature, two subkey bindings (the signing one embeds a back signature).
        assert_eq!(seen.sigs, [(4, primary); 3], "{}", k.algo);
        assert_eq!(seen.embedded, 1, "{}: the signing subkey's back signature", k.algo);
    }
}

#[test]
fn gpg_signatures_are_described_exactly() {
    let Some(keys) = gpg_keys() else { return };
    for k in keys {
        for (what, stream) in [("detached", &k.detached), ("clearsigned", &k.clearsigned)] {
            let seen = describe_and_check(&format!("{} {what}", k.algo), stream);
            assert_eq!(seen.sigs.len(), 1, "{} {what}", k.algo);
            assert_eq!(seen.sigs[0].0, 4);
        }
    }
}

#[test]
fn gpg_key_fields_hold_the_expected_material() {
    let Some(keys) = gpg_keys() else { return };
    for k in keys {
        let d = describe(&k.cert).unwrap();
        let Body::PublicKey(key) = &d.packets[0].body else { panic!("first packet is the primary key") };
        match k.algo {
            "ed25519" => {
                // Ed25519 legacy OID, native point (0x40 prefix, 263 bits).
                assert_eq!(
                    key.material[0],
                    Field::Oid(vec![0x2b, 0x06, 0x01, 0x04, 0x01, 0xda, 0x47, 0x0f, 0x01])
                );
                assert!(matches!(&key.material[1], Field::Mpi(p) if p.len() == 33 && p[0] == 0x40));
            }
            "rsa3072" => {
                assert!(matches!(&key.material[0], Field::Mpi(n) if n.len() == 384));
                assert_eq!(key.material[1], Field::Mpi(vec![1, 0, 1]));
            }
            _ => {
                assert_eq!(key.material[0], Field::Oid(vec![0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]));
                assert!(matches!(&key.material[1], Field::Mpi(p) if p.len() == 65 && p[0] == 4));
            }
        }
        let Body::PublicSubkey(sub) = &d.packets[3].body else { panic!("packet 3 is the encryption subkey") };
        if k.algo != "rsa3072" {
            assert_eq!(sub.algo, 18);
            assert!(matches!(&sub.material[2], Field::Sized(kdf) if kdf.len() == 3 && kdf[0] == 1));
        }
    }
}

#[test]
fn v6_certificates_and_signatures_are_described_exactly() {
    for (name, cert, sig) in v6_inputs() {
        let seen = describe_and_check(name, cert);
        assert_eq!(seen.keys.len(), 3, "{name}");
        assert!(seen.keys.iter().all(|(v, _)| *v == 6), "{name}: {:?}", seen.keys);
        assert!(seen.sigs.iter().all(|(v, _)| *v == 6), "{name}");
        assert!(seen.embedded >= 1, "{name}: the signing subkey's back signature");
        let seen = describe_and_check(name, sig);
        assert_eq!(seen.sigs.len(), 1);
        let d = describe(sig).unwrap();
        let Body::Signature(s) = &d.packets[0].body else { panic!() };
        assert_eq!(s.version, 6);
        assert!(!s.salt.is_empty(), "v6 signatures carry a salt");
        match *name {
            "cv25519" => assert!(matches!(&s.values[..], [Field::Raw(v)] if v.len() == 64)),
            "cv448" => assert!(matches!(&s.values[..], [Field::Raw(v)] if v.len() == 114)),
            "p256" => assert!(matches!(&s.values[..], [Field::Mpi(_), Field::Mpi(_)])),
            _ => {}
        }
    }
}

#[test]
fn debian_archive_keyring_is_described_exactly() {
    let Ok(keyring) = std::fs::read(DEBIAN_KEYRING) else {
        eprintln!("{DEBIAN_KEYRING} not installed: skipping");
        return;
    };
    let seen = describe_and_check("debian keyring", &keyring);
    assert!(seen.keys.len() >= 9, "{:?}", seen.keys);
    assert!(!seen.sigs.is_empty());
}

#[test]
fn containers_and_unused_packets_are_opaque_and_not_entered() {
    // A literal data packet, then a compressed data packet (uncompressed algo 0)
    // holding a user ID, then a marker packet (legacy format).
    let mut s = b"\xcb\x08b\x00\x00\x00\x00\x00hi".to_vec();
    s.extend_from_slice(b"\xc8\x06\x00\xcd\x03bob");
    s.extend_from_slice(b"\xa8\x03PGP");
    let d = describe(&s).unwrap();
    check(&s, &d);
    assert_eq!(d.packets.iter().map(|p| p.tag).collect::<Vec<_>>(), [11, 8, 10]);
    assert!(d.packets.iter().all(|p| p.body == Body::Opaque));
}

#[test]
fn partial_body_lengths_cover_all_chunks() {
    // Literal data with a 512-octet partial chunk, then a 3-octet final chunk.
    let mut s = vec![0xcb, 0xe9];
    s.extend_from_slice(b"b\x00\x00\x00\x00\x00");
    s.extend(std::iter::repeat_n(b'x', 512 - 6));
    s.extend_from_slice(b"\x03end");
    s.extend_from_slice(b"\xcd\x01a");
    let d = describe(&s).unwrap();
    check(&s, &d);
    assert_eq!((d.packets[0].header_len, d.packets[0].body_len), (2, 512 + 4));
}

#[test]
fn non_minimal_subpacket_lengths_are_kept() {
    // Re-encode a gpg signature with its first hashed subpacket's length in 5
    // octets: still a valid signature packet, and described as such.
    let Some(keys) = gpg_keys() else { return };
    let d = describe(&keys[0].detached).unwrap();
    let Body::Signature(mut s) = d.packets[0].body.clone() else { panic!() };
    s.hashed[0].len_octets = 5;
    let body = enc_sig(&s);
    let mut stream = vec![0xc2, 0xff];
    stream.extend_from_slice(&(body.len() as u32).to_be_bytes());
    stream.extend_from_slice(&body);
    let d = describe(&stream).unwrap();
    check(&stream, &d);
    let Body::Signature(got) = &d.packets[0].body else { panic!() };
    assert_eq!(got.hashed[0].len_octets, 5);
    assert_eq!(got, &s);
}

// ---------------------------------------------------------------------------
// Hostile inputs.

#[test]
fn garbage_requests_are_refused_with_a_message() {
    let mut out = Vec::new();
    assert!(umd_pgp_handler::handle(&[], &mut out).is_err());
    assert!(umd_pgp_handler::handle(&[9, 0xcd, 1, b'a'], &mut out).is_err());
    for bad in [&b"\x00"[..], b"\x7f\x00", b"\xcd", b"\xcd\x05ab", b"\xc0\x00", b"\xc2\x00"] {
        let e = describe(bad).expect_err("refused");
        assert!(!e.is_empty());
    }
    // An RSA key whose modulus has a leading zero octet cannot be re-encoded from
    // its magnitude: refused, not described.
    let e = describe(b"\xc6\x0c\x04\x00\x00\x00\x00\x01\x00\x10\x00\x01\x00\x00").expect_err("refused");
    assert!(e.contains("non-canonical MPI"), "{e}");
    // The same key with canonical MPIs is described.
    let ok = b"\xc6\x0d\x04\x00\x00\x00\x00\x01\x00\x09\x01\x01\x00\x02\x03";
    let d = describe(ok).unwrap_or_else(|e| panic!("{e}"));
    check(ok, &d);
    let Body::PublicKey(k) = &d.packets[0].body else { panic!() };
    assert_eq!(k.material, [Field::Mpi(vec![1, 1]), Field::Mpi(vec![3])]);
    // An empty stream has no packets.
    assert_eq!(describe(&[]).unwrap().packets, []);
}

#[test]
fn deeply_embedded_signatures_are_refused() {
    let Some(keys) = gpg_keys() else { return };
    let d = describe(&keys[0].detached).unwrap();
    let Body::Signature(inner) = d.packets[0].body.clone() else { panic!() };
    let wrap = |s: &Sig| {
        let mut outer = inner.clone();
        let body = enc_sig(s);
        outer.hashed.push(Subpacket { len_octets: 5, critical: false, typ: 32, body, embedded: None });
        outer
    };
    let packet = |s: &Sig| {
        let body = enc_sig(s);
        let mut stream = vec![0xc2, 0xff];
        stream.extend_from_slice(&(body.len() as u32).to_be_bytes());
        stream.extend_from_slice(&body);
        stream
    };
    let once = wrap(&inner);
    let d = describe(&packet(&once)).expect("one level of embedding is described");
    check(&packet(&once), &d);
    let twice = wrap(&once);
    let e = describe(&packet(&twice)).expect_err("two levels are refused");
    assert!(e.contains("nested"), "{e}");
}

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A description of a damaged input is either refused or still exact. Returns
/// whether it was described.
fn never_panics_and_never_lies(stream: &[u8]) -> bool {
    match describe(stream) {
        Ok(d) => {
            check(stream, &d);
            true
        }
        Err(_) => false,
    }
}

#[test]
fn truncated_inputs_never_panic_and_are_never_misdescribed() {
    for (name, input) in all_inputs() {
        let step = (input.len() / 300).max(1);
        let (mut tried, mut described) = (0, 0);
        for len in (0..input.len()).step_by(step) {
            tried += 1;
            described += usize::from(never_panics_and_never_lies(&input[..len]));
        }
        eprintln!("{name}: {tried} truncations, {described} described (at packet boundaries)");
    }
}

#[test]
fn bit_flipped_inputs_never_panic_and_are_never_misdescribed() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for (name, input) in all_inputs() {
        // Fewer rounds on the big keyring: the debug build of Sequoia is slow.
        let rounds = if input.len() > 20_000 { 40 } else { 400 };
        let mut described = 0;
        for _ in 0..rounds {
            let mut m = input.clone();
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(m.len());
                m[i] ^= 1 << rng.below(8);
            }
            described += usize::from(never_panics_and_never_lies(&m));
        }
        eprintln!("{name}: {rounds} bit-flipped copies, {described} still described (exactly)");
    }
}

proptest::proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
        never_panics_and_never_lies(&bytes);
    }


    #[test]
    fn random_packet_bodies_never_panic(tag in proptest::sample::select(vec![2u8, 6, 14, 13, 17]),
                                        version in proptest::sample::select(vec![4u8, 6, 3]),
                                        body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
        // Valid framing and version, random rest: exercises the key and signature
        // parsers past their first checks.
        let mut s = vec![0xc0 | tag, 0xff];
        s.extend_from_slice(&(body.len() as u32 + 1).to_be_bytes());
        s.push(version);
        s.extend_from_slice(&body);
        never_panics_and_never_lies(&s);
    }
}

#[test]
fn streams_of_too_many_packets_are_refused() {
    // Empty user IDs, two octets each: one more than the handler describes.
    let stream = [0xcd, 0x00].repeat(umd_pgp_handler::MAX_ITEMS + 1);
    let e = describe(&stream).expect_err("refused");
    assert!(e.contains("more than"), "{e}");
}

#[test]
fn a_stream_too_dense_for_the_managers_bounds_is_refused_naming_them() {
    // 300,000 empty user IDs: the handler can describe them, but decoded the
    // description would take some 40 MB of the manager's memory for a 600 KB
    // stream. The handler refuses it before answering, naming the bound.
    let stream = [0xcd, 0x00].repeat(300_000);
    let mut req = vec![PgpCommand::Describe as u8];
    req.extend_from_slice(&stream);
    let e = umd_pgp_handler::handle(&req, &mut Vec::new()).expect_err("refused");
    assert!(e.contains("too many small packets"), "{e}");
    // Ten thousand of them fit the constant part of the bound: described.
    let stream = [0xcd, 0x00].repeat(10_000);
    describe_and_check("ten thousand empty user IDs", &stream);
}

/// Found by the `pgp_describe` fuzz target: a legacy-format user ID with an
/// indeterminate length was described, and the manager (rightly) refused the
/// description, so an honest handler would have been shut down.
#[test]
fn an_indeterminate_length_on_a_used_packet_is_refused_like_a_partial_one() {
    let err = umd_pgp_handler::describe(&[0xb7, 0xff, 0xbc, 0x21]).unwrap_err();
    assert!(err.contains("indeterminate"), "{err}");
}
