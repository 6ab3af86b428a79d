//! Concurrency stress: many callers, a pool, and a chaos thread that unloads the
//! driver and SIGKILLs handlers at random. Every call must end in a verified reply
//! or a clear error; nothing may panic, deadlock or leak a handler.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use rand::{Rng, SeedableRng};
use umd::Error;

const THREADS: usize = 8;

/// Requests per thread; `UMD_STRESS_REQUESTS` overrides (the default keeps a debug
/// build well under a minute on two cores).
fn per_thread() -> usize {
    std::env::var("UMD_STRESS_REQUESTS").ok().and_then(|v| v.parse().ok()).unwrap_or(2000)
}

#[test]
fn concurrent_callers_survive_random_unloads_and_kills() {
    let driver = sample_driver("stress", 4, Duration::from_secs(20));
    let per_thread = per_thread();
    let stop = Arc::new(AtomicBool::new(false));
    let seen_pids = Arc::new(Mutex::new(Vec::<u32>::new()));
    let started = Instant::now();

    let (outcomes, chaos) = with_watchdog("the stress test", Duration::from_secs(240), || {
        let chaos = {
            let (driver, stop, seen) = (driver.clone(), stop.clone(), seen_pids.clone());
            std::thread::spawn(move || {
                let mut rng = rand::rngs::StdRng::seed_from_u64(7);
                let (mut unloads, mut kills) = (0usize, 0usize);
                while !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(rng.random_range(1..15)));
                    let pids = driver.handler_pids();
                    seen.lock().unwrap().extend(&pids);
                    if rng.random_ratio(1, 4) {
                        driver.unload();
                        unloads += 1;
                    } else if !pids.is_empty() {
                        let pid = pids[rng.random_range(0..pids.len())];
                        kills += usize::from(kill_handler(pid, "stress"));
                    }
                }
                (unloads, kills)
            })
        };
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let driver = driver.clone();
                std::thread::spawn(move || {
                    let mut rng = rand::rngs::StdRng::seed_from_u64(t as u64);
                    let mut outcomes: BTreeMap<&'static str, usize> = BTreeMap::new();
                    for _ in 0..per_thread {
                        let offset = rng.random_range(0..131_072u64);
                        let kind = match request(&driver, offset) {
                            Ok(()) => "ok",
                            // A handler killed during the exchange or during its
                            // post_start: the caller is told, with the fate.
                            Err(Error::Channel { .. }) => "channel",
                            Err(Error::PostStart { .. }) => "post_start",
                            Err(e) => panic!("unexpected error under chaos: {e}"),
                        };
                        *outcomes.entry(kind).or_default() += 1;
                    }
                    outcomes
                })
            })
            .collect();
        let mut total: BTreeMap<&'static str, usize> = BTreeMap::new();
        for w in workers {
            for (k, v) in w.join().expect("worker thread panicked") {
                *total.entry(k).or_default() += v;
            }
        }
        stop.store(true, Ordering::SeqCst);
        let chaos = chaos.join().expect("chaos thread panicked");
        (total, chaos)
    });

    let calls = THREADS * per_thread;
    let ok = outcomes.get("ok").copied().unwrap_or(0);
    let errors: usize = outcomes.iter().filter(|(k, _)| **k != "ok").map(|(_, v)| v).sum();
    let s = driver.stats();
    eprintln!(
        "stress: {calls} calls in {:?}: {outcomes:?}; chaos (unloads, kills) {chaos:?}; stats {s:?}",
        started.elapsed()
    );
    assert_eq!(s.requests as usize, calls, "every call is counted");
    assert_eq!(s.failures as usize, errors, "every failure is counted");
    assert_eq!(s.latency.count as usize, ok);
    assert!(ok > calls / 2, "most calls should succeed despite the chaos: {outcomes:?}");
    assert!(chaos.0 > 0 && chaos.1 > 0, "the chaos thread did its job: {chaos:?}");

    driver.unload();
    assert!(driver.handler_pids().is_empty());
    let seen = seen_pids.lock().unwrap().clone();
    for pid in seen {
        assert!(handler_gone(pid, "stress"), "handler {pid} outlived the final unload");
    }
}
