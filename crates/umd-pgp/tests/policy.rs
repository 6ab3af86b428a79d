//! The strict default policy, decision by decision.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use umd_pgp::crypto::{Curve, HashAlgo, KeyKind};
use umd_pgp::packet::CheckedSig;
use umd_pgp::policy::*;
use umd_pgp_wire::{Field, Key, Sig, Subpacket};

mod craft;

/// `s` as the manager has it: through `packet::check`.
fn checked(s: &Sig) -> CheckedSig {
    craft::checked_sig(s).expect("a signature that checks")
}

const NOW: u64 = 1_700_000_000; // 2023-11-14
const BEFORE_SHA1_CUTOFF: u32 = 1_600_000_000; // 2020-09-13
const AFTER_SHA1_CUTOFF: u32 = 1_690_000_000; // 2023-07-22

fn policy() -> Policy {
    Policy::new()
}

/// The reference time of these tests.
fn at() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW)
}

fn sp(typ: u8, critical: bool, body: &[u8]) -> Subpacket {
    Subpacket { len_octets: 1, critical, typ, body: body.to_vec(), embedded: None }
}

fn sig(hashed: Vec<Subpacket>) -> Sig {
    Sig {
        version: 4,
        sig_type: 0,
        pk_algo: 27,
        hash_algo: 8,
        hashed,
        unhashed: vec![],
        left16: [0; 2],
        salt: vec![],
        values: vec![Field::Raw(vec![1; 64])],
    }
}

fn created(t: u32) -> Subpacket {
    sp(2, false, &t.to_be_bytes())
}

fn facts(hashed: Vec<Subpacket>) -> SigFacts {
    SigFacts::from_sig(&checked(&sig(hashed))).unwrap()
}

#[test]
fn rsa_under_2048_bits_is_refused_and_2048_accepted() {
    let p = policy();
    assert_eq!(
        p.check_key(KeyKind::Rsa { bits: 2047 }),
        Err(Rejection::RsaTooShort { bits: 2047, min: 2048 })
    );
    assert!(p.check_key(KeyKind::Rsa { bits: 2048 }).is_ok());
    assert!(p.check_key(KeyKind::Rsa { bits: 4096 }).is_ok());
}

#[test]
fn every_supported_curve_is_accepted_by_default_and_can_be_removed() {
    let mut p = policy();
    for kind in [
        KeyKind::Ecdsa(Curve::NistP256),
        KeyKind::Ecdsa(Curve::NistP384),
        KeyKind::Ecdsa(Curve::NistP521),
        KeyKind::EdDsaLegacy,
        KeyKind::Ed25519,
    ] {
        assert!(p.check_key(kind).is_ok(), "{kind}");
    }
    p.algorithms.retain(|a| *a != Algorithm::Ecdsa(Curve::NistP256));
    assert_eq!(
        p.check_key(KeyKind::Ecdsa(Curve::NistP256)),
        Err(Rejection::Algorithm(KeyKind::Ecdsa(Curve::NistP256)))
    );
}

#[test]
fn sha2_hashes_are_accepted_sha224_and_unknown_are_not() {
    let p = policy();
    for id in [8, 9, 10] {
        assert!(p.check_hash(SigClass::Document, id, Some(AFTER_SHA1_CUTOFF)).is_ok());
    }
    assert_eq!(
        p.check_hash(SigClass::Document, 11, None),
        Err(Rejection::Hash { hash: HashAlgo::Sha224, class: SigClass::Document })
    );
    assert_eq!(p.check_hash(SigClass::Document, 1, None), Err(Rejection::UnknownHash(1)));
}

#[test]
fn sha1_document_signatures_are_refused_unless_allowed() {
    let mut p = policy();
    assert_eq!(
        p.check_hash(SigClass::Document, 2, Some(BEFORE_SHA1_CUTOFF)),
        Err(Rejection::Sha1 { class: SigClass::Document, created: Some(BEFORE_SHA1_CUTOFF) })
    );
    p.allow_sha1_data_signatures = true;
    assert!(p.check_hash(SigClass::Document, 2, Some(AFTER_SHA1_CUTOFF)).is_ok());
}

#[test]
fn sha1_self_signatures_are_accepted_only_before_2023_02_01() {
    let mut p = policy();
    assert!(p.check_hash(SigClass::SelfSignature, 2, Some(BEFORE_SHA1_CUTOFF)).is_ok());
    assert!(p.check_hash(SigClass::SelfSignature, 2, Some(AFTER_SHA1_CUTOFF)).is_err());
    assert!(p.check_hash(SigClass::SelfSignature, 2, None).is_err());
    // Third parties do not choose every hashed byte: collisions apply.
    assert!(p.check_hash(SigClass::ThirdPartyCertification, 2, Some(BEFORE_SHA1_CUTOFF)).is_err());
    p.sha1_self_signatures_before = None;
    assert!(p.check_hash(SigClass::SelfSignature, 2, Some(BEFORE_SHA1_CUTOFF)).is_err());
}

#[test]
fn signature_classes_follow_the_type_and_the_issuer() {
    assert_eq!(SigClass::of(0x00, false), SigClass::Document);
    assert_eq!(SigClass::of(0x01, true), SigClass::Document);
    assert_eq!(SigClass::of(0x13, true), SigClass::SelfSignature);
    assert_eq!(SigClass::of(0x13, false), SigClass::ThirdPartyCertification);
    assert_eq!(SigClass::of(0x18, false), SigClass::SelfSignature);
    assert_eq!(SigClass::of(0x99, true), SigClass::Document);
}

#[test]
fn eddsa_needs_a_256_bit_digest_even_if_sha224_is_allowed() {
    let mut p = policy();
    p.hashes.push(HashAlgo::Sha224);
    assert!(p.check_hash(SigClass::Document, 11, None).is_ok());
    assert_eq!(
        p.check_hash_for_key(KeyKind::Ed25519, 11),
        Err(Rejection::HashTooShortForKey { hash: HashAlgo::Sha224, key: KeyKind::Ed25519 })
    );
    assert!(p.check_hash_for_key(KeyKind::Rsa { bits: 3072 }, 11).is_ok());
}

#[test]
fn unknown_critical_subpackets_are_refused_informational_ones_tolerated() {
    let p = policy();
    assert!(p.check_critical(&facts(vec![created(1), sp(100, false, b"x")])).is_ok());
    assert!(p.check_critical(&facts(vec![created(1), sp(21, true, &[8])])).is_ok());
    assert!(p.check_critical(&facts(vec![sp(2, true, &[0, 0, 0, 1]), sp(27, true, &[1])])).is_ok());
    for typ in [100, 20, 6, 5, 12, 31] {
        assert_eq!(
            p.check_critical(&facts(vec![created(1), sp(typ, true, b"xxxx")])),
            Err(Rejection::UnknownCriticalSubpacket { typ })
        );
    }
}

#[test]
fn hashed_subpackets_are_read_and_duplicates_or_bad_bodies_refused() {
    let fpr = [&[4u8][..], &[0xab; 20]].concat();
    let f = facts(vec![
        created(10),
        sp(3, false, &100u32.to_be_bytes()),
        sp(9, false, &200u32.to_be_bytes()),
        sp(16, false, &[1, 2, 3, 4, 5, 6, 7, 8]),
        sp(33, false, &fpr),
        sp(25, false, &[1]),
        sp(29, false, b"\x02gone"),
    ]);
    assert_eq!((f.created, f.expires_after, f.key_expires_after), (Some(10), Some(100), Some(200)));
    assert_eq!(f.issuer_key_ids[0].to_string(), "0102030405060708");
    assert_eq!(f.issuer_fingerprints, vec![IssuerFingerprint { version: 4, bytes: vec![0xab; 20] }]);
    assert_eq!((f.primary_user_id, f.revocation_reason), (Some(true), Some((2, b"gone".to_vec()))));

    let dup = SigFacts::from_sig(&checked(&sig(vec![created(1), created(2)])));
    assert_eq!(dup, Err(Rejection::DuplicateSubpacket { typ: 2 }));
    for bad in [sp(2, false, &[0, 1]), sp(16, false, &[1]), sp(33, false, &[6, 1, 2]), sp(25, false, &[])] {
        assert!(matches!(
            SigFacts::from_sig(&checked(&sig(vec![bad]))),
            Err(Rejection::MalformedSubpacket { .. })
        ));
    }
    // An embedded signature described without its fields does not even pass
    // the check.
    assert!(craft::checked_sig(&sig(vec![sp(32, false, &[4])])).is_none());
}

#[test]
fn issuer_hints_come_from_both_areas_but_facts_only_from_the_hashed_one() {
    let mut s = sig(vec![created(1)]);
    s.unhashed = vec![sp(16, false, &[9; 8]), created(999)];
    let s = checked(&s);
    assert_eq!(SigFacts::from_sig(&s).unwrap().created, Some(1));
    assert!(SigFacts::from_sig(&s).unwrap().issuer_key_ids.is_empty());
    let (ids, fprs) = issuer_hints(&s);
    assert_eq!((ids.len(), fprs.len()), (1, 0));
}

#[test]
fn signature_times_are_checked_against_the_reference_time() {
    let mut p = policy();
    p.clock_skew = Duration::ZERO;
    let now = NOW as u32;
    let key_created = now - 1000;
    assert!(p.check_times(&facts(vec![created(now - 10)]), key_created, None, at()).is_ok());
    assert_eq!(p.check_times(&facts(vec![]), key_created, None, at()), Err(Rejection::MissingCreationTime));
    assert_eq!(
        p.check_times(&facts(vec![created(now + 1)]), key_created, None, at()),
        Err(Rejection::SignatureInFuture { created: NOW + 1, at: NOW, skew: 0 })
    );
    // Expired exactly at creation + expiry.
    let exp = |e: u32| facts(vec![created(now - 100), sp(3, false, &e.to_be_bytes())]);
    assert_eq!(
        p.check_times(&exp(100), key_created, None, at()),
        Err(Rejection::SignatureExpired { created: NOW - 100, expired: NOW, at: NOW })
    );
    assert!(p.check_times(&exp(101), key_created, None, at()).is_ok());
    assert!(p.check_times(&exp(0), key_created, None, at()).is_ok(), "0 means never");
    assert_eq!(
        p.check_times(&facts(vec![created(key_created - 1)]), key_created, None, at()),
        Err(Rejection::SignatureBeforeKey {
            sig_created: u64::from(key_created) - 1,
            key_created: u64::from(key_created)
        })
    );
    // The same signatures, judged an hour later: what was in the future is
    // not any more; what was alive has expired.
    let later = at() + Duration::from_secs(3600);
    assert!(p.check_times(&facts(vec![created(now + 1)]), key_created, None, later).is_ok());
    assert!(matches!(
        p.check_times(&exp(101), key_created, None, later),
        Err(Rejection::SignatureExpired { at, .. }) if at == NOW + 3600
    ));
}

#[test]
fn a_signature_from_the_future_is_accepted_within_thirty_minutes_of_clock_skew() {
    let p = policy();
    assert_eq!(p.clock_skew, Duration::from_secs(30 * 60), "Sequoia's CLOCK_SKEW_TOLERANCE");
    let now = NOW as u32;
    let key_created = now - 1000;
    for ahead in [1, 60, 29 * 60, 30 * 60] {
        assert!(
            p.check_times(&facts(vec![created(now + ahead)]), key_created, None, at()).is_ok(),
            "{ahead}"
        );
    }
    assert_eq!(
        p.check_times(&facts(vec![created(now + 30 * 60 + 1)]), key_created, None, at()),
        Err(Rejection::SignatureInFuture { created: NOW + 1801, at: NOW, skew: 1800 })
    );
    // Expiry gets no tolerance: a key expired a second ago is expired.
    let f = facts(vec![created(now - 10)]);
    assert!(p.check_times(&f, key_created, Some(999), at()).is_err());
}

#[test]
fn expired_keys_are_refused() {
    let p = policy();
    let now = NOW as u32;
    let f = facts(vec![created(now - 10)]);
    assert_eq!(
        p.check_times(&f, now - 1000, Some(1000), at()),
        Err(Rejection::KeyExpired { key_created: NOW - 1000, expired: NOW, at: NOW })
    );
    assert!(p.check_times(&f, now - 1000, Some(1001), at()).is_ok());
    assert!(p.check_times(&f, now - 1000, Some(0), at()).is_ok());
    // Valid a second earlier.
    assert!(p.check_times(&f, now - 1000, Some(1000), at() - Duration::from_secs(1)).is_ok());
}

#[test]
fn revocations_count_whatever_their_hash_critical_subpackets_and_times() {
    let p = policy();
    let mut rev =
        sig(vec![created(NOW as u32 + 86_400), sp(3, false, &1u32.to_be_bytes()), sp(100, true, b"?")]);
    rev.sig_type = 0x20;
    for hash in [2, 8, 9, 10, 11] {
        rev.hash_algo = hash; // SHA-1 and SHA2-224 included
        assert!(p.check_revocation(&checked(&rev)).is_ok(), "hash {hash}");
    }
    // A hash the manager cannot compute: the revocation cannot be verified.
    rev.hash_algo = 1; // MD5
    assert_eq!(p.check_revocation(&checked(&rev)), Err(Rejection::UnknownHash(1)));
}

#[test]
fn times_in_messages_are_rfc3339_utc() {
    let e = Rejection::KeyExpired { key_created: 1_600_000_000, expired: 1_700_000_000, at: 1_796_405_984 };
    assert_eq!(
        e.to_string(),
        "key created at 2020-09-13T12:26:40Z expired at 2023-11-14T22:13:20Z (reference time 2026-12-04T17:39:44Z)"
    );
    let e = Rejection::SignatureInFuture { created: 1_796_405_984, at: 1_796_405_981, skew: 1800 };
    assert_eq!(
        e.to_string(),
        "signature created at 2026-12-04T17:39:44Z is in the future (reference time 2026-12-04T17:39:41Z, \
         tolerated clock skew 1800 s)"
    );
    let e = Rejection::Sha1 { class: SigClass::Document, created: Some(1_600_000_000) };
    assert_eq!(
        e.to_string(),
        "SHA-1 is not accepted for document signatures (signature created at 2020-09-13T12:26:40Z)"
    );
    assert_eq!(utc(u64::MAX).to_string(), "9999-12-31T23:59:59Z", "clamped, never a formatting error");
}

#[test]
fn rfc9580_v6_sample_direct_key_signature_passes_the_policy() {
    // RFC 9580 §A.3: critical creation time and key flags, preferences, issuer fingerprint.
    let hashed = vec![
        sp(2, true, &[0x63, 0x87, 0x7f, 0xe3]),
        sp(11, false, &[9, 7]),
        sp(21, false, &[10, 14, 8, 12]),
        sp(22, false, &[0]),
        sp(27, true, &[3]),
        sp(30, false, &[9]),
        sp(33, false, &[&[6u8][..], &[0xcb; 32]].concat()),
        sp(39, false, &[9, 2, 7, 2]),
    ];
    let s = Sig {
        version: 6,
        sig_type: 0x1f,
        pk_algo: 27,
        hash_algo: 10,
        hashed,
        unhashed: vec![],
        left16: [0; 2],
        salt: vec![0; 32],
        values: vec![Field::Raw(vec![1; 64])],
    };
    let s = checked(&s);
    let key = Key { version: 6, created: 0x6387_7fe3, algo: 27, material: vec![Field::Raw(vec![0; 32])] };
    let key = craft::checked_key(&key).expect("a key that checks");
    let f =
        policy().check_signature(&key, KeyKind::Ed25519, None, &s, SigClass::SelfSignature, at()).unwrap();
    assert!(f.key_flags.unwrap().certify());
    assert_eq!(f.critical, vec![2, 27]);
    // Before the key existed, the same signature is from the future.
    let early = UNIX_EPOCH + Duration::from_secs(0x6387_7fe3) - policy().clock_skew - Duration::from_secs(1);
    assert!(matches!(
        policy().check_signature(&key, KeyKind::Ed25519, None, &s, SigClass::SelfSignature, early),
        Err(Rejection::SignatureInFuture { .. })
    ));
}

#[test]
fn rejections_name_their_reason() {
    let msg = Rejection::RsaTooShort { bits: 1024, min: 2048 }.to_string();
    assert!(msg.contains("1024") && msg.contains("2048"), "{msg}");
    let msg = Rejection::UnknownCriticalSubpacket { typ: 20 }.to_string();
    assert!(msg.contains("20"), "{msg}");
    let msg = Rejection::Sha1 { class: SigClass::Document, created: Some(5) }.to_string();
    assert!(msg.contains("SHA-1") && msg.contains("document"), "{msg}");
}
