//! Moving bytes and frames over a pair of fds, with deadlines.
//!
//! Both sides use these functions. The manager keeps its ends non-blocking and
//! passes a deadline: every wait is a `poll(2)` bounded by the time left, so no
//! call can block past its deadline. A handler passes `None` and blocks.
//!
//! When the channel is a Unix stream socket (framed mode with memfd payloads), data
//! moves with `sendmsg(2)`/`recvmsg(2)` so an fd can ride along (`SCM_RIGHTS`), and
//! sends use `MSG_NOSIGNAL`. On pipes, plain `writev(2)`/`readv(2)` are used.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Instant;

use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;
use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer, SendFlags};

use crate::memfd::{MemfdError, SealedMemfd};
use crate::{FrameHeader, HeaderError, Kind, Limits, HEADER_LEN, MEMFD_BODY_LEN};

/// Why moving a frame failed.
#[derive(Debug)]
pub enum ChanError {
    /// A system call failed.
    Io {
        /// What was being done.
        op: &'static str,
        /// The error.
        source: io::Error,
    },
    /// The peer closed the channel after `got` of `wanted` bytes.
    Eof {
        /// Bytes received before the end.
        got: usize,
        /// Bytes expected.
        wanted: usize,
    },
    /// The deadline passed.
    Timeout,
    /// A frame header was refused.
    Header(HeaderError),
    /// A received memfd was refused.
    Memfd(MemfdError),
    /// A memfd frame arrived without an fd, or more than one fd arrived.
    Fds {
        /// How many fds arrived.
        got: usize,
        /// How many were expected.
        wanted: usize,
    },
    /// The peer sent a frame of a kind it may not send.
    UnexpectedKind(Kind),
    /// The peer sent more bytes than its frame (or fixed reply size) announced.
    Trailing,
}

impl std::fmt::Display for ChanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChanError::Io { op, source } => write!(f, "{op}: {source}"),
            ChanError::Eof { got: 0, wanted } => write!(f, "channel closed (expected {wanted} bytes)"),
            ChanError::Eof { got, wanted } => {
                write!(f, "channel closed after {got} of {wanted} bytes (short message)")
            }
            ChanError::Timeout => write!(f, "deadline passed"),
            ChanError::Header(e) => write!(f, "bad frame header: {e}"),
            ChanError::Memfd(e) => write!(f, "bad memfd payload: {e}"),
            ChanError::Fds { got, wanted } => {
                write!(f, "received {got} fds with a frame that needs {wanted}")
            }
            ChanError::UnexpectedKind(k) => write!(f, "unexpected frame kind {k:?}"),
            ChanError::Trailing => write!(f, "peer sent more bytes than its message announced"),
        }
    }
}

impl std::error::Error for ChanError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ChanError::Io { source, .. } => Some(source),
            ChanError::Header(e) => Some(e),
            ChanError::Memfd(e) => Some(e),
            _ => None,
        }
    }
}

fn io_err(op: &'static str, e: Errno) -> ChanError {
    ChanError::Io { op, source: e.into() }
}

/// The two fds of one side of a channel.
#[derive(Clone, Copy, Debug)]
pub struct Endpoint<'a> {
    /// Where this side reads.
    pub rx: BorrowedFd<'a>,
    /// Where this side writes.
    pub tx: BorrowedFd<'a>,
    /// Whether the fds are a Unix stream socket (fd passing possible).
    pub socket: bool,
}

/// Waits until `fd` is ready for `events` or the deadline passes.
pub fn wait(fd: BorrowedFd<'_>, events: PollFlags, deadline: Option<Instant>) -> Result<(), ChanError> {
    loop {
        let timeout = match deadline {
            None => None,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(ChanError::Timeout);
                }
                Some(rustix::time::Timespec {
                    tv_sec: left.as_secs() as i64,
                    tv_nsec: i64::from(left.subsec_nanos()),
                })
            }
        };
        let mut fds = [PollFd::from_borrowed_fd(fd, events)];
        match rustix::event::poll(&mut fds, timeout.as_ref()) {
            Ok(0) => return Err(ChanError::Timeout),
            // Readiness, an error or a hang-up: the next read/write reports which.
            Ok(_) => return Ok(()),
            Err(Errno::INTR) => {}
            Err(e) => return Err(io_err("poll", e)),
        }
    }
}

/// Writes all of `bufs` (gathered), waiting for room until the deadline. On a
/// socket, `pass` (if any) is attached to the first byte sent.
pub fn write_all(
    ep: Endpoint<'_>,
    bufs: &[&[u8]],
    mut pass: Option<BorrowedFd<'_>>,
    deadline: Option<Instant>,
) -> Result<(), ChanError> {
    let total: usize = bufs.iter().map(|b| b.len()).sum();
    let mut done = 0usize;
    while done < total {
        // Build the iovecs for what is left.
        let mut skip = done;
        let mut iov: [IoSlice<'_>; 4] =
            [IoSlice::new(&[]), IoSlice::new(&[]), IoSlice::new(&[]), IoSlice::new(&[])];
        let mut n_iov = 0;
        for b in bufs {
            if skip >= b.len() {
                skip -= b.len();
                continue;
            }
            if n_iov < iov.len() {
                iov[n_iov] = IoSlice::new(&b[skip..]);
                n_iov += 1;
            }
            skip = 0;
        }
        let r = if ep.socket {
            let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
            let mut control = SendAncillaryBuffer::new(&mut space);
            let fds;
            if let Some(fd) = pass {
                fds = [fd];
                control.push(rustix::net::SendAncillaryMessage::ScmRights(&fds));
            }
            rustix::net::sendmsg(ep.tx, &iov[..n_iov], &mut control, SendFlags::NOSIGNAL)
        } else {
            rustix::io::writev(ep.tx, &iov[..n_iov])
        };
        match r {
            Ok(n) => {
                done += n;
                if n > 0 {
                    pass = None;
                }
            }
            Err(Errno::INTR) => {}
            Err(Errno::AGAIN) => wait(ep.tx, PollFlags::OUT, deadline)?,
            Err(e) => return Err(io_err("write", e)),
        }
    }
    Ok(())
}

/// Reads at least one byte into `bufs` (scattered), waiting until the deadline.
/// Returns 0 at end of stream. Fds that arrive (sockets only) are appended to `fds`.
pub fn read_some(
    ep: Endpoint<'_>,
    bufs: &mut [IoSliceMut<'_>],
    fds: &mut Vec<OwnedFd>,
    deadline: Option<Instant>,
) -> Result<usize, ChanError> {
    loop {
        let r = if ep.socket {
            // Room for a few fds so a peer that sends too many is detected (the
            // kernel closes any that do not fit).
            let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(4))];
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let r = rustix::net::recvmsg(ep.rx, bufs, &mut control, RecvFlags::CMSG_CLOEXEC);
            for msg in control.drain() {
                if let RecvAncillaryMessage::ScmRights(received) = msg {
                    fds.extend(received);
                }
            }
            r.map(|m| m.bytes)
        } else {
            rustix::io::readv(ep.rx, bufs)
        };
        match r {
            Ok(n) => return Ok(n),
            Err(Errno::INTR) => {}
            Err(Errno::AGAIN) => wait(ep.rx, PollFlags::IN, deadline)?,
            Err(e) => return Err(io_err("read", e)),
        }
    }
}

/// Reads exactly `buf.len()` bytes.
pub fn read_exact(
    ep: Endpoint<'_>,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
    deadline: Option<Instant>,
) -> Result<(), ChanError> {
    let wanted = buf.len();
    let mut got = 0;
    while got < wanted {
        let n = read_some(ep, &mut [IoSliceMut::new(&mut buf[got..])], fds, deadline)?;
        if n == 0 {
            return Err(ChanError::Eof { got, wanted });
        }
        got += n;
    }
    Ok(())
}

/// Whether bytes are waiting on `rx` right now (without consuming them). Used to
/// catch a peer that wrote more than its message.
pub fn has_pending(rx: BorrowedFd<'_>) -> Result<bool, ChanError> {
    let mut fds = [PollFd::from_borrowed_fd(rx, PollFlags::IN)];
    match rustix::event::poll(&mut fds, Some(&rustix::time::Timespec { tv_sec: 0, tv_nsec: 0 })) {
        Ok(0) => Ok(false),
        Ok(_) => Ok(fds[0].revents().contains(PollFlags::IN)),
        Err(Errno::INTR) => Ok(false),
        Err(e) => Err(io_err("poll", e)),
    }
}

/// An outgoing framed payload.
#[derive(Clone, Copy, Debug)]
pub enum Payload<'a> {
    /// Bytes copied through the channel.
    Inline(&'a [u8]),
    /// Bytes copied through the channel, gathered from several slices (one
    /// inline payload: a command byte and the data it is about, say, without
    /// first copying them into one buffer).
    Gather(&'a [&'a [u8]]),
    /// A sealed memfd passed with `SCM_RIGHTS` (sockets only).
    Memfd(&'a SealedMemfd),
}

/// Sends one frame.
pub fn send_frame(
    ep: Endpoint<'_>,
    kind: Kind,
    payload: Payload<'_>,
    limits: &Limits,
    deadline: Option<Instant>,
) -> Result<(), ChanError> {
    match payload {
        Payload::Inline(bytes) => {
            let len = u32::try_from(bytes.len()).ok().filter(|&l| l <= limits.max_inline).ok_or(
                ChanError::Header(HeaderError::TooLarge {
                    len: bytes.len() as u64,
                    max: u64::from(limits.max_inline),
                }),
            )?;
            let header = FrameHeader::new(kind, len).encode();
            write_all(ep, &[&header, bytes], None, deadline)
        }
        Payload::Gather(parts) => {
            let total: usize = parts.iter().map(|p| p.len()).sum();
            let len =
                u32::try_from(total).ok().filter(|&l| l <= limits.max_inline).ok_or(ChanError::Header(
                    HeaderError::TooLarge { len: total as u64, max: u64::from(limits.max_inline) },
                ))?;
            let header = FrameHeader::new(kind, len).encode();
            let mut bufs: Vec<&[u8]> = Vec::with_capacity(parts.len() + 1);
            bufs.push(&header);
            bufs.extend_from_slice(parts);
            write_all(ep, &bufs, None, deadline)
        }
        Payload::Memfd(m) => {
            if m.len() > limits.max_memfd {
                return Err(ChanError::Header(HeaderError::TooLarge { len: m.len(), max: limits.max_memfd }));
            }
            let header = FrameHeader::new(kind, MEMFD_BODY_LEN as u32).encode();
            let body = crate::encode_memfd_body(m.len());
            write_all(ep, &[&header, &body], Some(m.as_fd()), deadline)
        }
    }
}

/// A received frame. An inline payload is `buf[..len]` of the buffer given to
/// [`recv_frame`]; a memfd payload has been checked (seals, size).
#[derive(Debug)]
pub enum Received {
    /// Inline payload of `len` bytes at the start of the caller's buffer.
    Inline {
        /// Frame kind.
        kind: Kind,
        /// Payload length.
        len: usize,
    },
    /// Payload in a checked, sealed memfd.
    Memfd {
        /// Frame kind.
        kind: Kind,
        /// The payload.
        memfd: SealedMemfd,
    },
}

/// How much payload the first read of a frame asks for together with the header,
/// so a small message costs one system call.
const FIRST_READ: usize = 4096;

/// The least a frame's receive buffer grows by at a time (it doubles beyond).
pub const GROW_STEP: usize = 64 << 10;

/// The size a receive buffer holding `have` bytes of a `len`-byte payload
/// grows to next: doubling, at least [`GROW_STEP`] more, never past `len`. A
/// buffer grown this way as bytes arrive, never from the announced length
/// alone, holds no more than twice what a peer sent and one step: a peer that
/// announces a large frame and stalls costs what it sent.
///
/// ```
/// use umd_wire::chan::{grown, GROW_STEP};
/// assert_eq!(grown(0, 1 << 30), GROW_STEP);
/// assert_eq!(grown(1 << 20, 1 << 30), 2 << 20);
/// assert_eq!(grown(1 << 20, 1_500_000), 1_500_000);
/// ```
pub fn grown(have: usize, len: usize) -> usize {
    len.min(have.saturating_mul(2).max(have.saturating_add(GROW_STEP)))
}

/// Receives one frame, checking the header against `limits` before any payload is
/// read, and refusing bytes beyond the frame (only one message may be in flight).
/// `buf` is reused across calls; it grows as the payload arrives (doubling, at
/// least [`GROW_STEP`] at a time), up to the largest payload seen.
pub fn recv_frame(
    ep: Endpoint<'_>,
    limits: &Limits,
    buf: &mut Vec<u8>,
    deadline: Option<Instant>,
) -> Result<Received, ChanError> {
    let mut fds = Vec::new();
    let mut header = [0u8; HEADER_LEN];
    let first = FIRST_READ.min(limits.max_inline as usize).max(MEMFD_BODY_LEN);
    if buf.len() < first {
        buf.resize(first, 0);
    }
    let mut got = 0usize;
    while got < HEADER_LEN {
        let n = {
            let (h, b) = (&mut header[got..], &mut buf[..first]);
            read_some(ep, &mut [IoSliceMut::new(h), IoSliceMut::new(b)], &mut fds, deadline)?
        };
        if n == 0 {
            return Err(ChanError::Eof { got, wanted: HEADER_LEN });
        }
        got += n;
    }
    let mut have = got - HEADER_LEN;
    let h = FrameHeader::decode(&header, limits).map_err(ChanError::Header)?;
    let len = h.len as usize;
    if have > len {
        return Err(ChanError::Trailing);
    }
    while have < len {
        // The buffer grows as bytes arrive, never from the announced length
        // alone: a peer that announces 64 MiB and stalls holds no more of the
        // receiver's memory than it has sent (twice that at most, and one
        // [`GROW_STEP`]).
        if buf.len() <= have {
            buf.resize(grown(have, len), 0);
        }
        let end = buf.len().min(len);
        let n = read_some(ep, &mut [IoSliceMut::new(&mut buf[have..end])], &mut fds, deadline)?;
        if n == 0 {
            return Err(ChanError::Eof { got: HEADER_LEN + have, wanted: HEADER_LEN + len });
        }
        have += n;
    }
    if h.kind.is_memfd() {
        if fds.len() != 1 {
            return Err(ChanError::Fds { got: fds.len(), wanted: 1 });
        }
        let mut body = [0u8; MEMFD_BODY_LEN];
        body.copy_from_slice(&buf[..MEMFD_BODY_LEN]);
        let announced = crate::decode_memfd_body(&body, limits).map_err(ChanError::Header)?;
        let fd = fds.pop().ok_or(ChanError::Fds { got: 0, wanted: 1 })?;
        let memfd = SealedMemfd::from_received(fd, announced).map_err(ChanError::Memfd)?;
        Ok(Received::Memfd { kind: h.kind, memfd })
    } else {
        if !fds.is_empty() {
            return Err(ChanError::Fds { got: fds.len(), wanted: 0 });
        }
        Ok(Received::Inline { kind: h.kind, len })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memfd::Exec;
    use rustix::net::{AddressFamily, SocketFlags, SocketType};

    fn pair() -> (OwnedFd, OwnedFd) {
        rustix::net::socketpair(AddressFamily::UNIX, SocketType::STREAM, SocketFlags::CLOEXEC, None).unwrap()
    }

    fn ep(fd: &OwnedFd) -> Endpoint<'_> {
        Endpoint { rx: fd.as_fd(), tx: fd.as_fd(), socket: true }
    }

    #[test]
    fn inline_and_memfd_frames_cross_a_socketpair() {
        let (a, b) = pair();
        let limits = Limits::default();
        send_frame(ep(&a), Kind::Request, Payload::Inline(b"ping"), &limits, None).unwrap();
        let mut buf = Vec::new();
        match recv_frame(ep(&b), &limits, &mut buf, None).unwrap() {
            Received::Inline { kind: Kind::Request, len: 4 } => assert_eq!(&buf[..4], b"ping"),
            other => panic!("{other:?}"),
        }
        let m = SealedMemfd::from_bytes(c"p", &[9u8; 100_000], Exec::Data).unwrap();
        send_frame(ep(&a), Kind::MemfdRequest, Payload::Memfd(&m), &limits, None).unwrap();
        match recv_frame(ep(&b), &limits, &mut buf, None).unwrap() {
            Received::Memfd { kind: Kind::MemfdRequest, memfd } => {
                assert_eq!(memfd.to_vec().unwrap(), vec![9u8; 100_000])
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn trailing_bytes_after_a_frame_are_refused() {
        let (a, b) = pair();
        let mut frame = FrameHeader::new(Kind::Reply, 2).encode().to_vec();
        frame.extend_from_slice(b"okEXTRA");
        write_all(ep(&a), &[&frame], None, None).unwrap();
        let mut buf = Vec::new();
        assert!(matches!(recv_frame(ep(&b), &Limits::default(), &mut buf, None), Err(ChanError::Trailing)));
    }

    #[test]
    fn silent_peer_times_out_at_the_deadline() {
        let (_a, b) = pair();
        rustix::io::ioctl_fionbio(&b, true).unwrap();
        let mut buf = Vec::new();
        let d = Instant::now() + std::time::Duration::from_millis(30);
        let r = recv_frame(ep(&b), &Limits::default(), &mut buf, Some(d));
        assert!(matches!(r, Err(ChanError::Timeout)));
        assert!(Instant::now() >= d);
    }

    #[test]
    fn memfd_frame_without_fd_is_refused() {
        let (a, b) = pair();
        let mut frame = FrameHeader::new(Kind::MemfdReply, 8).encode().to_vec();
        frame.extend_from_slice(&5u64.to_le_bytes());
        write_all(ep(&a), &[&frame], None, None).unwrap();
        let mut buf = Vec::new();
        assert!(matches!(
            recv_frame(ep(&b), &Limits::default(), &mut buf, None),
            Err(ChanError::Fds { got: 0, wanted: 1 })
        ));
    }

    #[test]
    fn a_stalled_frame_holds_no_more_than_what_arrived() {
        let (a, b) = pair();
        rustix::io::ioctl_fionbio(&b, true).unwrap();
        let limits = Limits { max_inline: 64 << 20, ..Limits::default() };
        // Announces 64 MiB, sends 200 KiB, stalls.
        let mut frame = FrameHeader::new(Kind::Reply, 64 << 20).encode().to_vec();
        frame.extend_from_slice(&[7; 200 << 10]);
        let writer = std::thread::spawn(move || {
            write_all(ep(&a), &[&frame], None, None).unwrap();
            a
        });
        let mut buf = Vec::new();
        let d = Instant::now() + std::time::Duration::from_millis(300);
        assert!(matches!(recv_frame(ep(&b), &limits, &mut buf, Some(d)), Err(ChanError::Timeout)));
        let _a = writer.join().unwrap();
        assert!(
            buf.capacity() <= 2 * (200 << 10) + GROW_STEP,
            "{} bytes for 200 KiB received",
            buf.capacity()
        );
    }

    #[test]
    fn peer_closing_mid_frame_is_a_short_message() {
        let (a, b) = pair();
        let mut frame = FrameHeader::new(Kind::Reply, 100).encode().to_vec();
        frame.extend_from_slice(&[1; 10]);
        write_all(ep(&a), &[&frame], None, None).unwrap();
        drop(a);
        let mut buf = Vec::new();
        assert!(matches!(
            recv_frame(ep(&b), &Limits::default(), &mut buf, None),
            Err(ChanError::Eof { got: 18, wanted: 108 })
        ));
    }
}
