//! Exec-control rows: what `umd guard` adds to an `exec`.
//!
//! A helper process (`umd guard-bench-helper`, in [`helper`])
//! in a private mount namespace (`unshare -m --propagation private`) mounts two
//! tmpfs, installs the same 129-byte static program on both and starts
//! `umd guard --enforce` on the first only, with the program listed.
//!
//! * **Ours** — fork + exec + wait of the program on the guarded mount (or
//!   open + close of it). The guard's verdict is warm: cached in the kernel
//!   (ignore mark), cached in user space, or not cached (hashed each time).
//! * **Baseline** — the same on the plain mount.
//!
//! Both sides are measured in the same batches, one operation of each in turn
//! (the order alternating), and each round's two figures come from the same
//! batch: on a machine that other work slows down from second to second, a
//! 20 µs difference between two ~300 µs figures measured apart would be lost
//! in the noise. Both sides are the same program, run the same way from the
//! same process; only the guard's mark differs. Needs root (fanotify
//! permission events need CAP_SYS_ADMIN, and the helper mounts). The
//! machine's root filesystem is never marked.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use crate::pin::Pin;
use crate::{BenchError, BoxedWorkload, Workload};

pub mod helper;

/// A running helper.
pub struct GuardHelper {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

fn bad(what: &'static str, detail: impl Into<String>) -> BenchError {
    BenchError::BadReply { what, detail: detail.into() }
}

impl GuardHelper {
    /// Starts a helper: `op` is `exec` or `open`; `guard` the extra `umd guard`
    /// options.
    pub fn new(pin: Pin, op: &str, guard: &[&str]) -> Result<GuardHelper, BenchError> {
        if !rustix::process::geteuid().is_root() {
            return Err(bad("umd guard rows", "need root (fanotify permission events, mounting a tmpfs)"));
        }
        let umd = crate::verify::umd_binary()?;
        let mut cmd = Command::new("unshare");
        cmd.args(["-m", "--propagation", "private"]).arg(umd).args(["guard-bench-helper", "--op", op, "--"]);
        cmd.args(guard);
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(BenchError::io("starting unshare -m umd guard-bench-helper"))?;
        // Pinned rows: the helper, the guard it starts and every program it
        // runs share one CPU (children inherit the affinity).
        if let Err(e) = pin.apply_to_pid(child.id()) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(BenchError::Io { what: "pinning the guard helper", source: e });
        }
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(bad("starting the guard helper", "no pipes"));
        };
        let mut h = GuardHelper { child, stdin: Some(stdin), stdout: BufReader::new(stdout) };
        let line = h.line()?;
        if line != "ready" {
            return Err(bad("starting the guard helper", format!("said {line:?} instead of ready")));
        }
        Ok(h)
    }

    fn line(&mut self) -> Result<String, BenchError> {
        let mut s = String::new();
        let n = self.stdout.read_line(&mut s).map_err(BenchError::io("reading from the guard helper"))?;
        if n == 0 {
            return Err(bad("the guard helper", "exited (see its message above)"));
        }
        Ok(s.trim().to_string())
    }
}

impl GuardHelper {
    /// Runs `iters` pairs; returns (guarded, plain) time.
    pub fn pairs(&mut self, iters: u64) -> Result<(Duration, Duration), BenchError> {
        let stdin = self.stdin.as_mut().ok_or_else(|| bad("the guard helper", "closed"))?;
        writeln!(stdin, "{iters}")
            .and_then(|_| stdin.flush())
            .map_err(BenchError::io("writing to the guard helper"))?;
        let line = self.line()?;
        let mut it = line.split(' ').map(str::parse::<u64>);
        match (it.next(), it.next()) {
            (Some(Ok(g)), Some(Ok(p))) => Ok((Duration::from_nanos(g), Duration::from_nanos(p))),
            _ => Err(bad("the guard helper", line.clone())),
        }
    }
}

/// One helper shared by a row's two sides: whichever side runs first runs the
/// batch and leaves the other side's half for it.
struct Paired {
    helper: GuardHelper,
    /// (iterations, time) left for [ours, baseline].
    left: [Option<(u64, Duration)>; 2],
}

/// Helpers being shared, by row kind (a side built alone gets its own).
static PAIRED: Mutex<Vec<Slot>> = Mutex::new(Vec::new());

/// A row kind and its helper, while some side holds it.
type Slot = (&'static str, Weak<Mutex<Paired>>);

/// One side of a guard row.
pub struct Side {
    paired: Arc<Mutex<Paired>>,
    index: usize,
}

impl Side {
    fn new(kind: &'static str, index: usize, pin: Pin, op: &str, guard: &[&str]) -> Result<Side, BenchError> {
        let mut slots = PAIRED.lock().unwrap_or_else(|p| p.into_inner());
        slots.retain(|(_, w)| w.strong_count() > 0);
        if let Some(p) = slots.iter().find(|(k, _)| *k == kind).and_then(|(_, w)| w.upgrade()) {
            return Ok(Side { paired: p, index });
        }
        let p =
            Arc::new(Mutex::new(Paired { helper: GuardHelper::new(pin, op, guard)?, left: [None, None] }));
        slots.push((kind, Arc::downgrade(&p)));
        Ok(Side { paired: p, index })
    }
}

impl Workload for Side {
    fn run(&mut self, iters: u64) -> Result<Duration, BenchError> {
        let mut p = self.paired.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((n, d)) = p.left[self.index].take() {
            if n == iters {
                return Ok(d);
            }
        }
        let (g, plain) = p.helper.pairs(iters)?;
        let (mine, other) = if self.index == 0 { (g, plain) } else { (plain, g) };
        p.left[1 - self.index] = Some((iters, other));
        Ok(mine)
    }
}

impl Drop for GuardHelper {
    fn drop(&mut self) {
        // EOF stops the helper, which stops its guard and unmounts.
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

macro_rules! sides {
    ($ours:ident, $base:ident, $op:literal, $guard:expr) => {
        /// Builds our side of a row (the guarded mount).
        pub fn $ours(pin: Pin) -> Result<BoxedWorkload, BenchError> {
            Ok(Box::new(Side::new(stringify!($ours), 0, pin, $op, $guard)?))
        }
        /// Builds the baseline side of a row (the plain mount).
        pub fn $base(pin: Pin) -> Result<BoxedWorkload, BenchError> {
            Ok(Box::new(Side::new(stringify!($ours), 1, pin, $op, $guard)?))
        }
    };
}

sides!(exec_kernel_cache, exec_kernel_cache_plain, "exec", &["--cache", "kernel"]);
sides!(exec_user_cache, exec_user_cache_plain, "exec", &["--cache", "user"]);
sides!(exec_no_cache, exec_no_cache_plain, "exec", &["--cache", "off"]);
sides!(open_perm_kernel_cache, open_perm_kernel_cache_plain, "open", &["--open-perm", "--cache", "kernel"]);
sides!(open_perm_no_cache, open_perm_no_cache_plain, "open", &["--open-perm", "--cache", "off"]);
