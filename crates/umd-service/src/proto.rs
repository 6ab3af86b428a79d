//! The client protocol: one frame format, versioned, with explicit size limits.
//! `docs/protocol.md` is the specification; this module is the one place it is
//! implemented (server and client both use it).
//!
//! A frame is an 8-byte header and a body:
//!
//! ```text
//! 0      2         3      4                8
//! | "UM" | version | kind | body length LE | body (postcard) ...
//! ```
//!
//! The header is umd-wire's [`FrameHeader`]: the same magic, version and
//! layout as between the manager and its handlers, a request being
//! [`umd_wire::Kind::Request`] and a response [`umd_wire::Kind::Reply`].
//!
//! The receiver checks magic, version, kind and length *before* it reads or
//! allocates the body: a frame longer than the receiver's limit is refused
//! without reading it. The body is read into a buffer that grows as its bytes
//! arrive, and decoded with the bounded decoder of `umd-wire`: nesting at most
//! [`MAX_DEPTH`] deep, and what decoding allocates charged as it goes, at most
//! [`max_decoded`] (three times the body and 16 MiB, so that body and decoded
//! value together stay within four times the body and 16 MiB).
//!
//! ```
//! use umd_service::proto::{self, Request, Kind};
//! let frame = proto::encode(Kind::Request, &Request::Sample { offset: 4096 }).unwrap();
//! let header = proto::Header::parse(frame[..8].try_into().unwrap(), Kind::Request, 1 << 20).unwrap();
//! let req: Request = proto::decode(&frame[8..8 + header.len]).unwrap();
//! assert_eq!(req, Request::Sample { offset: 4096 });
//! ```

use serde::{Deserialize, Serialize};
use umd_wire::decode::{Budget, Charge, DecodeError};
use umd_wire::{FrameHeader, HeaderError};

pub use umd_wire::{HEADER_LEN, MAGIC, VERSION};
/// Default (and largest configurable) request body: keyrings, signature and data
/// of one verification travel in one request.
pub const DEFAULT_MAX_REQUEST: usize = 8 << 20;
/// Hard ceiling of a request body, whatever the configuration says.
pub const MAX_REQUEST_CEILING: usize = 64 << 20;
/// Largest response body a client accepts (a verified cleartext text is at most
/// the request's size).
pub const MAX_RESPONSE: usize = MAX_REQUEST_CEILING + (1 << 20);

/// Deepest nesting of a message, as the decoder counts it (a response, its
/// status, the driver list, a driver, its handler list: 5); the limit leaves
/// room.
pub const MAX_DEPTH: usize = 16;

/// The most a body of `len` bytes may allocate once decoded: three times the
/// body and 16 MiB. A verification request decodes to about its own size
/// (the files it carries, copied out of the body); what takes more is many
/// small items (eight million empty keyrings in an 8 MB body would take
/// 192 MB) and is refused while it is decoded.
///
/// ```
/// assert_eq!(umd_service::proto::max_decoded(1 << 20), (3 << 20) + (16 << 20));
/// ```
pub fn max_decoded(len: usize) -> usize {
    len.saturating_mul(3).saturating_add(16 << 20)
}

/// Which way a frame goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Client to service ([`umd_wire::Kind::Request`] on the wire).
    Request,
    /// Service to client ([`umd_wire::Kind::Reply`] on the wire).
    Response,
}

impl Kind {
    /// The frame kind on the wire.
    pub fn wire(self) -> umd_wire::Kind {
        match self {
            Kind::Request => umd_wire::Kind::Request,
            Kind::Response => umd_wire::Kind::Reply,
        }
    }
}

/// Why a frame header was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// Not a umd frame.
    #[error("not a umd protocol frame (bad magic {0:02x?})")]
    Magic([u8; 2]),
    /// A version this side does not speak.
    #[error("protocol version {0} is not supported (this side speaks version {VERSION})")]
    Version(u8),
    /// A response where a request was expected, or the reverse.
    #[error("unexpected frame kind {0}")]
    Kind(u8),
    /// Body longer than the limit.
    #[error("frame body of {len} bytes exceeds the {limit}-byte limit")]
    TooLarge {
        /// Announced length.
        len: usize,
        /// The receiver's limit.
        limit: usize,
    },
    /// The body does not decode.
    #[error("malformed frame body: {0}")]
    Body(String),
    /// Decoding the body would allocate more than it may ([`max_decoded`], or
    /// the service's request memory budget).
    #[error("the frame body would take {0} once decoded")]
    Costly(String),
}

/// A checked frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Body length, within the limit it was checked against.
    pub len: usize,
}

impl Header {
    /// Checks a header: magic, version, kind and `len <= limit`
    /// ([`FrameHeader::decode`], then the kind this side expects).
    pub fn parse(b: &[u8; HEADER_LEN], want: Kind, limit: usize) -> Result<Header, FrameError> {
        let limits = umd_wire::Limits { max_inline: u32::try_from(limit).unwrap_or(u32::MAX), max_memfd: 0 };
        let h = FrameHeader::decode(b, &limits).map_err(|e| match e {
            HeaderError::Magic(m) => FrameError::Magic(m),
            HeaderError::Version(v) => FrameError::Version(v),
            // A kind of the manager's channel (a memfd frame) is no kind here.
            HeaderError::Kind(k) => FrameError::Kind(k),
            HeaderError::MemfdBody(_) => FrameError::Kind(b[3]),
            HeaderError::TooLarge { len, .. } => {
                FrameError::TooLarge { len: usize::try_from(len).unwrap_or(usize::MAX), limit }
            }
        })?;
        if h.kind != want.wire() {
            return Err(FrameError::Kind(b[3]));
        }
        Ok(Header { len: h.len as usize })
    }

    /// The header of a body of `len` bytes.
    pub fn bytes(kind: Kind, len: u32) -> [u8; HEADER_LEN] {
        FrameHeader::new(kind.wire(), len).encode()
    }
}

/// [`Request::VerifyRef`] with borrowed bytes: what a client encodes without
/// copying its document first. Same fields, same order, same encoding.
#[derive(Serialize)]
struct VerifyRefBorrowed<'a> {
    keyring: KeyringRefBorrowed<'a>,
    #[serde(with = "serde_bytes")]
    signature: &'a [u8],
    #[serde(with = "serde_bytes")]
    data: Option<&'a [u8]>,
    required: u32,
    want_text: bool,
}

/// [`KeyringRef`], borrowed; the variants in the same order.
#[derive(Serialize)]
enum KeyringRefBorrowed<'a> {
    Handle(KeyringHandle),
    Keyrings(#[serde(serialize_with = "keyrings_borrowed")] &'a [Vec<u8>]),
}

fn keyrings_borrowed<S: serde::Serializer>(v: &&[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
    byte_strings::serialize(v, s)
}

/// The frame of a [`Request::VerifyRef`] against `keyrings` (by `handle` when
/// given, else the keyrings themselves), encoded from borrowed bytes: the same
/// bytes as [`encode`] of the owned request.
pub fn encode_verify_ref(
    keyrings: &[Vec<u8>],
    handle: Option<KeyringHandle>,
    signature: &[u8],
    data: Option<&[u8]>,
    required: u32,
    want_text: bool,
) -> Result<Vec<u8>, FrameError> {
    let keyring = match handle {
        Some(h) => KeyringRefBorrowed::Handle(h),
        None => KeyringRefBorrowed::Keyrings(keyrings),
    };
    let body = VerifyRefBorrowed { keyring, signature, data, required, want_text };
    // The enum tag of `Request::VerifyRef` (variant 3: one varint byte), then the
    // request as postcard writes it.
    let mut out = vec![0u8; HEADER_LEN];
    out.push(3);
    let mut out = postcard::to_extend(&body, out).map_err(|e| FrameError::Body(e.to_string()))?;
    let len = out.len() - HEADER_LEN;
    let len32 = u32::try_from(len).map_err(|_| FrameError::TooLarge { len, limit: u32::MAX as usize })?;
    out[..HEADER_LEN].copy_from_slice(&Header::bytes(Kind::Request, len32));
    Ok(out)
}

/// Encodes a whole frame (header and body).
pub fn encode<T: Serialize>(kind: Kind, msg: &T) -> Result<Vec<u8>, FrameError> {
    let mut out = vec![0u8; HEADER_LEN];
    let mut out =
        postcard::to_extend(msg, std::mem::take(&mut out)).map_err(|e| FrameError::Body(e.to_string()))?;
    let len = out.len() - HEADER_LEN;
    let len32 = u32::try_from(len).map_err(|_| FrameError::TooLarge { len, limit: u32::MAX as usize })?;
    out[..HEADER_LEN].copy_from_slice(&Header::bytes(kind, len32));
    Ok(out)
}

/// Decodes a body with the bounded decoder, within [`max_decoded`] of its
/// length; trailing bytes are an error (one encoding per message).
pub fn decode<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, FrameError> {
    decode_charging(body, &mut Budget::new(max_decoded(body.len())))
}

/// As [`decode`], charging `charge` for what decoding allocates (the service
/// charges its request memory budget, as well as [`max_decoded`]).
pub fn decode_charging<'a, T: Deserialize<'a>>(
    body: &'a [u8],
    charge: &mut dyn Charge,
) -> Result<T, FrameError> {
    umd_wire::decode::decode_charging(body, MAX_DEPTH, charge).map_err(|e| match e {
        DecodeError::Trailing { bytes } => FrameError::Body(format!("{bytes} trailing bytes")),
        DecodeError::Memory { reason } => FrameError::Costly(reason),
        e => FrameError::Body(e.to_string()),
    })
}

/// `Vec<Vec<u8>>` as a sequence of byte strings. postcard writes a byte string
/// exactly as a sequence of `u8` (length, then the bytes), so the encoding is the
/// one `docs/protocol.md` gives; this only spares serde a call per byte.
mod byte_strings {
    use serde::{Deserialize, Deserializer, Serializer};
    use serde_bytes::{ByteBuf, Bytes};

    pub fn serialize<S: Serializer>(v: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|b| Bytes::new(b)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        Ok(Vec::<ByteBuf>::deserialize(d)?.into_iter().map(ByteBuf::into_vec).collect())
    }
}

/// A driver hosted by the service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum DriverName {
    /// The sample driver.
    Sample,
    /// The OpenPGP verification driver.
    Pgp,
}

impl DriverName {
    /// Every hosted driver.
    pub const ALL: [DriverName; 2] = [DriverName::Sample, DriverName::Pgp];

    /// The name used in configuration and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            DriverName::Sample => "sample",
            DriverName::Pgp => "pgp",
        }
    }

    /// Parses a driver name.
    pub fn parse(s: &str) -> Option<DriverName> {
        DriverName::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

impl std::fmt::Display for DriverName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a client asks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Sample driver: set byte `offset` of the 128 KiB reply; the service checks
    /// the handler's reply and answers whether it was right.
    Sample {
        /// Offset in `0..131072`.
        offset: u32,
    },
    /// Verify OpenPGP signatures.
    Verify(VerifyRequest),
    /// A control operation (root and the admin group only).
    Ctl(CtlRequest),
    /// Verify OpenPGP signatures against a keyring the service keeps for the
    /// peer's uid, named by its [`KeyringHandle`], or sent along to be kept.
    VerifyRef(VerifyRefRequest),
}

/// A keyring's name in [`Request::VerifyRef`]: SHA-256 of its bytes as
/// [`KeyringHandle::of`] frames them. Both sides compute it; the service never
/// takes a client's word for which bytes a handle stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KeyringHandle(pub [u8; 32]);

impl KeyringHandle {
    /// The handle of `keyrings`: SHA-256 over `"umd keyring handle v1"`, the
    /// keyring count (u32 LE), then each keyring's length (u64 LE) and bytes.
    ///
    /// ```
    /// use umd_service::proto::KeyringHandle;
    /// let a = KeyringHandle::of(&[b"ab".to_vec(), b"c".to_vec()]);
    /// assert_ne!(a, KeyringHandle::of(&[b"a".to_vec(), b"bc".to_vec()]));
    /// assert_eq!(a.to_string().len(), 64);
    /// ```
    pub fn of(keyrings: &[Vec<u8>]) -> KeyringHandle {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(b"umd keyring handle v1");
        h.update((keyrings.len() as u32).to_le_bytes());
        for k in keyrings {
            h.update((k.len() as u64).to_le_bytes());
            h.update(k);
        }
        KeyringHandle(h.finalize().into())
    }
}

impl std::fmt::Display for KeyringHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// Which keyring a [`VerifyRefRequest`] is checked against.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyringRef {
    /// A keyring the service holds for this uid. Unknown (never sent, evicted,
    /// the service restarted): an [`ErrorKind::UnknownKeyring`] error, and the
    /// client sends the keyrings themselves.
    Handle(KeyringHandle),
    /// The keyrings (binary or armored); the service keeps them for this uid
    /// under their handle, within its per-uid limits.
    Keyrings(#[serde(with = "byte_strings")] Vec<Vec<u8>>),
}

/// An OpenPGP verification against a keyring the service keeps. As
/// [`VerifyRequest`] otherwise.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyRefRequest {
    /// The keyring.
    pub keyring: KeyringRef,
    /// A detached signature, or a cleartext-signed document when `data` is `None`.
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
    /// The signed data of a detached signature.
    #[serde(with = "serde_bytes")]
    pub data: Option<Vec<u8>>,
    /// Good signatures needed for [`VerifyStatus::Verified`].
    pub required: u32,
    /// Send a verified cleartext document's text back ([`VerifyReply::text`]);
    /// without it the reply carries the verdicts only.
    pub want_text: bool,
}

/// An OpenPGP verification. Files travel by content: the service never opens a
/// path a client names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyRequest {
    /// Keyrings (binary or armored).
    #[serde(with = "byte_strings")]
    pub keyrings: Vec<Vec<u8>>,
    /// A detached signature, or a cleartext-signed document when `data` is `None`.
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
    /// The signed data of a detached signature.
    #[serde(with = "serde_bytes")]
    pub data: Option<Vec<u8>>,
    /// Good signatures needed for [`VerifyStatus::Verified`].
    pub required: u32,
}

/// Control operations.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CtlRequest {
    /// Service and driver state.
    Status,
    /// Load a driver (start a handler and run its `post_start` check).
    Load(DriverName),
    /// Unload a driver (kill and reap its handlers; the next request loads it).
    Unload(DriverName),
    /// Counters of the service and every driver.
    Stats,
}

/// What the service answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Response {
    /// The sample reply was checked and right.
    Sample {
        /// Time spent in the driver, nanoseconds.
        latency_ns: u64,
    },
    /// The verification's outcome.
    Verify(VerifyReply),
    /// `ctl status`.
    Status(ServiceStatus),
    /// `ctl load`.
    Loaded {
        /// The driver.
        driver: DriverName,
        /// It was loaded already (nothing was done).
        already: bool,
    },
    /// `ctl unload`.
    Unloaded {
        /// The driver.
        driver: DriverName,
        /// It was loaded (handlers were killed).
        was_loaded: bool,
    },
    /// `ctl stats`.
    Stats(ServiceStats),
    /// The request failed.
    Error(ServiceError),
}

/// Why a request failed, as the client may know it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceError {
    /// The class of the failure.
    pub kind: ErrorKind,
    /// Text for people.
    pub message: String,
}

/// Classes of failure (the CLI's exit status follows from them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    /// The peer may not do this. The message says nothing else.
    Denied,
    /// Malformed frame or request, wrong version, bad argument.
    BadRequest,
    /// The request is larger than the service's limit.
    TooLarge,
    /// A limit was reached (connections, requests in flight, memory); retry later.
    Busy,
    /// The service is shutting down.
    ShuttingDown,
    /// The handler's answer was checked and wrong (a negative verdict).
    Verdict,
    /// The driver failed (handler crashed, missed its deadline, could not start).
    Driver,
    /// A [`KeyringRef::Handle`] the service does not hold for this uid: send the
    /// keyrings again. (Only ever the answer to a [`Request::VerifyRef`].)
    UnknownKeyring,
}

/// Verdict on a verification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum VerifyStatus {
    /// Enough good signatures from keyring keys, none bad.
    Verified,
    /// A bad signature from a keyring key, or too few good ones.
    Bad,
    /// No signature from a keyring key, or the input could not be read.
    CannotVerify,
}

/// One signature's verdict.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SigVerdict {
    /// Good signature.
    Good {
        /// Certificate fingerprint.
        cert: String,
        /// Signing key fingerprint.
        key: String,
        /// The certificate's first valid user ID.
        user_id: String,
    },
    /// Bad signature by a keyring key.
    Bad {
        /// Key fingerprint.
        key: String,
        /// Why.
        reason: String,
    },
    /// Issuer not in the keyring.
    UnknownKey {
        /// The issuer named.
        issuer: String,
    },
    /// Not a document signature.
    Ignored {
        /// Why.
        reason: String,
    },
}

/// The outcome of a verification.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReply {
    /// The verdict.
    pub status: VerifyStatus,
    /// Why it could not be verified at all (malformed input, keyring error).
    pub error: Option<String>,
    /// One entry per signature.
    pub signatures: Vec<SigVerdict>,
    /// A cleartext document's text, only when verified.
    #[serde(with = "serde_bytes")]
    pub text: Option<Vec<u8>>,
}

/// One driver's state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriverStatus {
    /// Driver.
    pub driver: DriverName,
    /// Whether a program is loaded.
    pub loaded: bool,
    /// Handler processes.
    pub handlers: Vec<u32>,
    /// Idle handlers.
    pub idle: u32,
    /// Pool size.
    pub pool_size: u32,
}

/// `ctl status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceStatus {
    /// The service's version.
    pub version: String,
    /// Its process id.
    pub pid: u32,
    /// Seconds since it started.
    pub uptime_s: u64,
    /// Open client connections.
    pub connections: u32,
    /// Configuration generation (1 at start, +1 per successful reload).
    pub config_generation: u64,
    /// The drivers.
    pub drivers: Vec<DriverStatus>,
}

/// A driver's counters: [`umd::Stats`] itself, every counter and the whole
/// latency summary, so nothing the manager counts is lost on the way.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriverStats {
    /// Driver.
    pub driver: String,
    /// Its counters.
    pub stats: umd::Stats,
}

/// `ctl stats`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceStats {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections refused at accept (limits).
    pub refused: u64,
    /// Requests answered (any outcome).
    pub requests: u64,
    /// Requests refused for lack of permission.
    pub denied: u64,
    /// Requests refused as busy (limits).
    pub busy: u64,
    /// Malformed frames or requests.
    pub bad_frames: u64,
    /// Connections closed for stalling.
    pub timeouts: u64,
    /// Configuration reloads (successful, rejected).
    pub reloads: u64,
    /// Rejected configuration reloads.
    pub reload_errors: u64,
    /// Per-driver counters (since the driver was last rebuilt by a reload).
    pub drivers: Vec<DriverStats>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_checks_come_before_the_body() {
        let f = encode(Kind::Request, &Request::Ctl(CtlRequest::Status)).unwrap();
        let h: [u8; 8] = f[..8].try_into().unwrap();
        assert!(Header::parse(&h, Kind::Request, 100).is_ok());
        assert_eq!(Header::parse(&h, Kind::Response, 100), Err(FrameError::Kind(1)));
        // umd-wire's header: the same bytes as a manager's request frame.
        assert_eq!(h, FrameHeader::new(umd_wire::Kind::Request, (f.len() - HEADER_LEN) as u32).encode());
        let mut memfd = h;
        memfd[3] = umd_wire::Kind::MemfdRequest as u8;
        assert_eq!(Header::parse(&memfd, Kind::Request, 100), Err(FrameError::Kind(4)));
        let mut bad = h;
        bad[2] = 9;
        assert_eq!(Header::parse(&bad, Kind::Request, 100), Err(FrameError::Version(9)));
        bad = h;
        bad[0] = b'X';
        assert!(matches!(Header::parse(&bad, Kind::Request, 100), Err(FrameError::Magic(_))));
        let big = Header::bytes(Kind::Request, u32::MAX);
        assert!(matches!(Header::parse(&big, Kind::Request, 1 << 20), Err(FrameError::TooLarge { .. })));
    }

    #[test]
    fn the_examples_in_docs_protocol_md_are_exact() {
        let f = encode(Kind::Request, &Request::Sample { offset: 4096 }).unwrap();
        assert_eq!(f, [0x55, 0x4d, 1, 1, 3, 0, 0, 0, 0x00, 0x80, 0x20]);
        let e =
            Response::Error(ServiceError { kind: ErrorKind::Denied, message: "permission denied".into() });
        let f = encode(Kind::Response, &e).unwrap();
        let mut want = vec![0x55, 0x4d, 1, 2, 0x14, 0, 0, 0, 6, 0, 0x11];
        want.extend_from_slice(b"permission denied");
        assert_eq!(f, want);
    }

    #[test]
    fn byte_fields_encode_as_sequences_of_u8() {
        // What docs/protocol.md says: a varint length, then the bytes.
        #[derive(Serialize)]
        struct Plain {
            keyrings: Vec<Vec<u8>>,
            signature: Vec<u8>,
            data: Option<Vec<u8>>,
            required: u32,
        }
        let v = VerifyRequest {
            keyrings: vec![vec![1, 2], vec![]],
            signature: vec![3; 200],
            data: Some(vec![4]),
            required: 1,
        };
        let plain = Plain {
            keyrings: v.keyrings.clone(),
            signature: v.signature.clone(),
            data: v.data.clone(),
            required: 1,
        };
        assert_eq!(postcard::to_allocvec(&v).unwrap(), postcard::to_allocvec(&plain).unwrap());
        let r = Request::Verify(v);
        let f = encode(Kind::Request, &r).unwrap();
        assert_eq!(decode::<Request>(&f[HEADER_LEN..]).unwrap(), r);
    }

    #[test]
    fn a_body_of_millions_of_empty_keyrings_is_refused_while_it_is_decoded() {
        // The issue's request: 8 MB, eight million empty keyrings (192 MB
        // once decoded). Refused at max_decoded, not after.
        let mut body = vec![1u8]; // Request::Verify
        body.extend_from_slice(&[0x80, 0xa4, 0xe8, 0x03]); // varint 8_000_000
        body.extend(std::iter::repeat_n(0u8, 8_000_000));
        body.extend_from_slice(&[0, 0, 1]); // no signature, no data, required 1
        let mut budget = Budget::new(max_decoded(body.len()));
        let e = decode_charging::<Request>(&body, &mut budget).unwrap_err();
        assert!(matches!(e, FrameError::Costly(_)), "{e}");
        assert!(budget.used <= max_decoded(body.len()));
    }

    #[test]
    fn a_keyring_upload_of_millions_of_empty_keyrings_is_refused_while_it_is_decoded() {
        // The same through VerifyRef: keyrings sent to be kept are decoded by
        // the same bounded decoder, before the keyring store sees them.
        let mut body = vec![3u8, 1]; // Request::VerifyRef, KeyringRef::Keyrings
        body.extend_from_slice(&[0x80, 0xa4, 0xe8, 0x03]); // varint 8_000_000
        body.extend(std::iter::repeat_n(0u8, 8_000_000));
        body.extend_from_slice(&[0, 0, 1, 0]); // no signature, no data, required 1, no text
        let mut budget = Budget::new(max_decoded(body.len()));
        let e = decode_charging::<Request>(&body, &mut budget).unwrap_err();
        assert!(matches!(e, FrameError::Costly(_)), "{e}");
        assert!(budget.used <= max_decoded(body.len()));
        // A handful of keyrings decode as before.
        let mut small = vec![3u8, 1, 2, 1, 9, 0];
        small.extend_from_slice(&[0, 0, 1, 0]);
        let Request::VerifyRef(r) = decode::<Request>(&small).unwrap() else { panic!("not VerifyRef") };
        assert_eq!(r.keyring, KeyringRef::Keyrings(vec![vec![9], vec![]]));
    }

    #[test]
    fn keyring_references_encode_as_docs_protocol_md_says() {
        let h = KeyringHandle([7; 32]);
        let r = Request::VerifyRef(VerifyRefRequest {
            keyring: KeyringRef::Handle(h),
            signature: vec![1, 2],
            data: None,
            required: 1,
            want_text: false,
        });
        let f = encode(Kind::Request, &r).unwrap();
        // Variant 3, KeyringRef 0, 32 raw bytes, signature, no data, required, want_text.
        let mut want = vec![3, 0];
        want.extend_from_slice(&[7; 32]);
        want.extend_from_slice(&[2, 1, 2, 0, 1, 0]);
        assert_eq!(&f[HEADER_LEN..], &want[..]);
        assert_eq!(decode::<Request>(&f[HEADER_LEN..]).unwrap(), r);
        assert_eq!(
            encode_verify_ref(&[], Some(h), &[1, 2], None, 1, false).unwrap(),
            f,
            "borrowed, the same"
        );
        let owned = Request::VerifyRef(VerifyRefRequest {
            keyring: KeyringRef::Keyrings(vec![vec![9; 3], vec![]]),
            signature: vec![5; 300],
            data: Some(vec![6; 2]),
            required: 2,
            want_text: true,
        });
        let borrowed =
            encode_verify_ref(&[vec![9; 3], vec![]], None, &[5; 300], Some(&[6; 2]), 2, true).unwrap();
        assert_eq!(borrowed, encode(Kind::Request, &owned).unwrap());
        let e = Response::Error(ServiceError { kind: ErrorKind::UnknownKeyring, message: "x".into() });
        assert_eq!(&encode(Kind::Response, &e).unwrap()[HEADER_LEN..], &[6, 7, 1, b'x']);
        // A handle names the keyrings' framing, not only their concatenation.
        assert_ne!(KeyringHandle::of(&[b"ab".to_vec()]), KeyringHandle::of(&[b"a".to_vec(), b"b".to_vec()]));
        assert_eq!(KeyringHandle::of(&[]), KeyringHandle::of(&[]));
    }

    #[test]
    fn garbage_bodies_are_errors_not_panics() {
        for body in [&b""[..], b"\xff\xff\xff\xff\xff", b"\x01\x05", b"\x00\x80\x80\x80\x80\x10"] {
            assert!(decode::<Request>(body).is_err(), "{body:?}");
        }
        let f = encode(Kind::Request, &Request::Sample { offset: 1 }).unwrap();
        let mut body = f[8..].to_vec();
        body.push(0);
        assert!(decode::<Request>(&body).is_err(), "trailing bytes");
    }
}
