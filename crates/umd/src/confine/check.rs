//! After the exec and the handler's own steps, before its first request: the
//! manager reads the handler's confinement back from `/proc/PID/status` and
//! refuses (kills) a handler that is not confined as its policy says. A runtime
//! handler installs its seccomp filter itself, so this is where the manager stops
//! taking its word for it.
//!
//! `/proc` shows the seccomp mode and the number of filters, not the program.
//! A manager with `CAP_SYS_ADMIN` could read the program itself
//! (`PTRACE_SECCOMP_GET_FILTER`) and compare it with the expected one; measured
//! at ~2 % of a cold start, it is not done here (`docs/design.md`, "What the
//! manager can check, and what it cannot"; `examples/seccomp_filter_check.rs`).

use std::io;

use serde::Serialize;

use super::Prepared;
use crate::sandbox::SandboxError;

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
