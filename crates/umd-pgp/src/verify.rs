//! Document signatures: which keyring keys made good signatures over some data.
//!
//! The manager hashes the data itself (binary, or text it canonicalized), picks
//! the candidate keys by the signature's issuer subpackets (hints only — the
//! verification is what proves the signer), and verifies with its own crypto and
//! policy. Signatures by keys outside the keyring are reported and ignored, as
//! apt and sqv do. The reference time `at` comes from the caller: the keyring's
//! certificates were evaluated at it too ([`crate::cert::CheckedCert::at`]).
//!
//! **Cost bounded by the data.** Hashing a document is the expensive step (a
//! cleartext one may hold [`crate::cleartext::MAX_DOCUMENT`] bytes; a detached
//! signature's data, any size), so it comes last: a
//! signature is hashed for only if its issuer names a keyring key and one such
//! key passes every cheap check first (valid, marked for signing, its
//! algorithm and the signature's accepted by the policy). Each distinct prefix
//! — form of the data (as given, or CR LF), version, hash algorithm and salt —
//! is hashed once, however many signatures share it, and a document may carry
//! at most [`MAX_SIGNATURES`] signatures (refused before any packet is
//! described). So a document costs at most [`MAX_SIGNATURES`] passes over its
//! data, and one per hash algorithm when its signatures are v4 or share a salt.

use std::cell::Cell;
use std::time::SystemTime;

use crate::cert::{CertError, KeyInfo, ValidCert, ValidKey};
use crate::crypto::{self, CryptoError, Fingerprint, SigHasher};
use crate::packet::{Checked, CheckedSig};
use crate::policy::{issuer_hints, Policy, Rejection, SigClass};

/// The verdict on one signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Good: made by this key of this certificate.
    Good {
        /// Certificate (primary key) fingerprint.
        cert: Fingerprint,
        /// Signing key fingerprint (the primary or a subkey).
        key: Fingerprint,
    },
    /// Made (claims to be made) by a keyring key, and fails: crypto or policy.
    Bad {
        /// The key it names.
        key: Fingerprint,
        /// Why.
        reason: BadReason,
    },
    /// No keyring key matches its issuer: ignored.
    UnknownKey {
        /// The issuer it names, if any.
        issuer: String,
    },
    /// Not a document signature, or malformed: ignored with the reason.
    NotApplicable(String),
}

/// Why a signature by a keyring key is bad, in the order the checks are made:
/// the key first (cheap), then the policy (cheap), then the mathematics (a
/// pass over the data).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadReason {
    /// The key is not valid at the reference time.
    #[error("key {key} is not valid: {why}")]
    KeyNotValid {
        /// The key.
        key: Fingerprint,
        /// Why not.
        why: CertError,
    },
    /// The key is valid but its flags do not allow document signatures.
    #[error("key {0} is not marked for signing")]
    NotForSigning(Fingerprint),
    /// The policy refuses the signature (hash, subpackets, times) at the
    /// reference time.
    #[error("{0}")]
    Policy(#[from] Rejection),
    /// Hashing or the mathematics failed: the signature was not made by this
    /// key over this data.
    #[error("{0}")]
    Crypto(#[from] CryptoError),
}

/// One signature's outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigReport {
    /// Offset of the signature packet in its stream.
    pub offset: u64,
    /// The verdict.
    pub verdict: Verdict,
}

/// The most signature packets a signed document may carry: more is refused
/// before anything is described or hashed
/// ([`crate::verifier::VerifyError::TooManySignatures`]). apt's archives carry
/// one to three; a release signed by a dozen builders fits. Each signature
/// costs at most one pass over the data, so this bounds a document's cost.
pub const MAX_SIGNATURES: usize = 16;

thread_local! {
    static PASSES: Cell<u64> = const { Cell::new(0) };
}

/// How many times this thread has hashed a document's data for a signature
/// (a diagnostic: the cost tests count passes with it).
pub fn document_passes() -> u64 {
    PASSES.with(Cell::get)
}

/// How the data was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Data<'a> {
    /// Bytes of a detached signature's file; text-mode signatures (type 0x01)
    /// over them are checked against the bytes with line endings made CR LF.
    Detached(&'a [u8]),
    /// The canonical text of a cleartext document (already CR LF, trailing
    /// whitespace removed, no final line ending).
    Canonical(&'a [u8]),
    /// Binary data that only a binary signature (type 0x00) may sign: a
    /// text-mode signature (0x01) is not applicable to it. RPM header
    /// signatures: rpm hashes the header's bytes as they are.
    Binary(&'a [u8]),
}

fn candidates<'a>(keyring: &'a [ValidCert], sig: &CheckedSig) -> Vec<(&'a ValidCert, &'a KeyInfo)> {
    let (ids, fprs) = issuer_hints(sig);
    let mut out = Vec::new();
    for cert in keyring {
        for key in cert.keys() {
            let hit = fprs.iter().any(|f| f.matches(key.fingerprint())) || ids.contains(&key.key_id());
            if hit {
                out.push((cert, key));
            }
        }
    }
    out
}

/// Text-mode hashing of a detached file: every line ending becomes CR LF.
pub(crate) fn crlf(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 32);
    let mut prev = 0u8;
    for &b in data {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}

/// Verifies every signature packet in `signatures` over `data` against
/// `keyring`. A signature is judged at the reference time its certificate was
/// validated at ([`ValidCert::at`]): there is no other time to give, so a key
/// valid at one time cannot vouch for a signature judged at another.
pub fn verify(
    keyring: &[ValidCert],
    signatures: &[Checked<'_>],
    data: Data<'_>,
    policy: &Policy,
) -> Vec<SigReport> {
    let mut text_cache: Option<Vec<u8>> = None;
    // Hashers that have taken in the data (and nothing after), for each form
    // of it (as given, or with CRLF line endings): the data is hashed once per
    // hash algorithm, not once per signature.
    let mut hashed: Vec<(bool, SigHasher)> = Vec::new();
    signatures
        .iter()
        .filter_map(|p| Some((p.offset(), p.signature()?)))
        .map(|(offset, sig)| {
            let verdict = if !matches!(sig.sig_type(), 0x00 | 0x01) {
                Verdict::NotApplicable(format!(
                    "signature type {:#04x} is not a document signature",
                    sig.sig_type()
                ))
            } else if matches!(data, Data::Binary(_)) && sig.sig_type() != 0x00 {
                Verdict::NotApplicable(format!(
                    "signature type {:#04x} (text mode) over binary data: only binary signatures (0x00) apply",
                    sig.sig_type()
                ))
            } else {
                let found = candidates(keyring, sig);
                if found.is_empty() {
                    let (i, f) = issuer_hints(sig);
                    let issuer = f
                        .first()
                        .map(|f| f.bytes.iter().map(|b| format!("{b:02X}")).collect::<String>())
                        .or_else(|| i.first().map(|id| id.to_string()))
                        .unwrap_or_else(|| "none given".into());
                    Verdict::UnknownKey { issuer }
                } else {
                    // The first candidate that verifies wins; otherwise report the
                    // first one's failure (a signature by a keyring key that fails).
                    let mut first_failure = None;
                    let mut good = None;
                    // The data is hashed only once a candidate passed the
                    // cheap checks, and at most once per prefix.
                    let mut digest = None;
                    for (cert, key) in &found {
                        let verdict = cheap_checks(key, sig, policy, cert.at()).and_then(|valid| {
                            let digest = digest.get_or_insert_with(|| {
                                let (crlf_form, bytes): (bool, &[u8]) = match (data, sig.sig_type()) {
                                    (Data::Detached(d), 0x01) => {
                                        (true, text_cache.get_or_insert_with(|| crlf(d)))
                                    }
                                    (Data::Detached(d), _) | (Data::Canonical(d), _) | (Data::Binary(d), _) => {
                                        (false, d)
                                    }
                                };
                                digest_of(sig, crlf_form, bytes, &mut hashed)
                            });
                            let digest = digest.as_ref().map_err(|e| BadReason::Crypto(e.clone()))?;
                            crypto::verify(valid.key(), sig, digest).map_err(BadReason::Crypto)
                        });
                        match verdict {
                            Ok(()) => {
                                good = Some(Verdict::Good {
                                    cert: cert.fingerprint().clone(),
                                    key: key.fingerprint().clone(),
                                });
                                break;
                            }
                            Err(reason) => {
                                first_failure
                                    .get_or_insert(Verdict::Bad { key: key.fingerprint().clone(), reason });
                            }
                        }
                    }
                    good.or(first_failure).unwrap_or(Verdict::NotApplicable("no candidate".into()))
                }
            };
            SigReport { offset, verdict }
        })
        .collect()
}

/// The digest `sig` signs over `bytes` (in the form `crlf_form` says), from a
/// hasher in `hashed` that already took in the same bytes when one fits.
fn digest_of(
    sig: &CheckedSig,
    crlf_form: bool,
    bytes: &[u8],
    hashed: &mut Vec<(bool, SigHasher)>,
) -> Result<Vec<u8>, CryptoError> {
    for (form, h) in hashed.iter() {
        if *form == crlf_form {
            if let Some(h) = h.for_signature(sig)? {
                return Ok(h.finish());
            }
        }
    }
    let mut h = SigHasher::new(sig)?;
    h.data(bytes);
    PASSES.with(|p| p.set(p.get() + 1));
    hashed.push((crlf_form, h.clone()));
    Ok(h.finish())
}

/// Everything about `key` and `sig` that costs no pass over the data: the key
/// is valid and marked for signing, and the policy accepts the key, its
/// algorithm and the signature's at `at`. The key comes back as a
/// [`ValidKey`]: the only way the signature's mathematics gets to it.
fn cheap_checks<'a>(
    key: &'a KeyInfo,
    sig: &CheckedSig,
    policy: &Policy,
    at: SystemTime,
) -> Result<ValidKey<'a>, BadReason> {
    let valid = key
        .valid()
        .map_err(|why| BadReason::KeyNotValid { key: key.fingerprint().clone(), why: why.clone() })?;
    if !valid.can_sign() {
        return Err(BadReason::NotForSigning(key.fingerprint().clone()));
    }
    policy.check_signature(valid.key(), valid.kind(), key.expires_after(), sig, SigClass::Document, at)?;
    Ok(valid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_mode_line_endings_become_crlf_once() {
        assert_eq!(crlf(b"a\nb\r\nc"), b"a\r\nb\r\nc");
        assert_eq!(crlf(b""), b"");
    }
}

/// What the signatures over one document amount to (the CLI's exit status).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// At least the required number of good signatures from keyring keys, and no
    /// bad one from a keyring key.
    Verified,
    /// A signature from a keyring key failed, or too few were good.
    Bad,
    /// No signature from any keyring key.
    CannotVerify,
}

/// Summarizes reports: `required` good signatures from keyring keys and none bad.
pub fn status(reports: &[SigReport], required: usize) -> Status {
    let good = reports.iter().filter(|r| matches!(r.verdict, Verdict::Good { .. })).count();
    let bad = reports.iter().any(|r| matches!(r.verdict, Verdict::Bad { .. }));
    if bad {
        Status::Bad
    } else if good == 0 {
        Status::CannotVerify
    } else if good < required {
        Status::Bad
    } else {
        Status::Verified
    }
}
