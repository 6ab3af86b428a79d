//! The OpenPGP handler's parser on arbitrary bytes: it may refuse, never panic,
//! and whatever it describes must pass the manager's check of the same bytes.
//!
//! The property is `umd_lies::targets::pgp_describe`, which `cargo test` also runs
//! over this target's committed corpus (`fuzz/corpus/pgp_describe`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| umd_lies::targets::pgp_describe(data));
