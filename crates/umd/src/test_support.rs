//! Helpers for drivers' recovery tests (feature `test-support`, for
//! dev-dependencies only): a handler seen and killed from outside, through
//! `/proc` and a pidfd, as an operator's tool or the OOM killer would, and the
//! recovery every driver built on [`Driver`] owes its callers.
//!
//! Test code: it panics (with a message) when what it looks for does not
//! happen. Nothing in the manager uses it.

use std::time::{Duration, Instant};

use crate::{Driver, Error};

/// Whether `pid` has exited and waits to be reaped (a zombie).
pub fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rfind(')').map(|i| s[i + 1..].trim_start().starts_with('Z')))
        .unwrap_or(false)
}

/// SIGKILL through a pidfd (never a recycled pid), as an operator's tool (or
/// the OOM killer) would.
pub fn kill(pid: u32) {
    let p = rustix::process::Pid::from_raw(pid as i32).expect("a pid");
    let fd = rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).expect("pidfd_open");
    rustix::process::pidfd_send_signal(&fd, rustix::process::Signal::KILL).expect("SIGKILL");
}

/// Bytes the process has read so far (`/proc/PID/io`; `recvmsg(2)` on a
/// socket does not count).
pub fn rchar(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    text.lines().find_map(|l| l.strip_prefix("rchar: ")?.trim().parse().ok())
}

/// Whether the process sleeps in a `poll` of no fds (`/proc/PID/syscall`:
/// the number, then the arguments; the second is the fd count): where a
/// `slow` liar waits after it has read a request, whatever its channel.
pub fn sleeping_in_empty_poll(pid: u32) -> bool {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/syscall")) else { return false };
    let fields: Vec<&str> = text.split_whitespace().collect();
    // ppoll: 271 on x86_64, 73 on aarch64.
    matches!(fields.first(), Some(&"271") | Some(&"73")) && fields.get(2) == Some(&"0x0")
}

/// Polls `cond` every 2 ms for up to 10 s; whether it became true.
pub fn wait_until(mut cond: impl FnMut() -> bool) -> bool {
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
pub fn the_handler(driver: &Driver, call: &dyn Fn() -> Result<(), Error>) -> u32 {
    if driver.handler_pids().is_empty() {
        call().expect("the first request starts a handler");
    }
    let pids = driver.handler_pids();
    assert_eq!(pids.len(), 1, "{pids:?}");
    pids[0]
}

/// Runs `call` on another thread, kills the handler `pid` once it has read
/// the request (its read count grew, or it sleeps as a `slow` liar does after
/// a read a socket's count does not show), and returns the call's result.
pub fn kill_during_request<T: Send>(pid: u32, call: impl FnOnce() -> T + Send) -> T {
    let before = rchar(pid).expect("the handler's read count");
    std::thread::scope(|s| {
        let t = s.spawn(call);
        assert!(
            wait_until(|| rchar(pid).is_some_and(|r| r > before) || sleeping_in_empty_poll(pid)),
            "the handler never read the request"
        );
        kill(pid);
        t.join().expect("the call does not panic")
    })
}

/// Kills the idle handler and waits until it has exited, then calls: twenty
/// times, each call succeeds and counts a restart.
pub fn idle_death_is_noticed(driver: &Driver, call: &dyn Fn() -> Result<(), Error>) {
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

/// Kills the idle handler and calls at once: twenty times, each call succeeds.
pub fn death_at_call_time_is_recovered(driver: &Driver, call: &dyn Fn() -> Result<(), Error>) {
    let before = driver.stats();
    for round in 0..20 {
        kill(the_handler(driver, call));
        call().unwrap_or_else(|e| panic!("round {round}: {e}"));
    }
    let s = driver.stats();
    assert_eq!((s.restarts - before.restarts, s.failures - before.failures), (20, 0), "{s:?}");
}
