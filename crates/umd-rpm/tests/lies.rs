//! A lying handler against the manager.
//!
//! The requirement: a handler that lies must not get a single digest into a
//! list, nor keep one out unnoticed, nor turn a rejected package into a
//! verified one. Each test runs `handlers/rpm-liar` (embedded as
//! `umd_blobs::RPM_LIAR_HANDLER`), which describes honestly and then tells one
//! lie; the manager must refuse the description, naming the check that caught
//! it, and the package must end as an error (never listed).

mod common;

use std::time::Duration;

use common::{db_headers, keyring, rpm};
use umd_rpm::check::CheckError;
use umd_rpm::driver::{DescribeError, ReplyError, RpmDriver};
use umd_rpm::package::{Error, PackageVerifier, Trust};
use umd_wire::decode::DecodeError;

fn liar(lie: &str) -> PackageVerifier {
    let d = RpmDriver::with_program(
        || umd::Program::runtime_blob("umd-rpm-liar-handler", umd_blobs::RPM_LIAR_HANDLER),
        vec![lie.to_string()],
        Duration::from_secs(10),
    );
    PackageVerifier::with_driver(d, &[keyring()]).unwrap()
}

/// The driver's own error behind a refused package (kept whole as the
/// source of the manager's `BadReply`), as its type.
fn reply_error(e: &Error) -> &ReplyError {
    match e {
        Error::Describe(DescribeError::Driver(d)) => {
            d.find_source::<ReplyError>().unwrap_or_else(|| panic!("not the driver's error: {d:?}"))
        }
        other => panic!("not refused as a reply: {other:?}"),
    }
}

/// The check found the description disagreeing with the bytes
/// ([`CheckError::Mismatch`]), for the reason `check` names.
fn is_mismatch(e: &Error, check: &str) -> bool {
    matches!(reply_error(e), ReplyError::Check(CheckError::Mismatch { why, .. }) if why.contains(check))
}

/// The lie is refused for a signed package and for every database header with
/// files, by the check, as a mismatch for the reason `check` names.
fn refused(lie: &str, check: &str) {
    let v = liar(lie);
    for name in ["hello-rsa.rpm", "tools-ed.rpm", "unsigned.rpm"] {
        let e = v.package(&rpm(name)).expect_err(&format!("{lie}: {name} accepted"));
        assert!(is_mismatch(&e, check), "{lie}: {name}: {e}");
    }
    for (h, blob) in db_headers() {
        match v.db_header(&blob) {
            Err(e) => assert!(is_mismatch(&e, check), "{lie}: header {h}: {e}"),
            // Only headers with nothing to lie about (no files) may pass, and
            // then exactly as the honest handler says.
            Ok(r) => assert!(r.files.is_empty(), "{lie}: header {h} accepted with files"),
        }
    }
}

const REENCODE: &str = "does not re-encode to the bytes";
const FORM: &str = "a value of the wrong form";
const NOT_DESCRIBED: &str = "is used but not described";
const INDEX: &str = "is not the entry in the bytes";

#[test]
fn a_changed_file_digest_is_refused_by_the_re_encoding() {
    refused("change-digest", REENCODE);
}

#[test]
fn a_changed_digest_in_the_file_list_only_is_refused() {
    // The list is the manager's, derived from the checked base names: a
    // renamed file is a base name that does not re-encode.
    refused("change-file-list", REENCODE);
}

#[test]
fn a_file_left_out_of_the_file_list_is_noticed() {
    // One base name fewer than the index entry counts.
    refused("drop-file", FORM);
}

#[test]
fn file_digests_described_without_value_are_refused() {
    refused("hide-digests", NOT_DESCRIBED);
}

#[test]
fn an_entry_pointing_elsewhere_is_refused_by_the_index_check() {
    refused("move-digests", INDEX);
}

#[test]
fn a_changed_package_name_is_refused() {
    refused("change-name", REENCODE);
}

#[test]
fn a_shrunk_data_store_is_refused() {
    refused("shrink-data", "described with");
}

#[test]
fn a_hidden_header_signature_is_refused_not_read_as_unsigned() {
    let v = liar("hide-signature");
    for name in ["hello-rsa.rpm", "tools-ed.rpm"] {
        let e = v.package(&rpm(name)).expect_err(name);
        assert!(is_mismatch(&e, NOT_DESCRIBED), "{name}: {e}");
    }
    // Unsigned stays unsigned: nothing to hide.
    assert_eq!(v.package(&rpm("unsigned.rpm")).unwrap().trust, Trust::Unsigned);
    for (h, blob) in db_headers() {
        if let Ok(r) = v.db_header(&blob) {
            assert_eq!(r.trust, Trust::Unsigned, "header {h}: a hidden signature read as {:?}", r.trust);
            assert_eq!(r.identity.name, "plain");
        }
    }
}

#[test]
fn a_renamed_signature_tag_is_refused() {
    let v = liar("claim-signature");
    let e = v.package(&rpm("hello-rsa.rpm")).unwrap_err();
    assert!(is_mismatch(&e, INDEX), "{e}");
}

#[test]
fn another_packages_signature_is_refused() {
    let v = liar("swap-signature");
    // The first signature shown is remembered (and described honestly).
    assert!(matches!(v.package(&rpm("hello-rsa.rpm")).unwrap().trust, Trust::Verified { .. }));
    // Its length differs, so the index entry's count no longer matches either.
    let e = v.package(&rpm("tools-ed.rpm")).unwrap_err();
    assert!(matches!(reply_error(&e), ReplyError::Check(CheckError::Mismatch { .. })), "{e}");
}

#[test]
fn a_refused_description_shuts_the_liar_down_and_the_next_request_starts_a_fresh_one() {
    let v = liar("change-digest");
    assert!(v.package(&rpm("hello-rsa.rpm")).is_err());
    assert!(v.package(&rpm("hello-rsa.rpm")).is_err());
    assert!(v.rpm_driver().driver().stats().starts >= 2);
}

#[test]
fn a_crashing_handler_is_an_error_for_that_package_and_the_next_one_gets_a_fresh_handler() {
    let v = liar("crash");
    let e = v.package(&rpm("hello-rsa.rpm")).unwrap_err();
    // The manager's own account of a handler gone (not a reply it refused),
    // naming the driver.
    match &e {
        Error::Describe(DescribeError::Driver(d)) => {
            assert_eq!(d.driver(), "rpm", "{e}");
            assert!(!matches!(d, umd::Error::BadReply { .. }), "a crash is not a refused reply: {e}");
        }
        other => panic!("not the driver's failure: {other:?}"),
    }
    // No files, no crash: the driver restarted a handler and answers.
    assert!(matches!(v.package(&rpm("empty-rsa.rpm")).unwrap().trust, Trust::Verified { .. }));
    assert!(v.rpm_driver().driver().stats().starts >= 2);
}

#[test]
fn wide_replies_within_the_size_bound_are_refused_while_they_are_decoded() {
    // As many empty names, or empty index entries, as the reply's size bound
    // lets it carry: a byte or five each on the wire, 24 or 48 decoded. The
    // decoder charges them as it goes and stops at the memory bound.
    for lie in ["bloat-strings", "bloat-entries"] {
        let v = liar(lie);
        let e = v.package(&rpm("hello-rsa.rpm")).expect_err(lie);
        assert!(
            matches!(
                reply_error(&e),
                ReplyError::Decode(umd_rpm_wire::ReplyError::Decode(DecodeError::Memory { .. }))
            ),
            "{lie}: {e}"
        );
    }
}

#[test]
fn a_database_answer_of_empty_blobs_by_the_hundred_thousand_is_refused() {
    let v = liar("many-blobs");
    let e = v.db_headers(&common::corpus().join("root/var/lib/rpm")).expect_err("accepted");
    // Refused while decoding, at the memory bound.
    match &e {
        umd_rpm::db::DbError::Handler { source, .. } => assert!(
            matches!(
                &**source,
                DescribeError::Driver(d) if matches!(
                    d.find_source::<ReplyError>(),
                    Some(ReplyError::Decode(umd_rpm_wire::ReplyError::Decode(DecodeError::Memory { .. })))
                )
            ),
            "{e}"
        ),
        other => panic!("not refused as the handler's answer: {other:?}"),
    }
}
