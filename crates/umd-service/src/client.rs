//! The client library: one connection to the service, synchronous requests.
//!
//! ```no_run
//! use umd_service::client::Client;
//! use umd_service::proto::DriverName;
//! let mut c = Client::connect("/run/umd/umd.sock".as_ref()).unwrap();
//! c.sample(4096).unwrap();          // the service checked the 128 KiB reply
//! c.unload(DriverName::Sample).unwrap(); // root or the admin group only
//! ```

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::proto::{
    self, CtlRequest, DriverName, ErrorKind, FrameError, Header, KeyringHandle, Kind, Request, Response,
    ServiceError, ServiceStats, ServiceStatus, VerifyReply, VerifyRequest, HEADER_LEN, MAX_RESPONSE,
};

/// How long a client waits for an answer by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// What can go wrong talking to the service.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing accepts connections at the path.
    #[error("no umd service at {path}: {source}")]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// Cause (e.g. no such file, connection refused).
        source: std::io::Error,
    },
    /// Reading or writing failed.
    #[error("talking to the umd service: {0}")]
    Io(#[from] std::io::Error),
    /// The service's frame could not be read.
    #[error("the umd service's reply: {0}")]
    Frame(#[from] FrameError),
    /// The service closed the connection without an answer.
    #[error("the umd service closed the connection without answering")]
    Closed,
    /// The service answered with an error.
    #[error("{}", .0.message)]
    Service(ServiceError),
    /// An answer of the wrong type.
    #[error("the umd service answered {0} to a different question")]
    Unexpected(&'static str),
}

/// A connection to the service.
pub struct Client {
    stream: UnixStream,
    path: PathBuf,
    timeout: Option<Duration>,
    /// The service refused [`Request::VerifyRef`] (it predates it): verify by
    /// sending the keyrings every time.
    legacy_verify: bool,
}

/// Keyrings to verify against through the service, with their
/// [`KeyringHandle`] computed once. See [`Client::verify_keyrings`].
#[derive(Clone, Debug)]
pub struct Keyrings {
    keyrings: Vec<Vec<u8>>,
    handle: KeyringHandle,
}

impl Keyrings {
    /// Keyrings (binary or armored), in the order given.
    pub fn new(keyrings: Vec<Vec<u8>>) -> Keyrings {
        let handle = KeyringHandle::of(&keyrings);
        Keyrings { keyrings, handle }
    }

    /// Their handle.
    pub fn handle(&self) -> KeyringHandle {
        self.handle
    }

    /// The keyrings.
    pub fn as_slice(&self) -> &[Vec<u8>] {
        &self.keyrings
    }
}

impl Client {
    /// Connects to the service at `path`.
    pub fn connect(path: &Path) -> Result<Client, ClientError> {
        let stream =
            UnixStream::connect(path).map_err(|source| ClientError::Connect { path: path.into(), source })?;
        let c = Client { stream, path: path.into(), timeout: Some(DEFAULT_TIMEOUT), legacy_verify: false };
        c.apply_timeout(c.timeout)?;
        Ok(c)
    }

    /// Sets the read and write timeout (`None`: wait forever).
    pub fn set_timeout(&mut self, t: Option<Duration>) -> Result<(), ClientError> {
        self.timeout = t;
        self.apply_timeout(t)
    }

    fn apply_timeout(&self, t: Option<Duration>) -> Result<(), ClientError> {
        self.stream.set_read_timeout(t)?;
        self.stream.set_write_timeout(t)?;
        Ok(())
    }

    /// Sends one request and reads its answer.
    pub fn call(&mut self, req: &Request) -> Result<Response, ClientError> {
        let frame = proto::encode(Kind::Request, req)?;
        self.stream.write_all(&frame)?;
        self.read_response()
    }

    /// Reads one response frame.
    pub fn read_response(&mut self) -> Result<Response, ClientError> {
        let mut header = [0u8; HEADER_LEN];
        match self.stream.read_exact(&mut header) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(ClientError::Closed),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Err(ClientError::Closed),
            Err(e) => return Err(e.into()),
        }
        let h = Header::parse(&header, Kind::Response, MAX_RESPONSE)?;
        // The buffer grows as the body arrives (a service announcing 65 MiB
        // and stalling costs what it sent), and the body is decoded with the
        // bounded decoder.
        let mut body = Vec::new();
        while body.len() < h.len {
            let have = body.len();
            body.resize(umd_wire::chan::grown(have, h.len), 0);
            self.stream.read_exact(&mut body[have..])?;
        }
        Ok(proto::decode(&body)?)
    }

    fn expect<T>(
        &mut self,
        req: Request,
        pick: impl FnOnce(Response) -> Result<T, Response>,
        what: &'static str,
    ) -> Result<T, ClientError> {
        match pick(self.call(&req)?) {
            Ok(v) => Ok(v),
            Err(Response::Error(e)) => Err(ClientError::Service(e)),
            Err(_) => Err(ClientError::Unexpected(what)),
        }
    }

    /// Sample request; the service checked the reply. Returns the driver's time
    /// in nanoseconds.
    pub fn sample(&mut self, offset: u32) -> Result<u64, ClientError> {
        self.expect(
            Request::Sample { offset },
            |r| match r {
                Response::Sample { latency_ns } => Ok(latency_ns),
                other => Err(other),
            },
            "something else than a sample reply",
        )
    }

    /// Verifies signatures.
    pub fn verify(&mut self, req: VerifyRequest) -> Result<VerifyReply, ClientError> {
        self.expect(
            Request::Verify(req),
            |r| match r {
                Response::Verify(v) => Ok(v),
                other => Err(other),
            },
            "something else than a verification",
        )
    }

    /// Verifies `signature` (and `data`, for a detached signature) against
    /// `keyrings`, which the service keeps for this uid: a request carries only
    /// their handle while the service holds them, and the keyrings themselves
    /// when it does not (first use, let go, service restarted), after which it
    /// holds them again. `want_text`: send a verified cleartext document's text
    /// back. Against a service that predates keyring handles, the keyrings go with
    /// every request ([`Client::verify`]).
    pub fn verify_keyrings(
        &mut self,
        keyrings: &Keyrings,
        signature: &[u8],
        data: Option<&[u8]>,
        required: u32,
        want_text: bool,
    ) -> Result<VerifyReply, ClientError> {
        let legacy = |c: &mut Client| {
            c.verify(VerifyRequest {
                keyrings: keyrings.keyrings.clone(),
                signature: signature.to_vec(),
                data: data.map(<[u8]>::to_vec),
                required,
            })
        };
        if self.legacy_verify {
            return legacy(self);
        }
        let mut handle = Some(keyrings.handle);
        loop {
            let frame =
                proto::encode_verify_ref(&keyrings.keyrings, handle, signature, data, required, want_text)?;
            self.stream.write_all(&frame)?;
            match self.read_response()? {
                Response::Verify(v) => return Ok(v),
                Response::Error(e) if e.kind == ErrorKind::UnknownKeyring && handle.is_some() => {
                    handle = None
                }
                // A service that does not know the request refuses its frame and
                // closes the connection: reconnect and send the keyrings along.
                Response::Error(e) if e.kind == ErrorKind::BadRequest && handle.is_some() => {
                    let mut fresh = Client::connect(&self.path)?;
                    fresh.set_timeout(self.timeout)?;
                    *self = Client { legacy_verify: true, ..fresh };
                    return legacy(self);
                }
                Response::Error(e) => return Err(ClientError::Service(e)),
                _ => return Err(ClientError::Unexpected("something else than a verification")),
            }
        }
    }

    /// `ctl status`.
    pub fn status(&mut self) -> Result<ServiceStatus, ClientError> {
        self.expect(
            Request::Ctl(CtlRequest::Status),
            |r| match r {
                Response::Status(s) => Ok(s),
                other => Err(other),
            },
            "something else than a status",
        )
    }

    /// `ctl stats`.
    pub fn stats(&mut self) -> Result<ServiceStats, ClientError> {
        self.expect(
            Request::Ctl(CtlRequest::Stats),
            |r| match r {
                Response::Stats(s) => Ok(s),
                other => Err(other),
            },
            "something else than stats",
        )
    }

    /// `ctl load`: whether it was loaded already.
    pub fn load(&mut self, d: DriverName) -> Result<bool, ClientError> {
        self.expect(
            Request::Ctl(CtlRequest::Load(d)),
            |r| match r {
                Response::Loaded { already, .. } => Ok(already),
                other => Err(other),
            },
            "something else than a load",
        )
    }

    /// `ctl unload`: whether it was loaded.
    pub fn unload(&mut self, d: DriverName) -> Result<bool, ClientError> {
        self.expect(
            Request::Ctl(CtlRequest::Unload(d)),
            |r| match r {
                Response::Unloaded { was_loaded, .. } => Ok(was_loaded),
                other => Err(other),
            },
            "something else than an unload",
        )
    }

    /// The underlying stream (tests use it to misbehave).
    pub fn stream(&mut self) -> &mut UnixStream {
        &mut self.stream
    }
}
