//! Verification cost is bounded by the data: a document with more signatures
//! than [`MAX_SIGNATURES`] is refused before anything is hashed, a signature
//! is hashed for only after its key passed every cheap check, and each
//! distinct prefix (hash algorithm and salt) costs one pass over the data.
//! Passes are counted by `verify::document_passes` (this thread's).
//!
//! v6 certificates and signatures are made with Sequoia (`umd-testkeys`, a
//! dev-dependency only), with the salts the tests choose.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use umd_pgp::driver::PgpDriver;
use umd_pgp::verifier::{Verifier, VerifyError};
use umd_pgp::verify::{document_passes, BadReason, Status, Verdict, MAX_SIGNATURES};
use umd_testkeys::{CipherSuite, V6};

/// A v6 certificate: an Ed25519 primary for certification, an Ed25519
/// signing subkey.
fn v6() -> &'static V6 {
    static V6: OnceLock<V6> = OnceLock::new();
    V6.get_or_init(|| umd_testkeys::v6(CipherSuite::Cv25519, "cost <cost@example.org>", false))
}

/// A detached v6 signature over `doc` by the signing subkey, with this salt
/// (32 octets: SHA2-512).
fn sig(doc: &[u8], salt: u8) -> Vec<u8> {
    umd_testkeys::sign(&v6().signer, doc, Some(vec![salt; 32]))
}

fn verifier() -> Verifier {
    let driver = PgpDriver::new(Duration::from_secs(30));
    Verifier::with_driver(driver, &[v6().keyring.clone()], Default::default()).unwrap()
}

#[test]
fn ten_thousand_signatures_naming_a_keyring_key_are_refused_before_any_hashing() {
    let doc = b"a small document".to_vec();
    let one = sig(&doc, 1);
    let stream = one.repeat(10_000);
    let v = verifier();
    let before = document_passes();
    let e = v.verify_detached(&stream, &doc, SystemTime::now()).unwrap_err();
    assert!(matches!(e, VerifyError::TooManySignatures { count: 10_000 }), "{e}");
    assert_eq!(document_passes(), before, "the document was hashed");
    // Refused by the manager's own framing walk: the handler was not even
    // asked to describe them.
    assert_eq!(v.driver().driver().stats().requests, 0);
    // At the limit, the same signature is accepted: one pass for all.
    let at_limit = one.repeat(MAX_SIGNATURES);
    let before = document_passes();
    let o = v.verify_detached(&at_limit, &doc, SystemTime::now()).unwrap();
    assert_eq!(o.status(MAX_SIGNATURES), Status::Verified);
    assert_eq!(document_passes() - before, 1);
}

/// A 10 MiB document and `MAX_SIGNATURES` signatures over it, with the salt
/// each one gets.
fn at_the_limit(salts: impl Fn(usize) -> u8) -> (Vec<u8>, Vec<u8>) {
    let doc: Vec<u8> = (0..10u32 << 20).map(|i| (i % 251) as u8).collect();
    let stream: Vec<u8> = (0..MAX_SIGNATURES).flat_map(|i| sig(&doc, salts(i))).collect();
    (doc, stream)
}

#[test]
fn signatures_at_the_limit_with_distinct_salts_cost_one_pass_each_at_most() {
    let (doc, stream) = at_the_limit(|i| i as u8);
    let v = verifier();
    let before = document_passes();
    let o = v.verify_detached(&stream, &doc, SystemTime::now()).unwrap();
    let passes = document_passes() - before;
    assert_eq!(o.status(MAX_SIGNATURES), Status::Verified, "{:?}", o.reports);
    assert!(passes <= MAX_SIGNATURES as u64, "{passes} passes for {MAX_SIGNATURES} signatures");
    assert_eq!(passes, MAX_SIGNATURES as u64, "each distinct salt is one pass");
}

#[test]
fn signatures_at_the_limit_sharing_a_salt_cost_one_pass() {
    let (doc, stream) = at_the_limit(|_| 7);
    let v = verifier();
    let before = document_passes();
    let o = v.verify_detached(&stream, &doc, SystemTime::now()).unwrap();
    assert_eq!(o.status(MAX_SIGNATURES), Status::Verified, "{:?}", o.reports);
    assert_eq!(document_passes() - before, 1);
}

#[test]
fn a_signature_by_a_key_not_marked_for_signing_costs_no_pass() {
    // The primary key certifies only: its signature over a document fails a
    // cheap check, and the document is never hashed for it.
    let doc: Vec<u8> = vec![b'x'; 1 << 20];
    let stream = umd_testkeys::sign(&v6().primary(), &doc, Some(vec![3; 32]));
    let v = verifier();
    let before = document_passes();
    let o = v.verify_detached(&stream, &doc, SystemTime::now()).unwrap();
    assert_eq!(document_passes(), before, "hashed for a key that may not sign");
    match &o.reports[0].verdict {
        Verdict::Bad { reason, .. } => assert!(matches!(reason, BadReason::NotForSigning(_)), "{reason}"),
        other => panic!("{other:?}"),
    }
}
