//! The cgroup layer: handlers of one loaded program share a control group with
//! `pids` and `memory` limits; the group goes away with the program.

use std::path::{Path, PathBuf};

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
        if std::env::var_os("UMD_REQUIRE_SANDBOX").is_some_and(|v| v == "1") {
            panic!("cgroup v1 pids+memory controllers and root are required (UMD_REQUIRE_SANDBOX=1)");
        }
        eprintln!("\n*** SKIPPED: cgroup layer test needs root and cgroup v1 pids+memory controllers ***\n");
        return;
    }
    let limits = CgroupLimits { pids_max: 3, memory_bytes: 128 << 20 };
    let driver = Driver::builder("cgroup-test")
        .raw(umd::wire_sample::SIZES)
        .policy(Policy { cgroup: Some(limits), ..Policy::default() })
        .provider(|_| Program::runtime_blob("sample", umd_blobs::SAMPLE_HANDLER).map_err(|e| e.to_string()))
        .build();
    driver.call(Request::Bytes(&0u32.to_le_bytes()), |_| Ok(())).expect("request");
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
