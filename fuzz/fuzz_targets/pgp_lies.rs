//! Generated lies about OpenPGP descriptions (`umd_lies::pgp`): the first
//! byte picks one of the committed honest inputs (`fuzz/streams/pgp`), the
//! rest are the choices that mutate its honest description. The property:
//! no panic, no stack overflow, the manager's heap within four times the
//! input and 16 MiB, and a lie the manager accepts changes nothing.
//!
//! The property is `umd_lies::targets::pgp_lies`, which `cargo test` also runs
//! over this target's committed corpus (`fuzz/corpus/pgp_lies`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use umd_wire::counting::Counting;

// The property counts the manager's heap.
#[global_allocator]
static ALLOC: Counting = Counting;

fuzz_target!(|data: &[u8]| umd_lies::targets::pgp_lies(data));
