//! Helpers for the service tests: a `umd serve` process on a private socket.
#![allow(dead_code)] // each test target uses a different subset

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use umd_service::client::Client;

/// A config letting everyone call every driver (tests run as root: root is an
/// admin anyway).
pub const OPEN: &str = "[drivers.sample]\neveryone = true\n[drivers.pgp]\neveryone = true\n";

/// A running `umd serve`, stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Service {
    child: Option<Child>,
    /// Its socket.
    pub socket: PathBuf,
    /// Its configuration file.
    pub config: PathBuf,
    /// Its private directory.
    pub dir: PathBuf,
    /// Its log (stderr, RUST_LOG=info).
    pub log: PathBuf,
}

/// A fresh private directory (short: socket paths are limited to 108 bytes).
pub fn private_dir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "umd-svc-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating a private directory");
    dir
}

/// The `umd` binary.
pub fn umd_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_umd"))
}

impl Service {
    /// Starts `umd serve` with `config` and waits until it accepts connections.
    pub fn start(tag: &str, config: &str) -> Service {
        let dir = private_dir(tag);
        let socket = dir.join("umd.sock");
        let config_path = dir.join("umd.toml");
        std::fs::write(&config_path, config).expect("writing the configuration");
        let log = dir.join("serve.log");
        let child = Command::new(umd_bin())
            .args(["serve", "--socket"])
            .arg(&socket)
            .arg("--config")
            .arg(&config_path)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("creating the log"))
            .spawn()
            .expect("starting umd serve");
        let s = Service { child: Some(child), socket, config: config_path, dir, log };
        s.wait_ready();
        s
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if std::os::unix::net::UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("umd serve did not start; log:\n{}", self.log_text());
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// A new client connection.
    pub fn client(&self) -> Client {
        Client::connect(&self.socket).expect("connecting to the service")
    }

    /// Runs the CLI against the service (`--socket` first).
    pub fn umd(&self, args: &[&str]) -> Output {
        Command::new(umd_bin())
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("UMD_SOCKET")
            .output()
            .expect("running umd")
    }

    /// What it logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends a signal.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.pid() as i32, sig) };
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// SIGTERM, then waits up to `limit` for it to exit.
    pub fn stop(&mut self, limit: Duration) -> Option<ExitStatus> {
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + limit;
        let child = self.child.as_mut()?;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = child.try_wait() {
                self.child = None;
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// Handler pids: the service's child processes.
    pub fn children(&self) -> Vec<u32> {
        children_of(self.pid())
    }

    /// Open fds of the service, by what they are (`pipe`, `socket`,
    /// `anon_inode:[pidfd]`, a path, ...) with how many of each: two snapshots
    /// compare by kind, not by a bare count that a transient fd can move either
    /// way.
    pub fn fds(&self) -> FdKinds {
        let mut kinds = FdKinds::new();
        if let Ok(dir) = std::fs::read_dir(format!("/proc/{}/fd", self.pid())) {
            for e in dir.flatten() {
                let Ok(target) = std::fs::read_link(e.path()) else { continue };
                *kinds.entry(fd_kind(&target.to_string_lossy())).or_default() += 1;
            }
        }
        kinds
    }

    /// Threads of the service by name (`umd-conn`, `umd-stderr-...`, ...).
    pub fn threads(&self) -> Vec<String> {
        let mut names = Vec::new();
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{}/task", self.pid())) {
            for t in tasks.flatten() {
                if let Ok(comm) = std::fs::read_to_string(t.path().join("comm")) {
                    names.push(comm.trim_end().to_string());
                }
            }
        }
        names
    }

    /// Waits until the service is quiescent — no handler process, no handler
    /// stderr reader still draining a dead handler's pipe, exactly `connections`
    /// connection threads, and the same fds in two readings 100 ms apart — and
    /// returns its fds then. Panics after 30 s, saying what was still moving.
    pub fn quiescent_fds(&self, connections: usize) -> FdKinds {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = self.fds();
        loop {
            std::thread::sleep(Duration::from_millis(100));
            let threads = self.threads();
            let stderr_readers = threads.iter().filter(|t| t.starts_with("umd-stderr")).count();
            let conns = threads.iter().filter(|t| *t == "umd-conn").count();
            let children = self.children();
            let now = self.fds();
            if children.is_empty() && stderr_readers == 0 && conns == connections && now == last {
                return now;
            }
            assert!(
                Instant::now() < deadline,
                "the service never settled: children {children:?}, {stderr_readers} stderr readers, \
                 {conns} connection threads (want {connections}), fds {last:?} then {now:?}"
            );
            last = now;
        }
    }

    /// Resident memory of the service, KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }
}

/// Open fds by kind, with their number.
pub type FdKinds = std::collections::BTreeMap<String, usize>;

/// What an fd is, from its `/proc/PID/fd` link, without the inode number that
/// tells two pipes apart: `pipe`, `socket`, `anon_inode:[pidfd]`, `memfd:NAME`,
/// or the path.
pub fn fd_kind(target: &str) -> String {
    if let Some((kind, _)) = target.split_once(":[") {
        if kind == "pipe" || kind == "socket" {
            return kind.to_string();
        }
    }
    match target.strip_prefix("/memfd:") {
        Some(name) => format!("memfd:{}", name.trim_end_matches(" (deleted)")),
        None => target.to_string(),
    }
}

/// The difference between two fd snapshots, for a failure message:
/// `+1 pipe, -1 socket`.
pub fn fd_diff(before: &FdKinds, after: &FdKinds) -> String {
    let mut out = Vec::new();
    for k in before.keys().chain(after.keys()).collect::<std::collections::BTreeSet<_>>() {
        let (b, a) = (before.get(k).copied().unwrap_or(0), after.get(k).copied().unwrap_or(0));
        if a != b {
            out.push(format!("{:+} {k}", a as i64 - b as i64));
        }
    }
    out.join(", ")
}

/// Child processes of `pid` (every thread's children).
pub fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(c) = std::fs::read_to_string(t.path().join("children")) {
                out.extend(c.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
            }
        }
    }
    out
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
        // Its directory may hold a copy of the umd binary (authorization tests).
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Service {
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs the CLI with `args` (no socket).
pub fn umd(args: &[&str]) -> Output {
    Command::new(umd_bin()).args(args).env_remove("UMD_SOCKET").output().expect("running umd")
}

/// stdout and stderr as text.
pub fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// Whether tests that need root must run (UMD_REQUIRE_SANDBOX=1) or may skip.
pub fn require_root(what: &str) -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    if std::env::var("UMD_REQUIRE_SANDBOX").as_deref() == Ok("1") {
        panic!("{what} needs root (UMD_REQUIRE_SANDBOX=1)");
    }
    eprintln!("SKIPPED: {what} needs root");
    false
}
