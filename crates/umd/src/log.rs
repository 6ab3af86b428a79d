//! A handler's stderr, drained into the manager's log.
//!
//! Each handler's stderr is a pipe the loader thread (`loader::spawner`) reads,
//! with every other handler's, until the handler closes it. Reading it always (never letting the pipe fill) means a handler that floods
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

/// One handler's stderr as the loader thread drains it.
pub(crate) struct Stream {
    driver: Arc<str>,
    pid: u32,
    fd: OwnedFd,
    bucket: Bucket,
    line: Vec<u8>,
    total: u64,
    watch: Arc<StderrWatch>,
}

/// Bytes read from one stream before the loader thread turns to other work (the
/// rest waits for the next turn): a flooding handler cannot starve the others,
/// nor starts waiting for the thread.
const TURN: usize = 256 * 1024;

impl Stream {
    /// The stream's fd, to wait on.
    pub(crate) fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// Reads what is there (up to [`TURN`] bytes), logs whole lines. Returns
    /// false at the end of the stream (the handler closed it: it has exited),
    /// after logging what was left and what was suppressed.
    pub(crate) fn drain(&mut self, buf: &mut [u8]) -> bool {
        let mut this_turn = 0;
        loop {
            let n = match rustix::io::read(&self.fd, &mut *buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(rustix::io::Errno::INTR) => continue,
                Err(rustix::io::Errno::AGAIN) => return true,
                Err(_) => break,
            };
            self.total += n as u64;
            for &b in &buf[..n] {
                if b == b'\n' {
                    self.emit();
                } else if self.line.len() < MAX_LINE {
                    self.line.push(b);
                }
            }
            this_turn += n;
            if this_turn >= TURN {
                return true;
            }
        }
        if !self.line.is_empty() {
            self.emit();
        }
        self.watch.finish();
        if self.bucket.suppressed > 0 {
            tracing::warn!(
                target: "umd::handler",
                driver = %self.driver, pid = self.pid,
                "stderr: {} lines suppressed by rate limit ({} bytes in all)", self.bucket.suppressed, self.total
            );
        }
        false
    }

    fn emit(&mut self) {
        if let Some(nr) = parse_violation(&self.line) {
            self.watch.violation.store(nr, Ordering::Relaxed);
        }
        if self.bucket.take() {
            let text = String::from_utf8_lossy(&self.line);
            tracing::warn!(target: "umd::handler", driver = %self.driver, pid = self.pid, "stderr: {}", text.escape_debug());
        }
        self.line.clear();
    }
}

/// Hands a handler's stderr to the loader thread, which drains it until the
/// handler closes it (one thread for every handler's stderr, instead of a thread
/// started and ended per handler).
pub(crate) fn pump_stderr(driver: Arc<str>, pid: u32, fd: OwnedFd) -> Arc<StderrWatch> {
    let watch = StderrWatch::new();
    if let Err(e) = rustix::io::ioctl_fionbio(&fd, true) {
        tracing::error!(driver = %driver, pid, "cannot make the handler's stderr non-blocking: {e}");
        watch.finish();
        return watch;
    }
    let stream = Stream {
        driver: driver.clone(),
        pid,
        fd,
        bucket: Bucket { tokens: BURST, last: Instant::now(), suppressed: 0 },
        line: Vec::with_capacity(MAX_LINE),
        total: 0,
        watch: watch.clone(),
    };
    if let Err(e) = crate::loader::watch_stderr(stream) {
        // Without a reader the handler would block once the pipe fills; it then
        // misses its deadline and is replaced, so this is loud but not fatal.
        tracing::error!(driver = %driver, pid, "cannot drain the handler's stderr: {e}");
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
