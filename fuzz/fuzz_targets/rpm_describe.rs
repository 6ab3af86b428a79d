//! The RPM handler's parser on arbitrary bytes (first byte: package file or
//! database header), then the manager's check of its honest description. The
//! parser must never panic, and the check must never call an honest
//! description a lie (a `Mismatch` here is a disagreement between the two
//! readers of the format, i.e. a bug in one of them).
#![no_main]

use libfuzzer_sys::fuzz_target;
use umd_rpm::check::{check, CheckError};
use umd_rpm_wire::Command;

fuzz_target!(|data: &[u8]| {
    let Some((&c, input)) = data.split_first() else { return };
    let command = if c & 1 == 0 { Command::Package } else { Command::DbHeader };
    if let Ok(d) = umd_rpm_handler::describe(command, input) {
        let mut budget = umd_wire::decode::Budget::new(umd_rpm_wire::max_memory(input.len()));
        if let Err(e @ CheckError::Mismatch { .. }) = check(command, input, d, &mut budget) {
            panic!("honest description refused: {e}");
        }
    }
});
