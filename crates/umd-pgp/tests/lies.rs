//! A lying handler against the manager.
//!
//! The requirement: a handler that lies — swaps key material, changes an issuer,
//! a hash algorithm, a creation time, an expiry, a key flag, omits or reorders a
//! packet, or describes bytes that are not there — must never make the manager
//! accept a signature or a key.
//!
//! Each test runs `handlers/pgp-liar` (embedded as
//! `umd_blobs::PGP_LIAR_HANDLER`), which describes honestly and then tells one
//! lie. The inputs are ones the honest description gets rejected — a revoked or
//! expired key, a SHA-1, expired or unknown-critical signature, a key not marked
//! for signing, a signature by a key outside the keyring, a corrupted signature —
//! or a good signature a lie could count twice. Each test shows the honest
//! verdict, then that the manager refuses the lying description, naming the
//! check that caught it (re-encoding, tiling, header), and shuts the liar down.
//!
//! The subtlest lies change no byte at all: the same octets described in
//! another form (signature values as one raw field, an embedded signature
//! without its fields). They re-encode exactly, but would leave the manager a
//! signature it cannot read, and an unreadable revocation — or an unreadable
//! newer binding — is one it would drop. The re-encoding refuses any form but
//! the one reading of the bytes.
//!
//! Inputs: keys and signatures made by `gpg` at test time (those tests are
//! skipped where gpg is not installed), and, where gpg cannot make them,
//! certificates built here with Ed25519 (the layout Sequoia writes: the
//! subkey's back signature in the *hashed* area).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use umd::Program;
use umd_pgp::cert::CertError;
use umd_pgp::crypto::CryptoError;
use umd_pgp::driver::{DescribeError, PgpDriver, ReplyError};
use umd_pgp::packet::PacketError;
use umd_pgp::policy::Policy;
use umd_pgp::policy::Rejection;
use umd_pgp::verifier::{Verifier, VerifyError};
use umd_pgp::verify::{BadReason, Verdict};
use umd_pgp_wire::DescriptionError;
use umd_wire::decode::DecodeError;

const TIMEOUT: Duration = Duration::from_secs(10);
const DATA: &[u8] = b"signed data\n";

/// What refused a lie: a variant of the driver's own error ([`ReplyError`]),
/// the check's ([`PacketError`]) or the bounded decoder's.
#[derive(Clone, Copy, Debug)]
enum Refusal {
    /// A described body does not re-encode to the bytes.
    Reencoding,
    /// The packets do not tile the stream.
    Tiling,
    /// A described header is not the header in the bytes.
    Header,
    /// There is no packet header where one is described.
    NoHeader,
    /// A packet the manager uses is described as another kind.
    Kind,
    /// A described field has no encoding at all.
    Unencodable,
    /// More small packets or subpackets than the bound lets decode.
    TooManySmall,
    /// A signature embedded in an embedded one: a decoding error (the
    /// decoder never recurses).
    TooDeep,
}

impl Refusal {
    fn matches(self, e: &ReplyError) -> bool {
        use DecodeError as D;
        use PacketError as P;
        match (self, e) {
            (Refusal::Reencoding, ReplyError::Check(P::FieldsMismatch { .. }))
            | (Refusal::Tiling, ReplyError::Check(P::NotTiled { .. }))
            | (Refusal::Header, ReplyError::Check(P::HeaderMismatch { .. }))
            | (Refusal::NoHeader, ReplyError::Check(P::BadHeader { .. }))
            | (Refusal::Unencodable, ReplyError::Check(P::Unencodable { .. }))
            | (
                Refusal::TooManySmall,
                ReplyError::Decode(
                    DescriptionError::TooLarge { .. } | DescriptionError::Decode(D::Memory { .. }),
                ),
            ) => true,
            (Refusal::Kind, ReplyError::Check(P::WrongKind { expected, .. })) => {
                expected.contains("signature")
            }
            // The type's own reason (a serde custom error): its text is all it has.
            (Refusal::TooDeep, ReplyError::Decode(DescriptionError::Decode(D::Invalid(why)))) => {
                why.contains("embedded more than one level deep")
            }
            _ => false,
        }
    }
}

const REENCODING: Refusal = Refusal::Reencoding;
const TILING: Refusal = Refusal::Tiling;
const HEADER: Refusal = Refusal::Header;
const NO_HEADER: Refusal = Refusal::NoHeader;
const KIND: Refusal = Refusal::Kind;
const UNENCODABLE: Refusal = Refusal::Unencodable;

// ---------------------------------------------------------------------------
// Drivers and verdicts

fn honest() -> PgpDriver {
    PgpDriver::new(TIMEOUT)
}

/// A driver whose handler tells the lie `args` names (see `handlers/pgp-liar`).
fn liar(args: &[&str]) -> PgpDriver {
    PgpDriver::with_program(
        || Program::runtime_blob("umd-pgp-liar-handler", umd_blobs::PGP_LIAR_HANDLER),
        args.iter().map(|a| a.to_string()).collect(),
        TIMEOUT,
    )
}

/// Loads the keyrings through `driver`, then verifies `signature` over [`DATA`].
fn verdicts(driver: &PgpDriver, keyrings: &[&[u8]], signature: &[u8]) -> Result<Vec<Verdict>, VerifyError> {
    let keyrings: Vec<Vec<u8>> = keyrings.iter().map(|k| k.to_vec()).collect();
    let v = Verifier::with_driver(driver.clone(), &keyrings, Policy::new())?;
    Ok(v.verify_detached(signature, DATA, SystemTime::now())?
        .reports
        .into_iter()
        .map(|r| r.verdict)
        .collect())
}

/// The honest handler's verdicts: one signature, found `Bad` for a reason
/// `why` accepts.
#[track_caller]
fn assert_honestly_bad(keyrings: &[&[u8]], signature: &[u8], why: impl Fn(&BadReason) -> bool) {
    let v = verdicts(&honest(), keyrings, signature).expect("the honest description checks out");
    assert!(
        matches!(&v[..], [Verdict::Bad { reason, .. }] if why(reason)),
        "expected one bad signature, got {v:?}"
    );
}

/// The signing key (or its primary key) has expired.
fn key_expired(r: &BadReason) -> bool {
    craft::key_not_valid(r, |w| matches!(w, CertError::Policy(Rejection::KeyExpired { .. })))
}

/// The signing key (or its primary key) is revoked.
fn key_revoked(r: &BadReason) -> bool {
    craft::key_not_valid(r, |w| matches!(w, CertError::Revoked(_)))
}

/// The manager refused the liar's description, by one of the `checks`, and
/// shut the liar down.
#[track_caller]
fn assert_refused<T: std::fmt::Debug>(liar: &PgpDriver, outcome: Result<T, VerifyError>, checks: &[Refusal]) {
    match &outcome {
        Err(VerifyError::Describe(DescribeError::Driver(e @ umd::Error::BadReply { .. }))) => {
            // The driver's own error comes back whole, as its type.
            let Some(reason) = e.find_source::<ReplyError>() else { panic!("not the driver's error: {e:?}") };
            assert!(checks.iter().any(|c| c.matches(reason)), "refused, but not by {checks:?}: {reason:?}")
        }
        _ => panic!("the manager did not refuse the lie: {outcome:?}"),
    }
    let stats = liar.driver().stats();
    assert_eq!(stats.handler_failures, 1, "the lying handler is shut down: {stats:?}");
    assert_eq!(stats.post_start_failures, 0, "the lie was told after post_start: {stats:?}");
}

fn now() -> u32 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as u32
}

// ---------------------------------------------------------------------------
// Inputs made by gpg

/// Keys and detached signatures over [`DATA`], each made to be rejected for one
/// reason (except `by_trusted`, a good one).
struct Inputs {
    /// Ed25519 primary (sign, certify) with an Ed25519 signing subkey.
    trusted: Vec<u8>,
    trusted_fpr: String,
    /// Made by `trusted`'s signing subkey: good.
    by_trusted: Vec<u8>,
    /// Made by `trusted` with SHA-1.
    sha1: Vec<u8>,
    /// Made by `trusted` with a critical notation (subpacket 20).
    critical_notation: Vec<u8>,
    /// A key outside the keyring, and a signature by it.
    attacker: Vec<u8>,
    by_attacker: Vec<u8>,
    /// A key revoked by its owner (a key revocation, 0x20), and a signature it
    /// made before.
    revoked: Vec<u8>,
    by_revoked: Vec<u8>,
    /// A key made on 2020-01-01 that expired a day later, and a signature it
    /// made then.
    expired: Vec<u8>,
    by_expired: Vec<u8>,
    /// A key made on 2020-01-01 that never expires, and a signature it made then
    /// that expired a day later.
    old: Vec<u8>,
    expired_signature: Vec<u8>,
    /// A key whose newest self-signature took its signing flag away, and a
    /// signature it made before.
    cert_only: Vec<u8>,
    by_cert_only: Vec<u8>,
}

struct GpgHome(PathBuf);

impl Drop for GpgHome {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf").arg("--homedir").arg(&self.0).args(["--kill", "all"]).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl GpgHome {
    fn run(&self, args: &[&str], input: &[u8]) -> Vec<u8> {
        let mut child = Command::new("gpg")
            .arg("--homedir")
            .arg(&self.0)
            .args(["--batch", "--quiet", "--no-tty", "--pinentry-mode", "loopback", "--passphrase", ""])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running gpg");
        child.stdin.take().unwrap().write_all(input).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "gpg {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    }

    fn gpg(&self, args: &[&str]) -> Vec<u8> {
        self.run(args, b"")
    }

    /// Makes a key (`spec`: algorithm, usage, expiry) and returns its fingerprint.
    fn key(&self, email: &str, spec: &[&str], faked: Option<&str>) -> String {
        let uid = format!("Test <{email}>");
        let mut args: Vec<&str> = faked.map(|t| vec!["--faked-system-time", t]).unwrap_or_default();
        args.extend(["--quick-gen-key", &uid]);
        args.extend(spec);
        self.gpg(&args);
        let listing =
            String::from_utf8(self.gpg(&["--with-colons", "--list-keys", &format!("<{email}>")])).unwrap();
        listing
            .lines()
            .find(|l| l.starts_with("fpr:"))
            .and_then(|l| l.split(':').nth(9))
            .expect("fingerprint")
            .to_string()
    }

    /// A detached signature over [`DATA`] by `signer` (a fingerprint, `!` for
    /// exactly that key), with `extra` options.
    fn sign(&self, signer: &str, extra: &[&str]) -> Vec<u8> {
        let data = self.0.join("data");
        std::fs::write(&data, DATA).unwrap();
        let mut args = extra.to_vec();
        args.extend(["-u", signer, "--detach-sign", "-o", "-", data.to_str().unwrap()]);
        self.gpg(&args)
    }
}

fn inputs() -> Option<&'static Inputs> {
    static INPUTS: OnceLock<Option<Inputs>> = OnceLock::new();
    INPUTS
        .get_or_init(|| {
            if Command::new("gpg").arg("--version").output().is_err() {
                eprintln!("gpg not installed: skipping the tests on gpg inputs");
                return None;
            }
            let dir = std::env::temp_dir().join(format!("umd-pgp-lies-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
            let home = GpgHome(dir);
            let export = |fpr: &str| home.gpg(&["--export", fpr]);
            let in_2020 = Some("20200101T000000!");
            let signing_in_2020 = ["--faked-system-time", "20200101T000100!"];

            let t = home.key("trusted@example.org", &["ed25519", "sign,cert", "never"], None);
            home.gpg(&["--quick-add-key", &t, "ed25519", "sign", "never"]);
            let by_trusted = home.sign(&t, &[]);
            let sha1 = home.sign(&t, &["--digest-algo", "SHA1"]);
            let critical_notation = home.sign(&t, &["--sig-notation", "!critical@example.org=yes"]);

            let a = home.key("attacker@example.org", &["ed25519", "sign", "never"], None);
            let by_attacker = home.sign(&format!("{a}!"), &[]);

            let r = home.key("revoked@example.org", &["ed25519", "sign", "never"], None);
            let by_revoked = home.sign(&format!("{r}!"), &[]);
            // gpg made a revocation certificate with the key; importing it revokes.
            let rev =
                std::fs::read_to_string(home.0.join("openpgp-revocs.d").join(format!("{r}.rev"))).unwrap();
            home.run(&["--import"], rev.replace(":-----BEGIN", "-----BEGIN").as_bytes());

            let e = home.key("expired@example.org", &["ed25519", "sign", "1d"], in_2020);
            let by_expired = home.sign(&format!("{e}!"), &signing_in_2020);

            let o = home.key("old@example.org", &["ed25519", "sign", "never"], in_2020);
            let mut opts = signing_in_2020.to_vec();
            opts.extend(["--default-sig-expire", "1d"]);
            let expired_signature = home.sign(&format!("{o}!"), &opts);

            let c = home.key("cert-only@example.org", &["ed25519", "sign,cert", "never"], None);
            let by_cert_only = home.sign(&format!("{c}!"), &[]);
            // A new self-signature with certification as the only usage.
            home.run(&["--expert", "--command-fd", "0", "--edit-key", &c], b"change-usage\nS\nQ\nsave\n");

            Some(Inputs {
                trusted: export(&t),
                trusted_fpr: t,
                by_trusted,
                sha1,
                critical_notation,
                attacker: export(&a),
                by_attacker,
                revoked: export(&r),
                by_revoked,
                expired: export(&e),
                by_expired,
                old: export(&o),
                expired_signature,
                cert_only: export(&c),
                by_cert_only,
            })
        })
        .as_ref()
}

// ---------------------------------------------------------------------------
// Lies about keys

#[test]
fn a_handler_swapping_key_material_cannot_make_a_signature_good() {
    let Some(i) = inputs() else { return };
    // Honestly, the attacker's signature is by a key outside the keyring.
    let v = verdicts(&honest(), &[&i.trusted], &i.by_attacker).unwrap();
    assert!(matches!(&v[..], [Verdict::UnknownKey { .. }]), "{v:?}");
    // The liar is shown the attacker's key first (and tells the truth about it),
    // then claims its material for the trusted keyring's keys.
    let d = liar(&["swap-key-material"]);
    d.describe(&i.attacker).expect("nothing to swap yet: an honest description");
    let v = Verifier::with_driver(d.clone(), std::slice::from_ref(&i.trusted), Policy::new()).unwrap();
    // The manager picks the certificates a signature needs by fingerprints it
    // computed from the keyring's bytes: the liar is not even asked about the
    // trusted keys for the attacker's signature.
    let verdicts: Vec<_> = v
        .verify_detached(&i.by_attacker, DATA, SystemTime::now())
        .unwrap()
        .reports
        .into_iter()
        .map(|r| r.verdict)
        .collect();
    assert!(matches!(&verdicts[..], [Verdict::UnknownKey { .. }]), "{verdicts:?}");
    // Asked about them, it lies, and is refused.
    assert_refused(&d, v.certificates(SystemTime::now()), &[REENCODING]);
}

#[test]
fn a_handler_changing_a_key_creation_time_cannot_revive_an_expired_key() {
    let Some(i) = inputs() else { return };
    assert_honestly_bad(&[&i.expired], &i.by_expired, key_expired);
    let d = liar(&["change-key-creation-time", &now().to_string()]);
    assert_refused(&d, verdicts(&d, &[&i.expired], &i.by_expired), &[REENCODING]);
}

#[test]
fn a_handler_changing_a_key_expiry_cannot_revive_an_expired_key() {
    let Some(i) = inputs() else { return };
    assert_honestly_bad(&[&i.expired], &i.by_expired, key_expired);
    let d = liar(&["change-key-expiry", "0", "certification"]);
    assert_refused(&d, verdicts(&d, &[&i.expired], &i.by_expired), &[REENCODING]);
}

#[test]
fn a_handler_changing_key_flags_cannot_make_a_certification_key_sign() {
    let Some(i) = inputs() else { return };
    assert_honestly_bad(&[&i.cert_only], &i.by_cert_only, |r| matches!(r, BadReason::NotForSigning(_)));
    let d = liar(&["change-key-flags", "0x03", "certification"]);
    assert_refused(&d, verdicts(&d, &[&i.cert_only], &i.by_cert_only), &[REENCODING]);
}

#[test]
fn a_handler_describing_key_material_in_another_form_is_refused() {
    let Some(i) = inputs() else { return };
    // The material's octets as one raw field: the same bytes, a form the manager
    // cannot use.
    let d = liar(&["raw-key-material"]);
    assert_refused(&d, verdicts(&d, &[&i.trusted], &i.by_trusted), &[UNENCODABLE]);
}

// ---------------------------------------------------------------------------
// Lies about signatures

#[test]
fn a_handler_changing_an_issuer_cannot_make_a_signature_good() {
    let Some(i) = inputs() else { return };
    let v = verdicts(&honest(), &[&i.trusted], &i.by_attacker).unwrap();
    assert!(matches!(&v[..], [Verdict::UnknownKey { .. }]), "{v:?}");
    // The keyring's own signatures are not targeted: it loads as it is. Then the
    // attacker's signature claims to be by the trusted key.
    let d = liar(&["change-issuer", &i.trusted_fpr, "document"]);
    let v = Verifier::with_driver(d.clone(), std::slice::from_ref(&i.trusted), Policy::new())
        .expect("an honest keyring");
    assert_refused(&d, v.verify_detached(&i.by_attacker, DATA, SystemTime::now()), &[REENCODING]);
}

#[test]
fn a_handler_changing_the_hash_algorithm_cannot_pass_a_sha1_signature() {
    let Some(i) = inputs() else { return };
    assert_honestly_bad(&[&i.trusted], &i.sha1, |r| matches!(r, BadReason::Policy(Rejection::Sha1 { .. })));
    let d = liar(&["change-hash-algo", "8", "document"]); // SHA2-256
    assert_refused(&d, verdicts(&d, &[&i.trusted], &i.sha1), &[REENCODING]);
}

#[test]
fn a_handler_changing_a_signature_creation_time_cannot_revive_an_expired_signature() {
    let Some(i) = inputs() else { return };
    assert_honestly_bad(&[&i.old], &i.expired_signature, |r| {
        matches!(r, BadReason::Policy(Rejection::SignatureExpired { .. }))
    });
    let d = liar(&["change-sig-creation-time", &(now() - 60).to_string(), "document"]);
    assert_refused(&d, verdicts(&d, &[&i.old], &i.expired_signature), &[REENCODING]);
}

#[test]
fn a_handler_dropping_a_subpacket_cannot_remove_a_signature_expiry() {
    let Some(i) = inputs() else { return };
    // The expiry (3) vanishes and the creation time before it claims its octets:
    // only that subpacket's length octet differs from the bytes.
    let d = liar(&["drop-subpacket", "3", "document"]);
    assert_refused(&d, verdicts(&d, &[&i.old], &i.expired_signature), &[REENCODING]);
}

#[test]
fn a_handler_clearing_a_critical_bit_cannot_pass_an_unknown_critical_subpacket() {
    let Some(i) = inputs() else { return };
    assert_honestly_bad(&[&i.trusted], &i.critical_notation, |r| {
        matches!(r, BadReason::Policy(Rejection::UnknownCriticalSubpacket { typ: 20 }))
    });
    let d = liar(&["flip-critical", "document"]);
    assert_refused(&d, verdicts(&d, &[&i.trusted], &i.critical_notation), &[REENCODING]);
}

#[test]
fn a_handler_swapping_signature_values_cannot_make_a_bad_signature_good() {
    let Some(i) = inputs() else { return };
    let mut corrupted = i.by_trusted.clone();
    *corrupted.last_mut().unwrap() ^= 1;
    assert_honestly_bad(&[&i.trusted], &corrupted, |r| {
        matches!(r, BadReason::Crypto(CryptoError::BadSignature { .. }))
    });
    // Shown the good signature first, the liar claims its values for the
    // corrupted one.
    let d = liar(&["swap-signature-values", "document"]);
    let v = verdicts(&d, &[&i.trusted], &i.by_trusted).expect("the first signature is described honestly");
    assert!(matches!(&v[..], [Verdict::Good { .. }]), "{v:?}");
    assert_refused(&d, verdicts(&d, &[&i.trusted], &corrupted), &[REENCODING]);
}

#[test]
fn a_handler_replaying_an_earlier_answer_cannot_vouch_for_other_bytes() {
    let Some(i) = inputs() else { return };
    let d = liar(&["replay", "document"]);
    let v = Verifier::with_driver(d.clone(), std::slice::from_ref(&i.trusted), Policy::new()).unwrap();
    // The keyring first (no document signature in it: described honestly), then
    // the good signature, whose description the liar keeps.
    v.certificates(SystemTime::now()).expect("the keyring is described honestly");
    let good = v
        .verify_detached(&i.by_trusted, DATA, SystemTime::now())
        .expect("the first signature is described honestly");
    assert!(matches!(&good.reports[..], [r] if matches!(r.verdict, Verdict::Good { .. })), "{good:?}");
    // The attacker's signature is answered with the good signature's description.
    // Both are Ed25519 signatures of the same layout: the same length (then the
    // re-encoding differs), or not (then the header does).
    assert_refused(&d, v.verify_detached(&i.by_attacker, DATA, SystemTime::now()), &[REENCODING, HEADER]);
}

#[test]
fn a_handler_changing_a_signature_type_cannot_turn_a_revocation_into_a_direct_key_signature() {
    let Some(i) = inputs() else { return };
    assert_honestly_bad(&[&i.revoked], &i.by_revoked, key_revoked);
    let d = liar(&["change-sig-type", "0x1f", "revocation"]);
    assert_refused(&d, verdicts(&d, &[&i.revoked], &i.by_revoked), &[REENCODING]);
}

#[test]
fn a_handler_describing_signature_values_in_another_form_cannot_void_a_revocation() {
    let Some(i) = inputs() else { return };
    assert_honestly_bad(&[&i.revoked], &i.by_revoked, key_revoked);
    // The revocation's values as one raw field: the same bytes, but a signature
    // the manager cannot verify, so one it would drop.
    let d = liar(&["raw-signature-values", "revocation"]);
    assert_refused(&d, verdicts(&d, &[&i.revoked], &i.by_revoked), &[UNENCODABLE]);
}

// ---------------------------------------------------------------------------
// Lies about packets

#[test]
fn a_handler_omitting_a_revocation_cannot_unrevoke_a_key() {
    let Some(i) = inputs() else { return };
    assert_honestly_bad(&[&i.revoked], &i.by_revoked, key_revoked);
    // The key packet claims the revocation's octets, so the packets still tile.
    let d = liar(&["omit-revocation"]);
    assert_refused(&d, verdicts(&d, &[&i.revoked], &i.by_revoked), &[HEADER]);
}

#[test]
fn a_handler_omitting_a_packet_leaves_a_gap_the_manager_sees() {
    let Some(i) = inputs() else { return };
    let d = liar(&["omit-packet", "revocation"]);
    assert_refused(&d, verdicts(&d, &[&i.revoked], &i.by_revoked), &[TILING]);
}

#[test]
fn a_handler_reordering_packets_cannot_move_a_revocation_out_of_place() {
    let Some(i) = inputs() else { return };
    // Moved after the user ID, a key revocation would be read as a user ID
    // signature, where 0x20 revokes nothing. The offsets are recomputed to tile.
    let d = liar(&["reorder-packets", "revocation"]);
    assert_refused(&d, verdicts(&d, &[&i.revoked], &i.by_revoked), &[HEADER]);
}

#[test]
fn a_handler_describing_a_revocation_as_opaque_cannot_hide_it() {
    let Some(i) = inputs() else { return };
    let d = liar(&["opaque-signature", "revocation"]);
    assert_refused(&d, verdicts(&d, &[&i.revoked], &i.by_revoked), &[KIND]);
}

#[test]
fn a_handler_giving_a_revocation_another_tag_cannot_hide_it() {
    let Some(i) = inputs() else { return };
    let d = liar(&["wrong-tag", "revocation"]); // a trust packet (12), opaque
    assert_refused(&d, verdicts(&d, &[&i.revoked], &i.by_revoked), &[HEADER]);
}

#[test]
fn a_handler_inventing_a_packet_beyond_the_stream_cannot_count_a_signature_twice() {
    let Some(i) = inputs() else { return };
    let d = liar(&["invent-packet", "document"]);
    assert_refused(&d, verdicts(&d, &[&i.trusted], &i.by_trusted), &[NO_HEADER]);
}

#[test]
fn a_handler_describing_overlapping_packets_cannot_count_a_signature_twice() {
    let Some(i) = inputs() else { return };
    let d = liar(&["overlap-packet", "document"]);
    assert_refused(&d, verdicts(&d, &[&i.trusted], &i.by_trusted), &[TILING]);
}

#[test]
fn a_handler_lying_in_its_first_answer_never_serves() {
    // The start-up probe is described as holding no packet: the handler fails
    // post_start and is killed before it sees a real request.
    let d = liar(&["empty"]);
    match d.describe(b"\xCD\x05alice") {
        Err(DescribeError::Driver(e @ umd::Error::PostStart { .. })) => {
            assert_eq!(e.find_source::<PacketError>(), Some(&PacketError::Empty), "{e}")
        }
        other => panic!("the liar passed post_start: {other:?}"),
    }
    let stats = d.driver().stats();
    assert_eq!((stats.starts, stats.post_start_failures), (1, 1), "{stats:?}");
}

// ---------------------------------------------------------------------------
// Lies about embedded signatures (inputs built here: gpg puts a subkey's back
// signature in the unhashed area, Sequoia in the hashed one)

mod craft;

/// A signing subkey bound twice, the Sequoia way (back signature in the hashed
/// area): at `t0` for ever, then at `t0 + 10` with an expiry of 20 seconds, so
/// the newer binding says the subkey has expired. Returns the keyring and a
/// signature by the subkey made after it expired.
fn rebound_subkey() -> (Vec<u8>, Vec<u8>) {
    let t0 = now() - 3600;
    let (p, mut keyring) = craft::primary(1, t0, 0x01);
    let s = craft::key(2, t0);
    let binding = |created: u32, extra: Vec<umd_pgp_wire::Subpacket>| {
        let back = craft::sign(&s, 0x19, created, vec![], |h| {
            h.key(&p.body).unwrap();
            h.key(&s.body).unwrap();
        });
        let mut hashed = vec![craft::sp(27, &[0x02])];
        hashed.extend(extra);
        hashed.push(craft::embed(&back));
        craft::sign(&p, 0x18, created, hashed, |h| {
            h.key(&p.body).unwrap();
            h.key(&s.body).unwrap();
        })
    };
    keyring.extend(craft::packet(umd_pgp::packet::tag::PUBLIC_SUBKEY, &s.body));
    keyring.extend(craft::sig_packet(&binding(t0, vec![])));
    keyring.extend(craft::sig_packet(&binding(t0 + 10, vec![craft::sp(9, &20u32.to_be_bytes())])));
    (keyring, craft::document(&s, t0 + 30, DATA))
}

/// A key revoked by a key revocation that carries an embedded signature in its
/// hashed area (legal, if unusual), and a signature the key made before.
fn revoked_with_embedded_signature() -> (Vec<u8>, Vec<u8>) {
    let t0 = now() - 3600;
    let (p, certified) = craft::primary(3, t0, 0x03);
    let direct = craft::sign(&p, 0x1f, t0, vec![], |h| h.key(&p.body).unwrap());
    let revocation =
        craft::sign(&p, 0x20, t0 + 10, vec![craft::sp(29, &[0x02]), craft::embed(&direct)], |h| {
            h.key(&p.body).unwrap()
        });
    // Key, revocation, then the user ID and its certification.
    let key_len = 2 + p.body.len();
    let mut keyring = certified[..key_len].to_vec();
    keyring.extend(craft::sig_packet(&revocation));
    keyring.extend_from_slice(&certified[key_len..]);
    (keyring, craft::document(&p, t0 + 5, DATA))
}

#[test]
fn a_handler_hiding_an_embedded_back_signature_cannot_revive_an_older_binding() {
    let (keyring, signature) = rebound_subkey();
    assert_honestly_bad(&[&keyring], &signature, key_expired);
    // Described without its fields, the newer binding's embedded signature
    // would make that binding unreadable, and the older one (no expiry) decide.
    let d = liar(&["hide-embedded-signature", "binding"]);
    assert_refused(&d, verdicts(&d, &[&keyring], &signature), &[UNENCODABLE]);
}

#[test]
fn a_handler_hiding_an_embedded_signature_cannot_void_a_revocation() {
    let (keyring, signature) = revoked_with_embedded_signature();
    assert_honestly_bad(&[&keyring], &signature, key_revoked);
    let d = liar(&["hide-embedded-signature", "revocation"]);
    assert_refused(&d, verdicts(&d, &[&keyring], &signature), &[UNENCODABLE]);
}

#[test]
fn a_handler_bloating_its_description_is_cut_off_at_its_frame_header() {
    let Some(i) = inputs() else { return };
    // A few hundred bytes of signature, answered with about a megabyte of
    // description: refused from the frame header, by its size, before any of
    // it is read (decoding would allocate many times the reply's size).
    let d = liar(&["bloat", "document"]);
    assert_cut_off(&d, verdicts(&d, &[&i.trusted], &i.by_trusted), "exceeds the limit");
}

#[test]
fn wide_replies_within_the_size_bound_are_refused_while_they_are_decoded() {
    let Some(i) = inputs() else { return };
    // As many empty packets, or empty subpackets, as the size bound lets the
    // reply carry: five bytes each on the wire, tens of bytes decoded. The
    // decoder charges them as it goes and stops at the memory bound.
    for lie in ["wide-packets", "wide-subpackets"] {
        let d = liar(&[lie, "document"]);
        assert_refused(&d, verdicts(&d, &[&i.trusted], &i.by_trusted), &[Refusal::TooManySmall]);
    }
}

#[test]
fn signatures_embedded_as_deep_as_the_reply_allows_are_refused_without_recursing() {
    let Some(i) = inputs() else { return };
    // The stack overflow, through the public driver: a description
    // nesting embedded signatures tens of thousands deep. The decoder reads
    // one level of embedding and refuses the second.
    let d = liar(&["deep-embedding", "document"]);
    assert_refused(&d, verdicts(&d, &[&i.trusted], &i.by_trusted), &[Refusal::TooDeep]);
}

/// The manager cut the liar's reply off at its frame header, with an error
/// holding `check`, and shut the liar down.
#[track_caller]
fn assert_cut_off<T: std::fmt::Debug>(liar: &PgpDriver, outcome: Result<T, VerifyError>, check: &str) {
    match &outcome {
        Err(VerifyError::Describe(DescribeError::Driver(umd::Error::Channel { source, .. }))) => {
            assert!(source.to_string().contains(check), "cut off, but not by {check:?}: {source}")
        }
        _ => panic!("the manager did not cut the reply off: {outcome:?}"),
    }
    let stats = liar.driver().stats();
    assert_eq!(stats.post_start_failures, 0, "the lie was told after post_start: {stats:?}");
}
