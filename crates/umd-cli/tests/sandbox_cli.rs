//! The sandbox seen from the `umd` binary: handlers die with their manager, and
//! the same binary works when the manager is an ordinary user.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// The unprivileged identity the root test runs the manager as (`nobody`).
const NOBODY: u32 = 65_534;

/// Kills and reaps the child on drop, so a failed test leaves no manager behind.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Children of `parent` whose `argv[0]` starts with `prefix`.
fn children_named(parent: u32, prefix: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let ppid = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok().and_then(|s| {
                let rest = &s[s.rfind(')')? + 1..];
                rest.split_whitespace().nth(1)?.parse::<u32>().ok()
            });
            let argv0 = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            ppid == Some(parent) && argv0.starts_with(prefix.as_bytes())
        })
        .collect()
}

/// Whether setpriv(1) can be run; when it cannot, a failure under
/// `UMD_REQUIRE_SANDBOX=1`, otherwise a loud skip.
fn have_setpriv() -> bool {
    if Command::new("setpriv").arg("--version").output().is_ok_and(|o| o.status.success()) {
        return true;
    }
    if std::env::var("UMD_REQUIRE_SANDBOX").as_deref() == Ok("1") {
        panic!("UMD_REQUIRE_SANDBOX=1 but setpriv (util-linux) is not installed");
    }
    let bar = "!".repeat(80);
    eprintln!(
        "\n{bar}\n!!! SKIPPED: unprivileged manager test: setpriv (util-linux) is not installed\n{bar}"
    );
    false
}

/// Whether a user who is neither the owner nor in the group can reach and run
/// `path` (every directory above it searchable, the file readable and executable).
fn others_can_run(path: &Path) -> bool {
    let others = |p: &Path, bits: u32| std::fs::metadata(p).is_ok_and(|m| m.mode() & bits == bits);
    others(path, 0o005) && path.ancestors().skip(1).all(|dir| others(dir, 0o001))
}

/// The `umd` binary, where `nobody` can run it: in place if it can, else a copy in
/// a fresh directory (mode 0755), removed by the caller.
fn umd_for_nobody() -> (PathBuf, Option<PathBuf>) {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_umd"));
    if others_can_run(&bin) {
        return (bin, None);
    }
    let dir = std::env::temp_dir().join(format!("umd-unprivileged-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).expect("creating a directory for the copy");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod 755");
    let copy = dir.join("umd");
    std::fs::copy(&bin, &copy).expect("copying the umd binary");
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).expect("chmod 755");
    assert!(others_can_run(&copy), "{} is still out of reach of other users", copy.display());
    (copy, Some(dir))
}

/// Starts a long `umd sample selftest` (with `--handler PATH` if given), waits for
/// its handler (argv[0] starting with `argv0`), SIGKILLs umd and asserts the
/// handler is gone within a second.
fn handler_dies_with_its_manager(handler: Option<&Path>, argv0: &str) {
    // A self-test long enough to be killed mid-way, never unloading: one handler.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_umd"));
    cmd.args(["sample", "selftest", "--iterations", "1000000", "--unload-every", "0", "--json"]);
    if let Some(path) = handler {
        cmd.arg("--handler").arg(path);
    }
    let manager = cmd
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting umd");
    let mut manager = Reaped(manager);
    let umd_pid = manager.0.id();
    let until = Instant::now() + Duration::from_secs(10);
    let handler = loop {
        if let [pid] = children_named(umd_pid, argv0)[..] {
            break pid;
        }
        assert!(Instant::now() < until, "umd (pid {umd_pid}) started no handler within 10 s");
        std::thread::sleep(Duration::from_millis(10));
    };
    // A pidfd pins the handler: it reports the exit even if another process (init)
    // reaps it, and a recycled pid is never mistaken for it.
    let pid = rustix::process::Pid::from_raw(handler as i32).expect("a valid pid");
    let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())
        .expect("opening a pidfd on the handler");
    manager.0.kill().expect("SIGKILL to umd");
    manager.0.wait().expect("reaping umd");
    let mut fds = [rustix::event::PollFd::new(&pidfd, rustix::event::PollFlags::IN)];
    let timeout = rustix::time::Timespec { tv_sec: 1, tv_nsec: 0 };
    let ready = rustix::event::poll(&mut fds, Some(&timeout)).expect("polling the handler's pidfd");
    if ready == 0 {
        // Do not leave it behind: it is no child of ours, so signal it by pidfd.
        let _ = rustix::process::pidfd_send_signal(&pidfd, rustix::process::Signal::KILL);
    }
    assert_eq!(ready, 1, "handler {handler} outlived its manager by more than a second");
}

#[test]
fn killing_the_manager_ends_its_handler() {
    handler_dies_with_its_manager(None, "umd-handler:");
}

#[test]
fn killing_the_manager_kills_a_handler_that_ignores_the_end_of_its_input() {
    // This handler would outlive its channel: only the parent-death signal the
    // loader sets can end it.
    let Some(lingering) = compile_c("lingering_handler") else { return };
    handler_dies_with_its_manager(Some(&lingering), "umd-sample");
}

#[test]
fn unprivileged_manager_runs_the_selftest_with_confined_handlers() {
    let args = ["sample", "selftest", "--iterations", "100", "--json"];
    let (output, copy) = if rustix::process::geteuid().is_root() {
        if !have_setpriv() {
            return;
        }
        let (bin, copy) = umd_for_nobody();
        let output = Command::new("setpriv")
            .args([&format!("--reuid={NOBODY}"), &format!("--regid={NOBODY}"), "--clear-groups", "--"])
            .arg(&bin)
            .args(args)
            .current_dir("/")
            .env_remove("RUST_LOG")
            .output()
            .expect("running umd through setpriv");
        (output, copy)
    } else {
        // Already an ordinary user: run it as is.
        (umd(&args), None)
    };
    if let Some(dir) = copy {
        let _ = std::fs::remove_dir_all(dir);
    }
    let (out, err) = text(&output);
    assert_eq!(output.status.code(), Some(0), "stdout {out}\nstderr {err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("stdout is JSON");
    assert_eq!(v["passed"], 100, "{v}");
    assert_eq!(v["failed"], 0, "{v}");
}
