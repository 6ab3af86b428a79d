//! The systemd units, checked without systemd as PID 1: `systemd-analyze
//! verify` on the installed units, socket activation through
//! `systemd-socket-activate`, and the units' privilege set (capability bounding
//! set + no-new-privileges) reproduced with `setpriv` around a real service.
//!
//! The tools come from Debian's `systemd` package (`scripts/test` installs it);
//! a missing tool fails these tests.

mod svc;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use svc::{text, OPEN};
use umd_service::client::Client;

fn tool(name: &str) -> String {
    let found = Command::new("sh").arg("-c").arg(format!("command -v {name}")).output().unwrap();
    assert!(
        found.status.success(),
        "{name} is missing: install Debian's systemd package (scripts/test does)"
    );
    String::from_utf8_lossy(&found.stdout).trim().to_string()
}

#[test]
fn installed_units_pass_systemd_analyze_verify() {
    let analyze = tool("systemd-analyze");
    let dir = svc::private_dir("units");
    let out = svc::umd(&[
        "install-units",
        "--unit-dir",
        dir.to_str().unwrap(),
        "--bin",
        svc::umd_bin().to_str().unwrap(),
        "--config",
        dir.join("etc/umd.toml").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{:?}", text(&out));
    for f in ["umd.service", "umd.socket", "etc/umd.toml"] {
        assert!(dir.join(f).exists(), "{f} written");
    }
    let service = std::fs::read_to_string(dir.join("umd.service")).unwrap();
    assert!(service.contains(&format!("ExecStart={} serve --config", svc::umd_bin().display())));
    let v = Command::new(&analyze)
        .arg("verify")
        .arg(dir.join("umd.socket"))
        .arg(dir.join("umd.service"))
        .output()
        .unwrap();
    let (stdout, stderr) = text(&v);
    assert!(v.status.success(), "systemd-analyze verify failed:\n{stdout}\n{stderr}");
    assert!(stderr.trim().is_empty(), "systemd-analyze verify warned:\n{stderr}");
    // The example configuration it wrote is one the service accepts.
    umd_service::config::Config::load(&dir.join("etc/umd.toml")).unwrap();
    // A second installation keeps an existing configuration.
    let again = svc::umd(&[
        "install-units",
        "--unit-dir",
        dir.to_str().unwrap(),
        "--config",
        dir.join("etc/umd.toml").to_str().unwrap(),
    ]);
    assert!(text(&again).0.contains("kept"), "{:?}", text(&again));
}

#[test]
fn systemd_socket_activate_starts_umd_serve_on_the_first_connection() {
    let activate = tool("systemd-socket-activate");
    let dir = svc::private_dir("activate");
    let socket = dir.join("umd.sock");
    let config = dir.join("umd.toml");
    std::fs::write(&config, OPEN).unwrap();
    let log = dir.join("serve.log");
    let mut child = Command::new(&activate)
        .arg("-l")
        .arg(&socket)
        // It passes the command no environment but what -E names.
        .arg("-E")
        .arg("RUST_LOG=info")
        .arg(svc::umd_bin())
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !socket.exists() {
        assert!(Instant::now() < deadline, "systemd-socket-activate did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The first connection starts the service on the passed socket.
    let mut c = Client::connect(&socket).unwrap();
    c.sample(4096).unwrap();
    let status = c.status().unwrap();
    // systemd-socket-activate execs the command: same process.
    assert_eq!(status.pid, child.id(), "served by the activated process");
    let cli = Command::new(svc::umd_bin())
        .arg("--socket")
        .arg(&socket)
        .args(["sample", "request", "--offset", "1024"])
        .output()
        .unwrap();
    assert!(cli.status.success(), "{:?}", text(&cli));
    drop(c);
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let st = child.wait().unwrap();
    assert!(st.success(), "{st:?}; log:\n{}", std::fs::read_to_string(&log).unwrap_or_default());
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("socket=(activated)"), "{log}");
    assert!(socket.exists(), "an activated service leaves the socket to its owner");
}

#[test]
fn the_units_privileges_are_enough_to_confine_handlers() {
    if !svc::require_root("running the service with the units' capability bounding set") {
        return;
    }
    tool("setpriv");
    let dir = svc::private_dir("caps");
    let socket = dir.join("umd.sock");
    let config = dir.join("umd.toml");
    std::fs::write(&config, OPEN).unwrap();
    // CapabilityBoundingSet=CAP_SETUID CAP_SETGID CAP_SETPCAP CAP_KILL, NoNewPrivileges=yes.
    let mut child = Command::new("setpriv")
        .args(["--bounding-set=-all,+setuid,+setgid,+setpcap,+kill", "--no-new-privs"])
        .arg(svc::umd_bin())
        .arg("--socket")
        .arg(&socket)
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut c = loop {
        if let Ok(c) = Client::connect(&socket) {
            break c;
        }
        assert!(Instant::now() < deadline, "the service did not start under setpriv");
        std::thread::sleep(Duration::from_millis(20));
    };
    // Handlers start, are confined (the manager checks /proc before using them)
    // and answer; unload kills handlers of another uid.
    c.sample(0).unwrap();
    let keyring = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../umd-pgp/tests/fixtures/debian-archive-keyring.gpg"
    ))
    .unwrap();
    let doc = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../umd-pgp/tests/fixtures/bookworm-security_InRelease"
    ))
    .unwrap();
    let v = c
        .verify(umd_service::proto::VerifyRequest {
            keyrings: vec![keyring],
            signature: doc,
            data: None,
            required: 1,
        })
        .unwrap();
    assert_eq!(v.status, umd_service::proto::VerifyStatus::Verified);
    let handlers: Vec<u32> = c.status().unwrap().drivers.iter().flat_map(|d| d.handlers.clone()).collect();
    assert_eq!(handlers.len(), 2);
    for h in &handlers {
        let status = std::fs::read_to_string(format!("/proc/{h}/status")).unwrap();
        assert!(status.lines().any(|l| l.starts_with("Uid:") && l.contains("61874")), "{status}");
    }
    assert!(c.unload(umd_service::proto::DriverName::Sample).unwrap());
    assert!(c.unload(umd_service::proto::DriverName::Pgp).unwrap());
    for h in &handlers {
        assert!(!std::path::Path::new(&format!("/proc/{h}")).exists(), "handler {h} killed and reaped");
    }
    drop(c);
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
}
