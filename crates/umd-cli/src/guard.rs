//! `umd guard`: exec control by a signed digest list (the logic is `umd-guard`).
//!
//! This module parses options, reads the verify key, runs the guard until
//! SIGTERM/SIGINT, reloads the list on SIGHUP or when the file is replaced
//! (checked every `--reload-interval-ms`), and prints decisions (`--json`: one
//! object a line on stdout).

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};
use umd_guard::{CacheMode, Decision, Guard, GuardConfig, Mode, Scope, Verdict};

use crate::{EXIT_ERROR, EXIT_OK};

/// Options of `umd guard`.
#[derive(Args)]
#[command(after_help = "Examples:\n  \
    umd guard --digests /etc/umd/digests.list --mount /opt --audit\n  \
    umd guard --digests L --verify-key K --mount /srv/apps --enforce --json\n\n\
    Scope: ./program and ./script (the kernel opens a #! script for exec) are checked;\n\
    `sh script`, `python3 x.py` and libraries are plain opens, checked only with --open-perm.\n\
    If the guard dies the kernel allows every exec (fail-open): run it under systemd\n\
    (dist/systemd/umd-guard.service restarts it).\n\n\
    Rollback: the last accepted list's sequence number is kept in --state; a list with a\n\
    lower one is refused, at start too. A missing state file is a first run; an unreadable\n\
    or corrupt one stops the guard (exit 2) until it is repaired or removed.")]
pub struct GuardArgs {
    /// The signed digest list (`umd digests build`).
    #[arg(long, value_name = "LIST")]
    digests: PathBuf,
    /// Public key the list must be signed with (64 hex digits).
    #[arg(long, value_name = "FILE", default_value = "/etc/umd/digests.pub")]
    verify_key: PathBuf,
    /// A path whose mount is guarded (repeatable). Execs through other mounts
    /// (another mount of the same filesystem, a bind mount) are not seen unless
    /// --filesystem.
    #[arg(long = "mount", value_name = "PATH", required = true, num_args = 1..)]
    mounts: Vec<PathBuf>,
    /// Log unlisted programs but let them run.
    #[arg(long, conflicts_with = "enforce", required_unless_present = "enforce")]
    audit: bool,
    /// Deny unlisted programs (execve fails with EPERM).
    #[arg(long)]
    enforce: bool,
    /// Mark the whole filesystem of each path (every mount of it) instead of the mount.
    #[arg(long)]
    filesystem: bool,
    /// Allow a mark on the root mount (or root filesystem): every program of the
    /// system is then checked, including those the guard's own restart needs.
    #[arg(long)]
    allow_root_mount: bool,
    /// Also check every open on the marked mounts (FAN_OPEN_PERM): covers
    /// `sh script` and libraries, at a cost on every open.
    #[arg(long)]
    open_perm: bool,
    /// Where allowed verdicts are cached: kernel (fanotify ignore marks, no
    /// round trip, for files only root can write; a table for the others),
    /// user (only the table, checked against size/ctime/mtime), off.
    #[arg(long, value_enum, default_value_t = CacheArg::Kernel, value_name = "WHERE")]
    cache: CacheArg,
    /// Files larger than this many bytes are not read: denied (enforce) or
    /// allowed and logged (audit).
    #[arg(long, value_name = "BYTES", default_value_t = umd_guard::DEFAULT_MAX_FILE_SIZE)]
    max_size: u64,
    /// A decision not made within this many milliseconds is answered by the
    /// watchdog with --timeout-verdict.
    #[arg(long, value_name = "MS", default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    deadline_ms: u64,
    /// The watchdog's (and an overloaded queue's) answer.
    #[arg(long, value_enum, default_value_t = VerdictArg::Deny, value_name = "VERDICT")]
    timeout_verdict: VerdictArg,
    /// Decider threads.
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=64))]
    deciders: u64,
    /// Check the list file for replacement this often (0: only on SIGHUP).
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    reload_interval_ms: u64,
    /// Print each decision as a JSON object on its own line on stdout.
    #[arg(long)]
    json: bool,
    /// Create this file once the marks are in place (for scripts and tests).
    #[arg(long, value_name = "PATH")]
    ready_file: Option<PathBuf>,
    /// Where the sequence number of the last accepted list is kept (written
    /// atomically); a list with a lower one is refused, across restarts.
    #[arg(long, value_name = "FILE", default_value = umd_guard::state::DEFAULT_PATH)]
    state: PathBuf,
    /// Hidden test options (none in a production build).
    #[command(flatten)]
    test_hooks: TestHookArgs,
}

// `--test-hang-on` exists only in the `umd` that `cargo test` builds: this
// crate lists umd-guard with its `test-hooks` feature as a dev-dependency (see
// umd_guard::if_test_hooks). A production `umd` has no test option.
umd_guard::if_test_hooks! {{
    /// `umd guard`'s test hooks.
    #[derive(Args)]
    struct TestHookArgs {
        /// Test hook: deciders hang on files of this name.
        #[arg(long, value_name = "NAME", hide = true)]
        test_hang_on: Option<std::ffi::OsString>,
    }

    impl TestHookArgs {
        fn apply(&self, cfg: &mut GuardConfig) {
            cfg.test_hang_on = self.test_hang_on.clone();
        }
    }
} else {
    // None in this build. (A plain comment: a doc comment would become
    // clap's text, and a release binary carries no word of the hooks.)
    #[derive(Args)]
    struct TestHookArgs {}

    impl TestHookArgs {
        fn apply(&self, _: &mut GuardConfig) {}
    }
}}

#[derive(Clone, Copy, ValueEnum)]
enum CacheArg {
    Kernel,
    User,
    Off,
}

#[derive(Clone, Copy, ValueEnum)]
enum VerdictArg {
    Allow,
    Deny,
}

fn unhex32(s: &str) -> Option<[u8; 32]> {
    umd_hash::unhex(s.trim().as_bytes())?.try_into().ok()
}

/// Reads an Ed25519 public key written as 64 hex digits.
pub fn read_verify_key(path: &std::path::Path) -> Result<umd_digest_list::VerifyingKey, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("verify key {}: {e}", path.display()))?;
    let b = unhex32(&text).ok_or_else(|| format!("verify key {}: not 64 hex digits", path.display()))?;
    umd_digest_list::VerifyingKey::from_bytes(&b)
        .map_err(|_| format!("verify key {}: not a valid Ed25519 key", path.display()))
}

/// Tells systemd (`Type=notify`) about a state change, if it asked
/// (`NOTIFY_SOCKET`: a path, or an abstract name after `@`). Best effort.
fn sd_notify(state: &str) {
    use std::os::unix::net::UnixDatagram;
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else { return };
    let Ok(sock) = UnixDatagram::unbound() else { return };
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(target.as_os_str());
    let sent = match bytes.strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            std::os::unix::net::SocketAddr::from_abstract_name(name)
                .and_then(|a| sock.send_to_addr(state.as_bytes(), &a))
        }
        None => sock.send_to(state.as_bytes(), &target),
    };
    if let Err(e) = sent {
        tracing::warn!("umd guard: notifying systemd ({state}): {e}");
    }
}

/// Blocks the signals the main thread waits for, in this thread and every
/// thread started after (the guard's), so that only `sigtimedwait` sees them.
/// Must succeed: otherwise SIGTERM would kill the guard mid-decision instead of
/// stopping it cleanly.
fn block_signals() -> std::io::Result<libc::sigset_t> {
    // SAFETY: sigset manipulation on a local, then pthread_sigmask on this thread.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGHUP, libc::SIGTERM, libc::SIGINT] {
            libc::sigaddset(&mut set, s);
        }
        // pthread_sigmask returns the error number rather than setting errno.
        match libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) {
            0 => Ok(set),
            e => Err(std::io::Error::from_raw_os_error(e)),
        }
    }
}

/// Waits up to `timeout` for one of `set`; returns it, or None on timeout.
fn wait_signal(set: &libc::sigset_t, timeout: Option<Duration>) -> Option<libc::c_int> {
    let ts = timeout
        .map(|t| libc::timespec { tv_sec: t.as_secs() as libc::time_t, tv_nsec: t.subsec_nanos() as _ });
    // SAFETY: `set` and `ts` are valid for the call; the siginfo out-pointer may be NULL.
    let r = unsafe {
        match &ts {
            Some(ts) => libc::sigtimedwait(set, std::ptr::null_mut(), ts),
            None => libc::sigwaitinfo(set, std::ptr::null_mut()),
        }
    };
    (r > 0).then_some(r)
}

/// Runs `umd guard`.
pub fn run(a: &GuardArgs) -> u8 {
    let key = match read_verify_key(&a.verify_key) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("umd guard: {e}");
            return EXIT_ERROR;
        }
    };
    let mut cfg = GuardConfig::new(a.digests.clone(), key, a.mounts.clone());
    cfg.mode = if a.enforce { Mode::Enforce } else { Mode::Audit };
    cfg.scope = if a.filesystem { Scope::Filesystem } else { Scope::Mount };
    cfg.allow_root_mount = a.allow_root_mount;
    cfg.open_perm = a.open_perm;
    cfg.cache = match a.cache {
        CacheArg::Kernel => CacheMode::Kernel,
        CacheArg::User => CacheMode::User,
        CacheArg::Off => CacheMode::Off,
    };
    cfg.max_file_size = a.max_size;
    cfg.deadline = Duration::from_millis(a.deadline_ms);
    cfg.timeout_verdict = match a.timeout_verdict {
        VerdictArg::Allow => Verdict::Allow,
        VerdictArg::Deny => Verdict::Deny,
    };
    cfg.deciders = a.deciders as usize;
    a.test_hooks.apply(&mut cfg);
    cfg.state = Some(a.state.clone());
    if a.json {
        cfg.sink = Some(Arc::new(|d: &Decision| {
            if let Ok(line) = serde_json::to_string(d) {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            }
        }));
    }
    let set = match block_signals() {
        Ok(set) => set,
        Err(e) => {
            eprintln!("umd guard: blocking SIGHUP, SIGTERM and SIGINT: {e}");
            return EXIT_ERROR;
        }
    };
    let guard = match Guard::start(cfg) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("umd guard: {e}");
            return EXIT_ERROR;
        }
    };
    sd_notify("READY=1");
    if let Some(p) = &a.ready_file {
        if let Err(e) = std::fs::write(p, b"ready\n") {
            eprintln!("umd guard: writing the ready file {}: {e}", p.display());
        }
    }
    // Wake at least every second to notice a failed guard.
    let tick = Duration::from_millis(if a.reload_interval_ms == 0 { 1000 } else { a.reload_interval_ms });
    loop {
        // Outcomes (swapped in, or refused and why) are logged by the guard.
        match wait_signal(&set, Some(tick)) {
            Some(libc::SIGHUP) => {
                let _ = guard.reload();
            }
            Some(_) => break,
            None if a.reload_interval_ms > 0 => {
                let _ = guard.reload_if_changed();
            }
            None => {}
        }
        if guard.failed() {
            // Exit so that the supervisor starts a fresh guard.
            let _ = guard.stop();
            eprintln!("umd guard: stopped guarding after an error (see the log)");
            return EXIT_ERROR;
        }
    }
    sd_notify("STOPPING=1");
    let stats = guard.stop();
    if a.json {
        if let Ok(s) = serde_json::to_string(&serde_json::json!({ "stats": stats })) {
            println!("{s}");
        }
    } else {
        eprintln!(
            "umd guard: stopped: {} events, {} allowed, {} denied, {} audited, {} timeouts, {} reloads, {} refused lists",
            stats.events, stats.allowed, stats.denied, stats.audited, stats.timeouts, stats.reloads, stats.reload_refusals
        );
    }
    EXIT_OK
}

/// Options of the hidden `umd guard-bench-helper` (the far side of the guard's
/// `umd bench` rows; see `umd_bench::guard::helper`). Run inside a private mount
/// namespace only.
#[derive(Args)]
pub struct HelperArgs {
    /// What to time.
    #[arg(long, value_enum, default_value_t = OpArg::Exec)]
    op: OpArg,
    /// Extra `umd guard` options (after `--`).
    #[arg(last = true)]
    guard_args: Vec<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum OpArg {
    Exec,
    Open,
}

/// Runs the benchmark helper.
pub fn bench_helper(a: &HelperArgs) -> u8 {
    let umd = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("umd guard-bench-helper: finding this binary: {e}");
            return EXIT_ERROR;
        }
    };
    let cfg = umd_bench::guard::helper::HelperConfig {
        umd,
        guard_args: a.guard_args.clone(),
        op: match a.op {
            OpArg::Exec => umd_bench::guard::helper::Op::Exec,
            OpArg::Open => umd_bench::guard::helper::Op::Open,
        },
    };
    match umd_bench::guard::helper::run(&cfg) {
        Ok(()) => EXIT_OK,
        Err(e) => {
            eprintln!("umd guard-bench-helper: {e}");
            EXIT_ERROR
        }
    }
}

/// `umd serve --guard-*`: the exec guard hosted by the service (what `umd guard`
/// does, in the service's process). Decisions go to the service's log.
#[derive(Args, Debug, Default)]
pub struct ServeGuardArgs {
    /// Also guard execs, as `umd guard` does, with this signed digest list.
    #[arg(long, value_name = "LIST", requires_all = ["guard_mounts", "guard_mode"])]
    guard_digests: Option<PathBuf>,
    /// Public key the guard's list must be signed with (64 hex digits).
    #[arg(long, value_name = "FILE", default_value = "/etc/umd/digests.pub")]
    guard_verify_key: PathBuf,
    /// A path whose mount is guarded (repeatable).
    #[arg(long = "guard-mount", value_name = "PATH", requires = "guard_digests")]
    guard_mounts: Vec<PathBuf>,
    /// `enforce` denies unlisted programs; `audit` logs them and lets them run.
    #[arg(long, value_enum, value_name = "MODE", requires = "guard_digests")]
    guard_mode: Option<ModeArg>,
    /// Mark the whole filesystem of each path instead of its mount. Needed when
    /// the service runs in a mount namespace of its own (the unit's
    /// ProtectSystem= and PrivateTmp= give it one): a mount mark made there
    /// sees no exec outside it.
    #[arg(long, requires = "guard_digests")]
    guard_filesystem: bool,
    /// Allow a mark on the root mount or filesystem (see `umd guard --help`).
    #[arg(long, requires = "guard_digests")]
    guard_allow_root_mount: bool,
    /// Where the guard keeps the sequence number of the last accepted list (a
    /// lower one is refused, across restarts; see `umd guard --help`).
    #[arg(long, value_name = "FILE", default_value = umd_guard::state::DEFAULT_PATH)]
    guard_state: PathBuf,
}

/// `--guard-mode`.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum ModeArg {
    Audit,
    Enforce,
}

/// A guard run by the service: started before it serves, its list reloaded on
/// the service's SIGHUP and when the file is replaced (checked every second),
/// started again if it fails (the standalone `umd guard` exits for its
/// supervisor instead: the service must not), stopped after the service drains.
pub struct ServiceGuard {
    guard: Arc<std::sync::Mutex<Option<Guard>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    ticker: Option<std::thread::JoinHandle<()>>,
}

fn lock_guard(g: &std::sync::Mutex<Option<Guard>>) -> std::sync::MutexGuard<'_, Option<Guard>> {
    g.lock().unwrap_or_else(|p| p.into_inner())
}

impl ServiceGuard {
    /// Starts the guard if `--guard-digests` was given.
    pub fn start(a: &ServeGuardArgs) -> Result<Option<ServiceGuard>, String> {
        let (Some(list), Some(mode)) = (&a.guard_digests, a.guard_mode) else { return Ok(None) };
        let key = read_verify_key(&a.guard_verify_key).map_err(|e| format!("guard: {e}"))?;
        let mut cfg = GuardConfig::new(list.clone(), key, a.guard_mounts.clone());
        cfg.mode = match mode {
            ModeArg::Audit => Mode::Audit,
            ModeArg::Enforce => Mode::Enforce,
        };
        cfg.scope = if a.guard_filesystem { Scope::Filesystem } else { Scope::Mount };
        cfg.allow_root_mount = a.guard_allow_root_mount;
        cfg.state = Some(a.guard_state.clone());
        let guard = Guard::start(cfg.clone()).map_err(|e| format!("guard: {e}"))?;
        tracing::info!(list = %list.display(), mounts = ?a.guard_mounts, ?mode, "exec guard started");
        let guard = Arc::new(std::sync::Mutex::new(Some(guard)));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (g, s) = (guard.clone(), stop.clone());
        let ticker = std::thread::Builder::new()
            .name("umd-guard-tick".into())
            .spawn(move || tick(&g, &s, &cfg))
            .map_err(|e| format!("guard: starting its timer thread: {e}"))?;
        Ok(Some(ServiceGuard { guard, stop, ticker: Some(ticker) }))
    }

    /// What the service runs on SIGHUP: the list is read and checked again.
    pub fn reloader(&self) -> impl Fn() + Send + Sync + 'static {
        let g = self.guard.clone();
        move || {
            if let Some(guard) = lock_guard(&g).as_ref() {
                // The outcome (in use, or refused and why) is logged by the guard.
                let _ = guard.reload();
            }
        }
    }

    /// Stops the guard (its marks first) and logs its counters.
    pub fn stop(mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
        if let Some(guard) = lock_guard(&self.guard).take() {
            let s = guard.stop();
            tracing::info!(
                events = s.events,
                allowed = s.allowed,
                denied = s.denied,
                audited = s.audited,
                timeouts = s.timeouts,
                reloads = s.reloads,
                refused_lists = s.reload_refusals,
                "exec guard stopped"
            );
        }
    }
}

/// Every second: notice a replaced list; start a failed guard again.
fn tick(guard: &std::sync::Mutex<Option<Guard>>, stop: &std::sync::atomic::AtomicBool, cfg: &GuardConfig) {
    let step = Duration::from_millis(100);
    let mut waited = Duration::ZERO;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        std::thread::sleep(step);
        waited += step;
        if waited < Duration::from_secs(1) {
            continue;
        }
        waited = Duration::ZERO;
        let mut slot = lock_guard(guard);
        if let Some(g) = slot.take_if(|g| g.failed()) {
            let _ = g.stop();
            tracing::error!("exec guard failed (execs are let through meanwhile); starting it again");
        }
        match slot.as_ref() {
            Some(g) => {
                let _ = g.reload_if_changed();
            }
            None => match Guard::start(cfg.clone()) {
                Ok(g) => *slot = Some(g),
                Err(e) => {
                    tracing::error!(error = %e, "exec guard could not start again; retrying in a second")
                }
            },
        }
    }
}
