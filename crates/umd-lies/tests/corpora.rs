//! Every fuzz target's committed corpus (`fuzz/corpus/TARGET`), replayed
//! through the target's property (`umd_lies::targets`) under plain
//! `cargo test`: cargo-fuzz needs nightly, which CI does not promise, so this
//! is how CI keeps what the fuzzers found (see `fuzz/README.md`).
//!
//! A process of its own with the counting allocator installed, as the lie
//! targets measure the manager's heap.

use std::path::{Path, PathBuf};

use umd_lies::targets;
use umd_wire::counting::{serial, Counting};

#[global_allocator]
static ALLOC: Counting = Counting;

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(target)
}

/// Runs every input of `target`'s corpus through `property`; the inputs
/// replayed.
fn replay(target: &str, property: targets::Property) -> usize {
    let dir = corpus(target);
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    inputs.sort();
    for path in &inputs {
        let data = std::fs::read(path).unwrap();
        if let Err(panic) = std::panic::catch_unwind(|| property(&data)) {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("{target}: {} breaks the property: {why}", path.display());
        }
    }
    eprintln!("{target}: {} corpus inputs replayed", inputs.len());
    inputs.len()
}

#[test]
fn every_fuzz_target_has_a_committed_corpus() {
    let _serial = serial();
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut binaries: Vec<String> = std::fs::read_dir(fuzz.join("fuzz_targets"))
        .unwrap()
        .map(|e| e.unwrap().path().file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    binaries.sort();
    let mut known: Vec<String> = targets::ALL.iter().map(|(n, _)| n.to_string()).collect();
    known.sort();
    assert_eq!(binaries, known, "fuzz/fuzz_targets and umd_lies::targets::ALL differ");
    for (name, _) in targets::ALL {
        let n = std::fs::read_dir(corpus(name)).map(|d| d.count()).unwrap_or(0);
        assert!(n > 0, "{name}: no committed corpus at {}", corpus(name).display());
    }
}

#[test]
fn the_pgp_lies_corpus_replays_clean() {
    let _serial = serial();
    replay("pgp_lies", targets::pgp_lies);
}

#[test]
fn the_rpm_lies_corpus_replays_clean() {
    let _serial = serial();
    replay("rpm_lies", targets::rpm_lies);
}

#[test]
fn the_pgp_describe_corpus_replays_clean() {
    let _serial = serial();
    replay("pgp_describe", targets::pgp_describe);
}

#[test]
fn the_pgp_check_corpus_replays_clean() {
    let _serial = serial();
    replay("pgp_check", targets::pgp_check);
}

#[test]
fn the_framing_corpus_replays_clean() {
    let _serial = serial();
    replay("framing", targets::framing);
}

#[test]
fn the_rpm_describe_corpus_replays_clean() {
    let _serial = serial();
    replay("rpm_describe", targets::rpm_describe);
}

#[test]
fn the_rpm_check_corpus_replays_clean() {
    let _serial = serial();
    replay("rpm_check", targets::rpm_check);
}

#[test]
fn the_digest_list_corpus_replays_clean() {
    let _serial = serial();
    replay("digest_list", targets::digest_list);
}
