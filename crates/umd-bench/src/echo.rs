//! Row 1: a 64-byte request/reply, the cost of one round trip.
//!
//! * **Ours** — [`umd::Driver::call`] on a framed driver (default [`FramedConfig`]:
//!   pipes) whose handler is the embedded echo handler with no arguments: an
//!   8-byte header plus 64 bytes each way, the reply compared with the request.
//! * **Baseline** — the *same* echo program started by the
//!   [plain manager](crate::plain) as `raw 64`: 64 bytes written on a blocking pipe,
//!   64 read back, compared.
//!
//! Why it is fair: both peers run the same handler runtime (`umd-handler`) and make
//! the same two system calls per request; both managers check the echo. What is
//! left is exactly umd's per-request work: the idle check, the frame header, the
//! bounded wait, the pool lock, statistics. The request changes every time so a
//! stale reply cannot pass.

use std::time::{Duration, Instant};

use umd::{Driver, FramedConfig, Program, Request};

use crate::pin::Pin;
use crate::plain::{PlainChild, PlainProgram};
use crate::{BenchError, BoxedWorkload, Workload};

/// Request and reply size.
pub const ECHO_LEN: usize = 64;

fn request(i: u64) -> [u8; ECHO_LEN] {
    let mut req = [0x5a; ECHO_LEN];
    req[..8].copy_from_slice(&i.to_le_bytes());
    req
}

/// Ours: a framed umd driver around the echo handler.
pub struct DriverEcho {
    driver: Driver,
    next: u64,
}

impl DriverEcho {
    /// Builds the driver, starts its handler (first request) and pins it.
    pub fn new(pin: Pin) -> Result<DriverEcho, BenchError> {
        let driver = Driver::builder("bench-echo")
            .framed(FramedConfig::default())
            .program(|| Program::runtime_blob("echo", umd_blobs::ECHO_HANDLER))
            .build();
        let mut me = DriverEcho { driver, next: 0 };
        me.run(1)?;
        for pid in me.driver.handler_pids() {
            pin.apply_to_pid(pid).map_err(BenchError::io("pinning the echo handler"))?;
        }
        Ok(me)
    }

    /// [`DriverEcho::new`], boxed.
    pub fn boxed(pin: Pin) -> Result<BoxedWorkload, BenchError> {
        Ok(Box::new(DriverEcho::new(pin)?))
    }
}

impl Workload for DriverEcho {
    fn run(&mut self, iters: u64) -> Result<Duration, BenchError> {
        let start = Instant::now();
        for _ in 0..iters {
            let req = request(self.next);
            self.next += 1;
            self.driver
                .call(Request::Bytes(&req), |r| if r == req { Ok(()) } else { Err("echo differs") })
                .map_err(BenchError::driver("echo request"))?;
        }
        Ok(start.elapsed())
    }
}

impl Drop for DriverEcho {
    fn drop(&mut self) {
        self.driver.unload();
    }
}

/// Baseline: the echo handler in `raw 64` mode on blocking pipes.
pub struct PlainEcho {
    child: PlainChild,
    next: u64,
}

impl PlainEcho {
    /// Starts the handler and pins it.
    pub fn new(pin: Pin) -> Result<PlainEcho, BenchError> {
        let program = PlainProgram::new(umd_blobs::ECHO_HANDLER).map_err(BenchError::io("echo memfd"))?;
        let child = PlainChild::spawn(&program, &["raw", "64"]).map_err(BenchError::io("spawning echo"))?;
        pin.apply_to_pid(child.pid()).map_err(BenchError::io("pinning the echo handler"))?;
        let mut me = PlainEcho { child, next: 0 };
        me.run(1)?;
        Ok(me)
    }

    /// [`PlainEcho::new`], boxed.
    pub fn boxed(pin: Pin) -> Result<BoxedWorkload, BenchError> {
        Ok(Box::new(PlainEcho::new(pin)?))
    }
}

impl Workload for PlainEcho {
    fn run(&mut self, iters: u64) -> Result<Duration, BenchError> {
        let mut reply = [0u8; ECHO_LEN];
        let start = Instant::now();
        for _ in 0..iters {
            let req = request(self.next);
            self.next += 1;
            self.child.exchange(&req, &mut reply).map_err(BenchError::io("echo exchange"))?;
            if reply != req {
                return Err(BenchError::BadReply { what: "plain echo", detail: "echo differs".into() });
            }
        }
        Ok(start.elapsed())
    }
}
