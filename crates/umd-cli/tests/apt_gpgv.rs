//! The real apt with umd as its gpgv: `apt-get update` (apt 2.6) on local
//! repositories made here, once with `/usr/bin/gpgv` and once with
//! `APT::Key::GPGVCommand` naming a `umd-gpgv` link made by `umd
//! install-gpgv`. apt must come to the same decision with both: the same exit
//! status, the index accepted (a `Packages` list written) or not, and the same
//! summary of signers in apt's own debug output — except where umd is
//! stricter, and there apt must refuse with both.
//!
//! apt runs its methods as `_apt` (uid 42): the verifier writes its log with
//! `--log-file` (passed through `Acquire::gpgv::Options`), and the test checks
//! that the log of umd's runs belongs to uid 42, i.e. that umd and its
//! sandboxed handler ran unprivileged, as apt's users run them.
//!
//! Needs root (apt drops privileges only from root; its lists directory), apt,
//! apt-ftparchive (apt-utils), dpkg-deb and gpg; skips loudly without them, or
//! fails under `UMD_REQUIRE_SANDBOX=1`.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::SystemTime;

use common::gpg::Gpg;

/// What apt did with one repository and one verifier.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    /// apt-get's exit status (0, or 100 when it refused something).
    exit: i32,
    /// Whether the repository's index made it into the lists.
    accepted: bool,
    /// apt's summary of the signers (Debug::Acquire::gpgv): Good, Valid, Bad,
    /// Worthless, NoPubKey, Signed-By, NODATA — empty if apt never ran the
    /// verifier.
    summary: BTreeMap<String, String>,
}

/// One repository: what is in it, and whether apt should accept it.
struct Repo {
    name: &'static str,
    dir: PathBuf,
    keyring: PathBuf,
    /// Whether apt accepts it with umd.
    accept: bool,
    /// Whether apt accepts it with gpgv (differs from `accept` only where
    /// umd's policy is stricter than gpgv and apt: then `differs` says why).
    gpgv_accepts: bool,
    /// Why umd's summary differs from gpgv's, if it does (apt's decision
    /// never does).
    differs: Option<&'static str>,
}

fn run_ok(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A repository directory holding one small package, its `Packages` and
/// `Release` (apt-ftparchive), nothing signed yet.
fn repo_dir(root: &Path, name: &str, deb: &Path) -> PathBuf {
    let dir = root.join("repos").join(slug(name));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(deb, dir.join(deb.file_name().unwrap())).unwrap();
    let packages = run_ok(Command::new("apt-ftparchive").arg("packages").arg(".").current_dir(&dir));
    std::fs::write(dir.join("Packages"), packages).unwrap();
    let release = run_ok(
        Command::new("apt-ftparchive")
            .args([
                "-o",
                "APT::FTPArchive::Release::Origin=umd-test",
                "-o",
                "APT::FTPArchive::Release::Suite=test",
            ])
            .arg("release")
            .arg(".")
            .current_dir(&dir),
    );
    std::fs::write(dir.join("Release"), release).unwrap();
    dir
}

/// Signs `dir/Release` as each signer: `InRelease` (cleartext) and/or
/// `Release.gpg` (armored detached).
fn sign(gpg: &Gpg, dir: &Path, signers: &[&str], extra: &[&str], inrelease: bool, detached: bool) {
    let signers: Vec<String> = signers.iter().map(|s| format!("{s}!")).collect();
    let signers: Vec<&str> = signers.iter().map(String::as_str).collect();
    let release = dir.join("Release");
    if inrelease {
        let how = [extra, &["--clearsign"]].concat();
        gpg.sign(&signers, &how, &release, &dir.join("InRelease"));
    }
    if detached {
        let how = [extra, &["--detach-sign", "--armor"]].concat();
        gpg.sign(&signers, &how, &release, &dir.join("Release.gpg"));
    }
}

/// The repositories of the comparison.
fn repos(root: &Path) -> (Vec<Repo>, Gpg) {
    let gpg = Gpg::new(root.join("gnupg"));
    let key = |uid: &str, algo: &str, expire: &str, extra: &[&str]| gpg.key(uid, algo, "sign", expire, extra);
    let ed = key("Repo Ed25519 <ed@repo.example>", "ed25519", "never", &[]);
    let rsa = key("Repo RSA <rsa@repo.example>", "rsa3072", "never", &[]);
    let other = key("Someone Else <other@repo.example>", "ed25519", "never", &[]);
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    let then = now - 30 * 86_400;
    let (made, signed) = (format!("{then}!"), format!("{}!", then + 3600));
    let expired =
        key("Repo Expired <expired@repo.example>", "ed25519", "1d", &["--faked-system-time", &made]);
    let revoked = key("Repo Revoked <revoked@repo.example>", "ed25519", "never", &[]);
    let keyring = |name: &str, fpr: &str| {
        let p = root.join(format!("{name}.gpg"));
        gpg.export(fpr, &p);
        p
    };
    let (ed_k, rsa_k, exp_k) = (keyring("ed", &ed), keyring("rsa", &rsa), keyring("expired", &expired));

    // The package: a tiny .deb.
    let pkg = root.join("pkg");
    std::fs::create_dir_all(pkg.join("DEBIAN")).unwrap();
    std::fs::write(
        pkg.join("DEBIAN/control"),
        "Package: umd-hello\nVersion: 1.0\nArchitecture: all\nMaintainer: umd <umd@example.org>\n\
         Description: umd test package\n",
    )
    .unwrap();
    let deb = root.join("umd-hello_1.0_all.deb");
    run_ok(Command::new("dpkg-deb").args(["--root-owner-group", "--build"]).arg(&pkg).arg(&deb));

    let mut out = Vec::new();
    let mut add = |name, keyring: &Path, accept, differs, setup: &dyn Fn(&Path)| {
        let dir = repo_dir(root, name, &deb);
        setup(&dir);
        out.push(Repo { name, dir, keyring: keyring.to_path_buf(), accept, gpgv_accepts: accept, differs });
    };
    add("good ed25519", &ed_k, true, None, &|d| sign(&gpg, d, &[&ed], &[], true, true));
    add("good RSA", &rsa_k, true, None, &|d| sign(&gpg, d, &[&rsa], &[], true, true));
    add("Release.gpg only", &ed_k, true, None, &|d| sign(&gpg, d, &[&ed], &[], false, true));
    add("tampered", &ed_k, false, None, &|d| {
        sign(&gpg, d, &[&ed], &[], true, false);
        let text = std::fs::read_to_string(d.join("InRelease")).unwrap();
        assert!(text.contains("Suite: test"));
        std::fs::write(d.join("InRelease"), text.replacen("Suite: test", "Suite: tset", 1)).unwrap();
    });
    add("unknown signer", &ed_k, false, None, &|d| sign(&gpg, d, &[&other], &[], true, true));
    add(
        "SHA-1 signature",
        &rsa_k,
        false,
        Some("gpgv says GOODSIG with SHA-1 in VALIDSIG, which apt moves to Worthless; umd says ERRSIG 5 (as gpgv --weak-digest SHA1)"),
        &|d| sign(&gpg, d, &[&rsa], &["--digest-algo", "SHA1"], true, false),
    );
    add("two signers, one unknown", &ed_k, true, None, &|d| sign(&gpg, d, &[&ed, &other], &[], true, false));
    add("expired key", &exp_k, false, None, &|d| {
        sign(&gpg, d, &[&expired], &["--faked-system-time", &signed], true, false)
    });
    // Where umd refuses what apt with gpgv accepts.
    let weak = key("Repo RSA-1024 <weak@repo.example>", "rsa1024", "never", &[]);
    let weak_k = keyring("weak", &weak);
    let tomorrow = format!("{}!", now + 86_400);
    add(
        "RSA-1024 key",
        &weak_k,
        false,
        Some("umd refuses RSA keys under 2048 bits (ERRSIG 4); apt 2.6 with gpgv accepts them"),
        &|d| sign(&gpg, d, &[&weak], &[], true, false),
    );
    add(
        "SHA2-224 signature",
        &rsa_k,
        false,
        Some("umd refuses SHA2-224 (ERRSIG 5); apt 2.6 with gpgv accepts it"),
        &|d| sign(&gpg, d, &[&rsa], &["--digest-algo", "SHA224"], true, false),
    );
    add(
        "signature made tomorrow",
        &ed_k,
        false,
        Some("umd refuses signatures more than 30 minutes in the future (ERRSIG 39); gpgv accepts them"),
        &|d| sign(&gpg, d, &[&ed], &["--faked-system-time", &tomorrow], true, false),
    );
    add(
        "no blank line after BEGIN PGP SIGNATURE",
        &ed_k,
        false,
        Some("umd refuses armor without the blank line after its header lines (NODATA); gpgv warns \"invalid armor header\" and checks the signature"),
        &|d| {
            sign(&gpg, d, &[&ed], &[], true, false);
            let text = std::fs::read_to_string(d.join("InRelease")).unwrap();
            let (from, to) = ("-----BEGIN PGP SIGNATURE-----\n\n", "-----BEGIN PGP SIGNATURE-----\n");
            assert!(text.contains(from));
            std::fs::write(d.join("InRelease"), text.replacen(from, to, 1)).unwrap();
        },
    );
    add("garbage InRelease", &ed_k, false, None, &|d| {
        std::fs::write(d.join("InRelease"), "garbage\n").unwrap()
    });
    add("garbage inside Release.gpg's armor", &ed_k, false, None, &|d| {
        let junk = "-----BEGIN PGP SIGNATURE-----\n\nR2FyYmFnZSBnYXJiYWdlIGdhcmJhZ2U=\n-----END PGP SIGNATURE-----\n";
        std::fs::write(d.join("Release.gpg"), junk).unwrap()
    });
    // Signed before the revocation, exported after it.
    let rev_dir = repo_dir(root, "revoked key", &deb);
    sign(&gpg, &rev_dir, &[&revoked], &[], true, false);
    gpg.revoke(&revoked);
    let rev_k = keyring("revoked", &revoked);
    out.push(Repo {
        name: "revoked key",
        dir: rev_dir,
        keyring: rev_k,
        accept: false,
        gpgv_accepts: false,
        differs: None,
    });
    for r in &mut out {
        if matches!(
            r.name,
            "RSA-1024 key"
                | "SHA2-224 signature"
                | "signature made tomorrow"
                | "no blank line after BEGIN PGP SIGNATURE"
        ) {
            r.gpgv_accepts = true;
        }
    }
    (out, gpg)
}

/// A name fit for a path (and a sources.list line).
fn slug(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect()
}

/// apt's signer summary, from its gpgv method's debug output.
fn summary(stderr: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut inside = false;
    for line in stderr.lines() {
        if line.trim() == "Summary:" {
            inside = true;
            continue;
        }
        if inside {
            match line.trim().split_once(':') {
                Some((k, v)) => {
                    out.insert(k.trim().to_string(), v.trim().trim_end_matches(',').trim().to_string());
                    if k.trim() == "NODATA" {
                        break;
                    }
                }
                None => break,
            }
        }
    }
    out
}

/// `apt-get update` in a scratch root with only `repo` as a source.
fn apt_update(scratch: &Path, repo: &Repo, gpgv: &Path, log: &Path) -> (Outcome, String) {
    let root = scratch.join(format!("{}-{}", slug(repo.name), gpgv.file_name().unwrap().to_string_lossy()));
    for d in [
        "etc/apt/apt.conf.d",
        "etc/apt/preferences.d",
        "etc/apt/sources.list.d",
        "var/lib/apt/lists/partial",
        "var/cache/apt/archives/partial",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("status"), "").unwrap();
    let list = root.join("sources.list");
    std::fs::write(
        &list,
        format!("deb [signed-by={}] file:{} ./\n", repo.keyring.display(), repo.dir.display()),
    )
    .unwrap();
    let o = |s: String| ["-o".to_string(), s];
    let out = Command::new("apt-get")
        .arg("update")
        .args(o(format!("Dir={}", root.display())))
        .args(o(format!("Dir::State::status={}", root.join("status").display())))
        .args(o(format!("Dir::Etc::sourcelist={}", list.display())))
        .args(o("Dir::Etc::sourceparts=-".into()))
        .args(o("Debug::NoLocking=1".into()))
        .args(o("Debug::Acquire::gpgv=1".into()))
        .args(o(format!("APT::Key::GPGVCommand={}", gpgv.display())))
        .args(o(format!("Acquire::gpgv::Options::=--log-file={}", log.display())))
        .env("LC_ALL", "C.UTF-8")
        .stdin(Stdio::null())
        .output()
        .expect("running apt-get");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let lists = root.join("var/lib/apt/lists");
    let accepted = std::fs::read_dir(&lists)
        .map(|d| d.filter_map(|e| e.ok()).any(|e| e.file_name().to_string_lossy().contains("_Packages")))
        .unwrap_or(false);
    let outcome = Outcome { exit: out.status.code().unwrap_or(-1), accepted, summary: summary(&stderr) };
    (outcome, format!("{}\n{stderr}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn apt_decides_the_same_with_umd_as_with_gpgv() {
    let root = rustix::process::geteuid().is_root();
    if !common::ready_or_skip(root, "apt with umd-gpgv", "needs root (apt drops to _apt only from root)") {
        return;
    }
    let tools = common::programs_present(&[
        "apt-get",
        "apt-key",
        "apt-ftparchive",
        "dpkg-deb",
        "gpg",
        "/usr/bin/gpgv",
    ]);
    if !common::ready_or_skip(tools.is_ok(), "apt with umd-gpgv", &tools.err().unwrap_or_default()) {
        return;
    }
    let dir = tempfile::Builder::new().prefix("apt-gpgv").tempdir_in(common::scratch()).unwrap();
    let scratch = dir.path();
    chmod(scratch, 0o755);
    let (repos, _gpg) = repos(scratch);

    // umd as installed: a copy of the binary apt's user can run, and the link
    // `umd install-gpgv` makes to it.
    let bin = scratch.join("bin");
    std::fs::create_dir(&bin).unwrap();
    let umd = bin.join("umd");
    std::fs::copy(env!("CARGO_BIN_EXE_umd"), &umd).unwrap();
    chmod(&umd, 0o755);
    let o = common::umd(&["install-gpgv", "--dir", bin.to_str().unwrap(), "--target", umd.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{:?}", common::text(&o));
    let umd_gpgv = bin.join("umd-gpgv");
    // Logs, written by the verifiers as _apt.
    let logs = scratch.join("logs");
    std::fs::create_dir(&logs).unwrap();
    chmod(&logs, 0o777);
    for entry in walk(scratch) {
        let mode = if entry.is_dir() { 0o755 } else { 0o644 };
        if entry != umd && entry != logs && !entry.starts_with(scratch.join("gnupg")) {
            chmod(&entry, mode);
        }
    }

    let results: Vec<(Outcome, String, Outcome, String, PathBuf)> = std::thread::scope(|s| {
        let handles: Vec<_> = repos
            .chunks(repos.len().div_ceil(2))
            .map(|chunk| {
                let (umd_gpgv, logs) = (&umd_gpgv, &logs);
                s.spawn(move || {
                    chunk
                        .iter()
                        .map(|r| {
                            let tag = slug(r.name);
                            let (g, gl) = apt_update(
                                scratch,
                                r,
                                Path::new("/usr/bin/gpgv"),
                                &logs.join(format!("{tag}.gpgv.log")),
                            );
                            let ulog = logs.join(format!("{tag}.umd.log"));
                            let (u, ul) = apt_update(scratch, r, umd_gpgv, &ulog);
                            (g, gl, u, ul, ulog)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("an apt runner")).collect()
    });

    let mut failures = Vec::new();
    let mut table = format!("\n{:<38} {:>14} {:>14}\n", "repository", "gpgv", "umd-gpgv");
    for (r, (g, glog, u, ulog, log)) in repos.iter().zip(&results) {
        let show = |o: &Outcome| format!("{} {}", o.exit, if o.accepted { "accepted" } else { "refused" });
        table += &format!(
            "{:<38} {:>14} {:>14}{}\n",
            r.name,
            show(g),
            show(u),
            r.differs.map_or(String::new(), |w| format!("  [{w}]"))
        );
        if r.gpgv_accepts == r.accept && (g.exit, g.accepted) != (u.exit, u.accepted) {
            failures
                .push(format!("{}: apt decided differently\n--- gpgv:\n{glog}\n--- umd:\n{ulog}", r.name));
        }
        if g.accepted != r.gpgv_accepts {
            failures.push(format!(
                "{}: with gpgv accepted {}, expected {}\n{glog}",
                r.name, g.accepted, r.gpgv_accepts
            ));
        }
        if u.accepted != r.accept {
            failures.push(format!("{}: accepted {}, expected {}\n{ulog}", r.name, u.accepted, r.accept));
        }
        if r.accept && u.exit != 0 {
            failures.push(format!("{}: apt exited {}\n{ulog}", r.name, u.exit));
        }
        match r.differs {
            None if g.summary != u.summary => failures.push(format!(
                "{}: apt's signer summaries differ\n  gpgv: {:?}\n  umd:  {:?}",
                r.name, g.summary, u.summary
            )),
            Some(why) if g.summary == u.summary => {
                failures.push(format!("{}: the summaries are the same; stale difference ({why})", r.name))
            }
            _ => {}
        }
        // umd ran as apt's unprivileged user whenever apt ran a verifier.
        if !u.summary.is_empty() {
            match std::fs::metadata(log) {
                Ok(m) if m.uid() == 42 => {
                    let text = std::fs::read_to_string(log).unwrap_or_default();
                    if r.accept && !text.contains("umd-gpgv: Good signature") {
                        failures.push(format!("{}: umd's log says no good signature:\n{text}", r.name));
                    }
                }
                Ok(m) => {
                    failures.push(format!("{}: umd's log belongs to uid {}, not _apt (42)", r.name, m.uid()))
                }
                Err(e) => {
                    failures.push(format!("{}: umd wrote no log ({e}); did apt run it?\n{ulog}", r.name))
                }
            }
        }
    }
    eprintln!("{table}");
    assert!(failures.is_empty(), "{}\n{table}", failures.join("\n\n"));
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().filter_map(|e| e.ok()) {
        let p = e.path();
        let t = e.file_type().unwrap();
        if t.is_symlink() {
            continue; // chmod would change what it points to
        }
        if t.is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}
