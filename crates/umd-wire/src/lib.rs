//! The umd wire format: the one place that decides how bytes travel between the
//! manager and a handler.
//!
//! Two modes exist:
//!
//! * **Raw** — no header at all: the manager writes a fixed-size request and reads a
//!   fixed-size reply. This is byte for byte what the Linux kernel's user mode
//!   driver sample does, so a C handler written for it runs unchanged. Sizes are a
//!   property of the driver ([`RawSizes`]).
//! * **Framed** — every message is a [`FrameHeader`] (8 bytes) followed by its
//!   payload. The header carries a magic, a version, a [`Kind`] and the payload
//!   length, which both sides check against an explicit maximum *before* reading or
//!   allocating anything. The service protocol (`umd-service`) frames its
//!   messages with the same header ([`Kind::Request`] and [`Kind::Reply`]).
//!
//! A framed payload may instead travel as a sealed memfd passed with `SCM_RIGHTS`
//! ([`Kind::MemfdRequest`] / [`Kind::MemfdReply`]): the frame then carries only the
//! payload length (8 bytes, little endian) and the receiver checks the seals in
//! [`REQUIRED_SEALS`] and the size before it maps the memory.
//!
//! The handler side links this crate, and handler code is the code that sees
//! hostile input: it depends on nothing but `rustix`. [`chan`] moves frames over a
//! pair of fds (with optional deadlines, used by the manager); [`memfd`] creates,
//! seals, checks and maps memfd payloads.
//!
//! ```
//! use umd_wire::{FrameHeader, Kind, Limits};
//! let h = FrameHeader::new(Kind::Request, 64);
//! let bytes = h.encode();
//! let back = FrameHeader::decode(&bytes, &Limits::default()).unwrap();
//! assert_eq!(back, h);
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(missing_docs)]

use core::fmt;

pub mod chan;
#[cfg(feature = "counting")]
pub mod counting;
#[cfg(feature = "decode")]
pub mod decode;
pub mod memfd;

/// First two bytes of every frame: `"UM"`.
pub const MAGIC: [u8; 2] = *b"UM";
/// The only protocol version this build speaks. A peer that sends another version
/// is refused with [`HeaderError::Version`].
pub const VERSION: u8 = 1;
/// Size of an encoded [`FrameHeader`].
pub const HEADER_LEN: usize = 8;
/// Size of the body of a memfd frame: the payload length as `u64` little endian.
pub const MEMFD_BODY_LEN: usize = 8;

/// Default maximum inline payload: 16 MiB. Larger payloads should travel as a
/// memfd; the bound keeps a lying peer from making the receiver allocate without
/// limit.
pub const DEFAULT_MAX_INLINE: u32 = 16 << 20;
/// Default maximum memfd payload: 1 GiB.
pub const DEFAULT_MAX_MEMFD: u64 = 1 << 30;

/// `F_SEAL_SEAL` (see `fcntl(2)`): no further seals may be added.
pub const SEAL_SEAL: u32 = 0x0001;
/// `F_SEAL_SHRINK`: the file may not shrink (a mapping could otherwise fault).
pub const SEAL_SHRINK: u32 = 0x0002;
/// `F_SEAL_GROW`: the file may not grow.
pub const SEAL_GROW: u32 = 0x0004;
/// `F_SEAL_WRITE`: the contents may not change any more.
pub const SEAL_WRITE: u32 = 0x0008;
/// Seals a receiver insists on before it reads a memfd payload: without them the
/// sender could change or truncate the bytes while (or after) they are checked.
pub const REQUIRED_SEALS: u32 = SEAL_SEAL | SEAL_SHRINK | SEAL_GROW | SEAL_WRITE;

/// What a frame carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    /// Manager to handler: the payload is the request.
    Request = 1,
    /// Handler to manager: the payload is the reply.
    Reply = 2,
    /// Handler to manager: the request failed; the payload is a UTF-8 message.
    Error = 3,
    /// Manager to handler: the request is in the attached sealed memfd.
    MemfdRequest = 4,
    /// Handler to manager: the reply is in the attached sealed memfd.
    MemfdReply = 5,
    /// Manager to a handler built on `umd-handler`, once, right after start: how to
    /// confine itself ([`handshake::Config`]).
    Config = 6,
    /// Handler to manager, once, in answer to [`Kind::Config`]: confinement is in
    /// place and the handler is ready for requests.
    Ready = 7,
}

impl Kind {
    /// Decodes a kind byte.
    pub fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Request,
            2 => Kind::Reply,
            3 => Kind::Error,
            4 => Kind::MemfdRequest,
            5 => Kind::MemfdReply,
            6 => Kind::Config,
            7 => Kind::Ready,
            _ => return None,
        })
    }

    /// Whether the frame's payload lives in an attached memfd.
    pub fn is_memfd(self) -> bool {
        matches!(self, Kind::MemfdRequest | Kind::MemfdReply)
    }

    /// Whether a handler may send this kind.
    pub fn from_handler(self) -> bool {
        matches!(self, Kind::Reply | Kind::Error | Kind::MemfdReply | Kind::Ready)
    }
}

/// The start-up handshake between the manager and a handler built on `umd-handler`.
///
/// Such a handler is started with `argv[0]` beginning with [`handshake::ARGV0_PREFIX`].
/// Before anything else it reads one [`Kind::Config`] frame, confines itself as the
/// frame says (seccomp allow-list, widened by the driver's extra calls), and answers
/// with an empty [`Kind::Ready`] frame. Only then does the manager check the
/// confinement in `/proc` and send the first request. The config comes from the
/// manager before any hostile input has been read, so the handler can trust it.
pub mod handshake {
    /// `argv[0]` prefix that tells a runtime handler to expect the handshake.
    pub const ARGV0_PREFIX: &str = "umd-handler:";
    /// Largest config payload.
    pub const MAX_CONFIG: usize = 4096;
    /// Start of the stderr line a runtime handler's SIGSYS reporter writes before it
    /// dies, followed by the system call number in decimal and a newline.
    pub const VIOLATION_PREFIX: &[u8] = b"umd-handler: seccomp violation: syscall ";

    /// Confinement a runtime handler applies to itself.
    #[derive(Clone, Debug, Default, PartialEq, Eq)]
    pub struct Config {
        /// Install the seccomp allow-list.
        pub seccomp: bool,
        /// Allow creating memfds for large replies.
        pub memfd_replies: bool,
        /// Extra system calls the driver allows (by name).
        pub extra_syscalls: Vec<String>,
    }

    impl Config {
        /// Encodes as `flags u8` + comma-separated names.
        pub fn encode(&self) -> Vec<u8> {
            let flags = u8::from(self.seccomp) | (u8::from(self.memfd_replies) << 1);
            let mut v = vec![flags];
            v.extend_from_slice(self.extra_syscalls.join(",").as_bytes());
            v
        }

        /// Decodes a config payload.
        pub fn decode(b: &[u8]) -> Option<Config> {
            let (&flags, names) = b.split_first()?;
            if flags & !3 != 0 || b.len() > MAX_CONFIG {
                return None;
            }
            let names = std::str::from_utf8(names).ok()?;
            let extra_syscalls = names.split(',').filter(|n| !n.is_empty()).map(str::to_string).collect();
            Some(Config { seccomp: flags & 1 != 0, memfd_replies: flags & 2 != 0, extra_syscalls })
        }
    }
}

/// Size limits a receiver applies before it reads a payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest inline payload accepted, in bytes.
    pub max_inline: u32,
    /// Largest memfd payload accepted, in bytes.
    pub max_memfd: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_inline: DEFAULT_MAX_INLINE, max_memfd: DEFAULT_MAX_MEMFD }
    }
}

/// The 8-byte header in front of every framed message.
///
/// Layout: `magic[2] | version u8 | kind u8 | length u32 (little endian)`.
/// For memfd kinds `length` is [`MEMFD_BODY_LEN`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// What the frame carries.
    pub kind: Kind,
    /// Length of the payload that follows the header.
    pub len: u32,
}

impl FrameHeader {
    /// A header for a payload of `len` bytes.
    pub fn new(kind: Kind, len: u32) -> Self {
        FrameHeader { kind, len }
    }

    /// Encodes the header.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let l = self.len.to_le_bytes();
        [MAGIC[0], MAGIC[1], VERSION, self.kind as u8, l[0], l[1], l[2], l[3]]
    }

    /// Decodes and checks a header: magic, version, kind, and the length against
    /// `limits` (an inline payload over `max_inline`, or a memfd frame whose body is
    /// not exactly [`MEMFD_BODY_LEN`], is refused).
    pub fn decode(b: &[u8; HEADER_LEN], limits: &Limits) -> Result<FrameHeader, HeaderError> {
        if b[0..2] != MAGIC {
            return Err(HeaderError::Magic([b[0], b[1]]));
        }
        if b[2] != VERSION {
            return Err(HeaderError::Version(b[2]));
        }
        let kind = Kind::from_u8(b[3]).ok_or(HeaderError::Kind(b[3]))?;
        let len = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
        if kind.is_memfd() {
            if len as usize != MEMFD_BODY_LEN {
                return Err(HeaderError::MemfdBody(len));
            }
        } else if len > limits.max_inline {
            return Err(HeaderError::TooLarge { len: u64::from(len), max: u64::from(limits.max_inline) });
        }
        Ok(FrameHeader { kind, len })
    }
}

/// Encodes the body of a memfd frame.
pub fn encode_memfd_body(len: u64) -> [u8; MEMFD_BODY_LEN] {
    len.to_le_bytes()
}

/// Decodes the body of a memfd frame and checks the announced size.
pub fn decode_memfd_body(b: &[u8; MEMFD_BODY_LEN], limits: &Limits) -> Result<u64, HeaderError> {
    let len = u64::from_le_bytes(*b);
    if len > limits.max_memfd {
        return Err(HeaderError::TooLarge { len, max: limits.max_memfd });
    }
    Ok(len)
}

/// Why a header was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// The first two bytes were not [`MAGIC`].
    Magic([u8; 2]),
    /// An unsupported protocol version.
    Version(u8),
    /// An unknown kind byte.
    Kind(u8),
    /// A memfd frame whose body length is not [`MEMFD_BODY_LEN`].
    MemfdBody(u32),
    /// A payload larger than the receiver accepts.
    TooLarge {
        /// Announced length.
        len: u64,
        /// The receiver's maximum.
        max: u64,
    },
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::Magic(m) => write!(f, "bad frame magic {:02x}{:02x} (expected 554d)", m[0], m[1]),
            HeaderError::Version(v) => {
                write!(f, "unsupported protocol version {v} (this build speaks {VERSION})")
            }
            HeaderError::Kind(k) => write!(f, "unknown frame kind {k}"),
            HeaderError::MemfdBody(l) => {
                write!(f, "memfd frame with a {l}-byte body (expected {MEMFD_BODY_LEN})")
            }
            HeaderError::TooLarge { len, max } => {
                write!(f, "payload of {len} bytes exceeds the limit of {max} bytes")
            }
        }
    }
}

impl std::error::Error for HeaderError {}

/// Request and reply sizes of a raw-mode driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawSizes {
    /// Exact request size in bytes.
    pub request: usize,
    /// Exact reply size in bytes.
    pub reply: usize,
}

/// The sample driver's wire format, as in the kernel's sample: a `u32` offset in
/// little endian; a 128 KiB reply of zeros with byte `offset` set to 1.
pub mod sample {
    use super::RawSizes;
    /// Size of the reply, and the exclusive upper bound of a valid offset.
    pub const REPLY_LEN: usize = 128 * 1024;
    /// Size of the request.
    pub const REQUEST_LEN: usize = 4;
    /// The sample's raw sizes.
    pub const SIZES: RawSizes = RawSizes { request: REQUEST_LEN, reply: REPLY_LEN };
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn header_round_trips_every_kind() {
        for k in [Kind::Request, Kind::Reply, Kind::Error] {
            let h = FrameHeader::new(k, 123);
            assert_eq!(FrameHeader::decode(&h.encode(), &Limits::default()), Ok(h));
        }
        for k in [Kind::MemfdRequest, Kind::MemfdReply] {
            let h = FrameHeader::new(k, MEMFD_BODY_LEN as u32);
            assert_eq!(FrameHeader::decode(&h.encode(), &Limits::default()), Ok(h));
        }
    }

    #[test]
    fn handshake_config_round_trips() {
        use handshake::Config;
        let c = Config {
            seccomp: true,
            memfd_replies: false,
            extra_syscalls: vec!["nanosleep".into(), "uname".into()],
        };
        assert_eq!(Config::decode(&c.encode()), Some(c));
        assert_eq!(Config::decode(&[]), None);
        assert_eq!(Config::decode(&[0x80]), None);
    }

    #[test]
    fn oversized_inline_payload_is_refused_before_reading() {
        let limits = Limits { max_inline: 100, max_memfd: 1000 };
        let h = FrameHeader::new(Kind::Reply, 101).encode();
        assert_eq!(FrameHeader::decode(&h, &limits), Err(HeaderError::TooLarge { len: 101, max: 100 }));
        assert_eq!(
            decode_memfd_body(&encode_memfd_body(1001), &limits),
            Err(HeaderError::TooLarge { len: 1001, max: 1000 })
        );
    }

    #[test]
    fn wrong_magic_version_and_kind_are_refused() {
        let mut h = FrameHeader::new(Kind::Reply, 1).encode();
        h[0] = b'X';
        assert!(matches!(FrameHeader::decode(&h, &Limits::default()), Err(HeaderError::Magic(_))));
        let mut h = FrameHeader::new(Kind::Reply, 1).encode();
        h[2] = 9;
        assert_eq!(FrameHeader::decode(&h, &Limits::default()), Err(HeaderError::Version(9)));
        let mut h = FrameHeader::new(Kind::Reply, 1).encode();
        h[3] = 0;
        assert_eq!(FrameHeader::decode(&h, &Limits::default()), Err(HeaderError::Kind(0)));
    }

    proptest! {
        #[test]
        fn decode_never_panics_and_accepts_only_in_limit(bytes in proptest::array::uniform8(any::<u8>())) {
            let limits = Limits { max_inline: 4096, max_memfd: 1 << 20 };
            if let Ok(h) = FrameHeader::decode(&bytes, &limits) {
                prop_assert_eq!(h.encode(), bytes);
                prop_assert!(h.kind.is_memfd() || h.len <= 4096);
            }
        }
    }
}
