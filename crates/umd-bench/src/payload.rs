//! Row 3: a 16 MiB payload, passed as a sealed memfd or copied inline.
//!
//! Both sides use a framed driver with fd passing (a Unix socket pair on fd 0/1)
//! and an inline limit above 16 MiB, talking to the echo handler in `sum` mode,
//! which reads every byte and replies with their 8-byte sum (checked).
//!
//! * **Ours** — [`Request::Memfd`]: a memfd is created, filled from the caller's
//!   buffer and sealed ([`SealedMemfd::build`]) *inside* the timed loop, then
//!   passed with `SCM_RIGHTS`; the handler maps it.
//! * **Baseline** — [`Request::Bytes`]: the same buffer copied through the same
//!   socket channel.
//!
//! Why it is fair: both start from the same bytes in the caller's memory and end
//! with the same checked sum, over the same kind of channel, so the ratio is the
//! price (or gain) of the memfd path itself — creating, filling, sealing, passing
//! and mapping, against two copies through a socket buffer in small pieces.
//! There is no target: the row tells a caller when a memfd pays off.

use std::time::{Duration, Instant};

use umd::{Driver, FramedConfig, Limits, Program, Request, SealedMemfd};

use crate::pin::Pin;
use crate::{BenchError, BoxedWorkload, Workload};

/// Payload size: 16 MiB.
pub const PAYLOAD_LEN: usize = 16 << 20;

/// The caller's payload and the sum the handler must answer.
struct Payload {
    data: Vec<u8>,
    sum: u64,
}

impl Payload {
    fn new() -> Payload {
        // A cheap pseudo-random fill (xorshift), so the sum depends on every byte.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let data: Vec<u8> = (0..PAYLOAD_LEN)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let sum = data.iter().fold(0u64, |a, &b| a.wrapping_add(u64::from(b)));
        Payload { data, sum }
    }

    fn check(&self, reply: &[u8]) -> Result<(), String> {
        let got: [u8; 8] = reply.try_into().map_err(|_| format!("{}-byte reply, expected 8", reply.len()))?;
        let got = u64::from_le_bytes(got);
        if got == self.sum {
            Ok(())
        } else {
            Err(format!("sum {got:#x}, expected {:#x}", self.sum))
        }
    }
}

/// The framed, fd-passing driver around the echo handler in `sum` mode, its
/// handler started (with an empty request) and pinned.
fn sum_driver(pin: Pin) -> Result<Driver, BenchError> {
    let limits = Limits { max_inline: (PAYLOAD_LEN as u32) * 2, ..Limits::default() };
    let driver = Driver::builder("bench-sum")
        .framed(FramedConfig { limits, fd_passing: true })
        .args(["sum"])
        .program(|| Program::runtime_blob("echo", umd_blobs::ECHO_HANDLER))
        .build();
    driver.send_recv(&[]).map_err(BenchError::driver("starting the sum handler"))?;
    for pid in driver.handler_pids() {
        pin.apply_to_pid(pid).map_err(BenchError::io("pinning the sum handler"))?;
    }
    Ok(driver)
}

/// Ours: the payload in a sealed memfd built per request.
pub struct MemfdPayload {
    driver: Driver,
    payload: Payload,
}

impl MemfdPayload {
    /// Builds the driver and the payload, and sends it once.
    pub fn new(pin: Pin) -> Result<MemfdPayload, BenchError> {
        let mut me = MemfdPayload { driver: sum_driver(pin)?, payload: Payload::new() };
        me.run(1)?;
        Ok(me)
    }

    /// [`MemfdPayload::new`], boxed.
    pub fn boxed(pin: Pin) -> Result<BoxedWorkload, BenchError> {
        Ok(Box::new(MemfdPayload::new(pin)?))
    }
}

impl Workload for MemfdPayload {
    fn run(&mut self, iters: u64) -> Result<Duration, BenchError> {
        let p = &self.payload;
        let start = Instant::now();
        for _ in 0..iters {
            let memfd = SealedMemfd::build(c"bench-payload", PAYLOAD_LEN, |b| b.copy_from_slice(&p.data))
                .map_err(BenchError::io("building the payload memfd"))?;
            self.driver
                .call(Request::Memfd(&memfd), |r| p.check(r))
                .map_err(BenchError::driver("memfd payload"))?;
        }
        Ok(start.elapsed())
    }
}

impl Drop for MemfdPayload {
    fn drop(&mut self) {
        self.driver.unload();
    }
}

/// Baseline: the payload copied inline through the same kind of channel.
pub struct InlinePayload {
    driver: Driver,
    payload: Payload,
}

impl InlinePayload {
    /// Builds the driver and the payload, and sends it once.
    pub fn new(pin: Pin) -> Result<InlinePayload, BenchError> {
        let mut me = InlinePayload { driver: sum_driver(pin)?, payload: Payload::new() };
        me.run(1)?;
        Ok(me)
    }

    /// [`InlinePayload::new`], boxed.
    pub fn boxed(pin: Pin) -> Result<BoxedWorkload, BenchError> {
        Ok(Box::new(InlinePayload::new(pin)?))
    }
}

impl Workload for InlinePayload {
    fn run(&mut self, iters: u64) -> Result<Duration, BenchError> {
        let p = &self.payload;
        let start = Instant::now();
        for _ in 0..iters {
            self.driver
                .call(Request::Bytes(&p.data), |r| p.check(r))
                .map_err(BenchError::driver("inline payload"))?;
        }
        Ok(start.elapsed())
    }
}

impl Drop for InlinePayload {
    fn drop(&mut self) {
        self.driver.unload();
    }
}
