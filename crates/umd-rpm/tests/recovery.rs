//! Recovery of the `rpm` driver: an idle handler that died is replaced before
//! the next request; a request whose handler died under it is sent once more
//! to a fresh handler (the driver is idempotent: a description depends only on
//! the bytes); a handler that dies under every request is one clear error
//! after exactly one retry. The manager's side of this is tested in
//! `crates/umd/tests/recovery.rs`.

mod common;

use std::time::{Duration, Instant};

use common::rpm;
use umd::Driver;
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

/// Whether the `slow` liar sleeps on a request it has read: blocked in a
/// poll of no fds (`/proc/PID/syscall`: the number, then the arguments; the
/// second is the fd count). The rpm driver's channel is a socket pair, and
/// `recvmsg(2)` does not count in `/proc/PID/io`'s `rchar`.
fn sleeping_on_a_request(pid: u32) -> bool {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/syscall")) else { return false };
    let fields: Vec<&str> = text.split_whitespace().collect();
    // ppoll: 271 on x86_64, 73 on aarch64.
    matches!(fields.first(), Some(&"271") | Some(&"73")) && fields.get(2) == Some(&"0x0")
}

/// Runs `call` on another thread, kills the handler once it has read the
/// request, and returns the call's result.
fn kill_during_request<T: Send>(pid: u32, call: impl FnOnce() -> T + Send) -> T {
    let before = rchar(pid).expect("the handler's read count");
    std::thread::scope(|s| {
        let t = s.spawn(call);
        assert!(
            wait_until(|| rchar(pid).is_some_and(|r| r > before) || sleeping_on_a_request(pid)),
            "the handler never read the request"
        );
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
