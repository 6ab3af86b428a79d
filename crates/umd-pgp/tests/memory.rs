//! The `pgp` driver's memory figure, measured: whatever a handler answers,
//! honest or lying, the heap the manager allocates from the request to the
//! verdict stays within four times the bytes the handler was given and
//! 16 MiB, and no reply overflows its stack.
//!
//! A dedicated test binary (its own process) with a counting global
//! allocator (`umd_wire::counting`); scenarios run one at a time. Run with
//! `--nocapture` to see the figures (the README's table comes from here).

use std::sync::OnceLock;
use std::time::Duration;

use umd::Program;
use umd_pgp::driver::PgpDriver;
use umd_wire::counting::{figure, measure, serial, Counting};

#[global_allocator]
static ALLOC: Counting = Counting;

/// Inputs: a v6 certificate, a signature by it over [`DATA`], a large stream
/// of signatures, and a large stream of one opaque packet.
struct Inputs {
    cert: Vec<u8>,
    sig: Vec<u8>,
    many_sigs: Vec<u8>,
    big_opaque: Vec<u8>,
}

const DATA: &[u8] = b"measured";

fn inputs() -> &'static Inputs {
    static I: OnceLock<Inputs> = OnceLock::new();
    I.get_or_init(|| {
        let v6 = umd_testkeys::v6(umd_testkeys::CipherSuite::Cv25519, "memory <memory@example.org>", false);
        let sig = umd_testkeys::sign(&v6.signer, DATA, None);
        // 4 MiB of signatures: 27,000 of them, described in the manager's
        // memory in about twice their size.
        let many_sigs = sig.repeat((4 << 20) / sig.len());
        // One 8 MiB literal data packet (tag 11, 5-octet length): opaque.
        let mut big_opaque = vec![0xcb, 0xff];
        big_opaque.extend_from_slice(&(8u32 << 20).to_be_bytes());
        big_opaque.extend(std::iter::repeat_n(b'x', 8 << 20));
        Inputs { cert: v6.keyring, sig, many_sigs, big_opaque }
    })
}

fn honest() -> PgpDriver {
    PgpDriver::new(Duration::from_secs(30))
}

fn liar(args: &[&str]) -> PgpDriver {
    PgpDriver::with_program(
        || Program::runtime_blob("umd-pgp-liar-handler", umd_blobs::PGP_LIAR_HANDLER),
        args.iter().map(|a| a.to_string()).collect(),
        Duration::from_secs(3),
    )
}

/// Describes `stream` with `driver` (started beforehand, so the start-up
/// probe is not in the measure), and holds the peak to the figure. Returns
/// whether the description was accepted, and the peak.
#[track_caller]
fn within_the_figure(name: &str, driver: &PgpDriver, stream: &[u8]) -> (bool, usize) {
    let _ = driver.start();
    let given = stream.len() + 1;
    let (accepted, peak) = measure(|| driver.describe(stream).map(|p| p.len()));
    let bound = figure(given);
    eprintln!(
        "memory: pgp {name}: given {given} B, peak {peak} B ({:.2} MiB), bound {:.2} MiB, {}",
        peak as f64 / (1 << 20) as f64,
        bound as f64 / (1 << 20) as f64,
        match &accepted {
            Ok(n) => format!("accepted ({n} packets)"),
            Err(e) => format!("refused: {}", short(&e.to_string())),
        }
    );
    assert!(peak <= bound, "{name}: {peak} bytes for {given} given (bound {bound})");
    (accepted.is_ok(), peak)
}

fn short(s: &str) -> String {
    s.chars().take(140).collect()
}

#[test]
fn honest_descriptions_stay_within_the_figure() {
    let _serial = serial();
    let i = inputs();
    let d = honest();
    assert!(within_the_figure("honest v6 certificate", &d, &i.cert).0);
    assert!(within_the_figure("honest signature", &d, &i.sig).0);
    assert!(within_the_figure("honest 8 MiB opaque packet", &d, &i.big_opaque).0);
    if let Ok(k) = std::fs::read("/usr/share/keyrings/debian-archive-keyring.gpg") {
        assert!(within_the_figure("honest Debian archive keyring", &d, &k).0);
    }
    assert!(within_the_figure("honest 4 MiB of small signatures", &d, &i.many_sigs).0);
    // Half a million empty user IDs: an honest description would take some
    // 70 MB of the manager's memory for 1 MB; the handler refuses it, naming
    // the limit, and the manager spends nothing on it.
    let dense = [0xcd, 0x00].repeat(500_000);
    assert!(!within_the_figure("honest 1 MB of empty user IDs", &d, &dense).0);
}

#[test]
fn wide_replies_stay_within_the_figure() {
    let _serial = serial();
    let i = inputs();
    for lie in ["wide-packets", "wide-subpackets", "bloat"] {
        let d = liar(&[lie]);
        for (what, stream) in
            [("signature", &i.sig), ("8 MiB packet and a signature", &[&i.big_opaque[..], &i.sig].concat())]
        {
            let (accepted, _) = within_the_figure(&format!("{lie} liar, {what}"), &d, stream);
            assert!(!accepted, "{lie}: accepted");
        }
    }
}

#[test]
fn deep_nesting_cannot_overflow_the_stack_and_stays_within_the_figure() {
    let _serial = serial();
    let i = inputs();
    let d = liar(&["deep-embedding"]);
    // The bound lets a reply about the 8 MiB stream nest some 900,000 levels.
    for stream in [&i.sig[..], &[&i.big_opaque[..], &i.sig].concat()] {
        let (accepted, _) = within_the_figure("deep-embedding liar", &d, stream);
        assert!(!accepted);
    }
}

#[test]
fn a_stalled_announced_frame_stays_within_the_figure() {
    let _serial = serial();
    let i = inputs();
    // The liar announces the largest reply the stream allows (13 MiB for
    // the 8 MiB stream), sends 4 KiB and stalls until its deadline.
    let d = liar(&["stall-frame"]);
    let stream = [&i.big_opaque[..], &i.sig].concat();
    let (accepted, peak) = within_the_figure("stall-frame liar, 8 MiB stream", &d, &stream);
    assert!(!accepted);
    assert!(peak < 4 << 20, "{peak} bytes held for a stalled frame");
}

#[test]
fn probe_lies_stay_within_the_figure() {
    let _serial = serial();
    // The start-up probe (a 7-byte user ID) answered with each lie: the
    // handler fails post_start, within the figure of what the probe gave.
    for lie in ["wide-packets", "wide-subpackets", "deep-embedding", "bloat", "stall-frame"] {
        let d = liar(&[lie, "always"]);
        let (r, peak) = measure(|| d.start());
        eprintln!("memory: pgp {lie} liar at the probe: peak {peak} B, {}", short(&format!("{r:?}")));
        assert!(r.is_err(), "{lie}: the probe's lie was accepted");
        assert!(peak <= figure(8), "{lie}: {peak} bytes");
    }
}

#[test]
fn a_certificate_flooded_with_signatures_stays_within_the_figure_to_the_verdict() {
    let _serial = serial();
    // The whole path, not only the description: the certificate is
    // described, checked, split into its components and validated. 4 MiB of
    // signatures appended to a certificate (a flooded key).
    let i = inputs();
    let flooded = [&i.cert[..], &i.many_sigs].concat();
    let given = flooded.len() + 1;
    let (r, peak) = measure(|| {
        let v = umd_pgp::verifier::Verifier::with_driver(
            honest(),
            std::slice::from_ref(&flooded),
            Default::default(),
        )?;
        v.certificates(std::time::SystemTime::now()).map(|c| c.len())
    });
    let bound = figure(given);
    eprintln!(
        "memory: pgp flooded certificate to the verdict: given {given} B, peak {peak} B ({:.2} MiB), bound {:.2} MiB, {}",
        peak as f64 / (1 << 20) as f64,
        bound as f64 / (1 << 20) as f64,
        short(&format!("{r:?}"))
    );
    assert!(peak <= bound, "{peak} bytes for {given} given (bound {bound})");
}
