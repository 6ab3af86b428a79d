//! Handler programs, built statically at build time and embedded as blobs.
//!
//! This is the "blob" half of the kernel design's loader: the handler's executable
//! travels inside the trusted binary, and the loader copies it into a sealed memfd
//! to run it. The build script (`build.rs`) compiles the `handlers/` packages with
//! `+crt-static`; a blob the final binary never names is dropped by the linker.
//!
//! ```
//! assert_eq!(&umd_blobs::SAMPLE_HANDLER[..4], b"\x7fELF");
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

/// The sample driver's handler (raw wire format, see `umd_wire::sample`).
pub static SAMPLE_HANDLER: &[u8] = include_bytes!(env!("UMD_SAMPLE_HANDLER"));

/// The echo handler: framed echo, framed byte sum, or raw echo (benchmarks, tests).
pub static ECHO_HANDLER: &[u8] = include_bytes!(env!("UMD_ECHO_HANDLER"));

/// The OpenPGP handler: describes every packet of a binary OpenPGP stream for the
/// manager to check (framed, see `umd_pgp_wire`). It links Sequoia; nothing else
/// in umd parses OpenPGP.
pub static PGP_HANDLER: &[u8] = include_bytes!(env!("UMD_PGP_HANDLER"));

/// A deliberately misbehaving handler for fault tests. Not for production use.
#[doc(hidden)]
pub static HOSTILE_HANDLER: &[u8] = include_bytes!(env!("UMD_HOSTILE_HANDLER"));

/// A handler that acts compromised (tries to escape its sandbox) for the sandbox
/// tests. Not for production use.
#[doc(hidden)]
pub static MALICIOUS_HANDLER: &[u8] = include_bytes!(env!("UMD_MALICIOUS_HANDLER"));

/// An OpenPGP handler that falsifies its descriptions as its arguments say, for
/// the tests that a lying handler cannot make the manager accept a key or a
/// signature. Not for production use.
#[doc(hidden)]
pub static PGP_LIAR_HANDLER: &[u8] = include_bytes!(env!("UMD_PGP_LIAR_HANDLER"));

/// The RPM handler: describes the headers of a package file or an rpmdb header
/// for the manager to check (framed, see `umd_rpm_wire`). Nothing else in umd
/// parses RPM headers.
pub static RPM_HANDLER: &[u8] = include_bytes!(env!("UMD_RPM_HANDLER"));

/// An RPM handler that falsifies its descriptions as its arguments say, for the
/// tests that a lying handler cannot get a digest into a list or keep one out
/// unnoticed. Not for production use.
#[doc(hidden)]
pub static RPM_LIAR_HANDLER: &[u8] = include_bytes!(env!("UMD_RPM_LIAR_HANDLER"));
