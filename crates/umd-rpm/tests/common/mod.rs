//! The test corpus, built once per test binary with `scripts/rpm-corpus`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use umd_rpm::package::PackageVerifier;

pub fn corpus() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // One directory per test binary, rebuilt on each run (nothing piles up).
        let exe = std::env::current_exe().expect("test binary path");
        let name = exe.file_name().expect("file name").to_string_lossy().into_owned();
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("rpm-corpus").join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creating the corpus directory");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/rpm-corpus");
        let out =
            Command::new(&script).arg(&dir).output().expect("running scripts/rpm-corpus (needs rpm, gpg)");
        assert!(out.status.success(), "rpm-corpus failed: {}", String::from_utf8_lossy(&out.stderr));
        dir
    })
}

pub fn verifier() -> PackageVerifier {
    let keyring = std::fs::read(corpus().join("keys/keyring.asc")).unwrap();
    PackageVerifier::new(&[keyring]).unwrap()
}

pub fn rpm(name: &str) -> Vec<u8> {
    std::fs::read(corpus().join("rpms").join(name)).unwrap()
}

pub fn keyring() -> Vec<u8> {
    std::fs::read(corpus().join("keys/keyring.asc")).unwrap()
}

/// The corpus database's header blobs, read by the sandboxed handler.
pub fn db_headers() -> Vec<(u32, Vec<u8>)> {
    let driver = umd_rpm::driver::RpmDriver::new(std::time::Duration::from_secs(10));
    umd_rpm::db::headers(&driver, &corpus().join("root/var/lib/rpm"))
        .unwrap()
        .into_iter()
        .map(|b| (b.hnum, b.blob))
        .collect()
}
