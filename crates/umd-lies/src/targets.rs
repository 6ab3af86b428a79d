//! The fuzz targets' properties, as functions of the fuzzer's bytes.
//!
//! The `fuzz/` binaries call these under libFuzzer (cargo-fuzz needs nightly,
//! which CI does not promise); `tests/corpora.rs` replays every committed
//! corpus (`fuzz/corpus/TARGET`) through the same functions under plain
//! `cargo test`, so an input a fuzzer once found interesting stays a
//! regression test. Each function panics when its property breaks, and only
//! then.
//!
//! [`pgp_lies`] and [`rpm_lies`] measure the manager's heap with
//! [`umd_wire::counting`]: the process must install
//! [`Counting`](umd_wire::counting::Counting) as its global allocator, or
//! every peak reads as zero.

use std::sync::OnceLock;

use umd_rpm::check::{check, CheckError};
use umd_rpm_wire::{Command, Description};
use umd_wire::counting::{figure, measure};
use umd_wire::decode::Budget;

use crate::{pgp, rpm};

/// A target's property: panics when `data` breaks it.
pub type Property = fn(&[u8]);

/// Every target, by the name of its fuzz binary and corpus directory.
pub const ALL: &[(&str, Property)] = &[
    ("pgp_describe", pgp_describe),
    ("pgp_check", pgp_check),
    ("framing", framing),
    ("rpm_describe", rpm_describe),
    ("rpm_check", rpm_check),
    ("digest_list", digest_list),
    ("pgp_lies", pgp_lies),
    ("rpm_lies", rpm_lies),
];

/// The OpenPGP handler's parser on arbitrary bytes: it may refuse, never
/// panic, and whatever it describes passes the manager's check of the same
/// bytes.
pub fn pgp_describe(data: &[u8]) {
    if let Ok(desc) = umd_pgp_handler::describe(data) {
        if !data.is_empty() {
            if let Err(e) = umd_pgp::packet::check(data, desc) {
                panic!("an honest description was refused: {e}");
            }
        }
    }
}

/// The manager's checks on a hostile description of arbitrary bytes (a lying
/// handler controls both; the first two bytes say where the stream ends):
/// never a panic; the manager's own framing walk agrees with whatever passes;
/// the certificate builder and the verifier handle what passes.
pub fn pgp_check(data: &[u8]) {
    if data.len() < 2 {
        return;
    }
    let split = usize::from(u16::from_le_bytes([data[0], data[1]])) % data.len();
    let (stream, desc) = data[2..].split_at(split.min(data.len() - 2));
    let Ok(desc) = umd_pgp_wire::Description::decode(desc, stream.len()) else { return };
    let frames = umd_pgp::packet::frames(stream);
    let Ok(packets) = umd_pgp::packet::check(stream, desc) else { return };
    let frames = frames.expect("a stream whose description checks out has sound framing");
    assert_eq!(frames.len(), packets.len());
    for (f, p) in frames.iter().zip(&packets) {
        assert_eq!((f.offset as u64, f.header.tag), (p.offset(), p.tag()));
    }
    let policy = umd_pgp::policy::Policy::new();
    // A fixed reference time, so that an input always does the same.
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
    if let Ok(certs) = umd_pgp::cert::certificates(&packets, &policy, at) {
        let _ = umd_pgp::verify::verify(&certs, &packets, umd_pgp::verify::Data::Detached(stream), &policy);
    }
}

/// Framing the manager does itself (armor, cleartext, frame headers) on
/// arbitrary bytes: never a panic.
pub fn framing(data: &[u8]) {
    let _ = umd_pgp::armor::decode_all(data);
    let _ = umd_pgp::cleartext::split(data);
    if let Ok(h) = <&[u8; 8]>::try_from(data.get(..8).unwrap_or(&[])) {
        let _ = umd_wire::FrameHeader::decode(h, &umd_wire::Limits::default());
    }
}

/// The first byte's low bit: a package file (0) or a database header (1).
fn command(b: u8) -> Command {
    if b & 1 == 0 {
        Command::Package
    } else {
        Command::DbHeader
    }
}

/// The RPM handler's parser on arbitrary bytes (the first byte picks package
/// file or database header), then the manager's check of its honest
/// description: the parser never panics, and the check never calls an honest
/// description a lie (a `Mismatch` is a disagreement between the two readers
/// of the format, a bug in one of them).
pub fn rpm_describe(data: &[u8]) {
    let Some((&c, input)) = data.split_first() else { return };
    let command = command(c);
    if let Ok(d) = umd_rpm_handler::describe(command, input) {
        let mut budget = Budget::new(umd_rpm_wire::max_memory(input.len()));
        if let Err(e @ CheckError::Mismatch { .. }) = check(command, input, d, &mut budget) {
            panic!("honest description refused: {e}");
        }
    }
}

/// The manager's check of a hostile description of arbitrary bytes (first
/// byte: the command; the next two: where the input ends): never a panic, and
/// whatever passes gives a signed-region cut and a file list.
pub fn rpm_check(data: &[u8]) {
    if data.len() < 3 {
        return;
    }
    let command = command(data[0]);
    let split = usize::from(u16::from_le_bytes([data[1], data[2]])) % (data.len() - 2);
    let (input, desc) = data[3..].split_at(split.min(data.len() - 3));
    let mut budget = Budget::new(umd_rpm_wire::max_memory(input.len()));
    let Ok(desc) = Description::decode_charging(desc, input.len(), &mut budget) else { return };
    if let Ok(c) = check(command, input, desc, &mut budget) {
        let _ = c.main().signed_bytes();
        let _ = c.files().len();
    }
}

/// Opening a digest list whose signature verifies (the fuzzer's bytes, signed
/// here): parsing, package access and lookups never panic.
pub fn digest_list(data: &[u8]) {
    use ed25519_dalek::Signer;
    use umd_digest_list::{signed_message, Digest, DigestList, HashAlgo, SigningKey, TRAILER_MAGIC};
    let key = SigningKey::from_bytes(&[5; 32]);
    let mut bytes = data.to_vec();
    let sig = key.sign(&signed_message(&bytes));
    bytes.extend_from_slice(&TRAILER_MAGIC);
    bytes.extend_from_slice(key.verifying_key().as_bytes());
    bytes.extend_from_slice(&sig.to_bytes());
    if let Ok(l) = DigestList::open(bytes, &key.verifying_key()) {
        for p in l.packages() {
            let _ = p.name.len();
        }
        let probe = Digest::new(HashAlgo::Sha256, data.get(..32).unwrap_or(&[0; 32]));
        let _ = probe.map(|p| l.lookup(&p).count());
    }
}

/// The committed honest pgp inputs (`fuzz/streams/pgp`), described once.
pub fn pgp_inputs() -> &'static [pgp::Honest] {
    static I: OnceLock<Vec<pgp::Honest>> = OnceLock::new();
    I.get_or_init(|| {
        crate::streams("pgp")
            .into_iter()
            .map(|(name, b)| pgp::Honest::new(b).unwrap_or_else(|e| panic!("{name}: {e}")))
            .collect()
    })
}

/// The committed honest RPM inputs (`fuzz/streams/rpm`: `*.rpm` package
/// files, the others database headers), described once.
pub fn rpm_inputs() -> &'static [rpm::Honest] {
    static I: OnceLock<Vec<rpm::Honest>> = OnceLock::new();
    I.get_or_init(|| {
        crate::streams("rpm")
            .into_iter()
            .map(|(name, b)| {
                let command = if name.ends_with(".rpm") { Command::Package } else { Command::DbHeader };
                rpm::Honest::new(command, b).unwrap_or_else(|e| panic!("{name}: {e}"))
            })
            .collect()
    })
}

/// Generated lies about OpenPGP descriptions: the first byte picks a committed
/// honest input, the rest are the choices that mutate its description
/// ([`pgp::lie`]). No panic, no stack overflow, the heap within the figure,
/// and a lie the manager accepts changes nothing ([`pgp::judge`]).
pub fn pgp_lies(data: &[u8]) {
    let Some((&which, choices)) = data.split_first() else { return };
    let inputs = pgp_inputs();
    let honest = &inputs[usize::from(which) % inputs.len()];
    let reply = pgp::lie(honest, choices);
    let (r, peak) = measure(|| pgp::judge(honest, &reply));
    let bound = figure(honest.stream.len() + 1);
    assert!(peak <= bound, "{peak} bytes for a {}-byte stream (bound {bound})", honest.stream.len());
    if let Err(e) = r {
        panic!("{e}");
    }
}

/// Generated lies about RPM header descriptions, as [`pgp_lies`].
pub fn rpm_lies(data: &[u8]) {
    let Some((&which, choices)) = data.split_first() else { return };
    let inputs = rpm_inputs();
    let honest = &inputs[usize::from(which) % inputs.len()];
    let reply = rpm::lie(honest, choices);
    let (r, peak) = measure(|| rpm::judge(honest, &reply));
    let bound = figure(honest.input.len() + 1);
    assert!(peak <= bound, "{peak} bytes for a {}-byte input (bound {bound})", honest.input.len());
    if let Err(e) = r {
        panic!("{e}");
    }
}
