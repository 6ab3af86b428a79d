//! The service's configuration (`/etc/umd/umd.toml` by default): who may call
//! which driver, who may control the service, limits and pool sizes.
//!
//! Read once at start and again on SIGHUP. A configuration is parsed and every
//! user and group name resolved *before* it replaces the old one, so a reload is
//! all or nothing. The file format is documented in `docs/service.md`.
//!
//! ```
//! use umd_service::config::Config;
//! let c = Config::parse("admin_group = \"0\"\n[drivers.sample]\neveryone = true\n").unwrap();
//! assert!(c.drivers.sample.everyone);
//! assert_eq!(c.limits.max_in_flight_per_uid, 8);
//! ```

use std::collections::BTreeSet;
use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::proto::{DriverName, DEFAULT_MAX_REQUEST, MAX_REQUEST_CEILING};

/// Default configuration file.
pub const DEFAULT_CONFIG: &str = "/etc/umd/umd.toml";

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Not valid TOML, or unknown keys, or wrong types.
    #[error("{path}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// A name that does not resolve, or a value out of range.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// Access to one driver, as written in the file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccess {
    #[serde(default)]
    users: Vec<String>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    everyone: bool,
    pool_size: Option<usize>,
    timeout_ms: Option<u64>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDrivers {
    #[serde(default)]
    sample: RawAccess,
    #[serde(default)]
    pgp: RawAccess,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    admin_group: Option<String>,
    #[serde(default)]
    drivers: RawDrivers,
    #[serde(default)]
    limits: Limits,
}

/// Per-client and global limits.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Open connections, all clients together; more are refused with "busy".
    pub max_connections: usize,
    /// Open connections of one uid.
    pub max_connections_per_uid: usize,
    /// Requests of one uid being served at once (each connection has at most
    /// one); more wait up to `queue_timeout_ms`, then get "busy".
    pub max_in_flight_per_uid: usize,
    /// Requests waiting for or using one driver; more get "busy" at once.
    pub max_queued_per_driver: usize,
    /// Largest request body in bytes (at most 64 MiB).
    pub max_request_bytes: usize,
    /// Request bodies held in memory at once, and what decoding them
    /// allocates, all clients together, in bytes.
    pub request_memory_bytes: usize,
    /// Request bodies of one uid held in memory at once, with what decoding
    /// them allocates, in bytes: one user cannot take the whole budget (by
    /// announcing large frames and stalling). A request takes its body and
    /// about as much again while it is decoded.
    pub request_memory_per_uid: usize,
    /// A connection with no request for this long is closed.
    pub idle_timeout_ms: u64,
    /// A started frame must arrive completely within this time.
    pub frame_timeout_ms: u64,
    /// Longest wait for an in-flight or memory slot before "busy".
    pub queue_timeout_ms: u64,
    /// On SIGTERM, how long in-flight requests get to finish.
    pub drain_timeout_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 256,
            max_connections_per_uid: 32,
            max_in_flight_per_uid: 8,
            max_queued_per_driver: 64,
            max_request_bytes: DEFAULT_MAX_REQUEST,
            request_memory_bytes: 64 << 20,
            request_memory_per_uid: 24 << 20,
            idle_timeout_ms: 60_000,
            frame_timeout_ms: 10_000,
            queue_timeout_ms: 10_000,
            drain_timeout_ms: 10_000,
        }
    }
}

impl Limits {
    /// Idle timeout.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }
    /// Frame timeout.
    pub fn frame_timeout(&self) -> Duration {
        Duration::from_millis(self.frame_timeout_ms)
    }
    /// Queue timeout.
    pub fn queue_timeout(&self) -> Duration {
        Duration::from_millis(self.queue_timeout_ms)
    }
    /// Drain timeout.
    pub fn drain_timeout(&self) -> Duration {
        Duration::from_millis(self.drain_timeout_ms)
    }

    fn check(&self) -> Result<(), String> {
        let positive = [
            ("max_connections", self.max_connections),
            ("max_connections_per_uid", self.max_connections_per_uid),
            ("max_in_flight_per_uid", self.max_in_flight_per_uid),
            ("max_queued_per_driver", self.max_queued_per_driver),
            ("max_request_bytes", self.max_request_bytes),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("limits.{name} must be at least 1"));
        }
        if self.max_request_bytes > MAX_REQUEST_CEILING {
            return Err(format!("limits.max_request_bytes must be at most {MAX_REQUEST_CEILING}"));
        }
        if self.request_memory_bytes < self.max_request_bytes {
            return Err("limits.request_memory_bytes must be at least limits.max_request_bytes".into());
        }
        if self.request_memory_per_uid < self.max_request_bytes {
            return Err("limits.request_memory_per_uid must be at least limits.max_request_bytes".into());
        }
        for (name, ms) in [
            ("idle_timeout_ms", self.idle_timeout_ms),
            ("frame_timeout_ms", self.frame_timeout_ms),
            ("queue_timeout_ms", self.queue_timeout_ms),
            ("drain_timeout_ms", self.drain_timeout_ms),
        ] {
            if ms == 0 || ms > 3_600_000 {
                return Err(format!("limits.{name} must be in 1..=3600000"));
            }
        }
        Ok(())
    }
}

/// Who may call one driver, names resolved to ids, and how it runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Access {
    /// Users allowed.
    pub uids: BTreeSet<u32>,
    /// Groups (primary or supplementary) allowed.
    pub gids: BTreeSet<u32>,
    /// Anyone may call it.
    pub everyone: bool,
    /// Handlers in the pool.
    pub pool_size: usize,
    /// Request deadline.
    pub timeout: Duration,
}

impl Default for Access {
    fn default() -> Self {
        Access {
            uids: BTreeSet::new(),
            gids: BTreeSet::new(),
            everyone: false,
            pool_size: DEFAULT_POOL_SIZE,
            timeout: Duration::from_millis(DEFAULT_TIMEOUT_MS),
        }
    }
}

/// Handlers per driver unless the file says otherwise (one per core here).
pub const DEFAULT_POOL_SIZE: usize = 2;
/// Request deadline unless the file says otherwise.
pub const DEFAULT_TIMEOUT_MS: u64 = 5_000;

/// Access for each driver.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Drivers {
    /// The sample driver.
    pub sample: Access,
    /// The pgp driver.
    pub pgp: Access,
}

impl Drivers {
    /// Access for `d`.
    pub fn get(&self, d: DriverName) -> &Access {
        match d {
            DriverName::Sample => &self.sample,
            DriverName::Pgp => &self.pgp,
        }
    }
}

/// A resolved configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Members of this group may use the control operations (as may root).
    pub admin_gid: Option<u32>,
    /// Driver access and tunables.
    pub drivers: Drivers,
    /// Limits.
    pub limits: Limits,
}

impl Default for Config {
    /// What the service uses when the default file does not exist: only root
    /// (and the service's own user) may do anything.
    fn default() -> Self {
        Config { admin_gid: None, drivers: Drivers::default(), limits: Limits::default() }
    }
}

/// A peer's identity, from `SO_PEERCRED` and `SO_PEERGROUPS`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Process id at connect time.
    pub pid: i32,
    /// User id.
    pub uid: u32,
    /// Primary group.
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
}

impl Peer {
    fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.groups.contains(&gid)
    }
}

impl Config {
    /// Reads and resolves `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.into(), source })?;
        Config::parse(&text).map_err(|e| match e {
            ConfigError::Syntax { message, .. } => ConfigError::Syntax { path: path.into(), message },
            ConfigError::Invalid { message, .. } => ConfigError::Invalid { path: path.into(), message },
            other => other,
        })
    }

    /// Parses and resolves configuration text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let here = PathBuf::from("(configuration)");
        let raw: RawFile = toml::from_str(text)
            .map_err(|e| ConfigError::Syntax { path: here.clone(), message: e.to_string().trim().into() })?;
        let invalid = |message: String| ConfigError::Invalid { path: here.clone(), message };
        raw.limits.check().map_err(invalid)?;
        let admin_gid = match &raw.admin_group {
            None => None,
            Some(g) => Some(resolve_group(g).map_err(|m| invalid(format!("admin_group: {m}")))?),
        };
        let access = |name: &str, a: &RawAccess| -> Result<Access, ConfigError> {
            let uids = a
                .users
                .iter()
                .map(|u| resolve_user(u))
                .collect::<Result<_, _>>()
                .map_err(|m| invalid(format!("drivers.{name}.users: {m}")))?;
            let gids = a
                .groups
                .iter()
                .map(|g| resolve_group(g))
                .collect::<Result<_, _>>()
                .map_err(|m| invalid(format!("drivers.{name}.groups: {m}")))?;
            let pool_size = a.pool_size.unwrap_or(DEFAULT_POOL_SIZE);
            if !(1..=64).contains(&pool_size) {
                return Err(invalid(format!("drivers.{name}.pool_size must be in 1..=64")));
            }
            let timeout_ms = a.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
            if !(1..=600_000).contains(&timeout_ms) {
                return Err(invalid(format!("drivers.{name}.timeout_ms must be in 1..=600000")));
            }
            Ok(Access {
                uids,
                gids,
                everyone: a.everyone,
                pool_size,
                timeout: Duration::from_millis(timeout_ms),
            })
        };
        Ok(Config {
            admin_gid,
            drivers: Drivers {
                sample: access("sample", &raw.drivers.sample)?,
                pgp: access("pgp", &raw.drivers.pgp)?,
            },
            limits: raw.limits,
        })
    }

    /// Whether `peer` is root, the service's own user, or in the admin group.
    pub fn is_admin(&self, peer: &Peer) -> bool {
        peer.uid == 0
            || peer.uid == rustix::process::geteuid().as_raw()
            || self.admin_gid.is_some_and(|g| peer.in_group(g))
    }

    /// Whether `peer` may call `driver`: admins always, others when the driver's
    /// section names them, one of their groups, or everyone.
    pub fn may_call(&self, peer: &Peer, driver: DriverName) -> bool {
        let a = self.drivers.get(driver);
        self.is_admin(peer)
            || a.everyone
            || a.uids.contains(&peer.uid)
            || a.gids.iter().any(|&g| peer.in_group(g))
    }
}

/// Largest buffer offered to getpwnam_r(3)/getgrnam_r(3) (a group with very
/// many members needs a large one).
const MAX_NSS_BUFFER: usize = 4 << 20;

/// A user name or numeric id.
fn resolve_user(s: &str) -> Result<u32, String> {
    if let Ok(n) = s.parse::<u32>() {
        return Ok(n);
    }
    let name = CString::new(s).map_err(|_| format!("user {s:?}: contains a NUL byte"))?;
    let mut buf = vec![0u8; 16 << 10];
    loop {
        // SAFETY: an all-zero `passwd` (integers and null pointers) is a valid
        // value for an out-parameter.
        let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: `name` is NUL-terminated; `pw`, `buf` (with its length) and
        // `result` are valid for writes for the duration of the call, and `pw`'s
        // pointers into `buf` are not used after `buf` changes.
        let rc = unsafe {
            libc::getpwnam_r(name.as_ptr(), &mut pw, buf.as_mut_ptr().cast(), buf.len(), &mut result)
        };
        match rc {
            0 if result.is_null() => return Err(format!("no such user {s:?}")),
            0 => return Ok(pw.pw_uid),
            libc::ERANGE if buf.len() < MAX_NSS_BUFFER => buf.resize(buf.len() * 4, 0),
            e => return Err(format!("user {s:?}: {}", std::io::Error::from_raw_os_error(e))),
        }
    }
}

/// A group name or numeric id.
fn resolve_group(s: &str) -> Result<u32, String> {
    if let Ok(n) = s.parse::<u32>() {
        return Ok(n);
    }
    let name = CString::new(s).map_err(|_| format!("group {s:?}: contains a NUL byte"))?;
    let mut buf = vec![0u8; 64 << 10];
    loop {
        // SAFETY: an all-zero `group` (integers and null pointers) is a valid
        // value for an out-parameter.
        let mut gr: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        // SAFETY: as for getpwnam_r above: every pointer is valid for the call.
        let rc = unsafe {
            libc::getgrnam_r(name.as_ptr(), &mut gr, buf.as_mut_ptr().cast(), buf.len(), &mut result)
        };
        match rc {
            0 if result.is_null() => return Err(format!("no such group {s:?}")),
            0 => return Ok(gr.gr_gid),
            libc::ERANGE if buf.len() < MAX_NSS_BUFFER => buf.resize(buf.len() * 4, 0),
            e => return Err(format!("group {s:?}: {}", std::io::Error::from_raw_os_error(e))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(uid: u32, gid: u32, groups: &[u32]) -> Peer {
        Peer { pid: 1, uid, gid, groups: groups.to_vec() }
    }

    #[test]
    fn default_config_allows_only_root() {
        let c = Config::default();
        assert!(c.may_call(&peer(0, 0, &[]), DriverName::Sample));
        let stranger = peer(54321, 54321, &[]);
        if rustix::process::geteuid().as_raw() != 54321 {
            assert!(!c.may_call(&stranger, DriverName::Sample));
            assert!(!c.is_admin(&stranger));
        }
    }

    #[test]
    fn users_groups_and_everyone_grant_access_per_driver() {
        let c = Config::parse(
            "admin_group = \"4242\"\n[drivers.sample]\nusers = [\"1001\"]\ngroups = [\"2002\"]\n\
             [drivers.pgp]\neveryone = true\n",
        )
        .unwrap();
        assert!(c.may_call(&peer(1001, 1001, &[]), DriverName::Sample));
        assert!(c.may_call(&peer(1003, 1003, &[7, 2002]), DriverName::Sample));
        assert!(c.may_call(&peer(1004, 2002, &[]), DriverName::Sample));
        if rustix::process::geteuid().as_raw() == 0 {
            assert!(!c.may_call(&peer(1005, 1005, &[]), DriverName::Sample));
            assert!(!c.is_admin(&peer(1001, 1001, &[])));
        }
        assert!(c.may_call(&peer(1005, 1005, &[]), DriverName::Pgp));
        assert!(c.is_admin(&peer(1006, 1006, &[4242])));
    }

    #[test]
    fn names_resolve_through_nss() {
        assert_eq!(resolve_user("root"), Ok(0));
        assert_eq!(resolve_group("root"), Ok(0));
        assert_eq!(resolve_user("4711"), Ok(4711));
    }

    #[test]
    fn bad_configs_are_refused_with_the_reason() {
        for (text, want) in [
            ("bogus = 1", "unknown field"),
            ("[drivers.sample]\nusers = [\"no-such-user-umd\"]", "no such user"),
            ("admin_group = \"no-such-group-umd\"", "no such group"),
            ("[limits]\nmax_request_bytes = 0", "at least 1"),
            ("[limits]\nmax_request_bytes = 999999999999", "at most"),
            ("[drivers.pgp]\npool_size = 0", "pool_size"),
            ("[drivers.nfs]\neveryone = true", "unknown field"),
            ("[limits", "TOML"),
        ] {
            let e = Config::parse(text).unwrap_err().to_string();
            assert!(e.contains(want) || (want == "TOML" && !e.is_empty()), "{text}: {e}");
        }
    }
}
