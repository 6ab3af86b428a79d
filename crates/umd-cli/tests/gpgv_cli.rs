//! `umd gpgv` against `/usr/bin/gpgv` (always by absolute path, so a `gpgv`
//! link to umd on PATH cannot turn the comparison into one with itself).
//!
//! Both run on the same files with the same options; their status lines are
//! compared field by field and their exit statuses. Where umd is stricter
//! than gpgv, the case says so, and umd must give exactly the documented
//! difference: the lines gpgv itself prints when told to refuse the same
//! thing (`--weak-digest`), or gpgv's lines up to the key lookup and then an
//! `ERRSIG` with the named reason. No status field here depends on the time
//! of the run (only on the signatures' own times), so nothing is masked.
//!
//! Needs gpg and gpgv (scripts/test installs them); the `_apt` test needs
//! root and setpriv. They skip loudly, or fail under `UMD_REQUIRE_SANDBOX=1`.

mod common;

use std::ffi::OsString;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::SystemTime;

use common::gpg::Gpg;
use sequoia_openpgp as openpgp;

use openpgp::cert::prelude::*;
use openpgp::packet::key::{Key4, PrimaryRole, SecretParts};
use openpgp::packet::signature::SignatureBuilder;
use openpgp::packet::{Key, Packet, UserID};
use openpgp::serialize::stream::{Armorer, Message, Signer};
use openpgp::serialize::MarshalInto;
use openpgp::types::{KeyFlags, SignatureType};

const GPGV: &str = "/usr/bin/gpgv";

fn tools(test: &str) -> bool {
    let present = common::programs_present(&["gpg", "gpgconf", GPGV]);
    common::ready_or_skip(present.is_ok(), test, &present.err().unwrap_or_default())
}

/// A directory every user can read (the `_apt` test runs as uid 42).
fn public_dir(name: &str) -> tempfile::TempDir {
    let d = tempfile::Builder::new().prefix(name).tempdir_in(common::scratch()).expect("a scratch directory");
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    d
}

fn write(path: &Path, bytes: &[u8]) -> PathBuf {
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    path.to_path_buf()
}

/// One run of a verifier: its status lines and exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Run {
    lines: Vec<String>,
    exit: i32,
    stderr: String,
}

fn run(cmd: &mut Command) -> Run {
    let out = cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    run_of(cmd, out)
}

fn run_of(cmd: &Command, out: Output) -> Run {
    let exit = out.status.code().unwrap_or_else(|| panic!("{cmd:?} died: {}", out.status));
    let stdout = String::from_utf8_lossy(&out.stdout);
    Run {
        lines: stdout.lines().map(str::to_string).collect(),
        exit,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The reference: gpgv with an empty home, status lines on stdout.
fn gpgv(home: &Path, args: &[OsString]) -> Command {
    let mut c = Command::new(GPGV);
    c.arg("--homedir").arg(home).args(["--status-fd", "1"]).args(args);
    c
}

/// umd as `umd gpgv`, same arguments.
fn umd_gpgv(home: &Path, args: &[OsString]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_umd"));
    c.env_remove("RUST_LOG").arg("gpgv").arg("--homedir").arg(home).args(["--status-fd", "1"]).args(args);
    c
}

/// How umd's answer relates to gpgv's.
enum Expect {
    /// The same lines and exit status.
    Same,
    /// The same lines; umd exits `umd` where gpgv exits `gpgv`.
    Exit { umd: i32, gpgv: i32, why: &'static str },
    /// What gpgv prints with these options added (e.g. `--weak-digest SHA1`).
    AsGpgvWith { options: &'static [&'static str], why: &'static str },
    /// gpgv's `NEWSIG` and first `KEY_CONSIDERED`, then `ERRSIG` with this code
    /// where gpgv says `GOODSIG`; exit 2.
    Refused { rc: u32, why: &'static str },
    /// `BADSIG` where gpgv says `GOODSIG`; exit 1.
    Bad { why: &'static str },
    /// gpgv's lines for a good signature, with `KEYEXPIRED <expired>` before
    /// `SIG_ID` and `EXPKEYSIG` for `GOODSIG` (what gpgv writes for a key
    /// expired at `expired`); exit 1.
    ExpiredKey { expired: u64, why: &'static str },
}

struct Case {
    name: String,
    args: Vec<OsString>,
    expect: Expect,
}

fn case(name: impl Into<String>, keyrings: &[&Path], files: &[&Path], expect: Expect) -> Case {
    let mut args = Vec::new();
    for k in keyrings {
        args.push(OsString::from("--keyring"));
        args.push(k.as_os_str().to_owned());
    }
    args.extend(files.iter().map(|f| f.as_os_str().to_owned()));
    Case { name: name.into(), args, expect }
}

/// The first difference between two runs' lines, field by field.
fn first_difference(ours: &[String], theirs: &[String]) -> Option<String> {
    for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
        if a != b {
            let (fa, fb): (Vec<&str>, Vec<&str>) = (a.split(' ').collect(), b.split(' ').collect());
            let field = fa.iter().zip(&fb).position(|(x, y)| x != y).unwrap_or(fa.len().min(fb.len()));
            return Some(format!("line {i}, field {field}:\n  umd:  {a}\n  gpgv: {b}"));
        }
    }
    (ours.len() != theirs.len()).then(|| {
        format!(
            "umd wrote {} lines, gpgv {}:\n  umd:  {ours:#?}\n  gpgv: {theirs:#?}",
            ours.len(),
            theirs.len()
        )
    })
}

/// gpgv's lines for a good signature, turned into umd's refusal: `NEWSIG`,
/// `KEY_CONSIDERED`, then `ERRSIG` with gpgv's fields and `rc`.
fn refused(gpgv: &[String], rc: u32) -> Vec<String> {
    let field = |kw: &str, n: usize| -> String {
        let l = gpgv.iter().find(|l| l.starts_with(&format!("[GNUPG:] {kw} "))).expect(kw);
        l.split(' ').nth(n).expect("a field").to_string()
    };
    let keyid = field("GOODSIG", 2);
    let (ts, pk, hash, class, fpr) = (
        field("VALIDSIG", 4),
        field("VALIDSIG", 8),
        field("VALIDSIG", 9),
        field("VALIDSIG", 10),
        field("VALIDSIG", 2),
    );
    vec![
        gpgv[0].clone(),
        gpgv[1].clone(),
        format!("[GNUPG:] ERRSIG {keyid} {pk} {hash} {} {ts} {rc} {fpr}", class.to_lowercase()),
    ]
}

/// Runs every case with both verifiers and fails with every unexplained
/// difference. Prints the table.
fn check(home: &Path, cases: &[Case]) {
    let mut failures = Vec::new();
    let mut table = String::from("\ncase                                               umd  gpgv  lines\n");
    for c in cases {
        let ours = run(&mut umd_gpgv(home, &c.args));
        let theirs = run(&mut gpgv(home, &c.args));
        assert!(ours.lines.iter().all(|l| l.starts_with("[GNUPG:] ")), "{}: {:#?}", c.name, ours.lines);
        let (want_lines, want_exit, note) = match &c.expect {
            Expect::Same => (theirs.lines.clone(), theirs.exit, ""),
            Expect::Exit { umd, gpgv, why } => {
                if theirs.exit != *gpgv {
                    failures.push(format!(
                        "{}: gpgv exits {}, the case says {gpgv} ({why})",
                        c.name, theirs.exit
                    ));
                }
                (theirs.lines.clone(), *umd, *why)
            }
            Expect::AsGpgvWith { options, why } => {
                let mut args: Vec<OsString> = options.iter().map(OsString::from).collect();
                args.extend(c.args.iter().cloned());
                let strict = run(&mut gpgv(home, &args));
                if strict.lines == theirs.lines {
                    failures.push(format!(
                        "{}: {options:?} changes nothing for gpgv: stale case ({why})",
                        c.name
                    ));
                }
                (strict.lines, strict.exit, *why)
            }
            Expect::Bad { why } => {
                let good = theirs.lines.iter().find(|l| l.starts_with("[GNUPG:] GOODSIG "));
                match good {
                    Some(g) => (
                        vec![
                            theirs.lines[0].clone(),
                            theirs.lines[1].clone(),
                            theirs.lines[1].clone(),
                            g.replacen("GOODSIG", "BADSIG", 1),
                        ],
                        1,
                        *why,
                    ),
                    None => {
                        failures.push(format!("{}: gpgv does not accept it: stale case ({why})", c.name));
                        (theirs.lines.clone(), 1, *why)
                    }
                }
            }
            Expect::ExpiredKey { expired, why } => {
                if !theirs.lines.iter().any(|l| l.starts_with("[GNUPG:] GOODSIG ")) || theirs.lines.len() < 3
                {
                    failures.push(format!("{}: gpgv does not accept it: stale case ({why})", c.name));
                    (theirs.lines.clone(), 1, *why)
                } else {
                    let mut l: Vec<String> =
                        theirs.lines.iter().map(|l| l.replacen("] GOODSIG ", "] EXPKEYSIG ", 1)).collect();
                    l.insert(2, format!("[GNUPG:] KEYEXPIRED {expired}"));
                    (l, 1, *why)
                }
            }
            Expect::Refused { rc, why } => {
                if !theirs.lines.iter().any(|l| l.starts_with("[GNUPG:] GOODSIG ")) {
                    failures.push(format!("{}: gpgv does not accept it: stale case ({why})", c.name));
                    (theirs.lines.clone(), 2, *why)
                } else {
                    (refused(&theirs.lines, *rc), 2, *why)
                }
            }
        };
        if let Some(d) = first_difference(&ours.lines, &want_lines) {
            failures.push(format!("{}: {d}\n  umd's stderr: {}", c.name, ours.stderr));
        }
        if ours.exit != want_exit {
            failures
                .push(format!("{}: umd exits {}, expected {want_exit}\n{}", c.name, ours.exit, ours.stderr));
        }
        table += &format!(
            "{:<50} {:>4} {:>5}  {}{}\n",
            c.name,
            ours.exit,
            theirs.exit,
            ours.lines.len(),
            if note.is_empty() { String::new() } else { format!("  (differs: {note})") }
        );
    }
    eprintln!("{table}");
    assert!(failures.is_empty(), "{}\n{table}", failures.join("\n\n"));
}

/// The signed data: a Release-like text.
const TEXT: &[u8] = b"Origin: umd gpgv test\nLabel: umd\nSuite: stable\n\nthe last line has no line ending";

fn sequoia_sign(cert: &openpgp::Cert, data: &[u8]) -> Vec<u8> {
    let key = umd_testkeys::signing_keypair(cert);
    let mut out = Vec::new();
    {
        let m = Message::new(&mut out);
        let m = Armorer::new(m).kind(openpgp::armor::Kind::Signature).build().expect("armorer");
        let mut w = Signer::new(m, key).expect("signer").detached().build().expect("signer");
        w.write_all(data).expect("signing");
        w.finalize().expect("signing");
    }
    out
}

#[test]
fn status_lines_and_exit_statuses_match_gpgv() {
    if !tools("gpgv status lines") {
        return;
    }
    let dir = public_dir("gpgv-cases");
    let f = |n: &str| dir.path().join(n);
    let home = f("home");
    std::fs::create_dir(&home).unwrap();
    let gpg = Gpg::new(f("gnupg"));
    let data = write(&f("data"), TEXT);
    let mut t = TEXT.to_vec();
    t[0] ^= 0x20;
    let tampered = write(&f("tampered"), &t);
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    let mut cases = Vec::new();

    // Good signatures, one key per algorithm family; binary, armored, cleartext.
    let ed = gpg.key("Ed Test <ed@example.org>", "ed25519", "sign", "never", &[]);
    let rsa = gpg.key("RSA Test <rsa@example.org>", "rsa3072", "sign", "never", &[]);
    let p256 = gpg.key("P-256 <p256@example.org>", "nistp256", "sign", "never", &[]);
    let other = gpg.key("Other <other@example.org>", "ed25519", "sign", "never", &[]);
    let (ed_k, rsa_k, p256_k) = (f("ed.gpg"), f("rsa.gpg"), f("p256.gpg"));
    gpg.export(&ed, &ed_k);
    gpg.export(&rsa, &rsa_k);
    gpg.export(&p256, &p256_k);
    let all = [&*ed_k, &rsa_k, &p256_k];
    for (name, fpr) in [("ed", &ed), ("rsa", &rsa), ("p256", &p256), ("other", &other)] {
        let signer = format!("{fpr}!");
        gpg.sign(&[&signer], &["--detach-sign"], &data, &f(&format!("{name}.sig")));
        gpg.sign(&[&signer], &["--detach-sign", "--armor"], &data, &f(&format!("{name}.asc")));
        gpg.sign(&[&signer], &["--clearsign"], &data, &f(&format!("{name}.txt.asc")));
    }
    for name in ["ed", "rsa", "p256"] {
        let sig = f(&format!("{name}.sig"));
        let asc = f(&format!("{name}.asc"));
        let clear = f(&format!("{name}.txt.asc"));
        cases.push(case(format!("{name}: good, binary"), &all, &[&sig, &data], Expect::Same));
        cases.push(case(format!("{name}: good, armored"), &all, &[&asc, &data], Expect::Same));
        cases.push(case(format!("{name}: good, cleartext"), &all, &[&clear], Expect::Same));
        cases.push(case(format!("{name}: tampered data"), &all, &[&sig, &tampered], Expect::Same));
    }
    let clear = std::fs::read_to_string(f("ed.txt.asc")).unwrap();
    let bad_clear = write(&f("ed-tampered.txt.asc"), clear.replacen("umd gpgv", "UMD gpgv", 1).as_bytes());
    cases.push(case("ed: tampered cleartext", &all, &[&bad_clear], Expect::Same));
    cases.push(case("unknown signer", &all, &[&f("other.asc"), &data], Expect::Same));
    cases.push(case("unknown signer, cleartext", &all, &[&f("other.txt.asc")], Expect::Same));
    cases.push(case("no keyring holds the key", &[&ed_k], &[&f("rsa.sig"), &data], Expect::Same));

    // Several signatures.
    let two = f("two.txt.asc");
    gpg.sign(&[&format!("{ed}!"), &format!("{other}!")], &["--clearsign"], &data, &two);
    cases.push(case("two signers, one unknown (gpgv exits 2)", &all, &[&two], Expect::Same));
    let both = [std::fs::read(f("ed.sig")).unwrap(), std::fs::read(f("rsa.sig")).unwrap()].concat();
    let both = write(&f("ed-rsa.sig"), &both);
    cases.push(case("two good signatures", &all, &[&both, &data], Expect::Same));
    let mut flipped = std::fs::read(f("ed.sig")).unwrap();
    *flipped.last_mut().unwrap() ^= 1;
    let bad_then_good =
        write(&f("bad-good.sig"), &[flipped.clone(), std::fs::read(f("rsa.sig")).unwrap()].concat());
    cases.push(case("bad then good: nothing after BADSIG", &all, &[&bad_then_good, &data], Expect::Same));

    // A signing subkey: VALIDSIG's last field is the primary key.
    let sub_primary = gpg.key("Sub <sub@example.org>", "nistp384", "cert", "never", &[]);
    gpg.run(&["--quick-add-key", &sub_primary, "ed25519", "sign", "never"]);
    let subkey = gpg.fingerprints("sub@example.org")[1].clone();
    let sub_k = f("sub.gpg");
    gpg.export(&sub_primary, &sub_k);
    gpg.sign(&[&format!("{subkey}!")], &["--detach-sign", "--armor"], &data, &f("sub.asc"));
    cases.push(case("signing subkey", &[&sub_k], &[&f("sub.asc"), &data], Expect::Same));

    // Text mode over CR LF data; a signature without the signer's user ID.
    let dos = write(&f("dos.txt"), b"dos line\r\nunix line\nend\n");
    gpg.sign(&[&format!("{rsa}!")], &["--detach-sign", "--textmode"], &dos, &f("dos.sig"));
    cases.push(case("text-mode signature", &all, &[&f("dos.sig"), &dos], Expect::Same));
    let stray = write(&f("stray-cr.txt"), b"two CRs\r\r\na lone CR\rinside\nends with a CR\r");
    gpg.sign(&[&format!("{rsa}!")], &["--detach-sign", "--textmode"], &stray, &f("stray-cr.sig"));
    cases.push(case(
        "text-mode signature over stray CRs",
        &all,
        &[&f("stray-cr.sig"), &stray],
        Expect::Bad {
            why: "gpg's text filter drops CRs before line ends; umd hashes RFC 9580's canonical text",
        },
    ));
    gpg.sign(&[&format!("{ed}!")], &["--disable-signer-uid", "--detach-sign"], &data, &f("nouid.sig"));
    cases.push(case("no signer's user ID: bare NEWSIG", &all, &[&f("nouid.sig"), &data], Expect::Same));

    // Policy URLs and notations are reported for good signatures; a long value
    // is split over several NOTATION_DATA lines. A critical notation gpg does not
    // know makes the signature bad, for both.
    let long = "x%y ".repeat(40);
    let how = [
        "--sig-policy-url",
        "https://example.org/policy 100%",
        "--sig-notation",
        &format!("note@example.org={long}"),
        "--sig-notation",
        "second@example.org=2",
        "--detach-sign",
    ];
    gpg.sign(&[&format!("{ed}!")], &how, &data, &f("notation.sig"));
    cases.push(case("policy URL and notations", &all, &[&f("notation.sig"), &data], Expect::Same));
    let how = ["--sig-notation", "!critical@example.org=1", "--detach-sign"];
    gpg.sign(&[&format!("{ed}!")], &how, &data, &f("critical.sig"));
    cases.push(case("unknown critical notation", &all, &[&f("critical.sig"), &data], Expect::Same));

    // An expired signature (gpgv: EXPSIG, exit 1) and an expired or revoked key.
    let then = now - 30 * 86_400;
    let (made, signed) = (format!("{then}!"), format!("{}!", then + 3600));
    let old = gpg.key("Old <old@example.org>", "ed25519", "sign", "never", &["--faked-system-time", &made]);
    let exp =
        gpg.key("Expired <expired@example.org>", "ed25519", "sign", "1d", &["--faked-system-time", &made]);
    let rev = gpg.key("Revoked <revoked@example.org>", "ed25519", "sign", "never", &[]);
    let how = ["--faked-system-time", &signed, "--default-sig-expire", "1d", "--detach-sign", "--armor"];
    gpg.sign(&[&format!("{old}!")], &how, &data, &f("expsig.asc"));
    gpg.sign(
        &[&format!("{exp}!")],
        &["--faked-system-time", &signed, "--detach-sign"],
        &data,
        &f("expkey.sig"),
    );
    gpg.sign(
        &[&format!("{exp}!")],
        &["--faked-system-time", &signed, "--clearsign"],
        &data,
        &f("expkey.txt.asc"),
    );
    gpg.sign(&[&format!("{rev}!")], &["--detach-sign", "--armor"], &data, &f("revkey.asc"));
    gpg.revoke(&rev);
    let (old_k, exp_k, rev_k) = (f("old.gpg"), f("expired.gpg"), f("revoked.gpg"));
    gpg.export(&old, &old_k);
    gpg.export(&exp, &exp_k);
    gpg.export(&rev, &rev_k);
    const EXPIRED: &str = "gpgv exits 0 after EXPKEYSIG (apt refuses it); umd exits 1";
    const REVOKED: &str = "gpgv exits 0 after REVKEYSIG (apt refuses it); umd exits 1";
    cases.push(case("expired signature", &[&old_k], &[&f("expsig.asc"), &data], Expect::Same));
    cases.push(case(
        "expired key",
        &[&exp_k],
        &[&f("expkey.sig"), &data],
        Expect::Exit { umd: 1, gpgv: 0, why: EXPIRED },
    ));
    cases.push(case(
        "expired key, cleartext",
        &[&exp_k],
        &[&f("expkey.txt.asc")],
        Expect::Exit { umd: 1, gpgv: 0, why: EXPIRED },
    ));
    cases.push(case(
        "revoked key",
        &[&rev_k],
        &[&f("revkey.asc"), &data],
        Expect::Exit { umd: 1, gpgv: 0, why: REVOKED },
    ));

    // Where umd's policy is stricter than gpgv's.
    gpg.sign(
        &[&format!("{rsa}!")],
        &["--digest-algo", "SHA1", "--detach-sign", "--armor"],
        &data,
        &f("sha1.asc"),
    );
    gpg.sign(&[&format!("{rsa}!")], &["--digest-algo", "SHA1", "--clearsign"], &data, &f("sha1.txt.asc"));
    gpg.sign(&[&format!("{rsa}!")], &["--digest-algo", "SHA224", "--detach-sign"], &data, &f("sha224.sig"));
    const SHA1: &str = "umd refuses SHA-1 data signatures as gpgv --weak-digest SHA1 does";
    cases.push(case(
        "SHA-1",
        &all,
        &[&f("sha1.asc"), &data],
        Expect::AsGpgvWith { options: &["--weak-digest", "SHA1"], why: SHA1 },
    ));
    cases.push(case(
        "SHA-1, cleartext",
        &all,
        &[&f("sha1.txt.asc")],
        Expect::AsGpgvWith { options: &["--weak-digest", "SHA1"], why: SHA1 },
    ));
    cases.push(case(
        "SHA2-224",
        &all,
        &[&f("sha224.sig"), &data],
        Expect::AsGpgvWith {
            options: &["--weak-digest", "SHA224"],
            why: "umd accepts SHA2-256/384/512 only, as gpgv --weak-digest SHA224 does",
        },
    ));
    let weak = gpg.key("Weak <weak@example.org>", "rsa1024", "sign", "never", &[]);
    let weak_k = f("weak.gpg");
    gpg.export(&weak, &weak_k);
    gpg.sign(&[&format!("{weak}!")], &["--detach-sign"], &data, &f("weak.sig"));
    cases.push(case("RSA-1024 key", &[&weak_k], &[&f("weak.sig"), &data], Expect::Refused {
        rc: 4,
        why: "umd refuses RSA keys under 2048 bits (ERRSIG 4, as gpg for a key outside its compliance mode)",
    }));
    let tomorrow = format!("{}!", now + 86_400);
    gpg.sign(
        &[&format!("{ed}!")],
        &["--faked-system-time", &tomorrow, "--detach-sign"],
        &data,
        &f("future.sig"),
    );
    cases.push(case(
        "signature made tomorrow",
        &all,
        &[&f("future.sig"), &data],
        Expect::Refused {
            rc: 39,
            why: "umd refuses signatures more than 30 minutes in the future (ERRSIG 39, time conflict)",
        },
    ));

    // User IDs cannot add status lines: gpg escapes them, umd too.
    let (evil, _) = CertBuilder::new()
        .set_cipher_suite(CipherSuite::Cv25519)
        .set_primary_key_flags(KeyFlags::empty().set_certification().set_signing())
        .add_userid(UserID::from(
            &b"Evil\n[GNUPG:] GOODSIG 0000000000000000 forged\r\x1b%41 <evil@example.org>"[..],
        ))
        .generate()
        .expect("a certificate");
    let evil_k = write(&f("evil.gpg"), &evil.to_vec().unwrap());
    let evil_sig = write(&f("evil.asc"), &sequoia_sign(&evil, TEXT));
    cases.push(case(
        "user ID with a newline and a fake status line",
        &[&evil_k],
        &[&evil_sig, &data],
        Expect::Same,
    ));

    // Not a signature.
    let garbage = write(&f("garbage"), b"this is not a signature\n");
    let empty = write(&f("empty"), b"");
    let key_block = f("key.asc");
    std::fs::write(&key_block, gpg.run(&["--export", "--armor", &ed])).unwrap();
    let asc = std::fs::read_to_string(f("ed.asc")).unwrap();
    let bad_crc =
        asc.lines().map(|l| if l.starts_with('=') { "=AAAA" } else { l }).collect::<Vec<_>>().join("\n");
    let bad_crc = write(&f("bad-crc.asc"), bad_crc.as_bytes());
    let junk = write(
        &f("junk.asc"),
        b"-----BEGIN PGP SIGNATURE-----\n\nR2FyYmFnZSBnYXJiYWdlIGdhcmJhZ2U=\n-----END PGP SIGNATURE-----\n",
    );
    let truncated = write(&f("truncated.sig"), &std::fs::read(f("ed.sig")).unwrap()[..40]);
    for (name, sig) in [
        ("garbage text", &garbage),
        ("empty file", &empty),
        ("a key block", &key_block),
        ("armor checksum mismatch", &bad_crc),
        ("junk inside armor", &junk),
        ("truncated packet", &truncated),
    ] {
        cases.push(case(name, &all, &[sig, &data], Expect::Same));
    }
    let clear_trunc = write(&f("clear-trunc.asc"), &clear.as_bytes()[..120]);
    cases.push(case("cleartext without its signature", &all, &[&clear_trunc], Expect::Same));
    cases.push(case("cleartext given a data file", &all, &[&f("ed.txt.asc"), &data], Expect::Same));
    cases.push(case("missing signature file", &all, &[&f("nonexistent.sig"), &data], Expect::Same));
    cases.push(case("missing data file", &all, &[&f("ed.sig"), &f("nonexistent")], Expect::Same));
    cases.push(case(
        "several data files are concatenated",
        &all,
        &[&f("ed.sig"), &data, &data],
        Expect::Same,
    ));

    // The same through options gpgv users pass.
    let mut c =
        case("--weak-digest SHA256 refuses a good signature", &all, &[&f("ed.sig"), &data], Expect::Same);
    c.args.splice(0..0, ["--weak-digest", "SHA256"].map(OsString::from));
    cases.push(c);
    let mut c = case("--ignore-time-conflict changes nothing", &all, &[&f("ed.sig"), &data], Expect::Same);
    c.args.insert(0, OsString::from("--ignore-time-conflict"));
    cases.push(c);
    let mut c = case("unknown --weak-digest", &all, &[&f("ed.sig"), &data], Expect::Same);
    c.args.splice(0..0, ["--weak-digest", "SHA-1"].map(OsString::from));
    cases.push(c);

    // Debian's own: bookworm's InRelease files against the archive keyring.
    let debian_keyring = Path::new("/usr/share/keyrings/debian-archive-keyring.gpg");
    let lists: Vec<PathBuf> = std::fs::read_dir("/var/lib/apt/lists")
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.to_string_lossy().ends_with("_InRelease"))
                .collect()
        })
        .unwrap_or_default();
    if debian_keyring.exists() {
        for l in lists.iter().take(2) {
            cases.push(case(
                format!("Debian: {}", l.file_name().unwrap().to_string_lossy()),
                &[debian_keyring],
                &[l],
                Expect::Same,
            ));
        }
    }
    check(&home, &cases);
}

/// A detached signature by `cert`'s primary key over `data`, dated `created`.
fn sign_at(cert: &openpgp::Cert, data: &[u8], created: SystemTime) -> Vec<u8> {
    let mut kp = cert.primary_key().key().clone().parts_into_secret().unwrap().into_keypair().unwrap();
    let sig = SignatureBuilder::new(SignatureType::Binary)
        .set_signature_creation_time(created)
        .unwrap()
        .sign_message(&mut kp, data)
        .unwrap();
    Packet::from(sig).to_vec().unwrap()
}

/// Signatures dated after the run's clock: gpgv accepts any; umd accepts
/// them within its 30-minute clock skew (as Sequoia), refuses them later,
/// and refuses one dated after its key's expiry even while the key lives —
/// as `EXPKEYSIG` (gpgv says `GOODSIG`: it does not compare the two).
#[test]
fn signatures_from_the_near_future_are_judged_with_the_clock_skew() {
    if !tools("gpgv clock skew") {
        return;
    }
    let dir = public_dir("gpgv-skew");
    let f = |n: &str| dir.path().join(n);
    let home = f("home");
    std::fs::create_dir(&home).unwrap();
    let data = write(&f("data"), TEXT);
    let now = SystemTime::now();
    let min = |m: u64| std::time::Duration::from_secs(60 * m);
    let day = min(24 * 60);
    let cert = |uid: &str, created: SystemTime, validity: Option<std::time::Duration>| {
        CertBuilder::new()
            .set_cipher_suite(CipherSuite::Cv25519)
            .set_primary_key_flags(KeyFlags::empty().set_certification().set_signing())
            .set_creation_time(created)
            .set_validity_period(validity)
            .add_userid(uid)
            .generate()
            .unwrap()
            .0
    };
    let live = cert("Lives <lives@example.org>", now - day, None);
    // Made a day less ten minutes ago, valid for a day: expires in ten minutes.
    let made = now - day + min(10);
    let expiring = cert("Expiring <expiring@example.org>", made, Some(day));
    let expired_at = made.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() + day.as_secs();
    let (lk, ek) = (f("live.gpg"), f("expiring.gpg"));
    write(&lk, &live.to_vec().unwrap());
    write(&ek, &expiring.to_vec().unwrap());
    let sig = |name: &str, c: &openpgp::Cert, at: SystemTime| write(&f(name), &sign_at(c, TEXT, at));
    let (soon, later) = (sig("soon.sig", &live, now + min(10)), sig("later.sig", &live, now + min(120)));
    let before = sig("before-expiry.sig", &expiring, now + min(5));
    let after = sig("after-expiry.sig", &expiring, now + min(20));
    check(
        &home,
        &[
            case("signed 10 minutes from now: within the skew", &[&lk], &[&soon, &data], Expect::Same),
            case(
                "signed 2 hours from now",
                &[&lk],
                &[&later, &data],
                Expect::Refused { rc: 39, why: "beyond the 30-minute clock skew (time conflict)" },
            ),
            case("signed 5 minutes from now, key expires in 10", &[&ek], &[&before, &data], Expect::Same),
            case(
                "signed 20 minutes from now, key expires in 10",
                &[&ek],
                &[&after, &data],
                Expect::ExpiredKey {
                    expired: expired_at,
                    why: "umd refuses a signature dated after its key's expiry, even within the skew",
                },
            ),
        ],
    );
    // The reasons name their times as RFC 3339 UTC, never as epoch seconds.
    for (keyring, sig, reason) in [(&lk, &later, "is in the future"), (&ek, &after, "after its key expired")]
    {
        let r = run(&mut umd_gpgv(
            &home,
            &[OsString::from("--keyring"), keyring.into(), sig.into(), data.clone().into()],
        ));
        let line = r.stderr.lines().find(|l| l.contains(reason)).unwrap_or_else(|| panic!("{}", r.stderr));
        let digits = line.split(|c: char| !c.is_ascii_digit()).map(str::len).max().unwrap_or(0);
        assert!(line.contains("T") && line.contains("Z") && digits <= 4 && !line.contains("Some("), "{line}");
    }
}

/// A key flagged for certification only, and one with no key flags at all
/// (GnuPG 1.x and PGP made those): gpgv reports the first as unusable itself;
/// the second it accepts, umd does not.
#[test]
fn keys_that_may_not_sign_are_reported_as_gpgv_reports_unusable_keys() {
    if !tools("gpgv key usage") {
        return;
    }
    let dir = public_dir("gpgv-usage");
    let f = |n: &str| dir.path().join(n);
    let home = f("home");
    std::fs::create_dir(&home).unwrap();
    let data = write(&f("data"), TEXT);
    let (certonly, _) = CertBuilder::new()
        .set_cipher_suite(CipherSuite::Cv25519)
        .set_primary_key_flags(KeyFlags::empty().set_certification())
        .add_userid("certifies only <certonly@example.org>")
        .generate()
        .unwrap();
    let kp = certonly.primary_key().key().clone().parts_into_secret().unwrap().into_keypair().unwrap();
    let mut sig = Vec::new();
    {
        let m = Armorer::new(Message::new(&mut sig)).kind(openpgp::armor::Kind::Signature).build().unwrap();
        let mut w = Signer::new(m, kp).unwrap().detached().build().unwrap();
        w.write_all(TEXT).unwrap();
        w.finalize().unwrap();
    }
    let k = write(&f("certonly.gpg"), &certonly.to_vec().unwrap());
    let s = write(&f("certonly.asc"), &sig);
    // A binding without key flags.
    let key: Key<SecretParts, PrimaryRole> =
        Key4::generate_ecc(true, openpgp::types::Curve::Ed25519).unwrap().into();
    let mut kp = key.clone().into_keypair().unwrap();
    let uid = UserID::from("no key flags <noflags@example.org>");
    let binding = SignatureBuilder::new(SignatureType::PositiveCertification)
        .sign_userid_binding(&mut kp, key.parts_as_public(), &uid)
        .unwrap();
    let packets: Vec<Packet> = vec![key.clone().into(), uid.into(), binding.into()];
    let noflags = openpgp::Cert::from_packets(packets.into_iter()).unwrap();
    let nk = write(&f("noflags.gpg"), &noflags.to_vec().unwrap());
    let mut sig = Vec::new();
    {
        let m = Armorer::new(Message::new(&mut sig)).kind(openpgp::armor::Kind::Signature).build().unwrap();
        let mut w = Signer::new(m, kp).unwrap().detached().build().unwrap();
        w.write_all(TEXT).unwrap();
        w.finalize().unwrap();
    }
    let ns = write(&f("noflags.asc"), &sig);
    check(
        &home,
        &[
            case("key flagged for certification only", &[&k], &[&s, &data], Expect::Same),
            case(
                "key without key flags",
                &[&nk],
                &[&ns, &data],
                Expect::Refused {
                    rc: 125,
                    why:
                        "umd lets a key sign only if a verified self-signature flags it so (wrong key usage)",
                },
            ),
        ],
    );
}

/// A small signed setup shared by the tests below.
struct Signed {
    dir: tempfile::TempDir,
    keyring: PathBuf,
    sig: PathBuf,
    clear: PathBuf,
    data: PathBuf,
    fpr: String,
    _gpg: Gpg,
}

fn signed(name: &str, algo: &str) -> Signed {
    let dir = public_dir(name);
    let f = |n: &str| dir.path().join(n);
    std::fs::create_dir(f("home")).unwrap();
    let gpg = Gpg::new(f("gnupg"));
    let fpr = gpg.key(&format!("Signer <{algo}@example.org>"), algo, "sign", "never", &[]);
    let keyring = f("keyring.gpg");
    gpg.export(&fpr, &keyring);
    let data = write(&f("data"), TEXT);
    let (sig, clear) = (f("data.sig"), f("data.asc"));
    gpg.sign(&[&format!("{fpr}!")], &["--detach-sign"], &data, &sig);
    gpg.sign(&[&format!("{fpr}!")], &["--clearsign"], &data, &clear);
    Signed { keyring, sig, clear, data, fpr, _gpg: gpg, dir }
}

impl Signed {
    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    fn args(&self, files: &[&Path]) -> Vec<OsString> {
        let mut a = vec![OsString::from("--keyring"), self.keyring.clone().into_os_string()];
        a.extend(files.iter().map(|f| f.as_os_str().to_owned()));
        a
    }
}

#[test]
fn dump_options_lists_gpgvs_options_and_assert_pubkey_algo() {
    if !tools("gpgv --dump-options") {
        return;
    }
    let theirs = Command::new(GPGV).arg("--dump-options").output().unwrap();
    let ours = common::umd(&["gpgv", "--dump-options"]);
    assert_eq!(ours.status.code(), Some(0));
    let theirs: Vec<String> = String::from_utf8_lossy(&theirs.stdout).lines().map(String::from).collect();
    let ours: Vec<String> = String::from_utf8_lossy(&ours.stdout).lines().map(String::from).collect();
    // gpgv 2.4 lists --assert-pubkey-algo after --debug; gpgv 2.2 (here) does
    // not have it. Everything else: the same options, in the same order.
    let mut want = theirs.clone();
    let at = want.iter().position(|l| l == "--debug").expect("gpgv lists --debug") + 1;
    if !want.contains(&"--assert-pubkey-algo".to_string()) {
        want.insert(at, "--assert-pubkey-algo".into());
    }
    assert_eq!(ours, want);
    // apt 3 strips each line and looks for "--assert-pubkey-algo"; an empty
    // answer would make it skip the verifier.
    assert!(ours.iter().any(|l| l.trim() == "--assert-pubkey-algo"));
}

#[test]
fn unknown_options_are_refused_with_exit_2_like_gpgv() {
    if !tools("gpgv options") {
        return;
    }
    for args in [&["--bogus", "x"][..], &["--keyid", "x", "y"], &["-x"], &["--ver"], &["--keyring"]] {
        let theirs = Command::new(GPGV).args(args).output().unwrap();
        let ours = common::umd(&[&["gpgv"][..], args].concat());
        assert_eq!(theirs.status.code(), Some(2), "{args:?}");
        assert_eq!(ours.status.code(), Some(2), "{args:?}: {:?}", common::text(&ours));
        assert!(ours.stdout.is_empty());
    }
    // --help and --version succeed and say what runs.
    let h = common::umd(&["gpgv", "--help"]);
    assert_eq!(h.status.code(), Some(0));
    assert!(common::text(&h).0.contains("--status-fd FD"));
    let v = common::umd(&["gpgv", "--version"]);
    assert!(common::text(&v).0.starts_with("gpgv (umd) "));
}

#[test]
fn assert_pubkey_algo_reports_each_good_signature_as_gpgv_2_4_does() {
    if !tools("gpgv --assert-pubkey-algo") {
        return;
    }
    let s = signed("gpgv-assert", "ed25519");
    let base = run(&mut umd_gpgv(&s.home(), &s.args(&[&s.sig, &s.data])));
    assert_eq!(base.exit, 0);
    for (spec, ok) in [(">=rsa2048,ed25519,ed448,nistp256,nistp384,nistp521", true), (">=rsa3072", false)] {
        let mut args = vec![OsString::from(format!("--assert-pubkey-algo={spec}"))];
        args.extend(s.args(&[&s.sig, &s.data]));
        let r = run(&mut umd_gpgv(&s.home(), &args));
        let mut want = base.lines.clone();
        want.push(format!("[GNUPG:] ASSERT_PUBKEY_ALGO {} {} ed25519", s.fpr, u8::from(ok)));
        assert_eq!(r.lines, want, "{spec}");
        assert_eq!(r.exit, if ok { 0 } else { 1 }, "{spec}: {}", r.stderr);
    }
    // Two options are one list, as in gpgv.
    let mut args: Vec<OsString> =
        ["--assert-pubkey-algo", "rsa4096", "--assert-pubkey-algo", "ed25519"].map(OsString::from).to_vec();
    args.extend(s.args(&[&s.sig, &s.data]));
    let r = run(&mut umd_gpgv(&s.home(), &args));
    assert!(r.lines.last().unwrap().ends_with(" 1 ed25519"), "{:?}", r.lines);
    let rsa = signed("gpgv-assert-rsa", "rsa3072");
    let mut args = vec![OsString::from("--assert-pubkey-algo=>=rsa2048")];
    args.extend(rsa.args(&[&rsa.sig, &rsa.data]));
    let r = run(&mut umd_gpgv(&rsa.home(), &args));
    assert_eq!(r.lines.last().unwrap(), &format!("[GNUPG:] ASSERT_PUBKEY_ALGO {} 1 rsa3072", rsa.fpr));
}

/// apt passes `--status-fd 3` with the pipe on descriptor 3; a descriptor that
/// is not open is a fatal error, as in gpgv.
#[test]
fn status_lines_go_to_the_descriptor_named() {
    if !tools("gpgv --status-fd") {
        return;
    }
    let s = signed("gpgv-fd", "ed25519");
    let with_fd3 = |prog: &str, first: &[&str]| {
        let (mut r, w) = std::io::pipe().unwrap();
        let mut c = Command::new(prog);
        c.args(first)
            .arg("--homedir")
            .arg(s.home())
            .args(["--status-fd", "3"])
            .args(s.args(&[&s.sig, &s.data]));
        let wfd = w.as_raw_fd();
        // SAFETY: dup2 only, between fork and exec.
        unsafe {
            c.pre_exec(
                move || if libc::dup2(wfd, 3) < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) },
            );
        }
        let child = c.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
        drop(w);
        let mut lines = String::new();
        std::io::Read::read_to_string(&mut r, &mut lines).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.stdout.is_empty(), "nothing on stdout");
        (lines, out.status.code())
    };
    let ours = with_fd3(env!("CARGO_BIN_EXE_umd"), &["gpgv"]);
    let theirs = with_fd3(GPGV, &[]);
    assert_eq!(ours, theirs);
    assert!(ours.0.contains("[GNUPG:] GOODSIG "));

    let bad = Command::new(env!("CARGO_BIN_EXE_umd"))
        .args(["gpgv", "--status-fd", "97"])
        .args(s.args(&[&s.sig, &s.data]))
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("status-fd is invalid"));
}

/// The log goes to stderr, `--logger-fd` or `--log-file`; `--quiet` leaves
/// out the informational lines; the status lines do not move.
#[test]
fn messages_go_where_gpgv_sends_them() {
    if !tools("gpgv logging") {
        return;
    }
    let s = signed("gpgv-log", "ed25519");
    let mut c = Command::new(env!("CARGO_BIN_EXE_umd"));
    c.args(["gpgv", "--logger-fd", "1", "--homedir"]).arg(s.home()).args(s.args(&[&s.sig, &s.data]));
    let r = run(&mut c);
    assert_eq!(r.exit, 0);
    assert!(r.lines.iter().any(|l| l.contains("umd gpgv: Good signature from")), "{:?}", r.lines);
    assert!(r.stderr.is_empty(), "{}", r.stderr);
    let log = s.dir.path().join("gpgv.log");
    let mut c = Command::new(env!("CARGO_BIN_EXE_umd"));
    c.args(["gpgv", "-q", "--log-file"]).arg(&log).arg("--homedir").arg(s.home()).args(["--status-fd", "1"]);
    c.args(s.args(&[&s.sig, &s.data]));
    let r = run(&mut c);
    assert_eq!(r.exit, 0);
    assert!(r.lines.iter().any(|l| l.starts_with("[GNUPG:] GOODSIG ")));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("Good signature from") && !text.contains("Signature made"), "{text}");
}

#[test]
fn output_writes_the_verified_text_of_a_cleartext_document_only() {
    if !tools("gpgv --output") {
        return;
    }
    let s = signed("gpgv-output", "ed25519");
    let (ours, theirs) = (s.dir.path().join("ours.txt"), s.dir.path().join("theirs.txt"));
    let mut a = vec![OsString::from("--output"), ours.clone().into_os_string()];
    a.extend(s.args(&[&s.clear]));
    let r = run(&mut umd_gpgv(&s.home(), &a));
    let mut b = vec![OsString::from("--output"), theirs.clone().into_os_string()];
    b.extend(s.args(&[&s.clear]));
    let g = run(&mut gpgv(&s.home(), &b));
    assert_eq!((&r.lines, r.exit), (&g.lines, g.exit));
    assert_eq!(r.lines[0], "[GNUPG:] PLAINTEXT 74 0 ");
    assert_eq!(std::fs::read(&ours).unwrap(), std::fs::read(&theirs).unwrap());
    assert_eq!(std::fs::read(&ours).unwrap(), TEXT.iter().chain(b"\n").copied().collect::<Vec<u8>>());

    // A tampered document: gpgv has already written it; umd writes nothing.
    let text = std::fs::read_to_string(&s.clear).unwrap().replacen("umd gpgv", "UMD gpgv", 1);
    let bad = write(&s.dir.path().join("bad.asc"), text.as_bytes());
    let out = s.dir.path().join("bad.txt");
    let mut a = vec![OsString::from("-o"), out.clone().into_os_string()];
    a.extend(s.args(&[&bad]));
    let r = run(&mut umd_gpgv(&s.home(), &a));
    assert_eq!(r.exit, 1);
    assert!(!out.exists(), "nothing written for a bad signature");
}

#[test]
fn stdin_and_special_filenames_name_inputs_as_in_gpgv() {
    if !tools("gpgv special filenames") {
        return;
    }
    let s = signed("gpgv-stdin", "ed25519");
    let from_stdin = |prog: &str, first: &[&str]| {
        let mut c = Command::new(prog);
        c.args(first).arg("--homedir").arg(s.home()).args(["--status-fd", "1"]);
        c.args(s.args(&[Path::new("-"), &s.data]));
        c.stdin(std::fs::File::open(&s.sig).unwrap());
        let o = c.output().unwrap();
        (String::from_utf8_lossy(&o.stdout).into_owned(), o.status.code())
    };
    let ours = from_stdin(env!("CARGO_BIN_EXE_umd"), &["gpgv"]);
    assert_eq!(ours, from_stdin(GPGV, &[]));
    assert!(ours.0.contains("GOODSIG"));

    // -&N: the data on descriptor 5.
    let data = std::fs::File::open(&s.data).unwrap();
    let dfd = data.as_raw_fd();
    let mut c = Command::new(env!("CARGO_BIN_EXE_umd"));
    c.args(["gpgv", "--enable-special-filenames", "--status-fd", "1", "--homedir"]).arg(s.home());
    c.args(s.args(&[&s.sig, Path::new("-&5")]));
    // SAFETY: dup2 only, between fork and exec.
    unsafe {
        c.pre_exec(
            move || if libc::dup2(dfd, 5) < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) },
        );
    }
    let o = c.output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{:?}", common::text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("GOODSIG"));
}

#[test]
fn keyrings_are_looked_up_as_gpgv_looks_them_up() {
    if !tools("gpgv keyrings") {
        return;
    }
    let s = signed("gpgv-keyrings", "ed25519");
    let home = s.home();
    // A bare name is in the home directory; without --keyring, trustedkeys.gpg there.
    std::fs::copy(&s.keyring, home.join("mine.gpg")).unwrap();
    let sig = [s.sig.as_os_str().to_owned(), s.data.as_os_str().to_owned()];
    let named: Vec<OsString> =
        [OsString::from("--keyring"), OsString::from("mine.gpg")].into_iter().chain(sig.clone()).collect();
    for args in [named, sig.to_vec()] {
        if args.len() == 2 {
            std::fs::copy(&s.keyring, home.join("trustedkeys.gpg")).unwrap();
        }
        let ours = run(&mut umd_gpgv(&home, &args));
        let theirs = run(&mut gpgv(&home, &args));
        assert_eq!((&ours.lines, ours.exit), (&theirs.lines, theirs.exit), "{args:?}");
        assert_eq!(ours.exit, 0);
    }
    // A missing keyring: gpgv goes on without it and exits 2.
    let mut args = vec![OsString::from("--keyring"), OsString::from("./nonexistent.gpg")];
    args.extend(s.args(&[&s.sig, &s.data]));
    let ours = run(&mut umd_gpgv(&home, &args));
    assert_eq!(ours.exit, 2, "{}", ours.stderr);
    assert_eq!(ours.lines[0], "[GNUPG:] ERROR add_keyblock_resource 33587281");
    assert!(ours.lines.iter().any(|l| l.starts_with("[GNUPG:] GOODSIG ")));
    assert_eq!(run(&mut gpgv(&home, &args)).exit, 2);
    // No keyring at all: the default one is missing, as gpgv reports it.
    let empty = s.dir.path().join("empty-home");
    std::fs::create_dir(&empty).unwrap();
    let sig = s.args(&[&s.sig, &s.data])[2..].to_vec();
    let (ours, theirs) = (run(&mut umd_gpgv(&empty, &sig)), run(&mut gpgv(&empty, &sig)));
    assert_eq!((ours.exit, &ours.lines[0]), (theirs.exit, &theirs.lines[0]));
    assert!(ours.lines.iter().any(|l| l.starts_with("[GNUPG:] NO_PUBKEY ")));
}

/// `umd` run under the name `gpgv` or `umd-gpgv` is gpgv; `install-gpgv` makes
/// that link and never replaces a file.
#[test]
fn install_gpgv_links_the_binary_and_argv0_selects_gpgv() {
    if !tools("gpgv argv[0]") {
        return;
    }
    let s = signed("gpgv-argv0", "ed25519");
    let bin = s.dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let o = common::umd(&["install-gpgv", "--dir", bin.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{:?}", common::text(&o));
    assert!(common::text(&o).0.contains("APT::Key::GPGVCommand"));
    let link = bin.join("umd-gpgv");
    assert_eq!(std::fs::read_link(&link).unwrap(), std::fs::canonicalize(env!("CARGO_BIN_EXE_umd")).unwrap());
    let o = common::umd(&["install-gpgv", "--dir", bin.to_str().unwrap(), "--name", "gpgv"]);
    assert_eq!(o.status.code(), Some(0));

    let reference = run(&mut umd_gpgv(&s.home(), &s.args(&[&s.sig, &s.data])));
    for name in ["umd-gpgv", "gpgv"] {
        let mut c = Command::new(bin.join(name));
        c.arg("--homedir").arg(s.home()).args(["--status-fd", "1"]).args(s.args(&[&s.sig, &s.data]));
        let r = run(&mut c);
        assert_eq!((&r.lines, r.exit), (&reference.lines, reference.exit), "{name}");
        assert!(r.stderr.contains(&format!("{name}: Good signature")), "{name}: {}", r.stderr);
    }

    // Never replaces: an existing link or file stays as it was.
    let o = common::umd(&["install-gpgv", "--dir", bin.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(common::text(&o).1.contains("not replacing"));
    let other = s.dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("umd-gpgv"), "#!/bin/sh\n").unwrap();
    let o = common::umd(&["install-gpgv", "--dir", other.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(std::fs::read(other.join("umd-gpgv")).unwrap(), b"#!/bin/sh\n");
    let o = common::umd(&["install-gpgv", "--dir", other.to_str().unwrap(), "--name", "sqv"]);
    assert_eq!(o.status.code(), Some(2), "only umd-gpgv or gpgv");
}

/// apt's methods drop to `_apt` (uid 42, no groups, no-new-privileges)
/// before they start the verifier: the unprivileged sandbox path must give
/// the same answer there.
#[test]
fn gpgv_works_as_apts_unprivileged_user() {
    let root = rustix::process::geteuid().is_root();
    let setpriv = common::programs_present(&["setpriv"]);
    if !tools("gpgv as _apt")
        || !common::ready_or_skip(root, "gpgv as _apt", "needs root to switch to uid 42")
        || !common::ready_or_skip(setpriv.is_ok(), "gpgv as _apt", &setpriv.err().unwrap_or_default())
    {
        return;
    }
    let s = signed("gpgv-apt-user", "ed25519");
    for p in [&s.keyring, &s.sig, &s.data, &s.clear] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let as_apt = |files: &[&Path]| {
        let mut c = Command::new("setpriv");
        c.args(["--reuid", "42", "--regid", "65534", "--clear-groups", "--no-new-privs", "--"]);
        c.arg(env!("CARGO_BIN_EXE_umd"))
            .arg("gpgv")
            .arg("--homedir")
            .arg(s.home())
            .args(["--status-fd", "1"]);
        c.args(s.args(files));
        run(&mut c)
    };
    for files in [&[&*s.sig, &s.data][..], &[&s.clear]] {
        let apt = as_apt(files);
        let root = run(&mut umd_gpgv(&s.home(), &s.args(files)));
        assert_eq!((&apt.lines, apt.exit), (&root.lines, root.exit), "{}", apt.stderr);
        assert_eq!(apt.exit, 0, "{}", apt.stderr);
    }
}
