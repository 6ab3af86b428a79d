//! Optional sandbox layers: the cgroup layer (handlers of one loaded program share
//! a control group with `pids` and `memory` limits, gone with the program) and the
//! PID namespace.

mod common;

use std::path::{Path, PathBuf};

use common::{sandbox_required, strict_policy};
use umd::sandbox::{CgroupLimits, Policy};
use umd::{Driver, Program, Request};

/// Our directories under each v1 controller (or the v2 hierarchy) named `umd-*`.
fn umd_groups(pid: u32) -> Vec<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let (_, ctrl, path) = (it.next()?, it.next()?, it.next()?);
            let leaf = path.rsplit('/').next()?;
            if !leaf.starts_with("umd-") {
                return None;
            }
            let base = if ctrl.is_empty() {
                PathBuf::from("/sys/fs/cgroup")
            } else {
                Path::new("/sys/fs/cgroup").join(ctrl)
            };
            Some(base.join(path.trim_start_matches('/')))
        })
        .collect()
}

fn cgroups_usable() -> bool {
    // SAFETY: plain query.
    let root = unsafe { libc::geteuid() } == 0;
    let v1 =
        Path::new("/sys/fs/cgroup/pids/cgroup.procs").exists() && Path::new("/sys/fs/cgroup/memory").is_dir();
    root && v1
}

#[test]
fn handlers_join_a_limited_control_group_that_is_removed_on_unload() {
    if !cgroups_usable() {
        if sandbox_required() {
            panic!("cgroup v1 pids+memory controllers and root are required (UMD_REQUIRE_SANDBOX=1)");
        }
        eprintln!("\n*** SKIPPED: cgroup layer test needs root and cgroup v1 pids+memory controllers ***\n");
        return;
    }
    let limits = CgroupLimits { pids_max: 3, memory_bytes: 128 << 20 };
    let driver = Driver::builder("cgroup-test")
        .raw(umd::wire_sample::SIZES)
        .policy(Policy { cgroup: Some(limits), ..strict_policy() })
        .provider(|_| Program::runtime_blob("sample", umd_blobs::SAMPLE_HANDLER).map_err(|e| e.to_string()))
        .build();
    driver
        .call(Request::Bytes(&0u32.to_le_bytes()), |_| Ok::<_, std::convert::Infallible>(()))
        .expect("request");
    let pid = driver.handler_pids()[0];
    let groups = umd_groups(pid);
    assert_eq!(groups.len(), 2, "one group per controller: {groups:?}");
    let pids = groups.iter().find(|g| g.starts_with("/sys/fs/cgroup/pids")).expect("pids group");
    let memory = groups.iter().find(|g| g.starts_with("/sys/fs/cgroup/memory")).expect("memory group");
    assert_eq!(std::fs::read_to_string(pids.join("pids.max")).unwrap().trim(), "3");
    assert_eq!(
        std::fs::read_to_string(memory.join("memory.limit_in_bytes")).unwrap().trim(),
        (128u64 << 20).to_string()
    );
    driver.unload();
    for g in &groups {
        assert!(!g.exists(), "{} left behind after unload", g.display());
    }
}

/// The `NSpid` line of a process: its pid in each PID namespace, outermost first.
fn ns_pids(pid: u32) -> Vec<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .map(|v| v.split_whitespace().filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_default()
}

#[test]
fn pid_namespace_makes_the_handler_process_one_of_its_own_namespace() {
    for user in [false, true] {
        let ns = umd::sandbox::Namespaces { pid: true, user, ..Default::default() };
        let driver = Driver::builder("pidns-test")
            .raw(umd::wire_sample::SIZES)
            .policy(Policy { namespaces: ns, ..strict_policy() })
            .provider(|_| {
                Program::runtime_blob("sample", umd_blobs::SAMPLE_HANDLER).map_err(|e| e.to_string())
            })
            .build();
        if let Err(e) =
            driver.call(Request::Bytes(&0u32.to_le_bytes()), |_| Ok::<_, std::convert::Infallible>(()))
        {
            if sandbox_required() {
                panic!("PID namespace unavailable (user ns {user}): {e}");
            }
            eprintln!("\n*** SKIPPED: PID namespace unavailable here (user ns {user}): {e} ***\n");
            return;
        }
        let pid = driver.handler_pids()[0];
        let pids = ns_pids(pid);
        assert_eq!(pids.first(), Some(&pid), "outermost pid is the one the manager knows: {pids:?}");
        assert_eq!(pids.last(), Some(&1), "the handler is process 1 of its namespace: {pids:?}");
        assert_eq!(pids.len(), 2, "{pids:?}");
        // It still serves, and dies with its driver.
        driver
            .call(Request::Bytes(&4096u32.to_le_bytes()), |r| Ok::<_, std::convert::Infallible>(r[4096]))
            .expect("second request");
        driver.unload();
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "handler {pid} reaped");
    }
}
