//! `umd`: user mode drivers in user space.
//!
//! A trusted program hands the parsing of hostile data to a **handler**: a small
//! program embedded in the trusted binary as a blob, started on demand from a sealed
//! memfd, spoken to over its stdin and stdout, restarted when it dies, killed when it
//! hangs. The design follows the Linux kernel's user mode driver management library:
//!
//! ```text
//!   caller ──► Manager (manager.rs: Driver) ──► Loader (loader.rs: Program, spawn)
//!                 │   ▲                             │ memfd + execveat
//!        request  │   │ reply (checked)             ▼
//!                 └──►│◄──── fd 0 / fd 1 ──── Handler process (umd-handler runtime)
//!                        wire format: umd-wire (raw | framed, memfd payloads)
//! ```
//!
//! * [`Driver`] — the manager: `load`, `unload`, [`Driver::call`] /
//!   [`Driver::send_recv`], `post_start`, provider, pool, [`Stats`]; recovery
//!   (a dead idle handler replaced before the request, one retry for
//!   [`idempotent`](DriverBuilder::idempotent) drivers, [`Error::retryable`],
//!   [`Error::delivered`], [`Driver::kill_handlers`]).
//! * [`Program`] and [`loader::spawn`] — the loader.
//! * [`exchange`] — the manager's side of the exchange with one running handler.
//!
//! ```
//! use umd::{Driver, Program, RawSizes};
//!
//! // A raw driver: 16-byte requests echoed back by the echo handler.
//! let driver = Driver::builder("echo16")
//!     .raw(RawSizes { request: 16, reply: 16 })
//!     .args(["raw", "16"])
//!     .provider(|_| Program::runtime_blob("echo", umd_blobs::ECHO_HANDLER).map_err(|e| e.to_string()))
//!     .build();
//! let reply = driver.send_recv(&[7u8; 16]).unwrap();
//! assert_eq!(reply, [7u8; 16]);
//! assert_eq!(driver.stats().loads, 1);
//! ```
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod confine;
pub mod error;
pub mod exchange;
pub mod loader;
mod log;
pub mod manager;
pub mod sandbox;
pub mod stats;
#[cfg(feature = "test-support")]
pub mod test_support;

pub use error::{BoxError, Error, HandlerFate, SessionError, StartError};
pub use exchange::{FramedConfig, Reply, Request, Wire};
pub use loader::{Program, ProgramKind, Transport};
pub use manager::{Driver, DriverBuilder, DriverConfig, Session, Status};
pub use sandbox::{Policy, PolicySummary};
pub use stats::{LatencySummary, Stats};
pub use umd_wire::memfd::SealedMemfd;
pub use umd_wire::sample as wire_sample;
pub use umd_wire::{Limits, RawSizes};

/// The README's Rust blocks, compiled as doctests (its Library example is a
/// whole crate: `scripts/readme-example` builds and runs it).
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
