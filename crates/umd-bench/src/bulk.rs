//! Row 2: the sample driver's 128 KiB reply, a bulk transfer per 4-byte request.
//!
//! * **Ours** — [`SampleDriver::request`]: raw wire mode, 4 bytes out, 131072 bytes
//!   back, verified by [`umd_sample::check_reply`]. (umd asks for a 128 KiB reply
//!   pipe so the handler writes the reply in one go.)
//! * **Baseline** — the *same* embedded sample handler started by the
//!   [plain manager](crate::plain) on default-size (64 KiB) blocking pipes: 4 bytes
//!   written, 131072 read with `read_exact`, then the same `check_reply`.
//!
//! Why it is fair: same handler binary, same offsets (the self-test's sequence,
//! cycled), same verification on both sides — checking the reply is the sample
//! driver's job, not manager overhead, so the baseline pays for it too. The ratio
//! is reported as a throughput ratio (baseline time / our time).

use std::time::{Duration, Instant};

use umd_sample::{
    check_reply, selftest_offsets, HandlerSource, Offset, SampleDriver, SampleOptions, REPLY_LEN,
};

use crate::pin::Pin;
use crate::plain::{PlainChild, PlainProgram};
use crate::{BenchError, BoxedWorkload, Workload};

/// The offsets every sample row cycles through (the self-test's formula, 128
/// of them), the same sequence on both sides of each row.
pub struct Offsets {
    offsets: Vec<Offset>,
    next: usize,
}

impl Offsets {
    /// The sequence, from its start.
    pub fn new() -> Offsets {
        Offsets { offsets: selftest_offsets(umd_sample::SelftestConfig::default().seed, 128), next: 0 }
    }

    /// Times `iters` requests, one per offset in turn.
    pub fn run(
        &mut self,
        iters: u64,
        mut request: impl FnMut(Offset) -> Result<(), BenchError>,
    ) -> Result<Duration, BenchError> {
        let start = Instant::now();
        for _ in 0..iters {
            let offset = self.offsets[self.next % self.offsets.len()];
            self.next += 1;
            request(offset)?;
        }
        Ok(start.elapsed())
    }
}

impl Default for Offsets {
    fn default() -> Self {
        Offsets::new()
    }
}

/// Ours: the sample driver, loaded once.
pub struct DriverSample {
    sample: SampleDriver,
    offsets: Offsets,
}

impl DriverSample {
    /// Builds the driver, loads it with a first request and pins its handler.
    pub fn new(pin: Pin) -> Result<DriverSample, BenchError> {
        let me = DriverSample::with_pool(1, 1)?;
        for pid in me.sample.driver().handler_pids() {
            pin.apply_to_pid(pid).map_err(BenchError::io("pinning the sample handler"))?;
        }
        Ok(me)
    }

    /// The sample driver with a pool of `pool` handlers, warmed by `warm`
    /// requests (not pinned).
    pub fn with_pool(pool: usize, warm: u64) -> Result<DriverSample, BenchError> {
        let sample = SampleDriver::new(
            HandlerSource::Embedded,
            SampleOptions { pool_size: pool, ..Default::default() },
        );
        let mut me = DriverSample { sample, offsets: Offsets::new() };
        me.run(warm)?;
        Ok(me)
    }

    /// [`DriverSample::new`], boxed.
    pub fn boxed(pin: Pin) -> Result<BoxedWorkload, BenchError> {
        Ok(Box::new(DriverSample::new(pin)?))
    }
}

impl Workload for DriverSample {
    fn run(&mut self, iters: u64) -> Result<Duration, BenchError> {
        let sample = &self.sample;
        self.offsets.run(iters, |offset| sample.request(offset).map_err(BenchError::driver("sample request")))
    }
}

impl Drop for DriverSample {
    fn drop(&mut self) {
        self.sample.driver().unload();
    }
}

/// Baseline: the sample handler on default-size blocking pipes.
pub struct PlainSample {
    child: PlainChild,
    reply: Vec<u8>,
    offsets: Offsets,
}

impl PlainSample {
    /// Starts the handler and pins it.
    pub fn new(pin: Pin) -> Result<PlainSample, BenchError> {
        let program = PlainProgram::new(umd_blobs::SAMPLE_HANDLER).map_err(BenchError::io("sample memfd"))?;
        let child = PlainChild::spawn(&program, &[]).map_err(BenchError::io("spawning sample"))?;
        pin.apply_to_pid(child.pid()).map_err(BenchError::io("pinning the sample handler"))?;
        let mut me = PlainSample { child, reply: vec![0; REPLY_LEN], offsets: Offsets::new() };
        me.run(1)?;
        Ok(me)
    }

    /// [`PlainSample::new`], boxed.
    pub fn boxed(pin: Pin) -> Result<BoxedWorkload, BenchError> {
        Ok(Box::new(PlainSample::new(pin)?))
    }
}

/// One plain sample exchange: 4 bytes out, 128 KiB in, checked.
pub(crate) fn plain_request(
    child: &mut PlainChild,
    offset: Offset,
    reply: &mut [u8],
) -> Result<(), BenchError> {
    child.exchange(&offset.to_request(), reply).map_err(BenchError::io("sample exchange"))?;
    check_reply(offset, reply)
        .map_err(|e| BenchError::BadReply { what: "plain sample", detail: e.to_string() })
}

impl Workload for PlainSample {
    fn run(&mut self, iters: u64) -> Result<Duration, BenchError> {
        let (child, reply) = (&mut self.child, &mut self.reply);
        self.offsets.run(iters, |offset| plain_request(child, offset, reply))
    }
}
