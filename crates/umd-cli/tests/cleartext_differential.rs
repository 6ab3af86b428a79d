//! Cleartext framing, differentially: `umd verify --output` against
//! `/usr/bin/gpgv --output` on documents made from real `InRelease` files.
//!
//! Each row is a document — a real `InRelease` (the committed Debian fixtures,
//! and this machine's `/var/lib/apt/lists` when it has any) changed in one way
//! that keeps or breaks what gpgv accepts: trailing whitespace, CR LF line
//! endings, dash-escapes needed and needless, armor headers allowed and not, a
//! `Hash:` header that disagrees with the signatures, text before and after
//! the armor, several signature blocks. Rows that need dashes in the signed
//! text, or two hash algorithms, are signed here by gpg over a real
//! `InRelease` text.
//!
//! The rule: where gpgv accepts (exit 0), umd accepts and `--output` writes the
//! same text (gpgv keeps a CR before a line's LF where the document had one;
//! umd writes LF line endings, so gpgv's CR LF is compared as LF); where gpgv
//! refuses, umd refuses. Where umd is stricter the row says so and why (the
//! README says it too), and gpgv must then accept: a stale explanation fails.
//!
//! `umd gpgv --status-fd 1 --output` runs on every row too. It must give
//! `umd verify`'s verdict and text, and gpgv's status lines: exactly where
//! umd reads the framing (a `Hash:` header that does not announce a
//! signature's hash included: gpgv's `ERRSIG … 1` for that signature); where
//! umd refuses the framing itself, `NODATA 1`, `NODATA 4` (and `UNEXPECTED 0`
//! for a packet other than a signature), as docs/gpgv.md says.
//! The table is printed (`--nocapture`).

mod common;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const GPGV: &str = "/usr/bin/gpgv";
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../umd-pgp/tests/fixtures");

/// Why umd refuses unsigned text that gpgv ignores.
const UNSIGNED_TEXT: &str = "umd refuses unsigned text beside a cleartext document (gpgv ignores it): a \
     reader, or a parser such as apt's, sees it as part of the document; apt refuses such files too";

/// Why umd refuses hash names gpg takes by a prefix.
const HASH_PREFIX: &str = "gpg takes a prefix of a hash name for the first name it matches (\"SHA2\" for \
     SHA224, \"SHA\" for SHA1); umd wants the names of RFC 9580 spelled in full";
/// Why umd decodes the signature armor strictly.
const STRICT_ARMOR: &str = "gpg ignores text between an armor block's checksum line and its END line (and \
     skips some other non-base64 lines); umd refuses such a block: it was changed after it was armored";

/// umd's verdict on a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Accept,
    Refuse,
}
use common::gpg::Gpg;
use Verdict::*;

struct Case {
    name: String,
    keyring: PathBuf,
    doc: Vec<u8>,
    umd: Verdict,
    /// umd refuses what gpgv accepts, and why.
    stricter: Option<&'static str>,
}

fn case(name: impl Into<String>, keyring: &Path, doc: Vec<u8>, umd: Verdict) -> Case {
    Case { name: name.into(), keyring: keyring.to_path_buf(), doc, umd, stricter: None }
}

fn required() -> bool {
    std::env::var("UMD_REQUIRE_SANDBOX").as_deref() == Ok("1")
}

/// gpgv and gpg are installed, or a loud skip (a failure under UMD_REQUIRE_SANDBOX=1).
fn tools_present() -> bool {
    let gpg =
        Command::new("gpg").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok();
    if Path::new(GPGV).exists() && gpg {
        return true;
    }
    if required() {
        panic!(
            "UMD_REQUIRE_SANDBOX=1 but {GPGV} or gpg is not installed (scripts/test installs gpgv and gnupg)"
        );
    }
    let bar = "!".repeat(80);
    eprintln!("\n{bar}\n!!! SKIPPED: cleartext differential test: {GPGV} or gpg not installed\n{bar}");
    false
}

// ---------------------------------------------------------------------------
// Changing a document.

/// A cleartext document's parts: header block (with its blank line), text
/// (with the line ending before the signature), signature block.
struct Doc<'a> {
    head: &'a [u8],
    text: &'a [u8],
    sig: &'a [u8],
}

fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).position(|w| w == needle).expect("part of a cleartext document")
}

fn parts(doc: &[u8]) -> Doc<'_> {
    let text_at = find(doc, b"\n\n") + 2;
    let sig_at = find(doc, b"\n-----BEGIN PGP SIGNATURE-----") + 1;
    Doc { head: &doc[..text_at], text: &doc[text_at..sig_at], sig: &doc[sig_at..] }
}

fn replace(doc: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let at = find(doc, from);
    [&doc[..at], to, &doc[at + from.len()..]].concat()
}

/// Every line of the text (not the line ending before the signature) changed by `f`.
fn map_text_lines(doc: &[u8], f: impl Fn(usize, &[u8]) -> Vec<u8>) -> Vec<u8> {
    let d = parts(doc);
    let body = &d.text[..d.text.len() - 1];
    let lines: Vec<Vec<u8>> = body.split(|&b| b == b'\n').enumerate().map(|(i, l)| f(i, l)).collect();
    [d.head, &lines.join(&b'\n'), b"\n", d.sig].concat()
}

/// The variants made from one real `InRelease` signed with SHA256 (Debian's).
fn variants(name: &str, keyring: &Path, doc: &[u8]) -> Vec<Case> {
    let d = parts(doc);
    let n = |what: &str| format!("{name}: {what}");
    let with_head = |head: &[u8]| [head, d.text, d.sig].concat();
    let mut cases = vec![
        case(n("as is"), keyring, doc.to_vec(), Accept),
        case(
            n("trailing spaces and tabs (not signed)"),
            keyring,
            map_text_lines(doc, |i, l| if i % 3 == 0 { [l, b" \t "].concat() } else { l.to_vec() }),
            Accept,
        ),
        case(
            n("trailing CRs and blanks (\" \\r \\r\")"),
            keyring,
            map_text_lines(doc, |i, l| if i % 5 == 1 { [l, b" \r \r"].concat() } else { l.to_vec() }),
            Accept,
        ),
        case(n("CR LF line endings"), keyring, doc.iter().flat_map(|&b| crlf(b)).collect(), Accept),
        case(
            n("CR LF in the text only"),
            keyring,
            [d.head, &d.text.iter().flat_map(|&b| crlf(b)).collect::<Vec<_>>(), d.sig].concat(),
            Accept,
        ),
        case(
            n("needless dash-escapes on every line"),
            keyring,
            map_text_lines(doc, |_, l| [b"- ", l].concat()),
            Accept,
        ),
        case(
            n("blank lines before and after"),
            keyring,
            [b"\n \n".as_slice(), doc, b"\n\n"].concat(),
            Accept,
        ),
        case(
            n("trailing blanks on the armor lines"),
            keyring,
            replace(
                &replace(doc, b"MESSAGE-----\n", b"MESSAGE----- \t\n"),
                b"BEGIN PGP SIGNATURE-----\n",
                b"BEGIN PGP SIGNATURE-----  \n",
            ),
            Accept,
        ),
        case(
            n("a Comment: header"),
            keyring,
            with_head(&replace(d.head, b"\n\n", b"\nComment: hello\n\n")),
            Refuse,
        ),
        case(
            n("a Version: header"),
            keyring,
            with_head(&replace(d.head, b"\n\n", b"\nVersion: 1\n\n")),
            Refuse,
        ),
        case(
            n("Hash: SHA512 (the signatures use SHA256)"),
            keyring,
            with_head(&replace(d.head, b"SHA256", b"SHA512")),
            Refuse,
        ),
        case(n("no Hash: header"), keyring, with_head(b"-----BEGIN PGP SIGNED MESSAGE-----\n\n"), Refuse),
        case(
            n("Hash: SHA512, SHA256"),
            keyring,
            with_head(&replace(d.head, b"SHA256", b"SHA512, SHA256")),
            Accept,
        ),
        case(
            n("two Hash: headers"),
            keyring,
            with_head(&replace(d.head, b"SHA256", b"SHA512\nHash: SHA256")),
            Accept,
        ),
        case(
            n("Hash: SHA256, (a trailing comma)"),
            keyring,
            with_head(&replace(d.head, b"SHA256", b"SHA256,")),
            Accept,
        ),
        case(n("hash: (lower case)"), keyring, with_head(&replace(d.head, b"Hash:", b"hash:")), Refuse),
        case(n("Hash: FOO, SHA256"), keyring, with_head(&replace(d.head, b"SHA256", b"FOO, SHA256")), Refuse),
        case(n("Hash: MD5, SHA256"), keyring, with_head(&replace(d.head, b"SHA256", b"MD5, SHA256")), Refuse),
        case(
            n("no blank line after the headers"),
            keyring,
            with_head(&replace(d.head, b"\n\n", b"\n")),
            Refuse,
        ),
        case(
            n("a changed byte in the text"),
            keyring,
            replace(doc, b"Origin: Debian", b"Origin: debian"),
            Refuse,
        ),
        case(n("the signature block twice"), keyring, [doc, d.sig].concat(), Accept),
        case(
            n("an armor header in the signature block"),
            keyring,
            replace(doc, b"-----BEGIN PGP SIGNATURE-----\n", b"-----BEGIN PGP SIGNATURE-----\nComment: x\n"),
            Accept,
        ),
        case(
            n("no blank line after BEGIN PGP SIGNATURE"),
            keyring,
            replace(doc, b"-----BEGIN PGP SIGNATURE-----\n\n", b"-----BEGIN PGP SIGNATURE-----\n"),
            Refuse,
        ),
        case(n("a second signed message after the first"), keyring, [doc, doc].concat(), Refuse),
        case(
            n("a literal data packet in the signature block"),
            keyring,
            [d.head, d.text, &rearmored(d.sig, |sigs| [sigs, LITERAL].concat())].concat(),
            Refuse,
        ),
        case(
            n("a marker packet in the signature block"),
            keyring,
            [d.head, d.text, &rearmored(d.sig, |sigs| [MARKER, sigs].concat())].concat(),
            Accept,
        ),
    ];
    for (what, doc, why) in [
        (
            "Hash: SHA2, SHA256 (a prefix of SHA224)",
            with_head(&replace(d.head, b"SHA256", b"SHA2, SHA256")),
            HASH_PREFIX,
        ),
        (
            "text after the armor checksum line",
            replace(doc, b"\n-----END PGP SIGNATURE", b"\nAAAA\n-----END PGP SIGNATURE"),
            STRICT_ARMOR,
        ),
    ] {
        cases.push(Case { stricter: Some(why), ..case(n(what), keyring, doc, Refuse) });
    }
    let checksum_at = find(d.sig, b"\n=") + 1;
    let mid = find(d.sig, b"\n\n") + 2 + 65; // after the first base64 line
    let early_checksum =
        [d.head, d.text, &d.sig[..mid], &d.sig[checksum_at..checksum_at + 6], &d.sig[mid..]].concat();
    cases.push(case(n("a checksum line amid the armor data"), keyring, early_checksum, Refuse));
    for (what, doc) in [
        ("text before the armor", [b"Unsigned: yes\n".as_slice(), doc].concat()),
        ("text after the armor", [doc, b"Unsigned: yes\n"].concat()),
        ("text between two signature blocks", [doc, b"Unsigned: yes\n", d.sig].concat()),
    ] {
        cases.push(Case { stricter: Some(UNSIGNED_TEXT), ..case(n(what), keyring, doc, Refuse) });
    }
    cases
}

/// A literal data packet ("evil", binary): a signed message of its own.
const LITERAL: &[u8] = b"\xcb\x0ab\0\0\0\0\0evil";
/// A marker packet ("PGP"), which means nothing.
const MARKER: &[u8] = b"\xca\x03PGP";

/// A signature block's packets, changed by `f` and armored again.
fn rearmored(block: &[u8], f: impl Fn(&[u8]) -> Vec<u8>) -> Vec<u8> {
    use std::io::Write as _;
    let sigs: Vec<u8> = umd_pgp::armor::decode_all(block).unwrap().into_iter().flat_map(|b| b.data).collect();
    let mut out = Vec::new();
    let mut w =
        sequoia_openpgp::armor::Writer::new(&mut out, sequoia_openpgp::armor::Kind::Signature).unwrap();
    w.write_all(&f(&sigs)).unwrap();
    w.finalize().unwrap();
    out
}

fn crlf(b: u8) -> Vec<u8> {
    if b == b'\n' {
        b"\r\n".to_vec()
    } else {
        vec![b]
    }
}

// ---------------------------------------------------------------------------
// Documents signed here.

/// Rows signed here over a real `InRelease` text: dash-escapes, and two hash
/// algorithms in two signature blocks.
fn signed_here(dir: &Path, text: &[u8]) -> Vec<Case> {
    let home = dir.join("gnupg");
    std::fs::create_dir(&home).unwrap();
    std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let gpg = Gpg::new(home);
    for who in ["a", "b"] {
        gpg.run(&["--quick-gen-key", &format!("{who} <{who}@umd.invalid>"), "ed25519", "sign", "never"]);
    }
    let keyring = dir.join("here.gpg");
    std::fs::write(&keyring, gpg.run(&["--export"])).unwrap();
    // Lines that need an escape (they start with '-') among real ones.
    let dashed = [
        text,
        b"- a list item\n-----BEGIN PGP SIGNATURE-----\n-----\n--\n-x\n-----END PGP SIGNATURE-----\nlast\n",
    ]
    .concat();
    let file = dir.join("dashed.txt");
    std::fs::write(&file, &dashed).unwrap();
    let sign = |who: &str, algo: &str| {
        let f = file.to_str().unwrap();
        gpg.run(&["-u", &format!("{who}@umd.invalid"), "--digest-algo", algo, "--clearsign", "-o", "-", f])
    };
    let a = sign("a", "SHA256");
    let b = sign("b", "SHA512");
    let k = &keyring;
    let n = |what: &str| format!("signed here: {what}");
    let both = [&replace(&a, b"Hash: SHA256", b"Hash: SHA256, SHA512")[..], parts(&b).sig].concat();
    vec![
        case(n("dash-escapes as gpg writes them"), k, a.clone(), Accept),
        case(
            n("a needless escape left out (\"-x\", \"--\")"),
            k,
            replace(&replace(&a, b"\n- -x\n", b"\n-x\n"), b"\n- --\n", b"\n--\n"),
            Accept,
        ),
        case(n("a needed escape left out (\"-----\")"), k, replace(&a, b"\n- -----\n", b"\n-----\n"), Refuse),
        case(
            n("an unescaped END PGP SIGNATURE line"),
            k,
            replace(&a, b"\n- -----END", b"\n-----END"),
            Refuse,
        ),
        case(n("SHA256 and SHA512 blocks, both announced"), k, both.clone(), Accept),
        case(n("SHA256 and SHA512 blocks, SHA256 announced"), k, [&a[..], parts(&b).sig].concat(), Refuse),
        case(
            n("SHA512 block, SHA256 announced"),
            k,
            [parts(&a).head, parts(&a).text, parts(&b).sig].concat(),
            Refuse,
        ),
    ]
}

// ---------------------------------------------------------------------------
// Running.

/// A tool's answer: exit status, what `--output` wrote, and the status
/// lines (for gpgv and `umd gpgv`, on stdout).
struct Answer {
    code: i32,
    output: Option<Vec<u8>>,
    status: Vec<String>,
}

fn run(cmd: &mut Command, out: &Path) -> Answer {
    let _ = std::fs::remove_file(out);
    let o = cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    let code = o.status.code().unwrap_or_else(|| panic!("{cmd:?} died: {}", o.status));
    let status = String::from_utf8_lossy(&o.stdout).lines().map(str::to_string).collect();
    Answer { code, output: std::fs::read(out).ok(), status }
}

/// `program` (gpgv, or `umd gpgv`) with gpgv's arguments, status lines on stdout.
fn gpgv_like(mut program: Command, home: &Path, keyring: &Path, doc: &Path, out: &Path) -> Answer {
    program.arg("--homedir").arg(home).arg("--keyring").arg(keyring).args(["--status-fd", "1", "--output"]);
    run(program.arg(out).arg(doc), out)
}

fn gpgv(home: &Path, keyring: &Path, doc: &Path, out: &Path) -> Answer {
    gpgv_like(Command::new(GPGV), home, keyring, doc, out)
}

fn umd_gpgv(home: &Path, keyring: &Path, doc: &Path, out: &Path) -> Answer {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_umd"));
    cmd.env_remove("RUST_LOG").arg("gpgv");
    gpgv_like(cmd, home, keyring, doc, out)
}

/// The status lines `umd gpgv` must write for a document, given gpgv's:
/// gpgv's own, unless umd refuses the framing before reading a signature.
fn expected_status(doc: &[u8], gpgv: &[String]) -> (Vec<String>, &'static str) {
    let lines = |l: &[&str]| l.iter().map(|l| format!("[GNUPG:] {l}")).collect();
    match umd_pgp::cleartext::split(doc) {
        Err(_) => (lines(&["NODATA 1", "NODATA 4"]), "NODATA"),
        Ok(c) if c.signatures.windows(LITERAL.len()).any(|w| w == LITERAL) => {
            (lines(&["PLAINTEXT 74 0 ", "UNEXPECTED 0"]), "UNEXPECTED")
        }
        Ok(_) => (gpgv.to_vec(), "same"),
    }
}

fn umd(keyring: &Path, doc: &Path, out: &Path) -> Answer {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_umd"));
    cmd.env_remove("RUST_LOG").args(["verify", "--keyring"]).arg(keyring).arg("--output").arg(out).arg(doc);
    run(&mut cmd, out)
}

/// gpgv's output with its CR LF line endings as LF.
fn lf(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    for (i, &c) in b.iter().enumerate() {
        if !(c == b'\r' && b.get(i + 1) == Some(&b'\n')) {
            out.push(c);
        }
    }
    out
}

fn check(dir: &Path, cases: &[Case]) {
    let home = dir.join("gpgv-home");
    std::fs::create_dir_all(&home).unwrap();
    let rows: Vec<(Answer, Answer, Answer)> = std::thread::scope(|s| {
        let chunks: Vec<_> = cases
            .chunks(cases.len().div_ceil(2).max(1))
            .enumerate()
            .map(|(t, chunk)| {
                let home = &home;
                s.spawn(move || {
                    chunk
                        .iter()
                        .enumerate()
                        .map(|(i, c)| {
                            let doc = dir.join(format!("doc-{t}-{i}"));
                            std::fs::write(&doc, &c.doc).unwrap();
                            let g = gpgv(home, &c.keyring, &doc, &dir.join(format!("out-gpgv-{t}-{i}")));
                            let u = umd(&c.keyring, &doc, &dir.join(format!("out-umd-{t}-{i}")));
                            let ug = umd_gpgv(home, &c.keyring, &doc, &dir.join(format!("out-ug-{t}-{i}")));
                            (g, u, ug)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        chunks.into_iter().flat_map(|h| h.join().expect("a runner thread")).collect()
    });
    let mut table =
        format!("\n{:<80} {:>6} {:>6}  output  {:>8}  status lines", "case", "gpgv", "umd", "umd gpgv");
    let mut failures = Vec::new();
    let mut notes: Vec<&str> = Vec::new();
    for (c, (g, u, ug)) in cases.iter().zip(&rows) {
        let umd_says = if u.code == 0 { Accept } else { Refuse };
        let gpgv_says = if g.code == 0 { Accept } else { Refuse };
        let mut same_output = "";
        if umd_says != c.umd {
            failures.push(format!("{}: umd exits {}, expected {:?}", c.name, u.code, c.umd));
        }
        match c.stricter {
            Some(why) => {
                if gpgv_says != Accept || c.umd != Refuse {
                    failures.push(format!(
                        "{}: documented as stricter than gpgv, but gpgv exits {}",
                        c.name, g.code
                    ));
                }
                if !notes.contains(&why) {
                    notes.push(why);
                }
            }
            None if gpgv_says != umd_says => {
                failures.push(format!("{}: gpgv exits {}, umd {}", c.name, g.code, u.code))
            }
            None => {}
        }
        if umd_says == Accept && gpgv_says == Accept {
            let (gt, ut) = (g.output.as_deref().map(lf), u.output.as_deref());
            if gt.is_none() || gt.as_deref() != ut {
                failures.push(format!("{}: umd --output differs from gpgv --output", c.name));
                same_output = "DIFFERS";
            } else {
                same_output = "same";
            }
        }
        if umd_says == Refuse && u.output.is_some() {
            failures.push(format!("{}: umd refused but wrote --output", c.name));
        }
        let mark = c
            .stricter
            .map_or(String::new(), |w| format!(" [{}]", notes.iter().position(|n| *n == w).unwrap_or(0) + 1));
        // umd gpgv: umd verify's verdict and text, gpgv's status lines.
        let (want, lines) = expected_status(&c.doc, &g.status);
        if (ug.code == 0) != (u.code == 0) {
            failures.push(format!("{}: umd gpgv exits {}, umd verify {}", c.name, ug.code, u.code));
        }
        if ug.output.is_some() != u.output.is_some() || (ug.code == 0 && ug.output != u.output) {
            failures.push(format!("{}: umd gpgv --output differs from umd verify --output", c.name));
        }
        if ug.status != want {
            failures.push(format!(
                "{}: umd gpgv's status lines differ from what gpgv says ({lines})\n  umd gpgv: {:#?}\n  expected: {want:#?}",
                c.name, ug.status
            ));
        }
        let _ = write!(
            table,
            "\n{:<80} {:>6} {:>6}  {same_output:<6}  {:>8}  {lines}{mark}",
            c.name, g.code, u.code, ug.code
        );
    }
    for (i, why) in notes.iter().enumerate() {
        let _ = write!(table, "\n[{}] {why}", i + 1);
    }
    eprintln!("{table}");
    assert!(failures.is_empty(), "{}\n{table}", failures.join("\n"));
}

#[test]
fn cleartext_verdicts_and_output_equal_gpgvs_on_documents_made_from_real_inrelease_files() {
    if !tools_present() {
        return;
    }
    let dir = tempfile::tempdir().expect("a scratch directory");
    let fixtures = Path::new(FIXTURES);
    let keyring = fixtures.join("debian-archive-keyring.gpg");
    let bookworm = std::fs::read(fixtures.join("bookworm_InRelease")).unwrap();
    let security = std::fs::read(fixtures.join("bookworm-security_InRelease")).unwrap();
    let mut cases = variants("bookworm", &keyring, &bookworm);
    cases.extend(
        variants("security", &keyring, &security)
            .into_iter()
            .filter(|c| c.name.ends_with("as is") || c.name.contains("CR LF") || c.name.contains("trailing")),
    );
    // This machine's apt lists, as they are and with trailing blanks.
    let live = common::apt_inrelease_lists();
    let home = dir.path().join("probe-home");
    std::fs::create_dir_all(&home).unwrap();
    for p in &live {
        // Only files gpgv accepts as they are with this keyring (a file signed
        // by a key it lacks says nothing about framing).
        if gpgv(&home, &keyring, p, &dir.path().join("probe")).code != 0 {
            eprintln!("{}: gpgv does not accept it with the fixture keyring; not used", p.display());
            continue;
        }
        let doc = std::fs::read(p).unwrap();
        let name =
            p.file_name().unwrap().to_string_lossy().replace("deb.debian.org_", "").replace("_InRelease", "");
        cases.extend(variants(&name, &keyring, &doc).into_iter().take(3));
    }
    let text = {
        let d = parts(&bookworm);
        d.text[..d.text.len() - 1].to_vec()
    };
    cases.extend(signed_here(dir.path(), &[&text[..], b"\n"].concat()));
    check(dir.path(), &cases);
}
