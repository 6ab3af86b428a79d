//! The manager's checks on a hostile description of arbitrary bytes: a lying
//! handler controls both. Must never panic; whatever passes, the certificate
//! builder and the signature verifier must handle without panicking.
//!
//! The property is `umd_lies::targets::pgp_check`, which `cargo test` also runs
//! over this target's committed corpus (`fuzz/corpus/pgp_check`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| umd_lies::targets::pgp_check(data));
