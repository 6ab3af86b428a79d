//! Framing the manager does itself: armor, cleartext, frame headers.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = umd_pgp::armor::decode_all(data);
    let _ = umd_pgp::cleartext::split(data);
    if let Ok(h) = <&[u8; 8]>::try_from(data.get(..8).unwrap_or(&[])) {
        let _ = umd_wire::FrameHeader::decode(h, &umd_wire::Limits::default());
    }
});
