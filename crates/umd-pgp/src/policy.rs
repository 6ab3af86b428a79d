//! What the `pgp` driver accepts: one [`Policy`] object, strict by default.
//!
//! Role in the manager/handler split: [`crate::crypto`] says whether a
//! signature is mathematically valid; this module says whether a valid
//! signature is *good enough* — algorithms, key sizes, hashes, critical
//! subpackets, times. Every decision lives here, each default with the reason
//! for it, after Sequoia's `StandardPolicy`: callers may tighten or loosen a
//! field.
//!
//! **Time is an argument.** A `Policy` holds no clock. Every check that
//! depends on time takes the reference time `at` from its caller — the
//! manager's clock at the moment of the verification, or a time it has reason
//! to trust — and never a time read from the data being checked. So a policy,
//! and whatever a long-running verifier caches, stays true as time passes:
//! expiry, revocation and creation times are judged at each call. Times in
//! messages are RFC 3339 UTC ([`utc`]).
//!
//! It also holds [`SigFacts`], the small view of a signature's *hashed*
//! subpackets the manager needs (creation and expiration times, issuer,
//! key flags, …). Only the hashed area is trusted: the unhashed area is not
//! covered by the signature, so anyone can edit it. The subpackets have
//! already been checked against the packet bytes (re-encoding), so parsing
//! them here parses the bytes that were signed.
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use umd_pgp::crypto::{Curve, KeyKind};
//! use umd_pgp::policy::{Policy, Rejection, SigClass, SigFacts};
//! let policy = Policy::new();
//! assert!(policy.check_key(KeyKind::Ecdsa(Curve::NistP256)).is_ok());
//! assert_eq!(policy.check_key(KeyKind::Rsa { bits: 1024 }),
//!            Err(Rejection::RsaTooShort { bits: 1024, min: 2048 }));
//! assert!(policy.check_hash(SigClass::Document, 8, Some(1_600_000_000)).is_ok());
//! assert!(policy.check_hash(SigClass::Document, 2, Some(1_600_000_000)).is_err()); // SHA-1
//! // A signature made at 1 700 000 000, judged at three reference times.
//! let facts = SigFacts { created: Some(1_700_000_000), ..Default::default() };
//! let at = |s| UNIX_EPOCH + Duration::from_secs(s);
//! assert!(policy.check_alive(&facts, at(1_700_000_000)).is_ok());
//! assert!(policy.check_alive(&facts, at(1_700_000_000 - 600)).is_ok()); // within the clock skew
//! let early = policy.check_alive(&facts, at(1_600_000_000)).unwrap_err();
//! assert_eq!(early.to_string(), "signature created at 2023-11-14T22:13:20Z is in the future \
//!     (reference time 2020-09-13T12:26:40Z, tolerated clock skew 1800 s)");
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::crypto::{Curve, HashAlgo, KeyId, KeyKind};
use crate::packet::{CheckedKey, CheckedSig, CheckedSubpacket};

/// The last second RFC 3339 can write with a four-digit year.
const LAST_RFC3339: u64 = 253_402_300_799;

/// A time in seconds since the Unix epoch, shown as RFC 3339 UTC
/// (`2026-12-04T18:38:09Z`), as `sq` prints times. Every time in a message
/// of this crate goes through it; JSON output keeps the numbers.
///
/// ```
/// assert_eq!(umd_pgp::policy::utc(0).to_string(), "1970-01-01T00:00:00Z");
/// ```
pub fn utc(secs: u64) -> impl std::fmt::Display {
    // Times here come from 32-bit fields (at most year 2242 with an expiry
    // added); the clamp only keeps the formatter from failing on the rest.
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs.min(LAST_RFC3339)))
}

/// Seconds since the Unix epoch (0 for a time before it).
pub fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn utc_opt(t: &Option<u32>) -> String {
    t.map_or_else(|| "no creation time".into(), |t| format!("created at {}", utc(u64::from(t))))
}

/// Why a (mathematically valid, or not yet checked) signature or key is not
/// accepted. Every variant names the algorithm, size, hash, time or
/// subpacket at fault. Times are seconds since the Unix epoch; messages show
/// them as RFC 3339 UTC.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The public key algorithm (or curve) is not in [`Policy::algorithms`].
    #[error("public key algorithm {0} is not accepted")]
    Algorithm(KeyKind),
    /// An RSA modulus below [`Policy::min_rsa_bits`].
    #[error("RSA key of {bits} bits is too short (minimum {min})")]
    RsaTooShort {
        /// The modulus size.
        bits: u32,
        /// The policy's minimum.
        min: u32,
    },
    /// A hash algorithm id the manager does not implement at all.
    #[error("hash algorithm id {0} is unknown or unsupported")]
    UnknownHash(u8),
    /// A hash not in [`Policy::hashes`] for this kind of signature.
    #[error("hash {hash} is not accepted for {class} signatures")]
    Hash {
        /// The hash.
        hash: HashAlgo,
        /// The kind of signature.
        class: SigClass,
    },
    /// SHA-1 outside what [`Policy::allow_sha1_data_signatures`] and
    /// [`Policy::sha1_self_signatures_before`] allow.
    #[error("SHA-1 is not accepted for {class} signatures (signature {})", utc_opt(.created))]
    Sha1 {
        /// The kind of signature.
        class: SigClass,
        /// The signature's creation time, if it has one.
        created: Option<u32>,
    },
    /// A digest too short for the key's algorithm.
    #[error("hash {hash} is too short for a {key} signature (RFC 9580 requires at least 256 bits)")]
    HashTooShortForKey {
        /// The hash.
        hash: HashAlgo,
        /// The key.
        key: KeyKind,
    },
    /// A critical subpacket the manager does not interpret (RFC 9580
    /// §5.2.3.7: such a signature must be treated as invalid).
    #[error("critical subpacket type {typ} is not understood")]
    UnknownCriticalSubpacket {
        /// The subpacket type.
        typ: u8,
    },
    /// A single-valued subpacket appears twice in the hashed area.
    #[error("hashed subpacket type {typ} appears more than once")]
    DuplicateSubpacket {
        /// The subpacket type.
        typ: u8,
    },
    /// A subpacket whose body does not have its type's form.
    #[error("hashed subpacket type {typ} is malformed: {why}")]
    MalformedSubpacket {
        /// The subpacket type.
        typ: u8,
        /// What is wrong.
        why: &'static str,
    },
    /// RFC 9580 §5.2.3.11: the creation time MUST be in the hashed area.
    #[error("signature has no creation time in its hashed area")]
    MissingCreationTime,
    /// A signature created after the reference time plus the tolerated
    /// clock skew.
    #[error(
        "signature created at {} is in the future (reference time {}, tolerated clock skew {skew} s)",
        utc(*.created), utc(*.at)
    )]
    SignatureInFuture {
        /// Creation time.
        created: u64,
        /// Reference time.
        at: u64,
        /// Tolerated clock skew, seconds.
        skew: u64,
    },
    /// The signature's own expiration time (subpacket 3) has passed.
    #[error("signature created at {} expired at {} (reference time {})", utc(*.created), utc(*.expired), utc(*.at))]
    SignatureExpired {
        /// Creation time.
        created: u64,
        /// Expiry time.
        expired: u64,
        /// Reference time.
        at: u64,
    },
    /// A signature older than the key that made it.
    #[error("signature created at {} predates its key, created at {}", utc(*.sig_created), utc(*.key_created))]
    SignatureBeforeKey {
        /// The signature's creation time.
        sig_created: u64,
        /// The key's creation time.
        key_created: u64,
    },
    /// A signature dated (within the clock skew) after its key's expiry.
    #[error("signature created at {} after its key expired at {}", utc(*.sig_created), utc(*.expired))]
    SignedAfterKeyExpiry {
        /// The signature's creation time.
        sig_created: u64,
        /// The key's expiry time.
        expired: u64,
    },
    /// The key's expiration time (subpacket 9 of its binding) has passed.
    #[error("key created at {} expired at {} (reference time {})", utc(*.key_created), utc(*.expired), utc(*.at))]
    KeyExpired {
        /// The key's creation time.
        key_created: u64,
        /// Expiry time.
        expired: u64,
        /// Reference time.
        at: u64,
    },
}

/// The kind of signature, as far as the hash policy cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigClass {
    /// Over data the signer may not have chosen in full: documents (0x00,
    /// 0x01), standalone (0x02), timestamps (0x40), confirmations (0x50),
    /// and anything unknown.
    Document,
    /// A key's signature over its own components: user ID / attribute
    /// self-certifications (0x10–0x13 by the primary key), subkey and primary
    /// key bindings (0x18, 0x19), direct-key (0x1F) and revocations of them
    /// (0x20, 0x28, 0x30) — the signer chose every hashed byte.
    SelfSignature,
    /// A certification by another key (0x10–0x13, 0x30): the certified key
    /// and user ID come from someone else.
    ThirdPartyCertification,
}

impl SigClass {
    /// The class of a signature type, given whether the issuer is the key
    /// being certified (the caller knows, having matched the issuer).
    pub fn of(sig_type: u8, issued_by_certified_key: bool) -> SigClass {
        match sig_type {
            0x10..=0x13 | 0x30 if issued_by_certified_key => SigClass::SelfSignature,
            0x10..=0x13 | 0x30 => SigClass::ThirdPartyCertification,
            0x18 | 0x19 | 0x1f | 0x20 | 0x28 => SigClass::SelfSignature,
            _ => SigClass::Document,
        }
    }
}

impl std::fmt::Display for SigClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SigClass::Document => "document",
            SigClass::SelfSignature => "self",
            SigClass::ThirdPartyCertification => "third-party certification",
        })
    }
}

/// A public key algorithm the policy can accept (RSA of any size here; the
/// size is [`Policy::min_rsa_bits`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// RSA (algo 1, or 3 for old sign-only keys).
    Rsa,
    /// ECDSA on a NIST curve.
    Ecdsa(Curve),
    /// EdDSALegacy (algo 22) on Ed25519, the v4-era form.
    EdDsaLegacy,
    /// Ed25519 (algo 27).
    Ed25519,
}

impl From<KeyKind> for Algorithm {
    fn from(k: KeyKind) -> Algorithm {
        match k {
            KeyKind::Rsa { .. } => Algorithm::Rsa,
            KeyKind::Ecdsa(c) => Algorithm::Ecdsa(c),
            KeyKind::EdDsaLegacy => Algorithm::EdDsaLegacy,
            KeyKind::Ed25519 => Algorithm::Ed25519,
        }
    }
}

/// 2023-02-01T00:00:00Z, Sequoia's cut-off for SHA-1 where only second
/// preimage resistance is needed.
const SHA1_SELF_SIGNATURE_CUTOFF: u64 = 1_675_209_600;

/// Tolerated clock difference for signatures "from the future": 30 minutes,
/// Sequoia's `CLOCK_SKEW_TOLERANCE`. A signature is made on the signer's
/// machine and checked on ours; two clocks are never equal, and a document
/// signed a moment ago by a machine whose clock runs ahead must not be
/// refused for it. Sequoia chose half an hour after seeing virtual machines
/// whose clocks drifted by minutes, sometimes over twenty; sqv, sq and the
/// Sequoia library accept such signatures, and gpgv accepts any future
/// creation time. It applies to creation times only (of documents and of
/// self-signatures); expiry is judged at the reference time itself.
pub const CLOCK_SKEW: Duration = Duration::from_secs(30 * 60);

/// Subpacket types that may be marked critical although the manager does not
/// interpret them, because they only state the key holder's preferences or
/// describe the signature, and cannot make the manager accept something it
/// would otherwise refuse.
pub const INFORMATIONAL_SUBPACKETS: &[u8] = &[
    4,  // exportable certification: the manager never exports
    7,  // revocable: ignoring it can only make revocations apply more widely
    11, // preferred symmetric ciphers
    21, // preferred hashes
    22, // preferred compression
    23, // key server preferences
    24, // preferred key server
    26, // policy URI
    30, // features
    39, // preferred AEAD ciphersuites
];

/// What the `pgp` driver accepts. Strict by default; every field is public so
/// a caller can tighten it (or, knowingly, loosen it). It holds no time: the
/// reference time is an argument of each check that needs one.
///
/// ```
/// use umd_pgp::policy::Policy;
/// let mut p = Policy::new();
/// p.min_rsa_bits = 3072;     // tighten
/// assert!(!p.allow_sha1_data_signatures);
/// ```
///
/// # Revocations
///
/// A revocation (key 0x20, subkey 0x28, user ID 0x30) counts when it is a
/// self-signature that verifies: made by the primary key over the component
/// it revokes, with a hash the manager implements ([`Policy::check_revocation`]).
/// Nothing else about it is judged — neither the hash cut-offs (a SHA-1
/// revocation counts), nor critical subpackets the manager does not
/// understand, nor its creation time (a revocation dated in the future counts
/// now), nor its expiry, nor its reason (a "superseded" revocation is as final
/// as a "compromised" one). Why, after Sequoia (`Policy::signature`: "one
/// should be more liberal when considering revocations: if you reject a
/// revocation certificate, it may inadvertently make something else valid"):
/// ignoring a real revocation keeps a key its owner declared compromised in
/// use, while honouring an odd one only refuses signatures by that key — and
/// only the key's holder can make one, since it must verify. A forged SHA-1
/// revocation would need a second preimage over the victim's own key packet,
/// which no one can find. Sequoia is lenient with revocation hashes for seven
/// years after a hash's cut-off and judges a soft revocation's time; the
/// manager is more lenient still: its rule does not change with the clock.
/// Revocations by designated revokers (third parties) are not honoured: they
/// do not verify with the key's own key (sqv, likewise, ignores them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Tolerated clock difference for creation times after the reference
    /// time: [`CLOCK_SKEW`], 30 minutes (why there).
    pub clock_skew: Duration,
    /// Smallest RSA modulus accepted: 2048 bits. RFC 9580 §12.4 says not to
    /// generate keys under 3072 bits, but 2048-bit keys are still widespread
    /// and estimated secure (~112-bit strength, NIST SP 800-57 to 2030);
    /// Sequoia's StandardPolicy likewise refuses only RSA under 2048.
    pub min_rsa_bits: u32,
    /// Accepted public key algorithms: RSA, ECDSA on P-256/P-384/P-521,
    /// EdDSALegacy and Ed25519 — the signing algorithms of RFC 9580 that the
    /// manager verifies. Not DSA (RFC 9580 §9.1: deprecated, and 1024-bit keys
    /// dominate), nor brainpool/secp256k1 (no audited verifier linked here).
    pub algorithms: Vec<Algorithm>,
    /// Accepted hashes (other than SHA-1, see below): SHA2-256, SHA2-384,
    /// SHA2-512. SHA2-224 is refused by default: no common implementation
    /// uses it by default, RFC 9580 forbids it with EdDSA (digests under 256
    /// bits), and every extra accepted algorithm is attack surface. MD5 and
    /// RIPEMD-160 are not implemented at all.
    pub hashes: Vec<HashAlgo>,
    /// Accept SHA-1 for document signatures: `false`. Chosen-prefix
    /// collisions on SHA-1 are practical ("SHA-1 is a Shambles", Leurent and
    /// Peyrin 2020, forged a PGP key certification), so a SHA-1 signature
    /// over data someone else prepared proves nothing. RFC 9580 §9.5: SHA-1
    /// MUST NOT be used to create signatures; Sequoia rejects SHA-1 data
    /// signatures made since 2013.
    pub allow_sha1_data_signatures: bool,
    /// SHA-1 *self*-signatures (bindings, self-certifications, direct-key) are
    /// accepted if created before this time: 2023-02-01, Sequoia's cut-off.
    /// Forging an existing self-signature needs a second preimage, which is
    /// not known for SHA-1; old keys (GnuPG before 2.1) have SHA-1
    /// self-signatures. New ones have no excuse. `None` refuses all SHA-1.
    /// Third-party certifications get no exemption: the certifier does not
    /// choose all hashed bytes, so collisions apply. (Revocations: see
    /// [Revocations](Policy#revocations).)
    pub sha1_self_signatures_before: Option<SystemTime>,
    /// Critical subpacket types tolerated without being interpreted (RFC 9580
    /// §5.2.3.7 makes a signature with an unknown critical subpacket
    /// invalid): [`INFORMATIONAL_SUBPACKETS`]. Critical notations (20),
    /// regular expressions (6), trust signatures (5), revocation keys (12),
    /// signer's user ID (28), signature targets (31), intended recipients (35)
    /// and anything unknown are refused: each restricts or changes what the
    /// signature means, and ignoring that would widen it.
    pub informational_critical: Vec<u8>,
    /// A creation time must be present (RFC 9580 §5.2.3.11: "MUST be present
    /// in the hashed area"): `true`. Without one, no expiry check is possible.
    pub require_creation_time: bool,
}

impl Default for Policy {
    /// The strict policy.
    fn default() -> Policy {
        Policy::new()
    }
}

impl Policy {
    /// The strict policy.
    pub fn new() -> Policy {
        Policy {
            clock_skew: CLOCK_SKEW,
            min_rsa_bits: 2048,
            algorithms: vec![
                Algorithm::Rsa,
                Algorithm::Ecdsa(Curve::NistP256),
                Algorithm::Ecdsa(Curve::NistP384),
                Algorithm::Ecdsa(Curve::NistP521),
                Algorithm::EdDsaLegacy,
                Algorithm::Ed25519,
            ],
            hashes: vec![HashAlgo::Sha256, HashAlgo::Sha384, HashAlgo::Sha512],
            allow_sha1_data_signatures: false,
            sha1_self_signatures_before: Some(UNIX_EPOCH + Duration::from_secs(SHA1_SELF_SIGNATURE_CUTOFF)),
            informational_critical: INFORMATIONAL_SUBPACKETS.to_vec(),
            require_creation_time: true,
        }
    }

    /// Is this key's algorithm and size accepted?
    pub fn check_key(&self, kind: KeyKind) -> Result<(), Rejection> {
        if !self.algorithms.contains(&Algorithm::from(kind)) {
            return Err(Rejection::Algorithm(kind));
        }
        if let KeyKind::Rsa { bits } = kind {
            if bits < self.min_rsa_bits {
                return Err(Rejection::RsaTooShort { bits, min: self.min_rsa_bits });
            }
        }
        Ok(())
    }

    /// Is hash `hash_id` accepted for a signature of this class created at
    /// `created` (the signature's hashed creation time; only used for the
    /// SHA-1 self-signature cut-off, and only ever to *refuse*)?
    pub fn check_hash(&self, class: SigClass, hash_id: u8, created: Option<u32>) -> Result<(), Rejection> {
        let hash = HashAlgo::from_id(hash_id).map_err(|_| Rejection::UnknownHash(hash_id))?;
        if hash == HashAlgo::Sha1 {
            let ok = match class {
                SigClass::Document => self.allow_sha1_data_signatures,
                SigClass::ThirdPartyCertification => false,
                SigClass::SelfSignature => match (self.sha1_self_signatures_before, created) {
                    (Some(cutoff), Some(c)) => u64::from(c) < secs(cutoff),
                    _ => false,
                },
            };
            return if ok { Ok(()) } else { Err(Rejection::Sha1 { class, created }) };
        }
        if !self.hashes.contains(&hash) {
            return Err(Rejection::Hash { hash, class });
        }
        Ok(())
    }

    /// Is the hash long enough for the key's algorithm? RFC 9580 §5.2.3.3 and
    /// §5.2.3.4: EdDSA signatures need a digest of at least 256 bits.
    pub fn check_hash_for_key(&self, kind: KeyKind, hash_id: u8) -> Result<(), Rejection> {
        let hash = HashAlgo::from_id(hash_id).map_err(|_| Rejection::UnknownHash(hash_id))?;
        if matches!(kind, KeyKind::EdDsaLegacy | KeyKind::Ed25519) && hash.digest_len() < 32 {
            return Err(Rejection::HashTooShortForKey { hash, key: kind });
        }
        Ok(())
    }

    /// Are all critical subpackets understood?
    pub fn check_critical(&self, facts: &SigFacts) -> Result<(), Rejection> {
        match facts.unknown_critical.iter().find(|t| !self.informational_critical.contains(t)) {
            Some(&typ) => Err(Rejection::UnknownCriticalSubpacket { typ }),
            None => Ok(()),
        }
    }

    /// Is a signature alive at `at`: created no later than `at` plus the
    /// tolerated [`clock_skew`](Policy::clock_skew), and not expired (its own
    /// expiration time, subpacket 3, is after `at`)? A signature without a
    /// creation time is not judged here (see
    /// [`require_creation_time`](Policy::require_creation_time)).
    pub fn check_alive(&self, facts: &SigFacts, at: SystemTime) -> Result<(), Rejection> {
        let Some(created) = facts.created else { return Ok(()) };
        let (created, at) = (u64::from(created), secs(at));
        let skew = self.clock_skew.as_secs();
        if created > at.saturating_add(skew) {
            return Err(Rejection::SignatureInFuture { created, at, skew });
        }
        if let Some(e) = facts.expires_after.filter(|&e| e != 0) {
            let expired = created + u64::from(e);
            if expired <= at {
                return Err(Rejection::SignatureExpired { created, expired, at });
            }
        }
        Ok(())
    }

    /// Has a key expired at `at`? `key_expires_after` is the key expiration
    /// time (subpacket 9, seconds after the key's creation; `None` or 0 for
    /// never) from the key's *verified* binding or direct-key signature.
    pub fn check_key_alive(
        &self,
        key_created: u32,
        key_expires_after: Option<u32>,
        at: SystemTime,
    ) -> Result<(), Rejection> {
        if let Some(e) = key_expires_after.filter(|&e| e != 0) {
            let key_created = u64::from(key_created);
            let expired = key_created + u64::from(e);
            let at = secs(at);
            if expired <= at {
                return Err(Rejection::KeyExpired { key_created, expired, at });
            }
        }
        Ok(())
    }

    /// Time checks, at the reference time `at`: the signature has a creation
    /// time (if required), is alive ([`check_alive`](Policy::check_alive)),
    /// is not older than its key, and the key has not expired
    /// ([`check_key_alive`](Policy::check_key_alive)).
    pub fn check_times(
        &self,
        facts: &SigFacts,
        key_created: u32,
        key_expires_after: Option<u32>,
        at: SystemTime,
    ) -> Result<(), Rejection> {
        self.check_created(facts, key_created)?;
        self.check_alive(facts, at)?;
        self.check_key_alive(key_created, key_expires_after, at)
    }

    /// The creation time is present (if required) and not before the key's.
    fn check_created(&self, facts: &SigFacts, key_created: u32) -> Result<(), Rejection> {
        match facts.created {
            None if self.require_creation_time => Err(Rejection::MissingCreationTime),
            Some(c) if c < key_created => Err(Rejection::SignatureBeforeKey {
                sig_created: u64::from(c),
                key_created: u64::from(key_created),
            }),
            _ => Ok(()),
        }
    }

    /// The checks of one signature by one key that do not depend on time, in
    /// the order a reader would expect the reasons: key, subpackets, hash,
    /// creation time present and not before the key. Returns the parsed
    /// hashed subpackets. A cache may keep what passes; the time checks
    /// ([`check_alive`](Policy::check_alive),
    /// [`check_key_alive`](Policy::check_key_alive)) are made at each use.
    pub fn check_static(
        &self,
        key: &CheckedKey,
        kind: KeyKind,
        sig: &CheckedSig,
        class: SigClass,
    ) -> Result<SigFacts, Rejection> {
        self.check_key(kind)?;
        let facts = SigFacts::from_sig(sig)?;
        self.check_critical(&facts)?;
        self.check_hash(class, sig.hash_algo(), facts.created)?;
        self.check_hash_for_key(kind, sig.hash_algo())?;
        self.check_created(&facts, key.created())?;
        Ok(facts)
    }

    /// Every check for one signature by one key at the reference time `at`:
    /// [`check_static`](Policy::check_static), then the signature alive and
    /// the key not expired at `at`. Returns the parsed hashed subpackets. The
    /// mathematical check is [`crypto::verify`](crate::crypto::verify), done
    /// separately.
    pub fn check_signature(
        &self,
        key: &CheckedKey,
        kind: KeyKind,
        key_expires_after: Option<u32>,
        sig: &CheckedSig,
        class: SigClass,
        at: SystemTime,
    ) -> Result<SigFacts, Rejection> {
        let facts = self.check_static(key, kind, sig, class)?;
        self.check_alive(&facts, at)?;
        self.check_key_alive(key.created(), key_expires_after, at)?;
        // A signature dated after `at` (within the clock skew) must also have
        // been made while its key was alive: a key that expires in ten
        // minutes cannot sign a document dated in twenty.
        if let (Some(c), Some(e)) = (facts.created, key_expires_after.filter(|&e| e != 0)) {
            let expired = u64::from(key.created()) + u64::from(e);
            if u64::from(c) >= expired {
                return Err(Rejection::SignedAfterKeyExpiry { sig_created: u64::from(c), expired });
            }
        }
        Ok(facts)
    }

    /// Whether a revocation may count, if it verifies: its hash must be one
    /// the manager implements (SHA-1 included), since otherwise it cannot be
    /// verified at all. Nothing else is judged; the
    /// rule and the reasons are in [Revocations](Policy#revocations).
    pub fn check_revocation(&self, sig: &CheckedSig) -> Result<(), Rejection> {
        let hash = sig.hash_algo();
        HashAlgo::from_id(hash).map_err(|_| Rejection::UnknownHash(hash))?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// The hashed subpackets the manager reads
// ---------------------------------------------------------------------------

/// Key flags (subpacket 27, RFC 9580 §5.2.3.29): the first octet's bits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFlags(pub Vec<u8>);

impl KeyFlags {
    fn bit(&self, b: u8) -> bool {
        self.0.first().is_some_and(|f| f & b != 0)
    }

    /// 0x01: may certify other keys / user IDs.
    pub fn certify(&self) -> bool {
        self.bit(0x01)
    }

    /// 0x02: may sign data.
    pub fn sign(&self) -> bool {
        self.bit(0x02)
    }
}

/// An issuer fingerprint as *claimed* by a subpacket (type 33): a key version
/// and the fingerprint octets. Compare with a [`crate::crypto::Fingerprint`]
/// the manager computed; never use it as one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerFingerprint {
    /// The key version (4 or 6).
    pub version: u8,
    /// The fingerprint octets (20 or 32).
    pub bytes: Vec<u8>,
}

impl IssuerFingerprint {
    /// Does it name this (computed) fingerprint?
    pub fn matches(&self, fpr: &crate::crypto::Fingerprint) -> bool {
        self.version == fpr.version() && self.bytes == fpr.as_bytes()
    }
}

/// The hashed subpackets of a signature, as far as the manager uses them.
/// Built only from [`CheckedSig::hashed`]: the unhashed area is not signed.
///
/// ```
/// use umd_pgp::packet::{check, encode_sig};
/// use umd_pgp::policy::SigFacts;
/// use umd_pgp_wire::{Body, Description, Field, Packet, Sig, Subpacket};
/// let sp = |typ, critical, body: &[u8]| Subpacket { len_octets: 1, critical, typ, body: body.to_vec(), embedded: None };
/// let sig = Sig { version: 4, sig_type: 0x13, pk_algo: 27, hash_algo: 8,
///     hashed: vec![sp(2, false, &[0, 0, 1, 0]), sp(27, true, &[0x03]), sp(100, true, b"x")],
///     unhashed: vec![], left16: [0, 0], salt: vec![], values: vec![Field::Raw(vec![1; 64])] };
/// // The signature packet, described and checked.
/// let body = encode_sig(&sig).unwrap();
/// let stream = [&[0xc2, body.len() as u8][..], &body].concat();
/// let desc = Description { packets: vec![Packet { offset: 0, header_len: 2,
///     body_len: body.len() as u64, tag: 2, body: Body::Signature(sig) }] };
/// let packets = check(&stream, desc).unwrap();
/// let f = SigFacts::from_sig(packets[0].signature().unwrap()).unwrap();
/// assert_eq!(f.created, Some(256));
/// assert!(f.key_flags.unwrap().sign());
/// assert_eq!((f.critical, f.unknown_critical), (vec![27, 100], vec![100]));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SigFacts {
    /// Signature creation time (type 2), seconds since the epoch.
    pub created: Option<u32>,
    /// Signature expiration (type 3), seconds after creation; 0 means never.
    pub expires_after: Option<u32>,
    /// Key expiration (type 9), seconds after the key's creation; 0 means never.
    pub key_expires_after: Option<u32>,
    /// Issuer key IDs (type 16).
    pub issuer_key_ids: Vec<KeyId>,
    /// Issuer fingerprints (type 33).
    pub issuer_fingerprints: Vec<IssuerFingerprint>,
    /// Key flags (type 27).
    pub key_flags: Option<KeyFlags>,
    /// Primary user ID flag (type 25).
    pub primary_user_id: Option<bool>,
    /// Reason for revocation (type 29): the code and the human-readable text.
    pub revocation_reason: Option<(u8, Vec<u8>)>,
    /// Embedded signature (type 32), e.g. a subkey's primary key binding;
    /// already re-encoded and checked like any signature, not yet verified.
    pub embedded: Option<CheckedSig>,
    /// Types of all critical subpackets, in order.
    pub critical: Vec<u8>,
    /// Types of the critical subpackets this view does not interpret (the
    /// policy decides which of those are tolerable).
    pub unknown_critical: Vec<u8>,
}

/// Issuer hints from *both* areas (types 16 and 33), to find a candidate key
/// for a signature. The unhashed area is not signed, so these are only hints:
/// the key found must still verify the signature, and a v4 signature made by
/// GnuPG before 2.2 carries its issuer only there.
pub fn issuer_hints(sig: &CheckedSig) -> (Vec<KeyId>, Vec<IssuerFingerprint>) {
    let mut ids = Vec::new();
    let mut fprs = Vec::new();
    for sp in sig.hashed().chain(sig.unhashed()) {
        match (sp.typ(), sp.body().split_first()) {
            (16, _) => {
                if let Ok(id) = <[u8; 8]>::try_from(sp.body()) {
                    ids.push(KeyId(id));
                }
            }
            (33, Some((&v, fpr))) if (v == 4 && fpr.len() == 20) || (v == 6 && fpr.len() == 32) => {
                fprs.push(IssuerFingerprint { version: v, bytes: fpr.to_vec() })
            }
            _ => {}
        }
    }
    (ids, fprs)
}

/// The subpacket types [`SigFacts`] interprets.
pub const INTERPRETED_SUBPACKETS: &[u8] = &[2, 3, 9, 16, 25, 27, 29, 32, 33];

impl SigFacts {
    /// Reads the hashed area. Single-valued subpackets (2, 3, 9, 25, 27, 29,
    /// 32) may appear only once: two creation times would let two
    /// implementations read different signatures from the same bytes.
    pub fn from_sig(sig: &CheckedSig) -> Result<SigFacts, Rejection> {
        let mut f = SigFacts::default();
        for sp in sig.hashed() {
            f.read(sp)?;
        }
        Ok(f)
    }

    fn read(&mut self, sp: CheckedSubpacket<'_>) -> Result<(), Rejection> {
        let (typ, body) = (sp.typ(), sp.body());
        let malformed = |why| Rejection::MalformedSubpacket { typ, why };
        fn once<T>(slot: &mut Option<T>, v: T, typ: u8) -> Result<(), Rejection> {
            if slot.is_some() {
                return Err(Rejection::DuplicateSubpacket { typ });
            }
            *slot = Some(v);
            Ok(())
        }
        let be32 = |b: &[u8]| -> Result<u32, Rejection> {
            b.try_into().map(u32::from_be_bytes).map_err(|_| malformed("expected 4 octets"))
        };
        if sp.critical() {
            self.critical.push(typ);
            if !INTERPRETED_SUBPACKETS.contains(&typ) {
                self.unknown_critical.push(typ);
            }
        }
        match typ {
            2 => once(&mut self.created, be32(body)?, typ)?,
            3 => once(&mut self.expires_after, be32(body)?, typ)?,
            9 => once(&mut self.key_expires_after, be32(body)?, typ)?,
            16 => {
                let id: [u8; 8] = body.try_into().map_err(|_| malformed("expected 8 octets"))?;
                self.issuer_key_ids.push(KeyId(id));
            }
            25 => match body {
                [b] => once(&mut self.primary_user_id, *b != 0, typ)?,
                _ => return Err(malformed("expected 1 octet")),
            },
            27 => once(&mut self.key_flags, KeyFlags(body.to_vec()), typ)?,
            29 => match body.split_first() {
                Some((&code, text)) => once(&mut self.revocation_reason, (code, text.to_vec()), typ)?,
                None => return Err(malformed("expected a reason code")),
            },
            32 => match sp.embedded() {
                Some(e) => once(&mut self.embedded, e, typ)?,
                None => return Err(malformed("embedded signature not described")),
            },
            33 => match body.split_first() {
                Some((&4, fpr)) if fpr.len() == 20 => {
                    self.issuer_fingerprints.push(IssuerFingerprint { version: 4, bytes: fpr.to_vec() })
                }
                Some((&6, fpr)) if fpr.len() == 32 => {
                    self.issuer_fingerprints.push(IssuerFingerprint { version: 6, bytes: fpr.to_vec() })
                }
                _ => return Err(malformed("expected version 4 and 20 octets, or 6 and 32")),
            },
            _ => {}
        }
        Ok(())
    }
}
