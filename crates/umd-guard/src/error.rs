//! Why a guard could not start, or a list was refused.
//!
//! One enum for the library's callers, each variant with the context a person
//! needs to act: which path, which list and sequence numbers, which state file.
//! The messages name files and numbers only, never the contents of a judged
//! file (a denied program is a [`Decision`](crate::Decision), not an error).
//!
//! Trust: trusted. What the errors carry is the caller's configuration (paths,
//! the key) and numbers the guard read under its own bounds (a verified list's
//! sequence, the state file's record).

use std::path::PathBuf;
use std::time::Duration;

use umd_digest_list::ListError;

use crate::state::StateError;

/// Why the guard could not start, or a list was refused.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    /// Bad configuration.
    #[error("configuration: {0}")]
    Config(String),
    /// `fanotify_init` failed (needs `CAP_SYS_ADMIN` and a kernel with fanotify).
    #[error("fanotify_init: {0} (the guard needs CAP_SYS_ADMIN)")]
    Init(#[source] std::io::Error),
    /// A mark could not be placed.
    #[error("marking {path}: {source}")]
    Mark {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The mark would land on the root mount or filesystem.
    #[error(
        "{path} is on the root {what}: marking it guards every program of the system; \
         pass --allow-root-mount (allow_root_mount) if that is meant"
    )]
    RootMount {
        /// The path.
        path: PathBuf,
        /// `mount` or `filesystem`.
        what: &'static str,
    },
    /// The list could not be read.
    #[error("digest list {path}: {source}")]
    ListRead {
        /// The list.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The list's signature or structure is bad.
    #[error("digest list {path}: {source}")]
    ListInvalid {
        /// The list.
        path: PathBuf,
        /// The error.
        source: ListError,
    },
    /// The list is not newer than the one in use.
    #[error(
        "digest list {path}: sequence {new} (created {}) does not supersede the current list's {current} \
         (created {}); keeping the current list",
        utc(*.new_created), utc(*.current_created)
    )]
    ListNotNewer {
        /// The list.
        path: PathBuf,
        /// Its sequence number.
        new: u64,
        /// Its creation time.
        new_created: u64,
        /// The current one's.
        current: u64,
        /// The current one's creation time.
        current_created: u64,
    },
    /// A thread could not be started.
    #[error("starting the {0} thread: {1}")]
    Thread(&'static str, #[source] std::io::Error),
    /// The state file could not be read, is corrupt, or could not be written.
    #[error("{0}")]
    State(#[from] StateError),
    /// The list is older than the last one accepted (a rollback).
    #[error(
        "digest list {path}: sequence {sequence} is lower than {recorded}, the last list accepted (recorded in \
         {state}); refusing to roll back"
    )]
    Rollback {
        /// The list.
        path: PathBuf,
        /// Its sequence number.
        sequence: u64,
        /// The sequence number recorded.
        recorded: u64,
        /// The state file.
        state: PathBuf,
    },
}

/// Seconds since the epoch as RFC 3339 UTC, for messages.
fn utc(secs: u64) -> impl std::fmt::Display {
    // Clamped to the last second RFC 3339 can write (the formatter fails past it).
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(secs.min(253_402_300_799)))
}
