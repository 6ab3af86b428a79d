//! Generated lies about OpenPGP descriptions (`umd_lies::pgp`): the first
//! byte picks one of the committed honest inputs (`fuzz/streams/pgp`), the
//! rest are the choices that mutate its honest description. The property:
//! no panic, no stack overflow, the manager's heap within four times the
//! input and 16 MiB, and a lie the manager accepts changes nothing.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use umd_lies::pgp;
use umd_wire::counting::{figure, measure, Counting};

#[global_allocator]
static ALLOC: Counting = Counting;

fn inputs() -> &'static [pgp::Honest] {
    static I: OnceLock<Vec<pgp::Honest>> = OnceLock::new();
    I.get_or_init(|| {
        umd_lies::streams("pgp").into_iter().map(|(_, b)| pgp::Honest::new(b).expect("honest input")).collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, choices)) = data.split_first() else { return };
    let inputs = inputs();
    let honest = &inputs[usize::from(which) % inputs.len()];
    let reply = pgp::lie(honest, choices);
    let (r, peak) = measure(|| pgp::judge(honest, &reply));
    let bound = figure(honest.stream.len() + 1);
    assert!(peak <= bound, "{peak} bytes for a {}-byte stream", honest.stream.len());
    if let Err(e) = r {
        panic!("{e}");
    }
});
