//! The manager's checks on a hostile description of arbitrary bytes: a lying
//! handler controls both. Must never panic; whatever passes, the certificate
//! builder and the signature verifier must handle without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let split = usize::from(u16::from_le_bytes([data[0], data[1]])) % data.len();
    let (stream, desc) = data[2..].split_at(split.min(data.len() - 2));
    let Ok(desc) = umd_pgp_wire::Description::decode(desc, stream.len()) else { return };
    // The manager's own framing walk (used to cut keyrings) never panics, and
    // where a description checks out, it finds the same packets.
    let frames = umd_pgp::packet::frames(stream);
    let Ok(packets) = umd_pgp::packet::check(stream, desc) else { return };
    let frames = frames.expect("a stream whose description checks out has sound framing");
    assert_eq!(frames.len(), packets.len());
    for (f, p) in frames.iter().zip(&packets) {
        assert_eq!((f.offset as u64, f.header.tag), (p.offset, p.tag));
    }
    let policy = umd_pgp::policy::Policy::new();
    if let Ok(certs) = umd_pgp::cert::certificates(&packets, &policy) {
        let _ = umd_pgp::verify::verify(&certs, &packets, umd_pgp::verify::Data::Detached(stream), &policy);
    }
});
