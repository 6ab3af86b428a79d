//! Before the clone, once per loaded program: [`Policy::prepare`] turns the policy
//! into a [`Prepared`] set of values (rlimits, ids, namespace flags, uid/gid maps,
//! the Landlock ruleset, the control group, the loader's seccomp filters), so that
//! the steps in the child (`in_child`) allocate nothing. Whatever the
//! kernel lacks is found here, not in a child: a layer the policy requires
//! (`require_all`) fails the load, another one is left out with a warning.

use std::ffi::CString;
use std::fmt;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use crate::sandbox::{CgroupLimits, Identity, Policy, SandboxError, DEFAULT_HANDLER_ID};

/// A policy turned into values the child can use without allocating: what
/// each step of `in_child` needs, built once per loaded program.
pub struct Prepared {
    pub(crate) policy: Arc<Policy>,
    pub(super) rlimits: Vec<(libc::__rlimit_resource_t, u64)>,
    pub(super) ids: Option<(u32, u32)>,
    /// Namespaces made by the clone itself.
    pub(super) spawn_flags: u64,
    /// Namespaces made by `unshare` in the child.
    pub(super) clone_flags: libc::c_int,
    pub(super) uid_map: Option<(CString, Vec<u8>)>,
    pub(super) gid_map: Option<(CString, Vec<u8>)>,
    pub(super) setgroups_path: CString,
    pub(super) landlock: Option<Arc<OwnedFd>>,
    /// The control group handlers join (removed when the last user is gone).
    pub(super) cgroup: Option<Arc<Cgroup>>,
    /// Filters the loader installs (handlers not built on `umd-handler`).
    pub(super) external_filters: Vec<umd_seccomp::BpfProgram>,
    pub(super) parent_pid: libc::pid_t,
    /// The identity `verify` expects, as seen from the manager.
    pub(crate) expect_uid: u32,
    pub(crate) expect_gid: u32,
    /// Whether the handler must hold no capabilities (it changed identity, or the
    /// manager had none to give).
    pub(super) expect_no_caps: bool,
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
}

/// A control group made for one loaded program, removed on drop.
#[derive(Debug)]
pub(super) struct Cgroup {
    pub(super) dirs: Vec<std::path::PathBuf>,
    /// `cgroup.procs` of each directory, for the child to join.
    pub(super) procs: Vec<CString>,
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
