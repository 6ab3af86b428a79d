//! The library API: a keyring loaded once, many verifications, one warm handler.
//!
//! Every verification takes its reference time (`at`): expiry, revocation and
//! creation times are judged then, while the verifier keeps only what holds
//! at any time — checked certificates and the results of their signatures'
//! cryptographic checks. A verifier kept for days (the service's) gives the
//! verdict a fresh one would.
//!
//! ```no_run
//! use std::time::SystemTime;
//! use umd_pgp::verifier::Verifier;
//! use umd_pgp::verify::Status;
//!
//! let keyring = std::fs::read("/usr/share/keyrings/debian-archive-keyring.gpg").unwrap();
//! let v = Verifier::new(&[keyring], Default::default()).unwrap();
//! let doc = std::fs::read("/var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease").unwrap();
//! let outcome = v.verify_cleartext(&doc, SystemTime::now()).unwrap();
//! assert_eq!(outcome.status(1), Status::Verified);
//! ```

use std::ops::Range;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use crate::armor::{self, ArmorError};
use crate::cert::{self, CertError, CheckedCert, ValidCert};
use crate::cleartext::{self, CleartextError};
use crate::crypto::{self, Fingerprint};
use crate::driver::{DescribeError, PgpDriver};
use crate::packet::{self, tag, Checked, PacketError};
use crate::policy::issuer_hints;
use crate::policy::Policy;
use crate::verify::{self, Data, SigReport, Status, MAX_SIGNATURES};

/// Why a verification could not be made (the "cannot verify" exit status).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Armor could not be removed.
    #[error("armor: {0}")]
    Armor(#[from] ArmorError),
    /// Not a well-formed cleartext document.
    #[error("cleartext document: {0}")]
    Cleartext(#[from] CleartextError),
    /// The handler could not describe the packets, or lied about them.
    #[error("{0}")]
    Describe(#[from] DescribeError),
    /// A keyring's packet framing is broken (no handler was asked).
    #[error("keyring {index}: {source}")]
    Framing {
        /// Which keyring (0-based, in the order given).
        index: usize,
        /// Why.
        source: PacketError,
    },
    /// The signature's packet framing is broken (no handler was asked).
    #[error("signature: {0}")]
    SignatureFraming(PacketError),
    /// More signature packets than [`MAX_SIGNATURES`]: refused before any is
    /// described, and before the data is hashed.
    #[error("{count} signatures over one document: at most {MAX_SIGNATURES} are accepted")]
    TooManySignatures {
        /// How many the document carries.
        count: usize,
    },
    /// A packet other than a signature among the signatures: gpgv refuses
    /// such "ambiguous signature data" (with a literal data packet, say, the
    /// block would be a signed message of its own beside the document).
    #[error(
        "packet at offset {offset} (tag {tag}) among the signatures: only signature packets may be there"
    )]
    NotASignature {
        /// Offset of the packet in the signature stream.
        offset: u64,
        /// Its tag.
        tag: u8,
    },
    /// A keyring holds a broken certificate structure.
    #[error("keyring {index}: {source}")]
    Keyring {
        /// Which keyring (0-based, in the order given).
        index: usize,
        /// Why.
        source: CertError,
    },
}

/// Marker packets (tag 10, "PGP") may sit anywhere and mean nothing (RFC 9580
/// §5.8); gpgv accepts them beside signatures.
const MARKER: u8 = 10;

/// Only signature packets (and markers) may make up a signature: anything
/// else is refused, as gpgv refuses it.
fn only_signatures(packets: &[Checked<'_>]) -> Result<(), VerifyError> {
    match packets.iter().find(|p| p.tag() != tag::SIGNATURE && p.tag() != MARKER) {
        Some(p) => Err(VerifyError::NotASignature { offset: p.offset(), tag: p.tag() }),
        None => Ok(()),
    }
}

/// The outcome for one document.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// One report per signature packet.
    pub reports: Vec<SigReport>,
    /// For a cleartext document: its text, to be written out once verified.
    pub text: Option<Vec<u8>>,
}

impl Outcome {
    /// The verdict with `required` good signatures.
    pub fn status(&self, required: usize) -> Status {
        verify::status(&self.reports, required)
    }
}

/// A loaded keyring with its driver.
///
/// Loading reads only the keyring's framing (packet headers, with the
/// manager's own walk) to cut it into certificates and compute each one's
/// fingerprints from the raw key bodies. The first time a signature names one
/// of a certificate's keys (or when all certificates are asked for), the
/// handler describes that certificate and the description is checked like
/// any other ([`packet::check`]: tiling, headers,
/// re-encoding); the checked certificate is remembered, and so is each of
/// its signatures' cryptographic check once made. What depends on time
/// (which self-signature is current, expiry, revocation) is judged at each
/// call ([`CheckedCert::at`]). Verifying one file against a distribution
/// keyring costs the signers' certificates, not the whole keyring.
pub struct Verifier {
    driver: PgpDriver,
    /// Each keyring, without armor.
    streams: Vec<Vec<u8>>,
    slots: Vec<Slot>,
    checked: Vec<OnceLock<CheckedCert>>,
    pub(crate) policy: Policy,
}

/// One certificate of a keyring, as the framing walk finds it.
struct Slot {
    /// Which keyring.
    keyring: usize,
    /// Its bytes in that keyring: a primary key packet and everything up to the
    /// next one.
    range: Range<usize>,
    /// The primary key's fingerprint, computed from its raw body (`None` for a
    /// key version without one: such a certificate is never a candidate).
    primary: Option<Fingerprint>,
    /// Fingerprints of all its keys, primary first, likewise.
    keys: Vec<Fingerprint>,
}

/// Cuts a keyring into certificates by its framing alone.
fn index(keyring: usize, stream: &[u8]) -> Result<Vec<Slot>, VerifyError> {
    let frames = packet::frames(stream).map_err(|source| VerifyError::Framing { index: keyring, source })?;
    let mut slots: Vec<Slot> = Vec::new();
    for f in frames {
        let end = f.offset + f.extent;
        let t = f.header.tag;
        if t == tag::PUBLIC_KEY {
            slots.push(Slot { keyring, range: f.offset..end, primary: None, keys: Vec::new() });
        } else if let Some(slot) = slots.last_mut() {
            slot.range.end = end;
        } else if matches!(t, tag::SIGNATURE | tag::USER_ID | tag::PUBLIC_SUBKEY | tag::USER_ATTRIBUTE) {
            let what = "a certificate component before any primary key";
            let source = CertError::Structure { offset: f.offset as u64, what };
            return Err(VerifyError::Keyring { index: keyring, source });
        } else {
            continue; // a marker or trust packet before the first certificate
        }
        if matches!(t, tag::PUBLIC_KEY | tag::PUBLIC_SUBKEY) {
            let body = f.body(stream);
            let fpr = body.first().and_then(|&version| crypto::fingerprint(version, body).ok());
            if let (Some(slot), Some(fpr)) = (slots.last_mut(), fpr) {
                if t == tag::PUBLIC_KEY {
                    slot.primary = Some(fpr.clone());
                }
                slot.keys.push(fpr);
            }
        }
    }
    Ok(slots)
}

impl Verifier {
    /// Loads each keyring (binary or armored): armor and framing only, no
    /// handler yet.
    pub fn new(keyrings: &[Vec<u8>], policy: Policy) -> Result<Verifier, VerifyError> {
        Verifier::with_driver(PgpDriver::new(Duration::from_secs(10)), keyrings, policy)
    }

    /// As [`Verifier::new`], with a given driver.
    pub fn with_driver(
        driver: PgpDriver,
        keyrings: &[Vec<u8>],
        policy: Policy,
    ) -> Result<Verifier, VerifyError> {
        let mut streams = Vec::new();
        let mut slots = Vec::new();
        for (index, k) in keyrings.iter().enumerate() {
            let stream = armor::binary(k)?;
            slots.extend(self::index(index, &stream)?);
            streams.push(stream);
        }
        let checked = slots.iter().map(|_| OnceLock::new()).collect();
        Ok(Verifier { driver, streams, slots, checked, policy })
    }

    /// How many certificates the keyrings hold (by their framing).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the keyrings hold no certificate at all.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The checked certificate of slot `i` (described and checked once).
    fn checked(&self, i: usize) -> Result<&CheckedCert, VerifyError> {
        if let Some(c) = self.checked[i].get() {
            return Ok(c);
        }
        let slot = &self.slots[i];
        let keyring = |source| VerifyError::Keyring { index: slot.keyring, source };
        let packets = self.driver.describe(&self.streams[slot.keyring][slot.range.clone()])?;
        let mut raws = cert::split(&packets).map_err(keyring)?;
        let raw = match (raws.pop(), raws.is_empty()) {
            (Some(raw), true) => raw,
            _ => {
                let what = "a certificate the framing found is not one certificate";
                return Err(keyring(CertError::Structure { offset: slot.range.start as u64, what }));
            }
        };
        let c = raw.check().map_err(keyring)?;
        Ok(self.checked[i].get_or_init(|| c))
    }

    /// Every certificate of the keyring, as of `at`.
    pub fn certificates(&self, at: SystemTime) -> Result<Vec<ValidCert>, VerifyError> {
        (0..self.slots.len()).map(|i| Ok(self.checked(i)?.at(&self.policy, at))).collect()
    }

    /// The certificate whose primary key has this fingerprint, as of `at`.
    pub fn certificate(&self, primary: &Fingerprint, at: SystemTime) -> Option<ValidCert> {
        let i = self.slots.iter().position(|s| s.primary.as_ref() == Some(primary))?;
        Some(self.checked(i).ok()?.at(&self.policy, at))
    }

    /// The certificates, as of `at`, having a key that a signature in
    /// `packets` names (by issuer fingerprint or key ID).
    pub(crate) fn signers(
        &self,
        packets: &[Checked<'_>],
        at: SystemTime,
    ) -> Result<Vec<ValidCert>, VerifyError> {
        let mut wanted = vec![false; self.slots.len()];
        for sig in packets.iter().filter_map(Checked::signature) {
            let (ids, fprs) = issuer_hints(sig);
            for (i, slot) in self.slots.iter().enumerate() {
                if slot.keys.iter().any(|k| fprs.iter().any(|f| f.matches(k)) || ids.contains(&k.key_id())) {
                    wanted[i] = true;
                }
            }
        }
        // A wanted certificate the handler cannot describe (or lies about) is an
        // error, never a silently missing signer.
        (0..self.slots.len())
            .filter(|&i| wanted[i])
            .map(|i| Ok(self.checked(i)?.at(&self.policy, at)))
            .collect()
    }

    /// The driver (stats, unload).
    pub fn driver(&self) -> &PgpDriver {
        &self.driver
    }

    /// Verifies a detached signature (binary or armored) over `data`, at the
    /// reference time `at`.
    pub fn verify_detached(
        &self,
        signature: &[u8],
        data: &[u8],
        at: SystemTime,
    ) -> Result<Outcome, VerifyError> {
        let stream = armor::binary(signature)?;
        at_most_max_signatures(&stream)?;
        let packets = self.driver.describe(&stream)?;
        only_signatures(&packets)?;
        let signers = self.signers(&packets, at)?;
        let reports = verify::verify(&signers, &packets, Data::Detached(data), &self.policy);
        Ok(Outcome { reports, text: None })
    }

    /// Verifies `signature` — binary packets as they are, never armor — over
    /// binary `data`, at `at`: only binary signatures (type 0x00) apply; a
    /// text-mode one (0x01) is reported as not applicable. What rpm does with a
    /// header signature (`umd_rpm` adds: exactly one packet).
    pub fn verify_binary(
        &self,
        signature: &[u8],
        data: &[u8],
        at: SystemTime,
    ) -> Result<Outcome, VerifyError> {
        at_most_max_signatures(signature)?;
        let packets = self.driver.describe(signature)?;
        only_signatures(&packets)?;
        let signers = self.signers(&packets, at)?;
        let reports = verify::verify(&signers, &packets, Data::Binary(data), &self.policy);
        Ok(Outcome { reports, text: None })
    }

    /// Verifies a cleartext-signed document at `at`. Each signature's hash
    /// algorithm must be announced by the document's `Hash:` header (as
    /// gpgv requires; see [`cleartext`]); otherwise the document is refused.
    pub fn verify_cleartext(&self, document: &[u8], at: SystemTime) -> Result<Outcome, VerifyError> {
        let c = cleartext::split(document)?;
        at_most_max_signatures(&c.signatures)?;
        let packets = self.driver.describe(&c.signatures)?;
        only_signatures(&packets)?;
        c.check_hash_headers(packets.iter().filter_map(Checked::signature))?;
        let signers = self.signers(&packets, at)?;
        let reports = verify::verify(&signers, &packets, Data::Canonical(&c.signed), &self.policy);
        Ok(Outcome { reports, text: Some(c.text) })
    }
}

/// Refuses a signature stream of more than [`MAX_SIGNATURES`] signature
/// packets, by the manager's own framing walk: before the handler describes
/// anything and before the data is hashed.
fn at_most_max_signatures(stream: &[u8]) -> Result<(), VerifyError> {
    let count = packet::count_tag(stream, tag::SIGNATURE).map_err(VerifyError::SignatureFraming)?;
    if count > MAX_SIGNATURES {
        return Err(VerifyError::TooManySignatures { count });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut p = vec![0xc0 | tag, body.len() as u8];
        p.extend_from_slice(body);
        p
    }

    #[test]
    fn keyrings_are_cut_into_certificates_by_their_framing() {
        let (k1, s1, k2) =
            (b"\x04primary one".as_slice(), b"\x04subkey".as_slice(), b"\x04primary two".as_slice());
        let first =
            [packet(10, b"PGP"), packet(6, k1), packet(13, b"uid"), packet(2, b"sig"), packet(14, s1)]
                .concat();
        let stream = [first.clone(), packet(6, k2), packet(12, b"trust")].concat();
        let slots = index(3, &stream).unwrap();
        assert_eq!(slots.len(), 2);
        assert_eq!((slots[0].keyring, slots[0].range.clone()), (3, 5..first.len()));
        assert_eq!(slots[1].range, first.len()..stream.len());
        let fpr = |b| crypto::fingerprint(4, b).unwrap();
        assert_eq!(slots[0].primary, Some(fpr(k1)));
        assert_eq!(slots[0].keys, [fpr(k1), fpr(s1)]);
        assert_eq!(slots[1].keys, [fpr(k2)]);
        // A key version without a fingerprint: the certificate is kept (to be
        // reported when listed) but is no candidate.
        let v3 = index(0, &packet(6, b"\x03old")).unwrap();
        assert_eq!((v3.len(), v3[0].primary.as_ref(), v3[0].keys.len()), (1, None, 0));
    }

    #[test]
    fn broken_keyring_framing_is_refused_without_a_handler() {
        let sig_first = [packet(2, b"sig"), packet(6, b"\x04key")].concat();
        assert!(matches!(index(1, &sig_first), Err(VerifyError::Keyring { index: 1, .. })));
        let mut truncated = packet(6, b"\x04key");
        truncated.pop();
        assert!(matches!(index(2, &truncated), Err(VerifyError::Framing { index: 2, .. })));
        assert!(matches!(index(0, &[0x3f]), Err(VerifyError::Framing { .. })));
        assert!(index(0, &[]).unwrap().is_empty());
    }
}
