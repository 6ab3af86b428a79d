//! The `umd` service: the drivers of one process behind a Unix socket — the
//! analogue of the kernel design's securityfs entry point.
//!
//! * [`proto`] — the client protocol (frames, versions, limits, messages),
//!   specified in `docs/protocol.md`;
//! * [`client`] — the client library;
//! * [`server`] — listener, connection threads, limits, SIGHUP reload, SIGTERM
//!   drain;
//! * [`config`] — `/etc/umd/umd.toml`: who may call which driver, admins, limits;
//! * [`drivers`] — the hosted drivers (`sample`, `pgp`);
//! * [`activation`] — systemd socket activation;
//! * [`units`] — the systemd units and their installation.
#![deny(missing_docs)]

pub mod activation;
pub mod client;
pub mod config;
pub mod drivers;
pub mod proto;
pub mod server;
pub mod units;
