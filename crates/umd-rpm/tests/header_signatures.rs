//! What a header signature tag may hold: exactly one binary OpenPGP signature
//! packet, a binary signature (type 0x00) over the header's bytes — what rpm
//! reads. Crafted packages put something else there, signed by the trusted
//! key over the right bytes: a text-mode signature (0x01), the signature
//! armored, a second packet beside it. Each is a bad signature. The same
//! rewriting with the original signature still verifies, so it is the
//! content, not the rewriting, that is refused.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;

use common::{corpus, rpm, verifier};
use umd_rpm::package::{Rejection, Trust};

const LEAD: usize = 96;
const RSAHEADER: u32 = 268;
const DSAHEADER: u32 = 267;

fn be32(b: &[u8], at: usize) -> usize {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap()) as usize
}

/// A package's parts: the signature header's index and data, and where the
/// main header starts.
struct Parts {
    index: Vec<u8>,
    data: Vec<u8>,
    main: usize,
}

fn parts(pkg: &[u8]) -> Parts {
    let (il, dl) = (be32(pkg, LEAD + 8), be32(pkg, LEAD + 12));
    let index = pkg[LEAD + 16..LEAD + 16 + 16 * il].to_vec();
    let data = pkg[LEAD + 16 + 16 * il..LEAD + 16 + 16 * il + dl].to_vec();
    let end = LEAD + 16 + 16 * il + dl;
    Parts { index, data, main: end + (8 - dl % 8) % 8 }
}

/// The bytes the header signature covers: the main header as stored.
fn signed_bytes(pkg: &[u8]) -> Vec<u8> {
    let m = parts(pkg).main;
    let (il, dl) = (be32(pkg, m + 8), be32(pkg, m + 12));
    pkg[m..m + 16 + 16 * il + dl].to_vec()
}

/// The value of signature tag `tag`.
fn value(pkg: &[u8], tag: u32) -> Vec<u8> {
    let p = parts(pkg);
    let e = p.index.chunks(16).find(|e| be32(e, 0) == tag as usize).expect("the tag");
    p.data[be32(e, 8)..be32(e, 8) + be32(e, 12)].to_vec()
}

/// `pkg` with signature tag `tag` holding `new`, laid out as rpm would: the
/// value goes at the end of the signature header's data, just before the
/// region trailer (the header must be all region), which moves after it; the
/// padding and the rest of the file follow.
fn with_value(pkg: &[u8], tag: u32, new: &[u8]) -> Vec<u8> {
    let p = parts(pkg);
    let mut index = p.index.clone();
    let trailer_at = be32(&index, 8);
    assert_eq!(trailer_at + 16, p.data.len(), "the region trailer ends the data");
    let mut data = p.data[..trailer_at].to_vec();
    data.extend_from_slice(new);
    data.extend_from_slice(&p.data[trailer_at..]);
    index[8..12].copy_from_slice(&((trailer_at + new.len()) as u32).to_be_bytes());
    let e = index.chunks_mut(16).find(|e| be32(e, 0) == tag as usize).expect("the tag");
    e[8..12].copy_from_slice(&(trailer_at as u32).to_be_bytes());
    e[12..16].copy_from_slice(&(new.len() as u32).to_be_bytes());
    let mut out = pkg[..LEAD + 8].to_vec();
    out.extend_from_slice(&((index.len() / 16) as u32).to_be_bytes());
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(&index);
    out.extend_from_slice(&data);
    out.resize(out.len() + (8 - data.len() % 8) % 8, 0);
    out.extend_from_slice(&pkg[p.main..]);
    out
}

/// gpg with the corpus's keys: signs `data` as `who` with `opts`.
fn gpg_sign(who: &str, opts: &[&str], data: &[u8]) -> Vec<u8> {
    // One gpg at a time: each run stops the agent it started (so none is left
    // behind), which would break another test's gpg in the middle.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let home = corpus().join("gnupg");
    let file = corpus().join(format!("to-sign-{who}-{}", opts.join("")));
    std::fs::write(&file, data).unwrap();
    let out = Command::new("gpg")
        .arg("--homedir")
        .arg(&home)
        .args(["--batch", "--quiet", "--pinentry-mode", "loopback", "--passphrase", ""])
        .args(["-u", &format!("{who}@umd.invalid"), "--detach-sign", "-o", "-"])
        .args(opts)
        .arg(&file)
        .stdin(Stdio::null())
        .output()
        .expect("running gpg");
    stop_agent(&home);
    assert!(out.status.success(), "gpg: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

fn stop_agent(home: &Path) {
    let _ = Command::new("gpgconf").arg("--homedir").arg(home).args(["--kill", "gpg-agent"]).status();
}

/// The signature type of one binary signature packet (old or new format).
fn sig_type(packet: &[u8]) -> u8 {
    let header_len = if packet[0] & 0x40 != 0 {
        match packet[1] {
            0..=191 => 2,
            192..=223 => 3,
            _ => 6,
        }
    } else {
        [2, 3, 5][(packet[0] & 3) as usize]
    };
    packet[header_len + 1]
}

#[track_caller]
fn assert_bad(pkg: &[u8], why: &str) {
    let r = verifier().package(pkg).unwrap();
    assert!(
        matches!(&r.trust, Trust::BadSignature { reason } if reason.contains(why)),
        "expected a bad signature ({why}), got {:?}",
        r.trust
    );
    assert!(matches!(r.rejection(), Some(Rejection::BadSignature { .. })));
}

/// The corpus's packages: (file, signing key, signature tag).
const SIGNED: [(&str, &str, u32); 2] =
    [("hello-rsa.rpm", "rsa", RSAHEADER), ("tools-ed.rpm", "ed", DSAHEADER)];

#[test]
fn the_rewriting_keeps_a_binary_signature_good() {
    for (name, who, tag) in SIGNED {
        let pkg = rpm(name);
        let same = with_value(&pkg, tag, &value(&pkg, tag));
        assert_ne!(same, pkg, "the value moved");
        assert!(matches!(verifier().package(&same).unwrap().trust, Trust::Verified { .. }), "{name}");
        // A fresh binary signature by the same key over the same bytes, too.
        let fresh = gpg_sign(who, &[], &signed_bytes(&pkg));
        assert!(matches!(
            verifier().package(&with_value(&pkg, tag, &fresh)).unwrap().trust,
            Trust::Verified { .. }
        ));
    }
}

#[test]
fn a_text_mode_header_signature_is_refused() {
    for (name, who, tag) in SIGNED {
        let pkg = rpm(name);
        let text = gpg_sign(who, &["--textmode"], &signed_bytes(&pkg));
        assert_eq!(sig_type(&text), 0x01, "{name}: gpg made a text-mode signature");
        assert_bad(&with_value(&pkg, tag, &text), "text mode");
    }
}

#[test]
fn an_armored_header_signature_is_refused() {
    for (name, who, tag) in SIGNED {
        let pkg = rpm(name);
        let armored = gpg_sign(who, &["--armor"], &signed_bytes(&pkg));
        assert!(armored.starts_with(b"-----BEGIN PGP SIGNATURE-----"));
        assert_bad(&with_value(&pkg, tag, &armored), "armored");
    }
}

#[test]
fn a_header_signature_tag_with_more_than_one_packet_is_refused() {
    for (name, _, tag) in SIGNED {
        let pkg = rpm(name);
        let sig = value(&pkg, tag);
        // The same good signature twice.
        assert_bad(&with_value(&pkg, tag, &[sig.clone(), sig.clone()].concat()), "2 packets");
        // A marker packet (tag 10, "PGP") before it.
        let marker = [0xca, 0x03, b'P', b'G', b'P'];
        assert_bad(&with_value(&pkg, tag, &[&marker[..], &sig].concat()), "2 packets");
        // Not a signature at all.
        assert_bad(&with_value(&pkg, tag, &marker), "not a signature");
    }
}
