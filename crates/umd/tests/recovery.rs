//! Recovery: a handler that dies — idle, or under a request — costs the caller
//! nothing it cannot see and act on.
//!
//! * An idle handler that died (SIGKILL from an operator or the OOM killer) is
//!   noticed through its pidfd before the next request is sent, reaped and
//!   replaced: the request succeeds, on every driver.
//! * An idempotent driver sends a request whose handler died under it once more,
//!   to a fresh handler; a second death is one clear error, after exactly one
//!   retry. A deadline or a seccomp violation is never retried.
//! * A driver that is not idempotent returns the error at once, and
//!   `Error::retryable` / `Error::delivered` say what the caller may do.
//! * `Driver::kill_handlers` kills through the pidfd and says how many.
//!
//! The same behaviours for the sample driver (`umd_sample::SampleDriver`) are
//! here too; the pgp and rpm drivers have theirs in their crates.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::*;
use umd::{Driver, Error, HandlerFate, Policy};
use umd_sample::{HandlerSource, Offset, SampleDriver, SampleOptions};

const TIMEOUT: Duration = Duration::from_secs(10);

/// The hostile handler (raw sample format) behind a driver that may retry.
fn idempotent_hostile(name: &str, args: &[&str]) -> Driver {
    Driver::builder(name)
        .raw(umd::wire_sample::SIZES)
        .timeout(TIMEOUT)
        .args(args.iter().copied())
        .provider(|_| Ok(hostile_program()))
        .post_start(sample_post_start)
        .idempotent(true)
        .build()
}

/// The only handler of `driver`, started by one request if none runs.
fn the_handler(driver: &Driver, call: &dyn Fn() -> Result<(), Error>) -> u32 {
    if driver.handler_pids().is_empty() {
        call().expect("the first request starts a handler");
    }
    let pids = driver.handler_pids();
    assert_eq!(pids.len(), 1, "{pids:?}");
    pids[0]
}

/// SIGKILLs the handler (through a pidfd, as an operator's tool would) and waits
/// until it has exited: it is a zombie only the manager can reap.
fn kill_and_wait(pid: u32, driver: &str) {
    assert!(kill_handler(pid, driver), "handler {pid} of {driver} could not be killed");
    assert!(wait_until(Duration::from_secs(10), || is_our_zombie(pid)), "handler {pid} did not exit");
}

/// Starts `call` on another thread, waits until the handler `pid` has read the
/// request (its read count grows), kills it there, and returns the call's result.
fn kill_during_request<T: Send>(pid: u32, driver: &str, call: impl FnOnce() -> T + Send) -> T {
    let before = proc_io(pid, "rchar").expect("the handler's read count");
    std::thread::scope(|s| {
        let t = s.spawn(call);
        assert!(
            wait_until(Duration::from_secs(10), || proc_io(pid, "rchar").is_some_and(|r| r > before)),
            "the handler never read the request"
        );
        assert!(kill_handler(pid, driver), "handler {pid} could not be killed under its request");
        t.join().expect("the call does not panic")
    })
}

/// Kill an idle handler and wait until it is gone, twenty times: every next call
/// succeeds (it is checked through the pidfd before the request is sent), and
/// the counters show twenty restarts and no failure, no retry.
fn idle_death_is_noticed_before_the_request(driver: &Driver, call: &dyn Fn() -> Result<(), Error>) {
    let before = driver.stats();
    for round in 0..20 {
        let pid = the_handler(driver, call);
        kill_and_wait(pid, driver.name());
        call().unwrap_or_else(|e| panic!("round {round}: the call after an idle handler died failed: {e}"));
        assert!(handler_gone(pid, driver.name()), "round {round}: the dead handler was reaped");
        assert_ne!(driver.handler_pids(), vec![pid]);
    }
    let s = driver.stats();
    assert_eq!(s.restarts - before.restarts, 20, "{s:?}");
    assert_eq!(s.handler_failures - before.handler_failures, 20, "{s:?}");
    assert_eq!((s.failures - before.failures, s.retries - before.retries), (0, 0), "{s:?}");
}

/// Kill the idle handler and call at once, twenty times: the kill may land
/// before the check, or under the request; either way the call of an
/// idempotent driver succeeds.
fn death_at_call_time_is_recovered(driver: &Driver, call: &dyn Fn() -> Result<(), Error>) {
    let before = driver.stats();
    for round in 0..20 {
        let pid = the_handler(driver, call);
        assert!(kill_handler(pid, driver.name()));
        call().unwrap_or_else(|e| panic!("round {round}: the call right after a kill failed: {e}"));
    }
    let s = driver.stats();
    assert_eq!(s.failures - before.failures, 0, "{s:?}");
    assert_eq!(s.restarts - before.restarts, 20, "{s:?}");
}

#[test]
fn an_idle_handler_that_died_is_replaced_before_the_next_request_even_without_retries() {
    // Not idempotent: the pidfd check alone must do it.
    let driver = sample_driver("idle-death", 1, TIMEOUT);
    assert!(!driver.config().idempotent, "the default is no retry");
    idle_death_is_noticed_before_the_request(&driver, &|| request(&driver, 4096));
}

#[test]
fn a_handler_killed_just_before_a_call_costs_an_idempotent_driver_nothing() {
    let driver = idempotent_hostile("call-at-once", &[]);
    death_at_call_time_is_recovered(&driver, &|| request(&driver, 4096));
}

#[test]
fn a_handler_killed_under_a_request_is_replaced_and_the_request_succeeds_on_the_retry() {
    // The handler takes 300 ms over every reply: time to kill it mid-request.
    let driver = idempotent_hostile("mid-request", &["slow", "300"]);
    let pid = the_handler(&driver, &|| request(&driver, 0));
    let before = driver.stats();
    kill_during_request(pid, "mid-request", || request(&driver, 8192))
        .expect("the request is sent again to a fresh handler and succeeds");
    assert!(handler_gone(pid, "mid-request"));
    let s = driver.stats();
    assert_eq!(
        (s.requests - before.requests, s.failures, s.retries, s.restarts, s.handler_failures),
        (1, 0, 1, 1, 1),
        "{s:?}"
    );
}

#[test]
fn a_handler_that_dies_under_every_request_is_one_clear_error_after_exactly_one_retry() {
    // Each handler passes post_start, then aborts halfway through the next reply.
    let driver = idempotent_hostile("always-dies", &["crash-mid-reply", "1"]);
    match request(&driver, 1024) {
        Err(e @ Error::Channel { fate: HandlerFate::Signaled(libc::SIGABRT), retried: true, .. }) => {
            let text = e.to_string();
            assert!(text.starts_with("driver always-dies: request 1: "), "{text}");
            assert!(text.contains("SIGABRT"), "{text}");
            assert!(text.contains("sent again to a fresh handler (one retry), which failed too"), "{text}");
            assert!(e.delivered(), "the request reached the handler");
            assert!(!e.retryable(), "already retried once: {text}");
        }
        other => panic!("expected a channel error after one retry, got {other:?}"),
    }
    let s = driver.stats();
    assert_eq!(
        (s.requests, s.failures, s.retries, s.starts, s.restarts, s.handler_failures),
        (1, 1, 1, 2, 1, 2),
        "{s:?}"
    );
}

#[test]
fn a_driver_that_is_not_idempotent_returns_a_retryable_error_when_its_handler_dies_under_a_request() {
    let (driver, _) = hostile_driver("no-retry", &["slow", "300"], TIMEOUT);
    let pid = the_handler(&driver, &|| request(&driver, 0));
    match kill_during_request(pid, "no-retry", || request(&driver, 8192)) {
        Err(e @ Error::Channel { fate: HandlerFate::Signaled(libc::SIGKILL), retried: false, .. }) => {
            assert!(e.retryable(), "the handler died of a signal the manager did not send: {e}");
            assert!(e.delivered(), "the whole request was written before the handler died: {e}");
        }
        other => panic!("expected a retryable channel error, got {other:?}"),
    }
    request(&driver, 8192).expect("the caller's own retry meets a fresh handler");
    let s = driver.stats();
    assert_eq!((s.failures, s.retries, s.restarts), (1, 0, 1), "{s:?}");
}

#[test]
fn a_missed_deadline_is_not_retried() {
    let driver = Driver::builder("deadline")
        .raw(umd::wire_sample::SIZES)
        .timeout(Duration::from_millis(300))
        .args(["hang", "1"])
        .provider(|_| Ok(hostile_program()))
        .post_start(sample_post_start)
        .idempotent(true)
        .build();
    match request(&driver, 1024) {
        Err(e @ Error::Deadline { fate: HandlerFate::KilledByManager(_), .. }) => {
            assert!(!e.retryable(), "{e}");
            assert!(e.delivered(), "{e}");
        }
        other => panic!("expected a deadline error, got {other:?}"),
    }
    let s = driver.stats();
    assert_eq!((s.deadline_kills, s.retries, s.failures), (1, 0, 1), "{s:?}");
}

#[test]
fn a_seccomp_violation_is_not_retried() {
    if !has_seccomp() {
        return;
    }
    let driver = Driver::builder("violation")
        .policy(Policy::default())
        .timeout(TIMEOUT)
        .provider(|_| malicious_program())
        .idempotent(true)
        .build();
    match attack(&driver, "read-file /etc/hostname") {
        Err(e @ Error::Channel { fate: HandlerFate::SeccompViolation { .. }, .. }) => {
            assert!(!e.retryable(), "{e}");
        }
        other => panic!("expected a seccomp kill, got {other:?}"),
    }
    let s = driver.stats();
    assert_eq!((s.violations, s.retries, s.starts), (1, 0, 1), "{s:?}");
}

#[test]
fn a_request_that_could_not_be_written_was_not_delivered() {
    // After post_start the handler closes its stdin and lingers: the next
    // request's write meets a pipe with no reader.
    let (driver, _) = hostile_driver("deaf", &["deaf-after", "1"], TIMEOUT);
    match request(&driver, 1024) {
        Err(e @ Error::Channel { .. }) => {
            assert!(!e.delivered(), "{e}");
            assert!(!e.retryable(), "the handler did not die; it broke its channel: {e}");
        }
        other => panic!("expected a channel error, got {other:?}"),
    }
}

#[test]
fn errors_before_any_handler_saw_the_request_were_not_delivered() {
    let driver = Driver::builder("nothing").raw(umd::wire_sample::SIZES).build();
    let e = driver.send_recv(&[0; 4]).unwrap_err();
    assert!(matches!(e, Error::NotAvailable { .. }), "{e}");
    assert!(!e.delivered() && !e.retryable(), "{e}");
    let driver = sample_driver("bad-request", 1, TIMEOUT);
    let e = driver.send_recv(&[0; 3]).unwrap_err();
    assert!(matches!(e, Error::BadRequest { .. }), "{e}");
    assert!(!e.delivered() && !e.retryable(), "{e}");
}

#[test]
fn kill_handlers_kills_every_idle_handler_through_its_pidfd_and_the_next_call_starts_a_fresh_one() {
    let driver = sample_driver("kill-idle", 3, TIMEOUT);
    // Three concurrent calls fill the pool.
    let barrier = std::sync::Barrier::new(3);
    std::thread::scope(|s| {
        for i in 0..3 {
            let (driver, barrier) = (&driver, &barrier);
            s.spawn(move || {
                barrier.wait();
                for j in 0..20 {
                    request(driver, i * 1024 + j).expect("request");
                }
            });
        }
    });
    let pids = driver.handler_pids();
    assert!(!pids.is_empty());
    assert_eq!(driver.kill_handlers(), pids.len());
    assert!(driver.handler_pids().is_empty(), "idle handlers are reaped at once");
    for pid in &pids {
        assert!(handler_gone(*pid, "kill-idle"), "handler {pid} is gone");
    }
    assert!(driver.is_loaded(), "the program stays loaded");
    request(&driver, 7).expect("the next call starts a fresh handler");
    let s = driver.stats();
    assert_eq!((s.kills, s.restarts, s.loads), (pids.len() as u64, 1, 1), "{s:?}");
    assert_eq!(driver.kill_handlers(), 1);
    assert_eq!(Driver::builder("empty").build().kill_handlers(), 0, "a driver with no handler");
}

#[test]
fn kill_handlers_under_a_request_costs_an_idempotent_driver_nothing() {
    let driver = idempotent_hostile("kill-busy", &["slow", "300"]);
    let pid = the_handler(&driver, &|| request(&driver, 0));
    let before = proc_io(pid, "rchar").expect("read count");
    std::thread::scope(|s| {
        let t = s.spawn(|| request(&driver, 4096));
        assert!(wait_until(Duration::from_secs(10), || proc_io(pid, "rchar").is_some_and(|r| r > before)));
        assert_eq!(driver.kill_handlers(), 1);
        t.join().unwrap().expect("the request is retried on a fresh handler");
    });
    let s = driver.stats();
    assert_eq!((s.kills, s.retries, s.failures), (1, 1, 0), "{s:?}");
}

// The sample driver, as the CLI and the service build it.

fn sample(options: SampleOptions, source: HandlerSource) -> SampleDriver {
    SampleDriver::new(source, SampleOptions { timeout: TIMEOUT, ..options })
}

fn sample_call(s: &SampleDriver) -> Result<(), Error> {
    s.request(Offset::new(4096).expect("in range"))
}

/// The hostile handler as a file, for `HandlerSource::Path`.
fn hostile_file() -> PathBuf {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("umd-recovery-hostile-handler");
    // Rewritten when the blob changed (a rebuilt handler); written under a
    // private name and renamed, so concurrent tests never read half a program.
    if std::fs::read(&path).ok().as_deref() != Some(umd_blobs::HOSTILE_HANDLER) {
        let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
        std::fs::write(&tmp, umd_blobs::HOSTILE_HANDLER).expect("writing the hostile handler");
        std::fs::rename(&tmp, &path).expect("renaming the hostile handler");
    }
    path
}

#[test]
fn the_sample_driver_replaces_an_idle_handler_that_died() {
    let s = sample(SampleOptions::default(), HandlerSource::Embedded);
    assert!(s.driver().config().idempotent);
    idle_death_is_noticed_before_the_request(s.driver(), &|| sample_call(&s));
}

#[test]
fn the_sample_driver_recovers_from_a_kill_at_call_time() {
    let s = sample(SampleOptions::default(), HandlerSource::Embedded);
    death_at_call_time_is_recovered(s.driver(), &|| sample_call(&s));
}

#[test]
fn the_sample_driver_retries_a_request_whose_handler_was_killed_under_it() {
    let options = SampleOptions { args: vec!["slow".into(), "300".into()], ..Default::default() };
    let s = sample(options, HandlerSource::Path(hostile_file()));
    let pid = the_handler(s.driver(), &|| sample_call(&s));
    kill_during_request(pid, "sample", || sample_call(&s)).expect("succeeds on the retry");
    let st = s.driver().stats();
    assert_eq!((st.failures, st.retries, st.restarts), (0, 1, 1), "{st:?}");
}

#[test]
fn the_sample_driver_gives_up_after_one_retry_when_every_handler_dies() {
    let options = SampleOptions { args: vec!["crash-mid-reply".into(), "1".into()], ..Default::default() };
    let s = sample(options, HandlerSource::Path(hostile_file()));
    let e = sample_call(&s).expect_err("every handler dies");
    assert!(matches!(e, Error::Channel { retried: true, .. }), "{e}");
    assert!(e.to_string().contains("one retry"), "{e}");
    let st = s.driver().stats();
    assert_eq!((st.requests, st.failures, st.retries, st.restarts), (1, 1, 1, 1), "{st:?}");
}

#[test]
fn a_fresh_handler_killed_during_its_start_is_replaced_by_another_before_the_request() {
    // Not idempotent: the request has not been sent when a start fails.
    let (driver, _) = hostile_driver("start-killed", &["slow", "300"], TIMEOUT);
    let first = the_handler(&driver, &|| request(&driver, 0));
    kill_and_wait(first, "start-killed");
    std::thread::scope(|s| {
        let t = s.spawn(|| request(&driver, 4096));
        // The replacement is registered when spawned, then spends 300 ms in its
        // post_start exchange: kill it there.
        let mut second = None;
        assert!(wait_until(Duration::from_secs(10), || {
            second = driver.handler_pids().into_iter().find(|&p| p != first);
            second.is_some()
        }));
        let second = second.unwrap();
        assert!(wait_until(Duration::from_secs(10), || proc_io(second, "rchar").is_some_and(|r| r > 0)));
        assert!(kill_handler(second, "start-killed"));
        t.join().unwrap().expect("a third handler serves the request");
    });
    let s = driver.stats();
    assert_eq!((s.failures, s.post_start_failures, s.starts, s.restarts), (0, 1, 3, 2), "{s:?}");
}
