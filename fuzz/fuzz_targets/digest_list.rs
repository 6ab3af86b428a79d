//! Opening a digest list whose signature verifies (the fuzzer's bytes, signed
//! here): parsing, package access and lookups must never panic.
//!
//! The property is `umd_lies::targets::digest_list`, which `cargo test` also runs
//! over this target's committed corpus (`fuzz/corpus/digest_list`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| umd_lies::targets::digest_list(data));
