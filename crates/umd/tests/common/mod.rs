//! Helpers shared by the manager's fault tests: drivers around the hostile handler
//! with the sample's wire format and check, and a look at handler processes
//! through `/proc`.
#![allow(dead_code)] // each test target uses a different subset

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use umd::{Driver, Program, Request, Session};
use umd_sample::{check_reply, Offset};

/// The hostile handler as a program.
pub fn hostile_program() -> Program {
    Program::from_blob("umd-hostile-handler", umd_blobs::HOSTILE_HANDLER).expect("hostile blob loads")
}

/// The sample handler as a program.
pub fn sample_program() -> Program {
    Program::from_blob("umd-sample-handler", umd_blobs::SAMPLE_HANDLER).expect("sample blob loads")
}

/// The echo handler as a program.
pub fn echo_program() -> Program {
    Program::from_blob("umd-echo-handler", umd_blobs::ECHO_HANDLER).expect("echo blob loads")
}

/// The sample's `post_start`: offset 0 must come back right.
pub fn sample_post_start(s: &mut Session<'_>) -> Result<(), String> {
    let zero = Offset::new(0).expect("0 is a valid offset");
    s.call(Request::Bytes(&zero.to_request()), |r| check_reply(zero, r)).map_err(|e| format!("offset 0: {e}"))
}

/// A raw sample-format driver running the hostile handler with `args`, whose
/// provider counts its calls.
pub fn hostile_driver(name: &str, args: &[&str], timeout: Duration) -> (Driver, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let driver = Driver::builder(name)
        .raw(umd::wire_sample::SIZES)
        .timeout(timeout)
        .start_timeout(Duration::from_secs(5))
        .args(args.iter().copied())
        .provider(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(hostile_program())
        })
        .post_start(sample_post_start)
        .build();
    (driver, calls)
}

/// A raw sample driver running the real sample handler.
pub fn sample_driver(name: &str, pool: usize, timeout: Duration) -> Driver {
    Driver::builder(name)
        .raw(umd::wire_sample::SIZES)
        .timeout(timeout)
        .pool_size(pool)
        .provider(|_| Ok(sample_program()))
        .post_start(sample_post_start)
        .build()
}

/// One sample request through `driver`, checked with the sample's check.
pub fn request(driver: &Driver, offset: u64) -> Result<(), umd::Error> {
    let o = Offset::new(offset).expect("test offsets are in range");
    driver.call(Request::Bytes(&o.to_request()), |r| check_reply(o, r))
}

/// Fields of `/proc/PID/stat` after the command name: state, ppid, ...
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// Whether `pid` is a child of this process (running or a zombie).
pub fn is_our_child(pid: u32) -> bool {
    let me = std::process::id().to_string();
    stat_fields(pid).is_some_and(|f| f.get(1) == Some(&me))
}

/// Whether `pid` is a zombie child of this process.
pub fn is_our_zombie(pid: u32) -> bool {
    is_our_child(pid) && stat_fields(pid).is_some_and(|f| f[0] == "Z")
}

/// Whether `pid` is a live handler of driver `driver` (argv[0] is `umd-DRIVER`).
pub fn is_handler_of(pid: u32, driver: &str) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let argv0 = cmdline.split(|&b| b == 0).next().unwrap_or_default();
    argv0 == format!("umd-{driver}").as_bytes()
}

/// Whether the handler `pid` of `driver` is gone: neither running nor left as a
/// zombie child of ours (a recycled pid of an unrelated process counts as gone).
pub fn handler_gone(pid: u32, driver: &str) -> bool {
    !is_handler_of(pid, driver) && !is_our_zombie(pid)
}

/// SIGKILLs `pid` if (and only if) it is a handler of `driver`. A pidfd pins the
/// process, so a pid recycled in between is never signalled.
pub fn kill_handler(pid: u32, driver: &str) -> bool {
    let Some(p) = rustix::process::Pid::from_raw(pid as i32) else {
        return false;
    };
    let Ok(pidfd) = rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()) else {
        return false;
    };
    if !is_handler_of(pid, driver) {
        return false;
    }
    rustix::process::pidfd_send_signal(&pidfd, rustix::process::Signal::KILL).is_ok()
}

/// Waits until `cond` holds or `limit` passes; returns whether it held.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Peak resident memory of this process (`VmHWM`), in bytes.
pub fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Fails the whole test process if `f` does not finish within `limit`: a
/// deadlock must fail loudly rather than hang the suite.
pub fn with_watchdog<T>(what: &str, limit: Duration, f: impl FnOnce() -> T) -> T {
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = done.clone();
    let what = what.to_string();
    std::thread::spawn(move || {
        let until = Instant::now() + limit;
        while Instant::now() < until {
            if flag.load(Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Past the harness's output capture, which would swallow the reason.
        let _ = writeln!(
            std::io::stderr(),
            "WATCHDOG: {what} did not finish within {limit:?} (deadlock?); exiting"
        );
        std::process::exit(101);
    });
    let r = f();
    done.store(true, Ordering::SeqCst);
    r
}
