//! The far side of the guard's benchmark rows: a process that, inside a private
//! mount namespace its parent created (`unshare -m --propagation private`),
//! mounts a tmpfs, installs [`tiny_program`](crate::tiny_program) there, starts
//! `umd guard` on that mount (unless told not to), and then times batches of
//! execs (or opens) of the tiny program on request.
//!
//! Protocol on stdin/stdout, one line each: the helper prints `ready` once set
//! up and warmed; then for each line `N` it runs N operations and prints the
//! nanoseconds they took (or `error: ...`). EOF stops the guard and exits.
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
    /// `None`: no guard (the baseline). `Some(args)`: extra `umd guard` options,
    /// e.g. `["--cache", "kernel"]`.
    pub guard_args: Option<Vec<String>>,
    /// What to time.
    pub op: Op,
}

fn err(what: &str, e: impl std::fmt::Display) -> String {
    format!("{what}: {e}")
}

struct Setup {
    dir: PathBuf,
    mnt: PathBuf,
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
        let _ = Command::new("umount").arg(&self.mnt).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn setup(cfg: &HelperConfig) -> Result<(Setup, PathBuf), String> {
    let dir = std::env::temp_dir().join(format!("umd-guard-bench-{}", std::process::id()));
    let mnt = dir.join("mnt");
    std::fs::create_dir_all(&mnt).map_err(|e| err("creating the bench directory", e))?;
    let mut s = Setup { dir: dir.clone(), mnt: mnt.clone(), guard: None };
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "umd-guard-bench"])
        .arg(&mnt)
        .status()
        .map_err(|e| err("running mount", e))?;
    if !st.success() {
        return Err(format!("mounting a tmpfs on {}: {st}", mnt.display()));
    }
    let prog_bytes = crate::tiny_program().ok_or("no tiny program for this architecture")?;
    let prog = mnt.join("tiny");
    std::fs::write(&prog, &prog_bytes).map_err(|e| err("writing the tiny program", e))?;
    std::fs::set_permissions(&prog, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .map_err(|e| err("chmod", e))?;
    if let Some(args) = &cfg.guard_args {
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
            .arg(&mnt)
            .args(["--enforce", "--reload-interval-ms", "0", "--ready-file"])
            .arg(&ready)
            .args(args)
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
    }
    Ok((s, prog))
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
    let (_setup, prog) = setup(cfg)?;
    // Warm: the first run makes the guard decide (and cache) once.
    for _ in 0..3 {
        once(cfg.op, &prog)?;
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready").and_then(|_| out.flush()).map_err(|e| err("stdout", e))?;
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| err("stdin", e))?;
        let n: u64 = line.trim().parse().map_err(|e| err("a batch size", e))?;
        let t0 = Instant::now();
        let r = (0..n).try_for_each(|_| once(cfg.op, &prog));
        let ns = t0.elapsed().as_nanos();
        match r {
            Ok(()) => writeln!(out, "{ns}"),
            Err(e) => writeln!(out, "error: {e}"),
        }
        .and_then(|_| out.flush())
        .map_err(|e| err("stdout", e))?;
    }
    Ok(())
}
