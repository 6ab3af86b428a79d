//! The **exchange**: the manager's side of the conversation with one running
//! handler (the handler itself is the sandboxed program, built on `umd-handler`
//! or speaking the raw wire format). Here live the started process as the
//! manager holds it, its channel, the start-up handshake and the request/reply
//! exchange in either wire mode; [`crate::manager`] decides what to do with its
//! outcome.
//!
//! Nothing here trusts the handler: every read is bounded by the deadline and by
//! the sizes the wire mode fixes, a reply longer than announced is an error, and
//! bytes that arrive between requests mark the handler as broken.

use std::io::IoSliceMut;
use std::os::fd::AsFd;
use std::time::Instant;

use rustix::event::{PollFd, PollFlags};
use umd_wire::chan::{self, ChanError, Endpoint, Payload, Received};
use umd_wire::memfd::{Mapping, SealedMemfd};
use umd_wire::{Kind, Limits, RawSizes};

use crate::loader::Process;

/// How requests and replies are encoded on a driver's channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire {
    /// Fixed-size request and reply, no header (the kernel sample's format).
    Raw(RawSizes),
    /// Length-prefixed frames with explicit limits.
    Framed(FramedConfig),
}

/// Settings of the framed wire mode (default: default limits, pipes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FramedConfig {
    /// Size limits applied to what the handler sends.
    pub limits: Limits,
    /// Put a Unix socket pair on fd 0/1 so sealed memfds can be passed (needed for
    /// [`Request::Memfd`] and for memfd replies).
    pub fd_passing: bool,
}

/// A request to send.
#[derive(Clone, Copy, Debug)]
pub enum Request<'a> {
    /// Bytes written through the channel.
    Bytes(&'a [u8]),
    /// Bytes written through the channel as one payload, gathered from these
    /// slices in order (framed mode only): a command byte and a large input go
    /// out without being copied into one buffer first.
    Parts(&'a [&'a [u8]]),
    /// A sealed memfd passed to the handler (framed mode with fd passing only).
    Memfd(&'a SealedMemfd),
}

/// A reply, borrowed for the duration of a check.
pub enum Reply<'a> {
    /// Bytes read from the channel.
    Bytes(&'a [u8]),
    /// A large reply read from the channel, in a buffer of its own: it is freed
    /// once the check is done, instead of staying with the handler.
    Owned(Vec<u8>),
    /// A sealed memfd from the handler, checked and mapped read-only.
    Memfd(Mapping),
}

impl Reply<'_> {
    /// The reply's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Reply::Bytes(b) => b,
            Reply::Owned(b) => b,
            Reply::Memfd(m) => m.as_slice(),
        }
    }
}

/// Largest receive buffer a handler keeps between requests: a larger reply's
/// buffer goes with the reply ([`Reply::Owned`]) and is freed after its check,
/// so one large reply does not pin its size in the manager for the handler's
/// life.
pub const KEEP_BUFFER: usize = 1 << 20;

/// Why an exchange failed.
#[derive(Debug)]
pub(crate) enum CallError {
    /// The request does not fit the wire mode (no byte was sent).
    BadRequest(String),
    /// The channel failed while the request was being sent (the handler cannot
    /// have received all of it); the handler must be shut down.
    Send(ChanError),
    /// The channel failed after the whole request was sent; the handler must be
    /// shut down.
    Chan(ChanError),
    /// The handler answered with an error frame; it stays usable.
    Handler(String),
}

impl From<ChanError> for CallError {
    fn from(e: ChanError) -> Self {
        CallError::Chan(e)
    }
}

/// Longest handler error message kept (the text is untrusted).
const MAX_HANDLER_MESSAGE: usize = 1024;

/// A started handler owned by the manager.
pub(crate) struct Handler {
    pub process: Process,
    /// The load generation it belongs to (unload bumps the driver's generation).
    pub generation: u64,
    buf: Vec<u8>,
}

impl Handler {
    pub fn new(process: Process, generation: u64) -> Handler {
        Handler { process, generation, buf: Vec::new() }
    }

    fn endpoint(&self) -> Endpoint<'_> {
        Endpoint { rx: self.process.rx.as_fd(), tx: self.process.tx.as_fd(), socket: self.process.socket }
    }

    /// Cheap check before a request, one `poll(2)` on two fds: the process has
    /// not exited (its pidfd is not readable), has not closed its end of the
    /// channel, and has not written anything since its last reply.
    pub fn check_idle(&self) -> Result<(), &'static str> {
        let mut fds = [
            PollFd::from_borrowed_fd(self.process.pidfd(), PollFlags::IN),
            PollFd::from_borrowed_fd(self.process.rx.as_fd(), PollFlags::IN),
        ];
        match rustix::event::poll(&mut fds, Some(&rustix::time::Timespec { tv_sec: 0, tv_nsec: 0 })) {
            Ok(0) => Ok(()),
            Ok(_) => {
                let (exited, ev) = (!fds[0].revents().is_empty(), fds[1].revents());
                // A socket whose peer is gone is readable (end of stream) as well
                // as hung up: test the exit and the hang-up first so the log names
                // the cause.
                if exited {
                    Err("handler exited while idle")
                } else if ev.intersects(PollFlags::HUP | PollFlags::ERR) {
                    Err("handler closed its channel while idle")
                } else {
                    Err("handler wrote bytes outside a reply")
                }
            }
            Err(rustix::io::Errno::INTR) => Ok(()),
            Err(_) => Err("cannot poll the handler's channel"),
        }
    }

    /// The start-up handshake with a runtime handler: send its confinement, wait
    /// for its empty ready frame.
    pub fn handshake(
        &mut self,
        config: &umd_wire::handshake::Config,
        deadline: Instant,
    ) -> Result<(), ChanError> {
        let ep = self.endpoint();
        let limits = Limits { max_inline: 0, max_memfd: 0 };
        chan::send_frame(
            ep,
            Kind::Config,
            Payload::Inline(&config.encode()),
            &Limits::default(),
            Some(deadline),
        )?;
        let ep = Endpoint {
            rx: self.process.rx.as_fd(),
            tx: self.process.tx.as_fd(),
            socket: self.process.socket,
        };
        match chan::recv_frame(ep, &limits, &mut self.buf, Some(deadline))? {
            Received::Inline { kind: Kind::Ready, .. } => Ok(()),
            Received::Inline { kind, .. } | Received::Memfd { kind, .. } => {
                Err(ChanError::UnexpectedKind(kind))
            }
        }
    }

    /// One request/reply exchange, bounded by `deadline`; a framed reply is
    /// also bounded by `max_reply` bytes (below the wire's limits).
    pub fn exchange(
        &mut self,
        wire: &Wire,
        req: Request<'_>,
        max_reply: usize,
        deadline: Instant,
    ) -> Result<Reply<'_>, CallError> {
        match wire {
            Wire::Raw(sizes) => self.exchange_raw(*sizes, req, deadline),
            Wire::Framed(cfg) => {
                let limits = Limits {
                    max_inline: cfg.limits.max_inline.min(u32::try_from(max_reply).unwrap_or(u32::MAX)),
                    max_memfd: cfg.limits.max_memfd.min(u64::try_from(max_reply).unwrap_or(u64::MAX)),
                };
                self.exchange_framed(cfg, &limits, req, deadline)
            }
        }
    }

    fn exchange_raw(
        &mut self,
        sizes: RawSizes,
        req: Request<'_>,
        deadline: Instant,
    ) -> Result<Reply<'_>, CallError> {
        let Request::Bytes(bytes) = req else {
            return Err(CallError::BadRequest("raw drivers take one slice of bytes".into()));
        };
        if bytes.len() != sizes.request {
            return Err(CallError::BadRequest(format!(
                "request is {} bytes; this raw driver takes exactly {}",
                bytes.len(),
                sizes.request
            )));
        }
        chan::write_all(self.endpoint(), &[bytes], None, Some(deadline)).map_err(CallError::Send)?;
        if self.buf.len() < sizes.reply {
            self.buf.resize(sizes.reply, 0);
        }
        let ep = Endpoint {
            rx: self.process.rx.as_fd(),
            tx: self.process.tx.as_fd(),
            socket: self.process.socket,
        };
        let mut fds = Vec::new();
        let mut got = 0;
        // A one-byte probe after the reply catches a handler that wrote more than
        // the fixed size, at no extra system call.
        let mut probe = [0u8; 1];
        while got < sizes.reply {
            let n = chan::read_some(
                ep,
                &mut [IoSliceMut::new(&mut self.buf[got..sizes.reply]), IoSliceMut::new(&mut probe)],
                &mut fds,
                Some(deadline),
            )?;
            if n == 0 {
                return Err(ChanError::Eof { got, wanted: sizes.reply }.into());
            }
            got += n;
        }
        if got > sizes.reply || !fds.is_empty() {
            return Err(ChanError::Trailing.into());
        }
        Ok(Reply::Bytes(&self.buf[..sizes.reply]))
    }

    fn exchange_framed(
        &mut self,
        cfg: &FramedConfig,
        reply_limits: &Limits,
        req: Request<'_>,
        deadline: Instant,
    ) -> Result<Reply<'_>, CallError> {
        let (kind, payload) = match req {
            Request::Bytes(b) => {
                if b.len() > cfg.limits.max_inline as usize {
                    return Err(CallError::BadRequest(format!(
                        "request of {} bytes exceeds the inline limit of {} bytes (send it as a memfd)",
                        b.len(),
                        cfg.limits.max_inline
                    )));
                }
                (Kind::Request, Payload::Inline(b))
            }
            Request::Parts(parts) => {
                let len: usize = parts.iter().map(|p| p.len()).sum();
                if len > cfg.limits.max_inline as usize {
                    return Err(CallError::BadRequest(format!(
                        "request of {len} bytes exceeds the inline limit of {} bytes (send it as a memfd)",
                        cfg.limits.max_inline
                    )));
                }
                (Kind::Request, Payload::Gather(parts))
            }
            Request::Memfd(m) => {
                if !self.process.socket {
                    return Err(CallError::BadRequest("this driver's channel cannot pass memfds".into()));
                }
                if m.len() > cfg.limits.max_memfd {
                    return Err(CallError::BadRequest(format!(
                        "memfd request of {} bytes exceeds the limit of {} bytes",
                        m.len(),
                        cfg.limits.max_memfd
                    )));
                }
                (Kind::MemfdRequest, Payload::Memfd(m))
            }
        };
        if self.buf.len() > KEEP_BUFFER {
            // Left large by an error frame: not kept either.
            self.buf = Vec::new();
        }
        let ep = self.endpoint();
        chan::send_frame(ep, kind, payload, &cfg.limits, Some(deadline)).map_err(CallError::Send)?;
        let ep = Endpoint {
            rx: self.process.rx.as_fd(),
            tx: self.process.tx.as_fd(),
            socket: self.process.socket,
        };
        match chan::recv_frame(ep, reply_limits, &mut self.buf, Some(deadline))? {
            Received::Inline { kind: Kind::Reply, len } if self.buf.len() > KEEP_BUFFER => {
                let mut owned = std::mem::take(&mut self.buf);
                owned.truncate(len);
                Ok(Reply::Owned(owned))
            }
            Received::Inline { kind: Kind::Reply, len } => Ok(Reply::Bytes(&self.buf[..len])),
            Received::Memfd { kind: Kind::MemfdReply, memfd } => {
                let map = memfd.map().map_err(|e| ChanError::Io { op: "mapping reply memfd", source: e })?;
                Ok(Reply::Memfd(map))
            }
            Received::Inline { kind: Kind::Error, len } => {
                let text = &self.buf[..len.min(MAX_HANDLER_MESSAGE)];
                Err(CallError::Handler(String::from_utf8_lossy(text).into_owned()))
            }
            Received::Inline { kind, .. } | Received::Memfd { kind, .. } => {
                Err(ChanError::UnexpectedKind(kind).into())
            }
        }
    }
}
