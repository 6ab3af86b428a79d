//! Generated lies about RPM header descriptions (`umd_lies::rpm`): the first
//! byte picks one of the committed honest inputs (`fuzz/streams/rpm`), the
//! rest are the choices that mutate its honest description. The property:
//! no panic, no stack overflow, the manager's heap within four times the
//! input and 16 MiB, and a lie the manager accepts changes nothing.
//!
//! The property is `umd_lies::targets::rpm_lies`, which `cargo test` also runs
//! over this target's committed corpus (`fuzz/corpus/rpm_lies`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use umd_wire::counting::Counting;

// The property counts the manager's heap.
#[global_allocator]
static ALLOC: Counting = Counting;

fuzz_target!(|data: &[u8]| umd_lies::targets::rpm_lies(data));
