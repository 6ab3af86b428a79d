//! The service rows: a request through `umd serve`'s socket beside the same
//! request to the same driver in-process, one client.
//!
//! * **Ours** — a `umd serve` child on a private socket (this `umd` binary,
//!   default sandbox, a pool of 2 handlers per driver, everyone allowed), one
//!   client connection ([`umd_service::client::Client`]): `sample` requests (the
//!   service checks the 128 KiB reply and answers the verdict), or verifications
//!   of bookworm's `InRelease` against Debian's keyring with the keyring named by
//!   its handle (sent once, when the workload is built; the client asks for the
//!   verdict, not the text back).
//! * **Baseline** — the same drivers in this process with the same pool of 2:
//!   [`SampleDriver::request`](umd_sample::SampleDriver::request), and a [`Verifier`] whose keyring was checked once,
//!   [`Verifier::verify_cleartext`].
//!
//! Why it is fair: both sides run the same handlers under the same sandbox and
//! check the same replies; every verification, on both sides, describes the
//! document's signatures and verifies them (the service keeps the checked
//! keyring as the in-process verifier does, never anything keyed by the
//! document). The service side pays for the socket, the frames and the extra
//! thread hops: that is what the row measures.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use umd_pgp::driver::PgpDriver;
use umd_pgp::policy::Policy as PgpPolicy;
use umd_pgp::verifier::Verifier;
use umd_pgp::verify::Status;

use umd_service::client::{Client, Keyrings};
use umd_service::proto::VerifyStatus;

use crate::bulk::{DriverSample, Offsets};
use crate::pin::Pin;
use crate::verify::{umd_binary, INRELEASE, KEYRING};
use crate::{BenchError, BoxedWorkload, Workload};

/// Handlers per driver, on both sides (as `umd bench-service` defaults).
pub const POOL: usize = 2;

/// A `umd serve` child on a private socket; stopped (SIGTERM, then reaped) and
/// its directory removed on drop.
pub struct Service {
    child: Child,
    dir: PathBuf,
    socket: PathBuf,
}

impl Service {
    /// Starts the service and waits until it accepts connections.
    pub fn start() -> Result<Service, BenchError> {
        let io = BenchError::io;
        let dir = std::env::temp_dir().join(format!("umd-bench-serve-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(io("creating the service directory"))?;
        let socket = dir.join("umd.sock");
        let config = dir.join("umd.toml");
        let text = format!(
            "[drivers.sample]\neveryone = true\npool_size = {POOL}\n[drivers.pgp]\neveryone = true\n\
             pool_size = {POOL}\n"
        );
        std::fs::write(&config, text).map_err(io("writing the service configuration"))?;
        let child = Command::new(umd_binary()?)
            .arg("--socket")
            .arg(&socket)
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(io("starting umd serve"))?;
        let me = Service { child, dir, socket };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Client::connect(&me.socket).is_err() {
            if Instant::now() > deadline {
                return Err(BenchError::Io {
                    what: "starting umd serve",
                    source: std::io::Error::new(std::io::ErrorKind::TimedOut, "no socket after 20 s"),
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(me)
    }

    /// The socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// A client connection.
    pub fn client(&self) -> Result<Client, BenchError> {
        Client::connect(&self.socket)
            .map_err(|e| BenchError::BadReply { what: "connecting to umd serve", detail: e.to_string() })
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn service_error(what: &'static str) -> impl Fn(umd_service::client::ClientError) -> BenchError {
    move |e| BenchError::BadReply { what, detail: e.to_string() }
}

/// Ours, sample: requests through the service.
pub struct ServedSample {
    client: Client,
    offsets: Offsets,
    _service: Service,
}

impl ServedSample {
    /// Starts the service and warms both handlers of its pool.
    pub fn boxed(_pin: Pin) -> Result<BoxedWorkload, BenchError> {
        let service = Service::start()?;
        let client = service.client()?;
        let mut me = ServedSample { client, offsets: Offsets::new(), _service: service };
        me.run(8)?;
        Ok(Box::new(me))
    }
}

impl Workload for ServedSample {
    fn run(&mut self, iters: u64) -> Result<Duration, BenchError> {
        let client = &mut self.client;
        self.offsets.run(iters, |offset| {
            let offset = u32::try_from(offset.get()).unwrap_or(u32::MAX);
            client.sample(offset).map(drop).map_err(service_error("sample request through umd serve"))
        })
    }
}

/// Baseline, sample: the same driver in this process, same pool (the bulk
/// row's workload, with the service's pool and warm-up, not pinned).
pub struct LocalSample;

impl LocalSample {
    /// Builds the driver and warms its handlers.
    pub fn boxed(_pin: Pin) -> Result<BoxedWorkload, BenchError> {
        Ok(Box::new(DriverSample::with_pool(POOL, 8)?))
    }
}

/// Ours, verify: verifications through the service, the keyring by handle.
pub struct ServedVerify {
    client: Client,
    keyrings: Keyrings,
    _service: Service,
}

impl ServedVerify {
    /// Starts the service; the first verification sends the keyring.
    pub fn boxed(_pin: Pin) -> Result<BoxedWorkload, BenchError> {
        let service = Service::start()?;
        let client = service.client()?;
        let mut me =
            ServedVerify { client, keyrings: Keyrings::new(vec![KEYRING.to_vec()]), _service: service };
        me.run(2)?;
        Ok(Box::new(me))
    }
}

impl Workload for ServedVerify {
    fn run(&mut self, iters: u64) -> Result<Duration, BenchError> {
        let start = Instant::now();
        for _ in 0..iters {
            let v = self
                .client
                .verify_keyrings(&self.keyrings, INRELEASE, None, 1, false)
                .map_err(service_error("verification through umd serve"))?;
            if v.status != VerifyStatus::Verified {
                return Err(BenchError::BadReply {
                    what: "verification through umd serve",
                    detail: format!("{:?} {:?}", v.status, v.error),
                });
            }
        }
        Ok(start.elapsed())
    }
}

/// Baseline, verify: a verifier in this process, keyring checked once.
pub struct LocalVerify {
    verifier: Verifier,
}

impl LocalVerify {
    /// Builds the verifier and warms its handler.
    pub fn boxed(_pin: Pin) -> Result<BoxedWorkload, BenchError> {
        let driver = PgpDriver::with_pool_size(Duration::from_secs(10), POOL);
        let verifier = Verifier::with_driver(driver, &[KEYRING.to_vec()], PgpPolicy::new())
            .map_err(|e| BenchError::BadReply { what: "loading Debian's keyring", detail: e.to_string() })?;
        let mut me = LocalVerify { verifier };
        me.run(2)?;
        Ok(Box::new(me))
    }
}

impl Workload for LocalVerify {
    fn run(&mut self, iters: u64) -> Result<Duration, BenchError> {
        let start = Instant::now();
        for _ in 0..iters {
            match self.verifier.verify_cleartext(INRELEASE, std::time::SystemTime::now()) {
                Ok(o) if o.status(1) == Status::Verified => {}
                Ok(o) => {
                    return Err(BenchError::BadReply {
                        what: "verification in process",
                        detail: format!("{:?}", o.status(1)),
                    })
                }
                Err(e) => {
                    return Err(BenchError::BadReply {
                        what: "verification in process",
                        detail: e.to_string(),
                    })
                }
            }
        }
        Ok(start.elapsed())
    }
}

impl Drop for LocalVerify {
    fn drop(&mut self) {
        self.verifier.driver().driver().unload();
    }
}
