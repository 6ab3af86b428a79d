//! The **manager**: the front end of a driver. It is the only part callers talk to.
//!
//! A [`Driver`] makes sure a handler is running, forwards a request, checks and
//! returns the reply — the kernel's `umd_mgmt_send_recv`, with these semantics:
//!
//! * no program loaded → ask the registered provider (the `request_module`
//!   analogue) with the driver lock released; if none can provide:
//!   [`Error::NotAvailable`];
//! * an idle handler that died or wrote out of turn → shut down and restarted;
//! * every start (first load, restart, pool member) runs `post_start` before the
//!   handler serves anyone; a failure kills it;
//! * an idle handler is checked before each request (one `poll(2)` on its pidfd
//!   and its channel): one that exited, closed its channel or wrote out of turn
//!   is reaped and replaced by a fresh one, and the request goes to that one;
//! * a channel error, missed deadline or rejected reply → the handler is shut down
//!   and the next call starts a fresh one;
//! * a handler that dies of its own accord under a request (a crash, an exit, a
//!   SIGKILL the manager did not send) → on an idempotent driver
//!   ([`DriverBuilder::idempotent`]) the request is sent once more to a fresh
//!   handler; a second death, a seccomp violation, a deadline or a rejected reply
//!   is the caller's error ([`Error::retryable`], [`Error::delivered`] tell what
//!   it may do);
//! * a pool of up to `pool_size` handlers serves concurrent callers; with 1 (the
//!   default) calls are serialized as in the kernel.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use umd_wire::chan::ChanError;

use crate::error::{BoxError, Error, HandlerFate, SessionError, StartError};
use crate::exchange::{CallError, FramedConfig, Handler, Request, Wire};
use crate::loader::{self, Program, ProgramKind, SpawnSpec, Transport};
use crate::sandbox::{Policy, PolicySummary, Prepared};
use crate::stats::{Counters, Stats};

/// Default deadline of one request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default deadline for starting a handler and running `post_start`.
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a handler whose channel broke may take to exit by itself before it is
/// killed (so its real fate — a crash, an exit status — is what gets reported).
const EXIT_GRACE: Duration = Duration::from_millis(50);
/// The same, when the handler closed its end of the channel: it is almost
/// certainly dying (its fds are closed on the way out), and a death seen as
/// such, not as "killed by the manager", is what lets an idempotent driver
/// retry. Waited for on the pidfd: an exit ends the wait at once.
const CLOSED_GRACE: Duration = Duration::from_millis(500);

/// The `post_start` hook: a real exchange with a freshly started handler that must
/// succeed before the handler serves anyone. Its error is kept whole in
/// [`StartError::PostStart`].
pub type PostStart = Arc<dyn Fn(&mut Session<'_>) -> Result<(), BoxError> + Send + Sync>;

/// The on-demand loader (the kernel's `request_module`): given the driver, returns
/// its program, or why it cannot be provided. It runs with the driver lock
/// released and may instead call [`Driver::load`] on the driver itself, as the
/// kernel's loader module calls `umd_mgmt_load` from its init.
pub type Provider = Arc<dyn Fn(&Driver) -> Result<Program, String> + Send + Sync>;

/// A started handler during `post_start`.
pub struct Session<'a> {
    handler: &'a mut Handler,
    wire: &'a Wire,
    deadline: Instant,
}

impl Session<'_> {
    /// Sends `req` to this handler and passes the reply to `check`; the
    /// check's error comes back whole in [`SessionError::BadReply`].
    pub fn call<T, E: Into<BoxError>>(
        &mut self,
        req: Request<'_>,
        check: impl FnOnce(&[u8]) -> Result<T, E>,
    ) -> Result<T, SessionError> {
        self.call_bounded(req, usize::MAX, check)
    }

    /// As [`Session::call`], refusing a reply larger than `max_reply` bytes
    /// before it is read (see [`Driver::call_bounded`]).
    pub fn call_bounded<T, E: Into<BoxError>>(
        &mut self,
        req: Request<'_>,
        max_reply: usize,
        check: impl FnOnce(&[u8]) -> Result<T, E>,
    ) -> Result<T, SessionError> {
        match self.handler.exchange(self.wire, req, max_reply, self.deadline) {
            Ok(reply) => check(reply.as_bytes()).map_err(|e| SessionError::BadReply(e.into())),
            Err(CallError::Chan(ChanError::Timeout) | CallError::Send(ChanError::Timeout)) => {
                Err(SessionError::Deadline)
            }
            Err(CallError::Chan(e) | CallError::Send(e)) => Err(SessionError::Channel(e)),
            Err(CallError::BadRequest(r)) => Err(SessionError::BadRequest(r)),
            Err(CallError::Handler(m)) => Err(SessionError::Handler(m)),
        }
    }

    /// The handler's process id.
    pub fn pid(&self) -> u32 {
        self.handler.process.pid()
    }
}

/// Settings of a driver. Build one with [`Driver::builder`].
#[derive(Clone, Debug)]
pub struct DriverConfig {
    /// Driver name, used in every message.
    pub name: Arc<str>,
    /// Wire mode.
    pub wire: Wire,
    /// Deadline of one request (write + wait + read).
    pub timeout: Duration,
    /// Deadline of a start's `post_start` exchange.
    pub start_timeout: Duration,
    /// Most handlers running at once.
    pub pool_size: usize,
    /// Arguments passed to the handler after `argv[0]`.
    pub args: Vec<String>,
    /// How handlers are confined.
    pub policy: Policy,
    /// Whether a request may be sent twice: see [`DriverBuilder::idempotent`].
    pub idempotent: bool,
}

/// Builds a [`Driver`].
pub struct DriverBuilder {
    config: DriverConfig,
    post_start: Option<PostStart>,
    provider: Option<Provider>,
}

impl DriverBuilder {
    /// Raw wire mode with fixed request and reply sizes.
    pub fn raw(mut self, sizes: umd_wire::RawSizes) -> Self {
        self.config.wire = Wire::Raw(sizes);
        self
    }

    /// Framed wire mode.
    pub fn framed(mut self, cfg: FramedConfig) -> Self {
        self.config.wire = Wire::Framed(cfg);
        self
    }

    /// Deadline of one request.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.config.timeout = t;
        self
    }

    /// Deadline of the `post_start` exchange of each start.
    pub fn start_timeout(mut self, t: Duration) -> Self {
        self.config.start_timeout = t;
        self
    }

    /// Most handlers running at once (at least 1).
    pub fn pool_size(mut self, n: usize) -> Self {
        self.config.pool_size = n.max(1);
        self
    }

    /// Arguments given to each handler after `argv[0]`.
    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Self {
        self.config.args = args.into_iter().map(Into::into).collect();
        self
    }

    /// Whether a request may be sent a second time (default: `false`).
    ///
    /// Set it for a driver whose requests are pure — the same request always
    /// gets the same answer and changes nothing, like the sample's offsets or a
    /// parser's descriptions. Then a request whose handler dies of its own
    /// accord while serving it (it crashed, exited, or was killed by a signal
    /// the manager did not send: an operator's or the OOM killer's SIGKILL) is
    /// sent once more, to a fresh handler, with a deadline of its own; only if
    /// that one fails too does the caller get the error, which then says it
    /// was retried. A seccomp violation, a missed deadline, a rejected reply or
    /// a broken wire format is never retried: the same request would likely do
    /// the same again. Retries are counted in [`Stats::retries`].
    ///
    /// Without it, such a failure is returned at once and
    /// [`Error::retryable`] tells the caller that a retry may succeed.
    pub fn idempotent(mut self, yes: bool) -> Self {
        self.config.idempotent = yes;
        self
    }

    /// How handlers are confined (default: [`Policy::default`], strict).
    pub fn policy(mut self, policy: Policy) -> Self {
        self.config.policy = policy;
        self
    }

    /// The check each started handler must pass before it serves. Its error is
    /// kept whole in [`Error::PostStart`] ([`StartError::PostStart`]).
    pub fn post_start<E: Into<BoxError>>(
        mut self,
        f: impl Fn(&mut Session<'_>) -> Result<(), E> + Send + Sync + 'static,
    ) -> Self {
        self.post_start = Some(Arc::new(move |s| f(s).map_err(Into::into)));
        self
    }

    /// A provider that starts `program` whenever a request finds none loaded
    /// (an embedded blob, or a program a test substitutes for it); its error
    /// is what [`Error::NotAvailable`] says.
    pub fn program(self, program: impl Fn() -> std::io::Result<Program> + Send + Sync + 'static) -> Self {
        self.provider(move |_| program().map_err(|e| e.to_string()))
    }

    /// A `post_start` that sends `command` followed by `input` (as
    /// [`Driver::command`] does) and checks the reply with `check`, refusing a
    /// reply larger than `max_reply` bytes from its header: the start-up
    /// probe of a driver whose requests are a command byte and an input, held
    /// to the same bound as any request about an input of that size.
    pub fn probe<E: Into<BoxError>>(
        self,
        command: u8,
        input: &'static [u8],
        max_reply: usize,
        check: impl Fn(&[u8]) -> Result<(), E> + Send + Sync + 'static,
    ) -> Self {
        self.post_start(move |s| {
            let req = [&[command][..], input];
            s.call_bounded(Request::Parts(&req), max_reply, &check)
        })
    }

    /// The on-demand loader called when a request finds no program loaded.
    pub fn provider(
        mut self,
        f: impl Fn(&Driver) -> Result<Program, String> + Send + Sync + 'static,
    ) -> Self {
        self.provider = Some(Arc::new(f));
        self
    }

    /// Finishes the driver (nothing is started until a load or a request).
    pub fn build(self) -> Driver {
        ignore_sigpipe();
        let c = &self.config;
        let (transport, reply_pipe_size, request_pipe_size) = match c.wire {
            Wire::Raw(s) => (Transport::Pipes, pipe_size_for(s.reply), pipe_size_for(s.request)),
            Wire::Framed(f) if f.fd_passing => (Transport::SocketPair, None, None),
            Wire::Framed(_) => (Transport::Pipes, None, None),
        };
        let spawn = SpawnSpec {
            driver: c.name.clone(),
            args: c.args.clone(),
            transport,
            reply_pipe_size,
            request_pipe_size,
        };
        Driver {
            inner: Arc::new(Inner {
                config: self.config,
                spawn,
                post_start: self.post_start,
                provider: self.provider,
                state: Mutex::new(State::default()),
                cond: Condvar::new(),
                counters: Counters::default(),
                next_request: AtomicU64::new(0),
                pids: Mutex::new(Vec::new()),
                waiters: std::sync::atomic::AtomicUsize::new(0),
            }),
        }
    }
}

/// Writing to a pipe whose handler died raises SIGPIPE, which kills a process that
/// has not ignored it (Rust programs ignore it at start-up; C hosts may not). A
/// dead handler must be an error, not the manager's death: if SIGPIPE still has its
/// default action, ignore it (once, process-wide, with a log line saying so).
fn ignore_sigpipe() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: querying and setting a signal disposition; no handler function
        // is installed (SIG_IGN).
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut old) == 0 && old.sa_sigaction == libc::SIG_DFL {
                let mut ign: libc::sigaction = std::mem::zeroed();
                ign.sa_sigaction = libc::SIG_IGN;
                if libc::sigaction(libc::SIGPIPE, &ign, std::ptr::null_mut()) == 0 {
                    tracing::info!("SIGPIPE was at its default action; now ignored so a dead handler cannot kill the manager");
                }
            }
        }
    });
}

/// A pipe larger than a whole message (so the handler writes it in one go, the
/// manager reads it in one go, and bytes a handler writes beyond it arrive with
/// it), capped at the default unprivileged maximum.
fn pipe_size_for(len: usize) -> Option<usize> {
    const DEFAULT_PIPE: usize = 64 * 1024;
    const MAX_PIPE: usize = 1024 * 1024;
    (len >= DEFAULT_PIPE).then(|| (len + 1).next_power_of_two().min(MAX_PIPE))
}

/// A user mode driver: manager state, loader and handler pool. Cheap to clone;
/// clones share everything. Dropping the last clone kills all its handlers.
///
/// ```
/// use umd::{Driver, Program, Request};
/// use umd::FramedConfig;
///
/// let driver = Driver::builder("echo")
///     .framed(FramedConfig::default())
///     .provider(|_driver| Program::runtime_blob("echo", umd_blobs::ECHO_HANDLER).map_err(|e| e.to_string()))
///     .post_start(|s| s.call(Request::Bytes(b"ping"), |r| if r == b"ping" { Ok(()) } else { Err("bad echo") }))
///     .build();
/// assert_eq!(driver.send_recv(b"hello").unwrap(), b"hello");
/// driver.unload();
/// ```
#[derive(Clone)]
pub struct Driver {
    inner: Arc<Inner>,
}

struct Inner {
    config: DriverConfig,
    spawn: SpawnSpec,
    post_start: Option<PostStart>,
    provider: Option<Provider>,
    state: Mutex<State>,
    cond: Condvar,
    counters: Counters,
    next_request: AtomicU64,
    /// Every running handler (idle, busy or starting), by pid and pidfd.
    pids: Mutex<Vec<Registered>>,
    /// Threads blocked on `cond`.
    waiters: std::sync::atomic::AtomicUsize,
}

/// A running handler as the registry knows it: enough to list and to signal it.
struct Registered {
    pid: u32,
    pidfd: Arc<std::os::fd::OwnedFd>,
}

/// A loaded program with its sandbox prepared for it.
#[derive(Clone)]
struct Loaded {
    program: Program,
    sandbox: Arc<Prepared>,
}

#[derive(Default)]
struct State {
    program: Option<Loaded>,
    /// Bumped by every unload: handlers of an older generation are killed when
    /// they come back instead of serving again.
    generation: u64,
    idle: Vec<Handler>,
    /// Slots of the current generation: idle + busy + starting handlers.
    live: usize,
    /// Busy or starting handlers of older generations, which unload waits for.
    draining: usize,
    /// Handlers of the current generation that died or were shut down and not yet
    /// replaced: the next starts count as restarts.
    pending_restarts: usize,
    /// A provider call or load is in progress.
    loading: bool,
}

impl State {
    fn free_slot(&mut self, generation: u64) {
        if generation == self.generation {
            self.live -= 1;
        } else {
            self.draining -= 1;
        }
    }

    /// Puts a handler back in the pool, or returns it to be killed when its
    /// generation was unloaded meanwhile.
    fn put_back(&mut self, h: Handler) -> Option<Handler> {
        if h.generation == self.generation {
            self.idle.push(h);
            None
        } else {
            self.draining -= 1;
            Some(h)
        }
    }

    /// Takes the program out and starts a new generation; returns the program and
    /// the idle handlers to kill. The caller drops the program after the handlers
    /// are gone (its sandbox may own a control group that must be empty by then).
    fn unload(&mut self) -> (Option<Loaded>, Vec<Handler>) {
        let program = self.program.take();
        self.generation += 1;
        let idle = std::mem::take(&mut self.idle);
        self.draining += self.live - idle.len();
        self.live = 0;
        self.pending_restarts = 0;
        (program, idle)
    }
}

impl Drop for State {
    fn drop(&mut self) {
        // Kill and reap the idle handlers before the program (and its sandbox's
        // control group, which must be empty to be removed) goes.
        self.idle.clear();
    }
}

/// A slot in the pool, taken by one call.
struct Lease {
    handler: Option<Handler>,
    program: Loaded,
    generation: u64,
    restart: bool,
}

/// What a driver looks like right now.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Status {
    /// Driver name.
    pub driver: String,
    /// Name of the loaded program, if any.
    pub program: Option<String>,
    /// Handler processes running (idle or busy).
    pub handlers: Vec<u32>,
    /// Handlers idle in the pool.
    pub idle: usize,
    /// Pool size.
    pub pool_size: usize,
}

impl Driver {
    /// Starts building a driver named `name` (framed mode, default limits and
    /// deadlines, pool of one).
    pub fn builder(name: &str) -> DriverBuilder {
        DriverBuilder {
            config: DriverConfig {
                name: name.into(),
                wire: Wire::Framed(FramedConfig::default()),
                timeout: DEFAULT_TIMEOUT,
                start_timeout: DEFAULT_START_TIMEOUT,
                pool_size: 1,
                args: Vec::new(),
                policy: Policy::default(),
                idempotent: false,
            },
            post_start: None,
            provider: None,
        }
    }

    /// The driver's settings.
    pub fn config(&self) -> &DriverConfig {
        &self.inner.config
    }

    /// The driver's name.
    pub fn name(&self) -> &str {
        &self.inner.config.name
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock (a bug, or a panicking hook) must not
        // wedge every later caller: the state is kept consistent at each unlock.
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wait<'a>(&self, g: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        // Counted under the lock, so a notifier that changed the state under the
        // lock and then reads the count cannot miss this waiter.
        self.inner.waiters.fetch_add(1, Relaxed);
        let g = self.inner.cond.wait(g).unwrap_or_else(|p| p.into_inner());
        self.inner.waiters.fetch_sub(1, Relaxed);
        g
    }

    /// Wakes the waiters, if any: an unconditional `notify_all` costs a futex call
    /// on every request even when nobody waits.
    fn wake(&self) {
        if self.inner.waiters.load(Relaxed) > 0 {
            self.inner.cond.notify_all();
        }
    }

    /// Loads `program` (the kernel's `umd_mgmt_load`): starts a handler from it and
    /// runs `post_start`; on failure the handler is killed, the program dropped and
    /// the error returned. Fails with [`Error::AlreadyLoaded`] if a program is loaded.
    pub fn load(&self, program: Program) -> Result<(), Error> {
        let mut st = self.lock();
        if self.is_providing() {
            // Called by this driver's own provider (the kernel's loader module
            // calling umd_mgmt_load from its init, inside request_module): the
            // load in progress is this one.
            if st.program.is_some() {
                return Err(Error::AlreadyLoaded { driver: self.name().into() });
            }
            drop(st);
            return self.install(program);
        }
        while st.loading {
            st = self.wait(st);
        }
        if st.program.is_some() {
            return Err(Error::AlreadyLoaded { driver: self.name().into() });
        }
        st.loading = true;
        drop(st);
        let _done = LoadingDone(self);
        self.install(program)
    }

    /// Prepares the sandbox for `program`: a confined handler must be static, and
    /// the policy must be applicable on this kernel.
    fn prepare(&self, program: Program) -> Result<Loaded, Error> {
        let policy = &self.inner.config.policy;
        if program.is_dynamic() && policy.landlock {
            return Err(Error::Program {
                driver: self.name().into(),
                program: program.name().into(),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "is dynamically linked: a confined handler must be statically linked \
                     (Landlock leaves it no shared library to load)",
                ),
            });
        }
        let fd_passing = matches!(self.inner.config.wire, Wire::Framed(f) if f.fd_passing);
        let sandbox = policy
            .prepare(program.kind() == ProgramKind::Runtime, fd_passing)
            .map_err(|source| Error::Sandbox { driver: self.name().into(), source })?;
        Ok(Loaded { program, sandbox: Arc::new(sandbox) })
    }

    /// Installs a program and starts its first handler. Called with `loading` set.
    fn install(&self, program: Program) -> Result<(), Error> {
        let program = self.prepare(program)?;
        let generation = {
            let mut st = self.lock();
            st.program = Some(program.clone());
            st.live += 1;
            st.generation
        };
        match self.start(&program, generation, false) {
            Ok(h) => {
                self.inner.counters.loads.fetch_add(1, Relaxed);
                let doomed = self.lock().put_back(h);
                self.wake();
                drop(doomed);
                Ok(())
            }
            Err(e) => {
                let doomed = {
                    let mut st = self.lock();
                    st.free_slot(generation);
                    if st.generation == generation {
                        st.unload()
                    } else {
                        (None, Vec::new())
                    }
                };
                self.wake();
                self.kill_all(doomed.1);
                drop(doomed.0);
                Err(e)
            }
        }
    }

    /// Makes sure a program is loaded, asking the provider if needed, as the next
    /// request would (the provider, the first handler, `post_start`); a no-op
    /// when loaded. The driver lock is not held while the provider runs (it may
    /// take long, or re-enter). A caller can load on another thread while it
    /// prepares its first request, instead of paying the start-up inside it.
    pub fn ensure_loaded(&self) -> Result<(), Error> {
        let mut st = self.lock();
        loop {
            if st.program.is_some() {
                return Ok(());
            }
            if !st.loading {
                break;
            }
            st = self.wait(st);
        }
        st.loading = true;
        drop(st);
        let _done = LoadingDone(self);
        let program = match &self.inner.provider {
            Some(provider) => {
                let _providing = Providing::enter(self);
                provider(self)
            }
            None => Err("no provider is registered".into()),
        };
        if self.lock().program.is_some() {
            // The provider loaded the driver itself (re-entrant `load`); whatever
            // it returned besides is not needed.
            return Ok(());
        }
        match program {
            Ok(p) => self.install(p),
            Err(reason) => Err(Error::NotAvailable { driver: self.name().into(), reason }),
        }
    }

    /// Whether the current thread is running this driver's provider.
    fn is_providing(&self) -> bool {
        let me = Arc::as_ptr(&self.inner) as usize;
        PROVIDING.with(|p| p.borrow().contains(&me))
    }

    /// Unloads the driver (the kernel's `umd_mgmt_unload`): drops the program, so
    /// the next request goes through the provider again; kills (SIGKILL) and reaps
    /// every idle handler; waits for in-flight calls to finish, and kills their
    /// handlers as they come back.
    pub fn unload(&self) {
        let mut st = self.lock();
        while st.loading {
            st = self.wait(st);
        }
        let was_loaded = st.program.is_some() || st.live > 0;
        let (program, idle) = st.unload();
        drop(st);
        if was_loaded {
            self.inner.counters.unloads.fetch_add(1, Relaxed);
        }
        self.kill_all(idle);
        let mut st = self.lock();
        while st.draining > 0 {
            st = self.wait(st);
        }
        drop(st);
        // Last: every handler of the program is gone (its memfd and sandbox go too).
        drop(program);
    }

    /// Kills every running handler of this driver with SIGKILL, sent through
    /// its pidfd (never a recycled pid), and returns how many were signalled.
    /// An operator's tool: a handler suspected of being stuck or compromised is
    /// gone, the program stays loaded, and the next request starts a fresh
    /// handler (counted in [`Stats::restarts`]; the kills in [`Stats::kills`]).
    ///
    /// Idle handlers are reaped before this returns. A request in flight on a
    /// killed handler fails as under any external SIGKILL: an idempotent driver
    /// sends it once more to a fresh handler; otherwise the caller gets an
    /// [`Error::Channel`] that is [`retryable`](Error::retryable). Handlers
    /// being started at that moment are killed too and their start fails.
    pub fn kill_handlers(&self) -> usize {
        let signalled = {
            let pids = self.inner.pids.lock().unwrap_or_else(|p| p.into_inner());
            pids.iter()
                .filter(|r| {
                    rustix::process::pidfd_send_signal(&*r.pidfd, rustix::process::Signal::KILL).is_ok()
                })
                .count()
        };
        self.inner.counters.kills.fetch_add(signalled as u64, Relaxed);
        // The idle ones leave the pool now; their slots are restarts.
        let idle = {
            let mut st = self.lock();
            let idle = std::mem::take(&mut st.idle);
            st.live -= idle.len();
            st.pending_restarts += idle.len();
            idle
        };
        self.wake();
        for mut h in idle {
            let fate = h.process.shut_down(EXIT_GRACE, "kill_handlers");
            let pid = h.process.pid();
            self.forget_pid(pid);
            tracing::info!(driver = %self.name(), pid, %fate, "handler killed on request (kill_handlers)");
        }
        tracing::info!(driver = %self.name(), signalled, "kill_handlers");
        signalled
    }

    /// Whether a program is loaded.
    pub fn is_loaded(&self) -> bool {
        self.lock().program.is_some()
    }

    fn kill_all(&self, handlers: Vec<Handler>) {
        for mut h in handlers {
            h.process.shut_down(Duration::ZERO, "unloaded");
            self.forget_pid(h.process.pid());
        }
    }

    fn forget_pid(&self, pid: u32) {
        let mut pids = self.inner.pids.lock().unwrap_or_else(|p| p.into_inner());
        pids.retain(|r| r.pid != pid);
    }

    /// Starts one handler: spawn, start-up handshake (runtime handlers), check of
    /// its confinement, then `post_start`.
    fn start(&self, loaded: &Loaded, generation: u64, restart: bool) -> Result<Handler, Error> {
        let c = &self.inner.counters;
        c.starts.fetch_add(1, Relaxed);
        if restart {
            c.restarts.fetch_add(1, Relaxed);
        }
        let program = &loaded.program;
        let process = loader::spawn(program, &self.inner.spawn, &loaded.sandbox).map_err(|source| {
            Error::Spawn { driver: self.name().into(), program: program.name().into(), source }
        })?;
        let pid = process.pid();
        let pidfd = process.pidfd_handle();
        self.inner.pids.lock().unwrap_or_else(|p| p.into_inner()).push(Registered { pid, pidfd });
        let mut handler = Handler::new(process, generation);
        tracing::debug!(driver = %self.name(), pid, restart, "handler started");
        let deadline = Instant::now() + self.inner.config.start_timeout;
        if program.kind() == ProgramKind::Runtime {
            let policy = loaded.sandbox.policy();
            let config = umd_wire::handshake::Config {
                seccomp: policy.seccomp,
                memfd_replies: handler.process.socket,
                extra_syscalls: policy.extra_syscalls.clone(),
            };
            if let Err(e) = handler.handshake(&config, deadline) {
                return Err(self.failed_start(handler, StartError::Handshake(e)));
            }
        }
        if let Err(e) = crate::sandbox::verify(pid, &loaded.sandbox) {
            return Err(self.failed_start(handler, StartError::Confinement(Box::new(e))));
        }
        if let Some(hook) = &self.inner.post_start {
            let mut session = Session { handler: &mut handler, wire: &self.inner.config.wire, deadline };
            // A panicking hook is a failed start: the handler is killed and the
            // slot freed like after any failure, instead of unwinding past the
            // pool's bookkeeping (which would leave the slot taken forever).
            let checked = match std::panic::catch_unwind(AssertUnwindSafe(|| hook(&mut session))) {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(StartError::PostStart(e)),
                Err(p) => Err(StartError::Panicked(panic_message(&*p).to_string())),
            };
            if let Err(reason) = checked {
                return Err(self.failed_start(handler, reason));
            }
        }
        Ok(handler)
    }

    /// Kills a handler that failed its start (handshake, confinement check or
    /// `post_start`) and builds the error.
    fn failed_start(&self, mut handler: Handler, reason: StartError) -> Error {
        self.inner.counters.post_start_failures.fetch_add(1, Relaxed);
        let fate = handler.process.shut_down(EXIT_GRACE, "failed its start");
        self.count_fate(&fate);
        let pid = handler.process.pid();
        self.forget_pid(pid);
        tracing::warn!(driver = %self.name(), pid, %fate, "handler start failed: {reason}");
        Error::PostStart { driver: self.name().into(), source: reason, fate }
    }

    fn count_fate(&self, fate: &HandlerFate) {
        if matches!(fate, HandlerFate::SeccompViolation { .. }) {
            self.inner.counters.violations.fetch_add(1, Relaxed);
        }
    }

    /// Starts a handler for a slot already counted in the pool; frees the slot if
    /// the start fails.
    fn start_in_slot(&self, program: &Loaded, generation: u64, restart: bool) -> Result<Handler, Error> {
        self.start(program, generation, restart).inspect_err(|_| {
            let mut st = self.lock();
            st.free_slot(generation);
            if generation == st.generation {
                st.pending_restarts += usize::from(restart);
            }
            drop(st);
            self.wake();
        })
    }

    /// Takes a pool slot: an idle handler, or the right to start one.
    fn acquire(&self) -> Result<Lease, Error> {
        loop {
            self.ensure_loaded()?;
            let mut st = self.lock();
            while let Some(program) = st.program.clone() {
                if let Some(h) = st.idle.pop() {
                    let generation = h.generation;
                    return Ok(Lease { handler: Some(h), program, generation, restart: false });
                }
                if st.live < self.inner.config.pool_size {
                    st.live += 1;
                    let restart = st.pending_restarts > 0;
                    st.pending_restarts -= usize::from(restart);
                    return Ok(Lease { handler: None, program, generation: st.generation, restart });
                }
                st = self.wait(st);
            }
            // Unloaded while we waited: load again (through the provider).
        }
    }

    /// Gives a handler back to the pool after a successful exchange.
    fn release(&self, h: Handler) {
        let doomed = self.lock().put_back(h);
        self.wake();
        if let Some(h) = doomed {
            self.kill_all(vec![h]);
        }
    }

    /// Shuts a handler down after a failure and frees its slot; the next start of
    /// this generation counts as a restart.
    fn discard(&self, mut h: Handler, grace: Duration, why: &'static str) -> HandlerFate {
        self.inner.counters.handler_failures.fetch_add(1, Relaxed);
        let fate = h.process.shut_down(grace, why);
        self.count_fate(&fate);
        let pid = h.process.pid();
        self.forget_pid(pid);
        tracing::warn!(driver = %self.name(), pid, %fate, "handler shut down: {why}");
        let mut st = self.lock();
        let generation = h.generation;
        st.free_slot(generation);
        if generation == st.generation {
            st.pending_restarts += 1;
        }
        drop(st);
        self.wake();
        fate
    }

    /// Sends a request and hands the reply to `check`, which returns the value the
    /// caller wants or why the reply is wrong (then the handler is shut down as
    /// broken). This is `umd_mgmt_send_recv` with a verifying caller.
    ///
    /// The check's error is kept whole as the source of [`Error::BadReply`]: the
    /// caller gets its own type back with [`Error::find_source`]. (It is boxed
    /// only when a reply is rejected; an accepted reply costs no allocation.)
    pub fn call<T, E: Into<BoxError>>(
        &self,
        req: Request<'_>,
        check: impl FnOnce(&[u8]) -> Result<T, E>,
    ) -> Result<T, Error> {
        self.call_bounded(req, usize::MAX, check)
    }

    /// As [`Driver::call`], with a bound on this reply's size: a framed reply
    /// (inline or memfd) announcing more than `max_reply` bytes is refused
    /// from its header, before any of it is read, and the handler is shut
    /// down. A driver whose replies scale with its requests bounds each reply
    /// by its request, so a lying handler cannot make the manager receive more
    /// than that request allows.
    pub fn call_bounded<T, E: Into<BoxError>>(
        &self,
        req: Request<'_>,
        max_reply: usize,
        check: impl FnOnce(&[u8]) -> Result<T, E>,
    ) -> Result<T, Error> {
        let started = Instant::now();
        let request = self.inner.next_request.fetch_add(1, Relaxed) + 1;
        let c = &self.inner.counters;
        c.requests.fetch_add(1, Relaxed);
        let r = self.call_inner(request, req, max_reply, check);
        match &r {
            Ok(_) => c.latency.record(started.elapsed()),
            Err(e) => {
                c.failures.fetch_add(1, Relaxed);
                tracing::debug!(driver = %self.name(), request, "request failed: {e}");
            }
        }
        r
    }

    fn call_inner<T, E: Into<BoxError>>(
        &self,
        request: u64,
        req: Request<'_>,
        max_reply: usize,
        check: impl FnOnce(&[u8]) -> Result<T, E>,
    ) -> Result<T, Error> {
        let mut retried = false;
        loop {
            let mut handler = self.ready_handler()?;
            let deadline = Instant::now() + self.inner.config.timeout;
            let reply = match handler.exchange(&self.inner.config.wire, req, max_reply, deadline) {
                Ok(reply) => reply,
                Err(e) => match self.exchange_failed(handler, e, request, retried) {
                    Some(error) => return Err(error),
                    None => {
                        retried = true;
                        continue;
                    }
                },
            };
            // The caller's check may panic: the slot must be freed before the
            // panic goes on, or every later call would wait for it forever.
            let checked = std::panic::catch_unwind(AssertUnwindSafe(|| check(reply.as_bytes())));
            return match checked {
                Ok(Ok(v)) => {
                    self.release(handler);
                    Ok(v)
                }
                Ok(Err(rejected)) => {
                    self.discard(handler, Duration::ZERO, "reply rejected");
                    Err(Error::BadReply { driver: self.name().into(), request, source: rejected.into() })
                }
                Err(panic) => {
                    self.inner.counters.failures.fetch_add(1, Relaxed);
                    self.discard(handler, Duration::ZERO, "the caller's reply check panicked");
                    std::panic::resume_unwind(panic)
                }
            };
        }
    }

    /// Deals with a failed exchange: keeps or shuts down the handler, and returns
    /// the caller's error, or `None` when the request is to be sent once more to a
    /// fresh handler (an idempotent driver whose handler died under the request
    /// for the first time).
    fn exchange_failed(&self, handler: Handler, e: CallError, request: u64, retried: bool) -> Option<Error> {
        let driver = || self.name().to_string();
        let (source, delivered) = match e {
            CallError::BadRequest(reason) => {
                self.release(handler);
                return Some(Error::BadRequest { driver: driver(), request, reason });
            }
            CallError::Handler(message) => {
                // The handler refused this input and stays in service: a
                // malformed input is not a handler failure.
                self.release(handler);
                return Some(Error::Handler { driver: driver(), request, message });
            }
            CallError::Send(ChanError::Timeout) => {
                return Some(self.missed_deadline(handler, request, false))
            }
            CallError::Chan(ChanError::Timeout) => return Some(self.missed_deadline(handler, request, true)),
            CallError::Send(source) => (source, false),
            CallError::Chan(source) => (source, true),
        };
        let grace = if peer_closed(&source) { CLOSED_GRACE } else { EXIT_GRACE };
        let fate = self.discard(handler, grace, "channel error");
        let error = Error::Channel { driver: driver(), request, source, fate, delivered, retried };
        if self.inner.config.idempotent && error.retryable() {
            self.inner.counters.retries.fetch_add(1, Relaxed);
            tracing::info!(driver = %self.name(), request, "sending the request again to a fresh handler: {error}");
            return None;
        }
        Some(error)
    }

    /// Kills a handler that missed its deadline (never retried: the same request
    /// would likely hang again).
    fn missed_deadline(&self, handler: Handler, request: u64, delivered: bool) -> Error {
        self.inner.counters.deadline_kills.fetch_add(1, Relaxed);
        let fate = self.discard(handler, Duration::ZERO, "missed its deadline");
        Error::Deadline {
            driver: self.name().into(),
            request,
            timeout: self.inner.config.timeout,
            delivered,
            fate,
        }
    }

    /// Takes a pool slot and makes sure a live handler fills it: an idle one
    /// that passes the idle check (else it is reaped and a fresh one started in
    /// its slot), or a new one. A start (or on-demand load) whose new handler
    /// was killed during its start by a signal the manager did not send (an
    /// external SIGKILL, a crash) is tried once more: the request has not been
    /// sent, so this is safe for any driver. A handler that exits by itself
    /// during its start is not tried again: that is the program's own answer.
    fn ready_handler(&self) -> Result<Handler, Error> {
        let mut tried_again = false;
        loop {
            // An on-demand load starts the first handler inside `acquire`.
            let lease = match self.acquire() {
                Err(Error::PostStart { fate: ref fate @ HandlerFate::Signaled(_), .. }) if !tried_again => {
                    tried_again = true;
                    tracing::info!(driver = %self.name(), %fate, "the first handler was killed during its start; loading again");
                    continue;
                }
                other => other?,
            };
            let started = match lease.handler {
                Some(h) => match h.check_idle() {
                    Ok(()) => return Ok(h),
                    Err(why) => {
                        // Restart in place: the slot stays ours.
                        let mut h = h;
                        self.inner.counters.handler_failures.fetch_add(1, Relaxed);
                        let fate = h.process.shut_down(EXIT_GRACE, why);
                        self.count_fate(&fate);
                        self.forget_pid(h.process.pid());
                        tracing::warn!(driver = %self.name(), pid = h.process.pid(), %fate, "{why}; starting a fresh one");
                        drop(h);
                        self.start_in_slot(&lease.program, lease.generation, true)
                    }
                },
                None => self.start_in_slot(&lease.program, lease.generation, lease.restart),
            };
            match started {
                Err(Error::PostStart { fate: ref fate @ HandlerFate::Signaled(_), .. }) if !tried_again => {
                    tried_again = true;
                    tracing::info!(driver = %self.name(), %fate, "a new handler was killed during its start; starting another");
                }
                other => return other,
            }
        }
    }

    /// Sends a request made of a `command` byte followed by `input` (gathered
    /// from the two, not copied into one buffer) and checks the reply as
    /// [`Driver::call_bounded`] does: a reply announcing more than `max_reply`
    /// bytes is refused from its header. A driver whose replies describe its
    /// input bounds each by that input's size.
    pub fn command<T, E: Into<BoxError>>(
        &self,
        command: u8,
        input: &[u8],
        max_reply: usize,
        check: impl FnOnce(&[u8]) -> Result<T, E>,
    ) -> Result<T, Error> {
        self.call_bounded(Request::Parts(&[&[command][..], input]), max_reply, check)
    }

    /// Sends `request` bytes and returns a copy of the reply.
    pub fn send_recv(&self, request: &[u8]) -> Result<Vec<u8>, Error> {
        self.call(Request::Bytes(request), |r| Ok::<_, std::convert::Infallible>(r.to_vec()))
    }

    /// Counters covering every handler this driver started.
    pub fn stats(&self) -> Stats {
        self.inner.counters.snapshot()
    }

    /// The driver's current state.
    pub fn status(&self) -> Status {
        let st = self.lock();
        let program = st.program.as_ref().map(|p| p.program.name().to_string());
        let idle = st.idle.len();
        drop(st);
        Status {
            driver: self.name().into(),
            program,
            handlers: self.handler_pids(),
            idle,
            pool_size: self.inner.config.pool_size,
        }
    }

    /// The confinement of the loaded program's handlers (`None` when unloaded).
    pub fn policy_summary(&self) -> Option<PolicySummary> {
        let st = self.lock();
        let loaded = st.program.as_ref()?;
        let fd_passing = matches!(self.inner.config.wire, Wire::Framed(f) if f.fd_passing);
        Some(loaded.sandbox.summary(loaded.program.kind() == ProgramKind::Runtime, fd_passing))
    }

    /// Process ids of the running handlers (idle or busy).
    pub fn handler_pids(&self) -> Vec<u32> {
        self.inner.pids.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|r| r.pid).collect()
    }
}

/// Whether a channel error means the handler closed its end: end of stream on a
/// read, or a write meeting no reader.
fn peer_closed(e: &ChanError) -> bool {
    match e {
        ChanError::Eof { .. } => true,
        ChanError::Io { source, .. } => {
            matches!(source.raw_os_error(), Some(libc::EPIPE | libc::ECONNRESET))
        }
        _ => false,
    }
}

/// The message of a panic payload, if it is text.
fn panic_message(p: &(dyn Any + Send)) -> &str {
    p.downcast_ref::<&str>()
        .copied()
        .or_else(|| p.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("?")
}

thread_local! {
    /// Drivers whose provider this thread is running (by address of their state):
    /// a provider may call `load` on its own driver, as the kernel's loader module
    /// does.
    static PROVIDING: std::cell::RefCell<Vec<usize>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Marks the current thread as running a driver's provider until dropped.
struct Providing(usize);

impl Providing {
    fn enter(driver: &Driver) -> Providing {
        let me = Arc::as_ptr(&driver.inner) as usize;
        PROVIDING.with(|p| p.borrow_mut().push(me));
        Providing(me)
    }
}

impl Drop for Providing {
    fn drop(&mut self) {
        PROVIDING.with(|p| {
            let mut v = p.borrow_mut();
            if let Some(i) = v.iter().rposition(|&d| d == self.0) {
                v.remove(i);
            }
        });
    }
}

/// Clears the `loading` flag and wakes waiters, also on an early return.
struct LoadingDone<'a>(&'a Driver);

impl Drop for LoadingDone<'_> {
    fn drop(&mut self) {
        self.0.lock().loading = false;
        self.0.wake();
    }
}
