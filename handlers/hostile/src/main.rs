//! A misbehaving handler for the manager's fault tests. It speaks the sample's raw
//! wire format (or, for `framed-*` modes, the framed one) and misbehaves as its
//! first argument says. Never shipped: only tests embed it.
//!
//! Raw modes (`N` is the second argument; "served" counts `post_start` too):
//!
//! * `crash-mid-reply N` — serves N requests, then writes half a reply and aborts.
//! * `short-reply N` — serves N requests, then writes 1000 bytes and exits.
//! * `hang N` — serves N requests, then never answers.
//! * `slow MS` — sleeps MS milliseconds before every reply.
//! * `long-reply` — after `post_start`, replies 100 bytes too many in one write.
//! * `late-extra` — after `post_start`, replies correctly, then 20 ms later writes
//!   10 more bytes between requests.
//! * `bad-post-start` — never sets the requested byte (fails `post_start`).
//! * `wrong-byte` — after `post_start`, sets the byte after the requested one.
//! * `stderr-flood N` — after `post_start`, writes N MiB to stderr before replying.
//! * `exit-at-start` — exits with status 3 before reading anything.
//! * `exit-after N` — serves N requests, then exits with status 0 unanswered.
//! * `deaf-after N` — serves N requests, then closes its stdin (keeping stdout
//!   open, so it looks alive) and waits: the next request's write meets a pipe
//!   with no reader.
//!
//! Framed modes (no `post_start` expected; they misbehave on the first request):
//!
//! * `framed-bad-magic` — the reply header starts with `XX`.
//! * `framed-huge-len` — announces a 4 GiB inline reply, then waits.
//! * `framed-unsealed-memfd` — replies with a memfd that carries no seals.
//! * `framed-memfd-size-lie` — a sealed memfd one byte shorter than announced.
//! * `framed-huge-memfd` — a sealed memfd frame announcing 4 GiB.
//! * `framed-two-replies` — two reply frames for one request, in one write.
//! * `framed-wrong-kind` — replies with a frame of kind `Request`.
//! * `framed-fd-with-inline` — an inline reply with an fd attached.
//! * `framed-error` — an error frame for requests starting with `bad`, else echo.
//! * `framed-deaf` — never reads a request.

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::time::Duration;

use umd_handler::wire::chan::{self, ChanError, Endpoint, Payload, Received};
use umd_handler::wire::memfd::{Exec, SealedMemfd};
use umd_handler::wire::{encode_memfd_body, FrameHeader, Kind, Limits, MEMFD_BODY_LEN};

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

/// Sleeps with poll(2) on no fds: poll is on the sandbox's allow-list (the
/// handler must misbehave as asked, not die of a seccomp violation first), while
/// nanosleep is not.
fn sleep(d: Duration) {
    let ts = rustix::time::Timespec { tv_sec: d.as_secs() as i64, tv_nsec: i64::from(d.subsec_nanos()) };
    let _ = rustix::event::poll(&mut [], Some(&ts));
}

fn sleep_forever() -> ! {
    loop {
        sleep(Duration::from_secs(3600));
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map(String::as_str).unwrap_or("");
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    if mode.starts_with("framed-") {
        return framed(mode);
    }
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
                let _ = stdout.flush();
                return ExitCode::SUCCESS;
            }
            "hang" if served > n => sleep_forever(),
            "slow" => sleep(Duration::from_millis(n as u64)),
            "long-reply" if after_post_start => {
                // The manager sizes the reply pipe above the reply, so the
                // over-long reply lands in one piece and the manager sees the
                // extra bytes with it.
                reply.extend_from_slice(&[0u8; 100]);
            }
            "late-extra" if after_post_start => {
                if stdout.write_all(&reply).and_then(|()| stdout.flush()).is_err() {
                    return ExitCode::from(2);
                }
                sleep(Duration::from_millis(20));
                let _ = stdout.write_all(&[0u8; 10]);
                let _ = stdout.flush();
                continue;
            }
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
        let deaf = mode == "deaf-after" && served >= n;
        if deaf {
            // Closed before the reply is written, so that the manager, which
            // sends its next request only after this reply, always finds no
            // reader (closing after the reply raced with that request).
            // SAFETY: closing our own fd 0; nothing reads it from here on.
            unsafe { rustix::io::close(0) };
        }
        if stdout.write_all(&reply).and_then(|()| stdout.flush()).is_err() {
            return ExitCode::from(2);
        }
        if deaf {
            sleep_forever();
        }
    }
    ExitCode::SUCCESS
}

fn endpoint() -> Endpoint<'static> {
    umd_handler::endpoint()
}

/// The framed misbehaviours: each request is read properly, the answer is wrong.
fn framed(mode: &str) -> ExitCode {
    if mode == "framed-deaf" {
        // Never reads: a large request fills the channel and the manager's write
        // must give up at its deadline.
        sleep_forever();
    }
    let ep = endpoint();
    let limits = Limits::default();
    let mut buf = Vec::new();
    loop {
        let req: Vec<u8> = match chan::recv_frame(ep, &limits, &mut buf, None) {
            Ok(Received::Inline { len, .. }) => buf[..len].to_vec(),
            Ok(Received::Memfd { memfd, .. }) => match memfd.to_vec() {
                Ok(v) => v,
                Err(_) => return ExitCode::from(2),
            },
            Err(ChanError::Eof { got: 0, .. }) => return ExitCode::SUCCESS,
            Err(_) => return ExitCode::from(2),
        };
        let reply_header = |kind, len: usize| FrameHeader::new(kind, len as u32).encode();
        let sent = match mode {
            "framed-bad-magic" => {
                let mut h = reply_header(Kind::Reply, req.len());
                h[0] = b'X';
                h[1] = b'X';
                chan::write_all(ep, &[&h, &req], None, None)
            }
            "framed-huge-len" => {
                let h = FrameHeader::new(Kind::Reply, u32::MAX).encode();
                let _ = chan::write_all(ep, &[&h, &req], None, None);
                sleep_forever()
            }
            "framed-unsealed-memfd" => {
                let Ok(fd) = rustix::fs::memfd_create(c"hostile-unsealed", rustix::fs::MemfdFlags::CLOEXEC)
                else {
                    return ExitCode::from(2);
                };
                if rustix::io::write(&fd, &req).is_err() {
                    return ExitCode::from(2);
                }
                let h = reply_header(Kind::MemfdReply, MEMFD_BODY_LEN);
                let body = encode_memfd_body(req.len() as u64);
                chan::write_all(ep, &[&h, &body], Some(fd.as_fd()), None)
            }
            "framed-memfd-size-lie" | "framed-huge-memfd" => {
                let Ok(m) = SealedMemfd::from_bytes(c"hostile-lie", &req, Exec::Data) else {
                    return ExitCode::from(2);
                };
                let announced = if mode == "framed-huge-memfd" { 4 << 30 } else { req.len() as u64 + 1 };
                let h = reply_header(Kind::MemfdReply, MEMFD_BODY_LEN);
                let body = encode_memfd_body(announced);
                chan::write_all(ep, &[&h, &body], Some(m.as_fd()), None)
            }
            "framed-two-replies" => {
                let h = reply_header(Kind::Reply, req.len());
                chan::write_all(ep, &[&h, &req, &h, &req], None, None)
            }
            "framed-wrong-kind" => {
                let h = reply_header(Kind::Request, req.len());
                chan::write_all(ep, &[&h, &req], None, None)
            }
            "framed-fd-with-inline" => {
                let h = reply_header(Kind::Reply, req.len());
                chan::write_all(ep, &[&h, &req], Some(rustix::stdio::stderr()), None)
            }
            "framed-error" if req.starts_with(b"bad") => {
                let msg = b"cannot parse this request";
                chan::send_frame(ep, Kind::Error, Payload::Inline(msg), &limits, None)
            }
            "framed-error" => chan::send_frame(ep, Kind::Reply, Payload::Inline(&req), &limits, None),
            _ => {
                eprintln!("umd-hostile-handler: unknown mode {mode:?}");
                return ExitCode::from(2);
            }
        };
        if sent.is_err() {
            return ExitCode::from(2);
        }
    }
}
