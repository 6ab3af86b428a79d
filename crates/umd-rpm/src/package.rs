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
//! for f in report.digests() { println!("{} {}", f.digest_hex(), String::from_utf8_lossy(&f.path)); }
//! ```

use std::fmt;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use sha2::Digest as _;
use umd_pgp::verifier::Verifier;
use umd_pgp::verify::Verdict;
use umd_rpm_wire::{hash, tag, Command, File, Value, MAX_INPUT};

use crate::check::CheckedHeader;
use crate::driver::{DescribeError, RpmDriver};

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
        /// The payload's (hex).
        actual: String,
    },
    /// The header has no payload digest (packages built before rpm 4.14).
    Absent,
    /// A database header: no payload.
    NotApplicable,
    /// A digest algorithm not supported here.
    Unsupported {
        /// Its OpenPGP id.
        algo: u32,
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
    /// File digests with an algorithm too weak to list (MD5, SHA-1) or unknown.
    WeakFileDigests {
        /// Its OpenPGP id.
        algo: u32,
    },
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
            Rejection::WeakFileDigests { algo } => {
                write!(f, "file digest algorithm {} is not accepted", algo_name(*algo))
            }
        }
    }
}

/// A hash algorithm's name.
pub fn algo_name(algo: u32) -> String {
    match algo {
        hash::MD5 => "MD5".into(),
        hash::SHA1 => "SHA1".into(),
        hash::SHA224 => "SHA224".into(),
        hash::SHA256 => "SHA256".into(),
        hash::SHA384 => "SHA384".into(),
        hash::SHA512 => "SHA512".into(),
        a => format!("algorithm {a}"),
    }
}

/// The length of an accepted file digest algorithm's digests (SHA-2 256/384/512).
pub fn accepted_len(algo: u32) -> Option<usize> {
    match algo {
        hash::SHA256 => Some(32),
        hash::SHA384 => Some(48),
        hash::SHA512 => Some(64),
        _ => None,
    }
}

/// Hashes `data` with an accepted algorithm.
pub fn hash_bytes(algo: u32, data: &[u8]) -> Option<Vec<u8>> {
    Some(match algo {
        hash::SHA256 => sha2::Sha256::digest(data).to_vec(),
        hash::SHA384 => sha2::Sha384::digest(data).to_vec(),
        hash::SHA512 => sha2::Sha512::digest(data).to_vec(),
        _ => return None,
    })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &[u8]) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    let nib = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    s.chunks_exact(2).map(|p| Some(nib(p[0])? << 4 | nib(p[1])?)).collect()
}

/// A regular file with a digest, ready for a digest list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FileDigest {
    /// Its path.
    #[serde(serialize_with = "lossy")]
    pub path: Vec<u8>,
    /// Its digest (binary).
    #[serde(serialize_with = "as_hex")]
    pub digest: Vec<u8>,
    /// Its mode.
    pub mode: u16,
    /// Its RPM file flags.
    pub flags: u32,
    /// Its size in bytes, from the header (`None` if the header has none).
    pub size: Option<u64>,
}

impl FileDigest {
    /// The digest in hex, as rpm prints it.
    pub fn digest_hex(&self) -> String {
        hex(&self.digest)
    }
}

fn lossy<S: serde::Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&String::from_utf8_lossy(b))
}
fn as_hex<S: serde::Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex(b))
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
    pub file_algo: u32,
    /// Every file of the header (directories and links included).
    #[serde(skip)]
    pub files: Vec<File>,
}

impl Report {
    /// Why the package is not listed as verified, if it is not: the first of
    /// weak file digests, the signature verdict, the payload.
    pub fn rejection(&self) -> Option<Rejection> {
        if accepted_len(self.file_algo).is_none() && self.files.iter().any(|f| !f.digest.is_empty()) {
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
        let len = accepted_len(self.file_algo);
        let mut bad = 0;
        let mut out = Vec::new();
        for f in &self.files {
            const S_IFMT: u16 = 0o170000;
            const S_IFREG: u16 = 0o100000;
            if f.digest.is_empty() || f.mode & S_IFMT != S_IFREG {
                continue;
            }
            match unhex(&f.digest).filter(|d| Some(d.len()) == len) {
                Some(digest) => out.push(FileDigest {
                    path: f.path.clone(),
                    digest,
                    mode: f.mode,
                    flags: f.flags,
                    size: f.size,
                }),
                None => bad += 1,
            }
        }
        (out, bad)
    }
}

/// A keyring and the two drivers: verifies many packages with warm handlers.
pub struct PackageVerifier {
    rpm: RpmDriver,
    pgp: Verifier,
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
    match h.value(t) {
        Some(Value::String(s)) => Ok(printable(s)),
        _ => Err(Error::Header(format!("the header has no {name}"))),
    }
}

fn int32(h: &CheckedHeader<'_>, t: u32) -> Option<u32> {
    match h.value(t) {
        Some(Value::Int32(v)) => v.first().copied(),
        _ => None,
    }
}

impl PackageVerifier {
    /// Loads the keyrings (OpenPGP, binary or armored) with the default drivers.
    pub fn new(keyrings: &[Vec<u8>]) -> Result<PackageVerifier, Error> {
        let pgp = Verifier::new(keyrings, Default::default())?;
        Ok(PackageVerifier { rpm: RpmDriver::new(Duration::from_secs(10)), pgp })
    }

    /// As [`PackageVerifier::new`], for `workers` threads verifying at once:
    /// up to that many RPM handlers. (The OpenPGP handler is shared; the
    /// signature crypto runs in the calling threads.)
    pub fn with_workers(keyrings: &[Vec<u8>], workers: usize) -> Result<PackageVerifier, Error> {
        let pgp = Verifier::new(keyrings, Default::default())?;
        Ok(PackageVerifier { rpm: RpmDriver::with_pool(Duration::from_secs(10), workers), pgp })
    }

    /// As [`PackageVerifier::new`], with a given RPM driver (tests: a liar).
    pub fn with_driver(rpm: RpmDriver, keyrings: &[Vec<u8>]) -> Result<PackageVerifier, Error> {
        let pgp = Verifier::new(keyrings, Default::default())?;
        Ok(PackageVerifier { rpm, pgp })
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
        let sig = c.signature.as_ref().ok_or_else(|| Error::Header("no signature header".into()))?;
        let trust = self.trust(sig, &c.main);
        let payload = payload(&c.main, std::io::Read::chain(&head[c.main.end..], rest))?;
        self.report(&c.main, trust, payload, c.files)
    }

    /// The header blobs of an rpm database (a directory holding
    /// `rpmdb.sqlite`, or the file), read by the sandboxed handler
    /// ([`crate::db::headers`]); judge each with [`PackageVerifier::db_header`].
    pub fn db_blobs(&self, path: &std::path::Path) -> Result<Vec<umd_rpm_wire::DbBlob>, crate::db::DbError> {
        crate::db::headers(&self.rpm, path)
    }

    /// Judges one database header blob.
    pub fn db_header(&self, blob: &[u8]) -> Result<Report, Error> {
        let c = self.rpm.describe(Command::DbHeader, blob)?;
        let trust = self.trust(&c.main, &c.main);
        self.report(&c.main, trust, Payload::NotApplicable, c.files)
    }

    fn report(
        &self,
        main: &CheckedHeader<'_>,
        trust: Trust,
        payload: Payload,
        files: Vec<File>,
    ) -> Result<Report, Error> {
        let identity = Identity {
            name: string(main, tag::NAME, "name")?,
            epoch: int32(main, tag::EPOCH),
            version: string(main, tag::VERSION, "version")?,
            release: string(main, tag::RELEASE, "release")?,
            arch: string(main, tag::ARCH, "architecture")?,
        };
        let file_algo = int32(main, tag::FILEDIGESTALGO).unwrap_or(hash::MD5);
        Ok(Report { identity, trust, payload, file_algo, files })
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
        let blobs: Vec<&[u8]> = [tag::RSAHEADER, tag::DSAHEADER]
            .iter()
            .filter_map(|&t| match sigs.value(t) {
                Some(Value::Bin(b)) => Some(b.as_slice()),
                _ => None,
            })
            .collect();
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

/// Checks the payload against the signed header's payload digest.
fn payload(main: &CheckedHeader<'_>, payload: impl std::io::Read) -> Result<Payload, std::io::Error> {
    let Some(Value::StringArray(d)) = main.value(tag::PAYLOADDIGEST) else { return Ok(Payload::Absent) };
    let Some(expected) = d.first() else { return Ok(Payload::Absent) };
    let algo = int32(main, tag::PAYLOADDIGESTALGO).unwrap_or(hash::SHA256);
    let actual = match algo {
        hash::SHA256 => stream::<sha2::Sha256>(payload)?,
        hash::SHA384 => stream::<sha2::Sha384>(payload)?,
        hash::SHA512 => stream::<sha2::Sha512>(payload)?,
        _ => return Ok(Payload::Unsupported { algo }),
    };
    let actual = hex(&actual);
    Ok(if actual.as_bytes().eq_ignore_ascii_case(expected) {
        Payload::Matches
    } else {
        Payload::Mismatch { expected: String::from_utf8_lossy(expected).into_owned(), actual }
    })
}

/// Hashes a reader 64 KiB at a time.
fn stream<D: sha2::Digest>(mut r: impl std::io::Read) -> Result<Vec<u8>, std::io::Error> {
    let mut h = D::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return Ok(h.finalize().to_vec()),
            Ok(n) => h.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
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
