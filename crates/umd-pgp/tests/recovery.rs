//! Recovery of the `pgp` driver: an idle handler that died is replaced before
//! the next request; a request whose handler died under it is sent once more
//! to a fresh handler (the driver is idempotent: a description depends only on
//! the bytes); a handler that dies under every request is one clear error
//! after exactly one retry. The manager's side of this is tested in
//! `crates/umd/tests/recovery.rs`.

use std::time::{Duration, Instant};

use umd::Driver;
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

// ---- helpers: a handler seen and killed from outside, through /proc and a pidfd.

/// Whether `pid` has exited and waits to be reaped (a zombie).
fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rfind(')').map(|i| s[i + 1..].trim_start().starts_with('Z')))
        .unwrap_or(false)
}

/// SIGKILL through a pidfd, as an operator's tool (or the OOM killer) would.
fn kill(pid: u32) {
    let p = rustix::process::Pid::from_raw(pid as i32).expect("a pid");
    let fd = rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).expect("pidfd_open");
    rustix::process::pidfd_send_signal(&fd, rustix::process::Signal::KILL).expect("SIGKILL");
}

/// Bytes the process has read so far (`/proc/PID/io`).
fn rchar(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    text.lines().find_map(|l| l.strip_prefix("rchar: ")?.trim().parse().ok())
}

fn wait_until(mut cond: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    false
}

/// The only handler of `driver`, started by `call` if none runs.
fn the_handler(driver: &Driver, call: &dyn Fn() -> Result<(), umd::Error>) -> u32 {
    if driver.handler_pids().is_empty() {
        call().expect("the first request starts a handler");
    }
    let pids = driver.handler_pids();
    assert_eq!(pids.len(), 1, "{pids:?}");
    pids[0]
}

/// Runs `call` on another thread, kills the handler once it has read the
/// request, and returns the call's result.
fn kill_during_request<T: Send>(pid: u32, call: impl FnOnce() -> T + Send) -> T {
    let before = rchar(pid).expect("the handler's read count");
    std::thread::scope(|s| {
        let t = s.spawn(call);
        assert!(wait_until(|| rchar(pid).is_some_and(|r| r > before)), "the handler never read the request");
        kill(pid);
        t.join().expect("the call does not panic")
    })
}

/// Kill the idle handler and wait until it has exited, then call: twenty times,
/// each call succeeds and counts a restart.
fn idle_death_is_noticed(driver: &Driver, call: &dyn Fn() -> Result<(), umd::Error>) {
    let before = driver.stats();
    for round in 0..20 {
        let pid = the_handler(driver, call);
        kill(pid);
        assert!(wait_until(|| is_zombie(pid)), "handler {pid} did not exit");
        call().unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert!(!driver.handler_pids().contains(&pid));
    }
    let s = driver.stats();
    assert_eq!((s.restarts - before.restarts, s.failures - before.failures), (20, 0), "{s:?}");
}

/// Kill the idle handler and call at once: twenty times, each call succeeds.
fn death_at_call_time_is_recovered(driver: &Driver, call: &dyn Fn() -> Result<(), umd::Error>) {
    let before = driver.stats();
    for round in 0..20 {
        kill(the_handler(driver, call));
        call().unwrap_or_else(|e| panic!("round {round}: {e}"));
    }
    let s = driver.stats();
    assert_eq!((s.restarts - before.restarts, s.failures - before.failures), (20, 0), "{s:?}");
}
