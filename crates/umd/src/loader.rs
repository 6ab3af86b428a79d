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
//! Starting a handler ([`spawn`]) is `clone3` (a fork that can enter a new PID
//! namespace and returns a pidfd) + child set-up + `execveat`. The child
//! set-up runs between fork and exec in `child_main`, the one place where
//! confinement steps (sandbox) are applied.

use std::ffi::{CStr, CString};
use std::fmt;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::net::{AddressFamily, SocketFlags, SocketType};
use rustix::pipe::PipeFlags;
use umd_wire::memfd::{Exec, SealedMemfd};

use crate::error::HandlerFate;
use crate::log::StderrWatch;
use crate::sandbox::Prepared;

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
    /// Arguments after argv[0].
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

/// Pointers for `execveat`, built before `fork` (the child must not allocate).
struct ExecArgs {
    _storage: Vec<CString>,
    argv: Vec<*const libc::c_char>,
    envp: [*const libc::c_char; 1],
}

// SAFETY: the pointers refer into `_storage`, owned by the same value and never
// mutated; the child only reads them.
unsafe impl Send for ExecArgs {}
// SAFETY: as above; shared access is read-only.
unsafe impl Sync for ExecArgs {}

impl ExecArgs {
    fn new(argv0: &str, args: &[String]) -> io::Result<ExecArgs> {
        let mut storage = Vec::with_capacity(args.len() + 1);
        for a in std::iter::once(argv0).chain(args.iter().map(String::as_str)) {
            storage.push(
                CString::new(a)
                    .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "argument contains NUL"))?,
            );
        }
        let mut argv: Vec<*const libc::c_char> = storage.iter().map(|s| s.as_ptr()).collect();
        argv.push(std::ptr::null());
        // An empty environment: the handler needs nothing from the manager's.
        Ok(ExecArgs { _storage: storage, argv, envp: [std::ptr::null()] })
    }
}

/// Starts one handler process from `program`, confined as `sandbox` says.
///
/// When the policy asks for a parent-death signal the fork happens on a dedicated,
/// never-exiting thread: `PR_SET_PDEATHSIG` fires when the *thread* that forked the
/// child exits, and callers' threads come and go.
pub fn spawn(program: &Program, spec: &SpawnSpec, sandbox: &Arc<Prepared>) -> io::Result<Process> {
    if sandbox.policy().parent_death_signal {
        let (program, spec, sandbox) = (program.clone(), spec.clone(), sandbox.clone());
        spawner::run(move || spawn_here(&program, &spec, &sandbox))
    } else {
        spawn_here(program, spec, sandbox)
    }
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
    // The child reports a failure before its exec here; a successful exec closes
    // the write end (close-on-exec), which the parent reads as end of file.
    let (report_r, report_w) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC)?;

    let fds = ChildFds {
        stdin: their_in.as_raw_fd(),
        stdout: their_out.as_raw_fd(),
        stderr: err_w.as_raw_fd(),
        report: report_w.as_raw_fd(),
    };
    let child = RawChild::spawn(sandbox.clone_flags_for_spawn(), || child_main(&fds, memfd, &exec, sandbox))?;
    drop((their_in, their_out, err_w, report_w));

    // Wait for the exec (or the child's report of why it failed).
    let mut report = [0u8; 5];
    let mut got = 0;
    while got < report.len() {
        match rustix::io::read(&report_r, &mut report[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let mut process = Process { child, rx, tx, socket, fate: None, stderr: None };
    if got > 0 {
        process.shut_down(Duration::ZERO, "start failed");
        let errno = i32::from_ne_bytes([report[1], report[2], report[3], report[4]]);
        let stage = match report[0] {
            STAGE_STDIO => "wiring fds 0-2",
            STAGE_CONFINE => "confinement",
            _ => "execveat",
        };
        let e = io::Error::from_raw_os_error(errno);
        return Err(io::Error::new(e.kind(), format!("{stage} in the child: {e}")));
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

/// The fds the child puts on 0, 1 and 2, and its report pipe.
struct ChildFds {
    stdin: i32,
    stdout: i32,
    stderr: i32,
    report: i32,
}

const STAGE_STDIO: u8 = 1;
const STAGE_CONFINE: u8 = 2;
const STAGE_EXEC: u8 = 3;

/// Runs in the child between `clone3` and `execveat`. Only async-signal-safe system
/// calls on pre-built data are allowed here (the parent has other threads: no
/// allocation, no locks, no libc state that a fork would have reset).
fn child_main(fds: &ChildFds, memfd: i32, exec: &ExecArgs, sandbox: &Prepared) -> ! {
    let fail = |stage: u8| -> ! {
        // SAFETY: errno read, a write to our own pipe, and _exit: all async-signal-safe.
        unsafe {
            let errno = *libc::__errno_location();
            let e = errno.to_ne_bytes();
            let msg = [stage, e[0], e[1], e[2], e[3]];
            libc::write(fds.report, msg.as_ptr().cast(), msg.len());
            libc::_exit(127);
        }
    };
    // SAFETY: plain system calls on integers and on memory owned by the caller.
    unsafe {
        // Signals: nothing blocked, SIGPIPE back to its default (the manager may
        // ignore it; a handler writing to a vanished manager should just die).
        let empty: libc::sigset_t = std::mem::zeroed();
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &empty,
            std::ptr::null_mut::<libc::sigset_t>(),
            8,
        );
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        // A source already numbered 0-2 (the manager ran with a standard fd
        // closed) is first moved above 2, so no dup2 below overwrites another
        // source, and none is a dup2 onto itself (which keeps close-on-exec).
        let mut sources = [fds.stdin, fds.stdout, fds.stderr];
        for s in &mut sources {
            if *s < 3 {
                *s = libc::fcntl(*s, libc::F_DUPFD_CLOEXEC, 3);
                if *s < 0 {
                    fail(STAGE_STDIO);
                }
            }
        }
        for (to, from) in sources.into_iter().enumerate() {
            if libc::dup2(from, to as i32) < 0 {
                fail(STAGE_STDIO);
            }
        }
        // No fd but 0, 1 and 2 survives the exec, whatever the rest of the process
        // opened without O_CLOEXEC (close_range(2), CLOSE_RANGE_CLOEXEC: the report
        // pipe and the memfd must stay open until the exec itself).
        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, libc::CLOSE_RANGE_CLOEXEC);
    }
    if sandbox.apply_in_child().is_err() {
        fail(STAGE_CONFINE);
    }
    let empty: &CStr = c"";
    // SAFETY: `argv` and `envp` are NULL-terminated arrays of valid C strings owned by
    // `exec`, which outlives this call; `memfd` is open (close-on-exec) in the child.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            memfd,
            empty.as_ptr(),
            exec.argv.as_ptr(),
            exec.envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        );
    }
    fail(STAGE_EXEC)
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

impl RawChild {
    /// `clone3` with `CLONE_PIDFD` and `flags` (new namespaces): like `fork`, but
    /// the child can start in a new PID namespace, and we get its pidfd. The child
    /// runs `child`, which should end in an exec or `_exit`.
    fn spawn(flags: u64, child: impl FnOnce()) -> io::Result<RawChild> {
        let mut pidfd: libc::c_int = -1;
        let args = CloneArgs {
            flags: libc::CLONE_PIDFD as u64 | flags,
            pidfd: &mut pidfd as *mut libc::c_int as u64,
            exit_signal: libc::SIGCHLD as u64,
            ..CloneArgs::default()
        };
        // SAFETY: no CLONE_VM: the child gets a copy-on-write copy of this address
        // space (as with fork) and runs only `child`, which never returns.
        let pid = unsafe {
            libc::syscall(libc::SYS_clone3, &args as *const CloneArgs, std::mem::size_of::<CloneArgs>())
        };
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
        if pid == 0 {
            child();
            // SAFETY: `child` does not return; should it, end the child here.
            unsafe { libc::_exit(127) }
        }
        // SAFETY: the kernel wrote a fresh pidfd we now own.
        let pidfd = Arc::new(unsafe { OwnedFd::from_raw_fd(pidfd) });
        Ok(RawChild { pid: pid as libc::pid_t, pidfd, reaped: false })
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

/// The thread every confined handler is forked from (see [`spawn`]).
mod spawner {
    use std::io;
    use std::sync::mpsc::{sync_channel, Sender, SyncSender};
    use std::sync::{Mutex, OnceLock};

    type Job = Box<dyn FnOnce() + Send>;

    static JOBS: OnceLock<Mutex<Sender<Job>>> = OnceLock::new();

    fn jobs() -> io::Result<Sender<Job>> {
        if let Some(tx) = JOBS.get() {
            return Ok(tx.lock().unwrap_or_else(|p| p.into_inner()).clone());
        }
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new().name("umd-spawner".into()).spawn(move || {
            // Lives as long as the process: handlers forked here get SIGKILL only
            // when the manager process itself goes away.
            while let Ok(job) = rx.recv() {
                job();
            }
        })?;
        let _ = JOBS.set(Mutex::new(tx));
        let tx = JOBS.get().ok_or_else(|| io::Error::other("spawner thread missing"))?;
        Ok(tx.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }

    /// Runs `f` on the spawner thread and returns its result.
    pub fn run<T: Send + 'static>(f: impl FnOnce() -> io::Result<T> + Send + 'static) -> io::Result<T> {
        let (done_tx, done_rx): (SyncSender<io::Result<T>>, _) = sync_channel(1);
        jobs()?
            .send(Box::new(move || {
                let _ = done_tx.send(f());
            }))
            .map_err(|_| io::Error::other("spawner thread is gone"))?;
        done_rx.recv().map_err(|_| io::Error::other("spawner thread dropped the job"))?
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
    fn program_memfd_is_sealed() {
        let p = Program::from_blob("echo", umd_blobs::ECHO_HANDLER).unwrap();
        let seals = rustix::fs::fcntl_get_seals(&*p.memfd).unwrap();
        assert!(seals.contains(rustix::fs::SealFlags::from_bits_retain(umd_wire::REQUIRED_SEALS)));
        assert_eq!(p.len(), umd_blobs::ECHO_HANDLER.len() as u64);
    }
}
