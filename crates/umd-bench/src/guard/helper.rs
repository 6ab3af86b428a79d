//! The far side of the guard's benchmark rows (`umd guard-bench-helper`): a
//! process that, inside a private mount namespace its parent created
//! (`unshare -m --propagation private`), mounts two tmpfs, installs
//! [`tiny_program`] on both, starts `umd guard` on the first only, and then
//! times batches of execs (or opens) of the program on request — one on the
//! guarded mount, one on the plain mount, alternately, so both figures share
//! every slow phase of a busy machine.
//!
//! Benchmark code, so it lives here and not in `umd-guard`: the guard's
//! library carries no bench or test helper. The `umd` binary keeps the hidden
//! `guard-bench-helper` command because `umd bench` runs it.
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

use umd_digest_list::{Builder, Digest, HashAlgo, Mark, SigningKey};

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
    let prog_bytes = tiny_program().ok_or("no tiny program for this architecture")?;
    let guarded = install(&dir, "guarded", &mut s.mounts, &prog_bytes)?;
    let plain = install(&dir, "plain", &mut s.mounts, &prog_bytes)?;
    let key = SigningKey::from_bytes(&[0x42; 32]);
    let mut b = Builder::new();
    let p = b.add_package("tiny-1-1.noarch", Mark::Verified);
    b.add_digest(&Digest::of(HashAlgo::Sha256, &prog_bytes), p).map_err(|e| err("listing", e))?;
    std::fs::write(dir.join("list"), b.finish(1_700_000_000, 1, &key))
        .map_err(|e| err("writing the list", e))?;
    let hex = umd_hash::Hex(key.verifying_key().as_bytes()).to_string();
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

/// The smallest program that runs: a static ELF executable of 129 bytes that
/// exits with status 0 (x86_64 and aarch64; `None` elsewhere). Used by tests
/// and benchmarks as "a tiny static binary" whose exec cost is nearly all
/// kernel. Bytes appended after it change its digest, not its behaviour.
pub fn tiny_program() -> Option<Vec<u8>> {
    let (machine, code): (u16, &[u8]) = if cfg!(target_arch = "x86_64") {
        // xor edi, edi; mov eax, 60 (exit); syscall
        (62, &[0x31, 0xff, 0xb8, 0x3c, 0, 0, 0, 0x0f, 0x05])
    } else if cfg!(target_arch = "aarch64") {
        // mov x0, #0; mov x8, #93 (exit); svc #0
        (183, &[0x00, 0x00, 0x80, 0xd2, 0xa8, 0x0b, 0x80, 0xd2, 0x01, 0x00, 0x00, 0xd4])
    } else {
        return None;
    };
    let base: u64 = 0x40_0000;
    let total = (64 + 56 + code.len()) as u64;
    let mut e = Vec::with_capacity(total as usize);
    e.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    e.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    e.extend_from_slice(&machine.to_le_bytes());
    e.extend_from_slice(&1u32.to_le_bytes());
    e.extend_from_slice(&(base + 120).to_le_bytes()); // entry
    e.extend_from_slice(&64u64.to_le_bytes()); // phoff
    e.extend_from_slice(&0u64.to_le_bytes()); // shoff
    e.extend_from_slice(&0u32.to_le_bytes()); // flags
    for v in [64u16, 56, 1, 64, 0, 0] {
        e.extend_from_slice(&v.to_le_bytes()); // ehsize, phentsize, phnum, shentsize, shnum, shstrndx
    }
    e.extend_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    e.extend_from_slice(&5u32.to_le_bytes()); // R + X
    for v in [0u64, base, base, total, total, 0x1000] {
        e.extend_from_slice(&v.to_le_bytes()); // offset, vaddr, paddr, filesz, memsz, align
    }
    e.extend_from_slice(code);
    Some(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tiny_program_is_a_static_elf_executable() {
        let Some(p) = tiny_program() else { return };
        assert_eq!(&p[..4], b"\x7fELF");
        assert_eq!(p.len(), 64 + 56 + if cfg!(target_arch = "x86_64") { 9 } else { 12 });
        // Entry point inside the loaded segment.
        let entry = u64::from_le_bytes(p[24..32].try_into().unwrap());
        assert!(entry >= 0x40_0000 && entry < 0x40_0000 + p.len() as u64);
    }
}
