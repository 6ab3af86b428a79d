//! The sample user mode driver, manager side: the acceptance test of the design.
//!
//! The handler (`handlers/sample`, embedded as [`umd_blobs::SAMPLE_HANDLER`]) takes a
//! little-endian `u32` offset and replies with 128 KiB of zeros, except byte
//! `offset`, set to 1. The manager never takes that on trust: [`check_reply`]
//! verifies that exactly that byte, and no other, came back set. `post_start` sends
//! offset 0 before a handler serves anyone.
//!
//! ```
//! use umd_sample::{Offset, SampleDriver, HandlerSource};
//!
//! let sample = SampleDriver::new(HandlerSource::Embedded, Default::default());
//! sample.request(Offset::new(4096).unwrap()).unwrap();
//! assert!(Offset::new(131_072).is_err());
//! ```
#![deny(missing_docs)]

use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use serde::Serialize;
use umd::{Driver, LatencySummary, Policy, PolicySummary, Program, Request, Session, SessionError};
use umd_blobs::SAMPLE_HANDLER;

pub use umd::wire_sample::{REPLY_LEN, REQUEST_LEN, SIZES};

/// The driver's name.
pub const DRIVER_NAME: &str = "sample";

/// A byte offset into the sample reply: always in `0..131072`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Offset(u32);

/// An offset outside the reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("offset {0} is outside the sample reply (valid offsets: 0..{REPLY_LEN})")]
pub struct OffsetOutOfRange(pub u64);

impl Offset {
    /// Checks that `n` lies inside the 128 KiB reply.
    pub fn new(n: u64) -> Result<Offset, OffsetOutOfRange> {
        if n < REPLY_LEN as u64 {
            Ok(Offset(n as u32))
        } else {
            Err(OffsetOutOfRange(n))
        }
    }

    /// The offset as an index.
    pub fn get(self) -> usize {
        self.0 as usize
    }

    /// The wire encoding: `u32` little endian.
    pub fn to_request(self) -> [u8; REQUEST_LEN] {
        self.0.to_le_bytes()
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "offset {}", self.0)
    }
}

/// Whether every byte is zero (OR-folded in wide chunks: this runs on every reply).
fn all_zero(b: &[u8]) -> bool {
    let chunks = b.chunks_exact(32);
    let tail = chunks.remainder();
    let mut acc = [0u8; 32];
    for c in chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            *a |= *x;
        }
    }
    acc.iter().chain(tail).all(|&x| x == 0)
}

/// What is wrong with a sample reply ([`check_reply`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// The reply is not [`REPLY_LEN`] bytes long.
    #[error("reply is {0} bytes, expected {REPLY_LEN}")]
    Length(usize),
    /// The requested byte is not 1.
    #[error("byte {index} is {value:#04x}, expected 0x01")]
    NotSet {
        /// The requested offset.
        index: usize,
        /// What the byte is.
        value: u8,
    },
    /// Another byte is set too.
    #[error("byte {other} is set too (only byte {index} may be)")]
    Extra {
        /// The requested offset.
        index: usize,
        /// The first other byte that is not 0.
        other: usize,
    },
}

/// A rejected reply to a request for `offset`: the source of
/// [`umd::Error::BadReply`] from [`SampleDriver::request`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{offset}: {error}")]
pub struct BadReply {
    /// The offset asked for.
    pub offset: Offset,
    /// What is wrong with the reply.
    #[source]
    pub error: ReplyError,
}

/// Checks a reply: exactly [`REPLY_LEN`] bytes, byte `offset` is 1, every other
/// byte is 0. Returns what is wrong otherwise.
pub fn check_reply(offset: Offset, reply: &[u8]) -> Result<(), ReplyError> {
    if reply.len() != REPLY_LEN {
        return Err(ReplyError::Length(reply.len()));
    }
    let i = offset.get();
    if reply[i] != 1 {
        return Err(ReplyError::NotSet { index: i, value: reply[i] });
    }
    if !all_zero(&reply[..i]) || !all_zero(&reply[i + 1..]) {
        let other = reply.iter().enumerate().find(|&(j, &b)| j != i && b != 0).map(|(j, _)| j).unwrap_or(i);
        return Err(ReplyError::Extra { index: i, other });
    }
    Ok(())
}

/// Why the start-up probe failed: the sample's `post_start` error (the source
/// of [`umd::StartError::PostStart`]).
#[derive(Debug, thiserror::Error)]
#[error("{offset}: {source}")]
pub struct ProbeError {
    /// The offset probed (0).
    pub offset: Offset,
    /// What went wrong: a [`SessionError::BadReply`] holds the [`ReplyError`].
    pub source: SessionError,
}

/// The sample's `post_start`: offset 0 must come back right before a handler
/// serves anyone.
pub fn post_start(s: &mut Session<'_>) -> Result<(), ProbeError> {
    let offset = Offset(0);
    s.call(Request::Bytes(&offset.to_request()), |r| check_reply(offset, r))
        .map_err(|source| ProbeError { offset, source })
}

/// Where the handler program comes from.
#[derive(Clone, Debug, Default)]
pub enum HandlerSource {
    /// The blob embedded in this binary.
    #[default]
    Embedded,
    /// An external program speaking the raw sample wire format (e.g. a C handler),
    /// read into a sealed memfd at each load.
    Path(PathBuf),
}

/// Tunables of the sample driver.
#[derive(Clone, Debug)]
pub struct SampleOptions {
    /// Deadline of one request.
    pub timeout: Duration,
    /// Handlers in the pool.
    pub pool_size: usize,
    /// Extra arguments for the handler (tests use them to pick a misbehaviour).
    pub args: Vec<String>,
    /// How handlers are confined.
    pub policy: Policy,
}

impl Default for SampleOptions {
    fn default() -> Self {
        SampleOptions {
            timeout: Duration::from_secs(5),
            pool_size: 1,
            args: Vec::new(),
            policy: Policy::default(),
        }
    }
}

/// The sample driver: a [`Driver`] in raw mode whose provider loads the sample
/// handler and whose `post_start` checks offset 0.
#[derive(Clone)]
pub struct SampleDriver {
    driver: Driver,
    source: HandlerSource,
}

impl SampleDriver {
    /// Creates the driver; nothing starts until the first request.
    pub fn new(source: HandlerSource, options: SampleOptions) -> SampleDriver {
        let provided = source.clone();
        let driver = Driver::builder(DRIVER_NAME)
            .policy(options.policy)
            .raw(SIZES)
            // A request is pure (same request, same answer, no effect): one
            // whose handler died under it is sent once more to a fresh handler.
            .idempotent(true)
            .timeout(options.timeout)
            .pool_size(options.pool_size)
            .args(options.args)
            .provider(move |_| {
                let source = &provided;
                match source {
                    HandlerSource::Embedded => Program::runtime_blob("umd-sample-handler", SAMPLE_HANDLER),
                    HandlerSource::Path(p) => Program::from_path(p),
                }
                .map_err(|e| match source {
                    HandlerSource::Embedded => format!("embedded sample handler: {e}"),
                    // The loader's error names the file.
                    HandlerSource::Path(_) => format!("handler program {e}"),
                })
            })
            .post_start(post_start)
            .build();
        SampleDriver { driver, source }
    }

    /// The confinement its handlers get (computed from the policy; no handler runs).
    pub fn policy_summary(&self) -> Result<PolicySummary, umd::sandbox::SandboxError> {
        let runtime = matches!(self.source, HandlerSource::Embedded);
        Ok(self.driver.config().policy.prepare(runtime, false)?.summary(runtime, false))
    }

    /// Sends `offset` and verifies the reply (the kernel sample's entry point).
    /// A wrong reply is an [`umd::Error::BadReply`] whose source is a
    /// [`BadReply`].
    pub fn request(&self, offset: Offset) -> Result<(), umd::Error> {
        self.driver.call(Request::Bytes(&offset.to_request()), |r| {
            check_reply(offset, r).map_err(|error| BadReply { offset, error })
        })
    }

    /// The underlying driver (load, unload, stats).
    pub fn driver(&self) -> &Driver {
        &self.driver
    }
}

/// Settings of the self-test.
#[derive(Clone, Debug)]
pub struct SelftestConfig {
    /// Requests to send.
    pub iterations: usize,
    /// Unload the driver after every this many requests (0 = never).
    pub unload_every: usize,
    /// Seed of the offset sequence.
    pub seed: u64,
}

impl Default for SelftestConfig {
    fn default() -> Self {
        SelftestConfig { iterations: 500, unload_every: 50, seed: 0x756d64 }
    }
}

/// One failed self-test request.
#[derive(Clone, Debug, Serialize)]
pub struct SelftestFailure {
    /// Request index (0-based).
    pub index: usize,
    /// The offset sent.
    pub offset: u32,
    /// The error.
    pub error: String,
}

/// What the self-test measured.
#[derive(Clone, Debug, Serialize)]
pub struct SelftestReport {
    /// Requests sent.
    pub requests: usize,
    /// Requests whose reply was verified.
    pub passed: usize,
    /// Requests that failed.
    pub failed: usize,
    /// Program loads (on demand, through the provider).
    pub loads: u64,
    /// Unloads.
    pub unloads: u64,
    /// Handler starts.
    pub starts: u64,
    /// Handler restarts.
    pub restarts: u64,
    /// Seed used.
    pub seed: u64,
    /// Unload interval used.
    pub unload_every: usize,
    /// Wall time in seconds.
    pub elapsed_s: f64,
    /// Per-request latency (successful requests), from the driver's histogram.
    pub latency: LatencySummary,
    /// The first failures (at most 10).
    pub failures: Vec<SelftestFailure>,
    /// Handlers killed for a seccomp violation.
    pub violations: u64,
}

impl SelftestReport {
    /// Whether every request passed.
    pub fn ok(&self) -> bool {
        self.failed == 0 && self.passed == self.requests
    }
}

/// The offsets the self-test sends: `(random % 128) * 1024`, from `seed`.
pub fn selftest_offsets(seed: u64, n: usize) -> Vec<Offset> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n).map(|_| Offset((rng.random::<u32>() % 128) * 1024)).collect()
}

/// The kernel sample's self-test: `iterations` requests at random offsets,
/// unloading the driver after every `unload_every` requests so the next one must
/// load it again on demand. `progress` is called after each request.
pub fn selftest(
    sample: &SampleDriver,
    cfg: &SelftestConfig,
    mut progress: impl FnMut(usize),
) -> SelftestReport {
    let before = sample.driver().stats();
    let started = Instant::now();
    let mut failures = Vec::new();
    let mut passed = 0;
    for (i, offset) in selftest_offsets(cfg.seed, cfg.iterations).into_iter().enumerate() {
        if i > 0 && cfg.unload_every > 0 && i % cfg.unload_every == 0 {
            sample.driver().unload();
        }
        match sample.request(offset) {
            Ok(()) => passed += 1,
            Err(e) => {
                if failures.len() < 10 {
                    failures.push(SelftestFailure { index: i, offset: offset.0, error: e.to_string() });
                }
            }
        }
        progress(i + 1);
    }
    let elapsed = started.elapsed();
    let after = sample.driver().stats();
    SelftestReport {
        requests: cfg.iterations,
        passed,
        failed: cfg.iterations - passed,
        loads: after.loads - before.loads,
        unloads: after.unloads - before.unloads,
        starts: after.starts - before.starts,
        restarts: after.restarts - before.restarts,
        seed: cfg.seed,
        unload_every: cfg.unload_every,
        elapsed_s: elapsed.as_secs_f64(),
        latency: after.latency,
        failures,
        violations: after.violations - before.violations,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_outside_the_reply_are_rejected() {
        assert!(Offset::new(0).is_ok());
        assert!(Offset::new(131_071).is_ok());
        assert_eq!(Offset::new(131_072), Err(OffsetOutOfRange(131_072)));
        assert!(Offset::new(u64::MAX).is_err());
    }

    #[test]
    fn check_reply_wants_exactly_one_byte_set() {
        let o = Offset::new(1024).unwrap();
        let mut r = vec![0u8; REPLY_LEN];
        assert!(check_reply(o, &r).is_err());
        r[1024] = 1;
        assert!(check_reply(o, &r).is_ok());
        r[REPLY_LEN - 1] = 1;
        assert_eq!(check_reply(o, &r), Err(ReplyError::Extra { index: 1024, other: 131071 }));
        r[REPLY_LEN - 1] = 0;
        r[1024] = 2;
        assert!(check_reply(o, &r).is_err());
        assert!(check_reply(o, &r[..100]).is_err());
    }

    #[test]
    fn selftest_offsets_follow_the_kernel_formula() {
        let offs = selftest_offsets(1, 1000);
        assert!(offs.iter().all(|o| o.get() % 1024 == 0 && o.get() < REPLY_LEN));
        assert_eq!(offs, selftest_offsets(1, 1000));
    }
}
