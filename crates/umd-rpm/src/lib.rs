//! The `rpm` driver, manager side: the file digests of RPM packages, trusted
//! only as far as a header signature over the original bytes vouches for them.
//!
//! The handler (`handlers/rpm`) parses package files and rpmdb header blobs and
//! describes every index entry. This crate links no RPM parser; it
//!
//! * [`check`] — re-reads every index entry from the bytes, finds the immutable
//!   region itself (as rpm's `hdrblobVerifyRegion` does), re-encodes each value
//!   it uses and compares it with the data store, refuses used values outside the
//!   region or given twice, and derives the file list itself;
//! * [`package`] — hashes the signed region as rpm does (`hdrblobDigestUpdate`:
//!   header magic, region entry count and data length, region index, region
//!   data), verifies the header signatures with the `pgp` driver
//!   ([`umd_pgp::verifier::Verifier`]: one OpenPGP parser in the project), checks
//!   the payload digest of a package file, and gives a verdict;
//! * [`db`] — reads header blobs from an `rpmdb.sqlite` (SQLite is framing the
//!   manager does itself; the blobs go to the handler);
//! * [`driver`] — the `rpm` driver and its request, *describe*;
//! * [`policy`] — what is accepted ([`Policy`]: the OpenPGP policy of the
//!   header signatures, file and payload digest algorithms);
//! * [`list`] — which packages enter a signed digest list, and why the others
//!   do not: one call over many packages, with a pool of workers.
#![deny(missing_docs)]

pub mod check;
pub mod db;
pub mod driver;
pub mod list;
pub mod package;
pub mod policy;

pub use policy::Policy;
