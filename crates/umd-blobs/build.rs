//! Builds the handler programs as static executables and hands their paths to the
//! crate, which embeds them with `include_bytes!`.
//!
//! Why a nested `cargo build`: Cargo's artifact dependencies are nightly-only, and a
//! handler must be linked statically (it is executed from a memfd and, once
//! confined, can open no shared library). The nested build uses its own target
//! directory: sharing the outer one would deadlock on its lock.

use std::env;
use std::path::PathBuf;
use std::process::Command;

/// Handler packages to build; each produces a binary of the same name.
const HANDLERS: &[&str] = &[
    "umd-sample-handler",
    "umd-echo-handler",
    "umd-hostile-handler",
    "umd-malicious-handler",
    "umd-pgp-handler",
    "umd-pgp-liar-handler",
    "umd-rpm-handler",
    "umd-rpm-liar-handler",
];

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir.join("../..").canonicalize().expect("workspace root exists");
    let target = env::var("TARGET").expect("cargo sets TARGET");
    let outer_target_dir =
        env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace.join("target"));
    let target_dir = outer_target_dir.join("umd-handlers");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());

    for dir in [
        "handlers",
        "crates/umd-handler",
        "crates/umd-wire",
        "crates/umd-seccomp",
        "crates/umd-pgp-wire",
        "crates/umd-rpm-wire",
        "Cargo.lock",
        "Cargo.toml",
    ] {
        println!("cargo:rerun-if-changed={}", workspace.join(dir).display());
    }

    let mut cmd = Command::new(cargo);
    cmd.current_dir(&workspace)
        .args(["build", "--profile", "handler", "--target", &target, "--target-dir"])
        .arg(&target_dir);
    for h in HANDLERS {
        cmd.args(["-p", h]);
    }
    // Only what we set should reach the nested build: static linking for the target
    // (with an explicit --target, these flags skip build scripts and proc macros).
    for (k, _) in env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("CARGO_") && k != "CARGO_HOME" || k == "RUSTFLAGS" || k == "RUSTC_WORKSPACE_WRAPPER"
        {
            cmd.env_remove(&k);
        }
    }
    cmd.env("CARGO_ENCODED_RUSTFLAGS", "-Ctarget-feature=+crt-static");
    let status = cmd.status().expect("running the nested cargo build of the handlers");
    assert!(status.success(), "building the static handler programs failed ({status})");

    for h in HANDLERS {
        let path = target_dir.join(&target).join("handler").join(h);
        assert!(path.exists(), "handler binary missing after build: {}", path.display());
        let var = h.to_uppercase().replace('-', "_");
        println!("cargo:rustc-env={var}={}", path.display());
    }
}
