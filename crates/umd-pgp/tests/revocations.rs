//! Revocations, by the policy's rule (`Policy`, "Revocations"): a revocation
//! that verifies — made by the primary key over what it revokes, with a hash
//! the manager can compute — counts, whatever else it says. Each kind that the
//! policy would refuse in any other signature is tested: SHA-1, an unknown
//! critical subpacket, a date in the future (slightly, and far), an expiry
//! that has passed, a "superseded" reason; for the key, a subkey and a user
//! ID. And what does not count: a revocation that does not verify (made by
//! another key, as a designated revoker's would be, or altered).
//!
//! Before this rule, each of these was dropped silently and the key stayed
//! valid.

use std::time::{SystemTime, UNIX_EPOCH};

use umd_pgp::cert::CertError;
use umd_pgp::packet::tag;
use umd_pgp::policy::Policy;
use umd_pgp::verifier::Verifier;
use umd_pgp::verify::{BadReason, Verdict};
use umd_pgp_wire::Subpacket;

mod craft;

use craft::{critical, sp};

const DATA: &[u8] = b"signed data\n";

fn now() -> u32 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as u32
}

/// What a revocation looks like in a test: its hash, creation time and extra
/// hashed subpackets.
struct Rev {
    hash: u8,
    created: u32,
    extra: Vec<Subpacket>,
}

fn rev(created: u32) -> Rev {
    Rev { hash: 8, created, extra: vec![sp(29, &[0x02])] }
}

/// The verdict on a document signed by the key (primary `P`, or its signing
/// subkey) an hour ago, with `revocation` added where `place` says.
fn verdict_with(place: Place, r: Option<Rev>) -> Verdict {
    let t0 = now() - 7200;
    let p = craft::key(7, t0);
    let s = craft::key(8, t0);
    let over_key = |h: &mut umd_pgp::crypto::SigHasher| h.key(&p.body).unwrap();
    let over_sub = |h: &mut umd_pgp::crypto::SigHasher| {
        h.key(&p.body).unwrap();
        h.key(&s.body).unwrap();
    };
    let over_uid = |h: &mut umd_pgp::crypto::SigHasher| {
        h.key(&p.body).unwrap();
        h.user_id(craft::UID).unwrap();
    };
    let revocation = r.map(|r| match place {
        Place::Key => craft::sign_with(&p, 0x20, r.hash, r.created, r.extra, over_key),
        Place::Subkey => craft::sign_with(&p, 0x28, r.hash, r.created, r.extra, over_sub),
        Place::UserId => craft::sign_with(&p, 0x30, r.hash, r.created, r.extra, over_uid),
        Place::KeyByAnother => {
            let other = craft::key(9, t0);
            craft::sign_with(&other, 0x20, r.hash, r.created, r.extra, over_key)
        }
    });
    let mut ring = craft::packet(tag::PUBLIC_KEY, &p.body);
    if let (Some(r), Place::Key | Place::KeyByAnother) = (&revocation, place) {
        ring.extend(craft::sig_packet(r));
    }
    ring.extend(craft::packet(tag::USER_ID, craft::UID));
    ring.extend(craft::sig_packet(&craft::self_certification(&p, t0, vec![sp(27, &[0x03])])));
    if let (Some(r), Place::UserId) = (&revocation, place) {
        ring.extend(craft::sig_packet(r));
    }
    // A signing subkey, bound with its back-signature (Sequoia's layout).
    let back = craft::sign(&s, 0x19, t0, vec![], over_sub);
    let binding = craft::sign(&p, 0x18, t0, vec![sp(27, &[0x02]), craft::embed(&back)], over_sub);
    ring.extend(craft::packet(tag::PUBLIC_SUBKEY, &s.body));
    ring.extend(craft::sig_packet(&binding));
    if let (Some(r), Place::Subkey) = (&revocation, place) {
        ring.extend(craft::sig_packet(r));
    }
    let signer = if matches!(place, Place::Subkey) { &s } else { &p };
    let doc = craft::document(signer, now() - 3600, DATA);
    let v = Verifier::new(&[ring], Policy::new()).unwrap();
    let o = v.verify_detached(&doc, DATA, SystemTime::now()).unwrap();
    assert_eq!(o.reports.len(), 1);
    o.reports.into_iter().next().unwrap().verdict
}

#[derive(Clone, Copy, Debug)]
enum Place {
    Key,
    Subkey,
    UserId,
    KeyByAnother,
}

#[track_caller]
fn assert_revoked(place: Place, r: Rev) {
    let v = verdict_with(place, Some(r));
    // A revoked key or subkey is revoked; with its only user ID revoked, the
    // primary key has no valid self-signature left.
    let expected = |why: &CertError| match place {
        Place::UserId => matches!(why, CertError::NoSelfSignature),
        _ => matches!(why, CertError::Revoked(_)),
    };
    assert!(
        matches!(&v, Verdict::Bad { reason: BadReason::KeyNotValid { why, .. }, .. } if expected(why)),
        "{place:?}: expected the key refused as revoked, got {v:?}"
    );
}

#[test]
fn without_a_revocation_the_test_keys_are_good() {
    for place in [Place::Key, Place::Subkey, Place::UserId] {
        assert!(matches!(verdict_with(place, None), Verdict::Good { .. }), "{place:?}");
    }
}

#[test]
fn an_ordinary_revocation_revokes_key_subkey_and_user_id() {
    for place in [Place::Key, Place::Subkey] {
        assert_revoked(place, rev(now() - 600));
    }
    // The only user ID revoked: the primary key has no valid binding left.
    assert_revoked(Place::UserId, rev(now() - 600));
}

#[test]
fn a_sha1_revocation_revokes() {
    // SHA-1 is refused for every other signature made after 2023-02-01.
    for place in [Place::Key, Place::Subkey, Place::UserId] {
        assert_revoked(place, Rev { hash: 2, ..rev(now() - 600) });
    }
}

#[test]
fn a_revocation_with_an_unknown_critical_subpacket_revokes() {
    for place in [Place::Key, Place::Subkey, Place::UserId] {
        let r = Rev {
            extra: vec![sp(29, &[0x02]), critical(100, b"?"), critical(20, b"\x80\0\0\0\0\x03\0\x01a@bx")],
            ..rev(now() - 600)
        };
        assert_revoked(place, r);
    }
}

#[test]
fn a_revocation_dated_in_the_future_revokes_now() {
    for place in [Place::Key, Place::Subkey, Place::UserId] {
        assert_revoked(place, rev(now() + 60)); // slightly: within the clock skew
        assert_revoked(place, rev(now() + 86_400)); // a day ahead
    }
}

#[test]
fn an_expired_or_soft_revocation_still_revokes() {
    let expired = Rev { extra: vec![sp(3, &60u32.to_be_bytes())], ..rev(now() - 600) };
    assert_revoked(Place::Key, expired);
    let superseded = Rev { extra: vec![sp(29, &[0x01, b'n', b'e', b'w'])], ..rev(now() - 600) };
    assert_revoked(Place::Key, superseded);
    let before_the_key = rev(now() - 3 * 86_400);
    assert_revoked(Place::Subkey, before_the_key);
}

#[test]
fn a_revocation_that_does_not_verify_does_not_count() {
    // Made by another key (as a designated revoker's would be): the key stays good.
    assert!(matches!(verdict_with(Place::KeyByAnother, Some(rev(now() - 600))), Verdict::Good { .. }));
}

#[test]
fn the_reason_is_reported() {
    let v = verdict_with(Place::Key, Some(Rev { hash: 2, ..rev(now() - 600) }));
    assert!(
        matches!(&v, Verdict::Bad { reason: BadReason::KeyNotValid { why: CertError::Revoked(r), .. }, .. }
            if r.starts_with("reason 2")),
        "{v:?}"
    );
}
