//! The OpenPGP handler's parser on arbitrary bytes: it may refuse, never panic,
//! and whatever it describes must pass the manager's check of the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(desc) = umd_pgp_handler::describe(data) {
        if !data.is_empty() {
            umd_pgp::packet::check(data, desc).expect("an honest description checks out");
        }
    }
});
