//! Recovery of the `rpm` driver: an idle handler that died is replaced before
//! the next request; a request whose handler died under it is sent once more
//! to a fresh handler (the driver is idempotent: a description depends only on
//! the bytes); a handler that dies under every request is one clear error
//! after exactly one retry. The manager's side of this is tested in
//! `crates/umd/tests/recovery.rs`.

mod common;

use std::time::Duration;

use common::rpm;
use umd::test_support::{
    death_at_call_time_is_recovered, idle_death_is_noticed, kill_during_request, the_handler,
};
use umd_rpm::driver::{DescribeError, RpmDriver};
use umd_rpm_wire::Command;

fn liar(args: &[&str]) -> RpmDriver {
    RpmDriver::with_program(
        || umd::Program::runtime_blob("umd-rpm-liar-handler", umd_blobs::RPM_LIAR_HANDLER),
        args.iter().map(|a| a.to_string()).collect(),
        Duration::from_secs(10),
    )
}

fn describe(driver: &RpmDriver, package: &[u8]) -> Result<(), umd::Error> {
    match driver.describe(Command::Package, package) {
        Ok(c) => {
            assert!(!c.files().is_empty());
            Ok(())
        }
        Err(DescribeError::Driver(e)) => Err(e),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn the_rpm_driver_is_idempotent() {
    assert!(RpmDriver::new(Duration::from_secs(5)).driver().config().idempotent);
}

#[test]
fn an_idle_rpm_handler_that_died_is_replaced_before_the_next_request() {
    let d = RpmDriver::new(Duration::from_secs(10));
    let p = rpm("hello-rsa.rpm");
    idle_death_is_noticed(d.driver(), &|| describe(&d, &p));
}

#[test]
fn an_rpm_handler_killed_just_before_a_call_costs_nothing() {
    let d = RpmDriver::new(Duration::from_secs(10));
    let p = rpm("hello-rsa.rpm");
    death_at_call_time_is_recovered(d.driver(), &|| describe(&d, &p));
}

#[test]
fn an_rpm_handler_killed_under_a_request_is_replaced_and_the_request_succeeds_on_the_retry() {
    let d = liar(&["slow", "300"]);
    let p = rpm("hello-rsa.rpm");
    let pid = the_handler(d.driver(), &|| describe(&d, &p));
    let before = d.driver().stats();
    kill_during_request(pid, || describe(&d, &p)).expect("succeeds on the retry");
    let s = d.driver().stats();
    assert_eq!((s.requests - before.requests, s.failures, s.retries, s.restarts), (1, 0, 1, 1), "{s:?}");
}

#[test]
fn an_rpm_handler_that_dies_under_every_request_is_one_clear_error_after_exactly_one_retry() {
    let d = liar(&["crash"]);
    let e = describe(&d, &rpm("hello-rsa.rpm")).expect_err("every handler aborts");
    let text = e.to_string();
    assert!(text.starts_with("driver rpm: request 1: "), "{text}");
    assert!(text.contains("SIGABRT") && text.contains("one retry"), "{text}");
    assert!(!e.retryable() && e.delivered(), "{text}");
    let s = d.driver().stats();
    assert_eq!((s.requests, s.failures, s.retries, s.starts, s.restarts), (1, 1, 1, 2, 1), "{s:?}");
}
