//! Load and fault test of the service: 16 concurrent clients mixing sample
//! requests and OpenPGP verifications while a chaos thread SIGKILLs handlers at
//! random, unloads drivers, and sends garbage and oversized frames.
//!
//! Asserted: every request is answered, correctly or with a clear driver error;
//! failed requests are no more than the handlers killed (an unload never fails a
//! request: it waits for in-flight ones); the service process is the same one
//! throughout; once quiescent it holds the same fds, kind by kind, as when idle
//! before the run; its resident memory after
//! the run is within `RSS_GROWTH_LIMIT_KIB` of the count after a warm-up.
//!
//! Scale: 16 x 10,000 requests in a release build (`cargo test --release -p
//! umd-cli --test service_load`, which `.ci/run` does); 16 x 1,000 in a debug
//! build, where each verification costs ~100 ms of unoptimized RSA.
//! `UMD_LOAD_REQUESTS` overrides the per-client count.

mod svc;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use svc::Service;
use umd_service::client::{Client, ClientError};
use umd_service::proto::{self, DriverName, ErrorKind, Kind, VerifyRequest, VerifyStatus};

const CLIENTS: usize = 16;
/// One request in this many is a verification.
const VERIFY_EVERY: usize = 20;
/// Allowed growth of the service's resident memory over the run, after warm-up.
const RSS_GROWTH_LIMIT_KIB: u64 = 8 * 1024;

fn per_client() -> usize {
    std::env::var("UMD_LOAD_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if cfg!(debug_assertions) { 1_000 } else { 10_000 })
}

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../umd-pgp/tests/fixtures");

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    driver_errors: AtomicU64,
    kills: AtomicU64,
    unloads: AtomicU64,
    hostile: AtomicU64,
    /// The first errors, for the log.
    examples: std::sync::Mutex<Vec<String>>,
}

fn run_client(svc_socket: &std::path::Path, seed: u64, n: usize, keyring: &[u8], doc: &[u8], tally: &Tally) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut c = Client::connect(svc_socket).unwrap();
    for i in 0..n {
        let r = if i % VERIFY_EVERY == VERIFY_EVERY - 1 {
            c.verify(VerifyRequest {
                keyrings: vec![keyring.to_vec()],
                signature: doc.to_vec(),
                data: None,
                required: 1,
            })
            .map(|v| {
                assert_eq!(v.status, VerifyStatus::Verified, "{v:?}");
                assert!(v.text.is_some());
            })
        } else {
            c.sample(rng.random_range(0..131_072)).map(|_| ())
        };
        match r {
            Ok(()) => tally.ok.fetch_add(1, Relaxed),
            // A handler killed under a request: a clear error naming the driver.
            Err(ClientError::Service(e)) if matches!(e.kind, ErrorKind::Driver | ErrorKind::Verdict) => {
                assert!(e.message.starts_with("driver "), "unclear error: {e:?}");
                let mut ex = tally.examples.lock().unwrap();
                if ex.len() < 6 {
                    ex.push(format!("{:?}: {}", e.kind, e.message));
                }
                drop(ex);
                tally.driver_errors.fetch_add(1, Relaxed)
            }
            Err(e) => panic!("client {seed} request {i}: {e}"),
        };
    }
}

fn chaos(svc: &Service, stop: &AtomicBool, tally: &Tally) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(99);
    let mut ctl = svc.client();
    let mut last_unload = Instant::now();
    while !stop.load(Relaxed) {
        std::thread::sleep(Duration::from_millis(rng.random_range(10..60)));
        let children = svc.children();
        if !children.is_empty() {
            let victim = children[rng.random_range(0..children.len())];
            // SAFETY: kill(2); the victim is a child of the service (a handler).
            if unsafe { libc::kill(victim as i32, libc::SIGKILL) } == 0 {
                tally.kills.fetch_add(1, Relaxed);
            }
        }
        if last_unload.elapsed() > Duration::from_millis(300) {
            let d = if rng.random_bool(0.5) { DriverName::Sample } else { DriverName::Pgp };
            ctl.unload(d).unwrap();
            tally.unloads.fetch_add(1, Relaxed);
            last_unload = Instant::now();
        }
        // Hostile neighbours: garbage, an oversized frame, a disconnect mid-request.
        use std::io::Write;
        if let Ok(mut s) = std::os::unix::net::UnixStream::connect(&svc.socket) {
            let _ = match rng.random_range(0..3) {
                0 => s.write_all(b"\x00garbage\xff\xff\xff\xff"),
                1 => s.write_all(&proto::Header::bytes(Kind::Request, u32::MAX)),
                _ => {
                    s.write_all(&proto::encode(Kind::Request, &proto::Request::Sample { offset: 7 }).unwrap())
                }
            };
            tally.hostile.fetch_add(1, Relaxed);
        }
    }
}

fn wait_connections(c: &mut Client, want: u32) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while c.status().unwrap().connections != want {
        assert!(Instant::now() < deadline, "connections did not drop to {want}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sixteen_clients_with_handlers_killed_and_drivers_unloaded() {
    let config = "[drivers.sample]\neveryone = true\n[drivers.pgp]\neveryone = true\n\
                  [limits]\nmax_in_flight_per_uid = 64\nmax_connections_per_uid = 128\n";
    let svc = Service::start("load", config);
    let pid = svc.pid();
    let keyring = Arc::new(std::fs::read(format!("{FIXTURES}/debian-archive-keyring.gpg")).unwrap());
    let doc = Arc::new(std::fs::read(format!("{FIXTURES}/bookworm-security_InRelease")).unwrap());
    let tally = Arc::new(Tally::default());
    let mut ctl = svc.client();

    // Warm-up: every path taken once by every client, then back to idle.
    let warm_tally = Arc::new(Tally::default());
    let warm: Vec<_> = (0..CLIENTS as u64)
        .map(|seed| {
            let (socket, keyring, doc, tally) =
                (svc.socket.clone(), keyring.clone(), doc.clone(), warm_tally.clone());
            std::thread::spawn(move || {
                run_client(&socket, 1000 + seed, 2 * VERIFY_EVERY, &keyring, &doc, &tally)
            })
        })
        .collect();
    warm.into_iter().for_each(|t| t.join().unwrap());
    wait_connections(&mut ctl, 1);
    ctl.unload(DriverName::Sample).unwrap();
    ctl.unload(DriverName::Pgp).unwrap();
    // Counted once nothing moves: a killed handler's stderr pipe stays open
    // until its reader thread has drained it, a closed connection until its
    // thread has noticed (either made a bare count 12 -> 11 or 11 -> 12).
    let idle_fds = svc.quiescent_fds(1);
    let warm_rss = svc.rss_kib();

    let n = per_client();
    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS as u64)
        .map(|seed| {
            let (socket, keyring, doc, tally) =
                (svc.socket.clone(), keyring.clone(), doc.clone(), tally.clone());
            std::thread::spawn(move || run_client(&socket, seed, n, &keyring, &doc, &tally))
        })
        .collect();
    let peak_rss = std::thread::scope(|s| {
        let chaos_thread = s.spawn(|| chaos(&svc, &stop, &tally));
        let mut peak = 0;
        for c in clients {
            while !c.is_finished() {
                peak = peak.max(svc.rss_kib());
                std::thread::sleep(Duration::from_millis(50));
            }
            c.join().unwrap();
        }
        stop.store(true, Relaxed);
        chaos_thread.join().unwrap();
        peak
    });
    let elapsed = started.elapsed();

    let ok = tally.ok.load(Relaxed);
    let failed = tally.driver_errors.load(Relaxed);
    let kills = tally.kills.load(Relaxed);
    eprintln!(
        "load: {CLIENTS} x {n} requests in {:.1} s ({:.0}/s): {ok} ok, {failed} driver errors; \
         {kills} handlers killed, {} unloads, {} hostile connections",
        elapsed.as_secs_f64(),
        (CLIENTS * n) as f64 / elapsed.as_secs_f64(),
        tally.unloads.load(Relaxed),
        tally.hostile.load(Relaxed),
    );
    for e in tally.examples.lock().unwrap().iter() {
        eprintln!("load: example error: {e}");
    }
    assert_eq!(ok + failed, (CLIENTS * n) as u64, "every request answered");
    assert!(
        failed <= kills,
        "{failed} failures but only {kills} kills: an unload or a neighbour failed a request"
    );
    assert!(kills > 0 && tally.unloads.load(Relaxed) > 0, "the chaos ran");

    // Same process all along, idle again. A new control connection: the one
    // from before the run sat idle through it, and the service closes a
    // connection idle for `limits.idle_timeout_ms` (60 s; a run under load can
    // take longer).
    drop(ctl);
    let mut ctl = svc.client();
    let s = ctl.status().unwrap();
    assert_eq!(s.pid, pid, "the service never restarted");
    wait_connections(&mut ctl, 1);
    ctl.unload(DriverName::Sample).unwrap();
    ctl.unload(DriverName::Pgp).unwrap();
    assert!(svc.children().is_empty(), "handlers left: {:?}", svc.children());
    let end_fds = svc.quiescent_fds(1);
    let end_rss = svc.rss_kib();
    let count = |k: &svc::FdKinds| k.values().sum::<usize>();
    eprintln!(
        "load: fds idle {} -> end {} ({end_fds:?}); RSS warm {warm_rss} KiB, peak {peak_rss} KiB, end {end_rss} KiB",
        count(&idle_fds),
        count(&end_fds)
    );
    assert_eq!(end_fds, idle_fds, "fds back to idle: {}", svc::fd_diff(&idle_fds, &end_fds));
    assert!(
        end_rss <= warm_rss + RSS_GROWTH_LIMIT_KIB,
        "resident memory grew from {warm_rss} KiB to {end_rss} KiB (limit +{RSS_GROWTH_LIMIT_KIB} KiB)"
    );
    let stats = ctl.stats().unwrap();
    assert!(stats.bad_frames > 0, "{stats:?}");
}
