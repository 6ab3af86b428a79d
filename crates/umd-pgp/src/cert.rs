//! Certificates, built by the manager from checked packets, with every
//! self-signature it relies on verified: user ID self-certifications, subkey
//! bindings (with the primary key back-signature of signing subkeys), direct-key
//! signatures and revocations.
//!
//! Nothing here comes from the handler unchecked: the packets went through
//! [`packet::check`](crate::packet::check) (tiling, headers, re-encoding), the
//! fingerprints are computed here, and a component counts only if a signature
//! that verifies says so.

use umd_pgp_wire::{Key, Sig};

use crate::crypto::{self, Fingerprint, KeyId, KeyKind, SigHasher};
use crate::packet::{tag, Checked, CheckedBody};
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
    Crypto(String),
    /// The policy refused it.
    #[error("{0}")]
    Policy(#[from] Rejection),
    /// No valid self-signature binds it.
    #[error("no valid self-signature")]
    NoSelfSignature,
    /// Revoked by a valid revocation signature.
    #[error("revoked ({0})")]
    Revoked(String),
    /// A signing subkey without a valid primary key binding (back-signature).
    #[error("signing subkey without a valid primary key binding signature")]
    NoBackSignature,
}

impl From<crypto::CryptoError> for CertError {
    fn from(e: crypto::CryptoError) -> Self {
        CertError::Crypto(e.to_string())
    }
}

/// A key (primary or subkey) with what the manager established about it.
#[derive(Clone, Debug)]
pub struct KeyInfo {
    /// Its fingerprint (computed by the manager).
    pub fingerprint: Fingerprint,
    /// The checked key fields.
    pub key: Key,
    /// The key packet body (for hashing).
    pub body: Vec<u8>,
    /// Algorithm and size, if the manager can verify with it.
    pub kind: Result<KeyKind, String>,
    /// Key flags from its newest valid binding (or self-certification).
    pub flags: Option<KeyFlags>,
    /// Key expiration, seconds after creation (0 / `None`: never).
    pub expires_after: Option<u32>,
    /// Whether the key is usable for signature checks, or why not.
    pub validity: Result<(), CertError>,
}

impl KeyInfo {
    fn new(key: &Key, body: &[u8]) -> Result<KeyInfo, CertError> {
        let fingerprint = crypto::fingerprint(key.version, body)?;
        Ok(KeyInfo {
            fingerprint,
            key: key.clone(),
            body: body.to_vec(),
            kind: crypto::key_kind(key).map_err(|e| e.to_string()),
            flags: None,
            expires_after: None,
            validity: Err(CertError::NoSelfSignature),
        })
    }

    /// Its key ID.
    pub fn key_id(&self) -> KeyId {
        self.fingerprint.key_id()
    }

    /// Whether it may make document signatures now.
    pub fn can_sign(&self) -> bool {
        self.validity.is_ok() && self.flags.as_ref().is_some_and(KeyFlags::sign)
    }
}

/// A user ID and whether a valid self-certification binds it.
#[derive(Clone, Debug)]
pub struct UserId {
    /// The user ID as bytes (usually UTF-8).
    pub value: Vec<u8>,
    /// Valid, or why not.
    pub validity: Result<(), CertError>,
}

/// A certificate.
#[derive(Clone, Debug)]
pub struct Cert {
    /// The primary key.
    pub primary: KeyInfo,
    /// Its user IDs.
    pub user_ids: Vec<UserId>,
    /// Its subkeys.
    pub subkeys: Vec<KeyInfo>,
}

impl Cert {
    /// Every key of the certificate, primary first.
    pub fn keys(&self) -> impl Iterator<Item = &KeyInfo> {
        std::iter::once(&self.primary).chain(&self.subkeys)
    }
}

/// A certificate's components as they come in the stream, before any signature
/// is checked ([`RawCert::validate`] checks them). Cheap to build: a keyring's
/// certificates can be split at once and validated only when used.
#[derive(Clone, Debug)]
pub struct RawCert {
    primary: (Key, Vec<u8>),
    direct: Vec<Sig>,
    user_ids: Vec<(Vec<u8>, Vec<Sig>)>,
    subkeys: Vec<(Key, Vec<u8>, Vec<Sig>)>,
}

impl RawCert {
    /// Fingerprints of every key, primary first (computed here, from the bytes).
    pub fn fingerprints(&self) -> Result<Vec<Fingerprint>, CertError> {
        std::iter::once((&self.primary.0, &self.primary.1))
            .chain(self.subkeys.iter().map(|(k, b, _)| (k, b)))
            .map(|(k, b)| crypto::fingerprint(k.version, b).map_err(CertError::from))
            .collect()
    }

    /// Verifies the self-signatures and builds the certificate.
    pub fn validate(&self, policy: &Policy) -> Result<Cert, CertError> {
        build(self, policy)
    }
}

/// Builds the certificates of a keyring from its checked packets. A certificate
/// whose structure is broken is an error; an invalid component is kept with its
/// reason (so `umd pgp keys` can show it) but never used.
pub fn certificates(packets: &[Checked<'_>], policy: &Policy) -> Result<Vec<Cert>, CertError> {
    split(packets)?.iter().map(|r| r.validate(policy)).collect()
}

/// Splits a keyring's checked packets into certificates, verifying nothing yet.
pub fn split(packets: &[Checked<'_>]) -> Result<Vec<RawCert>, CertError> {
    let mut raws: Vec<RawCert> = Vec::new();
    // Where the next signature belongs: 0 primary, 1 last user ID, 2 last subkey,
    // 3 a user attribute (its signatures are skipped: we do not use attributes).
    let mut slot = 0;
    for p in packets {
        let structure = |what| CertError::Structure { offset: p.offset, what };
        match &p.fields {
            CheckedBody::PublicKey(k) => {
                raws.push(RawCert {
                    primary: (k.clone(), p.body.to_vec()),
                    direct: vec![],
                    user_ids: vec![],
                    subkeys: vec![],
                });
                slot = 0;
            }
            CheckedBody::UserId => {
                raws.last_mut().ok_or(structure("a user ID"))?.user_ids.push((p.body.to_vec(), vec![]));
                slot = 1;
            }
            CheckedBody::UserAttribute => {
                raws.last_mut().ok_or(structure("a user attribute"))?;
                slot = 3;
            }
            CheckedBody::PublicSubkey(k) => {
                raws.last_mut().ok_or(structure("a subkey"))?.subkeys.push((
                    k.clone(),
                    p.body.to_vec(),
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
                if p.tag == tag::SIGNATURE {
                    return Err(structure("an undescribed signature"));
                }
            }
        }
    }
    Ok(raws)
}

/// Verifies `sig` made by `signer` over the hash fed by `feed`, with the policy.
fn check_self_sig(
    signer: &KeyInfo,
    sig: &Sig,
    class: SigClass,
    policy: &Policy,
    feed: impl FnOnce(&mut SigHasher) -> Result<(), crypto::CryptoError>,
) -> Result<SigFacts, CertError> {
    let kind = signer.kind.clone().map_err(CertError::Crypto)?;
    let facts = policy.check_signature(&signer.key, kind, None, sig, class)?;
    // Certifications by other keys sit beside the self-signatures; a hashed
    // issuer subpacket naming another key is skipped without a costly public-key
    // operation. Only hashed hints count (they are signed: nobody can change them
    // without breaking the signature), and never for a revocation, which is
    // always verified.
    let revocation = matches!(sig.sig_type, 0x20 | 0x28 | 0x30);
    if !revocation && names_only_others(&facts, signer) {
        return Err(CertError::Crypto("issued by another key".into()));
    }
    let mut h = SigHasher::new(sig)?;
    feed(&mut h)?;
    crypto::verify(&signer.key, sig, &h.finish())?;
    Ok(facts)
}

/// Whether the hashed area (`SigFacts` reads only that) names an issuer, and only
/// issuers other than `signer`.
fn names_only_others(f: &SigFacts, signer: &KeyInfo) -> bool {
    let named = !f.issuer_key_ids.is_empty() || !f.issuer_fingerprints.is_empty();
    let names_signer = f.issuer_fingerprints.iter().any(|i| i.matches(&signer.fingerprint))
        || f.issuer_key_ids.contains(&signer.key_id());
    named && !names_signer
}

/// The newest of `sigs` that passes `check`, with its facts.
///
/// RFC 9580 §5.2.3.10: the most recent valid self-signature is the one that
/// counts. Candidates are tried newest first (by their hashed creation time;
/// among equal times the later in the stream first), so the first that verifies
/// is the answer and the older ones cost no public-key operation. Debian's
/// archive keys, for one, carry five direct-key signatures each.
fn newest_valid<'a>(
    sigs: impl Iterator<Item = &'a Sig>,
    mut check: impl FnMut(&Sig) -> Result<SigFacts, CertError>,
) -> Option<(SigFacts, &'a Sig)> {
    let mut order: Vec<(u32, usize, &Sig)> = sigs
        .enumerate()
        .map(|(i, s)| (SigFacts::from_sig(s).ok().and_then(|f| f.created).unwrap_or(0), i, s))
        .collect();
    order.sort_unstable_by_key(|&(created, i, _)| std::cmp::Reverse((created, i)));
    order.into_iter().find_map(|(_, _, s)| check(s).ok().map(|f| (f, s)))
}

/// Whether a direct-key signature says anything the manager reads (key flags or
/// a key expiry in its hashed area). One that does not cannot change a verdict,
/// valid or not, so it is not verified.
fn sets_key_facts(sig: &Sig) -> bool {
    SigFacts::from_sig(sig).is_ok_and(|f| f.key_flags.is_some() || f.key_expires_after.is_some())
}

fn build(raw: &RawCert, policy: &Policy) -> Result<Cert, CertError> {
    let (pk, pbody) = (&raw.primary.0, raw.primary.1.as_slice());
    let mut primary = KeyInfo::new(pk, pbody)?;
    // Revocations of the primary key (0x20) and direct-key signatures (0x1F).
    // Every revocation is verified; of the direct-key signatures, the newest
    // valid one that sets key flags or an expiry decides them.
    let direct = |s: &Sig| check_self_sig(&primary, s, SigClass::SelfSignature, policy, |h| h.key(pbody));
    let revoked =
        raw.direct.iter().filter(|s| s.sig_type == 0x20).find_map(|s| direct(s).ok()).map(|f| reason(&f));
    let direct_facts =
        newest_valid(raw.direct.iter().filter(|s| s.sig_type == 0x1f && sets_key_facts(s)), direct);
    let direct_flags = direct_facts.as_ref().and_then(|(f, _)| f.key_flags.clone());
    primary.expires_after = direct_facts.as_ref().and_then(|(f, _)| f.key_expires_after);
    // User IDs: the newest valid self-certification decides; a valid revocation
    // (0x30) newer than it revokes the user ID.
    let mut user_ids = Vec::new();
    let mut primary_binding: Option<SigFacts> = None;
    for (value, sigs) in &raw.user_ids {
        let certs = sigs.iter().filter(|s| (0x10..=0x13).contains(&s.sig_type));
        let newest = newest_valid(certs, |s| {
            check_self_sig(&primary, s, SigClass::SelfSignature, policy, |h| {
                h.key(pbody)?;
                h.user_id(value)
            })
        });
        let validity = match newest {
            None => Err(CertError::NoSelfSignature),
            Some((f, _)) => {
                let revocation = sigs.iter().filter(|s| s.sig_type == 0x30).find_map(|s| {
                    check_self_sig(&primary, s, SigClass::SelfSignature, policy, |h| {
                        h.key(pbody)?;
                        h.user_id(value)
                    })
                    .ok()
                });
                match revocation {
                    Some(r) => Err(CertError::Revoked(reason(&r))),
                    None => {
                        let better = match &primary_binding {
                            None => true,
                            Some(p) => {
                                f.primary_user_id.unwrap_or(false) && !p.primary_user_id.unwrap_or(false)
                            }
                        };
                        if better {
                            primary_binding = Some(f);
                        }
                        Ok(())
                    }
                }
            }
        };
        user_ids.push(UserId { value: value.to_vec(), validity });
    }
    // The primary key's flags and expiry: direct-key signature, else the primary
    // user ID's self-certification.
    if let Some(f) = &primary_binding {
        primary.flags = direct_flags.or_else(|| f.key_flags.clone());
        primary.expires_after = primary.expires_after.or(f.key_expires_after);
    } else {
        primary.flags = direct_flags;
    }
    primary.validity = match (&revoked, &primary_binding) {
        (Some(r), _) => Err(CertError::Revoked(r.clone())),
        (None, None) if primary.flags.is_none() => Err(CertError::NoSelfSignature),
        _ => key_usable(&primary, policy),
    };
    // Subkeys: the newest valid binding (0x18) decides; a valid revocation (0x28)
    // revokes; a signing subkey needs a valid embedded back-signature (0x19).
    let mut subkeys = Vec::new();
    for (k, body, sigs) in &raw.subkeys {
        let mut info = KeyInfo::new(k, body)?;
        let feed = |h: &mut SigHasher| {
            h.key(pbody)?;
            h.key(body)
        };
        let bindings = sigs.iter().filter(|s| s.sig_type == 0x18);
        let newest =
            newest_valid(bindings, |s| check_self_sig(&primary, s, SigClass::SelfSignature, policy, feed));
        info.validity = match newest {
            None => Err(CertError::NoSelfSignature),
            Some((f, binding)) => {
                info.flags = f.key_flags.clone();
                info.expires_after = f.key_expires_after;
                let revoked = sigs
                    .iter()
                    .filter(|s| s.sig_type == 0x28)
                    .find_map(|s| check_self_sig(&primary, s, SigClass::SelfSignature, policy, feed).ok());
                if let Some(r) = revoked {
                    Err(CertError::Revoked(reason(&r)))
                } else if primary.validity.is_err() {
                    Err(CertError::Crypto(format!("its primary key is not valid: {:?}", primary.validity)))
                } else if info.flags.as_ref().is_some_and(KeyFlags::sign)
                    && !back_signed(&info, binding, pbody, body, policy)
                {
                    Err(CertError::NoBackSignature)
                } else {
                    key_usable(&info, policy)
                }
            }
        };
        subkeys.push(info);
    }
    Ok(Cert { primary, user_ids, subkeys })
}

/// The primary key binding (0x19, embedded in the subkey binding): made by the
/// subkey over primary + subkey, so a signing subkey cannot be claimed by another
/// certificate. It may sit in either subpacket area (GnuPG puts it in the
/// unhashed one): it is a signature of its own, verified here, so where it sits
/// does not matter.
fn back_signed(sub: &KeyInfo, binding: &Sig, pbody: &[u8], body: &[u8], policy: &Policy) -> bool {
    binding
        .hashed
        .iter()
        .chain(&binding.unhashed)
        .filter(|sp| sp.typ == 32)
        .filter_map(|sp| sp.embedded.as_deref())
        .any(|back| {
            back.sig_type == 0x19
                && check_self_sig(sub, back, SigClass::SelfSignature, policy, |h| {
                    h.key(pbody)?;
                    h.key(body)
                })
                .is_ok()
        })
}

fn key_usable(k: &KeyInfo, policy: &Policy) -> Result<(), CertError> {
    let kind = k.kind.clone().map_err(CertError::Crypto)?;
    policy.check_key(kind)?;
    // Expiry of the key itself, against the policy's reference time.
    let facts = SigFacts { created: Some(k.key.created), ..SigFacts::default() };
    policy.check_times(&facts, k.key.created, k.expires_after)?;
    Ok(())
}

fn reason(f: &SigFacts) -> String {
    match &f.revocation_reason {
        Some((code, text)) => format!("reason {code}: {}", String::from_utf8_lossy(text)),
        None => "no reason given".into(),
    }
}

#[cfg(test)]
mod tests {
    use umd_pgp_wire::Subpacket;

    use super::*;

    fn sig(created: u32, extra: &[(u8, &[u8])]) -> Sig {
        let sp = |typ: u8, body: &[u8]| Subpacket {
            len_octets: 1,
            critical: false,
            typ,
            body: body.to_vec(),
            embedded: None,
        };
        let mut hashed = vec![sp(2, &created.to_be_bytes())];
        hashed.extend(extra.iter().map(|(t, b)| sp(*t, b)));
        Sig {
            version: 4,
            sig_type: 0x13,
            pk_algo: 1,
            hash_algo: 8,
            hashed,
            unhashed: vec![],
            left16: [0, 0],
            salt: vec![],
            values: vec![],
        }
    }

    #[test]
    fn the_newest_valid_signature_is_found_without_checking_older_ones() {
        // Stream order: 20, 40, 30, 40 (a tie: the later one goes first).
        let sigs = [sig(20, &[]), sig(40, &[(25, &[1])]), sig(30, &[]), sig(40, &[])];
        let mut tried = Vec::new();
        // Both signatures made at 40 are "bad": the one made at 30 is the answer,
        // and the one made at 20 is never checked.
        let found = newest_valid(sigs.iter(), |s| {
            let f = SigFacts::from_sig(s).map_err(CertError::Policy)?;
            tried.push((f.created, f.primary_user_id));
            if f.created == Some(40) {
                Err(CertError::NoSelfSignature)
            } else {
                Ok(f)
            }
        });
        let (facts, found) = found.expect("one is valid");
        assert_eq!(facts.created, Some(30));
        assert!(std::ptr::eq(found, &sigs[2]));
        assert_eq!(tried, [(Some(40), None), (Some(40), Some(true)), (Some(30), None)]);
        assert!(newest_valid(sigs.iter(), |_| Err(CertError::NoSelfSignature)).is_none());
    }

    #[test]
    fn only_direct_key_signatures_that_set_flags_or_expiry_are_worth_verifying() {
        assert!(!sets_key_facts(&sig(1, &[])));
        assert!(!sets_key_facts(&sig(1, &[(12, &[0x80; 22])])));
        assert!(sets_key_facts(&sig(1, &[(27, &[0x03])])));
        assert!(sets_key_facts(&sig(1, &[(9, &[0, 0, 1, 0])])));
    }
}
