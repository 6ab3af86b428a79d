//! Helpers for the command line tests: running the `umd` binary and compiling the
//! C handlers in `tests/c/`.
#![allow(dead_code)] // each test target uses a different subset

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

pub mod gpg;

/// Whether a missing tool or kernel feature must fail the test rather than
/// skip it (`UMD_REQUIRE_SANDBOX=1`, as CI sets).
pub fn required() -> bool {
    std::env::var("UMD_REQUIRE_SANDBOX").as_deref() == Ok("1")
}

/// True if `ready`; otherwise a loud skip, or a failure under
/// `UMD_REQUIRE_SANDBOX=1`.
pub fn ready_or_skip(ready: bool, test: &str, why: &str) -> bool {
    if ready {
        return true;
    }
    if required() {
        panic!("UMD_REQUIRE_SANDBOX=1 but {test} cannot run: {why}");
    }
    let bar = "!".repeat(80);
    let _ = writeln!(
        std::io::stderr(),
        "\n{bar}\n!!! SKIPPED: {test}: {why}\n!!! UMD_REQUIRE_SANDBOX=1 makes this a failure.\n{bar}"
    );
    false
}

/// Whether every program in `programs` can be found on PATH (or by its path).
pub fn programs_present(programs: &[&str]) -> Result<(), String> {
    let missing: Vec<&str> = programs
        .iter()
        .copied()
        .filter(|p| {
            if p.contains('/') {
                return !Path::new(p).exists();
            }
            let path = std::env::var_os("PATH").unwrap_or_default();
            !std::env::split_paths(&path).any(|d| d.join(p).exists())
        })
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("{missing:?} not installed (scripts/test installs them)"))
    }
}

/// Runs the `umd` binary built by this package with `args`.
pub fn umd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_umd"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("running the umd binary")
}

/// stdout and stderr as text.
pub fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// A directory for the tests' files (under the target directory).
pub fn scratch() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("umd-cli-tests");
    std::fs::create_dir_all(&dir).expect("creating the scratch directory");
    dir
}

/// Compiles `tests/c/NAME.c` with `gcc -static -O2` and returns the executable,
/// or `None` (after a loud message) when no C toolchain with a static libc is
/// installed. With `UMD_REQUIRE_SANDBOX=1` a missing toolchain fails the test
/// instead: there the C handler must be exercised.
pub fn compile_c(name: &str) -> Option<PathBuf> {
    static BUILT: Mutex<Option<HashMap<String, PathBuf>>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(p) = built.get_or_insert_with(HashMap::new).get(name) {
        return Some(p.clone());
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/c").join(format!("{name}.c"));
    let out = scratch().join(name);
    // Built under a private name and renamed into place, so concurrent test
    // processes never see (or run) a half-written executable.
    let tmp = scratch().join(format!("{name}.{}.tmp", std::process::id()));
    let result =
        Command::new("gcc").args(["-static", "-O2", "-Wall", "-Wextra", "-o"]).arg(&tmp).arg(&src).output();
    match result {
        Err(e) => return toolchain_missing(&format!("gcc cannot be run ({e})")),
        Ok(o) if !o.status.success() => {
            let err = String::from_utf8_lossy(&o.stderr);
            if err.contains("cannot find -lc") || err.contains("crt1.o") || err.contains(".h: No such file") {
                return toolchain_missing(&format!("no static C library: {}", err.trim()));
            }
            panic!("compiling {}: {}\n{err}", src.display(), o.status);
        }
        Ok(_) => std::fs::rename(&tmp, &out).expect("moving the compiled handler into place"),
    }
    built.get_or_insert_with(HashMap::new).insert(name.into(), out.clone());
    Some(out)
}

fn toolchain_missing(why: &str) -> Option<PathBuf> {
    if std::env::var("UMD_REQUIRE_SANDBOX").as_deref() == Ok("1") {
        panic!("UMD_REQUIRE_SANDBOX=1 but the C handler cannot be built: {why} (scripts/test installs gcc and libc6-dev)");
    }
    // Written to the real stderr, past the test harness's output capture: a
    // skipped test must be seen.
    let bar = "!".repeat(80);
    let _ = writeln!(
        std::io::stderr(),
        "\n{bar}\n!!! SKIPPED: C handler test: {why}\n!!! install gcc and libc6-dev (scripts/test \
         does), or set UMD_REQUIRE_SANDBOX=1 to make this a failure.\n{bar}"
    );
    None
}

/// Builds the RPM corpus (`scripts/rpm-corpus`: signed packages, their keys,
/// an rpm database) afresh in `scratch()/name` and returns its directory.
/// Each test binary builds its own, once (rebuilt on each run: nothing piles up).
pub fn rpm_corpus(name: &str) -> PathBuf {
    let dir = scratch().join(name);
    let _ = std::fs::remove_dir_all(&dir);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/rpm-corpus");
    let out = Command::new(&script).arg(&dir).output().expect("running scripts/rpm-corpus (needs rpm, gpg)");
    assert!(out.status.success(), "rpm-corpus failed: {}", String::from_utf8_lossy(&out.stderr));
    dir
}

/// A fresh, empty directory `base/work/name` for one test.
pub fn workdir(base: &Path, name: &str) -> PathBuf {
    let d = base.join("work").join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// This machine's apt `InRelease` lists (`/var/lib/apt/lists/*_InRelease`),
/// sorted; none where apt has none.
pub fn apt_inrelease_lists() -> Vec<PathBuf> {
    let mut lists: Vec<PathBuf> = std::fs::read_dir("/var/lib/apt/lists")
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.to_string_lossy().ends_with("_InRelease"))
                .collect()
        })
        .unwrap_or_default();
    lists.sort();
    lists
}
