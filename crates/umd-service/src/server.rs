//! The service: a Unix socket listener, one thread per connection, the hosted
//! drivers, peer checks, limits, SIGHUP reload and SIGTERM drain.
//!
//! Why threads and not an async runtime: every driver call blocks (a handler
//! exchange under a deadline), connections are bounded (`limits.max_connections`,
//! 256 by default), and a thread per connection keeps each client's state on its
//! own stack where a stalled or hostile client can only hold its own thread,
//! bounded by the idle and frame deadlines. Readiness is waited for with `poll(2)`
//! (rustix), never with a blocking read, so every wait has a deadline and wakes
//! on shutdown.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use umd_wire::chan::{self, ChanError, Endpoint};

use crate::config::{Config, ConfigError, Peer};
use crate::drivers::{self, Hosts};
use crate::proto::{
    self, CtlRequest, DriverName, ErrorKind, FrameError, Header, Kind, Request, Response, ServiceError,
    ServiceStats, ServiceStatus, HEADER_LEN,
};

/// Default socket path.
pub const DEFAULT_SOCKET: &str = "/run/umd/umd.sock";

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The configuration was refused.
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    /// The socket could not be set up.
    #[error("socket {path}: {source}")]
    Socket {
        /// The socket path.
        path: PathBuf,
        /// Cause.
        source: io::Error,
    },
    /// Another service answers on the socket already.
    #[error("socket {0}: another service is listening there")]
    InUse(PathBuf),
    /// Socket activation was malformed.
    #[error("socket activation: {0}")]
    Activation(String),
    /// Setting up signal handling failed.
    #[error("signals: {0}")]
    Signals(io::Error),
}

/// Where the service listens.
#[derive(Clone, Debug)]
pub enum Listen {
    /// Bind this path (removing a stale socket left there).
    Path(PathBuf),
    /// A listening socket passed by systemd (`LISTEN_FDS`).
    Activated(Arc<OwnedFd>),
}

/// How to run the service.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Where to listen.
    pub listen: Listen,
    /// The configuration file.
    pub config_path: PathBuf,
    /// When the file is missing: use the built-in default (root only) if false,
    /// refuse to start if true (the file was named explicitly).
    pub config_required: bool,
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    refused: AtomicU64,
    requests: AtomicU64,
    denied: AtomicU64,
    busy: AtomicU64,
    bad_frames: AtomicU64,
    timeouts: AtomicU64,
    reloads: AtomicU64,
    reload_errors: AtomicU64,
}

#[derive(Default)]
struct UidUse {
    connections: usize,
    in_flight: usize,
}

#[derive(Default)]
struct Clients {
    total: usize,
    by_uid: HashMap<u32, UidUse>,
}

/// Bytes of request bodies held, in total and per uid.
#[derive(Default)]
struct Memory {
    total: usize,
    by_uid: HashMap<u32, usize>,
}

/// What every connection thread shares.
struct Shared {
    config: RwLock<Arc<Config>>,
    config_path: PathBuf,
    generation: AtomicU64,
    hosts: Hosts,
    clients: Mutex<Clients>,
    clients_cond: Condvar,
    memory: Mutex<Memory>,
    memory_cond: Condvar,
    shutting_down: AtomicBool,
    /// Read end of a pipe whose write end is closed at shutdown: it then polls
    /// readable for everyone waiting on it.
    shutdown_rx: OwnedFd,
    shutdown_tx: Mutex<Option<OwnedFd>>,
    counters: Counters,
    started: Instant,
    /// Run on every reload (SIGHUP), after the configuration's, whether or not
    /// it was accepted: whatever else the process hosts reloads too (the exec
    /// guard's digest list).
    reload_hooks: Mutex<Vec<ReloadHook>>,
}

type ReloadHook = Box<dyn Fn() + Send + Sync>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn config(&self) -> Arc<Config> {
        self.config.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn shut_down(&self) {
        if !self.shutting_down.swap(true, Relaxed) {
            tracing::info!("shutting down: no new connections; in-flight requests finish");
        }
        lock(&self.shutdown_tx).take();
    }

    /// Reads the file again; replaces the configuration only if all of it is good.
    fn reload(&self) {
        self.counters.reloads.fetch_add(1, Relaxed);
        match load_config(&self.config_path, true) {
            Ok(c) => {
                let old = self.hosts.reconfigure(&c);
                *self.config.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(c);
                let generation = self.generation.fetch_add(1, Relaxed) + 1;
                tracing::info!(path = %self.config_path.display(), generation, rebuilt = old.len(), "configuration reloaded");
                drivers::retire(old);
            }
            Err(e) => {
                self.counters.reload_errors.fetch_add(1, Relaxed);
                tracing::error!(error = %e, "configuration rejected; the previous one stays in force");
            }
        }
        for hook in lock(&self.reload_hooks).iter() {
            hook();
        }
    }
}

fn load_config(path: &Path, required: bool) -> Result<Config, ConfigError> {
    match Config::load(path) {
        Err(ConfigError::Read { source, .. }) if !required && source.kind() == io::ErrorKind::NotFound => {
            tracing::warn!(path = %path.display(), "no configuration file: only root may use the service");
            Ok(Config::default())
        }
        other => other,
    }
}

/// A bound, configured service, not yet serving.
pub struct Server {
    listener: UnixListener,
    bound: Option<PathBuf>,
    shared: Arc<Shared>,
}

/// Binds `path`: a socket file left by a dead service is replaced; a live one is
/// an error. The socket is made connectable by everyone (mode 0666): who may do
/// what is decided by the peer's credentials, per request.
fn bind(path: &Path) -> Result<UnixListener, ServeError> {
    let err = |source| ServeError::Socket { path: path.into(), source };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) => {
            use std::os::unix::fs::FileTypeExt;
            if !m.file_type().is_socket() {
                return Err(err(io::Error::new(io::ErrorKind::AlreadyExists, "exists and is not a socket")));
            }
            if UnixStream::connect(path).is_ok() {
                return Err(ServeError::InUse(path.into()));
            }
            std::fs::remove_file(path).map_err(err)?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    let l = UnixListener::bind(path).map_err(err)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666)).map_err(err)?;
    Ok(l)
}

impl Server {
    /// Reads the configuration and binds the socket (or takes the activated one).
    pub fn new(opts: &ServeOptions) -> Result<Server, ServeError> {
        let config = load_config(&opts.config_path, opts.config_required)?;
        let (listener, bound) = match &opts.listen {
            Listen::Path(p) => (bind(p)?, Some(p.clone())),
            Listen::Activated(fd) => {
                let fd =
                    fd.as_fd().try_clone_to_owned().map_err(|e| ServeError::Activation(e.to_string()))?;
                (UnixListener::from(fd), None)
            }
        };
        listener
            .set_nonblocking(true)
            .map_err(|source| ServeError::Socket { path: bound.clone().unwrap_or_default(), source })?;
        let (rx, tx) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
            .map_err(|e| ServeError::Signals(e.into()))?;
        let hosts = Hosts::new(&config);
        let shared = Arc::new(Shared {
            config: RwLock::new(Arc::new(config)),
            config_path: opts.config_path.clone(),
            generation: AtomicU64::new(1),
            hosts,
            clients: Mutex::new(Clients::default()),
            clients_cond: Condvar::new(),
            memory: Mutex::new(Memory::default()),
            memory_cond: Condvar::new(),
            shutting_down: AtomicBool::new(false),
            shutdown_rx: rx,
            shutdown_tx: Mutex::new(Some(tx)),
            counters: Counters::default(),
            started: Instant::now(),
            reload_hooks: Mutex::new(Vec::new()),
        });
        Ok(Server { listener, bound, shared })
    }

    /// Runs `hook` on every reload (SIGHUP or [`ServerHandle::reload`]), after
    /// the configuration's own, whether or not that was accepted.
    pub fn on_reload(&self, hook: impl Fn() + Send + Sync + 'static) {
        lock(&self.shared.reload_hooks).push(Box::new(hook));
    }

    /// A handle that stops the service (as SIGTERM does) or reloads it (SIGHUP).
    pub fn handle(&self) -> ServerHandle {
        ServerHandle(self.shared.clone())
    }

    /// Serves until SIGTERM/SIGINT (or [`ServerHandle::shut_down`]), then drains:
    /// in-flight requests get `limits.drain_timeout_ms` to finish, then every
    /// driver is unloaded (its handlers killed and reaped).
    pub fn run(self, signals: bool) -> Result<(), ServeError> {
        let signal_thread = if signals { Some(spawn_signal_thread(self.handle())?) } else { None };
        tracing::info!(
            socket = %self.bound.as_deref().map(|p| p.display().to_string()).unwrap_or_else(|| "(activated)".into()),
            pid = std::process::id(),
            "umd service ready"
        );
        self.accept_loop();
        // Drain.
        drop(self.listener);
        if let Some(p) = &self.bound {
            let _ = std::fs::remove_file(p);
        }
        let deadline = Instant::now() + self.shared.config().limits.drain_timeout();
        let mut clients = lock(&self.shared.clients);
        while clients.total > 0 {
            let now = Instant::now();
            if now >= deadline {
                tracing::warn!(
                    connections = clients.total,
                    "drain deadline passed; unloading drivers anyway"
                );
                break;
            }
            clients = self
                .shared
                .clients_cond
                .wait_timeout(clients, deadline - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        drop(clients);
        self.shared.hosts.unload_all();
        tracing::info!("umd service stopped; every handler reaped");
        if let Some(h) = signal_thread {
            h.close();
        }
        Ok(())
    }

    fn accept_loop(&self) {
        let sh = &self.shared;
        loop {
            let mut fds =
                [PollFd::new(&self.listener, PollFlags::IN), PollFd::new(&sh.shutdown_rx, PollFlags::IN)];
            match poll(&mut fds, None) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => {
                    tracing::error!("poll on the listening socket: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            }
            if sh.shutting_down.load(Relaxed) || !fds[1].revents().is_empty() {
                return;
            }
            let stream = match self.listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted => {
                    continue
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::error!("accept: {e}");
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            };
            self.admit(stream);
        }
    }

    fn admit(&self, stream: UnixStream) {
        let sh = &self.shared;
        // Every read and write on a connection is bounded by a deadline
        // (`umd_wire::chan`): the socket must never block.
        if let Err(e) = stream.set_nonblocking(true) {
            tracing::warn!("making a connection non-blocking: {e}; connection dropped");
            return;
        }
        let peer = match peer_of(&stream) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!("peer credentials: {e}; connection dropped");
                return;
            }
        };
        let limits = sh.config().limits.clone();
        {
            let mut c = lock(&sh.clients);
            let mine = c.by_uid.get(&peer.uid).map_or(0, |u| u.connections);
            let refusal = if c.total >= limits.max_connections {
                Some("too many connections to the service; retry later")
            } else if mine >= limits.max_connections_per_uid {
                Some("too many connections from your user; retry later")
            } else {
                None
            };
            if let Some(message) = refusal {
                drop(c);
                sh.counters.refused.fetch_add(1, Relaxed);
                tracing::warn!(uid = peer.uid, pid = peer.pid, "connection refused: {message}");
                let err = ServiceError { kind: ErrorKind::Busy, message: message.into() };
                let _ = send_response(
                    &stream,
                    &Response::Error(err),
                    Instant::now() + Duration::from_millis(100),
                );
                return;
            }
            c.total += 1;
            c.by_uid.entry(peer.uid).or_default().connections += 1;
        }
        sh.counters.accepted.fetch_add(1, Relaxed);
        let shared = sh.clone();
        let uid = peer.uid;
        let spawned = std::thread::Builder::new().name("umd-conn".into()).spawn(move || {
            let _leave = Leave { shared: &shared, uid: peer.uid };
            Connection { shared: &shared, stream, peer }.serve();
        });
        if let Err(e) = spawned {
            tracing::error!("cannot start a connection thread: {e}");
            let mut c = lock(&sh.clients);
            c.total -= 1;
            if let Some(u) = c.by_uid.get_mut(&uid) {
                u.connections = u.connections.saturating_sub(1);
            }
        }
    }
}

/// Removes a connection from the table when its thread ends.
struct Leave<'a> {
    shared: &'a Shared,
    uid: u32,
}

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        let mut c = lock(&self.shared.clients);
        c.total -= 1;
        if let Some(u) = c.by_uid.get_mut(&self.uid) {
            u.connections -= 1;
            if u.connections == 0 && u.in_flight == 0 {
                c.by_uid.remove(&self.uid);
            }
        }
        drop(c);
        self.shared.clients_cond.notify_all();
    }
}

/// A handle on a running service.
#[derive(Clone)]
pub struct ServerHandle(Arc<Shared>);

impl ServerHandle {
    /// Starts the graceful shutdown (what SIGTERM does).
    pub fn shut_down(&self) {
        self.0.shut_down();
    }

    /// Reloads the configuration (what SIGHUP does).
    pub fn reload(&self) {
        self.0.reload();
    }
}

fn spawn_signal_thread(h: ServerHandle) -> Result<signal_hook::iterator::Handle, ServeError> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals =
        signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP]).map_err(ServeError::Signals)?;
    let handle = signals.handle();
    std::thread::Builder::new()
        .name("umd-signals".into())
        .spawn(move || {
            for s in signals.forever() {
                match s {
                    SIGHUP => {
                        tracing::info!("SIGHUP: reloading the configuration");
                        h.reload();
                    }
                    _ => {
                        tracing::info!(signal = s, "termination signal");
                        h.shut_down();
                    }
                }
            }
        })
        .map_err(ServeError::Signals)?;
    Ok(handle)
}

/// The peer's uid, gid and pid (`SO_PEERCRED`) and supplementary groups
/// (`SO_PEERGROUPS`), as they were when it connected.
pub fn peer_of(stream: &UnixStream) -> io::Result<Peer> {
    let cred = rustix::net::sockopt::socket_peercred(stream)?;
    Ok(Peer {
        pid: cred.pid.as_raw_nonzero().get(),
        uid: cred.uid.as_raw(),
        gid: cred.gid.as_raw(),
        groups: peer_groups(stream.as_fd())?,
    })
}

/// `getsockopt(SO_PEERGROUPS)` (Linux 4.13): rustix has no wrapper.
///
/// # References
/// - [`socket(7)`](https://man7.org/linux/man-pages/man7/socket.7.html)
fn peer_groups(fd: BorrowedFd<'_>) -> io::Result<Vec<u32>> {
    let mut groups = vec![0u32; 64];
    loop {
        let mut len = (groups.len() * 4) as libc::socklen_t;
        // SAFETY: `groups` is a valid, writable buffer of `len` bytes for the call;
        // the kernel writes at most `len` bytes and updates `len`.
        let rc = unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        if rc == 0 {
            groups.truncate(len as usize / 4);
            return Ok(groups);
        }
        let e = io::Error::last_os_error();
        // ERANGE: `len` now says how much is needed (NGROUPS_MAX is 65536).
        if e.raw_os_error() == Some(libc::ERANGE) && (len as usize / 4) > groups.len() && groups.len() < 65536
        {
            groups.resize((len as usize / 4).min(65536), 0);
            continue;
        }
        return Err(e);
    }
}

fn timespec(d: Duration) -> Timespec {
    Timespec { tv_sec: d.as_secs().min(i64::MAX as u64) as i64, tv_nsec: i64::from(d.subsec_nanos()) }
}

/// What waiting for a client's bytes gave.
enum Wait {
    Ready,
    Timeout,
    Shutdown,
}

fn wait_readable(
    fd: BorrowedFd<'_>,
    deadline: Instant,
    shutdown: Option<BorrowedFd<'_>>,
) -> io::Result<Wait> {
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Ok(Wait::Timeout);
        }
        let t = timespec(deadline - now);
        let mut fds = vec![PollFd::new(&fd, PollFlags::IN)];
        if let Some(s) = &shutdown {
            fds.push(PollFd::new(s, PollFlags::IN));
        }
        match poll(&mut fds, Some(&t)) {
            Ok(0) => continue,
            Ok(_) => {
                // Bytes waiting win over shutdown: a request that arrived is
                // read and answered (with "shutting down"), not dropped.
                if !fds[0].revents().is_empty() {
                    return Ok(Wait::Ready);
                }
                return Ok(Wait::Shutdown);
            }
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// The connection as a channel end of `umd_wire::chan` (a Unix stream socket:
/// sends use `MSG_NOSIGNAL`; the stream is non-blocking, every wait is a
/// `poll` bounded by the deadline).
fn endpoint(stream: &UnixStream) -> Endpoint<'_> {
    Endpoint { rx: stream.as_fd(), tx: stream.as_fd(), socket: true }
}

/// A channel error as the connection reports it (`TimedOut` is counted as a
/// stalled client).
fn chan_error(e: ChanError, timeout: &'static str) -> io::Error {
    match e {
        ChanError::Timeout => io::Error::new(io::ErrorKind::TimedOut, timeout),
        ChanError::Eof { .. } => io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed mid-frame"),
        ChanError::Io { source, .. } => source,
        e => io::Error::other(e.to_string()),
    }
}

/// Reads exactly `buf.len()` bytes by `deadline` (`chan::read_exact`: reads
/// first and polls only when nothing is there, so the usual request arrives
/// in one `recvmsg` for the header and one for the body). `Ok(false)`: end of
/// file before the first byte. Descriptors a client passes are closed.
fn read_exact(stream: &UnixStream, buf: &mut [u8], deadline: Instant) -> io::Result<bool> {
    let mut fds = Vec::new();
    match chan::read_exact(endpoint(stream), buf, &mut fds, Some(deadline)) {
        Ok(()) => Ok(true),
        Err(ChanError::Eof { got: 0, .. }) => Ok(false),
        Err(e) => Err(chan_error(e, "frame not complete by its deadline")),
    }
}

/// Reads a body of `len` bytes by `deadline` into a buffer that grows as the
/// bytes arrive ([`chan::grown`]), never from the announced length alone: a
/// client that announces a large frame and stalls holds its reservation, not
/// the memory.
fn read_body(stream: &UnixStream, len: usize, deadline: Instant) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    while body.len() < len {
        let have = body.len();
        let target = chan::grown(have, len);
        body.try_reserve_exact(target - have).map_err(|_| io::Error::from(io::ErrorKind::OutOfMemory))?;
        body.resize(target, 0);
        if !read_exact(stream, &mut body[have..], deadline)? {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed mid-frame"));
        }
    }
    Ok(body)
}

fn write_all(stream: &UnixStream, buf: &[u8], deadline: Instant) -> io::Result<()> {
    chan::write_all(endpoint(stream), &[buf], None, Some(deadline))
        .map_err(|e| chan_error(e, "client does not read its reply"))
}

fn send_response(stream: &UnixStream, r: &Response, deadline: Instant) -> io::Result<()> {
    let frame = proto::encode(Kind::Response, r).map_err(|e| io::Error::other(e.to_string()))?;
    write_all(stream, &frame, deadline)
}

/// Bytes of request bodies held, all connections together.
struct Reservation<'a> {
    shared: &'a Shared,
    uid: u32,
    bytes: usize,
}

impl Reservation<'_> {
    /// Takes `n` more bytes of the budgets, now or never (decoding does not
    /// wait for memory while it holds a body): `Err` with the reason when the
    /// uid's or the service's budget cannot give them.
    fn grow(&mut self, n: usize, limits: &crate::config::Limits) -> Result<(), String> {
        let mut m = lock(&self.shared.memory);
        let mine = m.by_uid.get(&self.uid).copied().unwrap_or(0);
        if mine.saturating_add(n) > limits.request_memory_per_uid {
            return Err("your user's request memory is in use; retry later".into());
        }
        if m.total.saturating_add(n) > limits.request_memory_bytes {
            return Err("the service's request memory is in use; retry later".into());
        }
        m.total += n;
        *m.by_uid.entry(self.uid).or_default() += n;
        self.bytes += n;
        Ok(())
    }

    /// Gives `n` bytes back (a body that was decoded and freed).
    fn shrink(&mut self, n: usize) {
        let n = n.min(self.bytes);
        let mut m = lock(&self.shared.memory);
        m.total -= n;
        if let Some(u) = m.by_uid.get_mut(&self.uid) {
            *u -= n;
        }
        self.bytes -= n;
        drop(m);
        self.shared.memory_cond.notify_all();
    }
}

/// What decoding a request allocates, charged to the request's own bound and
/// to the reservation its body came from (in steps, to take the lock rarely).
struct DecodeCharge<'r, 'a> {
    bound: umd_wire::decode::Budget,
    reservation: &'r mut Reservation<'a>,
    limits: &'r crate::config::Limits,
    /// Bytes of the reservation taken for the decoded value so far.
    granted: usize,
    /// Why the budgets said no, if they did (then the client is told "busy").
    busy: Option<String>,
}

/// The least a decoding request takes from the budgets at a time.
const DECODE_GRANT_STEP: usize = 64 << 10;

impl umd_wire::decode::Charge for DecodeCharge<'_, '_> {
    fn charge(&mut self, bytes: usize) -> Result<(), String> {
        self.bound.charge(bytes)?;
        if self.bound.used > self.granted {
            let needed = self.bound.used - self.granted;
            let step = needed.max(DECODE_GRANT_STEP);
            let got = match self.reservation.grow(step, self.limits) {
                Ok(()) => Ok(step),
                Err(_) if step > needed => self.reservation.grow(needed, self.limits).map(|()| needed),
                Err(e) => Err(e),
            };
            match got {
                Ok(n) => self.granted += n,
                Err(e) => {
                    self.busy = Some(e.clone());
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        let mut m = lock(&self.shared.memory);
        m.total -= self.bytes;
        if let Some(u) = m.by_uid.get_mut(&self.uid) {
            *u -= self.bytes;
            if *u == 0 {
                m.by_uid.remove(&self.uid);
            }
        }
        drop(m);
        self.shared.memory_cond.notify_all();
    }
}

/// One of a uid's in-flight requests.
struct InFlight<'a> {
    shared: &'a Shared,
    uid: u32,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut c = lock(&self.shared.clients);
        if let Some(u) = c.by_uid.get_mut(&self.uid) {
            u.in_flight -= 1;
        }
        drop(c);
        self.shared.clients_cond.notify_all();
    }
}

struct Connection<'a> {
    shared: &'a Shared,
    stream: UnixStream,
    peer: Peer,
}

fn busy(message: impl Into<String>) -> ServiceError {
    ServiceError { kind: ErrorKind::Busy, message: message.into() }
}

impl Connection<'_> {
    fn serve(self) {
        let sh = self.shared;
        tracing::debug!(uid = self.peer.uid, pid = self.peer.pid, "client connected");
        loop {
            let limits = sh.config().limits.clone();
            // Idle: wait for the next request, or shutdown.
            match wait_readable(
                self.stream.as_fd(),
                Instant::now() + limits.idle_timeout(),
                Some(sh.shutdown_rx.as_fd()),
            ) {
                Ok(Wait::Ready) => {}
                Ok(Wait::Timeout) => {
                    sh.counters.timeouts.fetch_add(1, Relaxed);
                    tracing::info!(uid = self.peer.uid, pid = self.peer.pid, "idle connection closed");
                    return;
                }
                Ok(Wait::Shutdown) => return,
                Err(e) => {
                    tracing::debug!(uid = self.peer.uid, "connection: {e}");
                    return;
                }
            }
            let deadline = Instant::now() + limits.frame_timeout();
            let mut header = [0u8; HEADER_LEN];
            // A request whose header arrived before SIGTERM is in flight: it is
            // served during the drain; later ones are refused.
            let in_flight_at_shutdown = match read_exact(&self.stream, &mut header, deadline) {
                Ok(true) => !sh.shutting_down.load(Relaxed),
                Ok(false) => return,
                Err(e) => {
                    self.dropped(&e);
                    return;
                }
            };
            let h = match Header::parse(&header, Kind::Request, limits.max_request_bytes) {
                Ok(h) => h,
                Err(e) => {
                    // Nothing after a bad header can be trusted to be a frame:
                    // answer once and close.
                    let kind = if matches!(e, FrameError::TooLarge { .. }) {
                        ErrorKind::TooLarge
                    } else {
                        ErrorKind::BadRequest
                    };
                    self.refuse_frame(kind, e.to_string(), deadline);
                    return;
                }
            };
            let mut reservation = match self.reserve(h.len, &limits) {
                Ok(r) => r,
                Err(e) => {
                    sh.counters.busy.fetch_add(1, Relaxed);
                    tracing::info!(uid = self.peer.uid, pid = self.peer.pid, len = h.len, "{}", e.message);
                    let _ = send_response(&self.stream, &Response::Error(e), deadline);
                    return;
                }
            };
            let body = match read_body(&self.stream, h.len, deadline) {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::OutOfMemory => {
                    let _ = send_response(&self.stream, &Response::Error(busy("out of memory")), deadline);
                    return;
                }
                Err(e) => {
                    self.dropped(&e);
                    return;
                }
            };
            // What decoding allocates is charged as it goes: to the request's
            // own bound (proto::max_decoded) and to the memory budgets the
            // body was reserved from, so a small body cannot decode into
            // hundreds of megabytes.
            let mut charge = DecodeCharge {
                bound: umd_wire::decode::Budget::new(proto::max_decoded(h.len)),
                reservation: &mut reservation,
                limits: &limits,
                granted: 0,
                busy: None,
            };
            let decoded = proto::decode_charging::<Request>(&body, &mut charge);
            let busy_reason = charge.busy.take();
            let request: Request = match decoded {
                Ok(r) => r,
                Err(e) => {
                    if let Some(message) = busy_reason {
                        sh.counters.busy.fetch_add(1, Relaxed);
                        tracing::info!(uid = self.peer.uid, pid = self.peer.pid, len = h.len, "{message}");
                        let _ = send_response(&self.stream, &Response::Error(busy(message)), deadline);
                        return;
                    }
                    let kind = if matches!(e, FrameError::Costly(_)) {
                        ErrorKind::TooLarge
                    } else {
                        ErrorKind::BadRequest
                    };
                    let message = match e {
                        FrameError::Costly(_) => format!(
                            "{e} (a request may take at most three times its body and 16 MiB once decoded)"
                        ),
                        e => e.to_string(),
                    };
                    self.refuse_frame(kind, message, deadline);
                    return;
                }
            };
            drop(body);
            reservation.shrink(h.len);
            let _reservation = reservation;
            sh.counters.requests.fetch_add(1, Relaxed);
            let response = self.handle(request, &limits, in_flight_at_shutdown);
            drop(_reservation);
            if let Response::Error(e) = &response {
                match e.kind {
                    ErrorKind::Busy => sh.counters.busy.fetch_add(1, Relaxed),
                    ErrorKind::Denied => sh.counters.denied.fetch_add(1, Relaxed),
                    _ => 0,
                };
            }
            if let Err(e) = send_response(&self.stream, &response, Instant::now() + limits.frame_timeout()) {
                self.dropped(&e);
                return;
            }
            if sh.shutting_down.load(Relaxed) {
                if in_flight_at_shutdown {
                    tracing::info!(
                        uid = self.peer.uid,
                        pid = self.peer.pid,
                        "request in flight at shutdown answered"
                    );
                }
                return;
            }
        }
    }

    fn dropped(&self, e: &io::Error) {
        if e.kind() == io::ErrorKind::TimedOut {
            self.shared.counters.timeouts.fetch_add(1, Relaxed);
        }
        tracing::info!(uid = self.peer.uid, pid = self.peer.pid, "connection dropped: {e}");
    }

    fn refuse_frame(&self, kind: ErrorKind, message: String, deadline: Instant) {
        self.shared.counters.bad_frames.fetch_add(1, Relaxed);
        tracing::info!(uid = self.peer.uid, pid = self.peer.pid, "bad frame: {message}; connection closed");
        let _ = send_response(&self.stream, &Response::Error(ServiceError { kind, message }), deadline);
    }

    /// Reserves `len` bytes of the request memory budgets (the service's and
    /// the peer's uid's), waiting up to the queue timeout. Done before the body
    /// is read: what a client announces, it must be granted first.
    fn reserve(&self, len: usize, limits: &crate::config::Limits) -> Result<Reservation<'_>, ServiceError> {
        let sh = self.shared;
        let uid = self.peer.uid;
        let deadline = Instant::now() + limits.queue_timeout();
        let mut m = lock(&sh.memory);
        loop {
            let mine = m.by_uid.get(&uid).copied().unwrap_or(0);
            let over_mine = mine + len > limits.request_memory_per_uid;
            let over_all = m.total + len > limits.request_memory_bytes;
            if !over_mine && !over_all {
                break;
            }
            let now = Instant::now();
            if now >= deadline {
                let whose = if over_mine { "your user's" } else { "the service's" };
                return Err(busy(format!("{whose} request memory is in use; retry later")));
            }
            m = sh
                .memory_cond
                .wait_timeout(m, deadline - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        m.total += len;
        *m.by_uid.entry(uid).or_default() += len;
        Ok(Reservation { shared: sh, uid, bytes: len })
    }

    fn in_flight(&self, limits: &crate::config::Limits) -> Result<InFlight<'_>, ServiceError> {
        let sh = self.shared;
        let deadline = Instant::now() + limits.queue_timeout();
        let mut c = lock(&sh.clients);
        loop {
            let u = c.by_uid.entry(self.peer.uid).or_default();
            if u.in_flight < limits.max_in_flight_per_uid {
                u.in_flight += 1;
                return Ok(InFlight { shared: sh, uid: self.peer.uid });
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(busy(format!(
                    "{} requests of your user are in flight already; retry later",
                    limits.max_in_flight_per_uid
                )));
            }
            c = sh
                .clients_cond
                .wait_timeout(c, deadline - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    fn denied(&self, what: &str) -> Response {
        tracing::warn!(uid = self.peer.uid, gid = self.peer.gid, pid = self.peer.pid, what, "request denied");
        Response::Error(ServiceError { kind: ErrorKind::Denied, message: "permission denied".into() })
    }

    fn handle(&self, request: Request, limits: &crate::config::Limits, admitted: bool) -> Response {
        let sh = self.shared;
        let config = sh.config();
        if !admitted && !matches!(request, Request::Ctl(_)) {
            return Response::Error(ServiceError {
                kind: ErrorKind::ShuttingDown,
                message: "the service is shutting down".into(),
            });
        }
        let result = match request {
            Request::Sample { offset } => {
                if !config.may_call(&self.peer, DriverName::Sample) {
                    return self.denied("sample");
                }
                self.in_flight(limits).and_then(|_g| {
                    sh.hosts
                        .sample()
                        .request(offset, limits.max_queued_per_driver)
                        .map(|latency_ns| Response::Sample { latency_ns })
                })
            }
            Request::Verify(v) => {
                if !config.may_call(&self.peer, DriverName::Pgp) {
                    return self.denied("pgp");
                }
                self.in_flight(limits).and_then(|_g| {
                    sh.hosts.pgp().verify(&v, limits.max_queued_per_driver).map(Response::Verify)
                })
            }
            Request::VerifyRef(v) => {
                if !config.may_call(&self.peer, DriverName::Pgp) {
                    return self.denied("pgp");
                }
                self.in_flight(limits).and_then(|_g| {
                    sh.hosts
                        .pgp()
                        .verify_ref(self.peer.uid, &v, limits.max_queued_per_driver)
                        .map(Response::Verify)
                })
            }
            Request::Ctl(op) => {
                if !config.is_admin(&self.peer) {
                    return self.denied("ctl");
                }
                Ok(self.control(op))
            }
        };
        result.unwrap_or_else(Response::Error)
    }

    fn control(&self, op: CtlRequest) -> Response {
        let sh = self.shared;
        match op {
            CtlRequest::Status => Response::Status(ServiceStatus {
                version: env!("CARGO_PKG_VERSION").into(),
                pid: std::process::id(),
                uptime_s: sh.started.elapsed().as_secs(),
                connections: lock(&sh.clients).total as u32,
                config_generation: sh.generation.load(Relaxed),
                drivers: sh.hosts.status(),
            }),
            CtlRequest::Load(d) => {
                tracing::info!(driver = %d, uid = self.peer.uid, "ctl load");
                match sh.hosts.load(d) {
                    Ok(already) => Response::Loaded { driver: d, already },
                    Err(e) => Response::Error(e),
                }
            }
            CtlRequest::Unload(d) => {
                tracing::info!(driver = %d, uid = self.peer.uid, "ctl unload");
                Response::Unloaded { driver: d, was_loaded: sh.hosts.unload(d) }
            }
            CtlRequest::Stats => {
                let c = &sh.counters;
                Response::Stats(ServiceStats {
                    accepted: c.accepted.load(Relaxed),
                    refused: c.refused.load(Relaxed),
                    requests: c.requests.load(Relaxed),
                    denied: c.denied.load(Relaxed),
                    busy: c.busy.load(Relaxed),
                    bad_frames: c.bad_frames.load(Relaxed),
                    timeouts: c.timeouts.load(Relaxed),
                    reloads: c.reloads.load(Relaxed),
                    reload_errors: c.reload_errors.load(Relaxed),
                    drivers: sh.hosts.stats(),
                })
            }
        }
    }
}
