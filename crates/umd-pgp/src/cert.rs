//! Certificates, built by the manager from checked packets, with every
//! self-signature it relies on verified: user ID self-certifications, subkey
//! bindings (with the primary key back-signature of signing subkeys), direct-key
//! signatures and revocations.
//!
//! Nothing here comes from the handler unchecked: the packets went through
//! [`packet::check`](crate::packet::check) (tiling, headers, re-encoding), the
//! fingerprints are computed here, and a component counts only if a signature
//! that verifies says so.
//!
//! Two stages, so that what a long-running verifier keeps does not depend on
//! the time:
//!
//! * [`CheckedCert`] — one certificate's components and signatures, fingerprints
//!   computed. Each signature's *cryptographic* check is made the first time a
//!   verdict needs it, and its result (a mathematical fact) is kept. Nothing in
//!   it depends on the reference time or the policy.
//! * [`ValidCert`] — that certificate validated at a reference time under a
//!   policy ([`CheckedCert::at`], as Sequoia's `Cert::with_policy` gives a
//!   `ValidCert`): which self-signature is current, the key flags and expiry
//!   it gives, revocations, and so each key's validity — a key is usable only
//!   through the [`ValidKey`] that [`KeyInfo::valid`] returns for it. Made for
//!   each verification; cheap once the cryptographic checks are cached.

use std::sync::OnceLock;
use std::time::SystemTime;

use crate::crypto::{self, CryptoError, Fingerprint, KeyId, KeyKind, SigHasher};
use crate::packet::{tag, Checked, CheckedBody, CheckedKey, CheckedSig};
use crate::policy::{KeyFlags, Policy, Rejection, SigClass, SigFacts};

/// Why a certificate or one of its parts is not usable. Each names its reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    /// The stream does not start with a primary key, or a component has no key.
    #[error("packet at offset {offset}: {what} outside a certificate")]
    Structure {
        /// Offset of the offending packet.
        offset: u64,
        /// What was found.
        what: &'static str,
    },
    /// A cryptographic or format error.
    #[error("{0}")]
    Crypto(#[from] CryptoError),
    /// The policy refused it.
    #[error("{0}")]
    Policy(#[from] Rejection),
    /// No valid self-signature binds it (at the reference time).
    #[error("no valid self-signature")]
    NoSelfSignature,
    /// Revoked by a valid revocation signature.
    #[error("revoked ({0})")]
    Revoked(String),
    /// A signing subkey without a valid primary key binding (back-signature).
    #[error("signing subkey without a valid primary key binding signature")]
    NoBackSignature,
    /// A subkey of a primary key that is not valid (and why not).
    #[error("its primary key is not valid: Err({})", as_before(.0))]
    PrimaryNotValid(Box<CertError>),
}

/// The primary key's error as messages have always shown it (the debug form
/// of the error, a cryptographic one as its text), so that `umd pgp keys`
/// prints what it printed before errors were typed.
fn as_before(e: &CertError) -> String {
    match e {
        CertError::Crypto(c) => format!("Crypto({:?})", c.to_string()),
        other => format!("{other:?}"),
    }
}

/// A key (primary or subkey) of a [`ValidCert`], with what the manager
/// established about it at the certificate's reference time.
#[derive(Clone, Debug)]
pub struct KeyInfo {
    fingerprint: Fingerprint,
    key: CheckedKey,
    kind: Result<KeyKind, CryptoError>,
    flags: Option<KeyFlags>,
    expires_after: Option<u32>,
    /// Valid (with its kind, which a valid key always has), or why not.
    validity: Result<KeyKind, CertError>,
}

impl KeyInfo {
    fn from_core(c: &Core) -> KeyInfo {
        KeyInfo {
            fingerprint: c.fingerprint.clone(),
            key: c.key.clone(),
            kind: c.kind.clone(),
            flags: None,
            expires_after: None,
            validity: Err(CertError::NoSelfSignature),
        }
    }

    /// Its fingerprint (computed by the manager).
    pub fn fingerprint(&self) -> &Fingerprint {
        &self.fingerprint
    }

    /// Its key ID.
    pub fn key_id(&self) -> KeyId {
        self.fingerprint.key_id()
    }

    /// The checked key fields, valid or not: inside the crate only (gpgv's
    /// report checks the mathematics of a signature by a key that is not
    /// valid, as gpgv does); verification takes a key through [`ValidKey::key`].
    pub(crate) fn key(&self) -> &CheckedKey {
        &self.key
    }

    /// The key's version (4 or 6).
    pub fn version(&self) -> u8 {
        self.key.version()
    }

    /// The key's creation time (seconds since the epoch).
    pub fn created(&self) -> u32 {
        self.key.created()
    }

    /// The key's public-key algorithm id.
    pub fn algo(&self) -> u8 {
        self.key.algo()
    }

    /// Algorithm and size, if the manager can verify with it.
    pub fn kind(&self) -> Result<KeyKind, &CryptoError> {
        self.kind.as_ref().copied()
    }

    /// Key flags from its current binding (or self-certification).
    pub fn flags(&self) -> Option<&KeyFlags> {
        self.flags.as_ref()
    }

    /// Key expiration, seconds after creation (0 / `None`: never).
    pub fn expires_after(&self) -> Option<u32> {
        self.expires_after
    }

    /// The key as valid at the reference time, or why it is not.
    pub fn valid(&self) -> Result<ValidKey<'_>, &CertError> {
        match &self.validity {
            Ok(kind) => Ok(ValidKey { info: self, kind: *kind }),
            Err(e) => Err(e),
        }
    }

    /// Whether it is valid and may make document signatures (at the
    /// reference time).
    pub fn can_sign(&self) -> bool {
        self.valid().is_ok_and(|k| k.can_sign())
    }
}

/// A key that is valid at its certificate's reference time: bound by a
/// current self-signature the policy accepts, not revoked, not expired, its
/// algorithm accepted. Only [`KeyInfo::valid`] gives one.
#[derive(Clone, Copy, Debug)]
pub struct ValidKey<'a> {
    info: &'a KeyInfo,
    kind: KeyKind,
}

impl<'a> ValidKey<'a> {
    /// Its algorithm and size (accepted by the policy).
    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// Whether its key flags allow document signatures.
    pub fn can_sign(&self) -> bool {
        self.info.flags.as_ref().is_some_and(KeyFlags::sign)
    }

    /// Its checked fields: what verification may use, since the key is valid.
    pub fn key(&self) -> &'a CheckedKey {
        &self.info.key
    }

    /// What else is known about it.
    pub fn info(&self) -> &'a KeyInfo {
        self.info
    }
}

/// A user ID and whether a valid self-certification binds it.
#[derive(Clone, Debug)]
pub struct UserId {
    value: Vec<u8>,
    validity: Result<(), CertError>,
}

impl UserId {
    /// The user ID as bytes (usually UTF-8).
    pub fn value(&self) -> &[u8] {
        &self.value
    }

    /// The user ID if a valid self-certification binds it at the reference
    /// time, or why none does.
    pub fn valid(&self) -> Result<&[u8], &CertError> {
        match &self.validity {
            Ok(()) => Ok(&self.value),
            Err(e) => Err(e),
        }
    }
}

/// A certificate validated at a reference time under a policy
/// ([`CheckedCert::at`]): each component with what holds for it then. Keys
/// that are not valid are kept with their reason (so they can be listed, and
/// a signature by one reported), but only a [`ValidKey`] says a key may be
/// used.
#[derive(Clone, Debug)]
pub struct ValidCert {
    primary: KeyInfo,
    user_ids: Vec<UserId>,
    subkeys: Vec<KeyInfo>,
    at: SystemTime,
}

impl ValidCert {
    /// The primary key.
    pub fn primary(&self) -> &KeyInfo {
        &self.primary
    }

    /// The primary key's fingerprint.
    pub fn fingerprint(&self) -> &Fingerprint {
        &self.primary.fingerprint
    }

    /// Its user IDs.
    pub fn user_ids(&self) -> &[UserId] {
        &self.user_ids
    }

    /// The user IDs a valid self-certification binds, in order.
    pub fn valid_user_ids(&self) -> impl Iterator<Item = &[u8]> {
        self.user_ids.iter().filter_map(|u| u.valid().ok())
    }

    /// Its subkeys.
    pub fn subkeys(&self) -> &[KeyInfo] {
        &self.subkeys
    }

    /// Every key of the certificate, primary first.
    pub fn keys(&self) -> impl Iterator<Item = &KeyInfo> {
        std::iter::once(&self.primary).chain(&self.subkeys)
    }

    /// The reference time it was validated at.
    pub fn at(&self) -> SystemTime {
        self.at
    }
}

/// A certificate's components as they come in the stream, before any signature
/// is checked ([`RawCert::check`] prepares them). Cheap to build: a keyring's
/// certificates can be split at once and checked only when used.
#[derive(Clone, Debug)]
pub struct RawCert {
    primary: (CheckedKey, Vec<u8>),
    direct: Vec<CheckedSig>,
    user_ids: Vec<(Vec<u8>, Vec<CheckedSig>)>,
    subkeys: Vec<(CheckedKey, Vec<u8>, Vec<CheckedSig>)>,
}

impl RawCert {
    /// Fingerprints of every key, primary first (computed here, from the bytes).
    pub fn fingerprints(&self) -> Result<Vec<Fingerprint>, CertError> {
        std::iter::once((&self.primary.0, &self.primary.1))
            .chain(self.subkeys.iter().map(|(k, b, _)| (k, b)))
            .map(|(k, b)| crypto::fingerprint(k.version(), b).map_err(CertError::from))
            .collect()
    }

    /// Computes the fingerprints and sorts the signatures by component and
    /// kind; verifies nothing yet ([`CheckedCert::at`] does, as needed).
    pub fn check(&self) -> Result<CheckedCert, CertError> {
        let (pk, pbody) = &self.primary;
        let primary = Core::new(pk, pbody)?;
        let of_type = |sigs: &[CheckedSig], keep: &dyn Fn(&CheckedSig) -> bool| {
            newest_first(sigs.iter().filter(|s| keep(s)).cloned())
        };
        // Direct-key signatures that set neither key flags nor an expiry cannot
        // change a verdict, valid or not: they are not kept, so never verified.
        let direct = of_type(&self.direct, &|s| s.sig_type() == 0x1f && sets_key_facts(s));
        let revocations = of_type(&self.direct, &|s| s.sig_type() == 0x20);
        let user_ids = self
            .user_ids
            .iter()
            .map(|(value, sigs)| UidSigs {
                value: value.clone(),
                certifications: of_type(sigs, &|s| (0x10..=0x13).contains(&s.sig_type())),
                revocations: of_type(sigs, &|s| s.sig_type() == 0x30),
            })
            .collect();
        let subkeys = self
            .subkeys
            .iter()
            .map(|(k, body, sigs)| {
                let bindings = of_type(sigs, &|s| s.sig_type() == 0x18);
                // The primary key binding (0x19) embedded in each binding. It
                // may sit in either subpacket area (GnuPG puts it in the
                // unhashed one): it is a signature of its own, verified with
                // the subkey, so where it sits does not matter.
                let backs = bindings
                    .iter()
                    .map(|b| {
                        newest_first(
                            b.sig
                                .hashed()
                                .chain(b.sig.unhashed())
                                .filter(|sp| sp.typ() == 32)
                                .filter_map(|sp| sp.embedded())
                                .filter(|e| e.sig_type() == 0x19),
                        )
                    })
                    .collect();
                Ok(SubkeySigs {
                    key: Core::new(k, body)?,
                    bindings,
                    backs,
                    revocations: of_type(sigs, &|s| s.sig_type() == 0x28),
                })
            })
            .collect::<Result<_, CertError>>()?;
        Ok(CheckedCert { primary, direct, revocations, user_ids, subkeys })
    }
}

/// Builds the certificates of a keyring from its checked packets, as of `at`.
/// A certificate whose structure is broken is an error; an invalid component
/// is kept with its reason (so `umd pgp keys` can show it) but never used.
pub fn certificates(
    packets: &[Checked<'_>],
    policy: &Policy,
    at: SystemTime,
) -> Result<Vec<ValidCert>, CertError> {
    split(packets)?.iter().map(|r| Ok(r.check()?.at(policy, at))).collect()
}

/// Splits a keyring's checked packets into certificates, verifying nothing yet.
pub fn split(packets: &[Checked<'_>]) -> Result<Vec<RawCert>, CertError> {
    let mut raws: Vec<RawCert> = Vec::new();
    // Where the next signature belongs: 0 primary, 1 last user ID, 2 last subkey,
    // 3 a user attribute (its signatures are skipped: we do not use attributes).
    let mut slot = 0;
    for p in packets {
        let structure = |what| CertError::Structure { offset: p.offset(), what };
        match p.fields() {
            CheckedBody::PublicKey(k) => {
                raws.push(RawCert {
                    primary: (k.clone(), p.body().to_vec()),
                    direct: vec![],
                    user_ids: vec![],
                    subkeys: vec![],
                });
                slot = 0;
            }
            CheckedBody::UserId => {
                raws.last_mut().ok_or(structure("a user ID"))?.user_ids.push((p.body().to_vec(), vec![]));
                slot = 1;
            }
            CheckedBody::UserAttribute => {
                raws.last_mut().ok_or(structure("a user attribute"))?;
                slot = 3;
            }
            CheckedBody::PublicSubkey(k) => {
                raws.last_mut().ok_or(structure("a subkey"))?.subkeys.push((
                    k.clone(),
                    p.body().to_vec(),
                    vec![],
                ));
                slot = 2;
            }
            CheckedBody::Signature(s) => {
                let raw = raws.last_mut().ok_or(structure("a signature"))?;
                match slot {
                    0 => raw.direct.push(s.clone()),
                    1 => raw.user_ids.last_mut().ok_or(structure("a signature"))?.1.push(s.clone()),
                    2 => raw.subkeys.last_mut().ok_or(structure("a signature"))?.2.push(s.clone()),
                    _ => {}
                }
            }
            CheckedBody::Opaque => {
                // Trust packets (12) and markers (10) may sit in keyrings.
                if p.tag() == tag::SIGNATURE {
                    return Err(structure("an undescribed signature"));
                }
            }
        }
    }
    Ok(raws)
}

/// What does not change about a key: its fields, body, fingerprint, kind.
#[derive(Debug)]
struct Core {
    fingerprint: Fingerprint,
    key: CheckedKey,
    body: Vec<u8>,
    kind: Result<KeyKind, CryptoError>,
}

impl Core {
    fn new(key: &CheckedKey, body: &[u8]) -> Result<Core, CertError> {
        Ok(Core {
            fingerprint: crypto::fingerprint(key.version(), body)?,
            key: key.clone(),
            body: body.to_vec(),
            kind: crypto::key_kind(key),
        })
    }
}

/// A signature over a certificate component, whose cryptographic check is
/// made once, when a verdict first needs it.
#[derive(Debug)]
struct Checkable {
    sig: CheckedSig,
    /// Whether it verifies: mathematics only, so true at any time and under
    /// any policy (the policy is applied at each use).
    verifies: OnceLock<bool>,
}

/// `sigs`, newest first by their hashed creation time (among equal times,
/// the later in the stream first): RFC 9580 §5.2.3.10 makes the most recent
/// valid self-signature the one that counts, so the first that passes is the
/// answer and the older ones cost no public-key operation. Debian's archive
/// keys, for one, carry five direct-key signatures each.
fn newest_first(sigs: impl Iterator<Item = CheckedSig>) -> Vec<Checkable> {
    let mut order: Vec<(u32, usize, CheckedSig)> = sigs
        .enumerate()
        .map(|(i, s)| (SigFacts::from_sig(&s).ok().and_then(|f| f.created).unwrap_or(0), i, s))
        .collect();
    order.sort_unstable_by_key(|&(created, i, _)| std::cmp::Reverse((created, i)));
    order.into_iter().map(|(_, _, sig)| Checkable { sig, verifies: OnceLock::new() }).collect()
}

/// Whether a direct-key signature says anything the manager reads (key flags or
/// a key expiry in its hashed area).
fn sets_key_facts(sig: &CheckedSig) -> bool {
    SigFacts::from_sig(sig).is_ok_and(|f| f.key_flags.is_some() || f.key_expires_after.is_some())
}

/// Whether `c`, made by `signer` over what `feed` hashes, verifies (computed
/// once).
fn verifies(
    c: &Checkable,
    signer: &Core,
    feed: impl FnOnce(&mut SigHasher) -> Result<(), CryptoError>,
) -> bool {
    *c.verifies.get_or_init(|| {
        let Ok(mut h) = SigHasher::new(&c.sig) else { return false };
        feed(&mut h).is_ok() && crypto::verify(&signer.key, &c.sig, &h.finish()).is_ok()
    })
}

/// Whether the hashed area (`SigFacts` reads only that) names an issuer, and only
/// issuers other than `signer`.
fn names_only_others(f: &SigFacts, signer: &Core) -> bool {
    let named = !f.issuer_key_ids.is_empty() || !f.issuer_fingerprints.is_empty();
    let names_signer = f.issuer_fingerprints.iter().any(|i| i.matches(&signer.fingerprint))
        || f.issuer_key_ids.contains(&signer.fingerprint.key_id());
    named && !names_signer
}

/// The current self-signature among `sigs` (newest first) at `at`: the newest
/// that is alive at `at` (not made after it, beyond the clock skew, and not
/// expired — an older one may still be alive, as in Sequoia), that the policy
/// accepts, and that verifies. One whose hashed issuer names only other keys (a
/// certification by another key beside the self-signatures) is skipped without
/// a public-key operation: hashed hints are signed, nobody can change them
/// without breaking the signature. Returns its index and facts.
fn current(
    sigs: &[Checkable],
    signer: &Core,
    policy: &Policy,
    at: SystemTime,
    verify: impl Fn(&Checkable) -> bool,
) -> Option<(usize, SigFacts)> {
    let kind = *signer.kind.as_ref().ok()?;
    sigs.iter().enumerate().find_map(|(i, c)| {
        let facts = policy.check_static(&signer.key, kind, &c.sig, SigClass::SelfSignature).ok()?;
        policy.check_alive(&facts, at).ok()?;
        if names_only_others(&facts, signer) {
            return None;
        }
        verify(c).then_some((i, facts))
    })
}

/// The first revocation of `revs` that counts, with its reason: by the rule
/// of [`Policy`](crate::policy::Policy#revocations), one that verifies, with a
/// hash the manager implements; nothing else is judged.
fn revocation(revs: &[Checkable], policy: &Policy, verify: impl Fn(&Checkable) -> bool) -> Option<String> {
    revs.iter().find(|r| policy.check_revocation(&r.sig).is_ok() && verify(r)).map(|r| reason(&r.sig))
}

fn reason(sig: &CheckedSig) -> String {
    match SigFacts::from_sig(sig) {
        Ok(SigFacts { revocation_reason: Some((code, text)), .. }) => {
            format!("reason {code}: {}", String::from_utf8_lossy(&text))
        }
        Ok(_) => "no reason given".into(),
        Err(e) => format!("reason unreadable: {e}"),
    }
}

/// A user ID's signatures.
#[derive(Debug)]
struct UidSigs {
    value: Vec<u8>,
    certifications: Vec<Checkable>,
    revocations: Vec<Checkable>,
}

/// A subkey's signatures.
#[derive(Debug)]
struct SubkeySigs {
    key: Core,
    bindings: Vec<Checkable>,
    /// The back-signatures embedded in each binding (same index).
    backs: Vec<Vec<Checkable>>,
    revocations: Vec<Checkable>,
}

/// A certificate whose packets were checked, its fingerprints computed, its
/// signatures waiting to be verified when needed (and then remembered). Only
/// facts that hold at any time are kept: [`CheckedCert::at`] judges the rest.
#[derive(Debug)]
pub struct CheckedCert {
    primary: Core,
    /// Direct-key signatures that set key flags or an expiry, newest first.
    direct: Vec<Checkable>,
    /// Key revocations (0x20).
    revocations: Vec<Checkable>,
    user_ids: Vec<UidSigs>,
    subkeys: Vec<SubkeySigs>,
}

impl CheckedCert {
    /// The primary key's fingerprint.
    pub fn fingerprint(&self) -> &Fingerprint {
        &self.primary.fingerprint
    }

    /// The certificate as of the reference time `at` under `policy`: for each
    /// component the current self-signature (the newest alive at `at` that
    /// passes the policy and verifies), revocations, key expiry at `at`.
    /// Signatures are verified only as far as the answer needs, and each
    /// verification is remembered.
    pub fn at(&self, policy: &Policy, at: SystemTime) -> ValidCert {
        let p = &self.primary;
        let pbody = p.body.as_slice();
        let by_primary = |c: &Checkable| verifies(c, p, |h| h.key(pbody));
        let mut primary = KeyInfo::from_core(p);
        let revoked = revocation(&self.revocations, policy, by_primary);
        let direct = current(&self.direct, p, policy, at, by_primary).map(|(_, f)| f);
        let direct_flags = direct.as_ref().and_then(|f| f.key_flags.clone());
        primary.expires_after = direct.as_ref().and_then(|f| f.key_expires_after);
        // User IDs: the current self-certification binds; a revocation revokes.
        let mut user_ids = Vec::new();
        let mut primary_binding: Option<SigFacts> = None;
        for u in &self.user_ids {
            let over_uid = |c: &Checkable| {
                verifies(c, p, |h| {
                    h.key(pbody)?;
                    h.user_id(&u.value)
                })
            };
            let validity = match current(&u.certifications, p, policy, at, over_uid) {
                None => Err(CertError::NoSelfSignature),
                Some((_, f)) => match revocation(&u.revocations, policy, over_uid) {
                    Some(r) => Err(CertError::Revoked(r)),
                    None => {
                        let better = match &primary_binding {
                            None => true,
                            Some(b) => {
                                f.primary_user_id.unwrap_or(false) && !b.primary_user_id.unwrap_or(false)
                            }
                        };
                        if better {
                            primary_binding = Some(f);
                        }
                        Ok(())
                    }
                },
            };
            user_ids.push(UserId { value: u.value.clone(), validity });
        }
        // The primary key's flags and expiry: direct-key signature, else the
        // primary user ID's self-certification.
        match &primary_binding {
            Some(f) => {
                primary.flags = direct_flags.or_else(|| f.key_flags.clone());
                primary.expires_after = primary.expires_after.or(f.key_expires_after);
            }
            None => primary.flags = direct_flags,
        }
        primary.validity = match (revoked, &primary_binding) {
            (Some(r), _) => Err(CertError::Revoked(r)),
            (None, None) if primary.flags.is_none() => Err(CertError::NoSelfSignature),
            _ => key_usable(&primary, policy, at),
        };
        // Subkeys: the current binding (0x18) decides; a revocation (0x28)
        // revokes; a signing subkey needs a valid back-signature (0x19).
        let mut subkeys = Vec::new();
        for s in &self.subkeys {
            let mut info = KeyInfo::from_core(&s.key);
            let sbody = s.key.body.as_slice();
            let over_subkey = |signer: &Core, c: &Checkable| {
                verifies(c, signer, |h| {
                    h.key(pbody)?;
                    h.key(sbody)
                })
            };
            info.validity = match current(&s.bindings, p, policy, at, |c| over_subkey(p, c)) {
                None => Err(CertError::NoSelfSignature),
                Some((i, f)) => {
                    info.flags = f.key_flags.clone();
                    info.expires_after = f.key_expires_after;
                    if let Some(r) = revocation(&s.revocations, policy, |c| over_subkey(p, c)) {
                        Err(CertError::Revoked(r))
                    } else if let Err(e) = &primary.validity {
                        Err(CertError::PrimaryNotValid(Box::new(e.clone())))
                    } else if info.flags.as_ref().is_some_and(KeyFlags::sign)
                        && current(&s.backs[i], &s.key, policy, at, |c| over_subkey(&s.key, c)).is_none()
                    {
                        // The back-signature: made by the subkey over primary +
                        // subkey, so a signing subkey cannot be claimed by
                        // another certificate.
                        Err(CertError::NoBackSignature)
                    } else {
                        key_usable(&info, policy, at)
                    }
                }
            };
            subkeys.push(info);
        }
        ValidCert { primary, user_ids, subkeys, at }
    }
}

/// A key bound at `at` is valid if the policy accepts its algorithm and it has
/// not expired; valid, it has its kind.
fn key_usable(k: &KeyInfo, policy: &Policy, at: SystemTime) -> Result<KeyKind, CertError> {
    let kind = k.kind.clone()?;
    policy.check_key(kind)?;
    policy.check_key_alive(k.key.created(), k.expires_after, at)?;
    Ok(kind)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use umd_pgp_wire::{Field, Key, Sig, Subpacket};

    use super::*;
    use crate::packet::tests::{checked_key, checked_sig};

    fn sp(typ: u8, body: &[u8]) -> Subpacket {
        Subpacket { len_octets: 1, critical: false, typ, body: body.to_vec(), embedded: None }
    }

    fn sig(created: u32, extra: &[(u8, &[u8])]) -> CheckedSig {
        let mut hashed = vec![sp(2, &created.to_be_bytes())];
        hashed.extend(extra.iter().map(|(t, b)| sp(*t, b)));
        checked_sig(Sig {
            version: 4,
            sig_type: 0x13,
            pk_algo: 27,
            hash_algo: 8,
            hashed,
            unhashed: vec![],
            left16: [0, 0],
            salt: vec![],
            values: vec![Field::Raw(vec![0; 64])],
        })
    }

    fn signer() -> Core {
        let key = Key { version: 6, created: 10, algo: 27, material: vec![Field::Raw(vec![9; 32])] };
        let body = crate::packet::encode_key(&key).unwrap();
        Core::new(&checked_key(key), &body).unwrap()
    }

    #[test]
    fn the_current_self_signature_is_the_newest_alive_one_and_older_ones_are_not_checked() {
        // Stream order: 20, 40, 30, 40 (a tie: the later one goes first), 90.
        let sigs = [sig(20, &[]), sig(40, &[(25, &[1])]), sig(30, &[]), sig(40, &[]), sig(90, &[])];
        let sorted = newest_first(sigs.into_iter());
        let created = |c: &Checkable| SigFacts::from_sig(&c.sig).unwrap().created.unwrap();
        assert_eq!(sorted.iter().map(created).collect::<Vec<_>>(), [90, 40, 40, 30, 20]);
        assert_eq!(SigFacts::from_sig(&sorted[2].sig).unwrap().primary_user_id, Some(true));
        let mut policy = Policy::new();
        policy.clock_skew = Duration::ZERO;
        let at = UNIX_EPOCH + Duration::from_secs(50);
        // At 50, the signature made at 90 is not yet alive; both made at 40
        // are "bad": the one made at 30 is the answer, the one at 20 never tried.
        let tried = std::cell::RefCell::new(Vec::new());
        let found = current(&sorted, &signer(), &policy, at, |c| {
            tried.borrow_mut().push(created(c));
            created(c) != 40
        });
        assert_eq!(found.map(|(i, f)| (i, f.created)), Some((3, Some(30))));
        assert_eq!(tried.into_inner(), [40, 40, 30]);
        // At 100 the newest is alive, and is the answer.
        let later = UNIX_EPOCH + Duration::from_secs(100);
        assert_eq!(current(&sorted, &signer(), &policy, later, |_| true).map(|(i, _)| i), Some(0));
        assert!(current(&sorted, &signer(), &policy, later, |_| false).is_none());
    }

    #[test]
    fn an_expired_self_signature_gives_way_to_an_older_alive_one() {
        let sorted = newest_first([sig(20, &[]), sig(40, &[(3, &10u32.to_be_bytes())])].into_iter());
        let policy = Policy::new();
        let at = |s| UNIX_EPOCH + Duration::from_secs(s);
        assert_eq!(current(&sorted, &signer(), &policy, at(45), |_| true).map(|(i, _)| i), Some(0));
        assert_eq!(current(&sorted, &signer(), &policy, at(50), |_| true).map(|(i, _)| i), Some(1));
    }

    #[test]
    fn a_subkey_of_a_primary_key_that_is_not_valid_says_why_as_it_always_did() {
        let revoked = CertError::PrimaryNotValid(Box::new(CertError::Revoked("reason 2: gone".into())));
        assert_eq!(revoked.to_string(), "its primary key is not valid: Err(Revoked(\"reason 2: gone\"))");
        let dsa = CertError::Crypto(CryptoError::UnsupportedAlgorithm { algo: 17 });
        assert_eq!(
            CertError::PrimaryNotValid(Box::new(dsa)).to_string(),
            "its primary key is not valid: Err(Crypto(\"unsupported public key algorithm 17 (DSA)\"))"
        );
    }

    #[test]
    fn only_direct_key_signatures_that_set_flags_or_expiry_are_worth_verifying() {
        assert!(!sets_key_facts(&sig(1, &[])));
        assert!(!sets_key_facts(&sig(1, &[(12, &[0x80; 22])])));
        assert!(sets_key_facts(&sig(1, &[(27, &[0x03])])));
        assert!(sets_key_facts(&sig(1, &[(9, &[0, 0, 1, 0])])));
    }
}
