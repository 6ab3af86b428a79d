//! The sample handler: the kernel sample's wire format (raw mode). Request: a
//! little-endian `u32` offset. Reply: 128 KiB of zeros with byte `offset` set to 1.
//! An offset out of range gets an all-zero reply, which the manager rejects.

use std::process::ExitCode;

use umd_handler::wire::sample::SIZES;

fn main() -> ExitCode {
    // The runtime reuses the reply buffer: clear the byte set last time instead of
    // zeroing 128 KiB per request.
    let mut last: Option<usize> = None;
    umd_handler::serve_raw(SIZES, |req, reply| {
        if let Some(i) = last.take() {
            reply[i] = 0;
        }
        let offset = u32::from_le_bytes([req[0], req[1], req[2], req[3]]) as usize;
        if let Some(b) = reply.get_mut(offset) {
            *b = 1;
            last = Some(offset);
        }
    })
}
