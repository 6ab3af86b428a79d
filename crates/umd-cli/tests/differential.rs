//! Differential tests: `umd verify` against the tools people compare it with, on
//! Debian's real files and on a corpus of keys and signatures made here.
//!
//! References, each run as a separate program on the same files:
//!
//! * `gpgv` 2.2 — exit 0 when every signature is good, 1 when one is bad, 2 when
//!   one cannot be checked (a missing key, even when another signature is good);
//! * apt's own `gpgv` method (`/usr/lib/apt/methods/gpgv`) — apt does not act on
//!   gpgv's exit status but on its status lines (GOODSIG, EXPKEYSIG, the digest in
//!   VALIDSIG, …): the verdict Debian acts on. It reads cleartext and armored
//!   signatures only. A column wherever apt is installed;
//! * `sqv` 1.1 — detached signatures only (it cannot read cleartext): 0, or not;
//! * `sq verify` 0.27 — detached and cleartext: 0, or not;
//! * sequoia-openpgp 2.4 with its `StandardPolicy`, called in this test (a
//!   dev-dependency) — the only reference that reads v6 (RFC 9580) keys.
//!
//! umd has three verdicts (exit 0 verified, 1 bad, 2 cannot verify); sqv and sq
//! have two, so their "not 0" agrees with umd's 1 and 2. Each case states umd's
//! verdict, and every reference must agree with it — unless the case states the
//! difference and why, and then the reference must give exactly that verdict (a
//! stale explanation fails too). The whole table is printed (`--nocapture`).
//!
//! The tools are installed by `scripts/test`; when one is missing the tests skip
//! loudly, or fail under `UMD_REQUIRE_SANDBOX=1` (CI).

mod common;

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use sequoia_openpgp as openpgp;

use openpgp::cert::prelude::*;
use openpgp::crypto::KeyPair;
use openpgp::packet::key::{Key4, Key6, PrimaryRole, SecretParts, SubordinateRole};
use openpgp::packet::signature::SignatureBuilder;
use openpgp::packet::{Key, Packet, UserID};
use openpgp::parse::stream::{
    DetachedVerifierBuilder, MessageLayer, MessageStructure, VerificationError, VerificationHelper,
    VerifierBuilder,
};
use openpgp::parse::Parse;
use openpgp::policy::StandardPolicy;
use openpgp::serialize::stream::{Armorer, Message, Signer};
use openpgp::serialize::MarshalInto;
use openpgp::types::{Curve, KeyFlags, ReasonForRevocation, SignatureType};
use umd_testkeys::{primary_keypair, signing_keypair};

use common::gpg::Gpg;

// ---------------------------------------------------------------------------
// Verdicts, tools, cases.

/// A verdict, in umd's terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    /// Exit 0: verified.
    Good,
    /// A signature by a keyring key failed (umd and gpgv exit 1).
    Bad,
    /// No signature could be checked, e.g. its key is not in the keyring (exit 2).
    CannotVerify,
    /// sqv and sq: non-zero, which does not tell "bad" from "cannot verify".
    NotGood,
    /// The tool does not take this input (sqv and cleartext, apt and binary
    /// signatures) or is not installed (apt).
    NotRun,
}
use Verdict::*;

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Good => "good",
            Bad => "bad",
            CannotVerify => "cannot",
            NotGood => "not good",
            NotRun => "-",
        })
    }
}

/// The references, in table order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tool {
    Gpgv,
    Apt,
    Sqv,
    Sq,
    Sequoia,
}
use Tool::*;

const TOOLS: [Tool; 5] = [Gpgv, Apt, Sqv, Sq, Sequoia];

impl fmt::Display for Tool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Gpgv => "gpgv",
            Apt => "apt",
            Sqv => "sqv",
            Sq => "sq",
            Sequoia => "sequoia",
        })
    }
}

/// What is verified.
#[derive(Clone, Debug)]
enum Input {
    /// A detached signature (binary or armored) and its data.
    Detached { sig: PathBuf, data: PathBuf },
    /// A cleartext-signed document.
    Cleartext(PathBuf),
}

/// One row of the table: umd's expected verdict and the documented differences.
#[derive(Clone, Debug)]
struct Case {
    name: String,
    keyring: PathBuf,
    input: Input,
    umd: Verdict,
    /// A reference that differs from umd: its exact verdict, and why.
    differs: Vec<(Tool, Verdict, &'static str)>,
}

impl Case {
    fn new(name: impl Into<String>, keyring: &Path, input: Input, umd: Verdict) -> Case {
        Case { name: name.into(), keyring: keyring.to_path_buf(), input, umd, differs: Vec::new() }
    }

    fn differs(mut self, tools: &[Tool], verdict: Verdict, why: &'static str) -> Case {
        self.differs.extend(tools.iter().map(|&t| (t, verdict, why)));
        self
    }
}

// The documented differences. Each says why umd keeps its verdict.

const SHA1_GPGV: &str = "gpgv 2.2 accepts SHA-1 data signatures; umd refuses them by policy \
     (Policy::allow_sha1_data_signatures: chosen-prefix collisions on SHA-1 are practical, \
     RFC 9580 §9.5), as apt (which reads the digest in gpgv's VALIDSIG), sqv, sq and Sequoia do";
const EXPIRED_GPGV: &str = "gpgv exits 0 for a signature by an expired key (printing EXPKEYSIG, \
     which apt refuses); umd refuses it, as apt does";
const EXPIRED_SEQUOIA: &str = "the signature was made while the key was valid, and Sequoia (sqv, sq, \
     the library) checks the key at the signature's creation time; umd checks expiry at the \
     caller's clock (Policy::now), never at a time the signature claims: whoever holds an expired \
     key can backdate a signature. apt refuses it too (EXPKEYSIG)";
const REVOKED_GPGV: &str = "gpgv exits 0 for a signature by a revoked key (printing REVKEYSIG, \
     which apt refuses); umd refuses it, as apt does";
const SOFT_REVOKED_SEQUOIA: &str = "a 'superseded' revocation is soft (RFC 9580 §5.2.3.31): Sequoia \
     accepts signatures created before it. umd treats any valid revocation as final, because the \
     creation time that would put the signature before the revocation is the signer's claim; \
     apt (REVKEYSIG) refuses it too";
const PARTIAL_KEYRING_GPGV: &str = "gpgv exits 2 when any signature's key is missing, even when \
     another is good; apt reads gpgv's status lines and accepts the good one, and umd, sq and \
     Sequoia ignore signatures by keys outside the keyring";
const UNUSABLE_KEY_GPGV: &str = "gpgv reports a signature by a keyring key that may not sign \
     (a subkey without back-signature: \"not cross-certified\"; a key not flagged for signing: \
     \"Wrong key usage\") as one it cannot check, exit 2; umd calls it bad, as Sequoia does: \
     the signature names a keyring key, and that key may not make it";
const FUTURE_GPGV: &str = "gpgv (hence apt) accepts a signature created any time after the \
     current time; umd refuses one created more than Policy::clock_skew (30 minutes, Sequoia's \
     tolerance) ahead of its clock: a day ahead is a wrong clock or a lie. sqv, sq and Sequoia agree";
const SHA224: &str = "umd accepts SHA2-256, SHA2-384 and SHA2-512 only (Policy::hashes: no common \
     implementation uses SHA2-224 by default, and each accepted algorithm is attack surface); \
     the others accept SHA2-224";
const SQV_COUNTS_GOOD: &str = "sqv succeeds when enough signatures are good and ignores the \
     others; umd fails on any bad signature by a keyring key (a tampered signature next to a good \
     one is an attack, not noise), as gpgv, sq and Sequoia do";
const NO_KEY_FLAGS_GPGV: &str = "with no key flags subpacket (keys made by GnuPG 1.x or PGP), \
     gpg infers a key's use from its algorithm; umd, like Sequoia (sqv, sq, the library), lets a \
     key sign only if a verified self-signature flags it for signing (RFC 9580 §5.2.3.29)";
const GPG_TEXT_FILTER: &str = "gpg's text filter drops every CR before a line's LF (and at the \
     end of the file) before hashing a text-mode signature; RFC 9580 §5.2.1.2 only says line \
     endings become CR LF, and umd, like Sequoia (sqv, sq, the library), turns a bare LF into \
     CR LF and hashes every other CR as it is, so such a gpg signature fails (gpgv, hence apt, accepts it)";
const V6_OLD_TOOLS: &str = "gpgv 2.2 (hence apt), sqv 1.1 and sq 0.27 (sequoia-openpgp 1.x) \
     predate RFC 9580 and cannot read v6 keys or signatures (gpgv: \"packet(2) with unknown \
     version 6\", exit 2); sequoia-openpgp 2.4 is the reference for v6";
const ED448: &str = "umd does not verify Ed448 (Policy::algorithms: no audited Ed448 verifier is \
     linked), so a signature by an Ed448 keyring key is bad; Sequoia verifies it";

// ---------------------------------------------------------------------------
// Running the tools.

/// Whether a run must fail rather than skip when a tool is missing.
fn required() -> bool {
    std::env::var("UMD_REQUIRE_SANDBOX").as_deref() == Ok("1")
}

/// The reference programs are installed (gpg too when `with_gpg`), or a loud skip
/// (a failure under `UMD_REQUIRE_SANDBOX=1`).
fn tools_present(test: &str, with_gpg: bool) -> bool {
    let wanted: &[&str] = if with_gpg { &["gpg", "gpgv", "sqv", "sq"] } else { &["gpgv", "sqv", "sq"] };
    let missing: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|t| {
            Command::new(t).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_err()
        })
        .collect();
    if missing.is_empty() {
        return true;
    }
    if required() {
        panic!("UMD_REQUIRE_SANDBOX=1 but {missing:?} not installed (scripts/test installs gnupg, gpgv, sqv, sq)");
    }
    let bar = "!".repeat(80);
    let _ = writeln!(
        std::io::stderr(),
        "\n{bar}\n!!! SKIPPED: {test}: {missing:?} not installed\n!!! scripts/test installs them; \
         UMD_REQUIRE_SANDBOX=1 makes this a failure.\n{bar}"
    );
    false
}

const APT_GPGV_METHOD: &str = "/usr/lib/apt/methods/gpgv";

fn exit_code(cmd: &mut Command) -> i32 {
    let out = cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    out.status.code().unwrap_or_else(|| panic!("{cmd:?} died: {}", out.status))
}

fn three_way(code: i32, what: &str) -> Verdict {
    match code {
        0 => Good,
        1 => Bad,
        2 => CannotVerify,
        c => panic!("{what} exited {c}"),
    }
}

fn two_way(code: i32) -> Verdict {
    if code == 0 {
        Good
    } else {
        NotGood
    }
}

fn umd(keyring: &Path, input: &Input) -> Verdict {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_umd"));
    cmd.env_remove("RUST_LOG").arg("verify").arg("--keyring").arg(keyring);
    match input {
        Input::Detached { sig, data } => cmd.arg(sig).arg(data),
        Input::Cleartext(doc) => cmd.arg(doc),
    };
    three_way(exit_code(&mut cmd), "umd verify")
}

/// gpgv with an empty home (so only `keyring` is read).
fn gpgv(home: &Path, keyring: &Path, input: &Input) -> Verdict {
    let mut cmd = Command::new("gpgv");
    cmd.arg("--homedir").arg(home).arg("--keyring").arg(keyring);
    match input {
        Input::Detached { sig, data } => cmd.arg(sig).arg(data),
        Input::Cleartext(doc) => cmd.arg(doc),
    };
    three_way(exit_code(&mut cmd), "gpgv")
}

fn sqv(keyring: &Path, input: &Input) -> Verdict {
    match input {
        Input::Detached { sig, data } => {
            two_way(exit_code(Command::new("sqv").arg("--keyring").arg(keyring).arg(sig).arg(data)))
        }
        // sqv 1.1 cannot read cleartext.
        Input::Cleartext(_) => NotRun,
    }
}

fn sq(keyring: &Path, input: &Input) -> Verdict {
    let mut cmd = Command::new("sq");
    cmd.args(["verify", "--signer-cert"]).arg(keyring);
    match input {
        Input::Detached { sig, data } => cmd.arg("--detached").arg(sig).arg(data),
        Input::Cleartext(doc) => cmd.arg(doc),
    };
    two_way(exit_code(&mut cmd))
}

/// apt's gpgv method, spoken to as apt does (its acquire protocol on stdin).
/// Success is "201 URI Done". A failure that lists invalid signatures (BADSIG,
/// EXPKEYSIG, REVKEYSIG, a weak digest) is bad; any other (NO_PUBKEY only, or
/// "Signed file isn't valid" when gpgv found no signature it can read) means
/// nothing could be checked.
fn apt(keyring: &Path, input: &Input) -> Verdict {
    if !Path::new(APT_GPGV_METHOD).exists() {
        return NotRun;
    }
    let (sig, data) = match input {
        Input::Detached { sig, data } => (sig, data),
        Input::Cleartext(doc) => (doc, doc),
    };
    let armored = std::fs::read(sig).map(|b| b.starts_with(b"-----BEGIN PGP")).unwrap_or(false);
    if !armored {
        return NotRun; // "Detached signature file … is in unsupported binary format"
    }
    let request = format!(
        "600 URI Acquire\nURI: gpgv:{}\nFilename: {}\nSigned-By: {}\n\n",
        sig.display(),
        data.display(),
        keyring.display()
    );
    let mut child = Command::new(APT_GPGV_METHOD)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("running apt's gpgv method");
    child.stdin.take().expect("stdin").write_all(request.as_bytes()).expect("writing the request");
    let out = child.wait_with_output().expect("apt's gpgv method");
    let reply = String::from_utf8_lossy(&out.stdout);
    if reply.lines().any(|l| l.starts_with("201 URI Done")) {
        return Good;
    }
    let message = reply.lines().find_map(|l| l.strip_prefix("Message: ")).unwrap_or("").to_string();
    if message.contains("were invalid") || message.contains("invalid signature") {
        Bad
    } else {
        CannotVerify
    }
}

/// sequoia-openpgp 2.4, StandardPolicy, now: good if a signature verifies and
/// none by a known key fails; cannot verify if every signer is missing.
fn sequoia(keyring: &Path, input: &Input) -> Verdict {
    struct Helper {
        certs: Vec<openpgp::Cert>,
        good: usize,
        bad: usize,
    }
    impl VerificationHelper for Helper {
        fn get_certs(&mut self, _: &[openpgp::KeyHandle]) -> openpgp::Result<Vec<openpgp::Cert>> {
            Ok(self.certs.clone())
        }
        fn check(&mut self, structure: MessageStructure) -> openpgp::Result<()> {
            for layer in structure {
                if let MessageLayer::SignatureGroup { results } = layer {
                    for r in results {
                        match r {
                            Ok(_) => self.good += 1,
                            Err(VerificationError::MissingKey { .. }) => {}
                            Err(_) => self.bad += 1,
                        }
                    }
                }
            }
            Ok(())
        }
    }
    let keyring = std::fs::read(keyring).expect("keyring");
    let certs = openpgp::cert::CertParser::from_bytes(&keyring)
        .map(|p| p.filter_map(Result::ok).collect())
        .unwrap_or_default();
    let helper = Helper { certs, good: 0, bad: 0 };
    let p = StandardPolicy::new();
    let done = match input {
        Input::Detached { sig, data } => {
            let data = std::fs::read(data).expect("data");
            DetachedVerifierBuilder::from_file(sig).and_then(|b| b.with_policy(&p, None, helper)).and_then(
                |mut v| {
                    v.verify_bytes(&data)?;
                    Ok(v.into_helper())
                },
            )
        }
        Input::Cleartext(doc) => {
            VerifierBuilder::from_file(doc).and_then(|b| b.with_policy(&p, None, helper)).and_then(|mut v| {
                std::io::copy(&mut v, &mut std::io::sink())?;
                Ok(v.into_helper())
            })
        }
    };
    match done {
        Err(_) => CannotVerify,
        Ok(h) if h.bad > 0 => Bad,
        Ok(h) if h.good > 0 => Good,
        Ok(_) => CannotVerify,
    }
}

/// Does a reference's verdict agree with umd's? sqv's and sq's "not good" stands
/// for umd's bad and cannot-verify alike.
fn agrees(umd: Verdict, other: Verdict) -> bool {
    match other {
        NotRun => true,
        NotGood => umd == Bad || umd == CannotVerify,
        v => v == umd,
    }
}

/// A row as run.
struct Row {
    umd: Verdict,
    tools: [Verdict; 5],
}

fn run_reference(tool: Tool, gpg_home: &Path, keyring: &Path, input: &Input) -> Verdict {
    match tool {
        Gpgv => gpgv(gpg_home, keyring, input),
        Apt => apt(keyring, input),
        Sqv => sqv(keyring, input),
        Sq => sq(keyring, input),
        Sequoia => sequoia(keyring, input),
    }
}

/// Runs every case (on two threads: the machine has two cores), prints the table,
/// and fails with every disagreement that is not documented.
fn run_and_check(title: &str, cases: &[Case], skip: &[Tool]) {
    let home = tempfile::tempdir().expect("a home for gpgv");
    let rows: Vec<Row> = std::thread::scope(|s| {
        let chunks: Vec<_> = cases
            .chunks(cases.len().div_ceil(2).max(1))
            .map(|chunk| {
                let home = home.path();
                s.spawn(move || {
                    chunk
                        .iter()
                        .map(|c| Row {
                            umd: umd(&c.keyring, &c.input),
                            tools: TOOLS.map(|t| {
                                if skip.contains(&t) {
                                    NotRun
                                } else {
                                    run_reference(t, home, &c.keyring, &c.input)
                                }
                            }),
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        chunks.into_iter().flat_map(|h| h.join().expect("a runner thread")).collect()
    });

    let mut table = format!("\n{title}\n{:<58} {:>8}", "case", "umd");
    for t in TOOLS {
        table += &format!(" {t:>12}");
    }
    let mut failures = Vec::new();
    let mut notes = Vec::new();
    for (c, r) in cases.iter().zip(&rows) {
        table += &format!("\n{:<58} {:>8}", c.name, r.umd);
        if r.umd != c.umd {
            failures.push(format!("{}: umd says {}, expected {}", c.name, r.umd, c.umd));
        }
        for (t, v) in TOOLS.iter().zip(r.tools) {
            let documented = c.differs.iter().find(|(d, _, _)| d == t);
            let mark = match documented {
                Some((_, expected, why)) => {
                    if v != *expected && v != NotRun {
                        failures.push(format!(
                            "{}: {t} says {v}; the documented difference says {expected} ({why})",
                            c.name
                        ));
                    }
                    if !notes.contains(why) {
                        notes.push(*why);
                    }
                    let n = notes.iter().position(|w| w == why).unwrap_or(0) + 1;
                    if v == NotRun {
                        v.to_string()
                    } else {
                        format!("{v}[{n}]")
                    }
                }
                None => {
                    if !agrees(r.umd, v) {
                        failures.push(format!("{}: umd says {}, {t} says {v}", c.name, r.umd));
                    }
                    v.to_string()
                }
            };
            table += &format!(" {mark:>12}");
        }
    }
    for (i, why) in notes.iter().enumerate() {
        table += &format!("\n[{}] {why}", i + 1);
    }
    eprintln!("{table}");
    assert!(failures.is_empty(), "{}\n{table}", failures.join("\n"));
}

// ---------------------------------------------------------------------------
// Making the corpus.

/// The signed text: trailing whitespace, a dash-escaped line, a "From " line and
/// no final line ending exercise cleartext canonicalization.
const TEXT: &[u8] = b"Origin: umd differential test\nTrailing spaces   \n- a dashed line\n\
From the start of a line\n\nthe last line has no line ending";
/// For a text-mode detached signature: mixed line endings and trailing blanks,
/// which text mode converts to CR LF (and, unlike cleartext, keeps).
const CRLF_TEXT: &[u8] = b"dos line\r\nunix line\ntrailing tab\t\r\ntrailing space \nend\n";

fn write(path: &Path, bytes: &[u8]) -> PathBuf {
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    path.to_path_buf()
}

/// A copy of `from` with one bit flipped in its last byte (inside the last MPI of
/// a binary signature).
fn flip_last_bit(from: &Path, to: &Path) -> PathBuf {
    let mut b = std::fs::read(from).expect("reading");
    *b.last_mut().expect("not empty") ^= 1;
    write(to, &b)
}

/// A copy of a cleartext document with "differential" changed in its text.
fn tamper_text(from: &Path, to: &Path) -> PathBuf {
    let s = std::fs::read_to_string(from).expect("cleartext is UTF-8");
    assert!(s.contains("differential"));
    write(to, s.replacen("differential", "Differential", 1).as_bytes())
}

fn detached(sig: &Path, data: &Path) -> Input {
    Input::Detached { sig: sig.to_path_buf(), data: data.to_path_buf() }
}

/// How Sequoia should sign.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Form {
    Binary,
    Armored,
    Cleartext,
}

fn sequoia_sign(signer: KeyPair, data: &[u8], form: Form, created: Option<SystemTime>) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut m = Message::new(&mut out);
        if form == Form::Armored {
            m = Armorer::new(m).kind(openpgp::armor::Kind::Signature).build().expect("armorer");
        }
        let mut s = Signer::new(m, signer).expect("signer");
        if let Some(t) = created {
            s = s.creation_time(t);
        }
        let s = if form == Form::Cleartext { s.cleartext() } else { s.detached() };
        let mut w = s.build().expect("signer");
        w.write_all(data).expect("signing");
        w.finalize().expect("signing");
    }
    out
}

fn write_cert(cert: &openpgp::Cert, to: &Path) -> PathBuf {
    write(to, &cert.to_vec().expect("serializing a certificate"))
}

/// The v4 keys made by gpg, one per algorithm umd verifies.
const GPG_ALGOS: &[&str] = &["ed25519", "rsa3072", "nistp256", "nistp384", "nistp521"];

/// Every generated case. gpg makes the v4 keys it can; Sequoia makes what gpg
/// will not (a signing subkey without back-signature, a data signature by a key
/// not flagged for signing, a key without key flags, a soft revocation) and the
/// v6 keys. One test owns the corpus, so the keys are made once per run even under
/// cargo-nextest, which runs each test in a process of its own (where a `OnceLock`
/// shared by several tests would make them again in each).
fn corpus(dir: &Path) -> Vec<Case> {
    let f = |name: &str| dir.join(name);
    let gpg = Gpg::new(f("gnupg"));
    let data = write(&f("data.txt"), TEXT);
    let mut tampered = TEXT.to_vec();
    tampered[0] ^= 0x20; // "Origin" -> "origin"
    let tampered_data = write(&f("data-tampered.txt"), &tampered);
    let mut cases = Vec::new();

    // One key per algorithm: detached (binary, armored), cleartext, and tampered.
    for algo in GPG_ALGOS {
        let fpr = gpg.key(&format!("{algo} <{algo}@example.org>"), algo, "sign,cert", "never", &[]);
        let signer = format!("{fpr}!");
        let keyring = f(&format!("{algo}.pgp"));
        gpg.export(&fpr, &keyring);
        let (sig, asc, clear) =
            (f(&format!("{algo}.sig")), f(&format!("{algo}.asc")), f(&format!("{algo}.txt.asc")));
        gpg.sign(&[&signer], &["--detach-sign"], &data, &sig);
        gpg.sign(&[&signer], &["--detach-sign", "--armor"], &data, &asc);
        gpg.sign(&[&signer], &["--clearsign"], &data, &clear);
        let bad_sig = flip_last_bit(&sig, &f(&format!("{algo}-tampered.sig")));
        let bad_clear = tamper_text(&clear, &f(&format!("{algo}-tampered.txt.asc")));
        let k = &keyring;
        cases.extend([
            Case::new(format!("v4 {algo}: detached, binary"), k, detached(&sig, &data), Good),
            Case::new(format!("v4 {algo}: detached, armored"), k, detached(&asc, &data), Good),
            Case::new(format!("v4 {algo}: cleartext"), k, Input::Cleartext(clear.clone()), Good),
            Case::new(format!("v4 {algo}: tampered data"), k, detached(&sig, &tampered_data), Bad),
            Case::new(format!("v4 {algo}: tampered signature"), k, detached(&bad_sig, &data), Bad),
            Case::new(format!("v4 {algo}: tampered cleartext"), k, Input::Cleartext(bad_clear), Bad),
        ]);
    }
    let (ed, rsa) = (f("ed25519.pgp"), f("rsa3072.pgp"));
    let ed_fpr = format!("{}!", gpg.fingerprints("ed25519@example.org")[0]);
    let rsa_fpr = format!("{}!", gpg.fingerprints("rsa3072@example.org")[0]);
    let p256_fpr = format!("{}!", gpg.fingerprints("nistp256@example.org")[0]);

    // Signed by a key outside the keyring: ignored, so nothing can be verified.
    cases.push(Case::new("wrong key: detached", &rsa, detached(&f("ed25519.sig"), &data), CannotVerify));
    cases.push(Case::new("wrong key: cleartext", &rsa, Input::Cleartext(f("ed25519.txt.asc")), CannotVerify));

    // Two signatures, one by a key outside the keyring: the other decides.
    let two = f("two-signers.txt.asc");
    gpg.sign(&[&ed_fpr, &p256_fpr], &["--clearsign"], &data, &two);
    cases.push(
        Case::new("good + unknown-key signatures: cleartext", &ed, Input::Cleartext(two), Good).differs(
            &[Gpgv],
            CannotVerify,
            PARTIAL_KEYRING_GPGV,
        ),
    );

    // Text mode (signature type 0x01) over mixed line endings.
    let crlf = write(&f("crlf.txt"), CRLF_TEXT);
    let text_sig = f("crlf.txt.sig");
    gpg.sign(&[&rsa_fpr], &["--detach-sign", "--textmode"], &crlf, &text_sig);
    cases.push(Case::new("text-mode detached signature", &rsa, detached(&text_sig, &crlf), Good));

    // Text mode over stray CRs: where gpg and RFC 9580 readers part.
    let stray = write(&f("stray-cr.txt"), b"two CRs\r\r\na lone CR\rinside\nends with a CR\r");
    let stray_sig = f("stray-cr.txt.sig.asc");
    gpg.sign(&[&rsa_fpr], &["--detach-sign", "--textmode", "--armor"], &stray, &stray_sig);
    cases.push(
        Case::new("text-mode detached signature, stray CRs", &rsa, detached(&stray_sig, &stray), Bad)
            .differs(&[Gpgv, Apt], Good, GPG_TEXT_FILTER),
    );

    // SHA-1.
    let (sha1_sig, sha1_clear) = (f("sha1.sig.asc"), f("sha1.txt.asc"));
    gpg.sign(&[&rsa_fpr], &["--digest-algo", "SHA1", "--detach-sign", "--armor"], &data, &sha1_sig);
    gpg.sign(&[&rsa_fpr], &["--digest-algo", "SHA1", "--clearsign"], &data, &sha1_clear);
    cases.push(Case::new("SHA-1: detached", &rsa, detached(&sha1_sig, &data), Bad).differs(
        &[Gpgv],
        Good,
        SHA1_GPGV,
    ));
    cases.push(Case::new("SHA-1: cleartext", &rsa, Input::Cleartext(sha1_clear), Bad).differs(
        &[Gpgv],
        Good,
        SHA1_GPGV,
    ));

    // SHA2-224, and SHA2-512 in a cleartext document (its "Hash:" header).
    let (sha224_sig, sha512_clear) = (f("sha224.sig.asc"), f("sha512.txt.asc"));
    gpg.sign(&[&rsa_fpr], &["--digest-algo", "SHA224", "--detach-sign", "--armor"], &data, &sha224_sig);
    gpg.sign(&[&rsa_fpr], &["--digest-algo", "SHA512", "--clearsign"], &data, &sha512_clear);
    cases.push(Case::new("SHA2-224: detached", &rsa, detached(&sha224_sig, &data), Bad).differs(
        &[Gpgv, Apt, Sqv, Sq, Sequoia],
        Good,
        SHA224,
    ));
    cases.push(Case::new("SHA2-512: cleartext", &rsa, Input::Cleartext(sha512_clear), Good));

    // A cleartext document with CR LF line endings.
    let dos = write(&f("dos.txt"), b"dos line\r\ntrailing blanks \t\r\n- dashed\r\nend\r\n");
    let dos_clear = f("dos.txt.asc");
    gpg.sign(&[&ed_fpr], &["--clearsign"], &dos, &dos_clear);
    cases.push(Case::new("cleartext with CR LF line endings", &ed, Input::Cleartext(dos_clear), Good));

    // A good and a bad signature (by the same keyring key) in one file.
    let mut both = std::fs::read(f("ed25519.sig")).expect("signature");
    both.extend(std::fs::read(f("ed25519-tampered.sig")).expect("signature"));
    let both = write(&f("good-and-bad.sig"), &both);
    cases.push(Case::new("good + bad signatures in one file", &ed, detached(&both, &data), Bad).differs(
        &[Sqv],
        Good,
        SQV_COUNTS_GOOD,
    ));

    // A critical notation umd does not understand (RFC 9580 §5.2.3.7: invalid).
    let crit = f("critical-notation.sig");
    gpg.sign(&[&ed_fpr], &["--sig-notation", "!critical@example.org=1", "--detach-sign"], &data, &crit);
    cases.push(Case::new("unknown critical notation", &ed, detached(&crit, &data), Bad));

    // A signature dated tomorrow.
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).expect("clock").as_secs();
    let tomorrow = format!("{}!", now + 86_400);
    let future = f("future.sig.asc");
    gpg.sign(&[&ed_fpr], &["--faked-system-time", &tomorrow, "--detach-sign", "--armor"], &data, &future);
    cases.push(Case::new("signature created tomorrow", &ed, detached(&future, &data), Bad).differs(
        &[Gpgv, Apt],
        Good,
        FUTURE_GPGV,
    ));

    // An expired signature (valid for a day, made 30 days ago by a key that does
    // not expire).
    let then = now - 30 * 86_400;
    let (made, signed) = (format!("{then}!"), format!("{}!", then + 3600));
    let old_fpr =
        gpg.key("old <old@example.org>", "ed25519", "sign,cert", "never", &["--faked-system-time", &made]);
    let old = f("old.pgp");
    gpg.export(&old_fpr, &old);
    let old_sig = f("expired-signature.sig.asc");
    let signer = format!("{old_fpr}!");
    let how = ["--faked-system-time", &signed, "--default-sig-expire", "1d", "--detach-sign", "--armor"];
    gpg.sign(&[&signer], &how, &data, &old_sig);
    cases.push(Case::new("expired signature", &old, detached(&old_sig, &data), Bad));

    // An expired key: made 30 days ago to last a day, signed with while valid.
    let exp_fpr = gpg.key(
        "expired <expired@example.org>",
        "ed25519",
        "sign,cert",
        "1d",
        &["--faked-system-time", &made],
    );
    let exp = f("expired.pgp");
    gpg.export(&exp_fpr, &exp);
    let (exp_sig, exp_clear) = (f("expired.sig"), f("expired.txt.asc"));
    let signer = format!("{exp_fpr}!");
    gpg.sign(&[&signer], &["--faked-system-time", &signed, "--detach-sign", "--armor"], &data, &exp_sig);
    gpg.sign(&[&signer], &["--faked-system-time", &signed, "--clearsign"], &data, &exp_clear);
    for (name, input) in [
        ("expired key: detached", detached(&exp_sig, &data)),
        ("expired key: cleartext", Input::Cleartext(exp_clear)),
    ] {
        cases.push(Case::new(name, &exp, input, Bad).differs(&[Gpgv], Good, EXPIRED_GPGV).differs(
            &[Sqv, Sq, Sequoia],
            Good,
            EXPIRED_SEQUOIA,
        ));
    }

    // A revoked key (gpg's own revocation certificate: no reason given, hence hard).
    let rev_fpr = gpg.key("revoked <revoked@example.org>", "ed25519", "sign,cert", "never", &[]);
    let (rev_sig, rev_clear) = (f("revoked.sig.asc"), f("revoked.txt.asc"));
    let signer = format!("{rev_fpr}!");
    gpg.sign(&[&signer], &["--detach-sign", "--armor"], &data, &rev_sig);
    gpg.sign(&[&signer], &["--clearsign"], &data, &rev_clear);
    let revocation = std::fs::read_to_string(gpg.home.join(format!("openpgp-revocs.d/{rev_fpr}.rev")))
        .expect("gpg's revocation certificate");
    // gpg guards it against accidental import with a ':' before the armor line.
    let revocation = write(&f("revoked.rev"), revocation.replace(":-----BEGIN", "-----BEGIN").as_bytes());
    gpg.run(&["--import", revocation.to_str().expect("UTF-8")]);
    let rev = f("revoked.pgp");
    gpg.export(&rev_fpr, &rev);
    for (name, input) in [
        ("revoked key: detached", detached(&rev_sig, &data)),
        ("revoked key: cleartext", Input::Cleartext(rev_clear)),
    ] {
        cases.push(Case::new(name, &rev, input, Bad).differs(&[Gpgv], Good, REVOKED_GPGV));
    }

    // A signing subkey with its back-signature (gpg always makes one), under a
    // certification-only primary.
    let sub_fpr = gpg.key("subkey <subkey@example.org>", "nistp384", "cert", "never", &[]);
    gpg.run(&["--quick-add-key", &sub_fpr, "ed25519", "sign", "never"]);
    let subkey = format!("{}!", gpg.fingerprints("subkey@example.org")[1]);
    let sub = f("subkey.pgp");
    gpg.export(&sub_fpr, &sub);
    let (sub_sig, sub_clear) = (f("subkey.sig"), f("subkey.txt.asc"));
    gpg.sign(&[&subkey], &["--detach-sign"], &data, &sub_sig);
    gpg.sign(&[&subkey], &["--clearsign"], &data, &sub_clear);
    cases.push(Case::new(
        "signing subkey with back-signature: detached",
        &sub,
        detached(&sub_sig, &data),
        Good,
    ));
    cases.push(Case::new(
        "signing subkey with back-signature: cleartext",
        &sub,
        Input::Cleartext(sub_clear),
        Good,
    ));

    cases.extend(sequoia_v4_cases(dir, &data));
    // Sequoia's pure-Rust RSA key generation takes 20 to 40 s in a debug build:
    // the v6 RSA key gets the material of gpg's RSA key instead.
    let rsa_secret = gpg.run(&["--export-secret-keys", rsa_fpr.trim_end_matches('!')]);
    cases.extend(v6_cases(dir, &data, &tampered_data, &rsa_secret));
    cases
}

/// v4 keys gpg will not make.
fn sequoia_v4_cases(dir: &Path, data: &Path) -> Vec<Case> {
    let f = |name: &str| dir.join(name);
    let text = std::fs::read(data).expect("data");
    let mut cases = Vec::new();

    // A signing subkey bound without the back-signature (the subkey's own
    // signature over the binding, RFC 9580 §5.2.1): anyone could so claim someone
    // else's signing key.
    let (cert, _) = CertBuilder::new()
        .set_cipher_suite(CipherSuite::Cv25519)
        .set_primary_key_flags(KeyFlags::empty().set_certification())
        .add_userid("no back-signature <nobacksig@example.org>")
        .generate()
        .expect("a certificate");
    let sub: Key<SecretParts, SubordinateRole> =
        Key4::generate_ecc(true, Curve::Ed25519).expect("an Ed25519 key").into();
    let binding = SignatureBuilder::new(SignatureType::SubkeyBinding)
        .set_key_flags(KeyFlags::empty().set_signing())
        .expect("key flags")
        .sign_subkey_binding(&mut primary_keypair(&cert), None, &sub)
        .expect("a binding without back-signature");
    let (cert, _) = cert
        .insert_packets([Packet::from(sub.clone().parts_into_public()), Packet::from(binding)])
        .expect("adding the subkey");
    let keyring = write_cert(&cert, &f("nobacksig.pgp"));
    let kp = || sub.clone().into_keypair().expect("keypair");
    let sig = write(&f("nobacksig.sig"), &sequoia_sign(kp(), &text, Form::Binary, None));
    let clear = write(&f("nobacksig.txt.asc"), &sequoia_sign(kp(), &text, Form::Cleartext, None));
    cases.push(
        Case::new("signing subkey without back-signature: detached", &keyring, detached(&sig, data), Bad)
            .differs(&[Gpgv], CannotVerify, UNUSABLE_KEY_GPGV),
    );
    cases.push(
        Case::new("signing subkey without back-signature: cleartext", &keyring, Input::Cleartext(clear), Bad)
            .differs(&[Gpgv], CannotVerify, UNUSABLE_KEY_GPGV),
    );

    // A primary key flagged for certification only, signing data.
    let (cert, _) = CertBuilder::new()
        .set_cipher_suite(CipherSuite::Cv25519)
        .set_primary_key_flags(KeyFlags::empty().set_certification())
        .add_userid("certifies only <certonly@example.org>")
        .generate()
        .expect("a certificate");
    let keyring = write_cert(&cert, &f("certonly.pgp"));
    let sig = write(&f("certonly.sig"), &sequoia_sign(primary_keypair(&cert), &text, Form::Binary, None));
    cases.push(
        Case::new("key not flagged for signing: detached", &keyring, detached(&sig, data), Bad).differs(
            &[Gpgv],
            CannotVerify,
            UNUSABLE_KEY_GPGV,
        ),
    );

    // A primary key whose self-signature has no key flags subpacket at all, as
    // GnuPG 1.x and PGP made them.
    let key: Key<SecretParts, PrimaryRole> =
        Key4::generate_ecc(true, Curve::Ed25519).expect("an Ed25519 key").into();
    let mut kp = key.clone().into_keypair().expect("keypair");
    let uid = UserID::from("no key flags <noflags@example.org>");
    let binding = SignatureBuilder::new(SignatureType::PositiveCertification)
        .sign_userid_binding(&mut kp, key.parts_as_public(), &uid)
        .expect("a user ID binding");
    let packets: Vec<Packet> = vec![key.clone().into(), uid.into(), binding.into()];
    let cert = openpgp::Cert::from_packets(packets.into_iter()).expect("a certificate");
    let keyring = write_cert(&cert, &f("noflags.pgp"));
    let sig = write(&f("noflags.sig"), &sequoia_sign(kp, &text, Form::Binary, None));
    cases.push(Case::new("key without key flags: detached", &keyring, detached(&sig, data), Bad).differs(
        &[Gpgv],
        Good,
        NO_KEY_FLAGS_GPGV,
    ));

    // A soft revocation ("superseded") made after the signature.
    let now = SystemTime::now();
    let (cert, _) = CertBuilder::new()
        .set_cipher_suite(CipherSuite::Cv25519)
        .set_creation_time(now - Duration::from_secs(7200))
        .set_primary_key_flags(KeyFlags::empty().set_certification().set_signing())
        .add_userid("superseded <superseded@example.org>")
        .generate()
        .expect("a certificate");
    let an_hour_ago = Some(now - Duration::from_secs(3600));
    let sig = sequoia_sign(primary_keypair(&cert), &text, Form::Armored, an_hour_ago);
    let sig = write(&f("superseded.sig.asc"), &sig);
    let revocation = cert
        .revoke(&mut primary_keypair(&cert), ReasonForRevocation::KeySuperseded, b"superseded by a newer key")
        .expect("a revocation");
    let (cert, _) = cert.insert_packets([revocation]).expect("revoking");
    let keyring = write_cert(&cert, &f("superseded.pgp"));
    cases.push(
        Case::new("soft-revoked key, signed before: detached", &keyring, detached(&sig, data), Bad)
            .differs(&[Gpgv], Good, REVOKED_GPGV)
            .differs(&[Sqv, Sq, Sequoia], Good, SOFT_REVOKED_SEQUOIA),
    );
    cases
}

/// A v6 certificate whose primary key signs and certifies, made from the (v4)
/// secret key in `tsk` — RSA material gpg generated in a fraction of the time.
fn v6_from_material(tsk: &[u8], uid: &str) -> openpgp::Cert {
    let v4 = openpgp::Cert::from_bytes(tsk).expect("gpg's secret key");
    let k = v4.primary_key().key().clone().parts_into_secret().expect("an unprotected secret key");
    let key: Key<SecretParts, PrimaryRole> =
        Key6::with_secret(k.creation_time(), k.pk_algo(), k.mpis().clone(), k.secret().clone())
            .expect("a v6 key")
            .into();
    let mut signer = key.clone().into_keypair().expect("keypair");
    let direct = SignatureBuilder::new(SignatureType::DirectKey)
        .set_key_flags(KeyFlags::empty().set_certification().set_signing())
        .expect("key flags")
        .sign_direct_key(&mut signer, None)
        .expect("a direct-key signature");
    let uid = UserID::from(uid);
    let binding = SignatureBuilder::new(SignatureType::PositiveCertification)
        .sign_userid_binding(&mut signer, key.parts_as_public(), &uid)
        .expect("a user ID binding");
    let packets: Vec<Packet> = vec![key.into(), direct.into(), uid.into(), binding.into()];
    openpgp::Cert::from_packets(packets.into_iter()).expect("a v6 certificate")
}

/// v6 keys, which gpg 2.2 cannot make: one per algorithm, each signing with the
/// key its certificate flags for signing (Sequoia's: a subkey, with
/// back-signature; the RSA one: the primary).
fn v6_cases(dir: &Path, data: &Path, tampered_data: &Path, rsa_tsk: &[u8]) -> Vec<Case> {
    let f = |name: &str| dir.join(name);
    let text = std::fs::read(data).expect("data");
    let mut cases = Vec::new();
    for (name, suite, umd) in [
        ("ed25519", Some(CipherSuite::Cv25519), Good),
        ("nistp256", Some(CipherSuite::P256), Good),
        ("nistp384", Some(CipherSuite::P384), Good),
        ("nistp521", Some(CipherSuite::P521), Good),
        ("rsa3072", None, Good),
        ("ed448", Some(CipherSuite::Cv448), Bad),
    ] {
        let uid = format!("v6 {name} <v6-{name}@example.org>");
        let cert = match suite {
            Some(suite) => {
                CertBuilder::new()
                    .set_profile(openpgp::Profile::RFC9580)
                    .expect("the RFC 9580 profile")
                    .set_cipher_suite(suite)
                    .add_userid(uid)
                    .add_signing_subkey()
                    .generate()
                    .unwrap_or_else(|e| panic!("a v6 {name} certificate: {e}"))
                    .0
            }
            None => v6_from_material(rsa_tsk, &uid),
        };
        let k = write_cert(&cert, &f(&format!("v6-{name}.pgp")));
        let sign =
            |form, file: &str| write(&f(file), &sequoia_sign(signing_keypair(&cert), &text, form, None));
        let sig = sign(Form::Binary, &format!("v6-{name}.sig"));
        let asc = sign(Form::Armored, &format!("v6-{name}.sig.asc"));
        let clear = sign(Form::Cleartext, &format!("v6-{name}.txt.asc"));
        let mut rows = vec![
            Case::new(format!("v6 {name}: detached, binary"), &k, detached(&sig, data), umd),
            Case::new(format!("v6 {name}: detached, armored"), &k, detached(&asc, data), umd),
            Case::new(format!("v6 {name}: cleartext"), &k, Input::Cleartext(clear), umd),
        ];
        if name == "ed25519" {
            rows.push(Case::new("v6 ed25519: tampered data", &k, detached(&sig, tampered_data), Bad));
        }
        for mut c in rows {
            c = c.differs(&[Gpgv, Apt], CannotVerify, V6_OLD_TOOLS).differs(
                &[Sqv, Sq],
                NotGood,
                V6_OLD_TOOLS,
            );
            if name == "ed448" {
                c = c.differs(&[Sequoia], Good, ED448);
            }
            cases.push(c);
        }
    }
    cases
}

// ---------------------------------------------------------------------------
// The tests.

#[test]
fn verdicts_on_generated_keys_and_signatures_agree_with_gpgv_sqv_sq_and_sequoia() {
    if !tools_present("differential tests on generated keys", true) {
        return;
    }
    let dir = tempfile::tempdir().expect("a directory for the corpus");
    let cases = corpus(dir.path());
    run_and_check("generated corpus", &cases, &[]);
}

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../umd-pgp/tests/fixtures");

#[test]
fn verdicts_on_the_committed_debian_files_agree_with_gpgv_sq_and_apt() {
    if !tools_present("differential tests on Debian's files", false) {
        return;
    }
    let fixtures = Path::new(FIXTURES);
    let keyring = fixtures.join("debian-archive-keyring.gpg");
    let dir = tempfile::tempdir().expect("a scratch directory");
    let bookworm = fixtures.join("bookworm_InRelease");
    let security = fixtures.join("bookworm-security_InRelease");
    let tampered = dir.path().join("tampered_InRelease");
    let doc = std::fs::read_to_string(&bookworm).expect("the fixture");
    write(&tampered, doc.replacen("Origin: Debian", "Origin: debian", 1).as_bytes());
    // The bookworm release key alone: the main InRelease's other two signatures
    // are by keys outside this keyring.
    let release_key = dir.path().join("bookworm-release-key.pgp");
    let all = openpgp::cert::CertParser::from_file(&keyring).expect("the fixture keyring");
    let cert = all
        .filter_map(Result::ok)
        .find(|c| c.fingerprint().to_hex() == "4D64FEC119C2029067D6E791F8D2585B8783D481")
        .expect("the bookworm release key");
    write_cert(&cert, &release_key);

    let cases = [
        Case::new("fixture: bookworm InRelease", &keyring, Input::Cleartext(bookworm.clone()), Good),
        Case::new("fixture: bookworm-security InRelease", &keyring, Input::Cleartext(security.clone()), Good),
        Case::new("fixture: bookworm InRelease, text changed", &keyring, Input::Cleartext(tampered), Bad),
        Case::new(
            "fixture: bookworm InRelease, release key only",
            &release_key,
            Input::Cleartext(bookworm),
            Good,
        )
        .differs(&[Gpgv], CannotVerify, PARTIAL_KEYRING_GPGV),
        Case::new(
            "fixture: bookworm-security, release key only",
            &release_key,
            Input::Cleartext(security),
            CannotVerify,
        ),
    ];
    run_and_check("Debian fixtures", &cases, &[]);
}

#[test]
fn verdicts_on_this_machines_apt_lists_agree_with_gpgv_sq_and_apt() {
    let lists = common::apt_inrelease_lists();
    let keyrings: Vec<PathBuf> = std::fs::read_dir("/usr/share/keyrings")
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("debian-archive-")))
                .filter(|p| p.extension().is_some_and(|e| e == "gpg"))
                .collect()
        })
        .unwrap_or_default();
    if lists.is_empty() || keyrings.is_empty() {
        // Not an error: a machine without apt lists or Debian keyrings.
        eprintln!("no InRelease under /var/lib/apt/lists or no Debian keyring: nothing live to compare");
        return;
    }
    if !tools_present("differential tests on the live apt lists", false) {
        return;
    }
    let (mut lists, mut keyrings) = (lists, keyrings);
    lists.sort();
    keyrings.sort();
    // umd first, one run per keyring (`--each`: one warm handler for all files),
    // to know what each case expects; then the references must agree, gpgv's
    // partial-keyring exit status excepted.
    let home = tempfile::tempdir().expect("a home for gpgv");
    let mut cases = Vec::new();
    for k in &keyrings {
        let out = Command::new(env!("CARGO_BIN_EXE_umd"))
            .env_remove("RUST_LOG")
            .args(["verify", "--each", "--json", "--keyring"])
            .arg(k)
            .args(&lists)
            .output()
            .expect("running umd");
        let statuses: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON record per file"))
            .collect();
        assert_eq!(statuses.len(), lists.len(), "{}", String::from_utf8_lossy(&out.stderr));
        for (file, record) in lists.iter().zip(statuses) {
            let umd = match record["status"].as_str() {
                Some("verified") => Good,
                Some("bad") => Bad,
                _ => CannotVerify,
            };
            let short = |p: &Path, cut: &[&str]| {
                let mut s = p.file_name().unwrap_or_default().to_string_lossy().into_owned();
                for c in cut {
                    s = s.replace(c, "");
                }
                s
            };
            let name = format!(
                "{} / {}",
                short(k, &["debian-archive-", ".gpg"]),
                short(file, &["deb.debian.org_", "_dists", "_InRelease"])
            );
            let mut c = Case::new(name, k, Input::Cleartext(file.clone()), umd);
            let gpgv_says = gpgv(home.path(), k, &c.input);
            if umd == Good && gpgv_says == CannotVerify {
                c = c.differs(&[Gpgv], CannotVerify, PARTIAL_KEYRING_GPGV);
            }
            cases.push(c);
        }
    }
    // Sequoia's debug build is slow on RSA-4096 keyrings; sq is the same verifier.
    run_and_check("this machine's apt lists and Debian keyrings", &cases, &[Sequoia]);
}
