//! The seccomp side of the handler sandbox.
//!
//! [`allowlist`] holds the data (the one reviewed place); this module turns it into
//! BPF programs with `seccompiler` and installs them. When they are installed, in
//! the order of every confinement step, is said in one place: the `umd` crate's
//! `confine` module (step 14 for the loader's filter, step 16 for a runtime
//! handler's own).
//!
//! Two flavours exist because two kinds of handler exist:
//!
//! * [`Flavor::Runtime`] — handlers built on `umd-handler` install this filter
//!   themselves, after start-up and before they read their first request. A call
//!   off the list raises SIGSYS (`SECCOMP_RET_TRAP`); the runtime's SIGSYS handler
//!   writes the call's number to stderr and the process dies of SIGSYS. The manager
//!   turns that line into a precise report. `rt_sigaction` is not on the list, so a
//!   compromised handler cannot replace the reporter; a blocked or ignored SIGSYS is
//!   forced back to its default (death) by the kernel.
//! * [`Flavor::External`] — handlers given as a path (a C program, say) get this
//!   filter from the loader just before `execveat`: the serving calls, the exec of
//!   their sealed memfd and what a runtime does before `main`. A call off the list
//!   kills the process (`SECCOMP_RET_KILL_PROCESS`). A second filter answers file
//!   system probes with `EACCES`.
//!
//! ```
//! let filters = umd_seccomp::build(umd_seccomp::Flavor::Runtime { memfd_replies: false }, &[]).unwrap();
//! assert_eq!(filters.len(), 1);
//! assert_eq!(umd_seccomp::syscall_name(umd_seccomp::syscall_number("openat").unwrap()), Some("openat"));
//! ```
#![deny(missing_docs)]

pub mod allowlist;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;

pub use seccompiler::{sock_filter, BpfProgram};
use seccompiler::{
    SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule, TargetArch,
};

use allowlist::{Rule, Test};

#[cfg(target_arch = "x86_64")]
const ARCH: TargetArch = TargetArch::x86_64;
#[cfg(target_arch = "aarch64")]
const ARCH: TargetArch = TargetArch::aarch64;

#[cfg(target_arch = "x86_64")]
const NAMES: &str = include_str!("../data/syscalls_x86_64.txt");
#[cfg(target_arch = "aarch64")]
const NAMES: &str = include_str!("../data/syscalls_aarch64.txt");

/// Which filter to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// Installed by a handler built on `umd-handler`; violations trap and are reported.
    Runtime {
        /// Allow creating memfds for large replies (drivers that pass memfds).
        memfd_replies: bool,
    },
    /// Installed by the loader before `execveat` for other handlers; violations kill.
    External {
        /// Allow creating memfds for large replies.
        memfd_replies: bool,
    },
}

/// Why a filter could not be built.
#[derive(Debug)]
pub enum BuildError {
    /// An extra system call name is unknown on this architecture.
    UnknownSyscall(String),
    /// seccompiler refused the rules.
    Seccompiler(seccompiler::Error),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::UnknownSyscall(s) => write!(f, "unknown system call {s:?} on this architecture"),
            BuildError::Seccompiler(e) => write!(f, "building the seccomp filter: {e}"),
        }
    }
}

impl std::error::Error for BuildError {}

impl From<seccompiler::Error> for BuildError {
    fn from(e: seccompiler::Error) -> Self {
        BuildError::Seccompiler(e)
    }
}

impl From<seccompiler::BackendError> for BuildError {
    fn from(e: seccompiler::BackendError) -> Self {
        BuildError::Seccompiler(seccompiler::Error::Backend(e))
    }
}

/// The rules of a flavour, in the order they are listed.
pub fn rules(flavor: Flavor) -> Vec<&'static Rule> {
    let memfd = match flavor {
        Flavor::Runtime { memfd_replies } | Flavor::External { memfd_replies } => memfd_replies,
    };
    let mut v: Vec<&'static Rule> = allowlist::SERVE.iter().collect();
    if memfd {
        v.extend(allowlist::MEMFD_REPLY);
    }
    if matches!(flavor, Flavor::External { .. }) {
        v.extend(allowlist::STARTUP);
    }
    v
}

fn to_map<'a>(
    rules: impl IntoIterator<Item = &'a Rule>,
) -> Result<BTreeMap<i64, Vec<SeccompRule>>, BuildError> {
    let mut map: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    // A call listed once without argument checks is allowed outright; seccompiler
    // expresses that as an empty rule list.
    let mut unconditional = std::collections::BTreeSet::new();
    for r in rules {
        let nr: i64 = r.nr;
        if r.args.is_empty() {
            unconditional.insert(nr);
            map.insert(nr, Vec::new());
            continue;
        }
        if unconditional.contains(&nr) {
            continue;
        }
        let conds = r
            .args
            .iter()
            .map(|a| {
                let (op, val) = match a.test {
                    Test::Eq(v) => (SeccompCmpOp::Eq, v),
                    Test::Clear(mask) => (SeccompCmpOp::MaskedEq(mask), 0),
                };
                SeccompCondition::new(a.index, SeccompCmpArgLen::Qword, op, val)
            })
            .collect::<Result<Vec<_>, _>>()?;
        map.entry(nr).or_default().push(SeccompRule::new(conds)?);
    }
    Ok(map)
}

/// Builds the filters of `flavor`, widened by `extra` system calls (by name,
/// allowed with any arguments). Returns them in installation order.
pub fn build(flavor: Flavor, extra: &[&str]) -> Result<Vec<BpfProgram>, BuildError> {
    let extra_rules = extra
        .iter()
        .map(|name| {
            let nr = syscall_number(name).ok_or_else(|| BuildError::UnknownSyscall((*name).to_string()))?;
            Ok(Rule { name: "extra", nr, args: &[], why: "widened by the driver" })
        })
        .collect::<Result<Vec<_>, BuildError>>()?;
    let map = to_map(rules(flavor).into_iter().chain(extra_rules.iter()))?;
    let mismatch = match flavor {
        Flavor::Runtime { .. } => SeccompAction::Trap,
        Flavor::External { .. } => SeccompAction::KillProcess,
    };
    let main: BpfProgram = SeccompFilter::new(map, mismatch, SeccompAction::Allow, ARCH)?.try_into()?;
    let mut out = Vec::new();
    // The main filter goes last: it does not allow seccomp(2) itself, so nothing
    // can be installed after it.
    if matches!(flavor, Flavor::External { .. }) {
        let refused = to_map(allowlist::REFUSED_WITH_EACCES)?;
        let errno: BpfProgram = SeccompFilter::new(
            refused,
            SeccompAction::Allow,
            SeccompAction::Errno(libc::EACCES as u32),
            ARCH,
        )?
        .try_into()?;
        out.push(errno);
    }
    out.push(main);
    Ok(out)
}

/// Installs one filter on the calling thread (`seccomp(2)`,
/// `SECCOMP_SET_MODE_FILTER`). No-new-privileges must already be set. Makes one
/// system call and allocates nothing, so it may run between `fork` and `exec`.
pub fn install(filter: &[sock_filter]) -> Result<(), i32> {
    let prog =
        libc::sock_fprog { len: filter.len() as u16, filter: filter.as_ptr() as *mut libc::sock_filter };
    // SAFETY: `prog` points at `filter`, which outlives the call; the kernel copies it.
    let r = unsafe {
        libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0, &prog as *const libc::sock_fprog)
    };
    if r == 0 {
        Ok(())
    } else {
        // SAFETY: reading errno right after the failed call.
        Err(unsafe { *libc::__errno_location() })
    }
}

fn table() -> &'static [(i64, &'static str)] {
    static TABLE: OnceLock<Vec<(i64, &'static str)>> = OnceLock::new();
    TABLE.get_or_init(|| {
        NAMES
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (n, name) = l.split_once(' ')?;
                Some((n.parse().ok()?, name))
            })
            .collect()
    })
}

/// The name of system call `nr` on this architecture.
pub fn syscall_name(nr: i64) -> Option<&'static str> {
    table().iter().find(|(n, _)| *n == nr).map(|(_, name)| *name)
}

/// The number of the system call named `name` on this architecture.
pub fn syscall_number(name: &str) -> Option<i64> {
    table().iter().find(|(_, n)| *n == name).map(|(nr, _)| *nr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_call_has_the_number_the_name_table_gives() {
        for flavor in [Flavor::Runtime { memfd_replies: true }, Flavor::External { memfd_replies: true }] {
            for r in rules(flavor) {
                assert_eq!(syscall_number(r.name), Some(r.nr), "{}", r.name);
            }
        }
    }

    #[test]
    fn flavours_build_and_external_adds_the_errno_filter() {
        assert_eq!(build(Flavor::Runtime { memfd_replies: true }, &["nanosleep"]).unwrap().len(), 1);
        assert_eq!(build(Flavor::External { memfd_replies: false }, &[]).unwrap().len(), 2);
        assert!(matches!(
            build(Flavor::Runtime { memfd_replies: false }, &["no_such_call"]),
            Err(BuildError::UnknownSyscall(_))
        ));
    }

    #[test]
    fn dangerous_calls_are_not_listed() {
        for flavor in [Flavor::Runtime { memfd_replies: true }, Flavor::External { memfd_replies: true }] {
            let names: Vec<&str> = rules(flavor).iter().map(|r| r.name).collect();
            for bad in [
                "socket",
                "connect",
                "execve",
                "ptrace",
                "process_vm_readv",
                "kill",
                "setuid",
                "mount",
                "unshare",
                "clone",
                "clone3",
                "fork",
                "vfork",
                "open",
            ] {
                if bad == "open" && matches!(flavor, Flavor::External { .. }) {
                    continue; // refused with EACCES by the second filter
                }
                assert!(!names.contains(&bad), "{bad} must not be allowed");
            }
        }
    }
}
