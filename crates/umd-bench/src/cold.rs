//! Row 4: cold start, from "no handler" to the first verified reply and back.
//!
//! * **Ours** — one request on an *unloaded* [`SampleDriver`], then
//!   [`umd::Driver::unload`]: the provider copies the blob into a sealed memfd, the
//!   loader forks and `execveat`s it (and starts the stderr reader), `post_start`
//!   checks offset 0 (a full 128 KiB exchange), the request itself runs and is
//!   checked, and unload SIGKILLs and reaps the handler.
//! * **Baseline** — the [plain manager](crate::plain): a memfd filled with the same
//!   blob, `fork` + `execveat`, one 4-byte request and its 128 KiB reply (same
//!   check), SIGKILL and `wait`.
//!
//! Why it is fair: both pay for a fresh memfd, a fork from the same process, an
//! exec of the same static binary, its first reply, and killing and reaping it.
//! Ours does one exchange more — `post_start`, which is part of what a load *is*
//! in umd — and that is counted, not hidden: it is manager work a caller waits for.

use std::time::{Duration, Instant};

use umd::sandbox::{Namespaces, Policy};
use umd_sample::{HandlerSource, Offset, SampleDriver, SampleOptions, REPLY_LEN};

use crate::bulk::plain_request;
use crate::pin::Pin;
use crate::plain::{PlainChild, PlainProgram};
use crate::{BenchError, BoxedWorkload, Workload};

/// The offset requested after each start.
fn offset() -> Offset {
    Offset::new(4096).unwrap_or_else(|_| unreachable!("4096 is inside the 128 KiB reply"))
}

/// Ours: load on demand, one request, unload.
pub struct DriverCold {
    sample: SampleDriver,
}

impl DriverCold {
    /// Builds the (unloaded) driver with the default (strict) sandbox and does one
    /// cold start to warm caches.
    pub fn new(pin: Pin) -> Result<DriverCold, BenchError> {
        DriverCold::with_policy(pin, Policy::default())
    }

    /// As [`DriverCold::new`], with handlers confined by `policy`.
    pub fn with_policy(_pin: Pin, policy: Policy) -> Result<DriverCold, BenchError> {
        let sample =
            SampleDriver::new(HandlerSource::Embedded, SampleOptions { policy, ..SampleOptions::default() });
        let mut me = DriverCold { sample };
        me.run(1)?;
        Ok(me)
    }

    /// [`DriverCold::new`], boxed.
    pub fn boxed(pin: Pin) -> Result<BoxedWorkload, BenchError> {
        Ok(Box::new(DriverCold::new(pin)?))
    }

    /// Unconfined handlers (the kernel design): what the sandbox costs.
    pub fn boxed_unconfined(pin: Pin) -> Result<BoxedWorkload, BenchError> {
        Ok(Box::new(DriverCold::with_policy(pin, Policy::unconfined())?))
    }

    /// The default sandbox plus user, IPC and UTS namespaces.
    pub fn boxed_user_ipc_uts(pin: Pin) -> Result<BoxedWorkload, BenchError> {
        let ns = Namespaces { user: true, ipc: true, uts: true, ..Namespaces::default() };
        Ok(Box::new(DriverCold::with_policy(pin, Policy { namespaces: ns, ..Policy::default() })?))
    }

    /// The default sandbox plus user and mount namespaces.
    pub fn boxed_user_mount(pin: Pin) -> Result<BoxedWorkload, BenchError> {
        let ns = Namespaces { user: true, mount: true, ..Namespaces::default() };
        Ok(Box::new(DriverCold::with_policy(pin, Policy { namespaces: ns, ..Policy::default() })?))
    }

    /// The default sandbox plus PID, mount and IPC namespaces.
    pub fn boxed_pid_mount_ipc(pin: Pin) -> Result<BoxedWorkload, BenchError> {
        let ns = Namespaces { pid: true, mount: true, ipc: true, ..Namespaces::default() };
        Ok(Box::new(DriverCold::with_policy(pin, Policy { namespaces: ns, ..Policy::default() })?))
    }

    /// The default sandbox plus user and network namespaces.
    pub fn boxed_user_net(pin: Pin) -> Result<BoxedWorkload, BenchError> {
        let ns = Namespaces { user: true, network: true, ..Namespaces::default() };
        Ok(Box::new(DriverCold::with_policy(pin, Policy { namespaces: ns, ..Policy::default() })?))
    }
}

impl Workload for DriverCold {
    fn run(&mut self, iters: u64) -> Result<Duration, BenchError> {
        let driver = self.sample.driver();
        let loads_before = driver.stats().loads;
        let start = Instant::now();
        for _ in 0..iters {
            self.sample.request(offset()).map_err(BenchError::driver("cold sample request"))?;
            driver.unload();
        }
        let elapsed = start.elapsed();
        // Every iteration must really have been a cold start.
        let loads = driver.stats().loads - loads_before;
        if loads != iters {
            return Err(BenchError::BadReply {
                what: "cold start",
                detail: format!("{loads} loads for {iters} cold requests"),
            });
        }
        Ok(elapsed)
    }
}

/// Baseline: memfd, fork + execveat, one exchange, kill.
pub struct PlainCold {
    reply: Vec<u8>,
}

impl PlainCold {
    /// Does one cold start to warm caches.
    pub fn new(_pin: Pin) -> Result<PlainCold, BenchError> {
        let mut me = PlainCold { reply: vec![0; REPLY_LEN] };
        me.run(1)?;
        Ok(me)
    }

    /// [`PlainCold::new`], boxed.
    pub fn boxed(pin: Pin) -> Result<BoxedWorkload, BenchError> {
        Ok(Box::new(PlainCold::new(pin)?))
    }
}

impl Workload for PlainCold {
    fn run(&mut self, iters: u64) -> Result<Duration, BenchError> {
        let start = Instant::now();
        for _ in 0..iters {
            let program =
                PlainProgram::new(umd_blobs::SAMPLE_HANDLER).map_err(BenchError::io("sample memfd"))?;
            let mut child = PlainChild::spawn(&program, &[]).map_err(BenchError::io("spawning sample"))?;
            plain_request(&mut child, offset(), &mut self.reply)?;
            child.kill().map_err(BenchError::io("killing sample"))?;
        }
        Ok(start.elapsed())
    }
}
