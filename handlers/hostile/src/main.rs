//! A misbehaving handler for the manager's fault tests. It speaks the sample's raw
//! wire format (or, for `framed-*` modes, the framed one) and misbehaves as its
//! first argument says. Never shipped: only tests embed it.

use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::Duration;

const REPLY: usize = 128 * 1024;

fn read_req(stdin: &mut impl Read) -> Option<usize> {
    let mut b = [0u8; 4];
    stdin.read_exact(&mut b).ok()?;
    Some(u32::from_le_bytes(b) as usize)
}

fn good_reply(offset: usize) -> Vec<u8> {
    let mut r = vec![0u8; REPLY];
    if let Some(b) = r.get_mut(offset) {
        *b = 1;
    }
    r
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map(String::as_str).unwrap_or("");
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut stdin = std::io::stdin().lock();
    let mut stdout = std::io::stdout().lock();
    let mut served = 0usize;
    if mode == "exit-at-start" {
        return ExitCode::from(3);
    }
    while let Some(offset) = read_req(&mut stdin) {
        let after_post_start = served > 0;
        served += 1;
        let mut reply = good_reply(offset);
        match mode {
            // Serves `n` requests (post_start included), then misbehaves.
            "crash-mid-reply" if served > n => {
                let _ = stdout.write_all(&reply[..REPLY / 2]);
                let _ = stdout.flush();
                std::process::abort();
            }
            "short-reply" if served > n => {
                let _ = stdout.write_all(&reply[..1000]);
                return ExitCode::SUCCESS;
            }
            "hang" if served > n => loop {
                std::thread::sleep(Duration::from_secs(3600));
            },
            "slow" => std::thread::sleep(Duration::from_millis(n as u64)),
            "long-reply" if after_post_start => reply.extend_from_slice(&[0u8; 100]),
            "bad-post-start" => reply[offset.min(REPLY - 1)] = 0,
            "wrong-byte" if after_post_start => {
                reply[offset.min(REPLY - 1)] = 0;
                reply[(offset + 1) % REPLY] = 1;
            }
            "stderr-flood" if after_post_start => {
                // n MiB of noise before an honest reply.
                let line = [b'x'; 1023];
                let mut err = std::io::stderr().lock();
                for _ in 0..n * 1024 {
                    let _ = err.write_all(&line);
                    let _ = err.write_all(b"\n");
                }
            }
            "exit-after" if served > n => return ExitCode::SUCCESS,
            _ => {}
        }
        if stdout.write_all(&reply).and_then(|()| stdout.flush()).is_err() {
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}
