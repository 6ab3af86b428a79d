//! The far side of the guard's benchmark rows: a process that, inside a private
//! mount namespace its parent created (`unshare -m --propagation private`),
//! mounts two tmpfs, installs [`tiny_program`](crate::tiny_program) on both,
//! starts `umd guard` on the first only, and then times batches of execs (or
//! opens) of the program on request — one on the guarded mount, one on the
//! plain mount, alternately, so both figures share every slow phase of a
//! busy machine.
//!
//! Protocol on stdin/stdout, one line each: the helper prints `ready` once set
//! up and warmed; then for each line `N` it runs N pairs of operations and
//! prints `GUARDED_NS PLAIN_NS`, the time each half took (or `error: ...`).
//! EOF stops the guard and exits.
//!
//! The guard must be another process: it always allows its own process, so
//! execs from the helper would never be checked if the guard ran inside it.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use umd_digest_list::{Builder, Mark, SigningKey, ALGO_SHA256};

/// What the helper measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// fork + exec + wait of the tiny program.
    Exec,
    /// open + close of the tiny program's file.
    Open,
}

/// How the helper is set up.
#[derive(Clone, Debug)]
pub struct HelperConfig {
    /// The `umd` binary (to start `umd guard`).
    pub umd: PathBuf,
    /// Extra `umd guard` options, e.g. `["--cache", "kernel"]`.
    pub guard_args: Vec<String>,
    /// What to time.
    pub op: Op,
}

fn err(what: &str, e: impl std::fmt::Display) -> String {
    format!("{what}: {e}")
}

struct Setup {
    dir: PathBuf,
    mounts: Vec<PathBuf>,
    guard: Option<Child>,
}

impl Drop for Setup {
    fn drop(&mut self) {
        if let Some(mut g) = self.guard.take() {
            if let Ok(pid) = i32::try_from(g.id()) {
                if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
                }
            }
            let _ = g.wait();
        }
        for m in &self.mounts {
            let _ = Command::new("umount").arg(m).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn install(dir: &Path, name: &str, mounts: &mut Vec<PathBuf>, prog: &[u8]) -> Result<PathBuf, String> {
    let mnt = dir.join(name);
    std::fs::create_dir_all(&mnt).map_err(|e| err("creating a mount point", e))?;
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "umd-guard-bench"])
        .arg(&mnt)
        .status()
        .map_err(|e| err("running mount", e))?;
    if !st.success() {
        return Err(format!("mounting a tmpfs on {}: {st}", mnt.display()));
    }
    mounts.push(mnt.clone());
    let path = mnt.join("tiny");
    std::fs::write(&path, prog).map_err(|e| err("writing the tiny program", e))?;
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .map_err(|e| err("chmod", e))?;
    Ok(path)
}

/// Returns the set-up (torn down on drop) and the guarded and plain programs.
fn setup(cfg: &HelperConfig) -> Result<(Setup, PathBuf, PathBuf), String> {
    let dir = std::env::temp_dir().join(format!("umd-guard-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| err("creating the bench directory", e))?;
    let mut s = Setup { dir: dir.clone(), mounts: Vec::new(), guard: None };
    let prog_bytes = crate::tiny_program().ok_or("no tiny program for this architecture")?;
    let guarded = install(&dir, "guarded", &mut s.mounts, &prog_bytes)?;
    let plain = install(&dir, "plain", &mut s.mounts, &prog_bytes)?;
    let key = SigningKey::from_bytes(&[0x42; 32]);
    let mut b = Builder::new();
    let p = b.add_package("tiny-1-1.noarch", Mark::Verified);
    let d = umd_digest_list::hash(ALGO_SHA256, &prog_bytes).ok_or("hashing")?;
    b.add_digest(ALGO_SHA256, &d, p).map_err(|e| err("listing", e))?;
    std::fs::write(dir.join("list"), b.finish(1_700_000_000, 1, &key))
        .map_err(|e| err("writing the list", e))?;
    let hex = crate::hash::hex(key.verifying_key().as_bytes());
    std::fs::write(dir.join("key.pub"), hex).map_err(|e| err("writing the key", e))?;
    let ready = dir.join("ready");
    let child = Command::new(&cfg.umd)
        .arg("guard")
        .arg("--digests")
        .arg(dir.join("list"))
        .arg("--verify-key")
        .arg(dir.join("key.pub"))
        .arg("--mount")
        .arg(&s.mounts[0])
        // Its own state file: never the machine's.
        .arg("--state")
        .arg(dir.join("guard.state"))
        .args(["--enforce", "--reload-interval-ms", "0", "--ready-file"])
        .arg(&ready)
        .args(&cfg.guard_args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| err("starting umd guard", e))?;
    s.guard = Some(child);
    let t0 = Instant::now();
    while !ready.exists() {
        if let Some(g) = s.guard.as_mut() {
            if let Ok(Some(st)) = g.try_wait() {
                return Err(format!("umd guard exited at start: {st}"));
            }
        }
        if t0.elapsed() > Duration::from_secs(20) {
            return Err("umd guard not ready after 20 s".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok((s, guarded, plain))
}

fn once(op: Op, prog: &Path) -> Result<(), String> {
    match op {
        Op::Exec => {
            let st = Command::new(prog).status().map_err(|e| err("exec", e))?;
            if st.success() {
                Ok(())
            } else {
                Err(format!("the tiny program exited with {st}"))
            }
        }
        Op::Open => std::fs::File::open(prog).map(drop).map_err(|e| err("open", e)),
    }
}

/// Runs the helper until stdin closes.
pub fn run(cfg: &HelperConfig) -> Result<(), String> {
    let (_setup, guarded, plain) = setup(cfg)?;
    // Warm: the first run makes the guard decide (and cache) once.
    for _ in 0..3 {
        once(cfg.op, &guarded)?;
        once(cfg.op, &plain)?;
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready").and_then(|_| out.flush()).map_err(|e| err("stdout", e))?;
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| err("stdin", e))?;
        let n: u64 = line.trim().parse().map_err(|e| err("a batch size", e))?;
        let (mut g, mut p) = (Duration::ZERO, Duration::ZERO);
        let r = (0..n).try_for_each(|i| {
            // Alternate which goes first, so neither always follows the other.
            let order = if i % 2 == 0 {
                [(&guarded, &mut g), (&plain, &mut p)]
            } else {
                [(&plain, &mut p), (&guarded, &mut g)]
            };
            for (prog, acc) in order {
                let t0 = Instant::now();
                once(cfg.op, prog)?;
                *acc += t0.elapsed();
            }
            Ok::<(), String>(())
        });
        match r {
            Ok(()) => writeln!(out, "{} {}", g.as_nanos(), p.as_nanos()),
            Err(e) => writeln!(out, "error: {e}"),
        }
        .and_then(|_| out.flush())
        .map_err(|e| err("stdout", e))?;
    }
    Ok(())
}
