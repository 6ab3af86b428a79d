//! The `rpm` driver: the RPM handler behind a [`umd::Driver`], and the one call
//! the manager makes of it — *describe these headers* — with the answer checked
//! ([`crate::check`]) before anything uses it.

use std::time::Duration;

use umd::{Driver, FramedConfig, Limits, Program, Request, SealedMemfd};
use umd_rpm_wire::{
    max_description, max_memory, Command, DbBlob, DbBlobs, Description, MAX_DESCRIPTION, MAX_INPUT,
};
use umd_wire::decode::Budget;

use crate::check::{self, CheckError, Checked, CheckedHeaders};

/// The driver's name.
pub const DRIVER_NAME: &str = "rpm";

/// Largest rpm database sent to the handler (a distribution's is 50–200 MiB).
pub const MAX_DATABASE: u64 = 1 << 30;

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
    /// The checked headers' file list would take more memory than the input
    /// allows ([`umd_rpm_wire::max_memory`]), or cannot be derived.
    #[error("{0}")]
    Files(check::CheckError),
}

/// Why the manager refused the handler's reply (the handler is then shut down
/// as lying or broken): the source of [`umd::Error::BadReply`], and of a failed
/// start-up probe ([`umd::Error::find_source`] finds it).
#[derive(Debug, thiserror::Error)]
pub enum ReplyError {
    /// The reply does not decode within its bounds.
    #[error("{0}")]
    Decode(#[from] umd_rpm_wire::ReplyError),
    /// The description does not match the input ([`check::check_headers`]).
    #[error("{0}")]
    Check(#[from] CheckError),
}

/// Decodes the handler's description of `input` and checks the headers
/// against it, charging what it builds to a budget of [`max_memory`] that the
/// caller goes on charging: every description, the start-up probe's too,
/// goes through this.
fn check_reply<'a>(
    command: Command,
    input: &'a [u8],
    reply: &[u8],
) -> Result<(CheckedHeaders<'a>, Budget), ReplyError> {
    let mut budget = Budget::new(max_memory(input.len()));
    let d = Description::decode_charging(reply, input.len(), &mut budget)?;
    let headers = check::check_headers(command, input, d)?;
    Ok((headers, budget))
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
        let limits = Limits { max_inline: MAX_DESCRIPTION as u32, max_memfd: MAX_DATABASE + (1 << 20) };
        let driver = Driver::builder(DRIVER_NAME)
            // A socket pair: the rpm database travels to the handler, and its
            // blobs back, as sealed memfds.
            .framed(FramedConfig { limits, fd_passing: true })
            // A request is pure (same request, same answer, no effect): one
            // whose handler died under it is sent once more to a fresh handler.
            .idempotent(true)
            .timeout(timeout)
            .pool_size(handlers)
            .args(args)
            .program(program)
            // The probe's reply goes through the same bounds and checks as any
            // other, the file list included.
            .probe(Command::DbHeader as u8, PROBE, max_description(PROBE.len()), |reply| {
                let (headers, mut budget) = check_reply(Command::DbHeader, PROBE, reply)?;
                headers.with_files(&mut budget).map(drop).map_err(ReplyError::Check)
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
    ///
    /// Memory: the reply may take [`max_description`] bytes (refused from its
    /// frame header beyond), and the decoded description with the file list
    /// the manager derives from it [`max_memory`] (charged as they are built);
    /// the reply's buffer is freed before the file list is built.
    pub fn describe<'a>(&self, command: Command, input: &'a [u8]) -> Result<Checked<'a>, DescribeError> {
        if input.len() > MAX_INPUT {
            return Err(DescribeError::TooLarge(input.len()));
        }
        let (headers, mut budget) =
            self.driver.command(command as u8, input, max_description(input.len()), |reply| {
                check_reply(command, input, reply)
            })?;
        headers.with_files(&mut budget).map_err(DescribeError::Files)
    }

    /// Has the handler open an rpm database (`rpmdb.sqlite`, given as a
    /// sealed memfd holding the command byte and the file) and return its
    /// header blobs. The blobs are untrusted bytes: each is then described
    /// and checked like any header ([`RpmDriver::describe`] with
    /// [`Command::DbHeader`]).
    pub fn db_blobs(&self, db: &SealedMemfd) -> Result<Vec<DbBlob>, DescribeError> {
        let db_len = usize::try_from(db.len().saturating_sub(1)).unwrap_or(usize::MAX);
        let blobs = self.driver.call_bounded(Request::Memfd(db), DbBlobs::max_reply(db_len), |reply| {
            DbBlobs::decode(reply, db_len).map_err(ReplyError::Decode)
        })?;
        Ok(blobs.headers)
    }
}
