//! Experiment: what would it cost the manager to compare a started handler's
//! installed seccomp program with the one it expects?
//!
//! `/proc/PID/status` (what `umd::confine::verify` reads) shows the seccomp mode
//! and the *number* of filters, not what they allow: a compromised runtime
//! handler could install an allow-everything filter instead of ours and pass.
//! `ptrace(PTRACE_SECCOMP_GET_FILTER)` returns the installed program itself, but
//! needs `CAP_SYS_ADMIN` (and a manager not itself under seccomp) and a
//! ptrace-stopped tracee: seize, interrupt, wait for the stop, read the program
//! (its length, then its instructions), compare, detach.
//!
//! This example starts cold sample handlers (default policy: the handler has
//! installed its filter and said "ready" when the first reply arrives), times
//! each step of that check on each fresh handler, and prints medians beside the
//! cold start itself (load + spawn + handshake + `/proc` check + `post_start` +
//! first reply).
//!
//! ```text
//! E=target/release/examples/seccomp_filter_check
//! sudo $E [ROUNDS]                  # wall medians: cold start, the check, its steps
//! sudo perf stat -e task-clock,context-switches,page-faults $E 200 [--no-check]
//! # valgrind cannot run the loader's child (Landlock calls, a CLONE_VM clone):
//! # the check alone, under callgrind, on a handler another process holds
//! sudo $E --hold | { read pid; valgrind --tool=callgrind --toggle-collect='*check_filter*' \
//!      $E --attach $pid 100; }
//! ```
//!
//! Results and the decision are in `docs/design.md` ("What the manager can check").

use std::process::ExitCode;
use std::time::{Duration, Instant};

use umd::{Driver, Program, Request};

/// `PTRACE_SECCOMP_GET_FILTER` (linux/ptrace.h; not in the `libc` crate).
const PTRACE_SECCOMP_GET_FILTER: libc::c_long = 0x420c;

fn ptrace(req: libc::c_long, pid: libc::pid_t, addr: usize, data: usize) -> Result<libc::c_long, String> {
    // SAFETY: the requests used here take integers, or (GET_FILTER) a buffer the
    // caller sized from the kernel's own count.
    let r = unsafe { libc::syscall(libc::SYS_ptrace, req, pid, addr, data) };
    if r < 0 {
        Err(std::io::Error::last_os_error().to_string())
    } else {
        Ok(r)
    }
}

/// Times of one check, per step.
#[derive(Default, Clone, Copy)]
struct Steps {
    seize: Duration,
    stop: Duration,
    get: Duration,
    compare: Duration,
    detach: Duration,
}

impl Steps {
    fn total(&self) -> Duration {
        self.seize + self.stop + self.get + self.compare + self.detach
    }
}

/// Reads handler `pid`'s newest seccomp filter and compares it with `expected`;
/// also checks that it is the only one. Leaves the handler running as before.
#[inline(never)]
fn check_filter(pid: libc::pid_t, expected: &[umd_seccomp::sock_filter]) -> Result<Steps, String> {
    let mut s = Steps::default();
    let t = Instant::now();
    ptrace(libc::PTRACE_SEIZE as libc::c_long, pid, 0, 0).map_err(|e| format!("PTRACE_SEIZE: {e}"))?;
    s.seize = t.elapsed();
    let t = Instant::now();
    let stopped = ptrace(libc::PTRACE_INTERRUPT as libc::c_long, pid, 0, 0)
        .map_err(|e| format!("PTRACE_INTERRUPT: {e}"))
        .and_then(|_| {
            let mut status = 0;
            // SAFETY: waiting for our own child; __WALL as for any tracee.
            let r = unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
            if r == pid && libc::WIFSTOPPED(status) {
                Ok(())
            } else {
                Err(format!("waiting for the stop: {r} status {status:#x}"))
            }
        });
    s.stop = t.elapsed();
    let read = stopped.and_then(|()| {
        let t = Instant::now();
        let len = ptrace(PTRACE_SECCOMP_GET_FILTER, pid, 0, 0)
            .map_err(|e| format!("PTRACE_SECCOMP_GET_FILTER (length): {e}"))?;
        let mut got = vec![umd_seccomp::sock_filter { code: 0, jt: 0, jf: 0, k: 0 }; len as usize];
        ptrace(PTRACE_SECCOMP_GET_FILTER, pid, 0, got.as_mut_ptr() as usize)
            .map_err(|e| format!("PTRACE_SECCOMP_GET_FILTER: {e}"))?;
        // Exactly one filter: index 1 must not exist.
        let second = ptrace(PTRACE_SECCOMP_GET_FILTER, pid, 1, 0);
        s.get = t.elapsed();
        let t = Instant::now();
        let same = got.len() == expected.len()
            && got.iter().zip(expected).all(|(a, b)| (a.code, a.jt, a.jf, a.k) == (b.code, b.jt, b.jf, b.k));
        s.compare = t.elapsed();
        match (same, second) {
            (true, Err(_)) => Ok(()),
            (false, _) => Err(format!("installed program ({} instructions) differs", got.len())),
            (true, Ok(_)) => Err("a second filter is installed".into()),
        }
    });
    let t = Instant::now();
    let detached = ptrace(libc::PTRACE_DETACH as libc::c_long, pid, 0, 0).map_err(|e| format!("detach: {e}"));
    s.detach = t.elapsed();
    read?;
    detached?;
    Ok(s)
}

/// One cold start: a request on an unloaded driver (load, spawn, handshake,
/// `/proc` check, `post_start`, the request).
#[inline(never)]
fn cold_start(driver: &Driver) -> Result<(), umd::Error> {
    driver.call(Request::Bytes(&4096u32.to_le_bytes()), |r| {
        if r.len() == 131_072 && r[4096] == 1 {
            Ok(())
        } else {
            Err("wrong reply".to_string())
        }
    })
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

fn expected_filter() -> Result<Vec<umd_seccomp::sock_filter>, String> {
    match umd_seccomp::build(umd_seccomp::Flavor::Runtime { memfd_replies: false }, &[]) {
        Ok(mut f) if f.len() == 1 => Ok(f.remove(0)),
        other => Err(format!("building the expected filter: {:?}", other.map(|f| f.len()))),
    }
}

fn sample_driver() -> Driver {
    Driver::builder("filter-check")
        .raw(umd::wire_sample::SIZES)
        .provider(|_| Program::runtime_blob("sample", umd_blobs::SAMPLE_HANDLER).map_err(|e| e.to_string()))
        .post_start(|s| {
            s.call(Request::Bytes(&0u32.to_le_bytes()), |r| {
                if r.first() == Some(&1) {
                    Ok(())
                } else {
                    Err("offset 0 not set")
                }
            })
        })
        .build()
}

/// `ROUNDS [--no-check]`: cold starts, each followed by the check (or not, to
/// compare `perf stat` counters of the two runs).
fn cold_starts(rounds: usize, with_check: bool) -> Result<(), String> {
    let expected = expected_filter()?;
    let driver = sample_driver();
    let (mut cold, mut checks) = (Vec::new(), Vec::new());
    for i in 0..=rounds {
        let t = Instant::now();
        cold_start(&driver).map_err(|e| format!("cold start: {e}"))?;
        let c = t.elapsed();
        let pid = driver.handler_pids()[0] as libc::pid_t;
        let s = if with_check {
            check_filter(pid, &expected).map_err(|e| format!("handler {pid}: {e}"))?
        } else {
            Steps::default()
        };
        // The handler still serves after the check.
        cold_start(&driver).map_err(|e| format!("request after the check: {e}"))?;
        driver.unload();
        if i > 0 {
            // The first round warms caches.
            cold.push(c);
            checks.push(s);
        }
    }
    let m = |f: fn(&Steps) -> Duration| median(checks.iter().map(f).collect());
    let cold_m = median(cold);
    let total = m(Steps::total);
    println!("rounds                 {rounds}");
    println!("cold start (median)    {:>8.1} us", cold_m.as_secs_f64() * 1e6);
    if !with_check {
        return Ok(());
    }
    println!(
        "filter check (median)  {:>8.1} us  ({:.1}% of a cold start)",
        total.as_secs_f64() * 1e6,
        100.0 * total.as_secs_f64() / cold_m.as_secs_f64()
    );
    for (name, f) in [
        ("  seize", (|s: &Steps| s.seize) as fn(&Steps) -> Duration),
        ("  interrupt + stop", |s| s.stop),
        ("  get filter (x3)", |s| s.get),
        ("  compare", |s| s.compare),
        ("  detach", |s| s.detach),
    ] {
        println!("{name:<22} {:>8.1} us", m(f).as_secs_f64() * 1e6);
    }
    println!("expected program       {} instructions, identical in every handler", expected.len());
    Ok(())
}

/// `--hold`: starts one handler, prints its pid, keeps it until stdin closes
/// (for `--attach` under callgrind, which cannot run the loader's child).
fn hold() -> Result<(), String> {
    let driver = sample_driver();
    cold_start(&driver).map_err(|e| format!("cold start: {e}"))?;
    println!("{}", driver.handler_pids()[0]);
    let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new());
    Ok(())
}

/// `--attach PID ROUNDS`: the check alone, ROUNDS times, on a running handler.
fn attach(pid: libc::pid_t, rounds: usize) -> Result<(), String> {
    let expected = expected_filter()?;
    let mut totals = Vec::new();
    for _ in 0..rounds {
        totals.push(check_filter(pid, &expected)?.total());
    }
    println!("{rounds} checks of handler {pid}: median {:.1} us", median(totals).as_secs_f64() * 1e6);
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // SAFETY: a plain query.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("seccomp_filter_check: needs root (CAP_SYS_ADMIN for PTRACE_SECCOMP_GET_FILTER)");
        return ExitCode::from(2);
    }
    let number = |i: usize, default: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let r = match args.first().map(String::as_str) {
        Some("--hold") => hold(),
        Some("--attach") => attach(number(1, 0) as libc::pid_t, number(2, 100)),
        _ => cold_starts(number(0, 101), !args.iter().any(|a| a == "--no-check")),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("seccomp_filter_check: {e}");
            ExitCode::from(1)
        }
    }
}
