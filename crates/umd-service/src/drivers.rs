//! The drivers the service hosts, built from the configuration: `sample` and
//! `pgp` (OpenPGP verification, with a small cache of checked keyrings).
//!
//! The cache keeps only what holds at any time (checked certificates and the
//! results of their signatures' cryptographic checks); each verification
//! takes the service's clock at that moment, so a keyring cached for days
//! gives the verdict a fresh `umd verify` gives.
//!
//! Each driver loads on its first request (through its provider, as in-process)
//! and can be loaded and unloaded by `umd ctl`. A reload that changes a driver's
//! pool size or deadline builds a new driver and swaps it in; the old one is
//! unloaded once its in-flight requests are done.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Instant, SystemTime};

use umd::{Driver, Program};
use umd_pgp::cleartext;
use umd_pgp::driver::{DescribeError, PgpDriver};
use umd_pgp::policy::Policy as PgpPolicy;
use umd_pgp::verifier::{Outcome, Verifier, VerifyError};
use umd_pgp::verify::{Status, Verdict};
use umd_sample::{HandlerSource, Offset, SampleDriver, SampleOptions};

use crate::config::{Access, Config};
use crate::proto::{
    DriverName, DriverStats, DriverStatus, ErrorKind, KeyringHandle, KeyringRef, ServiceError, SigVerdict,
    VerifyRefRequest, VerifyReply, VerifyRequest, VerifyStatus,
};

/// Keyrings remembered, checked, between verifications.
pub const VERIFIER_CACHE_ENTRIES: usize = 8;
/// Bytes of keyrings remembered at most.
pub const VERIFIER_CACHE_BYTES: usize = 16 << 20;
/// Keyrings held under their handle for one uid ([`Request::VerifyRef`](crate::proto::Request::VerifyRef)).
pub const HANDLES_PER_UID: usize = 8;
/// Bytes of keyrings held under their handle for one uid.
pub const HANDLE_BYTES_PER_UID: usize = 16 << 20;
/// Bytes of keyrings held under their handle, all uids together.
pub const HANDLE_BYTES_TOTAL: usize = 64 << 20;

fn driver_error(e: &umd::Error) -> ServiceError {
    let kind = if e.is_verdict() { ErrorKind::Verdict } else { ErrorKind::Driver };
    ServiceError { kind, message: e.to_string() }
}

/// Counts requests waiting for or using a driver; refuses past the limit.
struct Queue(AtomicUsize);

/// A place in a driver's queue.
pub struct Place<'a>(&'a AtomicUsize);

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

impl Queue {
    fn enter(&self, limit: usize, driver: DriverName) -> Result<Place<'_>, ServiceError> {
        if self.0.fetch_add(1, Relaxed) >= limit {
            self.0.fetch_sub(1, Relaxed);
            return Err(ServiceError {
                kind: ErrorKind::Busy,
                message: format!("driver {driver}: {limit} requests already queued; retry later"),
            });
        }
        Ok(Place(&self.0))
    }
}

/// The sample driver as hosted.
pub struct SampleHost {
    sample: SampleDriver,
    access: Access,
    queue: Queue,
}

impl SampleHost {
    fn new(access: &Access) -> SampleHost {
        let sample = SampleDriver::new(
            HandlerSource::Embedded,
            SampleOptions { timeout: access.timeout, pool_size: access.pool_size, ..Default::default() },
        );
        SampleHost { sample, access: access.clone(), queue: Queue(AtomicUsize::new(0)) }
    }

    /// Sends `offset`; the reply is checked here, the client learns the verdict.
    pub fn request(&self, offset: u32, queue_limit: usize) -> Result<u64, ServiceError> {
        let offset = Offset::new(u64::from(offset))
            .map_err(|e| ServiceError { kind: ErrorKind::BadRequest, message: e.to_string() })?;
        let _place = self.queue.enter(queue_limit, DriverName::Sample)?;
        let started = Instant::now();
        self.sample.request(offset).map_err(|e| driver_error(&e))?;
        Ok(started.elapsed().as_nanos().min(u128::from(u64::MAX)) as u64)
    }

    fn driver(&self) -> &Driver {
        self.sample.driver()
    }
}

/// A checked keyring, found again by its bytes (compared whole: cheaper than
/// hashing them, and no collision to reason about).
struct Cached {
    keyrings: Vec<Vec<u8>>,
    size: usize,
    verifier: Arc<Verifier>,
}

/// A keyring held for one uid under its handle.
struct Held {
    handle: KeyringHandle,
    bytes: usize,
    verifier: Arc<Verifier>,
    /// When it was last used (a tick of [`Handles::clock`]): the least recently
    /// used goes first.
    used: u64,
}

/// The keyrings held under their handles, per uid, within
/// [`HANDLES_PER_UID`], [`HANDLE_BYTES_PER_UID`] and [`HANDLE_BYTES_TOTAL`].
#[derive(Default)]
struct Handles {
    by_uid: HashMap<u32, Vec<Held>>,
    total: usize,
    clock: u64,
}

impl Handles {
    fn get(&mut self, uid: u32, handle: &KeyringHandle) -> Option<Arc<Verifier>> {
        self.clock += 1;
        let now = self.clock;
        let held = self.by_uid.get_mut(&uid)?.iter_mut().find(|h| h.handle == *handle)?;
        held.used = now;
        Some(held.verifier.clone())
    }

    /// Keeps `verifier` for `uid`, evicting the least recently used keyrings of
    /// that uid over its limits, then of anyone over the total. A keyring larger
    /// than a uid's whole allowance is not kept (it is used once).
    fn insert(&mut self, uid: u32, handle: KeyringHandle, bytes: usize, verifier: Arc<Verifier>) {
        if bytes > HANDLE_BYTES_PER_UID || self.get(uid, &handle).is_some() {
            return;
        }
        self.clock += 1;
        let used = self.clock;
        let mine = self.by_uid.entry(uid).or_default();
        mine.push(Held { handle, bytes, verifier, used });
        self.total += bytes;
        while mine.len() > HANDLES_PER_UID
            || mine.iter().map(|h| h.bytes).sum::<usize>() > HANDLE_BYTES_PER_UID
        {
            let oldest = (0..mine.len()).min_by_key(|&i| mine[i].used).unwrap_or(0);
            self.total -= mine.swap_remove(oldest).bytes;
        }
        while self.total > HANDLE_BYTES_TOTAL {
            let Some((&owner, i)) = self
                .by_uid
                .iter()
                .flat_map(|(u, v)| v.iter().enumerate().map(move |(i, h)| ((u, i), h.used)))
                .min_by_key(|&(_, used)| used)
                .map(|(k, _)| k)
            else {
                break;
            };
            if let Some(v) = self.by_uid.get_mut(&owner) {
                self.total -= v.swap_remove(i).bytes;
            }
        }
        self.by_uid.retain(|_, v| !v.is_empty());
    }
}

/// The pgp driver as hosted, with the keyrings it has checked.
pub struct PgpHost {
    driver: PgpDriver,
    access: Access,
    queue: Queue,
    cache: Mutex<VecDeque<Cached>>,
    handles: Mutex<Handles>,
}

impl PgpHost {
    fn new(access: &Access) -> PgpHost {
        PgpHost {
            driver: PgpDriver::with_pool_size(access.timeout, access.pool_size),
            access: access.clone(),
            queue: Queue(AtomicUsize::new(0)),
            cache: Mutex::new(VecDeque::new()),
            handles: Mutex::new(Handles::default()),
        }
    }

    fn verifier(&self, keyrings: &[Vec<u8>]) -> Result<Arc<Verifier>, VerifyError> {
        let size: usize = keyrings.iter().map(Vec::len).sum();
        {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(c) = cache.iter().find(|c| c.size == size && c.keyrings == keyrings) {
                return Ok(c.verifier.clone());
            }
        }
        let v = Arc::new(Verifier::with_driver(self.driver.clone(), keyrings, PgpPolicy::new())?);
        if size <= VERIFIER_CACHE_BYTES {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if !cache.iter().any(|c| c.size == size && c.keyrings == keyrings) {
                cache.push_front(Cached { keyrings: keyrings.to_vec(), size, verifier: v.clone() });
                while cache.len() > VERIFIER_CACHE_ENTRIES
                    || cache.iter().map(|c| c.size).sum::<usize>() > VERIFIER_CACHE_BYTES
                {
                    cache.pop_back();
                }
            }
        }
        Ok(v)
    }

    /// Verifies; a driver failure is an error, anything about the input is a
    /// "cannot verify" reply.
    pub fn verify(&self, req: &VerifyRequest, queue_limit: usize) -> Result<VerifyReply, ServiceError> {
        let _place = self.queue.enter(queue_limit, DriverName::Pgp)?;
        if let Some(refused) = sniff_keyrings(&req.keyrings) {
            return Ok(refused);
        }
        let verifier = match self.verifier(&req.keyrings) {
            Ok(v) => v,
            Err(VerifyError::Describe(DescribeError::Driver(d))) => return Err(driver_error(&d)),
            Err(e) => return Ok(cannot(format!("loading the keyring: {e}"))),
        };
        verify_with(&verifier, &req.signature, req.data.as_deref(), req.required, true)
    }

    /// Verifies against a keyring held for `uid` under its handle, or sent along
    /// (then held, within the per-uid limits). A handle not held for `uid` is an
    /// [`ErrorKind::UnknownKeyring`] error: the client sends the keyrings.
    pub fn verify_ref(
        &self,
        uid: u32,
        req: &VerifyRefRequest,
        queue_limit: usize,
    ) -> Result<VerifyReply, ServiceError> {
        let _place = self.queue.enter(queue_limit, DriverName::Pgp)?;
        let verifier = match &req.keyring {
            KeyringRef::Handle(h) => {
                let held = self.handles.lock().unwrap_or_else(|p| p.into_inner()).get(uid, h);
                held.ok_or_else(|| ServiceError {
                    kind: ErrorKind::UnknownKeyring,
                    message: format!(
                        "keyring {h} is not held for you (never sent, or let go): send it again"
                    ),
                })?
            }
            KeyringRef::Keyrings(keyrings) => {
                if let Some(refused) = sniff_keyrings(keyrings) {
                    return Ok(refused);
                }
                let v = match self.verifier(keyrings) {
                    Ok(v) => v,
                    Err(VerifyError::Describe(DescribeError::Driver(d))) => return Err(driver_error(&d)),
                    Err(e) => return Ok(cannot(format!("loading the keyring: {e}"))),
                };
                let bytes = keyrings.iter().map(Vec::len).sum();
                let mut handles = self.handles.lock().unwrap_or_else(|p| p.into_inner());
                handles.insert(uid, KeyringHandle::of(keyrings), bytes, v.clone());
                v
            }
        };
        verify_with(&verifier, &req.signature, req.data.as_deref(), req.required, req.want_text)
    }

    fn driver(&self) -> &Driver {
        self.driver.driver()
    }
}

fn cannot(e: String) -> VerifyReply {
    VerifyReply { status: VerifyStatus::CannotVerify, error: Some(e), signatures: Vec::new(), text: None }
}

/// A first look at the keyrings before any handler is asked: text, an empty
/// file or a signature given as a keyring gets a message that says so.
fn sniff_keyrings(keyrings: &[Vec<u8>]) -> Option<VerifyReply> {
    keyrings.iter().enumerate().find_map(|(i, k)| {
        umd_pgp::sniff::check_keyring(k)
            .err()
            .map(|e| cannot(format!("keyring #{} (in the order given): {e}", i + 1)))
    })
}

/// One verification; a driver failure is an error, anything about the input a
/// "cannot verify" reply.
fn verify_with(
    verifier: &Verifier,
    signature: &[u8],
    data: Option<&[u8]>,
    required: u32,
    want_text: bool,
) -> Result<VerifyReply, ServiceError> {
    // A first look before any handler is asked: an empty file, keys given as a
    // signature or swapped arguments get a message that says so.
    if let Err(e) = umd_pgp::sniff::check_signature(signature, data) {
        return Ok(cannot(e.to_string()));
    }
    // The reference time is this request's: nothing about time is cached.
    let at = SystemTime::now();
    let outcome = match data {
        Some(d) => verifier.verify_detached(signature, d, at),
        None if cleartext::is_cleartext(signature) => verifier.verify_cleartext(signature, at),
        None => return Ok(cannot("not a cleartext document, and no data given".into())),
    };
    match outcome {
        Ok(o) => {
            let mut r = reply(verifier, o, required as usize, at);
            if !want_text {
                r.text = None;
            }
            Ok(r)
        }
        Err(VerifyError::Describe(DescribeError::Driver(d))) => Err(driver_error(&d)),
        Err(e) => Ok(cannot(e.to_string())),
    }
}

fn reply(verifier: &Verifier, o: Outcome, required: usize, at: SystemTime) -> VerifyReply {
    let status = match o.status(required) {
        Status::Verified => VerifyStatus::Verified,
        Status::Bad => VerifyStatus::Bad,
        Status::CannotVerify => VerifyStatus::CannotVerify,
    };
    let signatures = o
        .reports
        .iter()
        .map(|r| match &r.verdict {
            Verdict::Good { cert, key } => SigVerdict::Good {
                cert: cert.to_string(),
                key: key.to_string(),
                user_id: verifier
                    .certificate(cert, at)
                    .and_then(|c| c.valid_user_ids().next().map(|u| String::from_utf8_lossy(u).into_owned()))
                    .unwrap_or_else(|| "(no valid user ID)".into()),
            },
            Verdict::Bad { key, reason } => {
                SigVerdict::Bad { key: key.to_string(), reason: reason.to_string() }
            }
            Verdict::UnknownKey { issuer } => SigVerdict::UnknownKey { issuer: issuer.clone() },
            Verdict::NotApplicable(why) => SigVerdict::Ignored { reason: why.clone() },
        })
        .collect();
    let text = if status == VerifyStatus::Verified { o.text } else { None };
    VerifyReply { status, error: None, signatures, text }
}

/// Every hosted driver; each can be swapped by a reload.
pub struct Hosts {
    sample: RwLock<Arc<SampleHost>>,
    pgp: RwLock<Arc<PgpHost>>,
}

fn read<T: Clone>(l: &RwLock<T>) -> T {
    l.read().unwrap_or_else(|p| p.into_inner()).clone()
}

impl Hosts {
    /// Builds the drivers (nothing starts until a request).
    pub fn new(config: &Config) -> Hosts {
        Hosts {
            sample: RwLock::new(Arc::new(SampleHost::new(&config.drivers.sample))),
            pgp: RwLock::new(Arc::new(PgpHost::new(&config.drivers.pgp))),
        }
    }

    /// The current sample driver.
    pub fn sample(&self) -> Arc<SampleHost> {
        read(&self.sample)
    }

    /// The current pgp driver.
    pub fn pgp(&self) -> Arc<PgpHost> {
        read(&self.pgp)
    }

    fn driver(&self, d: DriverName) -> Driver {
        match d {
            DriverName::Sample => self.sample().driver().clone(),
            DriverName::Pgp => self.pgp().driver().clone(),
        }
    }

    /// Rebuilds the drivers whose pool size or deadline changed; returns the old
    /// ones, to be unloaded once their in-flight requests are done.
    pub fn reconfigure(&self, config: &Config) -> Vec<Driver> {
        let mut old = Vec::new();
        {
            let mut s = self.sample.write().unwrap_or_else(|p| p.into_inner());
            if !same_tunables(&s.access, &config.drivers.sample) {
                old.push(s.driver().clone());
                *s = Arc::new(SampleHost::new(&config.drivers.sample));
            }
        }
        {
            let mut p = self.pgp.write().unwrap_or_else(|p| p.into_inner());
            if !same_tunables(&p.access, &config.drivers.pgp) {
                old.push(p.driver().clone());
                *p = Arc::new(PgpHost::new(&config.drivers.pgp));
            }
        }
        old
    }

    /// Loads `d`: starts a handler and runs its start check. `Ok(true)` when it
    /// was loaded already.
    pub fn load(&self, d: DriverName) -> Result<bool, ServiceError> {
        let program = match d {
            DriverName::Sample => Program::runtime_blob("umd-sample-handler", umd_blobs::SAMPLE_HANDLER),
            DriverName::Pgp => Program::runtime_blob("umd-pgp-handler", umd_blobs::PGP_HANDLER),
        }
        .map_err(|e| ServiceError { kind: ErrorKind::Driver, message: format!("driver {d}: {e}") })?;
        match self.driver(d).load(program) {
            Ok(()) => Ok(false),
            Err(umd::Error::AlreadyLoaded { .. }) => Ok(true),
            Err(e) => Err(driver_error(&e)),
        }
    }

    /// Unloads `d` (waits for its in-flight requests); whether it was loaded.
    pub fn unload(&self, d: DriverName) -> bool {
        let driver = self.driver(d);
        let was = driver.is_loaded() || !driver.handler_pids().is_empty();
        driver.unload();
        was
    }

    /// Unloads every driver (shutdown): every handler is killed and reaped.
    pub fn unload_all(&self) {
        for d in DriverName::ALL {
            self.driver(d).unload();
        }
    }

    /// State of every driver.
    pub fn status(&self) -> Vec<DriverStatus> {
        DriverName::ALL
            .into_iter()
            .map(|d| {
                let s = self.driver(d).status();
                DriverStatus {
                    driver: d,
                    loaded: s.program.is_some(),
                    handlers: s.handlers,
                    idle: s.idle as u32,
                    pool_size: s.pool_size as u32,
                }
            })
            .collect()
    }

    /// Counters of every driver.
    pub fn stats(&self) -> Vec<DriverStats> {
        DriverName::ALL
            .into_iter()
            .map(|d| DriverStats { driver: d.as_str().into(), stats: self.driver(d).stats() })
            .collect()
    }
}

fn same_tunables(a: &Access, b: &Access) -> bool {
    a.pool_size == b.pool_size && a.timeout == b.timeout
}

/// Unloads drivers replaced by a reload, off the signal thread.
pub fn retire(old: Vec<Driver>) {
    if old.is_empty() {
        return;
    }
    let spawned = std::thread::Builder::new().name("umd-retire".into()).spawn(move || {
        for d in old {
            d.unload();
            tracing::info!(driver = %d.name(), "replaced driver unloaded");
        }
    });
    if let Err(e) = spawned {
        tracing::error!("cannot start the thread that unloads replaced drivers: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verifier() -> Arc<Verifier> {
        let driver = PgpDriver::new(std::time::Duration::from_secs(1));
        Arc::new(Verifier::with_driver(driver, &[], PgpPolicy::new()).unwrap())
    }

    fn handle(n: u8) -> KeyringHandle {
        KeyringHandle([n; 32])
    }

    #[test]
    fn a_keyring_handle_is_held_for_the_uid_that_sent_it_only() {
        let mut h = Handles::default();
        h.insert(1000, handle(1), 100, verifier());
        assert!(h.get(1000, &handle(1)).is_some());
        assert!(h.get(1001, &handle(1)).is_none(), "another uid does not see it");
        assert!(h.get(1000, &handle(2)).is_none());
        assert_eq!(h.total, 100);
        h.insert(1000, handle(1), 100, verifier());
        assert_eq!(h.total, 100, "held once");
    }

    #[test]
    fn a_uid_over_its_allowance_lets_go_of_its_least_recently_used_keyrings() {
        let mut h = Handles::default();
        for n in 0..HANDLES_PER_UID as u8 {
            h.insert(7, handle(n), 10, verifier());
        }
        assert!(h.get(7, &handle(0)).is_some(), "0 is now the most recently used");
        h.insert(7, handle(200), 10, verifier());
        assert!(h.get(7, &handle(1)).is_none(), "1 was the least recently used");
        assert!(h.get(7, &handle(0)).is_some() && h.get(7, &handle(200)).is_some());
        assert_eq!(h.by_uid[&7].len(), HANDLES_PER_UID);
        // By bytes: a big keyring pushes out older ones until the uid fits.
        h.insert(7, handle(201), HANDLE_BYTES_PER_UID - 15, verifier());
        let held: usize = h.by_uid[&7].iter().map(|x| x.bytes).sum();
        assert!(held <= HANDLE_BYTES_PER_UID && h.get(7, &handle(201)).is_some(), "{held}");
        assert_eq!(h.total, held);
        // Larger than a uid's whole allowance: used once, never held.
        h.insert(8, handle(9), HANDLE_BYTES_PER_UID + 1, verifier());
        assert!(h.get(8, &handle(9)).is_none());
    }

    #[test]
    fn keyrings_of_all_uids_together_stay_within_the_total() {
        let mut h = Handles::default();
        let each = HANDLE_BYTES_PER_UID;
        let uids = (HANDLE_BYTES_TOTAL / each) as u32 + 2;
        for uid in 0..uids {
            h.insert(uid, handle(uid as u8), each, verifier());
        }
        assert!(h.total <= HANDLE_BYTES_TOTAL, "{}", h.total);
        assert!(h.get(0, &handle(0)).is_none(), "the least recently used went first");
        assert!(h.get(uids - 1, &handle((uids - 1) as u8)).is_some());
    }

    #[test]
    fn a_full_driver_queue_answers_busy_at_once_and_frees_places() {
        let q = Queue(AtomicUsize::new(0));
        let a = q.enter(2, DriverName::Pgp).unwrap();
        let b = q.enter(2, DriverName::Pgp).unwrap();
        let e = q.enter(2, DriverName::Pgp).err().unwrap();
        assert_eq!(e.kind, ErrorKind::Busy);
        assert_eq!(e.message, "driver pgp: 2 requests already queued; retry later");
        drop(a);
        let c = q.enter(2, DriverName::Pgp).unwrap();
        drop((b, c));
        assert_eq!(q.0.load(Relaxed), 0);
    }
}
