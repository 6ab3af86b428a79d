//! A handler's stderr, drained into the manager's log.
//!
//! Each handler's stderr is a pipe read by a small thread until the handler closes
//! it. Reading it always (never letting the pipe fill) means a handler that floods
//! stderr cannot block itself into missing its deadline; logging through a token
//! bucket means it cannot flood the manager's log either. Lines are cut at
//! [`MAX_LINE`] bytes and shown escaped (the text is untrusted).
//!
//! One line is not just logged: the report a runtime handler's SIGSYS reporter
//! writes before it dies (`umd_wire::handshake::VIOLATION_PREFIX`), whose syscall
//! number is kept for the handler's fate.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use umd_wire::handshake::VIOLATION_PREFIX;

/// Longest line logged; the rest of a longer line is dropped.
pub const MAX_LINE: usize = 512;
/// Lines per second a handler may log on average.
pub const LINES_PER_SEC: f64 = 20.0;
/// Lines a handler may log in a burst.
pub const BURST: f64 = 50.0;

/// What the stderr reader learned, shared with the handler's `Process`.
#[derive(Default)]
pub(crate) struct StderrWatch {
    /// The syscall a SIGSYS reporter named, or -1.
    violation: AtomicI64,
    done: Mutex<bool>,
    cond: Condvar,
}

impl StderrWatch {
    fn new() -> Arc<StderrWatch> {
        let w = StderrWatch::default();
        w.violation.store(-1, Ordering::Relaxed);
        Arc::new(w)
    }

    /// The reported syscall, waiting up to `wait` for the reader to reach the end
    /// of the stream (the handler is dead, so the end is near).
    pub fn violation(&self, wait: Duration) -> Option<i64> {
        let until = Instant::now() + wait;
        let mut done = self.done.lock().unwrap_or_else(|p| p.into_inner());
        while !*done {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            done = self.cond.wait_timeout(done, left).unwrap_or_else(|p| p.into_inner()).0;
        }
        let v = self.violation.load(Ordering::Relaxed);
        (v >= 0).then_some(v)
    }

    fn finish(&self) {
        *self.done.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.cond.notify_all();
    }
}

struct Bucket {
    tokens: f64,
    last: Instant,
    suppressed: u64,
}

impl Bucket {
    fn take(&mut self) -> bool {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * LINES_PER_SEC).min(BURST);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            self.suppressed += 1;
            false
        }
    }
}

fn parse_violation(line: &[u8]) -> Option<i64> {
    let rest = line.strip_prefix(VIOLATION_PREFIX)?;
    std::str::from_utf8(rest).ok()?.trim().parse().ok()
}

pub(crate) fn pump_stderr(driver: Arc<str>, pid: u32, fd: OwnedFd) -> Arc<StderrWatch> {
    let watch = StderrWatch::new();
    let shared = watch.clone();
    let name = driver.clone();
    let spawned = std::thread::Builder::new().name(format!("umd-stderr-{pid}")).spawn(move || {
        let mut bucket = Bucket { tokens: BURST, last: Instant::now(), suppressed: 0 };
        let mut buf = vec![0u8; 16 * 1024];
        let mut line: Vec<u8> = Vec::with_capacity(MAX_LINE);
        let mut total: u64 = 0;
        let emit = |line: &mut Vec<u8>, bucket: &mut Bucket| {
            if let Some(nr) = parse_violation(line) {
                shared.violation.store(nr, Ordering::Relaxed);
            }
            if bucket.take() {
                let text = String::from_utf8_lossy(line);
                tracing::warn!(target: "umd::handler", driver = %driver, pid, "stderr: {}", text.escape_debug());
            }
            line.clear();
        };
        loop {
            let n = match rustix::io::read(&fd, &mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(rustix::io::Errno::INTR) => continue,
                Err(_) => break,
            };
            total += n as u64;
            for &b in &buf[..n] {
                if b == b'\n' {
                    emit(&mut line, &mut bucket);
                } else if line.len() < MAX_LINE {
                    line.push(b);
                }
            }
        }
        if !line.is_empty() {
            emit(&mut line, &mut bucket);
        }
        shared.finish();
        if bucket.suppressed > 0 {
            tracing::warn!(
                target: "umd::handler",
                driver = %driver, pid,
                "stderr: {} lines suppressed by rate limit ({} bytes in all)", bucket.suppressed, total
            );
        }
    });
    if let Err(e) = spawned {
        // Without a reader the handler would block once the pipe fills; it then
        // misses its deadline and is replaced, so this is loud but not fatal.
        tracing::error!(driver = %name, pid, "cannot start the stderr reader thread: {e}");
        watch.finish();
    }
    watch
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn violation_lines_are_recognized() {
        assert_eq!(parse_violation(b"umd-handler: seccomp violation: syscall 41"), Some(41));
        assert_eq!(parse_violation(b"umd-handler: seccomp violation: syscall x"), None);
        assert_eq!(parse_violation(b"hello"), None);
    }
}
