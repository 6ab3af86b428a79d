//! The framed wire mode: payloads far beyond a pipe's capacity, sealed memfd
//! payloads both ways, limits enforced before anything is sent or allocated, and
//! hostile framed handlers refused with a clear error.

mod common;

use std::time::{Duration, Instant};

use common::*;
use umd::{Driver, Error, FramedConfig, HandlerFate, Limits, Request, SealedMemfd};
use umd_wire::chan::ChanError;
use umd_wire::memfd::MemfdError;
use umd_wire::{HeaderError, Kind};

const TIMEOUT: Duration = Duration::from_secs(10);

fn echo_driver(name: &str, mode: &str, cfg: FramedConfig) -> Driver {
    Driver::builder(name).framed(cfg).timeout(TIMEOUT).args([mode]).provider(|_| Ok(echo_program())).build()
}

fn sockets() -> FramedConfig {
    FramedConfig { fd_passing: true, ..Default::default() }
}

/// A pattern in which a shifted or truncated copy would not match.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ (i >> 16) as u8).collect()
}

fn byte_sum(b: &[u8]) -> u64 {
    b.iter().fold(0u64, |a, &x| a.wrapping_add(u64::from(x)))
}

/// Whether this process maps a memfd whose name starts with `name`.
fn maps_memfd(name: &str) -> bool {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    maps.lines().any(|l| l.contains(&format!("/memfd:{name}")))
}

#[test]
fn ensure_loaded_starts_the_handler_the_first_request_then_uses() {
    let driver = echo_driver("early", "echo", FramedConfig::default());
    assert!(!driver.is_loaded());
    driver.ensure_loaded().unwrap();
    assert!(driver.is_loaded());
    driver.ensure_loaded().unwrap(); // loaded: nothing more
    let (loads, starts) = (driver.stats().loads, driver.stats().starts);
    assert_eq!((loads, starts), (1, 1));
    assert_eq!(driver.send_recv(b"ping").unwrap(), b"ping");
    assert_eq!((driver.stats().loads, driver.stats().starts), (1, 1), "the request used that handler");
}

#[test]
fn five_mib_payload_round_trips_inline_through_pipes() {
    let driver = echo_driver("echo5", "echo", FramedConfig::default());
    let payload = pattern(5 << 20);
    for _ in 0..2 {
        let reply = driver.send_recv(&payload).expect("echo");
        assert!(reply == payload, "echoed {} bytes, not the {} sent", reply.len(), payload.len());
    }
    assert_eq!(driver.stats().starts, 1);
}

#[test]
fn thirty_two_mib_memfd_request_is_read_whole_by_the_handler() {
    let driver = echo_driver("sum32", "sum", sockets());
    let len = 32 << 20;
    let memfd = SealedMemfd::build(c"umd-test-request", len, |b| {
        for (i, x) in b.iter_mut().enumerate() {
            *x = (i % 251) as u8;
        }
    })
    .expect("request memfd");
    let expected = byte_sum(&memfd.map().expect("map"));
    let sum = driver
        .call(Request::Memfd(&memfd), |r| {
            <[u8; 8]>::try_from(r).map(u64::from_le_bytes).map_err(|_| format!("{}-byte sum", r.len()))
        })
        .expect("sum");
    assert_eq!(sum, expected);
}

#[test]
fn thirty_two_mib_echo_comes_back_as_a_sealed_memfd() {
    let driver = echo_driver("echo32", "echo", sockets());
    let len = 32 << 20;
    let memfd =
        SealedMemfd::build(c"umd-test-request", len, |b| b.copy_from_slice(&pattern(len))).expect("memfd");
    let sent = memfd.map().expect("map");
    let via_memfd = driver
        .call(Request::Memfd(&memfd), |r| {
            if r != &sent[..] {
                return Err(format!("echo of {} bytes differs from the {} sent", r.len(), sent.len()));
            }
            // The reply is mapped from the handler's sealed memfd while it is checked.
            Ok(maps_memfd("umd-reply"))
        })
        .expect("echo");
    assert!(via_memfd, "a 32 MiB reply should arrive as a memfd");
    // Inline requests get large replies as memfds too.
    let small = pattern(3 << 20);
    assert_eq!(driver.send_recv(&small).expect("echo"), small);
}

#[test]
fn inline_request_over_max_inline_is_refused_before_anything_is_sent() {
    let limit = 1 << 20;
    let cfg = FramedConfig { limits: Limits { max_inline: limit, ..Default::default() }, fd_passing: false };
    let driver = echo_driver("limit", "echo", cfg);
    driver.send_recv(b"warm").expect("echo");
    let pid = driver.handler_pids();
    let started = Instant::now();
    match driver.send_recv(&vec![7u8; limit as usize + 1]) {
        Err(e @ Error::BadRequest { .. }) => {
            assert!(e.to_string().contains("exceeds the inline limit of 1048576 bytes"), "{e}")
        }
        other => panic!("expected a bad request, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(1));
    // Nothing reached the handler: the stream is still in step, the handler the same.
    let exact = pattern(limit as usize);
    assert_eq!(driver.send_recv(&exact).expect("echo at the limit"), exact);
    assert_eq!(driver.handler_pids(), pid);
    let s = driver.stats();
    assert_eq!((s.handler_failures, s.restarts, s.failures), (0, 0, 1), "{s:?}");
}

#[test]
fn memfd_request_on_a_pipe_channel_is_refused() {
    let driver = echo_driver("pipememfd", "echo", FramedConfig::default());
    let m = SealedMemfd::build(c"umd-test-request", 16, |b| b.fill(1)).expect("memfd");
    match driver.call(Request::Memfd(&m), |r| Ok::<_, std::convert::Infallible>(r.len())) {
        Err(e @ Error::BadRequest { .. }) => assert!(e.to_string().contains("cannot pass memfds"), "{e}"),
        other => panic!("expected a bad request, got {other:?}"),
    }
    assert_eq!(driver.send_recv(b"still fine").expect("echo"), b"still fine");
}

// --- hostile framed handlers -------------------------------------------------

/// The deadline of the hostile framed drivers: far enough from "promptly" (see
/// [`refused`]) that a loaded machine cannot blur the two.
const FAR_DEADLINE: Duration = Duration::from_secs(30);

fn hostile_framed(name: &str, mode: &str, fd_passing: bool) -> Driver {
    Driver::builder(name)
        .framed(FramedConfig { fd_passing, ..Default::default() })
        .timeout(FAR_DEADLINE)
        .args([mode])
        .provider(|_| Ok(hostile_program()))
        .build()
}

/// Sends one request to a hostile framed handler and returns the channel error,
/// checking that it came promptly (long before the deadline: the manager saw
/// the lie, it did not wait it out) and that the handler was shut down.
fn refused(name: &str, mode: &str, fd_passing: bool) -> ChanError {
    let driver = hostile_framed(name, mode, fd_passing);
    driver.ensure_loaded().expect("the handler starts");
    let started = Instant::now();
    let r = driver.send_recv(b"hello, handler");
    let took = started.elapsed();
    let e = match r {
        Err(Error::Channel { source, fate, .. }) => {
            assert!(took < FAR_DEADLINE / 3, "{mode}: refused only after {took:?}");
            assert!(matches!(fate, HandlerFate::KilledByManager(_) | HandlerFate::Exited(_)), "{fate}");
            source
        }
        other => panic!("{mode}: expected a channel error, got {other:?}"),
    };
    assert!(driver.handler_pids().is_empty(), "{mode}: the handler was shut down");
    let s = driver.stats();
    assert_eq!((s.handler_failures, s.failures), (1, 1), "{mode}: {s:?}");
    e
}

#[test]
fn framed_reply_with_bad_magic_is_refused() {
    match refused("magic", "framed-bad-magic", false) {
        ChanError::Header(HeaderError::Magic(m)) => assert_eq!(&m, b"XX"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn framed_reply_announcing_four_gib_is_refused_without_allocating() {
    let e = refused("huge", "framed-huge-len", false);
    match &e {
        ChanError::Header(HeaderError::TooLarge { len, max }) => {
            assert_eq!(*len, u64::from(u32::MAX));
            assert_eq!(*max, u64::from(umd_wire::DEFAULT_MAX_INLINE));
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains("exceeds the limit"), "{e}");
    assert!(peak_rss() < 1 << 30, "peak RSS {} bytes: something allocated the announced size", peak_rss());
}

#[test]
fn framed_reply_memfd_without_seals_is_refused() {
    match refused("unsealed", "framed-unsealed-memfd", true) {
        ChanError::Memfd(MemfdError::Unsealed { found }) => {
            // Only F_SEAL_SEAL is set on a memfd created without sealing allowed.
            assert_eq!(found & umd_wire::SEAL_WRITE, 0, "seals {found:#x}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn framed_reply_memfd_smaller_than_announced_is_refused() {
    match refused("sizelie", "framed-memfd-size-lie", true) {
        ChanError::Memfd(MemfdError::SizeMismatch { announced, actual }) => {
            assert_eq!((announced, actual), (15, 14))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn framed_reply_memfd_announcing_four_gib_is_refused() {
    match refused("hugememfd", "framed-huge-memfd", true) {
        ChanError::Header(HeaderError::TooLarge { len, .. }) => assert_eq!(len, 4 << 30),
        other => panic!("{other:?}"),
    }
    assert!(peak_rss() < 1 << 30);
}

#[test]
fn two_replies_to_one_request_are_refused() {
    assert!(matches!(refused("tworeplies", "framed-two-replies", false), ChanError::Trailing));
    assert!(matches!(refused("tworeplies-s", "framed-two-replies", true), ChanError::Trailing));
}

#[test]
fn reply_of_a_kind_a_handler_may_not_send_is_refused() {
    assert!(matches!(
        refused("wrongkind", "framed-wrong-kind", false),
        ChanError::UnexpectedKind(Kind::Request)
    ));
}

#[test]
fn fd_attached_to_an_inline_reply_is_refused() {
    assert!(matches!(
        refused("strayfd", "framed-fd-with-inline", true),
        ChanError::Fds { got: 1, wanted: 0 }
    ));
}

#[test]
fn error_frame_is_reported_and_the_handler_keeps_serving() {
    let driver = hostile_framed("errframe", "framed-error", false);
    assert_eq!(driver.send_recv(b"good").expect("echo"), b"good");
    let pid = driver.handler_pids();
    match driver.send_recv(b"bad input") {
        Err(e @ Error::Handler { .. }) => {
            assert!(e.is_verdict());
            assert!(
                e.to_string().contains("the handler refused the input: cannot parse this request"),
                "{e}"
            );
        }
        other => panic!("expected the handler's error, got {other:?}"),
    }
    assert_eq!(driver.send_recv(b"good again").expect("echo"), b"good again");
    assert_eq!(driver.handler_pids(), pid, "an error frame does not cost the handler its life");
    let s = driver.stats();
    assert_eq!((s.handler_failures, s.failures, s.starts), (0, 1, 1), "{s:?}");
}

#[test]
fn handler_killed_while_idle_on_a_socket_channel_is_restarted_transparently() {
    let driver = echo_driver("sockkill", "echo", sockets());
    assert_eq!(driver.send_recv(b"one").expect("echo"), b"one");
    let pid = driver.handler_pids()[0];
    assert!(kill_handler(pid, "sockkill"));
    assert!(wait_until(Duration::from_secs(5), || is_our_zombie(pid)));
    assert_eq!(driver.send_recv(b"two").expect("echo after restart"), b"two");
    assert_ne!(driver.handler_pids(), vec![pid]);
    let s = driver.stats();
    assert_eq!((s.failures, s.restarts, s.handler_failures), (0, 1, 1), "{s:?}");
}

#[test]
fn handler_that_never_reads_a_large_request_is_killed_at_the_deadline() {
    let timeout = Duration::from_millis(300);
    let driver = Driver::builder("deaf")
        .framed(FramedConfig::default())
        .timeout(timeout)
        .args(["framed-deaf"])
        .provider(|_| Ok(hostile_program()))
        .build();
    // Started first: the time measured is the request's alone.
    driver.ensure_loaded().expect("the handler starts");
    let started = Instant::now();
    match driver.send_recv(&vec![1u8; 4 << 20]) {
        Err(Error::Deadline { timeout: t, .. }) => assert_eq!(t, timeout),
        other => panic!("expected the write to hit the deadline, got {other:?}"),
    }
    let took = started.elapsed();
    assert!(took >= timeout && took < timeout + Duration::from_secs(1), "{took:?}");
    assert!(driver.handler_pids().is_empty());
    assert_eq!(driver.stats().deadline_kills, 1);
}
