//! The **sandbox**: how a handler is confined, as one policy type.
//!
//! A handler parses hostile input, so it is treated as compromised: it may compute
//! and reply on its channel, nothing else. [`Policy`] says how, strict by default;
//! [`Policy::prepare`] turns it into a [`Prepared`] set of pre-built values (so the
//! child needs no allocation between the clone and `exec`); [`Prepared::apply_in_child`]
//! runs in the child; [`verify`] checks from `/proc` that a started handler is
//! confined as the policy says before it gets its first request.
//!
//! Layers, in the order the child applies them:
//!
//! | layer | what it takes away |
//! |---|---|
//! | identity (root manager) | root: the handler runs as an unprivileged uid/gid with no supplementary groups; every capability (effective, permitted, inheritable, ambient, bounding) is gone |
//! | user namespace (optional) | capabilities over anything outside the namespace; allows the other namespaces without privilege |
//! | mount / network / IPC / UTS namespaces (optional) | mounts, network interfaces, SysV IPC, host name |
//! | resource limits | memory (address space), open files, processes, CPU time, file size, core dumps |
//! | parent-death signal | outliving the manager (SIGKILL when it exits) |
//! | no-new-privileges | gaining privileges through exec |
//! | Landlock | every file system access, TCP bind/connect, abstract Unix sockets and signals outside the handler's domain |
//! | seccomp | every system call off the allow-list (`umd-seccomp`) |
//!
//! Which namespaces are on by default was decided by measurement (see
//! `docs/design.md`, "Sandbox cost").

use std::ffi::CString;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde::Serialize;

/// Uid and gid a root manager gives its handlers unless told otherwise: not an
/// account anyone logs in as, not `nobody` (shared with other daemons). Any unused
/// id works; the handler owns nothing on disk.
pub const DEFAULT_HANDLER_ID: u32 = 61_874;

/// Who the handler runs as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Identity {
    /// Root manager: [`DEFAULT_HANDLER_ID`]. Other managers: their own uid (they
    /// have nothing more to drop), with no capabilities.
    Auto,
    /// This uid and gid (needs a root manager).
    Ids {
        /// User id.
        uid: u32,
        /// Group id.
        gid: u32,
    },
    /// The manager's own identity (no change). Only for tests and baselines.
    Inherit,
}

/// Namespaces the handler gets its own of.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Namespaces {
    /// User namespace (also what lets an unprivileged manager create the others).
    pub user: bool,
    /// Mount namespace.
    pub mount: bool,
    /// Network namespace (no interfaces but a down loopback).
    pub network: bool,
    /// System V IPC namespace.
    pub ipc: bool,
    /// UTS namespace (host name).
    pub uts: bool,
    /// PID namespace: the handler is process 1 of its own namespace and sees no
    /// other process. Set up by the clone (a PID namespace applies to
    /// children, so it cannot be entered later).
    pub pid: bool,
}

impl Namespaces {
    fn clone_flags(&self) -> libc::c_int {
        let mut f = 0;
        if self.user {
            f |= libc::CLONE_NEWUSER;
        }
        if self.mount {
            f |= libc::CLONE_NEWNS;
        }
        if self.network {
            f |= libc::CLONE_NEWNET;
        }
        if self.ipc {
            f |= libc::CLONE_NEWIPC;
        }
        if self.uts {
            f |= libc::CLONE_NEWUTS;
        }
        f
    }

    /// Flags for `clone3` itself, and what is left for `unshare` in the child. A
    /// PID namespace can only be had at the fork. Without privilege (`euid` not 0)
    /// the user namespace must come in the same call, to allow the PID one; with
    /// privilege it must *not* (the child drops to its handler uid first, so the
    /// user namespace it makes later is owned by that uid, not by root).
    fn split(&self, euid: u32) -> (u64, libc::c_int) {
        let all = self.clone_flags();
        if !self.pid {
            return (0, all);
        }
        if euid == 0 {
            (libc::CLONE_NEWPID as u64, all)
        } else {
            let at_fork = libc::CLONE_NEWPID | if self.user { libc::CLONE_NEWUSER } else { 0 };
            (at_fork as u64, all & !libc::CLONE_NEWUSER)
        }
    }
}

/// Resource limits (`setrlimit(2)`), soft = hard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ResourceLimits {
    /// `RLIMIT_AS`: address space in bytes.
    pub address_space: u64,
    /// `RLIMIT_NOFILE`: highest fd number + 1 the handler may open.
    pub open_files: u64,
    /// `RLIMIT_NPROC`: processes of the handler's user (counted per user namespace).
    pub processes: u64,
    /// `RLIMIT_CPU`: CPU seconds over the handler's life (then SIGXCPU).
    pub cpu_seconds: u64,
    /// `RLIMIT_FSIZE`: largest file the handler may write (memfd replies count).
    pub file_size: u64,
    /// `RLIMIT_CORE`: core dump size (0: none).
    pub core: u64,
}

impl Default for ResourceLimits {
    fn default() -> Self {
        ResourceLimits {
            address_space: 1 << 30,
            open_files: 16,
            processes: 1,
            cpu_seconds: 600,
            file_size: 0,
            core: 0,
        }
    }
}

/// Limits for the control group all handlers of one loaded program share
/// (cgroup v1 `pids` and `memory` controllers, or v2 with both enabled).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct CgroupLimits {
    /// `pids.max`: processes (and threads) in the group, all handlers together;
    /// at least the pool size.
    pub pids_max: u64,
    /// `memory.limit_in_bytes` (v1) / `memory.max` (v2): memory of all handlers
    /// together, page cache and memfds included (which `RLIMIT_AS` does not see).
    pub memory_bytes: u64,
}

impl Default for CgroupLimits {
    fn default() -> Self {
        CgroupLimits { pids_max: 64, memory_bytes: 2 << 30 }
    }
}

/// How handlers are confined. [`Policy::default`] is strict: every layer that costs
/// microseconds is on; see the module docs for what each takes away.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Policy {
    /// Who the handler runs as.
    pub identity: Identity,
    /// Namespaces.
    pub namespaces: Namespaces,
    /// Resource limits; `None` leaves the manager's.
    pub limits: Option<ResourceLimits>,
    /// Landlock: no file system access, no TCP, scoped signals and abstract sockets.
    pub landlock: bool,
    /// Seccomp allow-list.
    pub seccomp: bool,
    /// System calls added to the allow-list by the driver (the widening is shown in
    /// `umd` output).
    pub extra_syscalls: Vec<String>,
    /// Put the handlers in a control group of their own with these limits (needs a
    /// root manager and the controllers; off by default, see `docs/design.md`).
    pub cgroup: Option<CgroupLimits>,
    /// Kill the handler when the manager process dies.
    pub parent_death_signal: bool,
    /// Refuse to start a handler when a layer is unavailable on this kernel, instead
    /// of starting it with that layer missing (and a warning). Off in
    /// [`Policy::default`] unless the program said otherwise
    /// ([`Policy::set_default_require_all`]).
    pub require_all: bool,
}

/// What [`Policy::default`] puts in `require_all`: the program's choice, made once
/// at start-up. The library reads no environment variable; the `umd` CLI sets it
/// from `UMD_REQUIRE_SANDBOX=1`.
static DEFAULT_REQUIRE_ALL: AtomicBool = AtomicBool::new(false);

impl Default for Policy {
    fn default() -> Self {
        Policy {
            identity: Identity::Auto,
            namespaces: Namespaces::default(),
            limits: Some(ResourceLimits::default()),
            landlock: true,
            seccomp: true,
            extra_syscalls: Vec::new(),
            cgroup: None,
            parent_death_signal: true,
            require_all: DEFAULT_REQUIRE_ALL.load(Ordering::Relaxed),
        }
    }
}

impl Policy {
    /// No confinement at all: the kernel's original design. For baselines and
    /// comparisons only.
    pub fn unconfined() -> Policy {
        Policy {
            identity: Identity::Inherit,
            namespaces: Namespaces::default(),
            limits: None,
            landlock: false,
            seccomp: false,
            extra_syscalls: Vec::new(),
            cgroup: None,
            parent_death_signal: false,
            require_all: false,
        }
    }

    /// Makes every later [`Policy::default`] in this process require every layer
    /// (`on`) or start handlers with a missing layer and a warning (the default).
    /// For a program whose drivers are built by libraries that take no `Policy`
    /// (the `pgp` and `rpm` drivers): the `umd` CLI calls it at start-up with
    /// `UMD_REQUIRE_SANDBOX=1`. A policy built by hand says it with
    /// [`Policy::requiring_every_layer`] instead.
    ///
    /// ```
    /// use umd::Policy;
    /// assert!(!Policy::default().require_all, "best effort unless the program asks");
    /// Policy::set_default_require_all(true);
    /// assert!(Policy::default().require_all);
    /// assert!(!Policy::unconfined().require_all, "nothing to require");
    /// ```
    pub fn set_default_require_all(on: bool) {
        DEFAULT_REQUIRE_ALL.store(on, Ordering::Relaxed);
    }

    /// This policy, refusing to start a handler when a layer is unavailable on
    /// this kernel (`on`), or starting it without that layer and a warning.
    pub fn requiring_every_layer(mut self, on: bool) -> Policy {
        self.require_all = on;
        self
    }

    /// Widens the seccomp allow-list by one system call, e.g. `"clock_nanosleep"`.
    pub fn allow_syscall(mut self, name: &str) -> Policy {
        self.extra_syscalls.push(name.to_string());
        self
    }

    /// Whether any confinement is on.
    pub fn is_confined(&self) -> bool {
        self != &Policy { require_all: self.require_all, ..Policy::unconfined() }
    }
}

/// Why a policy could not be applied or verified.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// A layer the policy requires is not available on this kernel.
    #[error("{layer} is not available on this kernel ({detail}); the policy requires it")]
    Unavailable {
        /// Which layer.
        layer: &'static str,
        /// Details.
        detail: String,
    },
    /// Building a layer failed.
    #[error("preparing {layer}: {detail}")]
    Prepare {
        /// Which layer.
        layer: &'static str,
        /// Details.
        detail: String,
    },
    /// The started handler is not confined as the policy says.
    #[error("handler pid {pid} is not confined as the policy says: {what}")]
    NotConfined {
        /// The handler's pid.
        pid: u32,
        /// What was found.
        what: String,
    },
}

/// A policy turned into values the child can use without allocating.
pub struct Prepared {
    pub(crate) policy: Arc<Policy>,
    rlimits: Vec<(libc::__rlimit_resource_t, u64)>,
    ids: Option<(u32, u32)>,
    /// Namespaces made by the clone itself.
    spawn_flags: u64,
    /// Namespaces made by `unshare` in the child.
    clone_flags: libc::c_int,
    uid_map: Option<(CString, Vec<u8>)>,
    gid_map: Option<(CString, Vec<u8>)>,
    setgroups_path: CString,
    landlock: Option<Arc<OwnedFd>>,
    /// The control group handlers join (removed when the last user is gone).
    cgroup: Option<Arc<Cgroup>>,
    /// Filters the loader installs (handlers not built on `umd-handler`).
    external_filters: Vec<umd_seccomp::BpfProgram>,
    parent_pid: libc::pid_t,
    /// The identity `verify` expects, as seen from the manager.
    pub(crate) expect_uid: u32,
    pub(crate) expect_gid: u32,
    /// Whether the handler must hold no capabilities (it changed identity, or the
    /// manager had none to give).
    expect_no_caps: bool,
    /// Landlock ABI of the kernel (0: none).
    pub landlock_abi: i32,
}

impl fmt::Debug for Prepared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prepared").field("policy", &self.policy).finish_non_exhaustive()
    }
}

/// The kernel's Landlock ABI version, 0 if Landlock is unavailable.
pub fn landlock_abi() -> i32 {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: the version query takes no attribute pointer and returns an int.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if v < 0 {
        0
    } else {
        v as i32
    }
}

fn landlock_ruleset() -> Result<OwnedFd, String> {
    use landlock::{Access, AccessFs, AccessNet, Ruleset, RulesetAttr, Scope, ABI};
    // Handle every access right this crate knows, with no rule allowing any: the
    // handler may touch no file, bind or connect no TCP port, reach no abstract
    // socket and signal no process outside its domain. Best effort per kernel: the
    // ABI check in `prepare` enforces a minimum when the policy requires it.
    let abi = ABI::V6;
    let created = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        .and_then(|r| r.handle_access(AccessNet::from_all(abi)))
        .and_then(|r| r.scope(Scope::from_all(abi)))
        .and_then(|r| r.create())
        .map_err(|e| e.to_string())?;
    let fd: Option<OwnedFd> = created.into();
    fd.ok_or_else(|| "Landlock is not supported by this kernel".to_string())
}

impl Policy {
    /// Builds what the child needs, for a handler that is (`runtime`) or is not built
    /// on `umd-handler`, on a channel that can (`fd_passing`) or cannot carry memfds.
    pub fn prepare(&self, runtime: bool, fd_passing: bool) -> Result<Prepared, SandboxError> {
        let policy = Arc::new(self.clone());
        // SAFETY: plain queries of the calling process.
        let (my_uid, my_gid, my_pid) = unsafe { (libc::geteuid(), libc::getegid(), libc::getpid()) };
        let ids = match self.identity {
            Identity::Inherit => None,
            Identity::Auto if my_uid != 0 => None,
            Identity::Auto => Some((DEFAULT_HANDLER_ID, DEFAULT_HANDLER_ID)),
            Identity::Ids { uid, gid } => Some((uid, gid)),
        };
        let (outer_uid, outer_gid) = ids.unwrap_or((my_uid, my_gid));
        let map = |path: &str, id: u32| -> (CString, Vec<u8>) {
            (CString::new(path).unwrap_or_default(), format!("{id} {id} 1\n").into_bytes())
        };
        let ns = &self.namespaces;
        if my_uid != 0 && !ns.user && (ns.pid || ns.mount || ns.network || ns.ipc || ns.uts) {
            return Err(SandboxError::Prepare {
                layer: "namespaces",
                detail: "PID, mount, network, IPC and UTS namespaces need a user namespace when the manager \
                         is not root"
                    .into(),
            });
        }
        let (uid_map, gid_map) = if self.namespaces.user {
            (Some(map("/proc/self/uid_map", outer_uid)), Some(map("/proc/self/gid_map", outer_gid)))
        } else {
            (None, None)
        };
        let mut rlimits = Vec::new();
        if let Some(l) = &self.limits {
            let file_size =
                if fd_passing && l.file_size == 0 { umd_wire::DEFAULT_MAX_MEMFD } else { l.file_size };
            rlimits = vec![
                (libc::RLIMIT_AS, l.address_space),
                (libc::RLIMIT_NOFILE, l.open_files),
                (libc::RLIMIT_NPROC, l.processes),
                (libc::RLIMIT_CPU, l.cpu_seconds),
                (libc::RLIMIT_FSIZE, file_size),
                (libc::RLIMIT_CORE, l.core),
            ];
        }
        let abi = landlock_abi();
        let landlock = if self.landlock {
            if abi < 6 && self.require_all {
                return Err(SandboxError::Unavailable {
                    layer: "Landlock (ABI 6: file system, TCP and scopes)",
                    detail: format!("kernel ABI {abi}"),
                });
            }
            match landlock_ruleset() {
                Ok(fd) => Some(Arc::new(fd)),
                Err(detail) if self.require_all => {
                    return Err(SandboxError::Unavailable { layer: "Landlock", detail })
                }
                Err(detail) => {
                    tracing::warn!("Landlock unavailable, handlers run without it: {detail}");
                    None
                }
            }
        } else {
            None
        };
        let cgroup = match &self.cgroup {
            Some(limits) => Some(Arc::new(Cgroup::create(limits)?)),
            None => None,
        };
        let external_filters = if self.seccomp && !runtime {
            let extra: Vec<&str> = self.extra_syscalls.iter().map(String::as_str).collect();
            umd_seccomp::build(umd_seccomp::Flavor::External { memfd_replies: fd_passing }, &extra)
                .map_err(|e| SandboxError::Prepare { layer: "seccomp", detail: e.to_string() })?
        } else {
            if self.seccomp && !self.extra_syscalls.is_empty() {
                // Check the widening now, so a typo fails at load, not in the handler.
                let extra: Vec<&str> = self.extra_syscalls.iter().map(String::as_str).collect();
                umd_seccomp::build(umd_seccomp::Flavor::Runtime { memfd_replies: fd_passing }, &extra)
                    .map_err(|e| SandboxError::Prepare { layer: "seccomp", detail: e.to_string() })?;
            }
            Vec::new()
        };
        Ok(Prepared {
            policy,
            rlimits,
            ids,
            spawn_flags: self.namespaces.split(my_uid).0,
            clone_flags: self.namespaces.split(my_uid).1,
            uid_map,
            gid_map,
            setgroups_path: c"/proc/self/setgroups".to_owned(),
            landlock,
            cgroup,
            external_filters,
            parent_pid: my_pid,
            expect_uid: outer_uid,
            expect_gid: outer_gid,
            expect_no_caps: ids.is_some() || my_uid != 0,
            landlock_abi: abi,
        })
    }
}

fn errno() -> io::Error {
    io::Error::last_os_error()
}

/// Turns a failed call into its errno. (The child cannot allocate, so the step is
/// not attached: the error reaches the parent as a bare errno, and
/// `loader::spawn` names the stage "confinement".)
fn check(r: libc::c_long) -> io::Result<()> {
    if r < 0 {
        Err(errno())
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
            return Err(errno());
        }
        let n = libc::write(fd, data.as_ptr().cast(), data.len());
        let e = errno();
        libc::close(fd);
        if n != data.len() as isize {
            return Err(e);
        }
    }
    Ok(())
}

impl Prepared {
    /// The policy this was prepared from.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Clone flags the loader starts the child with (namespaces that must exist from the start).
    pub(crate) fn clone_flags_for_spawn(&self) -> u64 {
        self.spawn_flags
    }

    /// Whether the loader installs the seccomp filter (handler not built on the runtime).
    pub fn loader_installs_seccomp(&self) -> bool {
        !self.external_filters.is_empty()
    }

    /// Whether the loader may start handlers with `CLONE_VM | CLONE_VFORK` (the
    /// child shares the manager's address space until its exec). Not when a user
    /// namespace is involved: the kernel refuses `unshare(CLONE_NEWUSER)` to a
    /// process that shares its memory, and the identity mapping written then is
    /// kept on the path it was tested on (fork).
    pub(crate) fn shares_address_space(&self) -> bool {
        self.clone_flags & libc::CLONE_NEWUSER == 0 && self.spawn_flags & libc::CLONE_NEWUSER as u64 == 0
    }

    /// Applies the policy in the child, just before `execveat`. Only
    /// async-signal-safe system calls on pre-built data. `shared_vm` is set when
    /// the child shares the manager's address space (see `loader::RawChild`).
    pub(crate) fn apply_in_child(&self, shared_vm: Option<crate::loader::SharedVm>) -> io::Result<()> {
        // SAFETY: each call below is a plain system call on integers or on memory
        // owned by `self`, which outlives this function.
        unsafe {
            if let Some(cg) = &self.cgroup {
                // Join first: the cgroup files belong to root.
                for procs in &cg.procs {
                    write_file(procs, b"0")?;
                }
            }
            // Namespaces other than the user one need privilege: a root manager's
            // child makes them while still root (they are then owned by the
            // initial user namespace, where the handler holds nothing).
            let later = if self.ids.is_some() {
                let now = self.clone_flags & !libc::CLONE_NEWUSER;
                if now != 0 {
                    check(libc::unshare(now) as libc::c_long)?;
                }
                self.clone_flags & libc::CLONE_NEWUSER
            } else {
                self.clone_flags
            };
            if let Some((uid, gid)) = self.ids {
                // Drop every capability from the bounding set while we still may,
                // then the groups, then gid before uid (after setuid we could not).
                for cap in 0..=63 {
                    if libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) < 0
                        && *libc::__errno_location() == libc::EINVAL
                    {
                        break;
                    }
                }
                // Raw system calls, which change this task only. glibc's wrappers
                // would take glibc's thread-list lock and try to signal every
                // thread on that list to change its ids too: those are the
                // manager's threads (this child has none), and after a CLONE_VM
                // start the list and its lock are the manager's live memory.
                check(libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>()))?;
                check(libc::syscall(libc::SYS_setresgid, gid, gid, gid))?;
                check(libc::syscall(libc::SYS_setresuid, uid, uid, uid))?;
                // The uid change made the address space non-dumpable, which hands
                // the process's /proc files to root.
                let dumpable = match shared_vm {
                    // That address space is still the manager's (CLONE_VM): give
                    // the manager its own flag back. (No user namespace on this
                    // path, so nothing below needs the child dumpable.)
                    Some(vm) => vm.dumpable,
                    // A copy: make it dumpable again so the child can write its
                    // own uid_map below. (The exec sets this flag anew anyway.)
                    None => 1,
                };
                check(libc::prctl(libc::PR_SET_DUMPABLE, dumpable, 0, 0, 0) as libc::c_long)?;
            }
            if later != 0 {
                // With a user namespace in the same call when unprivileged: the
                // kernel makes it first, and it grants what the others need.
                check(libc::unshare(later) as libc::c_long)?;
            }
            if later & libc::CLONE_NEWUSER != 0 || self.spawn_flags & libc::CLONE_NEWUSER as u64 != 0 {
                if let (Some((up, ud)), Some((gp, gd))) = (&self.uid_map, &self.gid_map) {
                    write_file(&self.setgroups_path, b"deny")?;
                    write_file(up, ud)?;
                    write_file(gp, gd)?;
                }
            }
            // Limits after the identity change: RLIMIT_NPROC checked at setuid time
            // would otherwise count every other handler of the same uid.
            for &(res, v) in &self.rlimits {
                let lim = libc::rlimit { rlim_cur: v, rlim_max: v };
                check(libc::setrlimit(res, &lim) as libc::c_long)?;
            }
            if self.policy.parent_death_signal {
                // After the credential change (which clears the parent-death signal).
                check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) as libc::c_long)?;
                // The manager died between fork and here? (Not knowable inside a new
                // PID namespace, where the parent has no pid: getppid() is 0.)
                let in_new_pid_ns = self.spawn_flags & libc::CLONE_NEWPID as u64 != 0;
                if !in_new_pid_ns && libc::getppid() != self.parent_pid {
                    libc::_exit(1);
                }
            }
            if self.policy.is_confined() {
                check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) as libc::c_long)?;
            }
            if let Some(fd) = &self.landlock {
                check(libc::syscall(libc::SYS_landlock_restrict_self, fd.as_raw_fd(), 0u32))?;
            }
            for f in &self.external_filters {
                umd_seccomp::install(f).map_err(io::Error::from_raw_os_error)?;
            }
        }
        Ok(())
    }
}

/// A control group made for one loaded program, removed on drop.
#[derive(Debug)]
struct Cgroup {
    dirs: Vec<std::path::PathBuf>,
    /// `cgroup.procs` of each directory, for the child to join.
    procs: Vec<CString>,
}

impl Cgroup {
    fn create(limits: &CgroupLimits) -> Result<Cgroup, SandboxError> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let unavailable = |detail: String| SandboxError::Unavailable { layer: "cgroup limits", detail };
        let own = std::fs::read_to_string("/proc/self/cgroup")
            .map_err(|e| unavailable(format!("/proc/self/cgroup: {e}")))?;
        let name = format!("umd-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        // (controller, limit file, value) for cgroup v1, where each controller has
        // its own hierarchy; `/proc/self/cgroup` gives our place in each.
        let v1 =
            [("pids", "pids.max", limits.pids_max), ("memory", "memory.limit_in_bytes", limits.memory_bytes)];
        let mut cg = Cgroup { dirs: Vec::new(), procs: Vec::new() };
        let mut made = |dir: std::path::PathBuf, settings: &[(&str, u64)]| -> Result<(), SandboxError> {
            std::fs::create_dir(&dir).map_err(|e| unavailable(format!("creating {}: {e}", dir.display())))?;
            cg.dirs.push(dir.clone());
            for (file, value) in settings {
                std::fs::write(dir.join(file), value.to_string())
                    .map_err(|e| unavailable(format!("writing {}/{file}: {e}", dir.display())))?;
            }
            let procs = CString::new(dir.join("cgroup.procs").into_os_string().into_encoded_bytes())
                .map_err(|_| unavailable("cgroup path contains NUL".into()))?;
            cg.procs.push(procs);
            Ok(())
        };
        let in_v1 = |ctrl: &str| {
            own.lines().find_map(|l| {
                let mut it = l.splitn(3, ':');
                let (_, ctrls, path) = (it.next()?, it.next()?, it.next()?);
                ctrls.split(',').any(|c| c == ctrl).then(|| path.to_string())
            })
        };
        if v1
            .iter()
            .all(|(c, _, _)| std::path::Path::new("/sys/fs/cgroup").join(c).is_dir() && in_v1(c).is_some())
        {
            for (ctrl, file, value) in v1 {
                let path = in_v1(ctrl).unwrap_or_default();
                let dir = std::path::Path::new("/sys/fs/cgroup")
                    .join(ctrl)
                    .join(path.trim_start_matches('/'))
                    .join(&name);
                made(dir, &[(file, value)])?;
            }
            return Ok(cg);
        }
        // cgroup v2: one hierarchy; both controllers must be enabled for children.
        let path = own.lines().find_map(|l| l.strip_prefix("0::")).unwrap_or("/").to_string();
        let parent = std::path::Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/'));
        let enabled = std::fs::read_to_string(parent.join("cgroup.subtree_control")).unwrap_or_default();
        if !(enabled.split_whitespace().any(|c| c == "pids")
            && enabled.split_whitespace().any(|c| c == "memory"))
        {
            return Err(unavailable(format!(
                "neither cgroup v1 pids+memory hierarchies nor cgroup v2 with pids and memory enabled in {}",
                parent.display()
            )));
        }
        made(parent.join(&name), &[("pids.max", limits.pids_max), ("memory.max", limits.memory_bytes)])?;
        Ok(cg)
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        for dir in &self.dirs {
            // Empty by now: every handler of the program was killed and reaped.
            if let Err(e) = std::fs::remove_dir(dir) {
                tracing::warn!("removing cgroup {}: {e}", dir.display());
            }
        }
    }
}

/// What `/proc/PID/status` says about a handler's confinement.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Observed {
    /// `NoNewPrivs`.
    pub no_new_privs: bool,
    /// `Seccomp` mode (2: filter).
    pub seccomp_mode: u32,
    /// `Seccomp_filters`.
    pub seccomp_filters: u32,
    /// Real, effective, saved and fs uid.
    pub uids: [u32; 4],
    /// Real, effective, saved and fs gid.
    pub gids: [u32; 4],
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// `CapInh`, `CapPrm`, `CapEff`, `CapAmb`.
    pub caps: [u64; 4],
}

/// Reads a handler's confinement from `/proc/PID/status`.
pub fn observe(pid: u32) -> io::Result<Observed> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let mut o = Observed::default();
    let ids = |v: &str| -> [u32; 4] {
        let mut out = [u32::MAX; 4];
        for (slot, x) in out.iter_mut().zip(v.split_whitespace()) {
            *slot = x.parse().unwrap_or(u32::MAX);
        }
        out
    };
    let cap = |v: &str| u64::from_str_radix(v.trim(), 16).unwrap_or(u64::MAX);
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else { continue };
        let v = v.trim();
        match k {
            "NoNewPrivs" => o.no_new_privs = v == "1",
            "Seccomp" => o.seccomp_mode = v.parse().unwrap_or(0),
            "Seccomp_filters" => o.seccomp_filters = v.parse().unwrap_or(0),
            "Uid" => o.uids = ids(v),
            "Gid" => o.gids = ids(v),
            "Groups" => o.groups = v.split_whitespace().filter_map(|g| g.parse().ok()).collect(),
            "CapInh" => o.caps[0] = cap(v),
            "CapPrm" => o.caps[1] = cap(v),
            "CapEff" => o.caps[2] = cap(v),
            "CapAmb" => o.caps[3] = cap(v),
            _ => {}
        }
    }
    Ok(o)
}

/// Checks that handler `pid` is confined as `prepared` says. Called before the
/// handler's first request; a handler that fails is killed, never used.
pub fn verify(pid: u32, prepared: &Prepared) -> Result<Observed, SandboxError> {
    let p = &prepared.policy;
    let o = observe(pid).map_err(|e| SandboxError::NotConfined {
        pid,
        what: format!("cannot read /proc/{pid}/status: {e}"),
    })?;
    let fail = |what: String| Err(SandboxError::NotConfined { pid, what });
    if !p.is_confined() {
        return Ok(o);
    }
    if !o.no_new_privs {
        return fail("NoNewPrivs is 0".into());
    }
    if p.seccomp {
        let want = if prepared.loader_installs_seccomp() { 2 } else { 1 };
        if o.seccomp_mode != 2 || o.seccomp_filters < want {
            return fail(format!(
                "Seccomp {} with {} filters (want mode 2 with at least {want})",
                o.seccomp_mode, o.seccomp_filters
            ));
        }
    }
    if o.uids.iter().any(|&u| u != prepared.expect_uid) || o.gids.iter().any(|&g| g != prepared.expect_gid) {
        return fail(format!(
            "uids {:?} gids {:?} (want {} / {})",
            o.uids, o.gids, prepared.expect_uid, prepared.expect_gid
        ));
    }
    if prepared.ids.is_some() && !o.groups.is_empty() {
        return fail(format!("supplementary groups {:?}", o.groups));
    }
    if prepared.expect_no_caps && o.caps.iter().any(|&c| c != 0) {
        return fail(format!("capabilities inh/prm/eff/amb {:x?}", o.caps));
    }
    if let Some(cg) = &prepared.cgroup {
        let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        for dir in &cg.dirs {
            let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("?");
            if !own.lines().any(|l| l.ends_with(&format!("/{name}"))) {
                return fail(format!("not in its control group {name}"));
            }
        }
    }
    Ok(o)
}

/// A summary of the active policy for people and scripts (`umd ... --json`).
#[derive(Clone, Debug, Serialize)]
pub struct PolicySummary {
    /// The policy.
    pub policy: Policy,
    /// Uid the handlers run as (as seen from the manager).
    pub handler_uid: u32,
    /// Gid the handlers run as.
    pub handler_gid: u32,
    /// The kernel's Landlock ABI.
    pub landlock_abi: i32,
    /// Who installs the seccomp filter: `"handler runtime"` or `"loader"`.
    pub seccomp_installed_by: &'static str,
    /// Allowed system calls (names), widening included.
    pub allowed_syscalls: Vec<String>,
}

impl Prepared {
    /// Summarizes the prepared policy.
    pub fn summary(&self, runtime: bool, fd_passing: bool) -> PolicySummary {
        let flavor = if runtime {
            umd_seccomp::Flavor::Runtime { memfd_replies: fd_passing }
        } else {
            umd_seccomp::Flavor::External { memfd_replies: fd_passing }
        };
        let mut names: Vec<String> = if self.policy.seccomp {
            umd_seccomp::rules(flavor).iter().map(|r| r.name.to_string()).collect()
        } else {
            Vec::new()
        };
        names.extend(self.policy.extra_syscalls.iter().map(|s| format!("{s} (widened)")));
        names.dedup();
        PolicySummary {
            policy: (*self.policy).clone(),
            handler_uid: self.expect_uid,
            handler_gid: self.expect_gid,
            landlock_abi: self.landlock_abi,
            seccomp_installed_by: if !self.policy.seccomp {
                "nobody (seccomp off)"
            } else if runtime {
                "handler runtime"
            } else {
                "loader"
            },
            allowed_syscalls: names,
        }
    }
}
