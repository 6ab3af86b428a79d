//! The systemd units (`umd.socket`, `umd.service`) and `umd install-units`.
//!
//! The service needs, and the units keep: root's `CAP_SETUID`/`CAP_SETGID` (a
//! handler runs as uid 61874 with no groups), `CAP_SETPCAP` (it empties the
//! handler's bounding set), `CAP_KILL` (killing a handler of another uid), the
//! system calls of spawning (`clone`, `clone3`, `execveat` on a memfd, `pidfd_*`,
//! `seccomp`, `landlock_*`, `prctl`, `setrlimit`) and user, PID, mount, IPC, UTS
//! and network namespaces (layers a driver's policy can turn on). Everything
//! else is taken away. `MemoryDenyWriteExecute=` is left off: it is inherited by
//! the handlers as a second seccomp filter and is not part of what was measured
//! for them; `ProtectProc=invisible` is left off because the manager checks each
//! handler's confinement in `/proc/PID/status`, and a handler runs as another uid.

use std::io;
use std::path::{Path, PathBuf};

/// `umd.socket`.
pub const SOCKET_UNIT: &str = "\
[Unit]
Description=umd user mode driver service (socket)
Documentation=https://example.invalid/umd/docs/service.md

[Socket]
ListenStream=/run/umd/umd.sock
# Everyone may connect; what each peer may do is decided per request from its
# SO_PEERCRED credentials and /etc/umd/umd.toml.
SocketMode=0666
DirectoryMode=0755
Accept=no

[Install]
WantedBy=sockets.target
";

/// `umd.service`; `@BIN@` and `@CONFIG@` are replaced at installation.
pub const SERVICE_UNIT_TEMPLATE: &str = "\
[Unit]
Description=umd user mode driver service
Documentation=https://example.invalid/umd/docs/service.md
Requires=umd.socket
After=umd.socket

[Service]
Type=simple
ExecStart=@BIN@ serve --config @CONFIG@
ExecReload=/bin/kill -HUP $MAINPID
# SIGTERM drains in-flight requests (limits.drain_timeout_ms) and reaps every
# handler; handlers also die with the service (PR_SET_PDEATHSIG).
KillMode=mixed
TimeoutStopSec=30
Restart=on-failure
Environment=RUST_LOG=info

# Privileges the service needs to confine handlers, and no others.
User=root
CapabilityBoundingSet=CAP_SETUID CAP_SETGID CAP_SETPCAP CAP_KILL
AmbientCapabilities=
NoNewPrivileges=yes

# File system: read-only everywhere; the socket comes from umd.socket.
ProtectSystem=strict
# Except /var/lib/umd: the hosted guard's state (--guard-state) lives there.
StateDirectory=umd
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
UMask=0077

# Network: Unix sockets only (the handlers get none).
PrivateNetwork=yes
RestrictAddressFamilies=AF_UNIX
IPAddressDeny=any

# Namespaces a driver's policy may turn on for its handlers.
RestrictNamespaces=user pid mnt ipc uts net
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=clone clone3 execveat memfd_create pidfd_open pidfd_send_signal seccomp prctl setrlimit prlimit64 landlock_create_ruleset landlock_add_rule landlock_restrict_self
SystemCallErrorNumber=EPERM

LimitNOFILE=8192
TasksMax=2048
";

/// A configuration to start from: only root and members of `umd-admin`... none
/// by default; see `docs/service.md` for every key.
pub const EXAMPLE_CONFIG: &str = "\
# umd service configuration (see docs/service.md). Reload with SIGHUP
# (systemctl reload umd): a file with an error is refused and the old one stays.

# Members of this group may use `umd ctl` (root always may).
# admin_group = \"umd-admin\"

[drivers.sample]
# users = [\"alice\", \"1001\"]
# groups = [\"umd\"]
everyone = false
pool_size = 2
timeout_ms = 5000

[drivers.pgp]
everyone = false
pool_size = 2
timeout_ms = 10000

[limits]
max_connections = 256
max_connections_per_uid = 32
max_in_flight_per_uid = 8
max_queued_per_driver = 64
max_request_bytes = 8388608
request_memory_bytes = 67108864
request_memory_per_uid = 25165824
idle_timeout_ms = 60000
frame_timeout_ms = 10000
queue_timeout_ms = 10000
drain_timeout_ms = 10000
";

/// The service unit for `bin` and `config`.
pub fn service_unit(bin: &Path, config: &Path) -> String {
    SERVICE_UNIT_TEMPLATE
        .replace("@BIN@", &bin.display().to_string())
        .replace("@CONFIG@", &config.display().to_string())
}

/// What `install` wrote.
#[derive(Debug)]
pub struct Installed {
    /// Files written.
    pub written: Vec<PathBuf>,
    /// Files left alone because they exist (the configuration).
    pub kept: Vec<PathBuf>,
}

/// Writes `umd.service` and `umd.socket` into `unit_dir`, and the example
/// configuration to `config` unless a file is there already.
pub fn install(unit_dir: &Path, bin: &Path, config: &Path) -> io::Result<Installed> {
    let ctx = |p: &Path, e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", p.display()));
    std::fs::create_dir_all(unit_dir).map_err(|e| ctx(unit_dir, e))?;
    let mut written = Vec::new();
    let mut kept = Vec::new();
    for (name, text) in [("umd.socket", SOCKET_UNIT.to_string()), ("umd.service", service_unit(bin, config))]
    {
        let p = unit_dir.join(name);
        std::fs::write(&p, text).map_err(|e| ctx(&p, e))?;
        written.push(p);
    }
    if config.exists() {
        kept.push(config.into());
    } else {
        if let Some(dir) = config.parent() {
            std::fs::create_dir_all(dir).map_err(|e| ctx(dir, e))?;
        }
        std::fs::write(config, EXAMPLE_CONFIG).map_err(|e| ctx(config, e))?;
        written.push(config.into());
    }
    Ok(Installed { written, kept })
}

#[cfg(test)]
mod tests {
    #[test]
    fn example_config_parses() {
        crate::config::Config::parse(super::EXAMPLE_CONFIG).unwrap();
    }
}
