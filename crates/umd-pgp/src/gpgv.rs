//! gpgv's status protocol: what `umd gpgv` tells apt — and any other reader of
//! `--status-fd` — about each signature, in gpgv 2.2's exact format.
//!
//! apt does not act on gpgv's exit status but on its status lines: a
//! `GOODSIG` with a matching `VALIDSIG` (whose hash algorithm it checks) is a
//! good signature, `BADSIG` is fatal, `ERRSIG` + `NO_PUBKEY` is a missing key,
//! `EXPKEYSIG`/`REVKEYSIG`/`EXPSIG` are worthless, `NODATA` is not a signature
//! at all. This module turns umd's verdicts ([`crate::verify`]) into those
//! lines. The verdict is umd's, decided by its policy and nobody else: a
//! `GOODSIG` is written for a signature exactly when umd found it good. What
//! this module adds is *how* gpgv would say it, so a reader that knows gpgv
//! reads umd the same way:
//!
//! * the lines gpgv 2.2.40 writes, in its order, with its fields: `NEWSIG`,
//!   `KEY_CONSIDERED`, `KEYEXPIRED`, `SIG_ID`, `GOODSIG`, `VALIDSIG` (all ten
//!   fields), `BADSIG`, `EXPSIG`, `EXPKEYSIG`, `REVKEYSIG`, `ERRSIG`,
//!   `NO_PUBKEY`, `NODATA`, `UNEXPECTED`, `PLAINTEXT`, `POLICY_URL`,
//!   `NOTATION_NAME`/`_FLAGS`/`_DATA`, and gpgv 2.4's `ASSERT_PUBKEY_ALGO`;
//! * like gpgv in batch mode, nothing after the first `BADSIG` or `EXPSIG`;
//! * user IDs percent-escaped as gpg escapes them (`%`, control characters and
//!   DEL), so no user ID can end a status line or start another.
//!
//! Where umd's policy refuses what gpgv accepts, the signature is reported as
//! gpgv itself reports a signature it may not use: a refused hash (SHA-1, MD5,
//! RIPEMD-160, SHA2-224) as `ERRSIG … 5`, exactly what `gpgv --weak-digest`
//! prints; a refused key (RSA under 2048 bits, DSA, unsupported curves) as
//! `ERRSIG … 4`, what gpg prints for a key outside its compliance mode; a
//! signature more than the clock skew (30 minutes) in the future, or older
//! than its key, as `ERRSIG … 39` (time conflict, what gpgv says without
//! `--ignore-time-conflict`). A signature by an expired or revoked key gets
//! gpgv's `EXPKEYSIG`/`REVKEYSIG` lines, and the exit status 1 where gpgv
//! exits 0; so does one dated (within the skew) after its key's expiry,
//! which gpgv accepts while the key lives. Every time is judged at the
//! reference time the caller gives ([`Verifier::gpgv`]), never at a clock
//! read here. A cleartext signature whose hash the `Hash:` header does not
//! announce is gpgv's `ERRSIG … 1` ("signature digest conflict"). gpgv's `--weak-digest` is a
//! tighter [`Policy`] (fewer [`Policy::hashes`]), given to the [`Verifier`]:
//! it then applies to certificates' self-signatures too, as in gpgv.
//!
//! ```
//! use umd_pgp::gpgv::{Line, Signed};
//! let line = Line::Signed { kind: Signed::Good, key_id: [0xEC, 0x74, 0xC5, 0xDB, 0xDA, 0xA1, 0xAC, 0xCE],
//!     user_id: Some(b"Evil\n[GNUPG:] GOODSIG 100%".to_vec()) };
//! assert_eq!(line.encode(), b"[GNUPG:] GOODSIG EC74C5DBDAA1ACCE Evil%0A[GNUPG:] GOODSIG 100%25\n");
//! ```

use std::time::SystemTime;

use base64::Engine;
use umd_hash::Hex;

use crate::armor::{self, ArmorError};
use crate::cert::{CertError, KeyInfo, ValidCert};
use crate::cleartext::Cleartext;
use crate::crypto::{self, CryptoError, Curve, Fingerprint, HashAlgo, KeyKind, SigHasher};
use crate::packet::{self, tag, CheckedField as Field, CheckedSig};
use crate::policy::{issuer_hints, secs, utc, Policy, Rejection, SigClass, SigFacts};
use crate::verifier::Verifier;
use crate::verify::{self, BadReason, Data, SigReport, Status, Verdict};

/// The gpg-error codes gpgv writes in `ERRSIG` lines (libgpg-error's
/// `gpg-error.h`).
pub mod rc {
    /// `GPG_ERR_GENERAL`: e.g. a signing subkey without a back-signature.
    pub const GENERAL: u32 = 1;
    /// `GPG_ERR_PUBKEY_ALGO`: a key algorithm (or size) that may not be used.
    pub const PUBKEY_ALGO: u32 = 4;
    /// `GPG_ERR_DIGEST_ALGO`: a hash algorithm that may not be used.
    pub const DIGEST_ALGO: u32 = 5;
    /// `GPG_ERR_BAD_PUBKEY`: a key without a valid self-signature.
    pub const BAD_PUBKEY: u32 = 6;
    /// `GPG_ERR_NO_PUBKEY`: the issuer is not in the keyring.
    pub const NO_PUBKEY: u32 = 9;
    /// `GPG_ERR_TIME_CONFLICT`: a signature from the future or older than its key.
    pub const TIME_CONFLICT: u32 = 39;
    /// `GPG_ERR_WRONG_KEY_USAGE`: a key not flagged for signing data.
    pub const WRONG_KEY_USAGE: u32 = 125;

    /// gpg's message for a code (`gpg_strerror`).
    pub fn text(rc: u32) -> &'static str {
        match rc {
            GENERAL => "General error",
            PUBKEY_ALGO => "Invalid public key algorithm",
            DIGEST_ALGO => "Invalid digest algorithm",
            BAD_PUBKEY => "Bad public key",
            NO_PUBKEY => "No public key",
            TIME_CONFLICT => "Time conflict",
            WRONG_KEY_USAGE => "Wrong key usage",
            _ => "Unknown error",
        }
    }
}

/// Which of gpgv's five signature lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signed {
    /// `GOODSIG`: umd found the signature good.
    Good,
    /// `BADSIG`: the signature does not verify (or is refused as gpgv refuses
    /// one with an unknown critical subpacket).
    Bad,
    /// `EXPSIG`: verifies, but the signature itself has expired.
    ExpiredSig,
    /// `EXPKEYSIG`: verifies, but the key has expired.
    ExpiredKey,
    /// `REVKEYSIG`: verifies, but the key is revoked.
    RevokedKey,
}

impl Signed {
    fn keyword(self) -> &'static str {
        match self {
            Signed::Good => "GOODSIG",
            Signed::Bad => "BADSIG",
            Signed::ExpiredSig => "EXPSIG",
            Signed::ExpiredKey => "EXPKEYSIG",
            Signed::RevokedKey => "REVKEYSIG",
        }
    }
}

/// One status line. Key IDs are the ones the signature *names* (its issuer
/// subpackets, as gpgv prints them), not a claim that a key was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    /// `NEWSIG [signer]`: a signature starts; the signer's user ID subpacket,
    /// reduced to its mail address as gpg does, if the signature has one.
    NewSig {
        /// The signer's user ID (already made printable and reduced).
        signer: Option<Vec<u8>>,
    },
    /// `KEY_CONSIDERED <primary fpr> 0`: the keyring has the issuer's certificate.
    KeyConsidered {
        /// The certificate's primary key.
        primary: Fingerprint,
    },
    /// `KEYEXPIRED <time>`: the signing key expired at this time.
    KeyExpired {
        /// Seconds since the epoch.
        at: u64,
    },
    /// `SIG_ID <id> <date> <time>`: gpg's identifier of a verified signature.
    SigId {
        /// gpg's radix-64 SHA-1 over the signature's algorithm, time and values.
        id: String,
        /// The signature's creation time.
        created: u32,
    },
    /// `GOODSIG`/`BADSIG`/`EXPSIG`/`EXPKEYSIG`/`REVKEYSIG <keyid> <user ID>`.
    Signed {
        /// Which line.
        kind: Signed,
        /// The issuer key ID the signature names.
        key_id: [u8; 8],
        /// The certificate's primary user ID (`[?]` when it has none).
        user_id: Option<Vec<u8>>,
    },
    /// `POLICY_URL <url>`: a policy URI subpacket of a good signature.
    PolicyUrl {
        /// The URI as signed.
        url: Vec<u8>,
    },
    /// `NOTATION_NAME <name>`: a notation of a good signature (hashed area).
    NotationName {
        /// The name.
        name: Vec<u8>,
    },
    /// `NOTATION_FLAGS <critical> <human-readable>`.
    NotationFlags {
        /// The subpacket's critical bit.
        critical: bool,
        /// The notation's human-readable flag.
        human: bool,
    },
    /// `NOTATION_DATA <value>`, split every `wrap` octets as gpg splits it.
    NotationData {
        /// The value (or gpg's description of an empty binary one).
        data: Vec<u8>,
        /// 250 for binary values, 50 for human-readable ones.
        wrap: usize,
    },
    /// `VALIDSIG`, all ten fields.
    ValidSig {
        /// The signing key (primary or subkey).
        key: Fingerprint,
        /// Signature creation time.
        created: u32,
        /// Signature expiry time (creation + its validity period), 0 for none.
        expires: u64,
        /// Signature version.
        version: u8,
        /// Public key algorithm id.
        pk_algo: u8,
        /// Hash algorithm id (apt refuses 1, 2 and 3).
        hash_algo: u8,
        /// Signature type (class).
        sig_type: u8,
        /// The certificate's primary key (apt maps a subkey to it).
        primary: Fingerprint,
    },
    /// `ERRSIG <keyid> <pk> <hash> <class> <time> <rc> <fpr|->`: not checked.
    ErrSig {
        /// The issuer key ID the signature names.
        key_id: [u8; 8],
        /// Public key algorithm id.
        pk_algo: u8,
        /// Hash algorithm id.
        hash_algo: u8,
        /// Signature type.
        sig_type: u8,
        /// Signature creation time.
        created: u32,
        /// Why (see [`rc`]).
        rc: u32,
        /// The v4 issuer fingerprint of the hashed area, if any.
        issuer: Option<Vec<u8>>,
    },
    /// `NO_PUBKEY <keyid>`, after an `ERRSIG` with [`rc::NO_PUBKEY`].
    NoPubkey {
        /// The issuer key ID the signature names.
        key_id: [u8; 8],
    },
    /// `NODATA <what>`: 1 no armored data, 2 no packet, 3 invalid packet, 4 no
    /// signature.
    NoData(u8),
    /// `UNEXPECTED 0`: packets that are not a detached signature.
    Unexpected(u8),
    /// `ASSERT_PUBKEY_ALGO <fpr> <0|1> <algo>` (gpgv 2.4, `--assert-pubkey-algo`).
    AssertPubkeyAlgo {
        /// The signing key.
        key: Fingerprint,
        /// Whether its algorithm is in the asserted list.
        ok: bool,
        /// gpg's name of the algorithm (`rsa4096`, `ed25519`, `nistp256`).
        algo: String,
    },
    /// `PLAINTEXT 74 0 `: a cleartext document's text goes to `--output`.
    Plaintext,
    /// `ERROR <location> <code>`: e.g. a keyring that cannot be read.
    Error {
        /// Where (`add_keyblock_resource`).
        location: &'static str,
        /// gpg's error code, source included.
        code: u32,
    },
}

/// One status line (or several, when `wrap` splits it) as gpg's
/// `write_status_text_and_buffer` writes it: `[GNUPG:] KEYWORD `, then
/// `prefix` (a space added after it unless it ends in one), then `bytes` with
/// `%`, DEL and every byte up to a limit written `%XX` (uppercase hex). The
/// limit is 0x20 (spaces escaped too) unless `wrap` is `None`, gpg's `-1`:
/// then 0x1F. With `Some(n)`, n > 0, a new line with the same keyword
/// starts after every n bytes of `bytes`.
fn status_buffer(keyword: &str, prefix: Option<&str>, bytes: &[u8], wrap: Option<usize>) -> Vec<u8> {
    let (limit, wrap) = match wrap {
        None => (0x1f, 0),
        Some(w) => (0x20, w),
    };
    let mut out = Vec::new();
    let (mut count, mut dowrap, mut first) = (1usize, true, true);
    let mut rest = bytes;
    loop {
        if dowrap {
            out.extend_from_slice(b"[GNUPG:] ");
            out.extend_from_slice(keyword.as_bytes());
            out.push(b' ');
            count = 0;
            dowrap = false;
            if let (true, Some(p)) = (first, prefix) {
                out.extend_from_slice(p.as_bytes());
                count += p.len();
                if !p.is_empty() && !p.ends_with(' ') {
                    out.push(b' ');
                    count += 1;
                }
            }
            first = false;
        }
        let mut esc = false;
        let mut i = 0;
        while i < rest.len() {
            let c = rest[i];
            esc = c == b'%' || c <= limit || c == 0x7f;
            if wrap > 0 {
                count += 1;
                dowrap = count > wrap;
            }
            if esc || dowrap {
                break;
            }
            i += 1;
        }
        out.extend_from_slice(&rest[..i]);
        rest = &rest[i..];
        if esc {
            out.extend_from_slice(format!("%{:02X}", rest[0]).as_bytes());
            rest = &rest[1..];
        }
        if dowrap && !rest.is_empty() {
            out.push(b'\n');
        }
        if rest.is_empty() {
            break;
        }
    }
    out.push(b'\n');
    out
}

/// Escapes a user ID for a status line as gpg does for `GOODSIG` and friends:
/// `%`, control characters (0x00–0x1F) and DEL become `%XX`; spaces and
/// non-ASCII bytes stay as they are.
///
/// ```
/// assert_eq!(umd_pgp::gpgv::escape_user_id(b"A B\r\n%\x7f\xc3\xa9"), b"A B%0D%0A%25%7F\xc3\xa9");
/// ```
pub fn escape_user_id(uid: &[u8]) -> Vec<u8> {
    let line = status_buffer("X", None, uid, None);
    line[b"[GNUPG:] X ".len()..line.len() - 1].to_vec()
}

impl Line {
    /// The line as gpgv writes it, `\n` included (several lines for a
    /// long `NOTATION_DATA`, as gpgv splits it).
    pub fn encode(&self) -> Vec<u8> {
        let text = |s: String| format!("[GNUPG:] {s}\n").into_bytes();
        match self {
            Line::NewSig { signer: None } => text("NEWSIG".into()),
            Line::NewSig { signer: Some(s) } => status_buffer("NEWSIG", None, s, Some(0)),
            Line::KeyConsidered { primary } => text(format!("KEY_CONSIDERED {primary} 0")),
            Line::KeyExpired { at } => text(format!("KEYEXPIRED {at}")),
            Line::SigId { id, created } => text(format!("SIG_ID {id} {} {created}", date(*created))),
            Line::Signed { kind, key_id, user_id } => {
                let uid = user_id.as_deref().unwrap_or(b"[?]");
                status_buffer(kind.keyword(), Some(&format!("{:X} ", Hex(key_id))), uid, None)
            }
            Line::PolicyUrl { url } => status_buffer("POLICY_URL", None, url, Some(0)),
            Line::NotationName { name } => status_buffer("NOTATION_NAME", None, name, Some(0)),
            Line::NotationFlags { critical, human } => {
                text(format!("NOTATION_FLAGS {} {}", u8::from(*critical), u8::from(*human)))
            }
            Line::NotationData { data, wrap } => status_buffer("NOTATION_DATA", None, data, Some(*wrap)),
            Line::ValidSig { key, created, expires, version, pk_algo, hash_algo, sig_type, primary } => text(format!(
                "VALIDSIG {key} {} {created} {expires} {version} 0 {pk_algo} {hash_algo} {sig_type:02X} {primary}",
                date(*created)
            )),
            Line::ErrSig { key_id, pk_algo, hash_algo, sig_type, created, rc, issuer } => text(format!(
                "ERRSIG {:X} {pk_algo} {hash_algo} {sig_type:02x} {created} {rc} {}",
                Hex(key_id),
                issuer.as_deref().map_or_else(|| "-".to_string(), |i| format!("{:X}", Hex(i)))
            )),
            Line::NoPubkey { key_id } => text(format!("NO_PUBKEY {:X}", Hex(key_id))),
            Line::NoData(n) => text(format!("NODATA {n}")),
            Line::Unexpected(n) => text(format!("UNEXPECTED {n}")),
            Line::AssertPubkeyAlgo { key, ok, algo } => {
                text(format!("ASSERT_PUBKEY_ALGO {key} {} {algo}", u8::from(*ok)))
            }
            Line::Plaintext => text("PLAINTEXT 74 0 ".into()),
            Line::Error { location, code } => text(format!("ERROR {location} {code}")),
        }
    }
}

/// Days since the epoch to a civil date (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// gpg's `strtimestamp`: the UTC date, `YYYY-MM-DD`.
fn date(t: u32) -> String {
    let (y, m, d) = civil(i64::from(t) / 86_400);
    format!("{y:04}-{m:02}-{d:02}")
}

// ---------------------------------------------------------------------------
// What gpg reads from a signature for its status lines.

/// gpg's `SIG_ID`: radix-64 (no padding) of SHA-1 over the public key and hash
/// algorithms, the 4-octet creation time and the signature values as OpenPGP
/// MPIs (normalized: no leading zero octets).
pub fn sig_id(sig: &CheckedSig, created: u32) -> String {
    let mut h = HashAlgo::Sha1.hasher();
    h.update(&[sig.pk_algo(), sig.hash_algo()]);
    h.update(&created.to_be_bytes());
    for v in sig.values() {
        match v {
            Field::Mpi(m) => {
                let m = &m[m.iter().position(|&b| b != 0).unwrap_or(m.len())..];
                let bits = crypto::bit_len(m) as u16;
                h.update(&bits.to_be_bytes());
                h.update(m);
            }
            Field::Raw(b) | Field::Oid(b) | Field::Sized(b) => h.update(b),
        }
    }
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(h.finish())
}

/// The key ID a signature names, as gpg reads it: the issuer subpacket (hashed
/// area first), else the issuer fingerprint's key ID, else zeros.
pub fn named_key_id(sig: &CheckedSig) -> [u8; 8] {
    let (ids, fprs) = issuer_hints(sig);
    if let Some(id) = ids.first() {
        return id.0;
    }
    fprs.first().and_then(|f| crypto::key_id(f.version, &f.bytes).ok()).map_or([0; 8], |k| k.0)
}

/// The v4 issuer fingerprint of the hashed area (gpg's `issuer_fpr_raw`).
fn hashed_issuer_fpr(sig: &CheckedSig) -> Option<Vec<u8>> {
    match sig.hashed().find(|sp| sp.typ() == 33)?.body() {
        [4, fpr @ ..] if fpr.len() == 20 => Some(fpr.to_vec()),
        _ => None,
    }
}

/// The `POLICY_URL` and `NOTATION_*` lines gpgv writes for a good signature:
/// policy URIs in order, then the notations of the hashed area, last first
/// (gpg builds its list by prepending). A notation's name and a
/// human-readable value end at their first NUL octet, as C strings do.
pub fn notation_lines(sig: &CheckedSig) -> Vec<Line> {
    let c_str = |b: &[u8]| b[..b.iter().position(|&c| c == 0).unwrap_or(b.len())].to_vec();
    let mut lines: Vec<Line> = sig
        .hashed()
        .filter(|sp| sp.typ() == 26)
        .map(|sp| Line::PolicyUrl { url: sp.body().to_vec() })
        .collect();
    let mut notations = Vec::new();
    for sp in sig.hashed().filter(|sp| sp.typ() == 20) {
        let b = sp.body();
        if b.len() < 8 {
            continue;
        }
        let (n1, n2) =
            (usize::from(u16::from_be_bytes([b[4], b[5]])), usize::from(u16::from_be_bytes([b[6], b[7]])));
        if 8 + n1 + n2 != b.len() {
            continue;
        }
        let (name, value) = (&b[8..8 + n1], &b[8 + n1..]);
        let human = b[0] & 0x80 != 0;
        let mut l = vec![Line::NotationName { name: c_str(name) }];
        if sp.critical() || human {
            l.push(Line::NotationFlags { critical: sp.critical(), human });
        }
        l.push(if human {
            Line::NotationData { data: c_str(value), wrap: 50 }
        } else if !value.is_empty() {
            Line::NotationData { data: value.to_vec(), wrap: 250 }
        } else {
            Line::NotationData { data: b"[ not human readable (0 bytes: ) ]".to_vec(), wrap: 50 }
        });
        notations.push(l);
    }
    lines.extend(notations.into_iter().rev().flatten());
    lines
}

/// gpg's `try_make_printable_string` (no delimiter): control characters and
/// DEL become C escapes.
fn printable(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            0x0c => out.extend_from_slice(b"\\f"),
            0x0b => out.extend_from_slice(b"\\v"),
            0x08 => out.extend_from_slice(b"\\b"),
            0 => out.extend_from_slice(b"\\0"),
            b if b < 0x20 || b == 0x7f => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
            b => out.push(b),
        }
    }
    out
}

/// gpg's `has_invalid_email_chars`: only ASCII is checked.
fn invalid_email_chars(s: &[u8]) -> bool {
    const VALID: &[u8] = b"01234567890_-.abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut at = false;
    for &c in s {
        if c & 0x80 != 0 {
            continue;
        }
        if c == b'@' {
            at = true;
            continue;
        }
        // Before the '@' a few more characters are allowed than after it.
        let allowed = VALID.contains(&c) || (!at && b"!#$%&'*+/=?^`{|}~".contains(&c));
        if !allowed {
            return true;
        }
    }
    false
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// gpg's `mailbox_from_userid`: the address between `<` and `>`, or the whole
/// user ID if it is an address; ASCII lowercased.
fn mailbox(uid: &[u8]) -> Option<Vec<u8>> {
    let bad_end = |s: &[u8]| s.first() == Some(&b'@') || matches!(s.last(), Some(b'@' | b'.'));
    let ats = |s: &[u8]| s.iter().filter(|&&c| c == b'@').count();
    let found = if let Some(lt) = uid.iter().position(|&c| c == b'<') {
        let rest = &uid[lt + 1..];
        let gt = rest.iter().position(|&c| c == b'>').filter(|&gt| gt > 0)?;
        let m = &rest[..gt];
        let ctrl_or_space = m.iter().any(|&c| c & 0x80 == 0 && c <= 0x20);
        let dotdot_after_at = m.iter().position(|&c| c == b'@').is_some_and(|i| contains(&m[i + 1..], b".."));
        if ats(m) != 1 || bad_end(m) || ctrl_or_space || dotdot_after_at {
            return None;
        }
        m.to_vec()
    } else {
        if uid.is_empty() || invalid_email_chars(uid) || ats(uid) != 1 || bad_end(uid) || contains(uid, b"..")
        {
            return None;
        }
        uid.to_vec()
    };
    Some(found.to_ascii_lowercase())
}

/// The `NEWSIG` argument: the signer's user ID subpacket (type 28, hashed
/// area), made printable and reduced to its mail address as gpg does.
pub fn signer_user_id(sig: &CheckedSig) -> Option<Vec<u8>> {
    let body = sig.hashed().find(|sp| sp.typ() == 28)?.body();
    if body.is_empty() {
        return None;
    }
    let p = printable(body);
    Some(mailbox(&p).unwrap_or(p))
}

/// gpg's name of a key's algorithm and size (`pubkey_string`), as
/// `--assert-pubkey-algo` compares it.
pub fn pubkey_string(kind: KeyKind) -> String {
    match kind {
        KeyKind::Rsa { bits } => format!("rsa{bits}"),
        KeyKind::Ecdsa(Curve::NistP256) => "nistp256".into(),
        KeyKind::Ecdsa(Curve::NistP384) => "nistp384".into(),
        KeyKind::Ecdsa(Curve::NistP521) => "nistp521".into(),
        KeyKind::Ecdsa(Curve::Ed25519Legacy) | KeyKind::EdDsaLegacy | KeyKind::Ed25519 => "ed25519".into(),
    }
}

/// One algorithm name of an `--assert-pubkey-algo` list (gpg's
/// `parse_one_algo_string`): leading spaces and commas, an optional condition
/// (`>=`, `>`, `<=`, `<`, `=`), letters, optional `-`/`+`, a number, up to the
/// next space or comma.
struct AlgoName {
    start: usize,
    prefix: usize,
    number: u64,
    len: usize,
    condition: i8,
}

fn parse_algo(s: &[u8], mut i: usize) -> Option<AlgoName> {
    while i < s.len() && matches!(s[i], b' ' | b'\t' | b',') {
        i += 1;
    }
    let rest = &s[i..];
    let (condition, skip) = if rest.starts_with(b">=") {
        (2, 2)
    } else if rest.starts_with(b">") {
        (1, 1)
    } else if rest.starts_with(b"<=") {
        (-2, 2)
    } else if rest.starts_with(b"<") {
        (-1, 1)
    } else if rest.starts_with(b"=") {
        (0, 1)
    } else {
        (0, 0)
    };
    i += skip;
    let start = i;
    if !s.get(i).is_some_and(u8::is_ascii_alphabetic) {
        return None;
    }
    while s.get(i).is_some_and(u8::is_ascii_alphabetic) {
        i += 1;
    }
    let prefix = i - start;
    while matches!(s.get(i), Some(b'-' | b'+')) {
        i += 1;
    }
    let mut number: u64 = 0;
    while let Some(d) = s.get(i).filter(|c| c.is_ascii_digit()) {
        number = number.saturating_mul(10).saturating_add(u64::from(d - b'0'));
        i += 1;
    }
    while i < s.len() && !matches!(s[i], b' ' | b'\t' | b',') {
        i += 1;
    }
    Some(AlgoName { start, prefix, number, len: i - start, condition })
}

/// gpg's `extra_algo_strength_offset`: ed448 and cv448 rank above their
/// 25519 siblings. Like gpg, it compares everything from the name on.
fn strength_offset(rest: &[u8]) -> u64 {
    if rest.eq_ignore_ascii_case(b"ed448") || rest.eq_ignore_ascii_case(b"cv448") {
        50_000
    } else {
        0
    }
}

/// Whether algorithm `algo` (a [`pubkey_string`]) is in the `--assert-pubkey-algo`
/// list `spec` (e.g. `>=rsa2048,ed25519,nistp256`), as gpg 2.4's
/// `compare_pubkey_string` decides.
///
/// ```
/// use umd_pgp::gpgv::pubkey_algo_asserted as ok;
/// assert!(ok("rsa3072", ">=rsa2048,ed25519"));
/// assert!(!ok("rsa1024", ">=rsa2048,ed25519"));
/// assert!(ok("ed25519", ">=rsa2048, ed25519"));
/// assert!(!ok("nistp256", ">=rsa2048,ed25519"));
/// ```
pub fn pubkey_algo_asserted(algo: &str, spec: &str) -> bool {
    let (a, b) = (algo.as_bytes(), spec.as_bytes());
    let mut at = 0;
    while at < b.len() {
        let Some(x) = parse_algo(a, 0) else { return false };
        let Some(y) = parse_algo(b, at) else { return false };
        let next = y.start + y.len;
        let an = x.number.saturating_add(strength_offset(&a[x.start..]));
        let bn = y.number.saturating_add(strength_offset(&b[y.start..]));
        let same_prefix = x.prefix == y.prefix
            && a[x.start..x.start + x.prefix].eq_ignore_ascii_case(&b[y.start..y.start + y.prefix]);
        let hit = same_prefix
            && match y.condition {
                2 => an >= bn,
                1 => an > bn,
                -1 => an < bn,
                -2 => an <= bn,
                _ => x.len == y.len && a[x.start..x.start + x.len].eq_ignore_ascii_case(&b[y.start..next]),
            };
        if hit {
            return true;
        }
        at = next;
    }
    false
}

/// A `--weak-digest` name as gpg (libgcrypt) reads it: `MD5`, `SHA1`,
/// `RIPEMD160`, `SHA224`, `SHA256`, `SHA384`, `SHA512`, any case, or `H<id>`.
/// Returns the OpenPGP hash id; `None` for a name gpg does not know.
///
/// ```
/// use umd_pgp::gpgv::digest_id;
/// assert_eq!((digest_id("sha1"), digest_id("H8"), digest_id("SHA-1")), (Some(2), Some(8), None));
/// ```
pub fn digest_id(name: &str) -> Option<u8> {
    let known: &[(&str, u8)] = &[
        ("MD5", 1),
        ("SHA1", 2),
        ("RIPEMD160", 3),
        ("SHA256", 8),
        ("SHA384", 9),
        ("SHA512", 10),
        ("SHA224", 11),
        ("SHA3-256", 12),
        ("SHA3-512", 14),
    ];
    if let Some((_, id)) = known.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
        return Some(*id);
    }
    let digits = name.strip_prefix(['H', 'h'])?;
    let id: u8 = digits.parse().ok()?;
    GPG_DIGESTS.contains(&id).then_some(id)
}

/// Hash algorithms gpg 2.2 implements (`openpgp_md_test_algo`); others are
/// `ERRSIG … 5` before any key is looked up.
const GPG_DIGESTS: &[u8] = &[1, 2, 3, 8, 9, 10, 11];
/// Public key algorithms gpg 2.2 verifies signatures with; others are
/// `ERRSIG … 4` before any key is looked up.
const GPG_SIGNING_ALGOS: &[u8] = &[1, 3, 17, 19, 22];

// ---------------------------------------------------------------------------
// Running gpgv's check over umd's verdicts.

/// What changes the verdicts, besides umd's policy.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// gpgv 2.4's `--assert-pubkey-algo` list, if given (several are joined
    /// with commas, as gpgv does).
    pub assert_pubkey_algo: Option<String>,
    /// A cleartext document's text is wanted (`--output`): write `PLAINTEXT`.
    pub output: bool,
}

/// gpgv's exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Exit {
    /// 0: every signature good.
    Good = 0,
    /// 1: a bad signature (`BADSIG`, `EXPSIG`; with umd also `EXPKEYSIG`,
    /// `REVKEYSIG`) or a failed `--assert-pubkey-algo`.
    Bad = 1,
    /// 2: a signature that could not be checked (`ERRSIG`), no signature at
    /// all, or another error.
    Error = 2,
}

/// Everything a gpgv run says.
#[derive(Clone, Debug)]
pub struct Report {
    /// The status lines, in order.
    pub lines: Vec<Line>,
    /// Messages for people (gpgv's log), without a program name.
    pub messages: Vec<String>,
    /// The exit status.
    pub exit: Exit,
    /// umd's own verdict on each signature packet (empty if none was reached).
    pub reports: Vec<SigReport>,
    /// A cleartext document's text, present only if umd verified it (at least
    /// one good signature from a keyring key, none bad, every signature's
    /// hash announced by a `Hash:` header) and no `--assert-pubkey-algo`
    /// failed: what `--output` may write.
    pub text: Option<Vec<u8>>,
}

impl Report {
    fn new() -> Report {
        Report { lines: Vec::new(), messages: Vec::new(), exit: Exit::Good, reports: Vec::new(), text: None }
    }

    fn fail(mut self, exit: Exit, message: String) -> Report {
        self.messages.push(message);
        self.exit = self.exit.max(exit);
        self
    }

    /// The status lines as gpgv writes them.
    pub fn status_bytes(&self) -> Vec<u8> {
        self.lines.iter().flat_map(Line::encode).collect()
    }
}

/// What is checked: a detached signature's data, or a cleartext document.
#[derive(Clone, Copy, Debug)]
pub enum Input<'a> {
    /// A detached signature (binary or armored) and the data it signs.
    Detached {
        /// The signature file.
        signature: &'a [u8],
        /// The data.
        data: &'a [u8],
    },
    /// A cleartext-signed document.
    Cleartext(&'a [u8]),
}

/// The marker packet (RFC 9580 §5.8), which readers skip.
const MARKER: u8 = 10;

/// The `NODATA`/`UNEXPECTED` lines gpgv gives a signature stream that is not
/// a detached signature, or `None` if it is one (signature packets, perhaps
/// marker packets).
fn not_a_signature(input: &[u8], armored: bool, stream: &[u8]) -> Option<(Vec<Line>, String)> {
    if input.iter().all(u8::is_ascii_whitespace) {
        return Some((vec![Line::NoData(2)], "no signed data".into()));
    }
    let frames = match packet::frames(stream) {
        Ok(f) => f,
        Err(e) => {
            // gpg's heuristics: binary input whose first octet is no packet
            // header is "no OpenPGP data"; a bad packet in armor is "invalid
            // packet" and then "no signature"; a truncated packet is "no packet".
            let first_ok = packet::read_header(stream, 0).is_ok();
            let lines = match (armored, first_ok) {
                (false, false) => vec![Line::NoData(1), Line::NoData(2)],
                (true, false) => vec![Line::NoData(3), Line::NoData(4)],
                (_, true) => vec![Line::NoData(2)],
            };
            return Some((lines, format!("no valid OpenPGP data found: {e}")));
        }
    };
    let other = frames.iter().find(|f| !matches!(f.header.tag, tag::SIGNATURE | MARKER));
    if let Some(f) = other {
        let why = match f.header.tag {
            4 | 8 | 11 => {
                "umd gpgv checks detached and cleartext signatures; this is a signed message".to_string()
            }
            t => format!("packet of type {t} at offset {} in a detached signature", f.offset),
        };
        return Some((vec![Line::Unexpected(0)], why));
    }
    if !frames.iter().any(|f| f.header.tag == tag::SIGNATURE) {
        return Some((vec![Line::NoData(4)], "no signature found".into()));
    }
    None
}

impl Verifier {
    /// gpgv's check of `input` at the reference time `at` (gpgv's "now"; the
    /// CLI reads the clock once per run): umd's verdicts, reported as gpgv
    /// reports them. Never fails: an input that cannot be checked is a
    /// report with exit 2 and the lines gpgv would write (`NODATA`, …).
    pub fn gpgv(&self, input: Input<'_>, options: &Options, at: SystemTime) -> Report {
        let mut report = Report::new();
        let (stream, detached, cleartext) = match input {
            Input::Detached { signature, data } => {
                let armored = armor::is_armored(signature);
                let stream = match armor::binary(signature) {
                    Ok(s) => s,
                    Err(e) => {
                        // What gpgv says for the same damage (it repairs some
                        // that umd refuses: mismatched labels, stray characters).
                        let lines: &[u8] = match e {
                            ArmorError::Checksum { .. } => &[4],
                            ArmorError::NoEnd { .. } => &[1, 3, 4],
                            ArmorError::Base64 { .. } => &[2],
                            _ => &[1, 2],
                        };
                        report.lines.extend(lines.iter().map(|&n| Line::NoData(n)));
                        return report.fail(Exit::Error, format!("no valid OpenPGP data found: {e}"));
                    }
                };
                if let Some((lines, why)) = not_a_signature(signature, armored, &stream) {
                    report.lines.extend(lines);
                    return report.fail(Exit::Error, why);
                }
                (stream, Some(data), None)
            }
            Input::Cleartext(document) => {
                let c = match crate::cleartext::split(document) {
                    Ok(c) => c,
                    Err(e) => {
                        report.lines.extend([Line::NoData(1), Line::NoData(4)]);
                        return report.fail(Exit::Error, format!("not a valid cleartext document: {e}"));
                    }
                };
                if options.output {
                    report.lines.push(Line::Plaintext);
                }
                if let Some((lines, why)) = not_a_signature(&c.signatures, true, &c.signatures) {
                    report.lines.extend(lines);
                    return report.fail(Exit::Error, why);
                }
                let stream = c.signatures.clone();
                (stream, None, Some(c))
            }
        };
        let data = match (detached, &cleartext) {
            (Some(d), _) => Data::Detached(d),
            (None, Some(c)) => Data::Canonical(&c.signed),
            (None, None) => Data::Canonical(&[]),
        };
        let packets = match self.driver().describe(&stream) {
            Ok(p) => p,
            Err(e) => {
                report.lines.push(Line::NoData(4));
                return report.fail(Exit::Error, format!("the signature packets cannot be read: {e}"));
            }
        };
        let signers = match self.signers(&packets, at) {
            Ok(s) => s,
            Err(e) => return report.fail(Exit::Error, format!("keyring: {e}")),
        };
        let reports = verify::verify(&signers, &packets, data, &self.policy);
        let sigs = sigs_of(&packets);
        let check = Check {
            signers: &signers,
            policy: &self.policy,
            options,
            data,
            cleartext: cleartext.as_ref(),
            at,
        };
        let mut asserted = true;
        let mut umd_bad = false;
        for (sig, r) in sigs.zip(&reports) {
            match check.signature(sig, &r.verdict, &mut report, &mut asserted) {
                Flow::Continue { bad } => umd_bad |= bad,
                Flow::Stop => {
                    report.exit = Exit::Bad;
                    umd_bad = true;
                    break;
                }
            }
        }
        // umd's refusals (and a failed assertion when nothing else failed) are
        // exit 1.
        if umd_bad || (report.exit == Exit::Good && !asserted) {
            report.exit = Exit::Bad;
        }
        // A cleartext document whose `Hash:` header does not announce every
        // signature's hash is refused whole, as `umd verify` refuses it (the
        // lines above say which signature, as gpgv says it).
        let announced = cleartext.as_ref().is_none_or(|c| c.check_hash_headers(sigs_of(&packets)).is_ok());
        if verify::status(&reports, 1) == Status::Verified && asserted && announced {
            report.text = cleartext.map(|c| c.text);
        }
        report.reports = reports;
        report
    }
}

/// After one signature: go on, or stop as gpgv in batch mode does after a
/// `BADSIG` or `EXPSIG`.
enum Flow {
    /// Go on; `bad` if umd refuses this one where gpgv would go on (an
    /// expired or revoked key).
    Continue {
        bad: bool,
    },
    Stop,
}

/// How one signature by a keyring key is reported.
enum Class {
    /// `ERRSIG` after the key was found.
    Unusable { rc: u32, why: String },
    /// `BADSIG`.
    Bad { why: String },
    /// The signature verifies: `GOODSIG`, `EXPSIG`, `EXPKEYSIG` or `REVKEYSIG`.
    Valid { kind: Signed, why: Option<String> },
}

/// The signatures among checked packets.
fn sigs_of<'a>(packets: &'a [packet::Checked<'_>]) -> impl Iterator<Item = &'a CheckedSig> {
    packets.iter().filter_map(packet::Checked::signature)
}

struct Check<'a> {
    /// The signers' certificates, as of `at`.
    signers: &'a [ValidCert],
    policy: &'a Policy,
    options: &'a Options,
    data: Data<'a>,
    /// A cleartext document's framing (its `Hash:` headers).
    cleartext: Option<&'a Cleartext>,
    /// The reference time every time-dependent line is judged at.
    at: SystemTime,
}

fn algo_label(algo: u8) -> &'static str {
    match algo {
        1..=3 => "RSA",
        17 => "DSA",
        19 => "ECDSA",
        22 => "EDDSA",
        27 => "ED25519",
        28 => "ED448",
        _ => "?",
    }
}

impl Check<'_> {
    /// Writes one signature's lines and messages.
    fn signature(
        &self,
        sig: &CheckedSig,
        verdict: &Verdict,
        report: &mut Report,
        asserted: &mut bool,
    ) -> Flow {
        let facts = SigFacts::from_sig(sig).unwrap_or_default();
        let created = facts.created.unwrap_or(0);
        let key_id = named_key_id(sig);
        let signer = signer_user_id(sig);
        report.lines.push(Line::NewSig { signer: signer.clone() });
        report.messages.push(format!("Signature made {}", utc(u64::from(created))));
        let named = hashed_issuer_fpr(sig)
            .map_or_else(|| format!("{:X}", Hex(&key_id)), |f| format!("{:X}", Hex(&f)));
        report.messages.push(format!("               using {} key {named}", algo_label(sig.pk_algo())));
        if let Some(s) = &signer {
            report.messages.push(format!("               issuer \"{}\"", String::from_utf8_lossy(s)));
        }
        let errsig = |rc| Line::ErrSig {
            key_id,
            pk_algo: sig.pk_algo(),
            hash_algo: sig.hash_algo(),
            sig_type: sig.sig_type(),
            created,
            rc,
            issuer: hashed_issuer_fpr(sig),
        };
        let cannot = |report: &mut Report, rc: u32, why: Option<String>| {
            report.lines.push(errsig(rc));
            if rc == rc::NO_PUBKEY {
                report.lines.push(Line::NoPubkey { key_id });
            }
            report.messages.push(format!("Can't check signature: {}", rc::text(rc)));
            if let Some(why) = why {
                report.messages.push(format!("umd: {why}"));
            }
            report.exit = report.exit.max(Exit::Error);
            Flow::Continue { bad: false }
        };
        // gpgv's own checks before it looks for the key.
        if !GPG_DIGESTS.contains(&sig.hash_algo()) {
            return cannot(report, rc::DIGEST_ALGO, None);
        }
        if !GPG_SIGNING_ALGOS.contains(&sig.pk_algo()) {
            return cannot(report, rc::PUBKEY_ALGO, None);
        }
        // A cleartext signature whose hash the `Hash:` header does not
        // announce: gpg hashed the text only with the announced algorithms
        // ("signature digest conflict"), before it looks for the key.
        if let Some(Err(e)) = self.cleartext.map(|c| c.check_hash_headers([sig])) {
            report.messages.push("WARNING: signature digest conflict in message".into());
            return cannot(report, rc::GENERAL, Some(e.to_string()));
        }
        let (cert, key, class) = match verdict {
            Verdict::UnknownKey { .. } => return cannot(report, rc::NO_PUBKEY, None),
            Verdict::Good { cert, key } => {
                let Some((c, k)) = self.find(cert, key) else {
                    return cannot(
                        report,
                        rc::NO_PUBKEY,
                        Some("internal: good key not in the keyring".into()),
                    );
                };
                (c, k, Class::Valid { kind: Signed::Good, why: None })
            }
            Verdict::Bad { key, reason } => {
                let Some((c, k)) = self
                    .signers
                    .iter()
                    .find_map(|c| c.keys().find(|k| k.fingerprint() == key).map(|k| (c, k)))
                else {
                    return cannot(report, rc::NO_PUBKEY, Some(reason.to_string()));
                };
                (c, k, self.classify(c, k, sig, &facts, reason))
            }
            Verdict::NotApplicable(why) => {
                // Not a document signature: gpg would hash the data and find it
                // does not verify, if it has the key.
                let found = self.signers.iter().find_map(|c| {
                    let (ids, fprs) = issuer_hints(sig);
                    c.keys()
                        .find(|k| {
                            ids.contains(&k.key_id()) || fprs.iter().any(|f| f.matches(k.fingerprint()))
                        })
                        .map(|k| (c, k))
                });
                match found {
                    Some((c, k)) => (c, k, Class::Bad { why: why.clone() }),
                    None => return cannot(report, rc::NO_PUBKEY, Some(why.clone())),
                }
            }
        };
        let primary = cert.fingerprint().clone();
        let considered = Line::KeyConsidered { primary: primary.clone() };
        report.lines.push(considered.clone());
        let key_expired = expiry_passed(key, self.at);
        let user_id = primary_user_id(cert);
        let uid_text = String::from_utf8_lossy(user_id.as_deref().unwrap_or(b"[?]")).into_owned();
        let signed = |kind| Line::Signed { kind, key_id, user_id: user_id.clone() };
        match class {
            Class::Unusable { rc, why } => {
                if rc != rc::PUBKEY_ALGO && rc != rc::BAD_PUBKEY && rc != rc::TIME_CONFLICT {
                    if let Some(at) = key_expired {
                        report.lines.push(Line::KeyExpired { at });
                    }
                }
                cannot(report, rc, Some(why))
            }
            Class::Bad { why } => {
                if let Some(at) = key_expired {
                    report.lines.push(Line::KeyExpired { at });
                }
                report.lines.push(considered);
                report.lines.push(signed(Signed::Bad));
                report.messages.push(format!("BAD signature from \"{uid_text}\""));
                report.messages.push(format!("umd: {why}"));
                Flow::Stop
            }
            Class::Valid { kind, why } => {
                // A key alive at `at` but expired by the signature's date
                // gets the KEYEXPIRED line gpg writes before an EXPKEYSIG.
                let key_expired = key_expired.or_else(|| {
                    (kind == Signed::ExpiredKey).then(|| signed_after_expiry(key, &facts)).flatten()
                });
                if let Some(at) = key_expired {
                    report.lines.push(Line::KeyExpired { at });
                }
                if sig.sig_type() < 2 {
                    report.lines.push(Line::SigId { id: sig_id(sig, created), created });
                }
                report.lines.push(considered);
                report.lines.push(signed(kind));
                report.lines.extend(notation_lines(sig));
                report.lines.push(Line::ValidSig {
                    key: key.fingerprint().clone(),
                    created,
                    expires: facts
                        .expires_after
                        .filter(|&e| e != 0)
                        .map_or(0, |e| u64::from(created) + u64::from(e)),
                    version: sig.version(),
                    pk_algo: sig.pk_algo(),
                    hash_algo: sig.hash_algo(),
                    sig_type: sig.sig_type(),
                    primary,
                });
                report.messages.push(match kind {
                    Signed::Good => format!("Good signature from \"{uid_text}\""),
                    Signed::ExpiredSig => format!("Expired signature from \"{uid_text}\""),
                    _ => format!("Good signature from \"{uid_text}\""),
                });
                if let Some(why) = why {
                    report.messages.push(format!("umd: {why}"));
                }
                match kind {
                    Signed::Good => {
                        if let Some(spec) = &self.options.assert_pubkey_algo {
                            let algo = key.kind().map(pubkey_string).unwrap_or_default();
                            let ok = pubkey_algo_asserted(&algo, spec);
                            *asserted &= ok;
                            report.lines.push(Line::AssertPubkeyAlgo {
                                key: key.fingerprint().clone(),
                                ok,
                                algo,
                            });
                        }
                        Flow::Continue { bad: false }
                    }
                    Signed::ExpiredSig | Signed::Bad => Flow::Stop,
                    Signed::ExpiredKey | Signed::RevokedKey => Flow::Continue { bad: true },
                }
            }
        }
    }

    fn find(&self, cert: &Fingerprint, key: &Fingerprint) -> Option<(&ValidCert, &KeyInfo)> {
        let c = self.signers.iter().find(|c| c.fingerprint() == cert)?;
        Some((c, c.keys().find(|k| k.fingerprint() == key)?))
    }

    /// Why umd refused a signature by keyring key `key`, in gpg's terms and
    /// in gpg's order of checks (`check_signature2`): the key's algorithm,
    /// its validity, times, the hash, the key's use, the mathematics, the
    /// subpackets, the back-signature, and last expiry and revocation.
    fn classify(
        &self,
        cert: &ValidCert,
        key: &KeyInfo,
        sig: &CheckedSig,
        facts: &SigFacts,
        reason: &BadReason,
    ) -> Class {
        let unusable = |rc, why: String| Class::Unusable { rc, why };
        let kind = match key.kind() {
            Ok(k) => k,
            Err(e) => return unusable(rc::PUBKEY_ALGO, format!("key algorithm not supported: {e}")),
        };
        if let Err(r) = self.policy.check_key(kind) {
            return unusable(rc::PUBKEY_ALGO, format!("refused by policy: {r}"));
        }
        // A subkey of a revoked or expired primary key is revoked or expired
        // with it (gpg marks it so).
        let primary_state = match cert.primary().valid() {
            Err(CertError::Revoked(_)) => Some((true, false)),
            Err(CertError::Policy(Rejection::KeyExpired { .. })) => Some((false, true)),
            _ => None,
        };
        let (revoked, expired) = match (key.valid(), primary_state) {
            (Ok(_), _) => (false, false),
            (Err(CertError::Revoked(_)), _) => (true, false),
            (Err(CertError::Policy(Rejection::KeyExpired { .. })), _) => (false, true),
            (Err(CertError::NoBackSignature), _) => (false, false),
            (Err(_), Some(state)) => state,
            (Err(e), None) => {
                return unusable(rc::BAD_PUBKEY, format!("key {} is not valid: {e}", key.fingerprint()))
            }
        };
        let key_created = key.key().created();
        // The key's own expiry is judged below (EXPKEYSIG), not here.
        let times = self.policy.check_times(facts, key_created, None, self.at);
        if let Err(
            r @ (Rejection::SignatureInFuture { .. }
            | Rejection::SignatureBeforeKey { .. }
            | Rejection::MissingCreationTime),
        ) = &times
        {
            return unusable(rc::TIME_CONFLICT, format!("refused by policy: {r}"));
        }
        let hash = self
            .policy
            .check_hash(SigClass::Document, sig.hash_algo(), facts.created)
            .and_then(|()| self.policy.check_hash_for_key(kind, sig.hash_algo()));
        if let Err(r) = hash {
            return unusable(rc::DIGEST_ALGO, format!("refused by policy: {r}"));
        }
        if !key.flags().is_some_and(|f| f.sign()) {
            return unusable(
                rc::WRONG_KEY_USAGE,
                BadReason::NotForSigning(key.fingerprint().clone()).to_string(),
            );
        }
        if let Err(e) = self.mathematics(key, sig) {
            return Class::Bad { why: e.to_string() };
        }
        if let Err(r) = self.policy.check_critical(facts) {
            return Class::Bad { why: format!("refused by policy: {r}") };
        }
        if let Err(why @ CertError::NoBackSignature) = key.valid() {
            let why = BadReason::KeyNotValid { key: key.fingerprint().clone(), why: why.clone() };
            return unusable(rc::GENERAL, why.to_string());
        }
        if let Err(r @ Rejection::SignatureExpired { .. }) = &times {
            return Class::Valid { kind: Signed::ExpiredSig, why: Some(format!("{r}")) };
        }
        if expired {
            return Class::Valid { kind: Signed::ExpiredKey, why: Some(reason.to_string()) };
        }
        if revoked {
            return Class::Valid { kind: Signed::RevokedKey, why: Some(reason.to_string()) };
        }
        // Dated (within the clock skew) at or after the key's expiry: gpgv,
        // which accepts any future date, would say GOODSIG while the key
        // lives; umd refuses it as a signature by an expired key.
        if signed_after_expiry(key, facts).is_some() {
            return Class::Valid { kind: Signed::ExpiredKey, why: Some(reason.to_string()) };
        }
        // A refusal this mapping does not name: never a GOODSIG.
        unusable(rc::GENERAL, reason.to_string())
    }

    /// Whether the signature verifies with the key over the data, whatever
    /// the policy says.
    fn mathematics(&self, key: &KeyInfo, sig: &CheckedSig) -> Result<(), CryptoError> {
        let mut h = SigHasher::new(sig)?;
        match (self.data, sig.sig_type()) {
            (Data::Detached(d), 0x01) => h.data(&verify::crlf(d)),
            (Data::Detached(d), _) | (Data::Canonical(d), _) | (Data::Binary(d), _) => h.data(d),
        }
        crypto::verify(key.key(), sig, &h.finish())
    }
}

/// The key's own expiry time, if it has one.
fn expiry(key: &KeyInfo) -> Option<u64> {
    let e = key.expires_after().filter(|&e| e != 0)?;
    Some(u64::from(key.key().created()) + u64::from(e))
}

/// The key's expiry, if it has passed at `at` (gpg prints `KEYEXPIRED` for it).
fn expiry_passed(key: &KeyInfo, at: SystemTime) -> Option<u64> {
    expiry(key).filter(|&e| e <= secs(at))
}

/// The key's expiry, if the signature is dated at or after it: a signature
/// from the future (within the clock skew) by a key that expires before that
/// date ([`Rejection::SignedAfterKeyExpiry`]).
fn signed_after_expiry(key: &KeyInfo, facts: &SigFacts) -> Option<u64> {
    let created = u64::from(facts.created?);
    expiry(key).filter(|&e| created >= e)
}

/// The user ID gpgv names: the first valid one, else the first one.
fn primary_user_id(cert: &ValidCert) -> Option<Vec<u8>> {
    cert.valid_user_ids().next().or_else(|| cert.user_ids().first().map(|u| u.value())).map(<[u8]>::to_vec)
}

#[cfg(test)]
mod tests {
    use umd_pgp_wire::{Field, Sig, Subpacket};

    use super::*;
    use crate::packet::tests::checked_sig;

    fn sp(typ: u8, body: &[u8]) -> Subpacket {
        // A length form that fits: the signature must pass the check.
        let len_octets = if body.len() < 191 { 1 } else { 5 };
        Subpacket { len_octets, critical: false, typ, body: body.to_vec(), embedded: None }
    }

    fn sig(hashed: Vec<Subpacket>, unhashed: Vec<Subpacket>) -> CheckedSig {
        checked_sig(wire_sig(hashed, unhashed))
    }

    fn wire_sig(hashed: Vec<Subpacket>, unhashed: Vec<Subpacket>) -> Sig {
        Sig {
            version: 4,
            sig_type: 0,
            pk_algo: 22,
            hash_algo: 8,
            hashed,
            unhashed,
            left16: [0, 0],
            salt: vec![],
            values: vec![Field::Mpi(vec![1, 2]), Field::Mpi(vec![3])],
        }
    }

    #[test]
    fn status_lines_have_gpgvs_fields_and_case() {
        let fpr = crypto::fingerprint(4, b"\x04key").unwrap();
        let id = [0xAB, 0xCD, 0, 1, 2, 3, 4, 0xEF];
        let v = Line::ValidSig {
            key: fpr.clone(),
            created: 1_796_409_422,
            expires: 0,
            version: 4,
            pk_algo: 22,
            hash_algo: 8,
            sig_type: 1,
            primary: fpr.clone(),
        };
        assert_eq!(
            String::from_utf8(v.encode()).unwrap(),
            format!("[GNUPG:] VALIDSIG {fpr} 2026-12-04 1796409422 0 4 0 22 8 01 {fpr}\n")
        );
        let e = Line::ErrSig {
            key_id: id,
            pk_algo: 1,
            hash_algo: 2,
            sig_type: 0x1a,
            created: 5,
            rc: 9,
            issuer: None,
        };
        assert_eq!(e.encode(), b"[GNUPG:] ERRSIG ABCD0001020304EF 1 2 1a 5 9 -\n");
        assert_eq!(Line::NoPubkey { key_id: id }.encode(), b"[GNUPG:] NO_PUBKEY ABCD0001020304EF\n");
        assert_eq!(Line::NoData(3).encode(), b"[GNUPG:] NODATA 3\n");
        assert_eq!(Line::Plaintext.encode(), b"[GNUPG:] PLAINTEXT 74 0 \n");
        let bad = Line::Signed { kind: Signed::Bad, key_id: id, user_id: None };
        assert_eq!(bad.encode(), b"[GNUPG:] BADSIG ABCD0001020304EF [?]\n");
    }

    #[test]
    fn no_user_id_can_add_a_status_line() {
        for uid in [&b"x\n[GNUPG:] GOODSIG 0 y"[..], b"\r\n", b"\0\x1b\x7f", b"%0A"] {
            let line =
                Line::Signed { kind: Signed::Good, key_id: [0; 8], user_id: Some(uid.to_vec()) }.encode();
            assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1, "{line:?}");
            assert!(line.ends_with(b"\n"));
            assert!(!line[..line.len() - 1].iter().any(|&b| b < 0x20 || b == 0x7f));
            let new = Line::NewSig { signer: Some(uid.to_vec()) }.encode();
            assert_eq!(new.iter().filter(|&&b| b == b'\n').count(), 1);
        }
    }

    proptest::proptest! {
        /// Whatever bytes a signature or a certificate carries, every line
        /// written is one status line: the prefix, no control character, one
        /// newline at the end.
        #[test]
        fn any_bytes_stay_inside_their_status_lines(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
            wrap in 0usize..300,
        ) {
            let lines = [
                Line::Signed { kind: Signed::Good, key_id: [1; 8], user_id: Some(bytes.clone()) },
                Line::NewSig { signer: Some(bytes.clone()) },
                Line::NewSig { signer: signer_user_id(&sig(vec![sp(28, &bytes)], vec![])) },
                Line::NotationName { name: bytes.clone() },
                Line::NotationData { data: bytes.clone(), wrap },
                Line::PolicyUrl { url: bytes.clone() },
            ];
            for l in lines {
                let out = l.encode();
                proptest::prop_assert!(out.ends_with(b"\n"));
                for line in out[..out.len() - 1].split(|&b| b == b'\n') {
                    proptest::prop_assert!(line.starts_with(b"[GNUPG:] "), "{:?}", line);
                    proptest::prop_assert!(!line.iter().any(|&b| b < 0x20 || b == 0x7f), "{:?}", line);
                }
            }
        }
    }

    #[test]
    fn newsig_names_the_signers_mail_address_as_gpg_does() {
        let s = |b: &[u8]| signer_user_id(&sig(vec![sp(28, b)], vec![]));
        assert_eq!(s(b"Ed Test <Ed@Example.ORG>"), Some(b"ed@example.org".to_vec()));
        assert_eq!(s(b"ed@example.org"), Some(b"ed@example.org".to_vec()));
        assert_eq!(s(b"Just a name"), Some(b"Just a name".to_vec()));
        assert_eq!(s(b"a\nb"), Some(b"a\\nb".to_vec()));
        assert_eq!(s(b"<a@@b>"), Some(b"<a@@b>".to_vec()));
        assert_eq!(s(b""), None);
        // Only the hashed area counts.
        assert_eq!(signer_user_id(&sig(vec![], vec![sp(28, b"x@y")])), None);
        let line = Line::NewSig { signer: s(b"Just a name") }.encode();
        assert_eq!(line, b"[GNUPG:] NEWSIG Just%20a%20name\n");
    }

    #[test]
    fn the_named_key_id_prefers_the_issuer_subpacket() {
        let fpr = [7u8; 20];
        let with_fpr = [&[4u8][..], &fpr].concat();
        assert_eq!(named_key_id(&sig(vec![sp(33, &with_fpr)], vec![])), [7; 8]);
        assert_eq!(named_key_id(&sig(vec![sp(33, &with_fpr)], vec![sp(16, &[1; 8])])), [1; 8]);
        assert_eq!(named_key_id(&sig(vec![], vec![])), [0; 8]);
        assert_eq!(hashed_issuer_fpr(&sig(vec![sp(33, &with_fpr)], vec![])), Some(fpr.to_vec()));
        assert_eq!(hashed_issuer_fpr(&sig(vec![], vec![sp(33, &with_fpr)])), None);
    }

    #[test]
    fn sig_id_hashes_the_values_and_the_creation_time() {
        let a = wire_sig(vec![], vec![]);
        let mut b = a.clone();
        b.values = vec![Field::Mpi(vec![1, 2]), Field::Mpi(vec![4])];
        // The MPIs it hashes are normalized already: a leading zero octet
        // does not re-encode, so no checked signature has one.
        let mut zero = a.clone();
        zero.values = vec![Field::Mpi(vec![0, 1, 2]), Field::Mpi(vec![3])];
        assert!(crate::packet::encode_sig(&zero).is_err());
        let (a, b) = (checked_sig(a), checked_sig(b));
        assert_ne!(sig_id(&a, 1), sig_id(&b, 1));
        assert_ne!(sig_id(&a, 1), sig_id(&a, 2));
        assert_eq!(sig_id(&a, 1).len(), 27);
    }

    #[test]
    fn assert_pubkey_algo_follows_gpgs_comparison() {
        let spec = ">=rsa2048,ed25519,ed448,nistp256,nistp384,nistp521";
        for (algo, ok) in [
            ("rsa2048", true),
            ("rsa4096", true),
            ("rsa1024", false),
            ("ed25519", true),
            ("nistp384", true),
            ("brainpoolP256r1", false),
            ("dsa3072", false),
        ] {
            assert_eq!(pubkey_algo_asserted(algo, spec), ok, "{algo}");
        }
        assert!(pubkey_algo_asserted("ED25519", "ed25519"));
        assert!(!pubkey_algo_asserted("rsa2048", ""));
        assert!(!pubkey_algo_asserted("rsa2048", "rsa2048x"));
        assert!(pubkey_algo_asserted("rsa4096", "<rsa8192"));
        assert!(!pubkey_algo_asserted("rsa4096", "!!,rsa4096"));
        // ed448 ranks above ed25519 when it is the last item.
        assert!(pubkey_algo_asserted("ed448", ">ed25519"));
        assert!(!pubkey_algo_asserted("ed25519", ">=ed448"));
    }

    #[test]
    fn dates_are_utc() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(1_796_409_422), "2026-12-04");
    }
}
