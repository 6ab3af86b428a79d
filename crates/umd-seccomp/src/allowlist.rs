//! The allow-lists: every system call a handler may make, with the reason.
//!
//! This file is the one reviewed place for seccomp policy. Each entry names the
//! call, the argument checks that narrow it, and why a handler needs it. A call not
//! listed here is a violation: a handler built on `umd-handler` reports it and dies
//! of SIGSYS; any other handler is killed by the kernel.
//!
//! Numbers come from the `libc` crate for the target architecture, so the same
//! names serve x86_64 and aarch64; calls that exist on one only are `cfg`-gated.

use libc::c_long;

/// A check on one argument of a system call.
#[derive(Clone, Copy, Debug)]
pub enum Test {
    /// The argument equals this value.
    Eq(u64),
    /// None of these bits is set in the argument.
    Clear(u64),
}

/// An argument check: which argument (0-based), and the test.
#[derive(Clone, Copy, Debug)]
pub struct Arg {
    /// Argument index.
    pub index: u8,
    /// The test.
    pub test: Test,
}

/// One allowed system call (entries for the same call are alternatives).
#[derive(Clone, Copy, Debug)]
pub struct Rule {
    /// The call's name.
    pub name: &'static str,
    /// Its number on this architecture.
    pub nr: c_long,
    /// Argument checks, all of which must hold (none: any arguments).
    pub args: &'static [Arg],
    /// Why a handler needs it.
    pub why: &'static str,
}

macro_rules! rule {
    ($name:ident, $why:expr) => {
        Rule { name: stringify!($name), nr: paste_nr!($name), args: &[], why: $why }
    };
    ($name:ident, [$($arg:expr),+], $why:expr) => {
        Rule { name: stringify!($name), nr: paste_nr!($name), args: &[$($arg),+], why: $why }
    };
}

macro_rules! paste_nr {
    (read) => {
        libc::SYS_read
    };
    (readv) => {
        libc::SYS_readv
    };
    (write) => {
        libc::SYS_write
    };
    (writev) => {
        libc::SYS_writev
    };
    (recvmsg) => {
        libc::SYS_recvmsg
    };
    (sendmsg) => {
        libc::SYS_sendmsg
    };
    (poll) => {
        libc::SYS_poll
    };
    (ppoll) => {
        libc::SYS_ppoll
    };
    (close) => {
        libc::SYS_close
    };
    (fstat) => {
        libc::SYS_fstat
    };
    (newfstatat) => {
        libc::SYS_newfstatat
    };
    (statx) => {
        libc::SYS_statx
    };
    (fcntl) => {
        libc::SYS_fcntl
    };
    (mmap) => {
        libc::SYS_mmap
    };
    (mprotect) => {
        libc::SYS_mprotect
    };
    (munmap) => {
        libc::SYS_munmap
    };
    (mremap) => {
        libc::SYS_mremap
    };
    (madvise) => {
        libc::SYS_madvise
    };
    (brk) => {
        libc::SYS_brk
    };
    (futex) => {
        libc::SYS_futex
    };
    (rt_sigreturn) => {
        libc::SYS_rt_sigreturn
    };
    (rt_sigprocmask) => {
        libc::SYS_rt_sigprocmask
    };
    (exit) => {
        libc::SYS_exit
    };
    (exit_group) => {
        libc::SYS_exit_group
    };
    (getpid) => {
        libc::SYS_getpid
    };
    (gettid) => {
        libc::SYS_gettid
    };
    (tgkill) => {
        libc::SYS_tgkill
    };
    (getrandom) => {
        libc::SYS_getrandom
    };
    (clock_gettime) => {
        libc::SYS_clock_gettime
    };
    (clock_getres) => {
        libc::SYS_clock_getres
    };
    (gettimeofday) => {
        libc::SYS_gettimeofday
    };
    (sched_yield) => {
        libc::SYS_sched_yield
    };
    (restart_syscall) => {
        libc::SYS_restart_syscall
    };
    (memfd_create) => {
        libc::SYS_memfd_create
    };
    (ftruncate) => {
        libc::SYS_ftruncate
    };
    (execveat) => {
        libc::SYS_execveat
    };
    (arch_prctl) => {
        libc::SYS_arch_prctl
    };
    (set_tid_address) => {
        libc::SYS_set_tid_address
    };
    (set_robust_list) => {
        libc::SYS_set_robust_list
    };
    (rseq) => {
        libc::SYS_rseq
    };
    (prlimit64) => {
        libc::SYS_prlimit64
    };
    (uname) => {
        libc::SYS_uname
    };
    (sigaltstack) => {
        libc::SYS_sigaltstack
    };
    (rt_sigaction) => {
        libc::SYS_rt_sigaction
    };
    (sched_getaffinity) => {
        libc::SYS_sched_getaffinity
    };
    (readlink) => {
        libc::SYS_readlink
    };
    (readlinkat) => {
        libc::SYS_readlinkat
    };
    (open) => {
        libc::SYS_open
    };
    (openat) => {
        libc::SYS_openat
    };
    (getuid) => {
        libc::SYS_getuid
    };
    (geteuid) => {
        libc::SYS_geteuid
    };
    (getgid) => {
        libc::SYS_getgid
    };
    (getegid) => {
        libc::SYS_getegid
    };
}

const NO_EXEC: Arg = Arg { index: 2, test: Test::Clear(libc::PROT_EXEC as u64) };
const fn fcntl_cmd(cmd: libc::c_int) -> Arg {
    Arg { index: 1, test: Test::Eq(cmd as u64) }
}

/// What every handler may do while it serves requests: use its channel, manage its
/// memory (never executable), tell time, and end. This is the whole list for
/// handlers built on `umd-handler` (installed after start-up, before the first
/// request is read).
pub const SERVE: &[Rule] = &[
    rule!(read, "requests on fd 0"),
    rule!(readv, "requests on fd 0 (header and payload in one call)"),
    rule!(write, "replies on fd 1, diagnostics on fd 2"),
    rule!(writev, "replies on fd 1 (header and payload in one call)"),
    rule!(recvmsg, "requests when fd 0 is a socket (a memfd payload may ride along)"),
    rule!(sendmsg, "replies when fd 1 is a socket (a memfd reply may ride along)"),
    #[cfg(target_arch = "x86_64")]
    rule!(poll, "waiting for the channel when a read or write would block"),
    rule!(ppoll, "waiting for the channel (the only poll on aarch64)"),
    rule!(close, "closing a received memfd"),
    #[cfg(target_arch = "x86_64")]
    rule!(fstat, "is fd 0 a socket; size of a received memfd"),
    rule!(newfstatat, "fstat through AT_EMPTY_PATH (libc, aarch64)"),
    rule!(statx, "fstat through statx (newer libcs)"),
    rule!(fcntl, [fcntl_cmd(libc::F_GET_SEALS)], "checking the seals of a received memfd"),
    rule!(fcntl, [fcntl_cmd(libc::F_GETFD)], "fd flags (libc internals)"),
    rule!(fcntl, [fcntl_cmd(libc::F_GETFL)], "fd flags (libc internals)"),
    rule!(mmap, [NO_EXEC], "memory allocation and mapping received memfds; never executable"),
    rule!(mprotect, [NO_EXEC], "allocator guard pages; never makes memory executable"),
    rule!(munmap, "memory allocation"),
    rule!(mremap, "memory allocation (growing buffers)"),
    rule!(madvise, "memory allocation (returning pages)"),
    rule!(brk, "memory allocation"),
    rule!(futex, "std's locks (stdout, allocator)"),
    rule!(rt_sigreturn, "returning from the SIGSYS reporter"),
    rule!(rt_sigprocmask, "abort() unblocks SIGABRT"),
    rule!(exit, "ending"),
    rule!(exit_group, "ending"),
    rule!(getpid, "abort() raises SIGABRT on itself"),
    rule!(gettid, "abort() raises SIGABRT on itself"),
    rule!(
        tgkill,
        [Arg { index: 2, test: Test::Eq(libc::SIGABRT as u64) }],
        "abort() (a panic): SIGABRT only"
    ),
    rule!(getrandom, "hash map seeds"),
    rule!(clock_gettime, "time (normally answered by the vDSO without a system call)"),
    rule!(clock_getres, "time"),
    #[cfg(target_arch = "x86_64")]
    rule!(gettimeofday, "time"),
    rule!(sched_yield, "spin loops in locks"),
    rule!(restart_syscall, "an interrupted call resumed by the kernel"),
];

/// Added when the driver passes memfds (framed mode over a socket pair): a handler
/// may create, fill and seal a memfd to reply with. The loader's `RLIMIT_FSIZE`
/// bounds how big each can get.
pub const MEMFD_REPLY: &[Rule] = &[
    rule!(memfd_create, "a memfd for a large reply"),
    rule!(ftruncate, "sizing the reply memfd"),
    rule!(fcntl, [fcntl_cmd(libc::F_ADD_SEALS)], "sealing the reply memfd"),
];

/// Added for handlers *not* built on `umd-handler`, whose filter the loader installs
/// before `execveat`: the exec of their own sealed memfd, and what a static C or
/// Rust runtime does before `main`.
pub const STARTUP: &[Rule] = &[
    rule!(
        execveat,
        [Arg { index: 4, test: Test::Eq(libc::AT_EMPTY_PATH as u64) }],
        "the loader's own exec of the sealed memfd (fd + AT_EMPTY_PATH only)"
    ),
    #[cfg(target_arch = "x86_64")]
    rule!(arch_prctl, "thread pointer set-up"),
    rule!(set_tid_address, "libc start-up"),
    rule!(set_robust_list, "libc start-up"),
    rule!(rseq, "libc start-up"),
    rule!(prlimit64, "libc start-up reads its stack limit"),
    rule!(uname, "libc start-up"),
    rule!(sigaltstack, "Rust start-up: stack overflow handler"),
    rule!(rt_sigaction, "start-up signal set-up (SIGPIPE, stack overflow)"),
    rule!(sched_getaffinity, "Rust start-up: available parallelism"),
    rule!(getuid, "libc start-up (secure mode check)"),
    rule!(geteuid, "libc start-up (secure mode check)"),
    rule!(getgid, "libc start-up (secure mode check)"),
    rule!(getegid, "libc start-up (secure mode check)"),
    #[cfg(target_arch = "x86_64")]
    rule!(readlink, "libc start-up (/proc/self/exe); refused with EACCES by the errno filter"),
    rule!(readlinkat, "as readlink; refused with EACCES by the errno filter"),
    #[cfg(target_arch = "x86_64")]
    rule!(open, "runtimes probe files at start-up; refused with EACCES by the errno filter"),
    rule!(openat, "runtimes probe files at start-up; refused with EACCES by the errno filter"),
];

/// Calls the external handler's second filter answers with `EACCES` instead of a
/// kill: start-up code probes files and copes with a refusal. (Landlock would
/// refuse them too; this makes the refusal independent of Landlock.)
pub const REFUSED_WITH_EACCES: &[Rule] = &[
    #[cfg(target_arch = "x86_64")]
    rule!(readlink, "file system access"),
    rule!(readlinkat, "file system access"),
    #[cfg(target_arch = "x86_64")]
    rule!(open, "file system access"),
    rule!(openat, "file system access"),
];
