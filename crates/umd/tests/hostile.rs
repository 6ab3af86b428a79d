//! Hostile and faulty handlers against the manager (raw sample wire format): every
//! misbehaviour ends in a clear error for that request, the handler is shut down,
//! and the next request is served by a fresh one.

mod common;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::*;
use umd::{Driver, Error, HandlerFate, Request, SessionError, StartError};
use umd_sample::{ProbeError, ReplyError};
use umd_wire::chan::ChanError;

const TIMEOUT: Duration = Duration::from_secs(5);

#[test]
fn handler_crashing_mid_reply_reports_the_signal_and_is_replaced() {
    let (driver, _) = hostile_driver("crash", &["crash-mid-reply", "2"], TIMEOUT);
    request(&driver, 1024).expect("first request is served");
    let pid = driver.handler_pids()[0];
    match request(&driver, 2048) {
        Err(Error::Channel { source: ChanError::Eof { got, wanted }, fate, .. }) => {
            assert_eq!(wanted, 131_072);
            assert!(got < wanted, "got {got}");
            assert_eq!(fate, HandlerFate::Signaled(libc::SIGABRT), "{fate}");
            assert!(fate.to_string().contains("SIGABRT"), "{fate}");
        }
        other => panic!("expected a channel error with SIGABRT, got {other:?}"),
    }
    assert!(handler_gone(pid, "crash"), "the crashed handler was reaped");
    request(&driver, 4096).expect("the next request is served by a fresh handler");
    assert_ne!(driver.handler_pids(), vec![pid]);
    let s = driver.stats();
    assert_eq!((s.requests, s.failures, s.starts, s.restarts, s.handler_failures), (3, 1, 2, 1, 1), "{s:?}");
    assert_eq!(s.loads, 1);
}

#[test]
fn hung_handler_is_killed_at_its_deadline_and_replaced() {
    let timeout = Duration::from_millis(200);
    let (driver, _) = hostile_driver("hang", &["hang", "2"], timeout);
    request(&driver, 1024).expect("first request is served");
    let pid = driver.handler_pids()[0];
    let started = Instant::now();
    let r = request(&driver, 2048);
    let took = started.elapsed();
    match r {
        Err(Error::Deadline { timeout: t, .. }) => assert_eq!(t, timeout),
        other => panic!("expected a deadline error, got {other:?}"),
    }
    assert!(took >= timeout, "gave up after {took:?}, before the deadline");
    assert!(took < timeout + Duration::from_millis(800), "took {took:?} for a {timeout:?} deadline");
    assert!(handler_gone(pid, "hang"), "the hung handler was killed and reaped");
    request(&driver, 4096).expect("the next request is served by a new handler");
    let new = driver.handler_pids();
    assert_eq!(new.len(), 1);
    assert_ne!(new[0], pid);
    let s = driver.stats();
    assert_eq!((s.deadline_kills, s.restarts, s.failures, s.requests), (1, 1, 1, 3), "{s:?}");
}

#[test]
fn short_reply_is_a_clear_error_and_the_next_request_succeeds() {
    let (driver, _) = hostile_driver("short", &["short-reply", "2"], TIMEOUT);
    request(&driver, 1024).expect("first request is served");
    match request(&driver, 2048) {
        Err(e @ Error::Channel { source: ChanError::Eof { got: 1000, wanted: 131_072 }, .. }) => {
            let text = e.to_string();
            assert!(text.contains("1000 of 131072 bytes"), "{text}");
            assert!(text.contains("exited with status 0"), "{text}");
        }
        other => panic!("expected a short-message error, got {other:?}"),
    }
    request(&driver, 4096).expect("the next request is served");
    assert_eq!(driver.stats().restarts, 1);
}

#[test]
fn over_long_reply_is_refused_as_trailing_bytes_and_the_handler_replaced() {
    let (driver, _) = hostile_driver("long", &["long-reply"], TIMEOUT);
    let pid = {
        driver.load(hostile_program()).expect("post_start passes");
        driver.handler_pids()[0]
    };
    match request(&driver, 1024) {
        Err(Error::Channel { source: ChanError::Trailing, .. }) => {}
        other => panic!("expected trailing bytes to be refused, got {other:?}"),
    }
    assert!(handler_gone(pid, "long"));
    // The replacement passes post_start and then lies the same way: each request
    // meets a fresh handler.
    assert!(matches!(request(&driver, 2048), Err(Error::Channel { source: ChanError::Trailing, .. })));
    let s = driver.stats();
    assert_eq!((s.starts, s.restarts, s.handler_failures), (2, 1, 2), "{s:?}");
}

#[test]
fn bytes_written_between_requests_get_the_handler_replaced_before_the_next_request() {
    // The handler writes its reply, then 20 ms later 10 more bytes. Whether the
    // manager reads the reply before those arrive is up to the scheduler: when it
    // reads late, it finds them behind the reply (refused as trailing bytes,
    // which another test covers) and this scenario did not happen; start over.
    for attempt in 1..=5 {
        let (driver, _) = hostile_driver("late", &["late-extra"], TIMEOUT);
        match request(&driver, 1024) {
            Ok(()) => {}
            Err(Error::Channel { source: ChanError::Trailing, .. }) => {
                eprintln!("attempt {attempt}: the extra bytes came with the reply; again");
                continue;
            }
            Err(e) => panic!("the reply itself is right: {e}"),
        }
        let pid = driver.handler_pids()[0];
        // Wait until the handler has written its extra bytes (its write count:
        // the post_start reply, this reply and 10 bytes), so they lie between
        // this request and the next one however slow the machine.
        let written = 2 * 131_072 + 10;
        assert!(
            wait_until(Duration::from_secs(10), || proc_io(pid, "wchar").is_some_and(|w| w >= written)),
            "the handler never wrote its extra bytes"
        );
        request(&driver, 2048).expect("the next request meets a fresh handler");
        assert_ne!(driver.handler_pids(), vec![pid]);
        assert!(handler_gone(pid, "late"));
        let s = driver.stats();
        assert_eq!((s.failures, s.handler_failures, s.restarts), (0, 1, 1), "{s:?}");
        return;
    }
    panic!("in 5 attempts the manager never read the reply before the extra bytes came");
}

#[test]
fn stderr_flood_is_drained_and_the_request_still_meets_its_deadline() {
    let timeout = Duration::from_secs(10);
    let (driver, _) = hostile_driver("flood", &["stderr-flood", "64"], timeout);
    driver.load(hostile_program()).expect("post_start passes");
    let started = Instant::now();
    request(&driver, 1024).expect("the request succeeds despite 64 MiB on stderr");
    assert!(started.elapsed() < timeout);
    request(&driver, 2048).expect("and the handler keeps serving");
    let s = driver.stats();
    assert_eq!((s.failures, s.restarts, s.deadline_kills), (0, 0, 0), "{s:?}");
}

#[test]
fn handler_exiting_at_start_fails_the_load_with_its_exit_status() {
    let (driver, calls) = hostile_driver("exit0", &["exit-at-start"], TIMEOUT);
    match request(&driver, 1024) {
        Err(e @ Error::PostStart { source: StartError::PostStart(_), fate: HandlerFate::Exited(3), .. }) => {
            // The probe met a closed channel.
            assert!(matches!(e.find_source::<SessionError>(), Some(SessionError::Channel(_))), "{e:?}");
            assert!(e.to_string().contains("exited with status 3"), "{e}");
        }
        other => panic!("expected a post_start error, got {other:?}"),
    }
    assert!(!driver.is_loaded());
    assert!(driver.handler_pids().is_empty());
    match driver.load(hostile_program()) {
        Err(Error::PostStart { fate: HandlerFate::Exited(3), .. }) => {}
        other => panic!("expected a post_start error from load, got {other:?}"),
    }
    assert!(!driver.is_loaded());
    let s = driver.stats();
    assert_eq!((s.loads, s.post_start_failures, s.starts), (0, 2, 2), "{s:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn failing_post_start_leaves_the_driver_unloaded() {
    let (driver, calls) = hostile_driver("badstart", &["bad-post-start"], TIMEOUT);
    match driver.load(hostile_program()) {
        Err(e @ Error::PostStart { source: StartError::PostStart(_), .. }) => {
            // The sample's probe: byte 0 did not come back set.
            let probe = e.find_source::<ProbeError>().expect("the sample's probe error");
            assert_eq!(probe.offset.get(), 0, "{e}");
            assert_eq!(
                e.find_source::<ReplyError>(),
                Some(&ReplyError::NotSet { index: 0, value: 0 }),
                "{e}"
            );
            assert!(e.to_string().contains("offset 0"), "{e}");
        }
        other => panic!("expected a post_start error, got {other:?}"),
    }
    assert!(!driver.is_loaded());
    assert!(driver.handler_pids().is_empty());
    assert_eq!(driver.status().program, None);
    // On demand, the same: the provider is asked, the start fails, nothing stays.
    assert!(matches!(request(&driver, 1024), Err(Error::PostStart { .. })));
    assert!(!driver.is_loaded());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let s = driver.stats();
    assert_eq!((s.loads, s.post_start_failures, s.requests, s.failures), (0, 2, 1, 1), "{s:?}");
}

#[test]
fn wrong_byte_is_a_bad_reply_and_the_handler_is_shut_down() {
    let (driver, _) = hostile_driver("wrong", &["wrong-byte"], TIMEOUT);
    driver.load(hostile_program()).expect("post_start passes");
    let pid = driver.handler_pids()[0];
    match request(&driver, 1024) {
        Err(e @ Error::BadReply { .. }) => {
            assert!(e.is_verdict());
            // The check's own error, whole.
            assert_eq!(
                e.find_source::<ReplyError>(),
                Some(&ReplyError::NotSet { index: 1024, value: 0 }),
                "{e}"
            );
            assert!(e.to_string().contains("byte 1024"), "{e}");
        }
        other => panic!("expected a rejected reply, got {other:?}"),
    }
    assert!(driver.handler_pids().is_empty(), "the lying handler is not kept");
    assert!(handler_gone(pid, "wrong"));
    let s = driver.stats();
    assert_eq!((s.handler_failures, s.failures), (1, 1), "{s:?}");
    assert!(driver.is_loaded(), "the program stays loaded; the next request starts a fresh handler");
}

#[test]
fn handler_killed_while_idle_is_restarted_transparently() {
    let (driver, _) = hostile_driver("killed", &[], TIMEOUT);
    request(&driver, 1024).expect("served");
    let pid = driver.handler_pids()[0];
    assert!(kill_handler(pid, "killed"));
    assert!(wait_until(Duration::from_secs(5), || is_our_zombie(pid)), "the killed handler died");
    request(&driver, 2048).expect("the next request restarts the handler and succeeds");
    let now = driver.handler_pids();
    assert_eq!(now.len(), 1);
    assert_ne!(now[0], pid);
    assert!(handler_gone(pid, "killed"), "the dead handler was reaped");
    let s = driver.stats();
    assert_eq!((s.failures, s.restarts, s.handler_failures, s.starts), (0, 1, 1, 2), "{s:?}");
}

#[test]
fn handler_exiting_instead_of_replying_reports_its_exit() {
    let (driver, _) = hostile_driver("quits", &["exit-after", "2"], TIMEOUT);
    request(&driver, 1024).expect("served");
    match request(&driver, 2048) {
        Err(Error::Channel {
            source: ChanError::Eof { got: 0, .. }, fate: HandlerFate::Exited(0), ..
        }) => {}
        Err(Error::Channel { source: ChanError::Io { .. }, fate: HandlerFate::Exited(0), .. }) => {}
        other => panic!("expected the exit to be reported, got {other:?}"),
    }
    request(&driver, 4096).expect("a fresh handler serves");
}

#[test]
fn request_of_the_wrong_size_is_refused_without_touching_the_handler() {
    let (driver, _) = hostile_driver("size", &[], TIMEOUT);
    request(&driver, 1).expect("served");
    let pid = driver.handler_pids();
    match driver.send_recv(&[0u8; 5]) {
        Err(e @ Error::BadRequest { .. }) => assert!(e.to_string().contains("exactly 4"), "{e}"),
        other => panic!("expected a bad request, got {other:?}"),
    }
    request(&driver, 2).expect("the same handler keeps serving");
    assert_eq!(driver.handler_pids(), pid);
    assert_eq!(driver.stats().handler_failures, 0);
}

#[test]
fn request_without_provider_is_not_available_until_loaded_explicitly() {
    let driver = Driver::builder("noprov").raw(umd::wire_sample::SIZES).post_start(sample_post_start).build();
    match request(&driver, 1024) {
        Err(e @ Error::NotAvailable { .. }) => {
            assert!(e.to_string().contains("driver not available (no provider is registered)"), "{e}");
        }
        other => panic!("expected not available, got {other:?}"),
    }
    driver.load(sample_program()).expect("explicit load");
    request(&driver, 1024).expect("served after an explicit load");
    driver.unload();
    assert!(matches!(request(&driver, 1024), Err(Error::NotAvailable { .. })));
    let s = driver.stats();
    assert_eq!((s.loads, s.unloads, s.requests, s.failures), (1, 1, 3, 2), "{s:?}");
}

#[test]
fn failing_provider_reason_is_reported_and_explicit_load_still_works() {
    let driver = Driver::builder("badprov")
        .raw(umd::wire_sample::SIZES)
        .provider(|d| Err(format!("no blob for {} in this build", d.name())))
        .post_start(sample_post_start)
        .build();
    match request(&driver, 1024) {
        Err(Error::NotAvailable { driver: d, reason }) => {
            assert_eq!(d, "badprov");
            assert_eq!(reason, "no blob for badprov in this build");
        }
        other => panic!("expected not available, got {other:?}"),
    }
    driver.load(sample_program()).expect("explicit load");
    request(&driver, 2048).expect("served");
}

#[test]
fn unload_sends_the_next_request_through_the_provider_again() {
    let (driver, calls) = hostile_driver("reload", &[], TIMEOUT);
    for _ in 0..3 {
        request(&driver, 1024).expect("served");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1, "one load serves many requests");
    let pid = driver.handler_pids()[0];
    driver.unload();
    assert!(!driver.is_loaded());
    assert!(driver.handler_pids().is_empty());
    assert!(handler_gone(pid, "reload"), "unload killed and reaped the handler");
    request(&driver, 2048).expect("served after reload");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // An explicit load does not ask the provider, and a second one is refused.
    driver.unload();
    driver.load(hostile_program()).expect("explicit load");
    assert!(matches!(driver.load(hostile_program()), Err(Error::AlreadyLoaded { .. })));
    request(&driver, 4096).expect("served");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let s = driver.stats();
    assert_eq!((s.loads, s.unloads, s.restarts, s.failures), (3, 2, 0, 0), "{s:?}");
}

#[test]
fn provider_may_load_its_driver_itself_as_the_kernel_loader_module_does() {
    // The kernel's loader module calls umd_mgmt_load from its init, inside
    // request_module: the driver is re-entered while it asks for its loader.
    let driver = Driver::builder("reentrant")
        .raw(umd::wire_sample::SIZES)
        .timeout(TIMEOUT)
        .provider(|d| {
            d.load(hostile_program()).map_err(|e| e.to_string())?;
            Err("loaded by the provider itself".into())
        })
        .post_start(sample_post_start)
        .build();
    with_watchdog("a provider that loads its own driver", Duration::from_secs(20), || {
        request(&driver, 1024).expect("served after the provider's own load");
        assert!(driver.is_loaded());
        assert_eq!(driver.stats().loads, 1);
        driver.unload();
        request(&driver, 2048).expect("served after reloading through the provider");
        assert_eq!(driver.stats().loads, 2);
    });
}

#[test]
fn pool_of_four_serves_four_slow_requests_at_once_and_unload_kills_them_all() {
    // Each handler sleeps a second before every reply. "At once" is shown by
    // what the handlers did, not by a wall-clock total: all four read their
    // request before any of the four calls came back, which a pool serving
    // one at a time could only do if a call took a second to be picked up.
    let driver = Driver::builder("pool")
        .raw(umd::wire_sample::SIZES)
        .timeout(TIMEOUT)
        .pool_size(4)
        .args(["slow", "1000"])
        .provider(|_| Ok(hostile_program()))
        .post_start(sample_post_start)
        .build();
    let burst = |driver: &Driver, check_overlap: bool| {
        let pids = driver.handler_pids();
        let read_before: Vec<u64> = pids.iter().map(|&p| proc_io(p, "rchar").unwrap_or(0)).collect();
        let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let barrier = Arc::new(Barrier::new(4));
        let threads: Vec<_> = (0..4u64)
            .map(|i| {
                let (d, b, done) = (driver.clone(), barrier.clone(), done.clone());
                std::thread::spawn(move || {
                    b.wait();
                    request(&d, i * 1024).expect("pool request");
                    done.fetch_add(1, Ordering::SeqCst);
                })
            })
            .collect();
        if check_overlap {
            let all_read = wait_until(Duration::from_secs(10), || {
                pids.iter().zip(&read_before).all(|(&p, &r)| proc_io(p, "rchar").is_some_and(|now| now > r))
            });
            let finished = done.load(Ordering::SeqCst);
            assert!(all_read, "not every handler of the pool got a request");
            assert_eq!(finished, 0, "a call came back before all four handlers held a request");
        }
        for t in threads {
            t.join().expect("request thread");
        }
    };
    burst(&driver, false); // starts the four handlers
    let pids = driver.handler_pids();
    assert_eq!(pids.len(), 4, "{pids:?}");
    burst(&driver, true);
    let s = driver.stats();
    assert_eq!((s.requests, s.failures, s.starts, s.loads, s.latency.count), (8, 0, 4, 1, 8), "{s:?}");
    assert_eq!(driver.status().idle, 4);
    driver.unload();
    assert!(driver.handler_pids().is_empty());
    for pid in pids {
        assert!(handler_gone(pid, "pool"), "pool handler {pid} survived unload");
    }
}

#[test]
fn unload_during_a_slow_request_lets_it_finish_then_kills_its_handler() {
    let (driver, _) = hostile_driver("drain", &["slow", "200"], TIMEOUT);
    driver.load(hostile_program()).expect("load");
    let pid = driver.handler_pids()[0];
    let d = driver.clone();
    let inflight = std::thread::spawn(move || request(&d, 1024));
    std::thread::sleep(Duration::from_millis(50));
    driver.unload();
    inflight.join().expect("request thread").expect("the in-flight request completes");
    assert!(handler_gone(pid, "drain"), "its handler is killed when it comes back");
    assert!(driver.handler_pids().is_empty());
}

#[test]
fn memfd_request_on_a_raw_driver_is_a_bad_request() {
    let (driver, _) = hostile_driver("rawmemfd", &[], TIMEOUT);
    let m = umd::SealedMemfd::build(c"req", 4, |b| b.fill(0)).expect("memfd");
    assert!(matches!(
        driver.call(Request::Memfd(&m), |_| Ok::<_, std::convert::Infallible>(())),
        Err(Error::BadRequest { .. })
    ));
    request(&driver, 8).expect("the handler was not disturbed");
    assert_eq!(driver.stats().handler_failures, 0);
}

#[test]
fn handler_hanging_in_post_start_is_killed_at_the_start_deadline() {
    let driver = Driver::builder("starthang")
        .raw(umd::wire_sample::SIZES)
        .start_timeout(Duration::from_millis(200))
        .args(["hang", "0"])
        .provider(|_| Ok(hostile_program()))
        .post_start(sample_post_start)
        .build();
    let started = Instant::now();
    match driver.load(hostile_program()) {
        Err(e @ Error::PostStart { fate: HandlerFate::KilledByManager(_), .. }) => {
            assert!(matches!(e.find_source::<SessionError>(), Some(SessionError::Deadline)), "{e:?}");
            let text = e.to_string();
            assert!(text.contains("no reply before the start deadline"), "{text}");
            assert!(text.contains("killed by the manager"), "{text}");
        }
        other => panic!("expected a post_start error, got {other:?}"),
    }
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(200) && took < Duration::from_secs(2), "{took:?}");
    assert!(!driver.is_loaded());
    assert!(driver.handler_pids().is_empty());
}

#[test]
fn handler_crashing_in_post_start_reports_the_signal() {
    let (driver, _) = hostile_driver("startcrash", &["crash-mid-reply", "0"], TIMEOUT);
    match request(&driver, 1024) {
        Err(Error::PostStart { fate: HandlerFate::Signaled(libc::SIGABRT), .. }) => {}
        other => panic!("expected a post_start error, got {other:?}"),
    }
    assert!(!driver.is_loaded());
}

#[test]
fn panicking_check_does_not_wedge_the_driver() {
    let (driver, _) = hostile_driver("checkpanic", &[], TIMEOUT);
    request(&driver, 1).expect("served");
    let pid = driver.handler_pids()[0];
    let d = driver.clone();
    let r = std::thread::spawn(move || {
        let o = umd_sample::Offset::new(2).expect("offset");
        d.call(Request::Bytes(&o.to_request()), |_| -> Result<(), String> { panic!("a buggy check") })
    })
    .join();
    assert!(r.is_err(), "the check's panic reaches the caller");
    assert!(handler_gone(pid, "checkpanic"), "the handler of the interrupted exchange is shut down");
    with_watchdog("a request after a panicking check", Duration::from_secs(20), || {
        request(&driver, 3).expect("the next request is served");
    });
    assert_eq!(driver.handler_pids().len(), 1);
    let s = driver.stats();
    assert_eq!((s.requests, s.failures, s.handler_failures), (3, 1, 1), "{s:?}");
}

#[test]
fn panicking_post_start_hook_is_a_failed_start_not_a_wedged_driver() {
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = calls.clone();
    let driver = Driver::builder("hookpanic")
        .raw(umd::wire_sample::SIZES)
        .provider(|_| Ok(hostile_program()))
        .post_start(move |s| {
            if c.fetch_add(1, Ordering::SeqCst) == 0 {
                panic!("a buggy post_start hook");
            }
            sample_post_start(s)
        })
        .build();
    with_watchdog("requests after a panicking post_start", Duration::from_secs(20), || {
        match request(&driver, 1) {
            Err(Error::PostStart { source: StartError::Panicked(message), .. }) => {
                assert_eq!(message, "a buggy post_start hook")
            }
            other => panic!("expected a post_start error, got {other:?}"),
        }
        assert!(!driver.is_loaded());
        assert!(driver.handler_pids().is_empty(), "{:?}", driver.handler_pids());
        request(&driver, 2).expect("the next request loads and is served");
    });
}

#[test]
fn concurrent_loads_install_one_program() {
    let (driver, calls) = hostile_driver("racyload", &[], TIMEOUT);
    let barrier = Arc::new(Barrier::new(4));
    let results: Vec<_> = (0..4)
        .map(|_| {
            let (d, b) = (driver.clone(), barrier.clone());
            std::thread::spawn(move || {
                b.wait();
                d.load(hostile_program())
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().expect("load thread"))
        .collect();
    let loaded = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(loaded, 1, "{results:?}");
    assert!(
        results.iter().all(|r| r.is_ok() || matches!(r, Err(Error::AlreadyLoaded { .. }))),
        "{results:?}"
    );
    assert_eq!(driver.handler_pids().len(), 1);
    request(&driver, 1).expect("served");
    assert_eq!(calls.load(Ordering::SeqCst), 0, "explicit loads never ask the provider");
    let s = driver.stats();
    assert_eq!((s.loads, s.starts), (1, 1), "{s:?}");
}
