//! The manager's check of a hostile description of arbitrary bytes: a lying
//! handler controls both. Must never panic; whatever passes must give a
//! signed-region cut and a file list without panicking.
//!
//! The property is `umd_lies::targets::rpm_check`, which `cargo test` also runs
//! over this target's committed corpus (`fuzz/corpus/rpm_check`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| umd_lies::targets::rpm_check(data));
