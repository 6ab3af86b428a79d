//! Packages and an rpm database made with Debian's rpm tools at test time
//! (`scripts/rpm-corpus`): verdicts against `rpmkeys --checksig`, digests
//! against `rpm -qp --qf '[%{FILEDIGESTS} %{FILENAMES}\n]'` and the same query
//! against the database.
//!
//! Where rpm is not installed the tests fail with that reason (`scripts/test`
//! installs it): a test that cannot check must not pass.

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use common::{corpus, rpm, verifier};
use umd_rpm::list::Source;
use umd_rpm::package::{Payload, Rejection, Report, Trust};

/// `rpm -q --qf '[%{FILEDIGESTS} %{FILENAMES}\n]'` lines with a digest.
fn rpm_query(args: &[&str]) -> BTreeSet<String> {
    let out =
        Command::new("rpm").args(args).args(["--qf", "[%{FILEDIGESTS} %{FILENAMES}\\n]"]).output().unwrap();
    assert!(out.status.success(), "rpm {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with(' '))
        .map(str::to_owned)
        .collect()
}

fn ours(r: &Report) -> BTreeSet<String> {
    r.digests().iter().map(|f| format!("{} {}", f.digest, String::from_utf8_lossy(&f.path))).collect()
}

#[test]
fn rsa_and_eddsa_signed_packages_verify_and_their_digests_match_rpm() {
    let v = verifier();
    for name in ["hello-rsa.rpm", "tools-ed.rpm"] {
        let r = v.package(&rpm(name)).unwrap();
        assert!(matches!(r.trust, Trust::Verified { .. }), "{name}: {:?}", r.trust);
        assert_eq!(r.payload, Payload::Matches, "{name}");
        assert_eq!(r.rejection(), None, "{name}");
        let path = corpus().join("rpms").join(name);
        let want = rpm_query(&["-qp", path.to_str().unwrap()]);
        assert!(!want.is_empty());
        assert_eq!(ours(&r), want, "{name}");
    }
}

/// File sizes come from the signed header (FILESIZES), as rpm reads them.
#[test]
fn file_sizes_are_the_headers_as_rpm_reads_them() {
    let v = verifier();
    for name in ["hello-rsa.rpm", "tools-ed.rpm"] {
        let r = v.package(&rpm(name)).unwrap();
        let path = corpus().join("rpms").join(name);
        let out = Command::new("rpm")
            .args(["-qp", path.to_str().unwrap(), "--qf", "[%{FILESIZES} %{FILENAMES}\\n]"])
            .output()
            .unwrap();
        assert!(out.status.success());
        let want: BTreeSet<String> =
            String::from_utf8(out.stdout).unwrap().lines().map(str::to_owned).collect();
        let got: BTreeSet<String> = r
            .files
            .iter()
            .map(|f| format!("{} {}", f.size().expect("a size"), String::from_utf8_lossy(f.path())))
            .collect();
        assert_eq!(got, want, "{name}");
        assert!(r.digests().iter().all(|d| d.size.is_some()));
    }
}

#[test]
fn a_package_without_files_verifies_and_lists_nothing() {
    let r = verifier().package(&rpm("empty-rsa.rpm")).unwrap();
    assert_eq!(r.rejection(), None);
    assert!(r.digests().is_empty());
}

#[test]
fn unsigned_unknown_key_and_tampered_packages_are_rejected_with_the_reason() {
    let v = verifier();
    assert_eq!(v.package(&rpm("unsigned.rpm")).unwrap().rejection(), Some(Rejection::Unsigned));
    assert!(matches!(
        v.package(&rpm("unknown.rpm")).unwrap().rejection(),
        Some(Rejection::UnknownKey { .. })
    ));
    let h = v.package(&rpm("tampered-header.rpm")).unwrap();
    assert!(matches!(h.rejection(), Some(Rejection::BadSignature { .. })), "{:?}", h.rejection());
    let p = v.package(&rpm("tampered-payload.rpm")).unwrap();
    assert!(matches!(p.trust, Trust::Verified { .. }));
    assert!(matches!(p.payload, Payload::Mismatch { .. }));
    assert_eq!(p.rejection(), Some(Rejection::PayloadMismatch));
    // Streamed from the file: the same verdicts.
    let streamed = v.package_file(&corpus().join("rpms/tampered-payload.rpm")).unwrap();
    assert_eq!(streamed.payload, p.payload);
    let good = v.package_file(&corpus().join("rpms/hello-rsa.rpm")).unwrap();
    assert_eq!(good.payload, Payload::Matches);
}

/// The database is opened by the sandboxed handler (SQLite from a sealed
/// memfd), its blobs come back as untrusted bytes, and each is described and
/// checked like any header: the digests are still rpm's own.
#[test]
fn the_rpmdb_read_through_the_sandboxed_handler_verifies_and_matches_rpm() {
    let v = verifier();
    let db = corpus().join("root/var/lib/rpm");
    let headers = v.db_headers(&db).unwrap();
    assert_eq!(headers.len(), 4);
    let mut all = BTreeSet::new();
    for source in &headers {
        let Source::DbHeader { hnum, blob } = source else { panic!("{source:?}: not a database header") };
        let r = v.db_header(blob).unwrap();
        let expect_verified = r.identity.name != "plain";
        assert_eq!(
            matches!(r.trust, Trust::Verified { .. }),
            expect_verified,
            "header {hnum}: {:?}",
            r.trust
        );
        all.extend(ours(&r));
    }
    let root = corpus().join("root");
    let want = rpm_query(&[
        "--root",
        root.to_str().unwrap(),
        "--dbpath",
        "/var/lib/rpm",
        "--define",
        "_db_backend sqlite",
        "-qa",
    ]);
    assert_eq!(all, want);
}

/// rpm's own reading of the database's header signatures names the key we
/// verified with (key ID = the fingerprint's last 16 hex digits).
#[test]
fn database_signers_are_the_keys_rpm_names() {
    let v = verifier();
    let root = corpus().join("root");
    let out = Command::new("rpm")
        .args([
            "--root",
            root.to_str().unwrap(),
            "--dbpath",
            "/var/lib/rpm",
            "--define",
            "_db_backend sqlite",
        ])
        .args(["-qa", "--qf", "%{NAME} %{RSAHEADER:pgpsig}|%{DSAHEADER:pgpsig}\\n"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for (_, blob) in common::db_headers() {
        let r = v.db_header(&blob).unwrap();
        let line = text.lines().find(|l| l.starts_with(&format!("{} ", r.identity.name))).unwrap();
        match &r.trust {
            Trust::Verified { signer } => {
                let key_id = signer[signer.len() - 16..].to_lowercase();
                assert!(line.contains(&format!("Key ID {key_id}")), "{line} vs {signer}");
            }
            other => {
                assert_eq!(other, &Trust::Unsigned);
                assert!(line.ends_with("(none)|(none)"), "{line}");
            }
        }
    }
}

/// Someone who can write the database but holds no signing key adds a tag the
/// list would use after the signed region (here an epoch): refused, though the
/// signature over the region still verifies.
#[test]
fn a_used_tag_added_after_the_signed_region_of_a_database_header_is_refused() {
    let v = verifier();
    let (_, blob) = common::db_headers()
        .into_iter()
        .find(|(_, b)| {
            matches!(v.db_header(b).map(|r| r.trust), Ok(Trust::Verified { .. }))
                && v.db_header(b).unwrap().identity.name == "hello"
        })
        .unwrap();
    let be = |b: &[u8], at: usize| u32::from_be_bytes(b[at..at + 4].try_into().unwrap());
    let (il, dl) = (be(&blob, 0), be(&blob, 4));
    let index_end = 8 + 16 * il as usize;
    let mut data = blob[index_end..].to_vec();
    while data.len() % 4 != 0 {
        data.push(0);
    }
    let off = data.len() as u32;
    data.extend_from_slice(&7u32.to_be_bytes());
    let mut forged = Vec::new();
    forged.extend_from_slice(&(il + 1).to_be_bytes());
    forged.extend_from_slice(&(data.len() as u32).to_be_bytes());
    forged.extend_from_slice(&blob[8..index_end]);
    for x in [1003u32, 4, off, 1] {
        forged.extend_from_slice(&x.to_be_bytes());
    }
    forged.extend_from_slice(&data);
    assert!(dl < data.len() as u32);
    let e = v.db_header(&forged).unwrap_err();
    assert!(e.to_string().contains("tag 1003 lies outside the signed region"), "{e}");
}

/// The same with file sizes as INT64 (LONGFILESIZES, for files of 4 GiB or
/// more): the handler describes the 64-bit value, the manager re-encodes it,
/// and refuses it for where it lies.
#[test]
fn an_int64_size_tag_after_the_signed_region_is_described_checked_and_refused() {
    let v = verifier();
    let (_, blob) = common::db_headers()
        .into_iter()
        .find(|(_, b)| v.db_header(b).is_ok_and(|r| r.identity.name == "hello"))
        .unwrap();
    let be = |b: &[u8], at: usize| u32::from_be_bytes(b[at..at + 4].try_into().unwrap());
    let il = be(&blob, 0);
    let index_end = 8 + 16 * il as usize;
    let mut data = blob[index_end..].to_vec();
    while data.len() % 8 != 0 {
        data.push(0);
    }
    let off = data.len() as u32;
    // One size per file, as the file list needs.
    let n = v.db_header(&blob).unwrap().files.len() as u32;
    for i in 0..u64::from(n) {
        data.extend_from_slice(&((5u64 << 32) + i).to_be_bytes());
    }
    let mut forged = Vec::new();
    forged.extend_from_slice(&(il + 1).to_be_bytes());
    forged.extend_from_slice(&(data.len() as u32).to_be_bytes());
    forged.extend_from_slice(&blob[8..index_end]);
    for x in [5008u32, 5, off, n] {
        forged.extend_from_slice(&x.to_be_bytes());
    }
    forged.extend_from_slice(&data);
    let e = v.db_header(&forged).unwrap_err();
    assert!(e.to_string().contains("tag 5008 lies outside the signed region"), "{e}");
}
