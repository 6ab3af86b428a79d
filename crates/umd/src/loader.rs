//! The **loader**: holds a handler program (the blob) in a sealed memfd and starts
//! handler processes from it.
//!
//! In the kernel design the loader copies the blob to a private in-memory
//! filesystem and executes it there. Here the blob goes into a memfd
//! (`memfd_create(2)`), is sealed against any change (`F_SEAL_WRITE | SHRINK | GROW
//! | SEAL`), and every handler is started from that fd with `execveat(2)` and
//! `AT_EMPTY_PATH`: no writable path on disk is ever involved, and what runs is
//! exactly what was sealed.
//!
//! Starting a handler ([`spawn`]) is a clone that returns a pidfd, the child's
//! set-up, then `execveat`. The clone is `CLONE_VM | CLONE_VFORK`, as `posix_spawn` does:
//! the child runs in the manager's address space, on a stack of its own, until
//! its exec, so no page table is copied (a fork's cost grows with the manager's
//! memory). Policies that make a user namespace use a fork-style `clone3`
//! instead. Between the clone and the exec the child runs
//! [`crate::confine`]'s steps, in the order that module lists them; the loader
//! only provides the clone, the failure slot and the fds.

use std::ffi::CString;
use std::fmt;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::net::{AddressFamily, SocketFlags, SocketType};
use rustix::pipe::PipeFlags;
use umd_wire::memfd::{Exec, SealedMemfd};

use crate::confine::{self, Child, ChildFds, ExecArgs, Failure, Prepared, SharedVm};
use crate::error::HandlerFate;
use crate::log::StderrWatch;

/// Largest handler program accepted from a file: 256 MiB.
pub const MAX_PROGRAM_SIZE: u64 = 256 << 20;

/// Whether a program is built on the `umd-handler` runtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProgramKind {
    /// Built on `umd-handler`: it runs the start-up handshake and installs its
    /// seccomp filter itself (violations are reported with the call's name).
    Runtime,
    /// Any other program speaking the wire format (a C handler, say): the loader
    /// installs its seccomp filter before `execveat`.
    External,
}

/// A handler program sealed in a memfd, ready to be started any number of times.
/// Cloning shares the memfd; it is closed when the last clone is dropped (unload).
#[derive(Clone)]
pub struct Program {
    name: Arc<str>,
    memfd: Arc<SealedMemfd>,
    kind: ProgramKind,
    dynamic: bool,
}

impl fmt::Debug for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Program")
            .field("name", &self.name)
            .field("len", &self.memfd.len())
            .field("kind", &self.kind)
            .finish()
    }
}

impl Program {
    /// Copies an embedded blob of a handler built on `umd-handler` into a sealed
    /// memfd.
    ///
    /// ```
    /// let p = umd::Program::runtime_blob("sample", umd_blobs::SAMPLE_HANDLER).unwrap();
    /// assert_eq!(p.name(), "sample");
    /// ```
    pub fn runtime_blob(name: &str, blob: &[u8]) -> io::Result<Program> {
        Program::new(name, blob, ProgramKind::Runtime)
    }

    /// Copies a blob of a handler *not* built on `umd-handler` into a sealed memfd.
    pub fn from_blob(name: &str, blob: &[u8]) -> io::Result<Program> {
        Program::new(name, blob, ProgramKind::External)
    }

    fn new(name: &str, blob: &[u8], kind: ProgramKind) -> io::Result<Program> {
        check_executable(name, blob)?;
        let dynamic = has_interpreter(blob);
        let memfd_name = memfd_name(name);
        let memfd = SealedMemfd::from_bytes(&memfd_name, blob, Exec::Program)?;
        Ok(Program { name: name.into(), memfd: Arc::new(memfd), kind, dynamic })
    }

    /// Reads a program file once into a sealed memfd (for handlers written in other
    /// languages, [`ProgramKind::External`]). The file is never executed in place.
    /// Every error names the file.
    ///
    /// ```
    /// let e = umd::Program::from_path(std::path::Path::new("/nonexistent/handler")).unwrap_err();
    /// assert_eq!(e.to_string(), "/nonexistent/handler: No such file or directory (os error 2)");
    /// let e = umd::Program::from_path(std::path::Path::new("/etc/hostname")).unwrap_err();
    /// assert!(e.to_string().starts_with("/etc/hostname is not an ELF executable"));
    /// ```
    pub fn from_path(path: &Path) -> io::Result<Program> {
        let named = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
        let file = std::fs::File::open(path).map_err(named)?;
        let len = file.metadata().map_err(named)?.len();
        if len > MAX_PROGRAM_SIZE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: {len} bytes is larger than the {MAX_PROGRAM_SIZE}-byte limit for a handler program",
                    path.display()
                ),
            ));
        }
        let mut bytes = Vec::with_capacity(len as usize);
        file.take(MAX_PROGRAM_SIZE + 1).read_to_end(&mut bytes).map_err(named)?;
        let name = path.display().to_string();
        Program::from_blob(&name, &bytes)
    }

    /// Whether the program is built on `umd-handler`.
    pub fn kind(&self) -> ProgramKind {
        self.kind
    }

    /// Whether the program is dynamically linked (has an ELF interpreter). Such a
    /// program cannot run confined: Landlock leaves it no library to load.
    pub fn is_dynamic(&self) -> bool {
        self.dynamic
    }

    /// The program's name (blob name or file path).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Size of the program in bytes.
    pub fn len(&self) -> u64 {
        self.memfd.len()
    }

    /// Whether the program is empty (never true for a loadable program).
    pub fn is_empty(&self) -> bool {
        self.memfd.is_empty()
    }
}

fn memfd_name(name: &str) -> CString {
    // memfd names show in /proc/PID/fd links; keep them short and NUL-free.
    let short: String =
        name.rsplit('/').next().unwrap_or(name).chars().filter(|&c| c != '\0').take(200).collect();
    CString::new(format!("umd:{short}")).unwrap_or_else(|_| c"umd".to_owned())
}

/// Refuses what cannot run from a sealed memfd: the fd is close-on-exec, so an
/// interpreter could not reopen a script, and only ELF executables are handlers.
fn check_executable(name: &str, blob: &[u8]) -> io::Result<()> {
    if blob.starts_with(b"#!") {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{name} is a script: a handler must be an ELF executable (it runs from a sealed memfd)"),
        ));
    }
    if !blob.starts_with(b"\x7fELF") {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{name} is not an ELF executable (a handler is a compiled, statically linked program)"),
        ));
    }
    Ok(())
}

/// Whether an ELF image asks for a program interpreter (`PT_INTERP`): that is, is
/// dynamically linked. Reads only the program headers; a malformed header counts
/// as "no interpreter" (the exec will then fail on its own).
fn has_interpreter(elf: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    let u16_at = |o: usize| elf.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| elf.get(o..o + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let u64_at = |o: usize| elf.get(o..o + 8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes);
    // 64-bit little-endian ELF only (the architectures we build for).
    if elf.get(4) != Some(&2) || elf.get(5) != Some(&1) {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38)) else {
        return false;
    };
    (0..usize::from(phnum)).any(|i| {
        usize::try_from(phoff)
            .ok()
            .and_then(|off| off.checked_add(i.checked_mul(usize::from(phentsize))?))
            .and_then(u32_at)
            == Some(PT_INTERP)
    })
}

/// How the handler's fd 0 and fd 1 are connected to the manager.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// Two pipes: fd 0 reads requests, fd 1 writes replies (the kernel's layout).
    Pipes,
    /// One Unix stream socket on both fd 0 and fd 1, so sealed memfds can travel
    /// with `SCM_RIGHTS`. Reads and writes work as on pipes.
    SocketPair,
}

/// What a spawn needs besides the program.
#[derive(Clone, Debug)]
pub struct SpawnSpec {
    /// Driver name (logs, thread names).
    pub driver: Arc<str>,
    /// Arguments after `argv[0]`.
    pub args: Vec<String>,
    /// Channel layout.
    pub transport: Transport,
    /// Pipe buffer size to request for the reply pipe (pipes only).
    pub reply_pipe_size: Option<usize>,
    /// Pipe buffer size to request for the request pipe (pipes only).
    pub request_pipe_size: Option<usize>,
}

/// A running handler process: its channel ends and the process itself. Dropping it
/// kills (SIGKILL) and reaps the process, so no zombie is left behind.
pub struct Process {
    child: RawChild,
    /// Manager's read end (handler's fd 1).
    pub(crate) rx: OwnedFd,
    /// Manager's write end (handler's fd 0); the same socket as `rx` for socket pairs.
    pub(crate) tx: OwnedFd,
    pub(crate) socket: bool,
    fate: Option<HandlerFate>,
    stderr: Option<Arc<StderrWatch>>,
}

impl fmt::Debug for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Process").field("pid", &self.child.id()).field("socket", &self.socket).finish()
    }
}

impl Process {
    /// The handler's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The handler's pidfd: readable once the process has exited.
    pub(crate) fn pidfd(&self) -> BorrowedFd<'_> {
        self.child.pidfd.as_fd()
    }

    /// A shared handle on the pidfd, to signal the process from another thread
    /// (a signal through a pidfd never hits a recycled pid).
    pub(crate) fn pidfd_handle(&self) -> Arc<OwnedFd> {
        self.child.pidfd.clone()
    }

    /// Returns how the process ended if it has, without blocking.
    pub(crate) fn try_fate(&mut self) -> Option<HandlerFate> {
        if self.fate.is_none() {
            if let Some(status) = self.child.try_wait() {
                self.fate = Some(self.explain(fate_of(status)));
            }
        }
        self.fate.clone()
    }

    /// Ends the process: waits up to `grace` for it to exit by itself (so a crash is
    /// reported as the crash), then SIGKILLs it and reaps it. Returns the first
    /// recorded cause.
    pub(crate) fn shut_down(&mut self, grace: Duration, why: &'static str) -> HandlerFate {
        if let Some(f) = self.try_fate() {
            return f;
        }
        if !grace.is_zero() && self.child.wait_exit(grace) {
            if let Some(f) = self.try_fate() {
                return f;
            }
        }
        self.child.kill();
        let fate = match self.child.wait() {
            Some(status) if status.signal() == Some(libc::SIGKILL) => HandlerFate::KilledByManager(why),
            Some(status) => self.explain(fate_of(status)),
            None => HandlerFate::Unknown,
        };
        self.fate = Some(fate.clone());
        fate
    }

    /// A death by SIGSYS is a seccomp violation; a runtime handler named the call on
    /// its stderr just before it died.
    fn explain(&self, fate: HandlerFate) -> HandlerFate {
        match fate {
            HandlerFate::Signaled(libc::SIGSYS) => {
                let nr = self.stderr.as_ref().and_then(|w| w.violation(Duration::from_millis(200)));
                HandlerFate::SeccompViolation { syscall: nr, name: nr.and_then(umd_seccomp::syscall_name) }
            }
            other => other,
        }
    }
}

fn fate_of(status: std::process::ExitStatus) -> HandlerFate {
    match (status.code(), status.signal()) {
        (Some(c), _) => HandlerFate::Exited(c),
        (None, Some(s)) => HandlerFate::Signaled(s),
        _ => HandlerFate::Unknown,
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.fate.is_none() {
            self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Starts one handler process from `program`, confined as `sandbox` says.
///
/// When the policy asks for a parent-death signal the clone happens on a thread
/// that lives as long as the process: `PR_SET_PDEATHSIG` fires when the *thread*
/// that started the child exits, and callers' threads come and go. The main
/// thread lives as long as the process (a Rust program ends when `main` returns),
/// so it starts its handlers itself; any other thread hands the start to the
/// dedicated `umd-spawner` thread (two thread wake-ups). That thread is started
/// with the first confined start, from whichever thread, so the process's threads
/// do not depend on which thread started a handler first. (A C program whose main
/// thread calls `pthread_exit` while others go on would see handlers started
/// from it killed: start them from another thread there.)
pub fn spawn(program: &Program, spec: &SpawnSpec, sandbox: &Arc<Prepared>) -> io::Result<Process> {
    if !sandbox.policy().parent_death_signal {
        return spawn_here(program, spec, sandbox);
    }
    if on_main_thread() {
        spawner::ensure_running()?;
        return spawn_here(program, spec, sandbox);
    }
    let (program, spec, sandbox) = (program.clone(), spec.clone(), sandbox.clone());
    spawner::run(move || spawn_here(&program, &spec, &sandbox))
}

/// Whether the calling thread is the process's main thread (its tid is the pid).
fn on_main_thread() -> bool {
    rustix::thread::gettid() == rustix::process::getpid()
}

fn spawn_here(program: &Program, spec: &SpawnSpec, sandbox: &Arc<Prepared>) -> io::Result<Process> {
    // A runtime handler learns from argv[0] that the manager will run the start-up
    // handshake with it.
    let argv0 = match program.kind {
        ProgramKind::Runtime => format!("{}{}", umd_wire::handshake::ARGV0_PREFIX, spec.driver),
        ProgramKind::External => format!("umd-{}", spec.driver),
    };
    let exec = ExecArgs::new(&argv0, &spec.args)?;
    let memfd = program.memfd.as_fd().as_raw_fd();

    // The handler's ends (`theirs`) and ours, all close-on-exec until the child
    // puts its ends on 0, 1 and 2.
    let (rx, tx, their_in, their_out, socket) = match spec.transport {
        Transport::Pipes => {
            let (req_r, req_w) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC)?;
            let (rep_r, rep_w) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC)?;
            // Bigger pipes mean fewer wake-ups for large messages; failure (limit
            // reached, unprivileged) only costs speed.
            if let Some(size) = spec.reply_pipe_size {
                let _ = rustix::pipe::fcntl_setpipe_size(&rep_r, size);
            }
            if let Some(size) = spec.request_pipe_size {
                let _ = rustix::pipe::fcntl_setpipe_size(&req_w, size);
            }
            (rep_r, req_w, req_r, rep_w, false)
        }
        Transport::SocketPair => {
            let (mine, theirs) =
                rustix::net::socketpair(AddressFamily::UNIX, SocketType::STREAM, SocketFlags::CLOEXEC, None)?;
            let mine2 = mine.try_clone()?;
            let theirs2 = theirs.try_clone()?;
            (mine, mine2, theirs, theirs2, true)
        }
    };
    let (err_r, err_w) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC)?;

    let args = Child {
        fds: ChildFds {
            stdin: their_in.as_raw_fd(),
            stdout: their_out.as_raw_fd(),
            stderr: err_w.as_raw_fd(),
        },
        memfd,
        exec: &exec,
        sandbox: sandbox.as_ref(),
        shared_vm: None,
        failure: None,
    };
    // Returns once the child has exec'd, or failed before (a stage and an errno)
    // and exited.
    let (child, failure) =
        RawChild::spawn(sandbox.clone_flags_for_spawn(), sandbox.shares_address_space(), args)?;
    drop((their_in, their_out, err_w));
    let mut process = Process { child, rx, tx, socket, fate: None, stderr: None };
    if let Some(failure) = failure {
        process.shut_down(Duration::ZERO, "start failed");
        return Err(failure.into());
    }
    // Deadlines need non-blocking ends: every wait is a bounded poll.
    if let Err(e) = rustix::io::ioctl_fionbio(&process.rx, true)
        .and_then(|()| rustix::io::ioctl_fionbio(&process.tx, true))
    {
        process.shut_down(Duration::ZERO, "set-up failed");
        return Err(e.into());
    }
    process.stderr = Some(crate::log::pump_stderr(spec.driver.clone(), process.pid(), err_r));
    Ok(process)
}

/// A child process started with `clone3(2)`, held by pid and pidfd. Signals go
/// through the pidfd, so a recycled pid is never hit; the pid stays ours (and
/// valid) until we reap it.
pub(crate) struct RawChild {
    pid: libc::pid_t,
    /// Shared with the driver's registry of handlers, which signals through it
    /// (`Driver::kill_handlers`).
    pidfd: Arc<OwnedFd>,
    reaped: bool,
}

/// `struct clone_args` (linux/sched.h), the fields up to `cgroup` (size 88).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// Stack of a child that shares the manager's memory. The child runs the
/// confinement steps only (no allocation, no recursion); 128 KiB is several
/// times what a debug build uses. Below it, one inaccessible guard page: an
/// overflow kills the child instead of writing into the manager's memory.
const CHILD_STACK: usize = 128 << 10;
const GUARD: usize = 4096;

/// A private stack mapping, unmapped on drop.
struct ChildStack {
    base: *mut libc::c_void,
    len: usize,
}

impl ChildStack {
    fn new() -> io::Result<ChildStack> {
        let len = CHILD_STACK + GUARD;
        // SAFETY: a fresh anonymous mapping at an address the kernel chooses.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let stack = ChildStack { base, len };
        // SAFETY: the lowest page of the mapping made above; stacks grow down.
        if unsafe { libc::mprotect(base, GUARD, libc::PROT_NONE) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(stack)
    }

    /// The initial stack pointer: the top of the mapping (page-aligned, so
    /// aligned as every ABI wants).
    fn top(&self) -> *mut libc::c_void {
        // SAFETY: one past the end of the mapping.
        unsafe { self.base.cast::<u8>().add(self.len).cast() }
    }
}

impl Drop for ChildStack {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `new` mapped; the child that used it has
        // exec'd or exited (CLONE_VFORK).
        let r = unsafe { libc::munmap(self.base, self.len) };
        debug_assert_eq!(r, 0, "munmap of a child stack: {}", io::Error::last_os_error());
    }
}

/// Every signal blocked in the calling thread until dropped, then the old mask
/// back. Raw `rt_sigprocmask`: glibc's `pthread_sigmask` would leave its two
/// internal signals unblocked.
struct AllSignalsBlocked {
    old: u64,
}

impl AllSignalsBlocked {
    fn new() -> io::Result<AllSignalsBlocked> {
        let all: u64 = !0;
        let mut old: u64 = 0;
        // SAFETY: both pointers refer to 8-byte sigsets on our stack.
        let r = unsafe { libc::syscall(libc::SYS_rt_sigprocmask, libc::SIG_SETMASK, &all, &mut old, 8) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(AllSignalsBlocked { old })
    }
}

impl Drop for AllSignalsBlocked {
    fn drop(&mut self) {
        // SAFETY: restoring the mask saved by `new`, from an 8-byte sigset on our
        // stack.
        let r = unsafe {
            libc::syscall(
                libc::SYS_rt_sigprocmask,
                libc::SIG_SETMASK,
                &self.old,
                std::ptr::null_mut::<u64>(),
                8,
            )
        };
        // Cannot fail with a valid `how` and sigset (EFAULT, EINVAL only); if it
        // ever did, this thread would keep every signal blocked: say so loudly.
        if r < 0 {
            let e = io::Error::last_os_error();
            debug_assert!(false, "restoring the signal mask after a spawn: {e}");
            tracing::error!(
                "restoring the signal mask after a spawn: {e}; this thread keeps signals blocked"
            );
        }
    }
}

/// One page of memory shared with a forked child (`MAP_SHARED`), unmapped on
/// drop: where a child that does not share the manager's memory leaves its
/// [`Failure`].
struct SharedPage {
    base: *mut libc::c_void,
}

impl SharedPage {
    const LEN: usize = 4096;

    fn new() -> io::Result<SharedPage> {
        // SAFETY: a fresh anonymous mapping at an address the kernel chooses.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                Self::LEN,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(SharedPage { base })
    }

    /// The first word of the page (zeroed by the kernel; page-aligned).
    fn word(&self) -> &AtomicU64 {
        // SAFETY: the mapping is page-aligned, readable and writable, and lives as
        // long as `self`; it is only accessed through this atomic.
        unsafe { &*self.base.cast::<AtomicU64>() }
    }
}

impl Drop for SharedPage {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `new` mapped; the child that may have
        // written it has exec'd or exited (CLONE_VFORK).
        let r = unsafe { libc::munmap(self.base, Self::LEN) };
        debug_assert_eq!(r, 0, "munmap of the shared page: {}", io::Error::last_os_error());
    }
}

/// The entry point of a child started with `CLONE_VM` (glibc's `clone` calls it
/// on the child's stack).
extern "C" fn vm_child_entry(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `Child` that `clone_shared_vm` passed; the parent is
    // suspended (CLONE_VFORK) until this child execs or exits, so it stays alive
    // and unchanged.
    let args = unsafe { &*arg.cast::<Child<'_>>() };
    confine::in_child(args)
}

impl RawChild {
    /// Starts a child that runs `confine::in_child(args)`, which ends in an exec or
    /// `_exit`; returns it held by pid and pidfd. `flags` are namespaces the
    /// child must be created in.
    ///
    /// With `shared_vm` (see `Prepared::shares_address_space` for when) the
    /// child is a `clone(CLONE_VM | CLONE_VFORK)`, as `posix_spawn` does: it runs
    /// in the manager's address space on a stack of its own while the calling
    /// thread waits, so no page table is copied and nothing is copied on write
    /// afterwards — the cost of a fork grows with the manager's memory, this does
    /// not. Otherwise a fork-style `clone3`.
    ///
    /// Either way every signal is blocked in the calling thread across the clone,
    /// so no signal handler of the manager runs in the child before `in_child`
    /// has put every disposition back to its default.
    ///
    /// Both clones are `CLONE_VFORK`: they return once the child has exec'd or
    /// exited, and the child's [`Failure`], if any, is then in memory both share
    /// (the caller's stack for a `CLONE_VM` child, a shared page otherwise).
    fn spawn(flags: u64, shared_vm: bool, args: Child<'_>) -> io::Result<(RawChild, Option<Failure>)> {
        let _blocked = AllSignalsBlocked::new()?;
        // SAFETY: PR_GET_DUMPABLE takes no pointer.
        let dumpable = unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) };
        // The child can put back 0 or 1 (`PR_SET_DUMPABLE`), not 2 (a set-uid
        // manager under `suid_dumpable = 2`): such a manager forks.
        let on_stack = AtomicU64::new(0);
        let shared_page;
        // (Rebound for a lifetime that ends before the slots': they are its.)
        let mut args = args;
        let (pid, pidfd, slot) = if shared_vm && (dumpable == 0 || dumpable == 1) {
            args.shared_vm = Some(SharedVm { dumpable });
            args.failure = Some(&on_stack);
            let (pid, pidfd) = Self::clone_shared_vm(flags, &args)?;
            (pid, pidfd, &on_stack)
        } else {
            shared_page = SharedPage::new()?;
            args.failure = Some(shared_page.word());
            let (pid, pidfd) = Self::clone_forked(flags, &args)?;
            (pid, pidfd, shared_page.word())
        };
        // SAFETY: the kernel wrote a fresh pidfd we now own.
        let pidfd = Arc::new(unsafe { OwnedFd::from_raw_fd(pidfd) });
        let failure = Failure::decode(slot.load(Ordering::Acquire));
        Ok((RawChild { pid, pidfd, reaped: false }, failure))
    }

    /// `clone(CLONE_VM | CLONE_VFORK | CLONE_PIDFD)`: returns once the child has
    /// exec'd or exited.
    fn clone_shared_vm(flags: u64, args: &Child<'_>) -> io::Result<(libc::pid_t, libc::c_int)> {
        let stack = ChildStack::new()?;
        let flags = i32::try_from(flags).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        let mut pidfd: libc::c_int = -1;
        // SAFETY: the child runs `vm_child_entry` on `stack`, which stays mapped
        // until the child has exec'd or exited (CLONE_VFORK suspends this thread
        // until then); it reads `args` and writes only its own stack, the
        // failure slot `args` points to (on this thread's stack, alive across
        // the call) and the kernel-owned state of its own task. With CLONE_PIDFD the pidfd is
        // returned through the parent-tid argument.
        let pid = unsafe {
            libc::clone(
                vm_child_entry,
                stack.top(),
                libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PIDFD | libc::SIGCHLD | flags,
                args as *const Child<'_> as *mut libc::c_void,
                &mut pidfd as *mut libc::c_int,
            )
        };
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((pid, pidfd))
    }

    /// `clone3` with `CLONE_VFORK | CLONE_PIDFD`: like `vfork` without the shared
    /// memory, so the child can start in a new PID namespace and make a user
    /// namespace (refused to a process sharing its memory), and we get its pidfd.
    /// Returns once the child has exec'd or exited.
    fn clone_forked(flags: u64, args: &Child<'_>) -> io::Result<(libc::pid_t, libc::c_int)> {
        let mut pidfd: libc::c_int = -1;
        let clone_args = CloneArgs {
            flags: (libc::CLONE_VFORK | libc::CLONE_PIDFD) as u64 | flags,
            pidfd: &mut pidfd as *mut libc::c_int as u64,
            exit_signal: libc::SIGCHLD as u64,
            ..CloneArgs::default()
        };
        // SAFETY: no CLONE_VM: the child gets a copy-on-write copy of this address
        // space (as with fork) and runs only `confine::in_child`, which never returns;
        // this thread waits (CLONE_VFORK) until it has exec'd or exited.
        let pid = unsafe {
            libc::syscall(libc::SYS_clone3, &clone_args as *const CloneArgs, std::mem::size_of::<CloneArgs>())
        };
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
        if pid == 0 {
            confine::in_child(args);
        }
        Ok((pid as libc::pid_t, pidfd))
    }

    fn id(&self) -> u32 {
        self.pid as u32
    }

    fn kill(&self) {
        let _ = rustix::process::pidfd_send_signal(&*self.pidfd, rustix::process::Signal::KILL);
    }

    /// Waits up to `timeout` for the process to exit (its pidfd turns readable,
    /// poll(2)); true if it has. Does not reap it.
    fn wait_exit(&self, timeout: Duration) -> bool {
        let until = Instant::now() + timeout;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            let ts = rustix::time::Timespec {
                tv_sec: left.as_secs() as i64,
                tv_nsec: i64::from(left.subsec_nanos()),
            };
            let mut fds = [rustix::event::PollFd::new(&*self.pidfd, rustix::event::PollFlags::IN)];
            match rustix::event::poll(&mut fds, Some(&ts)) {
                Ok(n) => return n > 0,
                Err(rustix::io::Errno::INTR) if !left.is_zero() => {}
                Err(_) => return false,
            }
        }
    }

    fn wait_flags(&mut self, flags: libc::c_int) -> Option<std::process::ExitStatus> {
        if self.reaped {
            return None;
        }
        let mut status = 0;
        loop {
            // SAFETY: waiting for our own child.
            let r = unsafe { libc::waitpid(self.pid, &mut status, flags) };
            if r == self.pid {
                self.reaped = true;
                return Some(std::process::ExitStatus::from_raw(status));
            }
            if r < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return None;
        }
    }

    fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.wait_flags(libc::WNOHANG)
    }

    fn wait(&mut self) -> Option<std::process::ExitStatus> {
        self.wait_flags(0)
    }
}

/// Drains a handler's stderr on the loader thread (see [`crate::log`]).
pub(crate) fn watch_stderr(stream: crate::log::Stream) -> io::Result<()> {
    spawner::watch(stream)
}

/// The loader thread: every confined handler started from a thread other than
/// the main one is started here (see [`spawn`]), and every handler's stderr is
/// drained here. One thread, alive as long as the process, waiting in
/// `epoll_wait(2)` on an eventfd (a start to run) and on the stderr pipes.
mod spawner {
    use std::collections::{HashMap, VecDeque};
    use std::io;
    use std::os::fd::OwnedFd;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::mpsc::{sync_channel, SyncSender};
    use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

    use rustix::buffer::spare_capacity;
    use rustix::event::{epoll, eventfd, EventfdFlags};

    use crate::log::Stream;

    type Job = Box<dyn FnOnce() + Send>;

    /// The epoll token of the eventfd; streams get the tokens after it.
    const WAKE: u64 = 0;

    struct Loader {
        epoll: OwnedFd,
        wake: OwnedFd,
        /// Starts to run; `None` once the thread is gone (no job may wait there).
        jobs: Mutex<Option<VecDeque<Job>>>,
        streams: Mutex<HashMap<u64, Stream>>,
        next_token: AtomicU64,
    }

    fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
        m.lock().unwrap_or_else(|p| p.into_inner())
    }

    static LOADER: OnceLock<Arc<Loader>> = OnceLock::new();
    static STARTING: Mutex<()> = Mutex::new(());

    fn loader() -> io::Result<Arc<Loader>> {
        if let Some(l) = LOADER.get() {
            return Ok(l.clone());
        }
        let _one = lock(&STARTING);
        if let Some(l) = LOADER.get() {
            return Ok(l.clone());
        }
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        let wake = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        epoll::add(&epoll, &wake, epoll::EventData::new_u64(WAKE), epoll::EventFlags::IN)?;
        let l = Arc::new(Loader {
            epoll,
            wake,
            jobs: Mutex::new(Some(VecDeque::new())),
            streams: Mutex::new(HashMap::new()),
            next_token: AtomicU64::new(WAKE + 1),
        });
        let mine = l.clone();
        // Lives as long as the process: handlers started here get SIGKILL only
        // when the manager process itself goes away.
        std::thread::Builder::new().name("umd-spawner".into()).spawn(move || run_loop(&mine))?;
        let _ = LOADER.set(l.clone());
        Ok(l)
    }

    fn run_loop(l: &Loader) {
        let mut events = Vec::with_capacity(32);
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            events.clear();
            match epoll::wait(&l.epoll, spare_capacity(&mut events), None) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => {
                    tracing::error!("the loader thread cannot wait for events: {e}");
                    // Waiting starts fail now (their result channels close), and
                    // later ones fail at once.
                    lock(&l.jobs).take();
                    return;
                }
            }
            for ev in events.drain(..) {
                let token = ev.data.u64();
                if token == WAKE {
                    let mut count = [0u8; 8];
                    let _ = rustix::io::read(&l.wake, &mut count);
                    loop {
                        let Some(job) = lock(&l.jobs).as_mut().and_then(VecDeque::pop_front) else { break };
                        // A panicking start fails its caller (its result channel
                        // closes), not the thread every other start needs.
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    }
                    continue;
                }
                let mut streams = lock(&l.streams);
                let open = match streams.get_mut(&token) {
                    Some(s) => s.drain(&mut buf),
                    None => continue,
                };
                if !open {
                    if let Some(s) = streams.remove(&token) {
                        let _ = epoll::delete(&l.epoll, s.fd());
                    }
                }
            }
        }
    }

    /// Starts the loader thread if it is not running yet.
    pub fn ensure_running() -> io::Result<()> {
        loader().map(drop)
    }

    /// Drains `stream` on the loader thread until its end.
    pub fn watch(stream: Stream) -> io::Result<()> {
        let l = loader()?;
        let token = l.next_token.fetch_add(1, Ordering::Relaxed);
        let mut streams = lock(&l.streams);
        // In the table before epoll can report it.
        epoll::add(&l.epoll, stream.fd(), epoll::EventData::new_u64(token), epoll::EventFlags::IN)?;
        streams.insert(token, stream);
        Ok(())
    }

    /// Runs `f` on the loader thread and returns its result.
    pub fn run<T: Send + 'static>(f: impl FnOnce() -> io::Result<T> + Send + 'static) -> io::Result<T> {
        let l = loader()?;
        let (done_tx, done_rx): (SyncSender<io::Result<T>>, _) = sync_channel(1);
        lock(&l.jobs).as_mut().ok_or_else(|| io::Error::other("the loader thread is gone"))?.push_back(
            Box::new(move || {
                let _ = done_tx.send(f());
            }),
        );
        rustix::io::write(&l.wake, &1u64.to_ne_bytes())?;
        done_rx.recv().map_err(|_| io::Error::other("the loader thread dropped the job"))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_and_dynamic_executables_are_told_apart() {
        assert!(!has_interpreter(umd_blobs::SAMPLE_HANDLER), "embedded handlers are static");
        let ls = std::fs::read("/bin/ls").unwrap();
        assert!(has_interpreter(&ls), "/bin/ls is dynamically linked");
        assert!(!has_interpreter(b"\x7fELF\x02\x01"), "a truncated header is not dynamic");
    }

    #[test]
    fn scripts_and_non_elf_files_are_refused() {
        let e = Program::from_blob("x.sh", b"#!/bin/sh\necho hi\n").unwrap_err();
        assert!(e.to_string().contains("script"), "{e}");
        let e = Program::from_blob("x", b"hello").unwrap_err();
        assert!(e.to_string().contains("not an ELF"), "{e}");
    }

    #[test]
    fn handlers_share_the_address_space_unless_a_user_namespace_is_made() {
        use crate::sandbox::{Namespaces, Policy};
        let prepared = |p: Policy| p.prepare(true, false).expect("policy prepares");
        assert!(prepared(Policy::default()).shares_address_space(), "the default policy: CLONE_VM");
        assert!(prepared(Policy::unconfined()).shares_address_space());
        let user = Policy {
            namespaces: Namespaces { user: true, ipc: true, ..Namespaces::default() },
            ..Policy::default()
        };
        assert!(
            !prepared(user).shares_address_space(),
            "unshare(CLONE_NEWUSER) needs a private address space"
        );
    }

    #[test]
    fn program_memfd_is_sealed() {
        let p = Program::from_blob("echo", umd_blobs::ECHO_HANDLER).unwrap();
        let seals = rustix::fs::fcntl_get_seals(&*p.memfd).unwrap();
        assert!(seals.contains(rustix::fs::SealFlags::from_bits_retain(umd_wire::REQUIRED_SEALS)));
        assert_eq!(p.len(), umd_blobs::ECHO_HANDLER.len() as u64);
    }
}
