//! A test and benchmark handler.
//!
//! * `umd-echo-handler` or `umd-echo-handler echo` — framed: replies with the request.
//! * `umd-echo-handler sum` — framed: replies with the 8-byte little-endian wrapping
//!   sum of the request's bytes (reads every byte, replies small: the payload
//!   benchmark).
//! * `umd-echo-handler raw N` — raw: reads N bytes, writes them back.

use std::process::ExitCode;

use umd_handler::wire::RawSizes;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None | Some("echo") => umd_handler::serve_framed(|req, out| {
            out.extend_from_slice(req);
            Ok(())
        }),
        Some("sum") => umd_handler::serve_framed(|req, out| {
            // Eight lanes so the loop vectorizes; the sum only proves every byte was read.
            let mut lanes = [0u64; 8];
            let chunks = req.chunks_exact(8);
            let tail = chunks.remainder();
            for c in chunks {
                for (l, b) in lanes.iter_mut().zip(c) {
                    *l = l.wrapping_add(u64::from(*b));
                }
            }
            let mut sum = lanes.iter().fold(0u64, |a, b| a.wrapping_add(*b));
            for b in tail {
                sum = sum.wrapping_add(u64::from(*b));
            }
            out.extend_from_slice(&sum.to_le_bytes());
            Ok(())
        }),
        Some("raw") => {
            let Some(n) = args.get(1).and_then(|s| s.parse::<usize>().ok()) else {
                eprintln!("usage: umd-echo-handler raw N");
                return ExitCode::from(2);
            };
            umd_handler::serve_raw(RawSizes { request: n, reply: n }, |req, reply| reply.copy_from_slice(req))
        }
        Some(other) => {
            eprintln!("umd-echo-handler: unknown mode {other:?} (echo, sum, raw N)");
            ExitCode::from(2)
        }
    }
}
