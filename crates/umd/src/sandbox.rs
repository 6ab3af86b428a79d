//! The **sandbox policy**: what a handler may do, as one type.
//!
//! A handler parses hostile input, so it is treated as compromised: it may compute
//! and reply on its channel, nothing else. [`Policy`] says what is taken away,
//! strict by default; [`crate::confine`] applies it, step by step in the order
//! the steps run, and checks it before the handler's first request.
//!
//! | layer | what it takes away |
//! |---|---|
//! | identity (root manager) | root: the handler runs as an unprivileged uid/gid with no supplementary groups; every capability (effective, permitted, inheritable, ambient, bounding) is gone |
//! | user namespace (optional) | capabilities over anything outside the namespace; allows the other namespaces without privilege |
//! | mount / network / IPC / UTS / PID namespaces (optional) | mounts, network interfaces, SysV IPC, host name, the sight of other processes |
//! | control group (optional) | memory (memfds and page cache included) and processes of all handlers of a program together |
//! | resource limits | memory (address space), open files, processes, CPU time, file size, core dumps |
//! | parent-death signal | outliving the manager (SIGKILL when it exits) |
//! | no-new-privileges | gaining privileges through exec |
//! | Landlock | every file system access, TCP bind/connect, abstract Unix sockets and signals outside the handler's domain |
//! | seccomp | every system call off the allow-list (`umd-seccomp`) |
//! | inherited fds, environment | every fd but 0, 1, 2; every environment variable |
//!
//! Which namespaces are on by default was decided by measurement (see
//! `docs/design.md`, "Sandbox layers and their cost").

use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

pub use crate::confine::{landlock_abi, observe, verify, Observed, Prepared};

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
    pub(crate) fn split(&self, euid: u32) -> (u64, libc::c_int) {
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
