//! Time is an argument: a verifier keeps only what holds at any time (checked
//! certificates, the results of their signatures' cryptographic checks) and
//! judges creation, expiry and which self-signature is current at the time
//! each call gives. A verifier built and used at T answers at T + 1 h what a
//! fresh one would.
//!
//! Keys and signatures are built here (`craft`), through the sandboxed handler.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use umd_pgp::cert::CertError;
use umd_pgp::policy::{Policy, Rejection};
use umd_pgp::verifier::Verifier;
use umd_pgp::verify::{BadReason, Status, Verdict};

mod craft;

const DATA: &[u8] = b"signed data\n";
const HOUR: u32 = 3600;

/// T: a round time a little in the past, so nothing depends on the clock.
fn t() -> u32 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as u32;
    now - now % 60 - 86_400
}

fn at(secs: u32) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::from(secs))
}

fn verdict(v: &Verifier, sig: &[u8], when: u32) -> Verdict {
    let o = v.verify_detached(sig, DATA, at(when)).expect("well-formed");
    assert_eq!(o.reports.len(), 1);
    o.reports.into_iter().next().unwrap().verdict
}

#[track_caller]
fn assert_bad(v: Verdict, why: impl Fn(&BadReason) -> bool) {
    assert!(matches!(&v, Verdict::Bad { reason, .. } if why(reason)), "expected bad, got {v:?}");
}

/// The key has expired at the reference time.
fn key_expired(r: &BadReason) -> bool {
    craft::key_not_valid(r, |w| matches!(w, CertError::Policy(Rejection::KeyExpired { .. })))
}

#[test]
fn a_verifier_built_at_t_accepts_a_document_signed_at_t_plus_one_hour_and_refuses_a_key_expired_since() {
    let t = t();
    // P never expires; Q expires 90 minutes after its creation at T - 1 h,
    // i.e. at T + 30 min.
    let (p, ring_p) = craft::primary(1, t - HOUR, 0x03);
    let expiry = (HOUR + HOUR / 2).to_be_bytes();
    let (q, ring_q) = craft::primary_with(2, t - HOUR, 0x03, vec![craft::sp(9, &expiry)]);
    let v = Verifier::new(&[[ring_p, ring_q].concat()], Policy::new()).unwrap();
    let by_p_later = craft::document(&p, t + HOUR, DATA);
    let by_q = craft::document(&q, t - 60, DATA);

    // At T: both certificates are described, checked and cached here.
    assert!(matches!(verdict(&v, &craft::document(&p, t - 60, DATA), t), Verdict::Good { .. }));
    assert!(matches!(verdict(&v, &by_q, t), Verdict::Good { .. }));
    // A document signed at T + 1 h is from the future at T, beyond the skew.
    assert_bad(verdict(&v, &by_p_later, t), |r| {
        matches!(r, BadReason::Policy(Rejection::SignatureInFuture { .. }))
    });
    // Within the 30-minute clock skew it is not.
    assert!(matches!(verdict(&v, &by_p_later, t + HOUR - 29 * 60), Verdict::Good { .. }));

    // At T + 1 h, the same verifier: the new document is good, Q has expired.
    assert!(matches!(verdict(&v, &by_p_later, t + HOUR), Verdict::Good { .. }));
    assert_bad(verdict(&v, &by_q, t + HOUR), key_expired);
    // Back at T + 29 min (times need not increase): Q is valid again.
    assert!(matches!(verdict(&v, &by_q, t + 29 * 60), Verdict::Good { .. }));
    // The certificates as listed follow the reference time too.
    let q_at = |when| v.certificate(&q.fpr, at(when)).unwrap();
    assert!(q_at(t).primary().valid().is_ok());
    assert!(matches!(q_at(t + HOUR).primary().valid(), Err(CertError::Policy(Rejection::KeyExpired { .. }))));
}

#[test]
fn the_current_self_signature_is_chosen_at_each_call_not_at_the_first() {
    let t = t();
    // Q is certified at T - 1 h with an expiry at T + 30 min, and again at
    // T + 2 h without one (its owner extended it).
    let (q, mut ring) =
        craft::primary_with(2, t - HOUR, 0x03, vec![craft::sp(9, &(HOUR + HOUR / 2).to_be_bytes())]);
    ring.extend(craft::sig_packet(&craft::self_certification(
        &q,
        t + 2 * HOUR,
        vec![craft::sp(27, &[0x03])],
    )));
    let v = Verifier::new(&[ring], Policy::new()).unwrap();
    let by_q = craft::document(&q, t - 60, DATA);
    assert!(matches!(verdict(&v, &by_q, t), Verdict::Good { .. }), "at T the first binding is current");
    // At T + 1 h the extension does not exist yet (it is beyond the skew):
    // the first binding still decides, and it has expired.
    assert_bad(verdict(&v, &by_q, t + HOUR), key_expired);
    // From T + 2 h (less the skew) the extension is current.
    assert!(matches!(verdict(&v, &by_q, t + 2 * HOUR), Verdict::Good { .. }));
    assert!(matches!(verdict(&v, &by_q, t + 2 * HOUR - 20 * 60), Verdict::Good { .. }));
}

#[test]
fn a_key_is_judged_at_the_reference_time_not_at_the_signature_creation_time() {
    // Whoever holds an expired key can backdate a signature: the creation
    // time is the signer's claim. A signature made while Q was valid is
    // refused once Q has expired.
    let t = t();
    let (q, ring) = craft::primary_with(2, t - 2 * HOUR, 0x03, vec![craft::sp(9, &HOUR.to_be_bytes())]);
    let v = Verifier::new(&[ring], Policy::new()).unwrap();
    let backdated = craft::document(&q, t - 2 * HOUR + 60, DATA);
    assert!(matches!(verdict(&v, &backdated, t - 2 * HOUR + 120), Verdict::Good { .. }));
    assert_bad(verdict(&v, &backdated, t), key_expired);
    let o = v.verify_detached(&backdated, DATA, at(t)).unwrap();
    assert_eq!(o.status(1), Status::Bad);
}

#[test]
fn a_signature_dated_after_its_key_expires_is_refused_even_within_the_clock_skew() {
    let t = t();
    // Q expires at T + 10 min; a document dated T + 20 min is within the skew
    // at T, but its key could not have made it then.
    let (q, ring) = craft::primary_with(2, t - HOUR, 0x03, vec![craft::sp(9, &(HOUR + 600).to_be_bytes())]);
    let v = Verifier::new(&[ring], Policy::new()).unwrap();
    assert!(matches!(verdict(&v, &craft::document(&q, t + 5 * 60, DATA), t), Verdict::Good { .. }));
    assert_bad(verdict(&v, &craft::document(&q, t + 20 * 60, DATA), t), |r| {
        matches!(r, BadReason::Policy(Rejection::SignedAfterKeyExpiry { .. }))
    });
}

#[test]
fn only_signature_packets_may_make_up_a_signature() {
    // gpgv refuses "ambiguous signature data": a literal data packet beside a
    // signature would be a signed message of its own. Markers are harmless.
    let t = t();
    let (p, ring) = craft::primary(1, t - HOUR, 0x03);
    let v = Verifier::new(&[ring], Policy::new()).unwrap();
    let sig = craft::document(&p, t - 60, DATA);
    let literal = craft::packet(11, b"b\0\0\0\0\0evil");
    let marker = craft::packet(10, b"PGP");
    for bad in [[sig.clone(), literal.clone()].concat(), [literal, sig.clone()].concat()] {
        let e = v.verify_detached(&bad, DATA, at(t)).unwrap_err();
        assert!(e.to_string().contains("(tag 11) among the signatures"), "{e}");
    }
    let o = v.verify_detached(&[marker, sig].concat(), DATA, at(t)).unwrap();
    assert_eq!(o.status(1), Status::Verified);
}
