//! **Confinement**, in the order its steps run: the one place that says how a
//! handler is confined and in which order. [`crate::sandbox::Policy`] says *what*
//! is taken away; this module applies it and checks it.
//!
//! A handler parses hostile input, so it is treated as compromised from its
//! first instruction: it may compute and reply on its channel, nothing else.
//! Its life, step by step (**where** each step runs, and why it runs there):
//!
//! | # | step | where | why here |
//! |---|---|---|---|
//! | 1 | turn the policy into pre-built values ([`Prepared`]) | manager, once per load ([`Policy::prepare`](crate::sandbox::Policy::prepare), `prepare.rs`) | the child must not allocate; an unavailable layer fails the load, not a child |
//! | 2 | block every signal in the calling thread, clone with the namespaces that exist only from a clone (PID, and the user namespace of an unprivileged manager that asks for PID) | manager, per start ([`crate::loader::spawn`]) | no handler of the manager may run in a child that shares its memory; a PID namespace cannot be entered later |
//! | 3 | every caught signal back to its default, SIGPIPE too; nothing blocked | child, `in_child` | a manager's signal handler must never run in the child |
//! | 4 | channel and stderr onto fds 0, 1, 2 | child | the handler speaks only through them |
//! | 5 | every other fd close-on-exec (`close_range`) | child | no fd of the manager survives the exec |
//! | 6 | join the program's control group (optional) | child | first: its files belong to root |
//! | 7 | mount, network, IPC, UTS namespaces of a root manager (optional) | child | made while still root, so the initial user namespace owns them |
//! | 8 | credentials: bounding set emptied, no groups, gid, uid (root manager) | child | gid before uid, and the bounding set while we still may; raw system calls (see `credentials`) |
//! | 9 | user namespace and the other namespaces of an unprivileged manager, uid/gid maps (optional) | child | after the uid change, so the namespace belongs to the handler's uid |
//! | 10 | resource limits | child | after the uid change: `RLIMIT_NPROC` checked at `setuid` would count every other handler of that uid |
//! | 11 | parent-death signal, and "is the manager still there?" | child | after the credential change, which clears it |
//! | 12 | no-new-privileges | child | required by Landlock and seccomp, and before the exec |
//! | 13 | Landlock: no file, TCP, abstract socket or signal outside the domain | child | after everything that opens a file (cgroup, uid maps) |
//! | 14 | seccomp, for handlers not built on `umd-handler` (`External`): the loader's filter (`umd-seccomp`) | child | last before the exec: the filter allows the exec of the memfd and little else |
//! | 15 | `execveat(memfd, "", AT_EMPTY_PATH)`, empty environment | child | what runs is what was sealed |
//! | 16 | runtime handlers (`umd-handler`): start-up handshake — SIGSYS reporter, no-new-privileges, the prebuilt seccomp filter, then "ready" | handler, `umd_handler::confine` (its start-up, after the exec) | the runtime's own start-up calls need not be on the allow-list; a violation is reported with the call's name |
//! | 17 | the manager reads the confinement back from `/proc` ([`verify`]) | manager, before the first request (`check.rs`) | a runtime handler confines itself: the manager checks, it does not trust |
//! | 18 | `post_start` | manager | the driver's own check of a fresh handler |
//!
//! Steps 3–15 run between the clone and the exec, in `in_child`, which calls
//! them in this order; after a `CLONE_VM` start they run on the manager's memory,
//! so each makes raw, async-signal-safe system calls on pre-built data only. Every
//! result is checked: a failed step is reported to the manager as a `Stage` and
//! an errno (see `Failure`) and the child exits with `PRE_EXEC_EXIT`.
//!
//! Which layers are on by default was decided by measurement (`docs/design.md`,
//! "Sandbox layers and their cost").

mod check;
mod prepare;

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};

pub use check::{observe, verify, Observed};
pub use prepare::{landlock_abi, Prepared};

/// Pointers for `execveat`, built before the clone (the child must not allocate).
pub(crate) struct ExecArgs {
    _storage: Vec<CString>,
    argv: Vec<*const libc::c_char>,
    envp: [*const libc::c_char; 1],
}

impl ExecArgs {
    /// `argv0` and `args`, with an empty environment: the handler needs nothing
    /// from the manager's.
    pub(crate) fn new(argv0: &str, args: &[String]) -> io::Result<ExecArgs> {
        let mut storage = Vec::with_capacity(args.len() + 1);
        for a in std::iter::once(argv0).chain(args.iter().map(String::as_str)) {
            storage.push(
                CString::new(a)
                    .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "argument contains NUL"))?,
            );
        }
        let mut argv: Vec<*const libc::c_char> = storage.iter().map(|s| s.as_ptr()).collect();
        argv.push(std::ptr::null());
        Ok(ExecArgs { _storage: storage, argv, envp: [std::ptr::null()] })
    }
}

/// The fds the child puts on 0, 1 and 2.
pub(crate) struct ChildFds {
    pub(crate) stdin: i32,
    pub(crate) stdout: i32,
    pub(crate) stderr: i32,
}

/// Everything the child needs, built before the clone: the child neither
/// allocates nor takes a lock.
pub(crate) struct Child<'a> {
    pub(crate) fds: ChildFds,
    /// The sealed program (close-on-exec).
    pub(crate) memfd: i32,
    pub(crate) exec: &'a ExecArgs,
    pub(crate) sandbox: &'a Prepared,
    /// Set by the loader when the child shares the manager's memory
    /// (`CLONE_VM`): what the child must undo or avoid for the manager's sake.
    pub(crate) shared_vm: Option<SharedVm>,
    /// Set by the loader: memory the parent reads once the clone returns, where
    /// the child leaves a [`Failure`] before it exits.
    pub(crate) failure: Option<&'a AtomicU64>,
}

/// What a child that shares the manager's address space must know.
#[derive(Clone, Copy)]
pub(crate) struct SharedVm {
    /// The manager's `PR_GET_DUMPABLE` (0 or 1). The dumpable flag belongs to the
    /// address space, and the kernel resets it when the child changes its uid: the
    /// child puts the manager's value back.
    pub(crate) dumpable: libc::c_int,
}

/// The step of the child that failed before its exec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Stage {
    /// Step 3: every signal disposition back to its default, nothing blocked.
    Signals = 1,
    /// Step 4: `dup2` of the channel and stderr onto fds 0, 1 and 2.
    Stdio = 2,
    /// Step 5: `close_range(3, ~0, CLOSE_RANGE_CLOEXEC)`.
    Fds = 3,
    /// Step 6.
    Cgroup = 4,
    /// Steps 7 and 9 (`unshare`).
    Namespaces = 5,
    /// Step 8.
    Credentials = 6,
    /// Step 9 (`/proc/self/{setgroups,uid_map,gid_map}`).
    IdMaps = 7,
    /// Step 10.
    Limits = 8,
    /// Step 11.
    ParentDeath = 9,
    /// Step 12.
    NoNewPrivs = 10,
    /// Step 13.
    Landlock = 11,
    /// Step 14.
    Seccomp = 12,
    /// Step 15: `execveat` itself.
    Exec = 13,
}

impl Stage {
    const ALL: [Stage; 13] = [
        Stage::Signals,
        Stage::Stdio,
        Stage::Fds,
        Stage::Cgroup,
        Stage::Namespaces,
        Stage::Credentials,
        Stage::IdMaps,
        Stage::Limits,
        Stage::ParentDeath,
        Stage::NoNewPrivs,
        Stage::Landlock,
        Stage::Seccomp,
        Stage::Exec,
    ];

    /// What failed, and for a confinement step which one: the error message
    /// reads `"{what} in the child ({step}): {errno}"`.
    fn describe(self) -> (&'static str, Option<&'static str>) {
        let confinement = |step| ("confinement", Some(step));
        match self {
            Stage::Signals => ("resetting signals", None),
            Stage::Stdio => ("wiring fds 0-2", None),
            Stage::Fds => ("marking inherited fds close-on-exec (close_range)", None),
            Stage::Cgroup => confinement("joining the control group"),
            Stage::Namespaces => confinement("namespaces"),
            Stage::Credentials => confinement("uid, gid, groups, bounding set"),
            Stage::IdMaps => confinement("user namespace id maps"),
            Stage::Limits => confinement("resource limits"),
            Stage::ParentDeath => confinement("parent-death signal"),
            Stage::NoNewPrivs => confinement("no-new-privileges"),
            Stage::Landlock => confinement("Landlock"),
            Stage::Seccomp => confinement("seccomp"),
            Stage::Exec => ("execveat", None),
        }
    }
}

/// A step of the child that failed before its exec, and its errno: left by the
/// child in memory the parent reads once the clone has returned (`CLONE_VFORK`:
/// by then the child has exec'd or exited), as glibc's `posix_spawn` does. A
/// report cannot be lost on the way, and no pipe is needed to carry it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Failure {
    stage: Stage,
    errno: i32,
}

impl Failure {
    /// One word, so the child's store is a single write; 0 means "no failure"
    /// (every stage is non-zero).
    fn encode(self) -> u64 {
        (self.stage as u64) << 32 | u64::from(self.errno as u32)
    }

    /// The failure a slot holds, if any.
    pub(crate) fn decode(word: u64) -> Option<Failure> {
        let stage = Stage::ALL.into_iter().find(|&s| s as u64 == word >> 32)?;
        Some(Failure { stage, errno: word as u32 as i32 })
    }
}

impl From<Failure> for io::Error {
    fn from(f: Failure) -> io::Error {
        let e = io::Error::from_raw_os_error(f.errno);
        let text = match f.stage.describe() {
            (what, Some(step)) => format!("{what} in the child ({step}): {e}"),
            (what, None) => format!("{what} in the child: {e}"),
        };
        io::Error::new(e.kind(), text)
    }
}

/// The exit status of a child that failed before its exec (its [`Failure`] says
/// why), as a shell's for a command it could not execute.
pub(crate) const PRE_EXEC_EXIT: libc::c_int = 127;

/// Steps 3 to 15, in order: runs in the child between the clone and `execveat`,
/// and never returns. Only async-signal-safe system calls on pre-built data are
/// allowed here: the parent has other threads (no allocation, no locks, no libc
/// state that a fork would have reset), and after a `CLONE_VM` start the child
/// runs on a small stack of its own in the manager's memory (nothing may be
/// written there but the child's own stack and its failure slot).
pub(crate) fn in_child(c: &Child<'_>) -> ! {
    let fail = |stage: Stage| -> ! {
        // SAFETY: an errno read, a store to memory the parent keeps alive until we
        // have exited (CLONE_VFORK), and _exit: all async-signal-safe.
        unsafe {
            let errno = *libc::__errno_location();
            if let Some(slot) = c.failure {
                slot.store(Failure { stage, errno }.encode(), Ordering::Release);
            }
            libc::_exit(PRE_EXEC_EXIT);
        }
    };
    let p = c.sandbox;
    let step = |stage: Stage, r: io::Result<()>| {
        if r.is_err() {
            fail(stage);
        }
    };
    step(Stage::Signals, signals_to_default());
    step(Stage::Stdio, stdio(&c.fds));
    step(Stage::Fds, close_inherited_fds());
    step(Stage::Cgroup, join_cgroup(p));
    step(Stage::Namespaces, namespaces_as_root(p));
    step(Stage::Credentials, credentials(p, c.shared_vm));
    step(Stage::Namespaces, namespaces(p));
    step(Stage::IdMaps, id_maps(p));
    step(Stage::Limits, resource_limits(p));
    step(Stage::ParentDeath, parent_death_signal(p));
    step(Stage::NoNewPrivs, no_new_privs(p));
    step(Stage::Landlock, landlock(p));
    step(Stage::Seccomp, seccomp(p));
    exec(c);
    fail(Stage::Exec)
}

/// The kernel's `struct sigaction` for `rt_sigaction(2)` (x86_64 and aarch64 both
/// have `sa_restorer`): used instead of libc's `sigaction`, which refuses glibc's
/// internal signals — whose handlers must not run in the child either.
#[repr(C)]
struct KernelSigaction {
    handler: usize,
    flags: libc::c_ulong,
    restorer: usize,
    mask: u64,
}

/// Highest signal number on Linux (`_NSIG - 1`).
const MAX_SIGNAL: libc::c_int = 64;

/// Step 3. The parent blocked every signal before the clone, so none can arrive
/// before this point. No handler of the manager may ever run here (after a
/// `CLONE_VM` start it would run on the manager's memory): every caught signal
/// goes back to its default, ignored ones stay ignored (as across any exec)
/// except SIGPIPE, which goes back to its default too (the manager ignores it; a
/// handler writing to a vanished manager should just die). Then nothing is
/// blocked.
fn signals_to_default() -> io::Result<()> {
    // SAFETY: `rt_sigaction` and `rt_sigprocmask` on structures on our stack.
    unsafe {
        for sig in 1..=MAX_SIGNAL {
            if sig == libc::SIGKILL || sig == libc::SIGSTOP {
                continue;
            }
            let mut old = KernelSigaction { handler: 0, flags: 0, restorer: 0, mask: 0 };
            check(libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                std::ptr::null::<KernelSigaction>(),
                &mut old,
                8,
            ))?;
            if old.handler != libc::SIG_DFL && (old.handler != libc::SIG_IGN || sig == libc::SIGPIPE) {
                let dfl = KernelSigaction { handler: libc::SIG_DFL, flags: 0, restorer: 0, mask: 0 };
                check(libc::syscall(
                    libc::SYS_rt_sigaction,
                    sig,
                    &dfl,
                    std::ptr::null_mut::<KernelSigaction>(),
                    8,
                ))?;
            }
        }
        let empty: u64 = 0;
        check(libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &empty,
            std::ptr::null_mut::<u64>(),
            8,
        ))
    }
}

/// Step 4. A source already numbered 0-2 (the manager ran with a standard fd
/// closed) is first moved above 2, so no `dup2` overwrites another source, and
/// none is a `dup2` onto itself (which would keep close-on-exec).
fn stdio(fds: &ChildFds) -> io::Result<()> {
    let mut sources = [fds.stdin, fds.stdout, fds.stderr];
    // SAFETY: fcntl and dup2 on fds the parent keeps open across the clone.
    unsafe {
        for s in &mut sources {
            if *s < 3 {
                *s = libc::fcntl(*s, libc::F_DUPFD_CLOEXEC, 3);
                check((*s).into())?;
            }
        }
        for (to, from) in sources.into_iter().enumerate() {
            check(libc::dup2(from, to as i32).into())?;
        }
    }
    Ok(())
}

/// Step 5. No fd but 0, 1 and 2 survives the exec, whatever the rest of the
/// process opened without `O_CLOEXEC` (`close_range(2)` with
/// `CLOSE_RANGE_CLOEXEC`: the memfd must stay open until the exec itself).
/// Without it (Linux < 5.11) an fd of the manager could leak into the handler: no
/// start then.
fn close_inherited_fds() -> io::Result<()> {
    // SAFETY: a system call on integers.
    check(unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) })
}

/// Step 6: join the program's control group (optional). First: the cgroup files
/// belong to root.
fn join_cgroup(p: &Prepared) -> io::Result<()> {
    if let Some(cg) = &p.cgroup {
        for procs in &cg.procs {
            write_file(procs, b"0")?;
        }
    }
    Ok(())
}

/// Step 7: namespaces other than the user one need privilege, so a root
/// manager's child makes them while still root (they are then owned by the
/// initial user namespace, where the handler holds nothing). The user namespace
/// comes at step 9.
fn namespaces_as_root(p: &Prepared) -> io::Result<()> {
    let now = if p.ids.is_some() { p.clone_flags & !libc::CLONE_NEWUSER } else { 0 };
    if now != 0 {
        // SAFETY: a system call on integers.
        check(unsafe { libc::unshare(now) }.into())?;
    }
    Ok(())
}

/// Step 8 (root manager): every capability dropped from the bounding set while
/// we still may, then the groups, then gid before uid (after `setuid` we could
/// not).
///
/// Raw system calls, which change this task only. glibc's wrappers would take
/// glibc's thread-list lock and try to signal every thread on that list to change
/// its ids too: those are the manager's threads (this child has none), and after
/// a `CLONE_VM` start the list and its lock are the manager's live memory.
fn credentials(p: &Prepared, shared_vm: Option<SharedVm>) -> io::Result<()> {
    let Some((uid, gid)) = p.ids else { return Ok(()) };
    // SAFETY: system calls on integers (and a NULL group list).
    unsafe {
        for cap in 0..=63 {
            if libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 {
                // EINVAL: past the last capability this kernel knows.
                if *libc::__errno_location() == libc::EINVAL {
                    break;
                }
                return Err(io::Error::last_os_error());
            }
        }
        check(libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>()))?;
        check(libc::syscall(libc::SYS_setresgid, gid, gid, gid))?;
        check(libc::syscall(libc::SYS_setresuid, uid, uid, uid))?;
        // The uid change made the address space non-dumpable, which hands the
        // process's /proc files to root.
        let dumpable = match shared_vm {
            // That address space is still the manager's (CLONE_VM): give the
            // manager its own flag back. (No user namespace on this path, so
            // nothing below needs the child dumpable.)
            Some(vm) => vm.dumpable,
            // A copy: make it dumpable again so the child can write its own
            // uid_map at step 9. (The exec sets this flag anew anyway.)
            None => 1,
        };
        check(libc::prctl(libc::PR_SET_DUMPABLE, dumpable, 0, 0, 0).into())
    }
}

/// Step 9, first half: the namespaces left for after the identity change — the
/// user namespace of a root manager, every namespace of an unprivileged one
/// (with the user namespace in the same call: the kernel makes it first, and it
/// grants what the others need).
fn namespaces(p: &Prepared) -> io::Result<()> {
    let later = if p.ids.is_some() { p.clone_flags & libc::CLONE_NEWUSER } else { p.clone_flags };
    if later != 0 {
        // SAFETY: a system call on integers.
        check(unsafe { libc::unshare(later) }.into())?;
    }
    Ok(())
}

/// Step 9, second half: in a new user namespace (made at the clone or at the
/// step before), map the handler's uid and gid to themselves.
fn id_maps(p: &Prepared) -> io::Result<()> {
    let new_user_ns =
        p.clone_flags & libc::CLONE_NEWUSER != 0 || p.spawn_flags & libc::CLONE_NEWUSER as u64 != 0;
    if let (true, Some((up, ud)), Some((gp, gd))) = (new_user_ns, &p.uid_map, &p.gid_map) {
        write_file(&p.setgroups_path, b"deny")?;
        write_file(up, ud)?;
        write_file(gp, gd)?;
    }
    Ok(())
}

/// Step 10: limits after the identity change — `RLIMIT_NPROC` checked at `setuid`
/// time would otherwise count every other handler of the same uid.
fn resource_limits(p: &Prepared) -> io::Result<()> {
    for &(res, v) in &p.rlimits {
        let lim = libc::rlimit { rlim_cur: v, rlim_max: v };
        // SAFETY: `lim` is on our stack.
        check(unsafe { libc::setrlimit(res, &lim) }.into())?;
    }
    Ok(())
}

/// Step 11: after the credential change, which clears the parent-death signal.
/// If the manager died between the clone and here, the child goes away at once
/// (not knowable inside a new PID namespace, where the parent has no pid:
/// `getppid()` is 0).
fn parent_death_signal(p: &Prepared) -> io::Result<()> {
    if !p.policy.parent_death_signal {
        return Ok(());
    }
    // SAFETY: system calls on integers; _exit is async-signal-safe.
    unsafe {
        check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0).into())?;
        let in_new_pid_ns = p.spawn_flags & libc::CLONE_NEWPID as u64 != 0;
        if !in_new_pid_ns && libc::getppid() != p.parent_pid {
            libc::_exit(1);
        }
    }
    Ok(())
}

/// Step 12: no privilege can be gained through the exec (set-uid files, file
/// capabilities); Landlock and an unprivileged seccomp filter require it.
fn no_new_privs(p: &Prepared) -> io::Result<()> {
    if p.policy.is_confined() {
        // SAFETY: a system call on integers.
        check(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) }.into())?;
    }
    Ok(())
}

/// Step 13: the Landlock ruleset built at step 1 (every right handled, none
/// granted).
fn landlock(p: &Prepared) -> io::Result<()> {
    if let Some(fd) = &p.landlock {
        // SAFETY: a system call on an fd `p` keeps open.
        check(unsafe { libc::syscall(libc::SYS_landlock_restrict_self, fd.as_raw_fd(), 0u32) })?;
    }
    Ok(())
}

/// Step 14: the loader's seccomp filters, for handlers not built on
/// `umd-handler` (a runtime handler installs its own after the exec, step 16).
/// Last before the exec: the filter allows the exec of the memfd and little
/// else.
fn seccomp(p: &Prepared) -> io::Result<()> {
    for f in &p.external_filters {
        umd_seccomp::install(f).map_err(io::Error::from_raw_os_error)?;
    }
    Ok(())
}

/// Step 15: `execveat(memfd, "", AT_EMPTY_PATH)` with an empty environment.
/// Returns only if the exec failed (errno set).
fn exec(c: &Child<'_>) {
    let empty: &CStr = c"";
    // SAFETY: `argv` and `envp` are NULL-terminated arrays of valid C strings owned
    // by `exec`, which outlives this call; `memfd` is open (close-on-exec) here.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            c.memfd,
            empty.as_ptr(),
            c.exec.argv.as_ptr(),
            c.exec.envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        );
    }
}

/// Turns a failed call into its errno. (The child cannot allocate, so the error
/// is a bare errno; the [`Stage`] names the step.)
fn check(r: libc::c_long) -> io::Result<()> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Writes `data` to the file at `path` (in the child: open + write + close).
fn write_file(path: &CString, data: &[u8]) -> io::Result<()> {
    // SAFETY: `path` is a valid C string; the fd is closed before returning.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = libc::write(fd, data.as_ptr().cast(), data.len());
        let e = io::Error::last_os_error();
        libc::close(fd);
        if n != data.len() as isize {
            return Err(e);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_childs_failure_report_survives_its_one_word_encoding() {
        for stage in Stage::ALL {
            for errno in [0, libc::EPERM, libc::ENOEXEC, i32::MAX] {
                let f = Failure { stage, errno };
                assert_ne!(f.encode(), 0, "0 means no failure");
                assert_eq!(Failure::decode(f.encode()), Some(f));
            }
        }
        assert_eq!(Failure::decode(0), None, "an untouched slot is no failure");
    }

    #[test]
    fn a_failed_confinement_step_is_named_after_confinement_in_the_child() {
        for stage in Stage::ALL {
            let e = io::Error::from(Failure { stage, errno: libc::EPERM }).to_string();
            assert!(
                e.contains(" in the child") && e.ends_with("Operation not permitted (os error 1)"),
                "{e}"
            );
            let confinement = !matches!(stage, Stage::Signals | Stage::Stdio | Stage::Fds | Stage::Exec);
            assert_eq!(e.starts_with("confinement in the child ("), confinement, "{e}");
        }
    }
}
