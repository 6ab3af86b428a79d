//! Helpers shared by the manager's fault tests: drivers around the hostile handler
//! with the sample's wire format and check, and a look at handler processes
//! through `/proc`.
#![allow(dead_code)] // each test target uses a different subset

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use umd::{Driver, Program, Request};
use umd_sample::{check_reply, Offset};

/// The hostile handler as a program.
pub fn hostile_program() -> Program {
    Program::from_blob("umd-hostile-handler", umd_blobs::HOSTILE_HANDLER).expect("hostile blob loads")
}

/// The sample handler as a program.
pub fn sample_program() -> Program {
    Program::runtime_blob("umd-sample-handler", umd_blobs::SAMPLE_HANDLER).expect("sample blob loads")
}

/// The echo handler as a program.
pub fn echo_program() -> Program {
    Program::runtime_blob("umd-echo-handler", umd_blobs::ECHO_HANDLER).expect("echo blob loads")
}

/// The sample's `post_start`: offset 0 must come back right.
pub use umd_sample::post_start as sample_post_start;

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

/// Whether `pid` is a live handler of driver `driver` (argv[0] is `umd-DRIVER`,
/// or `umd-handler:DRIVER` for handlers built on the runtime).
pub fn is_handler_of(pid: u32, driver: &str) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let argv0 = cmdline.split(|&b| b == 0).next().unwrap_or_default();
    argv0 == format!("umd-{driver}").as_bytes()
        || argv0 == format!("{}{driver}", umd_wire_prefix()).as_bytes()
}

fn umd_wire_prefix() -> &'static str {
    "umd-handler:"
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

/// The malicious handler (acts compromised; built on the runtime) as a program.
pub fn malicious_program() -> Result<Program, String> {
    Program::runtime_blob("malicious", umd_blobs::MALICIOUS_HANDLER).map_err(|e| e.to_string())
}

/// A framed driver around the malicious handler, confined by `policy`, with a
/// `ping` → `pong` `post_start` check and `args` for the handler.
pub fn malicious_driver(name: &str, policy: umd::Policy, timeout: Duration, args: &[&str]) -> Driver {
    Driver::builder(name)
        .policy(policy)
        .timeout(timeout)
        .start_timeout(Duration::from_secs(5))
        .args(args.iter().copied())
        .provider(|_| malicious_program())
        .post_start(|s| {
            s.call(Request::Bytes(b"ping"), |r| {
                if r == b"pong" {
                    Ok(())
                } else {
                    Err(format!("ping answered {:?}", String::from_utf8_lossy(r)))
                }
            })
        })
        .build()
}

/// Sends one attack (or `ping`) and returns the reply as text.
pub fn attack(driver: &Driver, request: &str) -> Result<String, umd::Error> {
    driver.call(Request::Bytes(request.as_bytes()), |r| {
        Ok::<_, std::convert::Infallible>(String::from_utf8_lossy(r).into_owned())
    })
}

/// Whether sandbox tests must fail, rather than skip, when the kernel lacks a
/// feature (CI sets `UMD_REQUIRE_SANDBOX=1`).
pub fn sandbox_required() -> bool {
    std::env::var("UMD_REQUIRE_SANDBOX").as_deref() == Ok("1")
}

/// The default policy, required whole under `UMD_REQUIRE_SANDBOX=1`: a kernel
/// lacking a layer then fails the load instead of starting the handler with a
/// warning. (The library reads no environment variable: the knob is the test's.)
pub fn strict_policy() -> umd::Policy {
    umd::Policy::default().requiring_every_layer(sandbox_required())
}

/// Whether a kernel feature a test needs is present. When it is not: a failure
/// under `UMD_REQUIRE_SANDBOX=1`, otherwise a loud skip (the caller returns).
pub fn kernel_has(feature: &str, present: bool) -> bool {
    if present {
        return true;
    }
    if sandbox_required() {
        panic!("UMD_REQUIRE_SANDBOX=1 but this kernel lacks {feature}");
    }
    // Past the harness's output capture: a skipped test must be seen.
    let bar = "!".repeat(80);
    let _ = writeln!(
        std::io::stderr(),
        "\n{bar}\n!!! SKIPPED: this kernel lacks {feature}; set UMD_REQUIRE_SANDBOX=1 to make this a \
         failure.\n{bar}"
    );
    false
}

/// Whether seccomp filters are available (`Seccomp:` in `/proc/self/status`).
pub fn has_seccomp() -> bool {
    kernel_has(
        "seccomp filters",
        std::fs::read_to_string("/proc/self/status").is_ok_and(|s| s.contains("\nSeccomp:")),
    )
}

/// Whether Landlock is available with at least ABI `abi` (and seccomp, which
/// every test that widens a call needs too).
pub fn has_landlock(abi: i32) -> bool {
    has_seccomp() && kernel_has(&format!("Landlock ABI {abi}"), umd::sandbox::landlock_abi() >= abi)
}

/// A resource limit of process `pid` from `/proc/PID/limits`: (soft, hard), as
/// text (`"unlimited"` or a number).
pub fn proc_limit(pid: u32, name: &str) -> Option<(String, String)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = text.lines().find(|l| l.starts_with(name))?;
    let mut f = line[name.len()..].split_whitespace();
    Some((f.next()?.to_string(), f.next()?.to_string()))
}

/// A counter of `/proc/PID/io` (`rchar`: bytes read, `wchar`: bytes written,
/// through any fd), or `None` if the process is gone.
pub fn proc_io(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    text.lines().find_map(|l| l.strip_prefix(field)?.strip_prefix(": ")?.trim().parse().ok())
}

/// The open fds of process `pid`, sorted.
pub fn proc_fds(pid: u32) -> Vec<u32> {
    let mut fds: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("reading the handler's fd directory")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    fds.sort_unstable();
    fds
}

/// The effective uid of this (the test) process.
pub fn my_euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Compiles `tests/c/NAME.c` with `gcc -static -O2` and returns the executable,
/// or `None` (after a loud message) when no C toolchain with a static libc is
/// installed; with `UMD_REQUIRE_SANDBOX=1` that is a failure instead.
pub fn compile_c(name: &str) -> Option<std::path::PathBuf> {
    use std::path::Path;
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/c").join(format!("{name}.c"));
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("umd-c-handlers");
    std::fs::create_dir_all(&dir).expect("creating the C handler directory");
    let out = dir.join(name);
    // Built under a private name and renamed into place, so concurrent test
    // processes never run a half-written executable.
    let tmp = dir.join(format!("{name}.{}.tmp", std::process::id()));
    let result = std::process::Command::new("gcc")
        .args(["-static", "-O2", "-Wall", "-Wextra", "-o"])
        .arg(&tmp)
        .arg(&src)
        .output();
    let missing = |why: String| {
        if sandbox_required() {
            panic!("UMD_REQUIRE_SANDBOX=1 but the C handler cannot be built: {why}");
        }
        let bar = "!".repeat(80);
        let _ = writeln!(
            std::io::stderr(),
            "\n{bar}\n!!! SKIPPED: C handler test: {why}\n!!! install gcc and libc6-dev, or set \
             UMD_REQUIRE_SANDBOX=1 to make this a failure.\n{bar}"
        );
        None
    };
    match result {
        Err(e) => missing(format!("gcc cannot be run ({e})")),
        Ok(o) if !o.status.success() => {
            let err = String::from_utf8_lossy(&o.stderr);
            if err.contains("cannot find -lc") || err.contains("crt1.o") || err.contains(".h: No such file") {
                return missing(format!("no static C library: {}", err.trim()));
            }
            panic!("compiling {}: {}\n{err}", src.display(), o.status);
        }
        Ok(_) => {
            std::fs::rename(&tmp, &out).expect("moving the compiled handler into place");
            Some(out)
        }
    }
}
