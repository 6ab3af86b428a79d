//! The RPM handler's parser on arbitrary bytes (first byte: package file or
//! database header), then the manager's check of its honest description. The
//! parser must never panic, and the check must never call an honest
//! description a lie (a `Mismatch` here is a disagreement between the two
//! readers of the format, i.e. a bug in one of them).
//!
//! The property is `umd_lies::targets::rpm_describe`, which `cargo test` also runs
//! over this target's committed corpus (`fuzz/corpus/rpm_describe`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| umd_lies::targets::rpm_describe(data));
