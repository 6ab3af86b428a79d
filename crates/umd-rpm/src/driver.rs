//! The `rpm` driver: the RPM handler behind a [`umd::Driver`], and the one call
//! the manager makes of it — *describe these headers* — with the answer checked
//! ([`crate::check`]) before anything uses it.

use std::time::Duration;

use umd::{Driver, FramedConfig, Limits, Program, Request};
use umd_rpm_wire::{Command, Description, MAX_DESCRIPTION, MAX_INPUT};

use crate::check::{self, Checked};

/// The driver's name.
pub const DRIVER_NAME: &str = "rpm";

/// Why describing failed.
#[derive(Debug, thiserror::Error)]
pub enum DescribeError {
    /// The input is larger than the handler accepts.
    #[error("{0} bytes of headers exceed the {MAX_INPUT}-byte limit")]
    TooLarge(usize),
    /// The driver failed: the handler refused the input (malformed), crashed,
    /// missed its deadline, or gave a description that did not check out (then
    /// it is shut down).
    #[error(transparent)]
    Driver(#[from] umd::Error),
}

/// The smallest database header: an immutable region of one entry, no data.
pub const PROBE: &[u8] = &[
    0, 0, 0, 1, 0, 0, 0, 16, // il = 1, dl = 16
    0, 0, 0, 63, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 16, // region tag, BIN, offset 0, 16
    0, 0, 0, 63, 0, 0, 0, 7, 0xff, 0xff, 0xff, 0xf0, 0, 0, 0, 16, // trailer: -16
];

/// The RPM driver.
#[derive(Clone)]
pub struct RpmDriver {
    driver: Driver,
}

impl RpmDriver {
    /// Creates the driver with the default (strict) sandbox; its handler starts
    /// on the first request.
    pub fn new(timeout: Duration) -> RpmDriver {
        RpmDriver::with_pool(timeout, 1)
    }

    /// As [`RpmDriver::new`], with up to `handlers` handlers serving concurrent
    /// callers (each started on demand).
    pub fn with_pool(timeout: Duration, handlers: usize) -> RpmDriver {
        RpmDriver::build(
            || Program::runtime_blob("umd-rpm-handler", umd_blobs::RPM_HANDLER),
            Vec::new(),
            timeout,
            handlers,
        )
    }

    /// As [`RpmDriver::new`], with another handler program speaking the same
    /// wire format, and its arguments (the tests run a lying handler this way).
    pub fn with_program(
        program: impl Fn() -> std::io::Result<Program> + Send + Sync + 'static,
        args: Vec<String>,
        timeout: Duration,
    ) -> RpmDriver {
        RpmDriver::build(program, args, timeout, 1)
    }

    fn build(
        program: impl Fn() -> std::io::Result<Program> + Send + Sync + 'static,
        args: Vec<String>,
        timeout: Duration,
        handlers: usize,
    ) -> RpmDriver {
        let limits = Limits { max_inline: MAX_DESCRIPTION as u32, ..Limits::default() };
        let driver = Driver::builder(DRIVER_NAME)
            .framed(FramedConfig { limits, fd_passing: false })
            // A request is pure (same request, same answer, no effect): one
            // whose handler died under it is sent once more to a fresh handler.
            .idempotent(true)
            .timeout(timeout)
            .pool_size(handlers)
            .args(args)
            .provider(move |_| program().map_err(|e| e.to_string()))
            .post_start(|s| {
                let mut req = vec![Command::DbHeader as u8];
                req.extend_from_slice(PROBE);
                s.call(Request::Bytes(&req), |reply| {
                    let d =
                        Description::decode(reply).map_err(|e| format!("undecodable description: {e}"))?;
                    check::check(Command::DbHeader, PROBE, &d).map(|_| ()).map_err(|e| e.to_string())
                })
            })
            .build();
        RpmDriver { driver }
    }

    /// The underlying driver (stats, unload).
    pub fn driver(&self) -> &Driver {
        &self.driver
    }

    /// Has the handler describe `input` and checks the description against it.
    /// A description that does not check out shuts the handler down and is an
    /// error.
    pub fn describe<'a>(&self, command: Command, input: &'a [u8]) -> Result<Checked<'a>, DescribeError> {
        if input.len() > MAX_INPUT {
            return Err(DescribeError::TooLarge(input.len()));
        }
        let mut req = Vec::with_capacity(input.len() + 1);
        req.push(command as u8);
        req.extend_from_slice(input);
        let checked = self.driver.call(Request::Bytes(&req), |reply| {
            let d = Description::decode(reply).map_err(|e| format!("undecodable description: {e}"))?;
            check::check(command, input, &d).map_err(|e| e.to_string())
        })?;
        Ok(checked)
    }
}
