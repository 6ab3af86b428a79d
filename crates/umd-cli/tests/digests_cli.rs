//! `umd digests build|lookup|show` on a corpus made with Debian's rpm tools
//! (`scripts/rpm-corpus`), with verdicts compared to `rpmkeys --checksig`.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::{text, umd};

fn corpus() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| common::rpm_corpus("rpm-corpus"))
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// A fresh directory for one test's key and list.
fn workdir(name: &str) -> PathBuf {
    common::workdir(corpus(), name)
}

fn build(dir: &Path, extra: &[&str]) -> (std::process::Output, PathBuf, PathBuf) {
    let list = dir.join("list");
    let key = dir.join("keys/digests.key");
    let keyring = corpus().join("keys/keyring.asc");
    let mut args =
        vec!["digests", "build", "--keyring", p(&keyring), "--output", p(&list), "--signing-key", p(&key)];
    args.extend_from_slice(extra);
    (umd(&args), list, dir.join("keys/digests.pub"))
}

fn rpms() -> PathBuf {
    corpus().join("rpms")
}

#[test]
fn build_from_package_files_lists_verified_packages_and_rejects_the_rest_with_reasons() {
    let dir = workdir("files");
    let (o, list, public) = build(&dir, &["--rpm", p(&rpms()), "--json"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "some rejected: exit 1\n{out}\n{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let verdicts: BTreeMap<String, String> = v["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let file =
                Path::new(r["source"].as_str().unwrap()).file_name().unwrap().to_string_lossy().into_owned();
            (file, r["verdict"].as_str().unwrap().to_owned())
        })
        .collect();
    let want: BTreeMap<String, String> = [
        ("empty-rsa.rpm", "listed"),
        ("hello-rsa.rpm", "listed"),
        ("tools-ed.rpm", "listed"),
        ("unsigned.rpm", "rejected"),
        ("unknown.rpm", "rejected"),
        ("tampered-header.rpm", "rejected"),
        ("tampered-payload.rpm", "rejected"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(verdicts, want);
    assert_eq!(v["summary"]["digests"], 9);
    assert_eq!(v["summary"]["sequence"], 1);

    // The key was created root-only, its public half beside it.
    let key = dir.join("keys/digests.key");
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(public.exists());

    // show
    let o = umd(&["digests", "show", p(&list), "--verify-key", p(&public)]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    assert!(out.contains("hello-1.3-1.noarch: 4 digests"), "{out}");
    assert!(out.contains("sequence:  1"), "{out}");

    // A second build replaces the list with the next sequence number.
    let (o, _, _) = build(&dir, &["--rpm", p(&rpms().join("hello-rsa.rpm"))]);
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    let o = umd(&["digests", "show", p(&list), "--verify-key", p(&public), "--json"]);
    let v: serde_json::Value = serde_json::from_str(&text(&o).0).unwrap();
    assert_eq!(v["sequence"], 2);
    assert_eq!(v["digests"], 4);

    // Going back is refused, and leaves the list as it was.
    let (o, _, _) = build(&dir, &["--rpm", p(&rpms().join("hello-rsa.rpm")), "--sequence", "2"]);
    assert_eq!(o.status.code(), Some(2), "{:?}", text(&o));
    assert!(text(&o).1.contains("not above the existing list's 2"), "{:?}", text(&o));
    let (o, _, _) = build(&dir, &["--rpm", p(&rpms().join("hello-rsa.rpm")), "--sequence", "10"]);
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
}

#[test]
fn lookup_exits_0_when_every_file_is_listed_1_when_one_is_not_2_on_a_bad_list() {
    let dir = workdir("lookup");
    let (o, list, public) = build(&dir, &["--rpm", p(&rpms())]);
    assert_eq!(o.status.code(), Some(1), "{:?}", text(&o));
    let listed = dir.join("file1.txt");
    std::fs::write(&listed, "hello file 1\n").unwrap();
    let tool = dir.join("tool");
    std::fs::write(&tool, "#!/bin/sh\necho tools\n").unwrap();
    let other = dir.join("other");
    std::fs::write(&other, "not in any package\n").unwrap();
    let unsigned = dir.join("plain");
    std::fs::write(&unsigned, "plain file 1\n").unwrap();

    let o = umd(&["digests", "lookup", p(&list), p(&listed), p(&tool), "--verify-key", p(&public)]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    assert!(out.contains("listed: hello-1.3-1.noarch (SHA256)"), "{out}");
    assert!(out.contains("listed: tools-1.4-1.noarch (SHA256)"), "{out}");

    for f in [&other, &unsigned] {
        let o = umd(&["digests", "lookup", p(&list), p(&listed), p(f), "--verify-key", p(&public)]);
        assert_eq!(o.status.code(), Some(1), "{:?}", text(&o));
        assert!(text(&o).0.contains("not listed"));
    }

    // A changed list, or the wrong key: exit 2, nothing looked up.
    let mut bytes = std::fs::read(&list).unwrap();
    bytes[70] ^= 1;
    let bad = dir.join("bad-list");
    std::fs::write(&bad, &bytes).unwrap();
    let o = umd(&["digests", "lookup", p(&bad), p(&listed), "--verify-key", p(&public)]);
    assert_eq!(o.status.code(), Some(2), "{:?}", text(&o));
    assert!(text(&o).1.contains("signature does not verify"), "{:?}", text(&o));
    let other_key = dir.join("other.pub");
    std::fs::write(&other_key, format!("{}\n", "ab".repeat(32))).unwrap();
    let o = umd(&["digests", "lookup", p(&list), p(&listed), "--verify-key", p(&other_key)]);
    assert_eq!(o.status.code(), Some(2), "{:?}", text(&o));
}

#[test]
fn unverified_packages_are_listed_only_under_the_flag_and_marked() {
    let dir = workdir("marked");
    let (o, list, public) = build(&dir, &["--rpm", p(&rpms().join("unsigned.rpm")), "--include-unverified"]);
    let (out, _) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("plain-1.2-1.noarch listed-marked: no header signature"), "{out}");
    let f = dir.join("plain");
    std::fs::write(&f, "plain file 1\n").unwrap();
    let o = umd(&["digests", "lookup", p(&list), p(&f), "--verify-key", p(&public)]);
    assert_eq!(o.status.code(), Some(1), "marked entries are not trusted by default: {:?}", text(&o));
    assert!(text(&o).0.contains("marked unsigned"));
    let o = umd(&["digests", "lookup", p(&list), p(&f), "--verify-key", p(&public), "--accept-unverified"]);
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    let o = umd(&["digests", "show", p(&list), "--verify-key", p(&public)]);
    assert!(text(&o).0.contains("[unsigned]"));
}

#[test]
fn build_from_the_rpm_database_lists_what_rpm_installed() {
    let dir = workdir("db");
    let db = corpus().join("root/var/lib/rpm");
    let (o, _, _) = build(&dir, &["--rpmdb", p(&db), "--json"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "the unsigned one is rejected\n{out}\n{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mut got: Vec<(String, String)> = v["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["package"].as_str().unwrap().to_owned(), r["verdict"].as_str().unwrap().to_owned()))
        .collect();
    got.sort();
    let want = [
        ("empty-1.0-1.noarch", "listed"),
        ("hello-1.3-1.noarch", "listed"),
        ("plain-1.2-1.noarch", "rejected"),
        ("tools-1.4-1.noarch", "listed"),
    ];
    assert_eq!(got, want.map(|(a, b)| (a.to_owned(), b.to_owned())));
    assert_eq!(v["summary"]["digests"], 9);
}

/// Our verdicts against `rpmkeys --checksig` with the same two keys imported.
/// One difference, by design: an unsigned package passes `rpmkeys --checksig`
/// (its digests are fine and rpm does not require a signature unless told to),
/// and we reject it — a digest list vouches only for signed headers.
#[test]
fn verdicts_agree_with_rpmkeys_checksig() {
    let dir = workdir("rpmkeys");
    let db = dir.join("rpmkeys-db");
    std::fs::create_dir_all(&db).unwrap();
    for k in ["rsa.asc", "ed.asc"] {
        let o = Command::new("rpmkeys")
            .args(["--dbpath", p(&db), "--define", "_db_backend sqlite", "--import"])
            .arg(corpus().join("keys").join(k))
            .output()
            .unwrap();
        assert!(o.status.success(), "rpmkeys --import {k}: {}", String::from_utf8_lossy(&o.stderr));
    }
    let (o, _, _) = build(&dir, &["--rpm", p(&rpms()), "--json"]);
    let v: serde_json::Value = serde_json::from_str(&text(&o).0).unwrap();
    for r in v["packages"].as_array().unwrap() {
        let file = r["source"].as_str().unwrap();
        let ck = Command::new("rpmkeys")
            .args(["--dbpath", p(&db), "--define", "_db_backend sqlite", "--checksig", file])
            .output()
            .unwrap();
        let rpm_ok = ck.status.success();
        let ours = r["verdict"] == "listed";
        let name = Path::new(file).file_name().unwrap().to_string_lossy();
        if name == "unsigned.rpm" {
            assert!(rpm_ok && !ours, "{name}: the one documented difference");
        } else {
            assert_eq!(
                ours,
                rpm_ok,
                "{name}: ours {}, rpmkeys {:?}",
                r["verdict"],
                String::from_utf8_lossy(&ck.stdout)
            );
        }
    }
}
