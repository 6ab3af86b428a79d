//! How a handler process is started: what the child inherits and how a step that
//! fails between the clone and the exec is reported.
//!
//! The loader starts handlers with `CLONE_VM | CLONE_VFORK` (the child runs in the
//! manager's memory until its exec): these tests pin down that the child still
//! starts as a forked one did — no signal blocked, SIGPIPE at its default,
//! ignored signals ignored — and that a failure in the child names its stage and
//! errno. `spawn_credentials.rs` checks that the manager's own credentials are
//! left alone.

mod common;

use std::time::Duration;

use common::*;
use umd::sandbox::ResourceLimits;
use umd::{Driver, Error, Policy, Program};

/// A signal mask line of `/proc/PID/status` (or `/proc/thread-self/status`).
fn mask(status: &str, field: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or_else(|| panic!("no {field} in status"))
}

fn bit(sig: i32) -> u64 {
    1 << (sig - 1)
}

fn sample_with(name: &str, policy: Policy) -> Driver {
    Driver::builder(name)
        .raw(umd::wire_sample::SIZES)
        .timeout(Duration::from_secs(5))
        .policy(policy)
        .provider(|_| Ok(sample_program()))
        .post_start(sample_post_start)
        .build()
}

fn spawn_error(driver: &Driver, program: Program) -> String {
    match driver.load(program) {
        Err(e @ Error::Spawn { .. }) => e.to_string(),
        other => panic!("expected a spawn error, got {other:?}"),
    }
}

#[test]
fn a_program_the_kernel_cannot_execute_fails_at_execveat_with_its_errno() {
    // An ELF header and nothing else: the kernel refuses it (ENOEXEC) at the exec,
    // the last step of the child.
    let mut junk = b"\x7fELF\x02\x01\x01".to_vec();
    junk.resize(64, 0);
    for (name, policy) in [("exec-fail", Policy::default()), ("exec-fail-unconfined", Policy::unconfined())] {
        let d = sample_with(name, policy);
        let e = spawn_error(&d, Program::from_blob("junk", &junk).expect("an ELF magic is accepted"));
        assert!(e.contains("execveat in the child") && e.contains("Exec format error"), "{name}: {e}");
        assert!(!d.is_loaded(), "{name}: a failed start leaves the driver unloaded");
    }
}

#[test]
fn a_confinement_step_that_fails_in_the_child_is_reported_with_its_errno() {
    // More open files than the kernel's `fs.nr_open` allows: setrlimit fails with
    // EPERM in the child, root or not.
    let policy = Policy {
        limits: Some(ResourceLimits { open_files: u64::MAX, ..ResourceLimits::default() }),
        ..Policy::default()
    };
    let d = sample_with("confine-fail", policy);
    let e = spawn_error(&d, sample_program());
    assert!(e.contains("confinement in the child") && e.contains("Operation not permitted"), "{e}");
    // Nothing is left behind: the next start with a sane policy works.
    let d = sample_with("confine-ok", Policy::default());
    request(&d, 4096).expect("a sane policy starts");
    d.unload();
}

#[test]
fn a_failure_in_a_child_that_does_not_share_the_managers_memory_is_reported_too() {
    // A user namespace makes the loader start the child fork-style (clone3
    // without CLONE_VM): its report travels through a shared page instead.
    let ns = umd::sandbox::Namespaces { user: true, ..Default::default() };
    let d = sample_with("fork-ok", Policy { namespaces: ns, ..Policy::default() });
    if !kernel_has("user namespaces", request(&d, 4096).is_ok()) {
        return;
    }
    d.unload();
    let policy = Policy {
        namespaces: ns,
        limits: Some(ResourceLimits { open_files: u64::MAX, ..ResourceLimits::default() }),
        ..Policy::default()
    };
    let d = sample_with("fork-confine-fail", policy);
    let e = spawn_error(&d, sample_program());
    assert!(e.contains("confinement in the child") && e.contains("Operation not permitted"), "{e}");
    let mut junk = b"\x7fELF\x02\x01\x01".to_vec();
    junk.resize(64, 0);
    let d = sample_with("fork-exec-fail", Policy { namespaces: ns, ..Policy::default() });
    let e = spawn_error(&d, Program::from_blob("junk", &junk).expect("an ELF magic is accepted"));
    assert!(e.contains("execveat in the child") && e.contains("Exec format error"), "{e}");
}

#[test]
fn handlers_start_with_no_signal_blocked_and_ignored_signals_still_ignored() {
    // The manager (this test process) ignores SIGUSR2 and blocks SIGUSR1 in the
    // calling thread; a handler must start with nothing blocked and SIGUSR2 still
    // ignored, as across any fork and exec, and the caller's mask must be back.
    // SAFETY: plain signal calls on this process; SIG_IGN needs no handler code.
    unsafe {
        libc::signal(libc::SIGUSR2, libc::SIG_IGN);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGUSR1);
        assert_eq!(libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()), 0, "blocking SIGUSR1");
    }
    for (name, policy) in [("signals", Policy::default()), ("signals-unconfined", Policy::unconfined())] {
        let before = std::fs::read_to_string("/proc/thread-self/status").expect("own status");
        let d = sample_with(name, policy);
        request(&d, 1).expect("sample request");
        let after = std::fs::read_to_string("/proc/thread-self/status").expect("own status");
        assert_eq!(
            mask(&before, "SigBlk:"),
            mask(&after, "SigBlk:"),
            "{name}: the caller's mask is restored"
        );
        let pid = d.handler_pids()[0];
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("handler status");
        assert_eq!(mask(&status, "SigBlk:"), 0, "{name}: nothing blocked in the handler");
        // (SIGPIPE cannot be checked here: the handler's own Rust runtime ignores it
        // again at its start.)
        let ignored = mask(&status, "SigIgn:");
        assert_ne!(ignored & bit(libc::SIGUSR2), 0, "{name}: an ignored signal stays ignored");
        d.unload();
    }
}
