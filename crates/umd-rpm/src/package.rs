//! Verdicts on packages and database headers: the header signatures verified
//! over the exact signed bytes, the payload digest checked, the file digests
//! taken only from checked, signed values.
//!
//! ```no_run
//! use umd_rpm::package::PackageVerifier;
//! let keyring = std::fs::read("keyring.asc").unwrap();
//! let v = PackageVerifier::new(&[keyring]).unwrap();
//! let report = v.package(&std::fs::read("hello.rpm").unwrap()).unwrap();
//! assert!(report.rejection().is_none(), "{:?}", report.rejection());
//! for f in report.digests() { println!("{} {}", f.digest, String::from_utf8_lossy(&f.path)); }
//! ```

use std::fmt;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use umd_hash::{Digest, HashAlgo, HashId};
use umd_pgp::verifier::Verifier;
use umd_pgp::verify::Verdict;
use umd_rpm_wire::{tag, Command, MAX_INPUT};

use crate::check::{CheckedFile, CheckedHeader};
use crate::driver::{DescribeError, RpmDriver};
use crate::policy::Policy;

/// Why a package could not be judged at all (it is never listed).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The handler could not describe it, or lied (the description was refused).
    #[error("{0}")]
    Describe(#[from] DescribeError),
    /// The header lacks what a package must have.
    #[error("{0}")]
    Header(String),
    /// The keyring could not be loaded.
    #[error("keyring: {0}")]
    Keyring(#[from] umd_pgp::verifier::VerifyError),
    /// The package file could not be read.
    #[error("reading the package: {0}")]
    Io(#[from] std::io::Error),
}

/// Name, epoch, version, release, architecture (from the signed header).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Identity {
    /// Name.
    pub name: String,
    /// Epoch, if the header has one.
    pub epoch: Option<u32>,
    /// Version.
    pub version: String,
    /// Release.
    pub release: String,
    /// Architecture.
    pub arch: String,
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-", self.name)?;
        if let Some(e) = self.epoch {
            write!(f, "{e}:")?;
        }
        write!(f, "{}-{}.{}", self.version, self.release, self.arch)
    }
}

/// What the header signatures say.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Trust {
    /// A header signature by a keyring key verified over the signed region, and
    /// none failed.
    Verified {
        /// Fingerprint of the signing key's certificate.
        signer: String,
    },
    /// No header signature (RSA or DSA/EdDSA header tag).
    Unsigned,
    /// Signed, but by no keyring key.
    UnknownKey {
        /// The issuer the signature names.
        issuer: String,
    },
    /// A signature by a keyring key failed, or could not be read.
    BadSignature {
        /// Why.
        reason: String,
    },
}

/// The payload digest check (package files only).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Payload {
    /// The payload hashes to the signed header's payload digest.
    Matches,
    /// It does not.
    Mismatch {
        /// The header's digest (hex).
        expected: String,
        /// The payload's (serialized as hex).
        actual: Digest,
    },
    /// The header has no payload digest (packages built before rpm 4.14).
    Absent,
    /// A database header: no payload.
    NotApplicable,
    /// A digest algorithm the policy does not check ([`Policy::payload_digests`]).
    Unsupported {
        /// Its OpenPGP id.
        algo: HashId,
    },
}

/// Why a package is not listed (or listed only as marked).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Rejection {
    /// No header signature.
    Unsigned,
    /// Signed by a key outside the keyring.
    UnknownKey {
        /// Issuer.
        issuer: String,
    },
    /// A bad header signature.
    BadSignature {
        /// Why.
        reason: String,
    },
    /// The payload does not match the signed header's digest.
    PayloadMismatch,
    /// File digests with an algorithm too weak to list (MD5, SHA-1) or unknown
    /// ([`Policy::file_digests`]).
    WeakFileDigests {
        /// Its OpenPGP id.
        algo: HashId,
    },
    /// No payload digest, or one of an algorithm the policy does not check,
    /// under a policy that requires one ([`Policy::require_payload_digest`]).
    NoPayloadDigest,
}

impl Rejection {
    /// Whether `--include-unverified` may still list the package (marked).
    pub fn may_include_marked(&self) -> bool {
        !matches!(self, Rejection::WeakFileDigests { .. })
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::Unsigned => write!(f, "no header signature"),
            Rejection::UnknownKey { issuer } => write!(f, "signed by a key not in the keyring ({issuer})"),
            Rejection::BadSignature { reason } => write!(f, "bad header signature: {reason}"),
            Rejection::PayloadMismatch => write!(f, "payload digest does not match the signed header"),
            Rejection::WeakFileDigests { algo } => write!(f, "file digest algorithm {algo} is not accepted"),
            Rejection::NoPayloadDigest => write!(f, "no payload digest the policy checks"),
        }
    }
}

/// A regular file with a digest, ready for a digest list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FileDigest {
    /// Its path.
    #[serde(serialize_with = "lossy")]
    pub path: Vec<u8>,
    /// Its digest (serialized as hex).
    pub digest: Digest,
    /// Its mode.
    pub mode: u16,
    /// Its RPM file flags.
    pub flags: u32,
    /// Its size in bytes, from the header (`None` if the header has none).
    pub size: Option<u64>,
}

fn lossy<S: serde::Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&String::from_utf8_lossy(b))
}

/// Everything the manager established about one package or database header.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Identity.
    pub identity: Identity,
    /// The header signatures' verdict.
    pub trust: Trust,
    /// The payload check.
    pub payload: Payload,
    /// The file digest algorithm (OpenPGP id; MD5 when the header names none).
    pub file_algo: HashId,
    /// Every file of the header (directories and links included).
    #[serde(skip)]
    pub files: Vec<CheckedFile>,
    /// The file digest algorithm, if the policy accepts it.
    #[serde(skip)]
    accepted_algo: Option<HashAlgo>,
    /// The verdict under the policy the report was made with.
    #[serde(skip)]
    rejection: Option<Rejection>,
}

impl Report {
    /// Why the package is not listed as verified, if it is not: the first of
    /// weak file digests, the signature verdict, the payload (as the
    /// [`Policy`] the report was made under decides).
    pub fn rejection(&self) -> Option<Rejection> {
        self.rejection.clone()
    }

    /// The file digest algorithm, if the policy accepts it.
    pub fn accepted_file_algo(&self) -> Option<HashAlgo> {
        self.accepted_algo
    }

    fn judge(&self, policy: &Policy) -> Option<Rejection> {
        if self.accepted_algo.is_none() && self.files.iter().any(|f| !f.digest_text().is_empty()) {
            return Some(Rejection::WeakFileDigests { algo: self.file_algo });
        }
        match &self.trust {
            Trust::Verified { .. } => {}
            Trust::Unsigned => return Some(Rejection::Unsigned),
            Trust::UnknownKey { issuer } => return Some(Rejection::UnknownKey { issuer: issuer.clone() }),
            Trust::BadSignature { reason } => {
                return Some(Rejection::BadSignature { reason: reason.clone() })
            }
        }
        match self.payload {
            Payload::Mismatch { .. } => Some(Rejection::PayloadMismatch),
            Payload::Absent | Payload::Unsupported { .. } if policy.require_payload_digest => {
                Some(Rejection::NoPayloadDigest)
            }
            _ => None,
        }
    }

    /// The digests of the regular files (those with a digest), decoded. A
    /// digest that is not hex of the algorithm's length is left out and
    /// counted in the second value.
    pub fn digests(&self) -> Vec<FileDigest> {
        self.digests_checked().0
    }

    /// As [`Report::digests`], with the number of malformed digests.
    pub fn digests_checked(&self) -> (Vec<FileDigest>, usize) {
        let mut bad = 0;
        let mut out = Vec::new();
        for f in &self.files {
            const S_IFMT: u16 = 0o170000;
            const S_IFREG: u16 = 0o100000;
            if f.digest_text().is_empty() || f.mode() & S_IFMT != S_IFREG {
                continue;
            }
            match self.accepted_algo.and_then(|a| Digest::from_hex(a, f.digest_text())) {
                Some(digest) => out.push(FileDigest {
                    path: f.path().to_vec(),
                    digest,
                    mode: f.mode(),
                    flags: f.flags(),
                    size: f.size(),
                }),
                None => bad += 1,
            }
        }
        (out, bad)
    }
}

/// A keyring, the two drivers and the policy: verifies many packages with
/// warm handlers.
pub struct PackageVerifier {
    rpm: RpmDriver,
    pgp: Verifier,
    policy: Policy,
}

/// A header string for display: lossy UTF-8, control characters escaped (a
/// name is printed in verdict lines and stored in lists; it must not be able
/// to forge a line).
fn printable(s: &[u8]) -> String {
    String::from_utf8_lossy(s)
        .chars()
        .flat_map(|c| {
            let esc: Vec<char> = if c.is_control() { c.escape_default().collect() } else { vec![c] };
            esc
        })
        .collect()
}

fn string(h: &CheckedHeader<'_>, t: u32, name: &str) -> Result<String, Error> {
    h.string(t).map(printable).ok_or_else(|| Error::Header(format!("the header has no {name}")))
}

impl PackageVerifier {
    /// Loads the keyrings (OpenPGP, binary or armored) with the default drivers
    /// and the default (strict) [`Policy`].
    pub fn new(keyrings: &[Vec<u8>]) -> Result<PackageVerifier, Error> {
        PackageVerifier::with_driver(RpmDriver::new(Duration::from_secs(10)), keyrings)
    }

    /// As [`PackageVerifier::new`], for `workers` threads verifying at once:
    /// up to that many RPM handlers. (The OpenPGP handler is shared; the
    /// signature crypto runs in the calling threads.)
    pub fn with_workers(keyrings: &[Vec<u8>], workers: usize) -> Result<PackageVerifier, Error> {
        PackageVerifier::with_driver(RpmDriver::with_pool(Duration::from_secs(10), workers), keyrings)
    }

    /// As [`PackageVerifier::new`], with a given RPM driver (tests: a liar).
    pub fn with_driver(rpm: RpmDriver, keyrings: &[Vec<u8>]) -> Result<PackageVerifier, Error> {
        PackageVerifier::with_policy(rpm, keyrings, Policy::default())
    }

    /// As [`PackageVerifier::with_driver`], deciding under `policy` (its
    /// OpenPGP part for the header signatures).
    ///
    /// ```no_run
    /// use umd_rpm::{driver::RpmDriver, package::PackageVerifier, Policy};
    /// let mut policy = Policy::default();
    /// policy.require_payload_digest = true; // refuse packages built before rpm 4.14
    /// let rpm = RpmDriver::new(std::time::Duration::from_secs(10));
    /// let v = PackageVerifier::with_policy(rpm, &[std::fs::read("keyring.asc").unwrap()], policy).unwrap();
    /// assert!(v.policy().require_payload_digest);
    /// ```
    pub fn with_policy(
        rpm: RpmDriver,
        keyrings: &[Vec<u8>],
        policy: Policy,
    ) -> Result<PackageVerifier, Error> {
        let pgp = Verifier::new(keyrings, policy.pgp.clone())?;
        Ok(PackageVerifier { rpm, pgp, policy })
    }

    /// The policy verdicts are given under.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The RPM driver.
    pub fn rpm_driver(&self) -> &RpmDriver {
        &self.rpm
    }

    /// The OpenPGP verifier of the header signatures (its driver, to start or
    /// unload it).
    pub fn pgp_verifier(&self) -> &Verifier {
        &self.pgp
    }

    /// Judges a package file (all of its bytes).
    pub fn package(&self, file: &[u8]) -> Result<Report, Error> {
        let input = &file[..file.len().min(MAX_INPUT)];
        self.package_from(input, &file[input.len()..])
    }

    /// Judges the package file at `path`, reading its headers (at most
    /// [`MAX_INPUT`] bytes) and streaming the rest of its payload through the
    /// payload digest: a large package is never held whole.
    pub fn package_file(&self, path: &std::path::Path) -> Result<Report, Error> {
        use std::io::Read;
        let mut f = std::fs::File::open(path)?;
        let mut head = Vec::new();
        (&mut f).take(MAX_INPUT as u64).read_to_end(&mut head)?;
        self.package_from(&head, std::io::BufReader::new(f))
    }

    /// `head`: the file's first bytes (lead and headers, then the payload's
    /// start); `rest`: whatever follows them.
    fn package_from(&self, head: &[u8], rest: impl std::io::Read) -> Result<Report, Error> {
        // Only the headers go to the handler; the payload is hashed here.
        let c = self.rpm.describe(Command::Package, head)?;
        let (sig, main, files) = c.into_parts();
        let sig = sig.ok_or_else(|| Error::Header("no signature header".into()))?;
        let trust = self.trust(&sig, &main);
        let payload = payload(&main, &self.policy, std::io::Read::chain(&head[main.end()..], rest))?;
        self.report(&main, trust, payload, files)
    }

    /// The header blobs of an rpm database (a directory holding
    /// `rpmdb.sqlite`, or the file), read by the sandboxed handler
    /// ([`crate::db::headers`]), as sources of [`crate::list::build`]; judge
    /// one with [`PackageVerifier::db_header`].
    pub fn db_headers(&self, path: &std::path::Path) -> Result<Vec<crate::list::Source>, crate::db::DbError> {
        let blobs = crate::db::headers(&self.rpm, path)?;
        Ok(blobs.into_iter().map(|b| crate::list::Source::DbHeader { hnum: b.hnum, blob: b.blob }).collect())
    }

    /// Judges one database header blob.
    pub fn db_header(&self, blob: &[u8]) -> Result<Report, Error> {
        let c = self.rpm.describe(Command::DbHeader, blob)?;
        let (_, main, files) = c.into_parts();
        let trust = self.trust(&main, &main);
        self.report(&main, trust, Payload::NotApplicable, files)
    }

    fn report(
        &self,
        main: &CheckedHeader<'_>,
        trust: Trust,
        payload: Payload,
        files: Vec<CheckedFile>,
    ) -> Result<Report, Error> {
        let identity = Identity {
            name: string(main, tag::NAME, "name")?,
            epoch: main.int32(tag::EPOCH),
            version: string(main, tag::VERSION, "version")?,
            release: string(main, tag::RELEASE, "release")?,
            arch: string(main, tag::ARCH, "architecture")?,
        };
        let file_algo = main.int32(tag::FILEDIGESTALGO).map_or(HashId::MD5, HashId);
        let accepted_algo = self.policy.file_digest(file_algo);
        let mut report =
            Report { identity, trust, payload, file_algo, files, accepted_algo, rejection: None };
        report.rejection = report.judge(&self.policy);
        Ok(report)
    }

    /// Verifies the header signatures found in `sigs` (the signature header of a
    /// package, or the database header itself) over `main`'s signed region,
    /// at the manager's clock.
    ///
    /// As rpm reads it, a header signature tag holds exactly one OpenPGP
    /// signature packet, binary (never armored), and a binary signature (type
    /// 0x00) over the header's bytes: rpm hashes them as they are. Anything
    /// else in the tag — armor, several packets, a text-mode signature (0x01,
    /// whose line-ending conversion would hash other bytes) — is a bad
    /// signature, never one more way to be verified.
    fn trust(&self, sigs: &CheckedHeader<'_>, main: &CheckedHeader<'_>) -> Trust {
        let blobs: Vec<&[u8]> =
            [tag::RSAHEADER, tag::DSAHEADER].iter().filter_map(|&t| sigs.bin(t)).collect();
        if blobs.is_empty() {
            return Trust::Unsigned;
        }
        let signed = main.signed_bytes();
        let at = SystemTime::now();
        let (mut good, mut unknown) = (None, None);
        for blob in blobs {
            if let Err(reason) = one_binary_signature_packet(blob) {
                return Trust::BadSignature { reason };
            }
            let outcome = match self.pgp.verify_binary(blob, &signed, at) {
                Ok(o) => o,
                Err(e) => return Trust::BadSignature { reason: format!("unreadable signature: {e}") },
            };
            if outcome.reports.is_empty() {
                return Trust::BadSignature { reason: "no OpenPGP signature in the signature tag".into() };
            }
            for r in outcome.reports {
                match r.verdict {
                    Verdict::Good { cert, .. } => good = Some(cert.to_string()),
                    Verdict::Bad { key, reason } => {
                        return Trust::BadSignature { reason: format!("key {key}: {reason}") }
                    }
                    Verdict::UnknownKey { issuer } => unknown = Some(issuer),
                    Verdict::NotApplicable(reason) => return Trust::BadSignature { reason },
                }
            }
        }
        match (good, unknown) {
            (Some(signer), _) => Trust::Verified { signer },
            (None, Some(issuer)) => Trust::UnknownKey { issuer },
            (None, None) => Trust::BadSignature { reason: "no verdict".into() },
        }
    }
}

/// Whether a header signature tag holds exactly one binary OpenPGP signature
/// packet (by the manager's own framing walk), and if not, why.
fn one_binary_signature_packet(blob: &[u8]) -> Result<(), String> {
    if umd_pgp::armor::is_armored(blob) {
        return Err("armored signature in a header signature tag (rpm reads one binary packet)".into());
    }
    let frames = umd_pgp::packet::frames(blob).map_err(|e| format!("unreadable signature: {e}"))?;
    match frames.as_slice() {
        [f] if f.header.tag == umd_pgp::packet::tag::SIGNATURE => Ok(()),
        [f] => Err(format!("a packet of tag {} in a header signature tag, not a signature", f.header.tag)),
        fs => Err(format!(
            "{} packets in a header signature tag (rpm reads exactly one signature packet)",
            fs.len()
        )),
    }
}

/// Checks the payload against the signed header's payload digest (hashed 64
/// KiB at a time).
fn payload(
    main: &CheckedHeader<'_>,
    policy: &Policy,
    payload: impl std::io::Read,
) -> Result<Payload, std::io::Error> {
    let Some(expected) = main.first_string(tag::PAYLOADDIGEST) else { return Ok(Payload::Absent) };
    // rpm's default when the header names none: SHA2-256.
    let algo = main.int32(tag::PAYLOADDIGESTALGO).map_or(HashId::from(HashAlgo::Sha256), HashId);
    let Some(checked) = policy.payload_digest(algo) else { return Ok(Payload::Unsupported { algo }) };
    let actual = umd_hash::hash_reader(&[checked], payload)?;
    let Some(&actual) = actual.first() else { return Ok(Payload::Unsupported { algo }) };
    Ok(if actual.to_string().as_bytes().eq_ignore_ascii_case(expected) {
        Payload::Matches
    } else {
        Payload::Mismatch { expected: String::from_utf8_lossy(expected).into_owned(), actual }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_forge_lines() {
        assert_eq!(printable(b"hello"), "hello");
        assert_eq!(printable(b"a\nb\x1b[31m"), "a\\nb\\u{1b}[31m");
        assert_eq!(printable(b"\xff"), "\u{fffd}");
    }
}
