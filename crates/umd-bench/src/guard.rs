//! Exec-control rows: what `umd guard` adds to an `exec`.
//!
//! * **Ours** — a helper process (`umd guard-bench-helper`, in
//!   `umd_guard::bench_helper`) in a private mount namespace (`unshare -m
//!   --propagation private`) mounts a tmpfs, installs a 129-byte static program
//!   there and starts `umd guard --enforce` on that mount only, with the program
//!   listed; then it times batches of fork + exec + wait of that program (or of
//!   open + close of its file). The guard's verdict is warm: cached in the
//!   kernel (ignore mark), cached in user space, or not cached (hashed each
//!   time).
//! * **Baseline** — the same helper with no guard.
//!
//! Why it is fair: both sides run the same helper binary, the same program on
//! the same kind of mount, the same way; only the guard differs. Needs root
//! (fanotify permission events need CAP_SYS_ADMIN, and the helper mounts).
//! The machine's root filesystem is never marked.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use crate::pin::Pin;
use crate::{BenchError, BoxedWorkload, Workload};

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
    /// options, or `None` for no guard.
    pub fn new(pin: Pin, op: &str, guard: Option<&[&str]>) -> Result<GuardHelper, BenchError> {
        if !rustix::process::geteuid().is_root() {
            return Err(bad("umd guard rows", "need root (fanotify permission events, mounting a tmpfs)"));
        }
        let umd = crate::verify::umd_binary()?;
        let mut cmd = Command::new("unshare");
        cmd.args(["-m", "--propagation", "private"]).arg(umd).args(["guard-bench-helper", "--op", op]);
        match guard {
            None => {
                cmd.arg("--no-guard");
            }
            Some(args) => {
                cmd.arg("--").args(args);
            }
        }
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

impl Workload for GuardHelper {
    fn run(&mut self, iters: u64) -> Result<Duration, BenchError> {
        let stdin = self.stdin.as_mut().ok_or_else(|| bad("the guard helper", "closed"))?;
        writeln!(stdin, "{iters}")
            .and_then(|_| stdin.flush())
            .map_err(BenchError::io("writing to the guard helper"))?;
        let line = self.line()?;
        let ns: u64 = line.parse().map_err(|_| bad("the guard helper", line.clone()))?;
        Ok(Duration::from_nanos(ns))
    }
}

impl Drop for GuardHelper {
    fn drop(&mut self) {
        // EOF stops the helper, which stops its guard and unmounts.
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

macro_rules! side {
    ($name:ident, $op:literal, $guard:expr) => {
        /// Builds this side of a row.
        pub fn $name(pin: Pin) -> Result<BoxedWorkload, BenchError> {
            Ok(Box::new(GuardHelper::new(pin, $op, $guard)?))
        }
    };
}

side!(exec_no_guard, "exec", None);
side!(exec_kernel_cache, "exec", Some(&["--cache", "kernel"]));
side!(exec_user_cache, "exec", Some(&["--cache", "user"]));
side!(exec_no_cache, "exec", Some(&["--cache", "off"]));
side!(open_no_guard, "open", None);
side!(open_perm_kernel_cache, "open", Some(&["--open-perm", "--cache", "kernel"]));
side!(open_perm_no_cache, "open", Some(&["--open-perm", "--cache", "off"]));
