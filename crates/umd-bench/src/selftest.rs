//! Row 5: the kernel sample's self-test, end to end.
//!
//! * **Ours** — [`umd_sample::selftest`] with its defaults (500 requests at the
//!   self-test's offsets, an unload every 50, so 10 loads) on a fresh
//!   [`SampleDriver`], followed by a final unload.
//! * **Baseline** — the [plain manager](crate::plain) doing the same: the same 500
//!   offsets, each reply read from a default-size blocking pipe and checked with
//!   [`umd_sample::check_reply`]; every 50 requests the child is killed and a new
//!   one started from a new memfd (a reload loads the program again), and the last
//!   one is killed at the end.
//!
//! Why it is fair: the same requests, replies, checks, number of processes started
//! and killed, and number of program copies. Ours also runs `post_start` at each of
//! its 10 loads (10 extra exchanges over 500) and keeps statistics: that is the
//! manager's work, so it is in the figure.

use std::time::{Duration, Instant};

use umd_sample::{selftest_offsets, HandlerSource, SampleDriver, SampleOptions, SelftestConfig, REPLY_LEN};

use crate::bulk::plain_request;
use crate::pin::Pin;
use crate::plain::{PlainChild, PlainProgram};
use crate::{BenchError, BoxedWorkload, Workload};

/// Ours: `umd_sample::selftest` with default settings.
pub struct DriverSelftest;

impl DriverSelftest {
    /// Nothing to set up: each run builds its own driver.
    pub fn new(_pin: Pin) -> Result<DriverSelftest, BenchError> {
        Ok(DriverSelftest)
    }

    /// [`DriverSelftest::new`], boxed.
    pub fn boxed(pin: Pin) -> Result<BoxedWorkload, BenchError> {
        Ok(Box::new(DriverSelftest::new(pin)?))
    }
}

impl Workload for DriverSelftest {
    fn run(&mut self, iters: u64) -> Result<Duration, BenchError> {
        let cfg = SelftestConfig::default();
        let start = Instant::now();
        for _ in 0..iters {
            let sample = SampleDriver::new(HandlerSource::Embedded, SampleOptions::default());
            let report = umd_sample::selftest(&sample, &cfg, |_| {});
            sample.driver().unload();
            if !report.ok() {
                return Err(BenchError::Selftest {
                    requests: report.requests,
                    failed: report.failed,
                    first: report.failures.first().map(|f| f.error.clone()).unwrap_or_default(),
                });
            }
        }
        Ok(start.elapsed())
    }
}

/// Baseline: the self-test done by the plain manager.
pub struct PlainSelftest {
    reply: Vec<u8>,
}

impl PlainSelftest {
    /// Allocates the reply buffer.
    pub fn new(_pin: Pin) -> Result<PlainSelftest, BenchError> {
        Ok(PlainSelftest { reply: vec![0; REPLY_LEN] })
    }

    /// [`PlainSelftest::new`], boxed.
    pub fn boxed(pin: Pin) -> Result<BoxedWorkload, BenchError> {
        Ok(Box::new(PlainSelftest::new(pin)?))
    }
}

impl Workload for PlainSelftest {
    fn run(&mut self, iters: u64) -> Result<Duration, BenchError> {
        let cfg = SelftestConfig::default();
        let start = Instant::now();
        for _ in 0..iters {
            let mut child: Option<PlainChild> = None;
            for (i, offset) in selftest_offsets(cfg.seed, cfg.iterations).into_iter().enumerate() {
                if i % cfg.unload_every == 0 {
                    if let Some(old) = child.take() {
                        old.kill().map_err(BenchError::io("killing sample"))?;
                    }
                }
                let c = match &mut child {
                    Some(c) => c,
                    None => {
                        let program = PlainProgram::new(umd_blobs::SAMPLE_HANDLER)
                            .map_err(BenchError::io("sample memfd"))?;
                        let spawned =
                            PlainChild::spawn(&program, &[]).map_err(BenchError::io("spawning sample"))?;
                        child.insert(spawned)
                    }
                };
                plain_request(c, offset, &mut self.reply)?;
            }
            if let Some(last) = child {
                last.kill().map_err(BenchError::io("killing sample"))?;
            }
        }
        Ok(start.elapsed())
    }
}
