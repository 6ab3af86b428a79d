//! The `pgp` driver: the OpenPGP handler behind a [`umd::Driver`], and the one
//! call the manager makes of it — *describe these packets* — with the answer
//! checked before anything uses it.

use std::time::Duration;

use umd::{Driver, FramedConfig, Limits, Program};
use umd_pgp_wire::{max_description, Command, Description, DescriptionError, MAX_DESCRIPTION};

use crate::packet::{self, Checked, PacketError};

/// The driver's name.
pub const DRIVER_NAME: &str = "pgp";

/// Largest packet stream sent to the handler (a distribution keyring is ~100 KiB).
pub const MAX_STREAM: usize = 32 << 20;

/// The OpenPGP driver.
#[derive(Clone)]
pub struct PgpDriver {
    driver: Driver,
}

/// Why describing packets failed.
#[derive(Debug, thiserror::Error)]
pub enum DescribeError {
    /// The stream is larger than [`MAX_STREAM`].
    #[error("packet stream of {0} bytes exceeds the {MAX_STREAM}-byte limit")]
    TooLarge(usize),
    /// The stream is empty: nothing to describe (no handler was asked, so an
    /// empty input never counts as a handler failure).
    #[error("no OpenPGP packets: the input is empty")]
    Empty,
    /// The driver failed: handler error, crash, deadline, or a description that
    /// did not check out (a lying or broken handler, then shut down).
    #[error(transparent)]
    Driver(#[from] umd::Error),
}

/// Why the manager refused the handler's description (the handler is then
/// shut down as lying or broken): the source of [`umd::Error::BadReply`], and
/// of a failed start-up probe ([`umd::Error::find_source`] finds it).
#[derive(Debug, thiserror::Error)]
pub enum ReplyError {
    /// The description does not decode within its bounds.
    #[error("{0}")]
    Decode(#[from] DescriptionError),
    /// The description does not match the stream ([`packet::check`]).
    #[error("{0}")]
    Check(#[from] PacketError),
}

/// Decodes the handler's description of `stream` and checks it against the
/// stream: every reply, the start-up probe's too, goes through this.
fn check_reply<'a>(stream: &'a [u8], reply: &[u8]) -> Result<Vec<Checked<'a>>, ReplyError> {
    let d = Description::decode(reply, stream.len())?;
    Ok(packet::check(stream, d)?)
}

/// A user ID packet, the smallest stream `post_start` can ask about.
const PROBE: &[u8] = b"\xCD\x05probe";

impl PgpDriver {
    /// Creates the driver with the default (strict) sandbox; its handler starts on
    /// the first request.
    pub fn new(timeout: Duration) -> PgpDriver {
        PgpDriver::with_program(
            || Program::runtime_blob("umd-pgp-handler", umd_blobs::PGP_HANDLER),
            Vec::new(),
            timeout,
        )
    }

    /// As [`PgpDriver::new`], with another handler program (built on
    /// `umd-handler`, speaking the same wire format) and its arguments. The
    /// manager's checks are the same: this is how tests run a deliberately lying
    /// handler against them.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use umd_pgp::driver::PgpDriver;
    /// let liar = PgpDriver::with_program(
    ///     || umd::Program::runtime_blob("umd-pgp-liar-handler", umd_blobs::PGP_LIAR_HANDLER),
    ///     vec!["change-hash-algo".into()],
    ///     Duration::from_secs(5),
    /// );
    /// assert!(liar.describe(b"\xCD\x05alice").is_ok()); // nothing to lie about in a user ID
    /// ```
    pub fn with_program(
        program: impl Fn() -> std::io::Result<Program> + Send + Sync + 'static,
        args: Vec<String>,
        timeout: Duration,
    ) -> PgpDriver {
        PgpDriver::with_options(program, args, timeout, 1)
    }

    /// The embedded handler with a pool of `pool_size` handlers (a service
    /// serving many clients at once).
    pub fn with_pool_size(timeout: Duration, pool_size: usize) -> PgpDriver {
        PgpDriver::with_options(
            || Program::runtime_blob("umd-pgp-handler", umd_blobs::PGP_HANDLER),
            Vec::new(),
            timeout,
            pool_size,
        )
    }

    fn with_options(
        program: impl Fn() -> std::io::Result<Program> + Send + Sync + 'static,
        args: Vec<String>,
        timeout: Duration,
        pool_size: usize,
    ) -> PgpDriver {
        let limits = Limits { max_inline: MAX_DESCRIPTION as u32, ..Limits::default() };
        let driver = Driver::builder(DRIVER_NAME)
            .framed(FramedConfig { limits, fd_passing: false })
            // A request is pure (same request, same answer, no effect): one
            // whose handler died under it is sent once more to a fresh handler.
            .idempotent(true)
            .timeout(timeout)
            .pool_size(pool_size)
            .args(args)
            .program(program)
            // The probe's reply goes through the same bounded decoder as any
            // other: a handler lying at start-up gets no more room.
            .probe(Command::Describe as u8, PROBE, max_description(PROBE.len()), |reply| {
                check_reply(PROBE, reply).map(drop)
            })
            .build();
        PgpDriver { driver }
    }

    /// Starts the handler now, if none is running, with its start-up probe
    /// (`post_start`), as the first request would ([`Driver::ensure_loaded`]). A caller
    /// can start it on another thread while it reads its input: starting a
    /// confined handler costs milliseconds, reading and framing an `InRelease` a
    /// fraction of that.
    pub fn start(&self) -> Result<(), DescribeError> {
        Ok(self.driver.ensure_loaded()?)
    }

    /// The underlying driver (stats, unload).
    pub fn driver(&self) -> &Driver {
        &self.driver
    }

    /// Has the handler describe `stream` and checks the description against it
    /// ([`packet::check`]). A description that does not check out shuts the handler
    /// down (it lied or is broken) and is an error.
    pub fn describe<'a>(&self, stream: &'a [u8]) -> Result<Vec<Checked<'a>>, DescribeError> {
        if stream.len() > MAX_STREAM {
            return Err(DescribeError::TooLarge(stream.len()));
        }
        if stream.is_empty() {
            return Err(DescribeError::Empty);
        }
        // A reply larger than the stream allows is refused from its frame
        // header, before it is read; the rest is decoded with depth and
        // memory bounded by the stream's size.
        // The stream goes out as it is, after the command byte (no copy).
        let checked =
            self.driver.command(Command::Describe as u8, stream, max_description(stream.len()), |reply| {
                check_reply(stream, reply)
            })?;
        Ok(checked)
    }
}
