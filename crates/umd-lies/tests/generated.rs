//! Generated lies against the manager's checks: structure-aware mutations of
//! honest descriptions (every field, nesting, duplication, reordering,
//! deletion, growth of every vector to the size bound), as a proptest. The
//! fuzz targets `pgp_lies` and `rpm_lies` make the same lies; their corpora
//! replay in `tests/corpora.rs`.
//!
//! The property, for every lie: no panic, no stack overflow (the process
//! would die), the manager's heap within four times the input and 16 MiB
//! (counted by this process's allocator), and a lie the manager accepts
//! changes nothing: what it accepts equals what it accepts from the honest
//! description.

use std::sync::OnceLock;

use proptest::prelude::*;
use umd_lies::{pgp, rpm};
use umd_rpm_wire::Command;
use umd_wire::counting::{figure, measure, serial, Counting};

#[global_allocator]
static ALLOC: Counting = Counting;

/// The committed inputs, and where present the system's Debian keyrings and
/// `InRelease` signature blocks.
fn pgp_inputs() -> &'static [pgp::Honest] {
    static I: OnceLock<Vec<pgp::Honest>> = OnceLock::new();
    I.get_or_init(|| {
        let mut streams: Vec<Vec<u8>> = umd_lies::streams("pgp").into_iter().map(|(_, b)| b).collect();
        for k in [
            "/usr/share/keyrings/debian-archive-keyring.gpg",
            "/usr/share/keyrings/debian-archive-removed-keys.gpg",
        ] {
            if let Ok(b) = std::fs::read(k) {
                streams.push(b);
            }
        }
        for e in std::fs::read_dir("/var/lib/apt/lists").into_iter().flatten().flatten() {
            if e.file_name().to_string_lossy().ends_with("InRelease") {
                if let Ok(c) = std::fs::read(e.path())
                    .map_err(|_| ())
                    .and_then(|b| umd_pgp::cleartext::split(&b).map_err(|_| ()))
                {
                    streams.push(c.signatures);
                }
            }
        }
        streams.into_iter().map(|s| pgp::Honest::new(s).expect("an honest input describes")).collect()
    })
}

fn rpm_inputs() -> &'static [rpm::Honest] {
    static I: OnceLock<Vec<rpm::Honest>> = OnceLock::new();
    I.get_or_init(|| {
        umd_lies::streams("rpm")
            .into_iter()
            .map(|(name, b)| {
                let command = if name.ends_with(".rpm") { Command::Package } else { Command::DbHeader };
                rpm::Honest::new(command, b).expect("an honest input describes")
            })
            .collect()
    })
}

/// Judges `reply` about a pgp input: within the figure, and never accepted
/// with another result.
fn pgp_judged(honest: &pgp::Honest, reply: &[u8]) -> Result<bool, String> {
    let (r, peak) = measure(|| pgp::judge(honest, reply));
    let bound = figure(honest.stream.len() + 1);
    if peak > bound {
        return Err(format!("{peak} bytes for a {}-byte stream (bound {bound})", honest.stream.len()));
    }
    r
}

/// As [`pgp_judged`], about an rpm input.
fn rpm_judged(honest: &rpm::Honest, reply: &[u8]) -> Result<bool, String> {
    let (r, peak) = measure(|| rpm::judge(honest, reply));
    let bound = figure(honest.input.len() + 1);
    if peak > bound {
        return Err(format!("{peak} bytes for a {}-byte input (bound {bound})", honest.input.len()));
    }
    r
}

/// One pgp lie: judged within the figure, and never accepted with another
/// result.
fn pgp_case(which: usize, choices: &[u8]) -> Result<bool, String> {
    let _serial = serial();
    let inputs = pgp_inputs();
    let honest = &inputs[which % inputs.len()];
    pgp_judged(honest, &pgp::lie(honest, choices))
}

fn rpm_case(which: usize, choices: &[u8]) -> Result<bool, String> {
    let _serial = serial();
    let inputs = rpm_inputs();
    let honest = &inputs[which % inputs.len()];
    rpm_judged(honest, &rpm::lie(honest, choices))
}

#[test]
fn every_honest_input_is_accepted_by_the_manager() {
    // The lie an empty choice string makes, judged and measured.
    for i in 0..pgp_inputs().len() {
        assert_eq!(pgp_case(i, &[]).map(|_| ()), Ok(()), "pgp input {i}");
    }
    let _serial = serial();
    for (i, h) in pgp_inputs().iter().enumerate() {
        h.checked().unwrap_or_else(|e| panic!("pgp input {i}: {e}"));
    }
    for (i, h) in rpm_inputs().iter().enumerate() {
        h.checked().unwrap_or_else(|e| panic!("rpm input {i}: {e}"));
    }
}

/// Growth to the size bound is one draw in `GROWTH_ODDS` of the generator
/// (it keeps the fuzzers fast): here every kind of vector each input has is
/// grown, every time.
#[test]
fn every_vector_grown_to_the_bound_stays_within_the_figure_and_is_refused_or_equal() {
    let _serial = serial();
    let mut refused = 0;
    for (which, honest) in pgp_inputs().iter().enumerate() {
        for kind in 0..5u8 {
            for pick in [0u8, 7] {
                let reply = pgp::grown(honest, &[kind, pick, pick, pick, pick]);
                let accepted = pgp_judged(honest, &reply)
                    .unwrap_or_else(|e| panic!("pgp input {which}, kind {kind}: {e}"));
                refused += usize::from(!accepted);
            }
        }
    }
    for (which, honest) in rpm_inputs().iter().enumerate() {
        for kind in 0..3u8 {
            for pick in [0u8, 7, 200] {
                let reply = rpm::grown(honest, &[kind, pick, pick, pick, pick]);
                let accepted = rpm_judged(honest, &reply)
                    .unwrap_or_else(|e| panic!("rpm input {which}, kind {kind}: {e}"));
                refused += usize::from(!accepted);
            }
        }
    }
    // A vector grown by megabytes is never what the honest handler said.
    assert!(refused > 0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn generated_pgp_lies_never_panic_stay_within_the_figure_and_change_nothing(
        which in any::<usize>(),
        choices in proptest::collection::vec(any::<u8>(), 0..96),
    ) {
        pgp_case(which, &choices).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn generated_rpm_lies_never_panic_stay_within_the_figure_and_change_nothing(
        which in any::<usize>(),
        choices in proptest::collection::vec(any::<u8>(), 0..96),
    ) {
        rpm_case(which, &choices).map_err(TestCaseError::fail)?;
    }
}
