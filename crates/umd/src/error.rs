//! The manager's errors: every one names the driver, and where there was one, the
//! request and what became of the handler.

use std::fmt;
use std::io;
use std::time::Duration;

use umd_wire::chan::ChanError;

use crate::sandbox::SandboxError;

/// An error from a driver's own code (a reply check, a `post_start` hook), kept
/// whole: [`Error::find_source`] gives it back as the driver's own type.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How a handler process ended, as far as the manager saw it. The first recorded
/// cause is kept: a handler that crashed and was then reaped reports the crash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HandlerFate {
    /// The handler exited by itself with this status.
    Exited(i32),
    /// The handler was killed by this signal (not sent by the manager).
    Signaled(i32),
    /// The manager killed it (for the reason given).
    KilledByManager(&'static str),
    /// Killed for a seccomp violation (SIGSYS). Handlers built on `umd-handler`
    /// name the system call before they die.
    SeccompViolation {
        /// The offending system call's number, if the handler reported it.
        syscall: Option<i64>,
        /// Its name on this architecture.
        name: Option<&'static str>,
    },
    /// Unknown (the process could not be waited for).
    Unknown,
}

impl fmt::Display for HandlerFate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandlerFate::Exited(c) => write!(f, "handler exited with status {c}"),
            HandlerFate::Signaled(s) => write!(f, "handler killed by signal {s} ({})", signal_name(*s)),
            HandlerFate::KilledByManager(why) => write!(f, "handler killed by the manager ({why})"),
            HandlerFate::SeccompViolation { syscall: Some(nr), name } => write!(
                f,
                "handler killed by SIGSYS: seccomp violation, system call {} ({nr})",
                name.unwrap_or("unknown")
            ),
            HandlerFate::SeccompViolation { syscall: None, .. } => {
                write!(f, "handler killed by SIGSYS: seccomp violation (system call not reported)")
            }
            HandlerFate::Unknown => write!(f, "handler state unknown"),
        }
    }
}

impl HandlerFate {
    /// Whether the handler ended of its own accord: it exited, or a signal the
    /// manager did not send killed it (an operator's or the OOM killer's SIGKILL,
    /// a crash). A seccomp violation is not counted: the same request would
    /// make the same call again.
    pub fn died_on_its_own(&self) -> bool {
        matches!(self, HandlerFate::Exited(_) | HandlerFate::Signaled(_))
    }
}

/// A short name for common signals.
pub fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGILL => "SIGILL",
        libc::SIGKILL => "SIGKILL",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGSYS => "SIGSYS",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        _ => "signal",
    }
}

/// Everything a driver call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No handler program is loaded and no provider could supply one (the kernel's
    /// `-ENOPROTOOPT` after `request_module`).
    #[error("driver {driver}: driver not available ({reason})")]
    NotAvailable {
        /// Driver name.
        driver: String,
        /// Why the provider could not supply the program.
        reason: String,
    },
    /// `load` was called on a driver that already has a program.
    #[error("driver {driver}: already loaded (unload it first)")]
    AlreadyLoaded {
        /// Driver name.
        driver: String,
    },
    /// The handler program could not be read or put into a sealed memfd.
    #[error("driver {driver}: handler program {program}: {source}")]
    Program {
        /// Driver name.
        driver: String,
        /// Program name or path.
        program: String,
        /// Cause.
        source: io::Error,
    },
    /// The handler process could not be started.
    #[error("driver {driver}: starting handler {program}: {source}")]
    Spawn {
        /// Driver name.
        driver: String,
        /// Program name.
        program: String,
        /// Cause.
        source: io::Error,
    },
    /// The sandbox policy cannot be applied on this machine.
    #[error("driver {driver}: sandbox: {source}")]
    Sandbox {
        /// Driver name.
        driver: String,
        /// Cause.
        source: crate::sandbox::SandboxError,
    },
    /// A freshly started handler failed its start (start-up handshake, confinement
    /// check or `post_start`) and was killed.
    #[error("driver {driver}: handler failed its start check: {source} ({fate})")]
    PostStart {
        /// Driver name.
        driver: String,
        /// Which step failed, and why.
        source: StartError,
        /// What became of the handler.
        fate: HandlerFate,
    },
    /// The request does not fit the driver's wire format (caller error; no handler
    /// was involved).
    #[error("driver {driver}: request {request}: {reason}")]
    BadRequest {
        /// Driver name.
        driver: String,
        /// Request number.
        request: u64,
        /// Why.
        reason: String,
    },
    /// Talking to the handler failed; it was shut down and the next call starts a
    /// fresh one.
    #[error("driver {driver}: request {request}: {source}; {fate}{}", retry_note(*retried))]
    Channel {
        /// Driver name.
        driver: String,
        /// Request number.
        request: u64,
        /// What failed on the channel.
        source: ChanError,
        /// What became of the handler.
        fate: HandlerFate,
        /// Whether the whole request had been written to the handler before the
        /// channel failed (see [`Error::delivered`]).
        delivered: bool,
        /// Whether this is the second attempt: the first handler died under the
        /// request, the driver is idempotent and sent it once more to a fresh
        /// handler, which failed too.
        retried: bool,
    },
    /// The handler did not answer within the deadline and was killed.
    #[error("driver {driver}: request {request}: no reply within {timeout:?}; handler killed")]
    Deadline {
        /// Driver name.
        driver: String,
        /// Request number.
        request: u64,
        /// The deadline that passed.
        timeout: Duration,
        /// Whether the whole request had been written before the deadline passed.
        delivered: bool,
        /// What became of the handler: killed by the manager, unless it died
        /// by itself just before.
        fate: HandlerFate,
    },
    /// The handler answered with an error frame (framed mode): it is alive and
    /// keeps serving.
    #[error("driver {driver}: request {request}: the handler refused the input: {message}")]
    Handler {
        /// Driver name.
        driver: String,
        /// Request number.
        request: u64,
        /// The handler's message (untrusted text, length-limited).
        message: String,
    },
    /// The manager's check of the reply failed: the handler is considered broken and
    /// was shut down.
    #[error("driver {driver}: request {request}: reply rejected: {source}")]
    BadReply {
        /// Driver name.
        driver: String,
        /// Request number.
        request: u64,
        /// Why the reply was rejected: the error the caller's check returned,
        /// as its own type ([`Error::find_source`]).
        source: BoxError,
    },
}

/// Why a freshly started handler failed its start ([`Error::PostStart`]).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The start-up handshake with a runtime handler failed (it did not take
    /// its confinement, or broke the wire format).
    #[error("start-up handshake: {0}")]
    Handshake(#[source] ChanError),
    /// The handler is not confined as the policy says (checked in `/proc`).
    /// Boxed: [`Error`] stays small, for callers that wrap it.
    #[error("{0}")]
    Confinement(#[source] Box<SandboxError>),
    /// The driver's `post_start` hook refused the handler: its error, as the
    /// hook returned it (often a [`SessionError`]).
    #[error("{0}")]
    PostStart(#[source] BoxError),
    /// The driver's `post_start` hook panicked (its message, if it had one).
    #[error("post_start hook panicked: {0}")]
    Panicked(String),
}

/// Why an exchange during `post_start` ([`Session::call`](crate::Session::call))
/// failed. The handler is then killed as failing its start, whatever the hook
/// makes of the error.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The start deadline passed before the reply came.
    #[error("no reply before the start deadline")]
    Deadline,
    /// The channel failed (the handler died, or broke the wire format).
    #[error("{0}")]
    Channel(#[source] ChanError),
    /// The request does not fit the driver's wire format.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The handler answered with an error frame (untrusted, length-limited text).
    #[error("the handler refused the input: {0}")]
    Handler(String),
    /// The hook's check rejected the reply: its error, as its own type.
    #[error("{0}")]
    BadReply(#[source] BoxError),
}

fn retry_note(retried: bool) -> &'static str {
    if retried {
        "; it had been sent again to a fresh handler (one retry), which failed too"
    } else {
        ""
    }
}

impl Error {
    /// Whether the whole request reached a handler, so that the handler may have
    /// acted on it (a caller whose request has effects must assume it did).
    ///
    /// False when the request was refused or failed before it was written
    /// completely: no program ([`Error::NotAvailable`]), a failed load or start
    /// ([`Error::Program`], [`Error::Spawn`], [`Error::Sandbox`],
    /// [`Error::PostStart`]: the new handler never saw this request), a request
    /// that does not fit the wire format ([`Error::BadRequest`]), and a channel
    /// failure or deadline while writing it. True when a handler answered
    /// ([`Error::Handler`], [`Error::BadReply`]) or failed after the request was
    /// written ([`Error::Channel`], [`Error::Deadline`] while waiting for the
    /// reply).
    pub fn delivered(&self) -> bool {
        match self {
            Error::NotAvailable { .. }
            | Error::AlreadyLoaded { .. }
            | Error::Program { .. }
            | Error::Spawn { .. }
            | Error::Sandbox { .. }
            | Error::PostStart { .. }
            | Error::BadRequest { .. } => false,
            Error::Channel { delivered, .. } | Error::Deadline { delivered, .. } => *delivered,
            Error::Handler { .. } | Error::BadReply { .. } => true,
        }
    }

    /// Whether sending the same request again may succeed: its handler died of
    /// its own accord while serving it ([`Error::Channel`] with a
    /// [`HandlerFate::died_on_its_own`] fate: it exited, crashed, or was killed
    /// by a signal the manager did not send, such as an operator's or the OOM
    /// killer's SIGKILL), and the request was not already retried. The next
    /// call meets a fresh handler.
    ///
    /// A driver built with [`idempotent(true)`](crate::DriverBuilder::idempotent)
    /// makes that one retry itself, so its errors say `false` here: a second
    /// death under the same request points at the request. Never retryable: a
    /// seccomp violation, a missed deadline, a rejected reply, a handler that
    /// broke the wire format or answered with an error frame, a bad request, and
    /// failures to load or start a handler. Whether a retry is *safe* is the
    /// caller's to judge, with [`Error::delivered`].
    pub fn retryable(&self) -> bool {
        matches!(self, Error::Channel { fate, retried: false, .. } if fate.died_on_its_own())
    }

    /// Whether this error is a negative verdict about the handler's answer (as
    /// opposed to a usage or system error): the CLI maps it to exit status 1.
    pub fn is_verdict(&self) -> bool {
        matches!(self, Error::BadReply { .. } | Error::PostStart { .. } | Error::Handler { .. })
    }

    /// The first error of type `E` among this error's sources, nearest first:
    /// how a caller gets back the error its check returned (or its `post_start`
    /// hook, or the one a [`SessionError`] carries) as the driver's own type,
    /// and the channel's or the sandbox's errors.
    ///
    /// ```
    /// # use umd::{Error, error::{BoxError, StartError, SessionError}, HandlerFate};
    /// #[derive(Debug, thiserror::Error, PartialEq)]
    /// #[error("byte {0} is wrong")]
    /// struct Wrong(usize);
    ///
    /// let e = Error::BadReply { driver: "d".into(), request: 1, source: Box::new(Wrong(3)) };
    /// assert_eq!(e.find_source::<Wrong>(), Some(&Wrong(3)));
    /// assert_eq!(e.to_string(), "driver d: request 1: reply rejected: byte 3 is wrong");
    ///
    /// // Through a post_start hook that passed its exchange's error on.
    /// let hook: BoxError = Box::new(SessionError::BadReply(Box::new(Wrong(0))));
    /// let e = Error::PostStart {
    ///     driver: "d".into(),
    ///     source: StartError::PostStart(hook),
    ///     fate: HandlerFate::KilledByManager("failed its start"),
    /// };
    /// assert_eq!(e.find_source::<Wrong>(), Some(&Wrong(0)));
    /// assert!(matches!(e.find_source::<SessionError>(), Some(SessionError::BadReply(_))));
    /// ```
    pub fn find_source<E: std::error::Error + 'static>(&self) -> Option<&E> {
        let mut next = std::error::Error::source(self);
        while let Some(e) = next {
            // A boxed source (`StartError::Confinement`) is its content.
            if let Some(found) = e.downcast_ref::<E>().or_else(|| e.downcast_ref::<Box<E>>().map(|b| &**b)) {
                return Some(found);
            }
            next = e.source();
        }
        None
    }

    /// The driver the error concerns.
    pub fn driver(&self) -> &str {
        match self {
            Error::NotAvailable { driver, .. }
            | Error::AlreadyLoaded { driver }
            | Error::Program { driver, .. }
            | Error::Spawn { driver, .. }
            | Error::Sandbox { driver, .. }
            | Error::PostStart { driver, .. }
            | Error::BadRequest { driver, .. }
            | Error::Channel { driver, .. }
            | Error::Deadline { driver, .. }
            | Error::Handler { driver, .. }
            | Error::BadReply { driver, .. } => driver,
        }
    }
}
