//! Building a digest list from packages: which enter it, marked how, and why
//! the others do not. Decided here, once, so that `umd digests build` and any
//! other caller (a service) list the same packages for the same reasons; the
//! caller only names the packages, shows progress and prints.
//!
//! A package is listed when its [`Report`] has no [`Rejection`] and each of
//! its file digests is well formed; with [`Options::include_unverified`] an
//! unverified package is listed too, under a [`Mark`] saying how it fell
//! short — except one whose file digests are too weak to list at all.
//!
//! ```no_run
//! use umd_rpm::list::{self, Options, Source};
//! use umd_rpm::package::PackageVerifier;
//! let v = PackageVerifier::new(&[std::fs::read("keyring.asc").unwrap()]).unwrap();
//! let sources = vec![Source::File("hello.rpm".into())];
//! let built = list::build(&v, &sources, &Options::default(), |_| {}).unwrap();
//! for verdict in &built.verdicts {
//!     println!("{}: {:?}", verdict.source, verdict.outcome.as_ref().map(|j| j.listing));
//! }
//! let key = umd_digest_list::SigningKey::from_bytes(&[7; 32]);
//! let bytes = built.list.finish(1_700_000_000, 1, &key);
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use umd_digest_list::fapolicyd::{LeftOut, TrustFile};
use umd_digest_list::{Builder, ListError, Mark};
use umd_hash::{HashAlgo, HashId};

use crate::package::{self, FileDigest, Identity, PackageVerifier, Payload, Rejection, Report, Trust};

/// One package to judge.
#[derive(Clone, Debug)]
pub enum Source {
    /// A package file: its headers go to the handler, its payload is
    /// streamed through the payload digest.
    File(PathBuf),
    /// A header blob of the rpm database (read by the sandboxed handler,
    /// [`PackageVerifier::db_headers`]), with its record number.
    DbHeader {
        /// The record number (`hnum`).
        hnum: u32,
        /// The header's bytes.
        blob: Vec<u8>,
    },
}

impl Source {
    /// How verdicts name it: the path, or `rpmdb header N`.
    pub fn label(&self) -> String {
        match self {
            Source::File(p) => p.display().to_string(),
            Source::DbHeader { hnum, .. } => format!("rpmdb header {hnum}"),
        }
    }

    fn report(&self, v: &PackageVerifier) -> Result<Report, package::Error> {
        match self {
            Source::File(p) => v.package_file(p),
            Source::DbHeader { blob, .. } => v.db_header(blob),
        }
    }
}

/// How a list is built.
#[derive(Clone, Debug)]
pub struct Options {
    /// Also list unsigned, unknown-key, badly signed and payload-mismatched
    /// packages, each marked as such: `false`.
    pub include_unverified: bool,
    /// Packages verified at once: 1 (at least 1 is used).
    pub jobs: usize,
    /// Also build fapolicyd's trust file ([`FapolicydTrust`]): `false`.
    pub fapolicyd: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options { include_unverified: false, jobs: 1, fapolicyd: false }
    }
}

/// Whether and how a judged package entered the list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listing {
    /// Listed as verified.
    Listed,
    /// Listed under a mark (only with [`Options::include_unverified`]).
    ListedMarked(Mark),
    /// Not listed.
    Rejected,
}

impl Listing {
    /// `listed`, `listed-marked` or `rejected`.
    pub fn name(self) -> &'static str {
        match self {
            Listing::Listed => "listed",
            Listing::ListedMarked(_) => "listed-marked",
            Listing::Rejected => "rejected",
        }
    }

    /// The mark it was listed under, if listed.
    pub fn mark(self) -> Option<Mark> {
        match self {
            Listing::Listed => Some(Mark::Verified),
            Listing::ListedMarked(m) => Some(m),
            Listing::Rejected => None,
        }
    }
}

/// What was established about a package, and the decision.
#[derive(Clone, Debug)]
pub struct Judged {
    /// Name, epoch, version, release, architecture.
    pub identity: Identity,
    /// The header signatures' verdict.
    pub trust: Trust,
    /// The payload check.
    pub payload: Payload,
    /// The file digest algorithm the header names.
    pub file_algo: HashId,
    /// Why it is not listed as verified, if it is not: the report's
    /// [`Rejection`], or malformed file digests (a bad signature: the signed
    /// header says something no honest rpm writes).
    pub rejection: Option<Rejection>,
    /// The decision.
    pub listing: Listing,
    /// Its well-formed file digests (listed, if it is).
    pub digests: usize,
}

/// One package's verdict.
#[derive(Debug)]
pub struct Verdict {
    /// The package ([`Source::label`]).
    pub source: String,
    /// The judgment, or why it could not be judged (it is then not listed).
    pub outcome: Result<Judged, package::Error>,
}

/// Progress of [`build`].
#[derive(Debug)]
pub enum Event<'a> {
    /// One more package was verified (in any order).
    Verified,
    /// A package's verdict, in the order of the sources.
    Verdict(&'a Verdict),
}

/// Why a list could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A digest the list cannot hold (a policy accepting file digests of an
    /// algorithm digest lists do not carry).
    #[error("{package}: {error}")]
    List {
        /// Which package.
        package: String,
        /// Why.
        #[source]
        error: ListError,
    },
}

/// fapolicyd's trust file (`PATH SIZE SHA256` per file), from the files of
/// the verified packages, and the regular files left out of it.
#[derive(Debug, Default)]
pub struct FapolicydTrust {
    /// The trust file.
    pub file: TrustFile,
    /// Files of packages not verified (unsigned, unknown key, bad signature,
    /// payload mismatch — listed marked or not).
    pub unverified: usize,
    /// Files of packages whose file digests are MD5 or SHA-1.
    pub weak_digests: usize,
    /// Files of verified packages with SHA-384/512 digests: fapolicyd 1.1.7
    /// compares SHA-256.
    pub not_sha256: usize,
    /// Files of verified packages whose header gives no size.
    pub no_size: usize,
    /// Files whose path fapolicyd cannot read back.
    pub unrepresentable: usize,
}

impl FapolicydTrust {
    /// Files of verified packages that did not make it into the trust file.
    pub fn incomplete(&self) -> usize {
        self.not_sha256 + self.no_size + self.unrepresentable + self.file.conflicting()
    }

    /// Adds one package's regular files (or counts them out).
    fn add(&mut self, label: &str, r: &Report, verified: bool, digests: &[FileDigest], malformed: usize) {
        let files = digests.len() + malformed;
        if matches!(r.rejection(), Some(Rejection::WeakFileDigests { .. })) {
            self.weak_digests += files;
            return;
        }
        if !verified {
            self.unverified += files;
            return;
        }
        self.unrepresentable += malformed;
        if r.accepted_file_algo() != Some(HashAlgo::Sha256) {
            self.not_sha256 += digests.len();
            return;
        }
        for d in digests {
            let (Some(size), Ok(sha256)) = (d.size, <[u8; 32]>::try_from(d.digest.as_bytes())) else {
                self.no_size += 1;
                continue;
            };
            if let Err(e) = self.file.add(&d.path, size, sha256) {
                if e != LeftOut::Conflicting {
                    self.unrepresentable += 1;
                }
                tracing::warn!(package = label, path = %String::from_utf8_lossy(&d.path), "left out of the fapolicyd trust file: {e}");
            }
        }
    }
}

/// The list built (not signed yet) and every package's verdict.
pub struct Built {
    /// The list: sign it with [`Builder::finish`].
    pub list: Builder,
    /// One verdict per source, in their order.
    pub verdicts: Vec<Verdict>,
    /// fapolicyd's trust file, if [`Options::fapolicyd`].
    pub fapolicyd: Option<FapolicydTrust>,
}

impl Built {
    fn count(&self, f: impl Fn(&Verdict) -> bool) -> usize {
        self.verdicts.iter().filter(|v| f(v)).count()
    }

    fn listing(v: &Verdict) -> Option<Listing> {
        v.outcome.as_ref().ok().map(|j| j.listing)
    }

    /// Packages listed as verified.
    pub fn listed(&self) -> usize {
        self.count(|v| Built::listing(v) == Some(Listing::Listed))
    }

    /// Packages listed under a mark.
    pub fn marked(&self) -> usize {
        self.count(|v| matches!(Built::listing(v), Some(Listing::ListedMarked(_))))
    }

    /// Packages judged and not listed.
    pub fn rejected(&self) -> usize {
        self.count(|v| Built::listing(v) == Some(Listing::Rejected))
    }

    /// Packages that could not be judged.
    pub fn errors(&self) -> usize {
        self.count(|v| v.outcome.is_err())
    }

    /// Digests listed.
    pub fn digests(&self) -> usize {
        let listed = |j: &&Judged| j.listing != Listing::Rejected;
        self.verdicts.iter().filter_map(|v| v.outcome.as_ref().ok()).filter(listed).map(|j| j.digests).sum()
    }
}

/// The mark an unverified package is listed under.
fn mark_of(r: &Rejection) -> Mark {
    match r {
        Rejection::Unsigned => Mark::Unsigned,
        Rejection::UnknownKey { .. } => Mark::UnknownKey,
        Rejection::BadSignature { .. } => Mark::BadSignature,
        Rejection::PayloadMismatch | Rejection::NoPayloadDigest | Rejection::WeakFileDigests { .. } => {
            Mark::PayloadMismatch
        }
    }
}

/// Judges each source (`options.jobs` at once: descriptions, signature
/// crypto and payload digests run concurrently) and lists the packages that
/// may be listed. The decisions are taken in the order of the sources, so the
/// list and the verdicts do not depend on timing; `progress` hears of each
/// package verified and of each verdict, on the calling thread.
pub fn build(
    verifier: &PackageVerifier,
    sources: &[Source],
    options: &Options,
    mut progress: impl FnMut(Event<'_>),
) -> Result<Built, BuildError> {
    let mut built = Built {
        list: Builder::new(),
        verdicts: Vec::with_capacity(sources.len()),
        fapolicyd: options.fapolicyd.then(FapolicydTrust::default),
    };
    let next = AtomicUsize::new(0);
    let (tx, rx) = std::sync::mpsc::channel::<(usize, String, Result<Report, package::Error>)>();
    let mut failure = None;
    std::thread::scope(|scope| {
        for _ in 0..options.jobs.max(1).min(sources.len()) {
            let tx = tx.clone();
            let next = &next;
            scope.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(source) = sources.get(i) else { break };
                if tx.send((i, source.label(), source.report(verifier))).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        let mut pending = BTreeMap::new();
        let mut want = 0;
        for (i, label, result) in rx {
            progress(Event::Verified);
            pending.insert(i, (label, result));
            while let Some((source, result)) = pending.remove(&want) {
                want += 1;
                let outcome = match result {
                    Ok(report) => match judge(&source, report, options, &mut built) {
                        Ok(j) => Ok(j),
                        Err(error) => {
                            failure.get_or_insert(BuildError::List { package: source, error });
                            continue;
                        }
                    },
                    Err(e) => Err(e),
                };
                built.verdicts.push(Verdict { source, outcome });
                if let Some(v) = built.verdicts.last() {
                    progress(Event::Verdict(v));
                }
            }
        }
    });
    match failure {
        Some(e) => Err(e),
        None => Ok(built),
    }
}

/// One package's decision: adds it to the list (and its files to the trust
/// file) if it may be.
fn judge(label: &str, r: Report, options: &Options, built: &mut Built) -> Result<Judged, ListError> {
    let (digests, malformed) = r.digests_checked();
    let rejection = r.rejection().or_else(|| {
        (malformed > 0)
            .then(|| Rejection::BadSignature { reason: format!("{malformed} malformed file digests") })
    });
    let listing = match &rejection {
        None => Listing::Listed,
        Some(rej) if options.include_unverified && rej.may_include_marked() => {
            Listing::ListedMarked(mark_of(rej))
        }
        Some(_) => Listing::Rejected,
    };
    if let Some(t) = &mut built.fapolicyd {
        t.add(label, &r, listing == Listing::Listed, &digests, malformed);
    }
    if let Some(mark) = listing.mark() {
        let p = built.list.add_package(&r.identity.to_string(), mark);
        for d in &digests {
            built.list.add_digest(&d.digest, p)?;
        }
    }
    Ok(Judged {
        identity: r.identity,
        trust: r.trust,
        payload: r.payload,
        file_algo: r.file_algo,
        rejection,
        listing,
        digests: digests.len(),
    })
}
