//! Generated lies about RPM header descriptions (`umd_lies::rpm`): the first
//! byte picks one of the committed honest inputs (`fuzz/streams/rpm`), the
//! rest are the choices that mutate its honest description. The property:
//! no panic, no stack overflow, the manager's heap within four times the
//! input and 16 MiB, and a lie the manager accepts changes nothing.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use umd_lies::rpm;
use umd_rpm_wire::Command;
use umd_wire::counting::{figure, measure, Counting};

#[global_allocator]
static ALLOC: Counting = Counting;

fn inputs() -> &'static [rpm::Honest] {
    static I: OnceLock<Vec<rpm::Honest>> = OnceLock::new();
    I.get_or_init(|| {
        umd_lies::streams("rpm")
            .into_iter()
            .map(|(name, b)| {
                let command = if name.ends_with(".rpm") { Command::Package } else { Command::DbHeader };
                rpm::Honest::new(command, b).expect("honest input")
            })
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, choices)) = data.split_first() else { return };
    let inputs = inputs();
    let honest = &inputs[usize::from(which) % inputs.len()];
    let reply = rpm::lie(honest, choices);
    let (r, peak) = measure(|| rpm::judge(honest, &reply));
    let bound = figure(honest.input.len() + 1);
    assert!(peak <= bound, "{peak} bytes for a {}-byte input", honest.input.len());
    if let Err(e) = r {
        panic!("{e}");
    }
});
