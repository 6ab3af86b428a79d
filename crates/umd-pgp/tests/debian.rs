//! End to end through the sandboxed handler: Debian's archive keyring and real
//! `InRelease` files (a snapshot committed under `tests/fixtures`, so results do
//! not depend on this machine's apt state).

use std::time::SystemTime;

use umd_pgp::policy::Policy;
use umd_pgp::verifier::Verifier;
use umd_pgp::verify::{Status, Verdict};

const KEYRING: &[u8] = include_bytes!("fixtures/debian-archive-keyring.gpg");
const BOOKWORM: &[u8] = include_bytes!("fixtures/bookworm_InRelease");
const SECURITY: &[u8] = include_bytes!("fixtures/bookworm-security_InRelease");

fn verifier() -> Verifier {
    Verifier::new(&[KEYRING.to_vec()], Policy::new()).expect("the Debian keyring loads")
}

#[test]
fn the_debian_keyring_yields_nine_valid_certificates_with_verified_self_signatures() {
    let v = verifier();
    let certs = v.certificates(SystemTime::now()).expect("every certificate validates");
    assert_eq!(certs.len(), 9);
    for c in &certs {
        assert!(c.primary().valid().is_ok(), "{}: {:?}", c.fingerprint(), c.primary().valid().err());
        assert!(c.user_ids().iter().all(|u| u.valid().is_ok()));
        // Every signing subkey passed its back-signature check to be valid.
        for s in c.subkeys() {
            assert!(s.valid().is_ok(), "{}: {:?}", s.fingerprint(), s.valid().err());
        }
    }
    let bookworm_release = "4D64FEC119C2029067D6E791F8D2585B8783D481";
    assert!(certs.iter().any(|c| c.fingerprint().to_string() == bookworm_release));
}

#[test]
fn real_inrelease_files_verify_with_every_signature_good() {
    let v = verifier();
    for (name, doc, sigs) in [("bookworm", BOOKWORM, 3), ("bookworm-security", SECURITY, 2)] {
        let o = v.verify_cleartext(doc, SystemTime::now()).expect(name);
        assert_eq!(o.status(1), Status::Verified, "{name}: {:?}", o.reports);
        assert_eq!(o.status(sigs), Status::Verified, "{name}");
        assert_eq!(o.status(sigs + 1), Status::Bad, "{name}: fewer good signatures than required");
        assert!(
            o.reports.iter().all(|r| matches!(r.verdict, Verdict::Good { .. })),
            "{name}: {:?}",
            o.reports
        );
        let text = o.text.expect("cleartext");
        assert!(text.starts_with(b"Origin: Debian"), "{name}");
    }
}

#[test]
fn a_changed_byte_in_the_text_makes_every_signature_bad() {
    let v = verifier();
    let mut doc = BOOKWORM.to_vec();
    let at = doc.windows(7).position(|w| w == b"Origin:").expect("Origin line") + 8;
    doc[at] ^= 0x20; // "Debian" -> "debian"
    let o = v.verify_cleartext(&doc, SystemTime::now()).expect("still well-formed");
    assert_eq!(o.status(1), Status::Bad);
    assert!(o.reports.iter().all(|r| matches!(r.verdict, Verdict::Bad { .. })), "{:?}", o.reports);
}

#[test]
fn without_the_signers_keys_nothing_can_be_verified() {
    // An empty keyring: every signature is by an unknown key, ignored (as apt
    // and sqv do), and the result is "cannot verify".
    let empty = Verifier::new(&[], Policy::new()).expect("an empty keyring");
    let o = empty.verify_cleartext(SECURITY, SystemTime::now()).expect("well-formed");
    assert_eq!(o.status(1), Status::CannotVerify);
    assert!(o.reports.iter().all(|r| matches!(r.verdict, Verdict::UnknownKey { .. })));
}
