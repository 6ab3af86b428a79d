//! Framing the manager does itself: armor, cleartext, frame headers.
//!
//! The property is `umd_lies::targets::framing`, which `cargo test` also runs
//! over this target's committed corpus (`fuzz/corpus/framing`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| umd_lies::targets::framing(data));
