//! Nothing leaks: after many load/request/unload cycles — with crashes, external
//! kills, deadline kills, failed starts, lying handlers, memfd payloads and pools —
//! this process has the same open fds, memfds, memfd mappings, threads and child
//! processes (none, not even a zombie) as before.
//!
//! Those are process-wide quantities, so this test runs in a process of its own
//! (`harness = false` in Cargo.toml) and does one thing at a time.

mod common;

use std::process::ExitCode;
use std::time::Duration;

use common::*;
use umd::{Driver, Error, FramedConfig, Request, SealedMemfd};

/// What this process holds that a handler's life could leave behind.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Resources {
    fds: usize,
    memfds: Vec<String>,
    memfd_maps: usize,
    threads: usize,
    children: Vec<u32>,
}

fn resources() -> Resources {
    let mut fds = 0;
    let mut memfds = Vec::new();
    for e in std::fs::read_dir("/proc/self/fd").expect("/proc/self/fd").flatten() {
        fds += 1;
        if let Ok(target) = std::fs::read_link(e.path()) {
            let t = target.to_string_lossy().into_owned();
            if t.starts_with("/memfd:") {
                memfds.push(t);
            }
        }
    }
    memfds.sort();
    let maps = std::fs::read_to_string("/proc/self/maps").expect("/proc/self/maps");
    let memfd_maps = maps.lines().filter(|l| l.contains("memfd:")).count();
    let threads = std::fs::read_dir("/proc/self/task").expect("/proc/self/task").count();
    Resources { fds, memfds, memfd_maps, threads, children: children() }
}

/// Child processes (running or zombie) of this process, from every task's
/// `children` list and, as a cross-check, from every process's parent pid.
fn children() -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for t in tasks.flatten() {
            if let Ok(list) = std::fs::read_to_string(t.path().join("children")) {
                out.extend(list.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
            }
        }
    }
    if let Ok(procs) = std::fs::read_dir("/proc") {
        for p in procs.flatten() {
            if let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) {
                if is_our_child(pid) {
                    out.push(pid);
                }
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Pids of every handler seen during the run, to check none is left a zombie.
struct Seen(Vec<(u32, &'static str)>);

impl Seen {
    fn note(&mut self, d: &Driver, name: &'static str) {
        self.0.extend(d.handler_pids().into_iter().map(|p| (p, name)));
    }
}

fn expect_err(what: &str, r: Result<(), Error>, ok: impl Fn(&Error) -> bool) -> Result<(), String> {
    match r {
        Err(e) if ok(&e) => Ok(()),
        other => Err(format!("{what}: unexpected outcome {other:?}")),
    }
}

/// One round of everything that starts, breaks and stops handlers.
fn cycle(seen: &mut Seen) -> Result<(), String> {
    let ok = |what: &str, r: Result<(), Error>| r.map_err(|e| format!("{what}: {e}"));

    // Explicit load, requests, unload.
    let d = sample_driver("leak-sample", 1, Duration::from_secs(5));
    d.load(sample_program()).map_err(|e| e.to_string())?;
    for o in [0, 1024, 131_071] {
        ok("sample request", request(&d, o))?;
    }
    seen.note(&d, "leak-sample");
    d.unload();
    // On-demand load through the provider, then drop without unload.
    ok("on-demand request", request(&d, 7))?;
    seen.note(&d, "leak-sample");
    drop(d);

    // A crash mid-reply, a hang past the deadline, a short reply.
    for (name, args, timeout) in [
        ("leak-crash", &["crash-mid-reply", "2"][..], 5000),
        ("leak-hang", &["hang", "2"][..], 100),
        ("leak-short", &["short-reply", "2"][..], 5000),
    ] {
        let (d, _) = hostile_driver(name, args, Duration::from_millis(timeout));
        ok(name, request(&d, 1))?;
        seen.note(&d, name);
        expect_err(name, request(&d, 2), |e| matches!(e, Error::Channel { .. } | Error::Deadline { .. }))?;
        ok(name, request(&d, 3))?;
        seen.note(&d, name);
        d.unload();
    }

    // Killed from outside while idle.
    let (d, _) = hostile_driver("leak-killed", &[], Duration::from_secs(5));
    ok("kill", request(&d, 1))?;
    let pid = d.handler_pids()[0];
    seen.0.push((pid, "leak-killed"));
    if !kill_handler(pid, "leak-killed") || !wait_until(Duration::from_secs(5), || is_our_zombie(pid)) {
        return Err(format!("could not kill handler {pid}"));
    }
    ok("after kill", request(&d, 2))?;
    seen.note(&d, "leak-killed");
    d.unload();

    // Starts that fail, and a lying handler.
    let (d, _) = hostile_driver("leak-badstart", &["bad-post-start"], Duration::from_secs(5));
    expect_err("bad post_start", request(&d, 1), |e| matches!(e, Error::PostStart { .. }))?;
    let (d, _) = hostile_driver("leak-exit", &["exit-at-start"], Duration::from_secs(5));
    expect_err("exit at start", d.load(hostile_program()), |e| matches!(e, Error::PostStart { .. }))?;
    let (d, _) = hostile_driver("leak-wrong", &["wrong-byte"], Duration::from_secs(5));
    expect_err("wrong byte", request(&d, 1), |e| matches!(e, Error::BadReply { .. }))?;
    d.unload();

    // Memfd payloads both ways, and received fds that are refused.
    let d = Driver::builder("leak-echo")
        .framed(FramedConfig { fd_passing: true, ..Default::default() })
        .args(["echo"])
        .provider(|_| Ok(echo_program()))
        .build();
    let m = SealedMemfd::build(c"leak-request", 2 << 20, |b| b.fill(3)).map_err(|e| e.to_string())?;
    let n = d
        .call(Request::Memfd(&m), |r| Ok::<_, std::convert::Infallible>(r.len()))
        .map_err(|e| e.to_string())?;
    if n != 2 << 20 {
        return Err(format!("echo of a memfd returned {n} bytes"));
    }
    drop(m);
    seen.note(&d, "leak-echo");
    d.unload();
    for mode in ["framed-unsealed-memfd", "framed-fd-with-inline", "framed-memfd-size-lie"] {
        let d = Driver::builder("leak-framed")
            .framed(FramedConfig { fd_passing: true, ..Default::default() })
            .args([mode])
            .provider(|_| Ok(hostile_program()))
            .build();
        let r = d.send_recv(b"payload").map(drop);
        expect_err(mode, r, |e| matches!(e, Error::Channel { .. }))?;
    }

    // A pool serving concurrent callers, unloaded while busy.
    let d = sample_driver("leak-pool", 3, Duration::from_secs(5));
    std::thread::scope(|s| {
        for t in 0..3u64 {
            let d = &d;
            s.spawn(move || (0..20).for_each(|i| drop(request(d, t * 1000 + i))));
        }
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(5));
            d.unload();
        });
    });
    seen.note(&d, "leak-pool");
    d.unload();
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        println!("leaks: test");
        return ExitCode::SUCCESS;
    }
    if args.iter().any(|a| a == "--ignored") {
        println!("leaks: skipped (not an ignored test)");
        return ExitCode::SUCCESS;
    }
    // `cargo test NAME` passes NAME to every test target: run only if it matches.
    if let Some(filter) = args.iter().find(|a| !a.starts_with('-')) {
        if !"leaks".contains(filter.as_str()) {
            println!("leaks: skipped (filter {filter:?})");
            return ExitCode::SUCCESS;
        }
    }
    const CYCLES: usize = 8;
    // The loader forks confined handlers from one thread that lives as long as the
    // process (`PR_SET_PDEATHSIG` follows the forking thread): start it before
    // counting, so it is part of the baseline rather than a "leak".
    let fds_at_start = resources().fds;
    {
        let d = sample_driver("warm-up", 1, Duration::from_secs(5));
        let _ = d.send_recv(&0u32.to_le_bytes());
        d.unload();
    }
    // The loader thread keeps two fds (its epoll and its eventfd); it closes the
    // warm-up handler's stderr pipe a moment after the handler was reaped, and a
    // baseline taken before that would count the pipe.
    wait_until(Duration::from_secs(5), || {
        let r = resources();
        r.threads == 2 && r.fds == fds_at_start + 2
    });
    let before = resources();
    let mut seen = Seen(Vec::new());
    for i in 0..CYCLES {
        if let Err(e) = cycle(&mut seen) {
            println!("leaks: FAILED: cycle {i}: {e}");
            return ExitCode::FAILURE;
        }
    }
    // Each handler's stderr reader thread ends when the handler's stderr closes,
    // which may be a moment after the handler was reaped.
    wait_until(Duration::from_secs(5), || resources() == before);
    let after = resources();

    let mut problems = Vec::new();
    if after != before {
        problems.push(format!("resources before {before:?}\n  after {after:?}"));
    }
    let zombies: Vec<_> = seen.0.iter().filter(|(p, _)| is_our_zombie(*p)).collect();
    if !zombies.is_empty() {
        problems.push(format!("zombie handlers: {zombies:?}"));
    }
    // No child at all is left, running or zombie: waitpid reports ECHILD.
    // SAFETY: plain system call; a null status pointer is allowed.
    let w = unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) };
    let errno = std::io::Error::last_os_error();
    if w != -1 || errno.raw_os_error() != Some(libc::ECHILD) {
        let got = if w == -1 { errno.to_string() } else { format!("child {w}") };
        problems.push(format!("waitpid(-1, WNOHANG) gave {got}, expected ECHILD (no children left)"));
    }
    if problems.is_empty() {
        println!(
            "leaks: ok: {CYCLES} cycles, {} handlers; fds {}, memfds {}, memfd mappings {}, threads {}, children {}",
            seen.0.len(),
            after.fds,
            after.memfds.len(),
            after.memfd_maps,
            after.threads,
            after.children.len()
        );
        ExitCode::SUCCESS
    } else {
        println!("leaks: FAILED:\n  {}", problems.join("\n  "));
        ExitCode::FAILURE
    }
}
