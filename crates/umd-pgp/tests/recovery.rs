//! Recovery of the `pgp` driver: an idle handler that died is replaced before
//! the next request; a request whose handler died under it is sent once more
//! to a fresh handler (the driver is idempotent: a description depends only on
//! the bytes); a handler that dies under every request is one clear error
//! after exactly one retry. The manager's side of this is tested in
//! `crates/umd/tests/recovery.rs`.

use std::time::Duration;

use umd::test_support::{
    death_at_call_time_is_recovered, idle_death_is_noticed, kill_during_request, the_handler,
};
use umd_pgp::driver::PgpDriver;
use umd_pgp::verifier::Verifier;
use umd_pgp::verify::Status;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

fn keyring() -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}/debian-archive-keyring.gpg")).expect("the keyring fixture")
}

fn liar(args: &[&str]) -> PgpDriver {
    PgpDriver::with_program(
        || umd::Program::runtime_blob("umd-pgp-liar-handler", umd_blobs::PGP_LIAR_HANDLER),
        args.iter().map(|a| a.to_string()).collect(),
        Duration::from_secs(10),
    )
}

fn describe(pgp: &PgpDriver, stream: &[u8]) -> Result<(), umd::Error> {
    match pgp.describe(stream) {
        Ok(packets) => {
            assert!(!packets.is_empty());
            Ok(())
        }
        Err(umd_pgp::driver::DescribeError::Driver(e)) => Err(e),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn the_pgp_driver_is_idempotent() {
    assert!(PgpDriver::new(Duration::from_secs(5)).driver().config().idempotent);
}

#[test]
fn an_idle_pgp_handler_that_died_is_replaced_before_the_next_request() {
    let pgp = PgpDriver::new(Duration::from_secs(10));
    let k = keyring();
    idle_death_is_noticed(pgp.driver(), &|| describe(&pgp, &k));
}

#[test]
fn a_pgp_handler_killed_just_before_a_call_costs_nothing() {
    let pgp = PgpDriver::new(Duration::from_secs(10));
    let k = keyring();
    death_at_call_time_is_recovered(pgp.driver(), &|| describe(&pgp, &k));
}

#[test]
fn a_pgp_handler_killed_under_a_request_is_replaced_and_the_request_succeeds_on_the_retry() {
    let pgp = liar(&["slow", "300"]);
    let k = keyring();
    let pid = the_handler(pgp.driver(), &|| describe(&pgp, &k));
    let before = pgp.driver().stats();
    kill_during_request(pid, || describe(&pgp, &k)).expect("succeeds on the retry");
    let s = pgp.driver().stats();
    assert_eq!((s.requests - before.requests, s.failures, s.retries, s.restarts), (1, 0, 1, 1), "{s:?}");
}

#[test]
fn a_pgp_handler_that_dies_under_every_request_is_one_clear_error_after_exactly_one_retry() {
    let pgp = liar(&["crash"]);
    let e = describe(&pgp, &keyring()).expect_err("every handler aborts");
    let text = e.to_string();
    assert!(text.starts_with("driver pgp: request 1: "), "{text}");
    assert!(text.contains("SIGABRT") && text.contains("one retry"), "{text}");
    assert!(!e.retryable() && e.delivered(), "{text}");
    let s = pgp.driver().stats();
    assert_eq!((s.requests, s.failures, s.retries, s.starts, s.restarts), (1, 1, 1, 2, 1), "{s:?}");
}

#[test]
fn a_verifier_whose_handlers_were_killed_verifies_the_next_document() {
    let pgp = PgpDriver::new(Duration::from_secs(10));
    let v = Verifier::with_driver(pgp.clone(), &[keyring()], Default::default()).expect("keyring");
    let doc = std::fs::read(format!("{FIXTURES}/bookworm-security_InRelease")).expect("fixture");
    assert_eq!(
        v.verify_cleartext(&doc, std::time::SystemTime::now()).expect("verifies").status(1),
        Status::Verified
    );
    assert_eq!(pgp.driver().kill_handlers(), 1);
    assert_eq!(
        v.verify_cleartext(&doc, std::time::SystemTime::now()).expect("verifies again").status(1),
        Status::Verified
    );
    let s = pgp.driver().stats();
    assert_eq!((s.kills, s.restarts, s.failures), (1, 1, 0), "{s:?}");
}
