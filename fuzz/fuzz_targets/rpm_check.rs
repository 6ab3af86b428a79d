//! The manager's check of a hostile description of arbitrary bytes: a lying
//! handler controls both. Must never panic; whatever passes must give a
//! signed-region cut and a file list without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use umd_rpm_wire::{Command, Description};

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let command = if data[0] & 1 == 0 { Command::Package } else { Command::DbHeader };
    let split = usize::from(u16::from_le_bytes([data[1], data[2]])) % (data.len() - 2);
    let (input, desc) = data[3..].split_at(split.min(data.len() - 3));
    let mut budget = umd_wire::decode::Budget::new(umd_rpm_wire::max_memory(input.len()));
    let Ok(desc) = Description::decode_charging(desc, input.len(), &mut budget) else { return };
    if let Ok(c) = umd_rpm::check::check(command, input, desc, &mut budget) {
        let _ = c.main.signed_bytes();
        let _ = c.files.len();
    }
});
