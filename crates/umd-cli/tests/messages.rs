//! Every error message names the file, the driver and what to do: the exact
//! text `umd` prints for the inputs a newcomer gets wrong first, in-process and
//! through the service (the same words both ways), and no log line blaming a
//! handler for an input it was right to refuse.

mod common;
mod svc;

use std::path::{Path, PathBuf};

use common::{scratch, text, umd};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../umd-pgp/tests/fixtures");

fn fixture(name: &str) -> String {
    format!("{FIXTURES}/{name}")
}

/// A file with `bytes` in the tests' scratch directory.
fn file(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = scratch().join(format!("messages-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// `bytes` as an armored public key block (line length and checksum as gpg
/// writes them).
fn armor_keyring(bytes: &[u8]) -> Vec<u8> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut out = String::from("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap());
        out.push('\n');
    }
    let crc = umd_pgp::armor::crc24(bytes).to_be_bytes();
    out.push('=');
    out.push_str(&base64::engine::general_purpose::STANDARD.encode(&crc[1..]));
    out.push_str("\n-----END PGP PUBLIC KEY BLOCK-----\n");
    out.into_bytes()
}

/// The checksum line of an armored block.
fn crc_line(text: &str) -> String {
    text.lines().find(|l| l.starts_with('=') && l.len() == 5).expect("a checksum line").to_string()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs `umd ARGS` (through the service at `socket` if given) and returns
/// (exit status, stdout, stderr).
fn run(socket: Option<&Path>, args: &[&str]) -> (i32, String, String) {
    let mut all: Vec<&str> = Vec::new();
    if let Some(sock) = socket {
        all.extend(["--socket", s(sock)]);
    }
    all.extend(args);
    let o = umd(&all);
    let (out, err) = text(&o);
    (o.status.code().unwrap_or(-1), out, err)
}

const HINT: &str =
    "give a detached signature (binary or armored) and its DATA, or a cleartext-signed document";

/// The verify cases, each with its exact verdict line on stdout and nothing on
/// stderr (no log line: the input was wrong, not the handler).
fn verify_cases(socket: Option<&Path>) {
    let keyring = fixture("debian-archive-keyring.gpg");
    let passwd =
        file("passwd", b"root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1::/usr/sbin:/usr/sbin/nologin\n");
    let data = file("data", b"hello\n");
    let empty = file("empty.sig", b"");
    // Not a real signature: its first octets are a signature packet header,
    // which is all the first look reads.
    let sig_like = file("sig-like", b"\x89\x01\x0d\x04\x00\x01\x08\x00");
    let inrelease = fixture("bookworm_InRelease");
    let cases: Vec<(Vec<&str>, i32, String)> = vec![
        (
            vec![s(&passwd)],
            2,
            format!("{}: cannot verify: not an OpenPGP signature (it looks like text); {HINT}\n", s(&passwd)),
        ),
        (
            vec![s(&passwd), s(&data)],
            2,
            format!("{}: cannot verify: not an OpenPGP signature (it looks like text); {HINT}\n", s(&passwd)),
        ),
        (
            vec![s(&empty), s(&data)],
            2,
            format!("{}: cannot verify: not an OpenPGP signature (it is empty); {HINT}\n", s(&empty)),
        ),
        (
            vec![&inrelease, s(&data)],
            2,
            format!(
                "{inrelease}: cannot verify: a cleartext document needs no DATA argument (its signed text is inside it)\n"
            ),
        ),
        (
            vec![s(&data), s(&sig_like)],
            2,
            format!(
                "{}: cannot verify: not an OpenPGP signature, but the DATA is one: the arguments look swapped \
                 (the SIGNATURE comes first, then the DATA)\n",
                s(&data)
            ),
        ),
        (
            vec![&keyring, s(&data)],
            2,
            format!(
                "{keyring}: cannot verify: not an OpenPGP signature (it starts with a public key packet: keys, \
                 not a signature); {HINT}\n"
            ),
        ),
        (
            vec![s(&sig_like)],
            2,
            format!(
                "{}: cannot verify: a detached signature needs its DATA: give the signed file after it \
                 (or name the signature FILE.sig, FILE.asc or FILE.gpg beside FILE)\n",
                s(&sig_like)
            ),
        ),
    ];
    for (files, code, line) in cases {
        let mut args = vec!["verify", "--keyring", &keyring];
        args.extend(&files);
        let (c, out, err) = run(socket, &args);
        assert_eq!((c, out.as_str(), err.as_str()), (code, line.as_str(), ""), "umd {args:?}");
    }

    // Three good signatures, four required: "too few", with the counts, exit 1.
    let (c, out, err) = run(socket, &["verify", "--signatures", "4", "--keyring", &keyring, &inrelease]);
    assert_eq!(c, 1, "{out}{err}");
    assert_eq!(
        out.lines().next(),
        Some(format!("{inrelease}: too few good signatures (3 good signatures, 4 required)").as_str())
    );
    assert_eq!(out.lines().filter(|l| l.starts_with("  good signature by ")).count(), 3, "{out}");
    let (c, out, _) =
        run(socket, &["verify", "--json", "--signatures", "4", "--keyring", &keyring, &inrelease]);
    assert_eq!(c, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["status"], "bad");
    assert_eq!(v["verdict"], "too few good signatures (3 good signatures, 4 required)");
    assert_eq!((v["good"].as_u64(), v["required"].as_u64()), (Some(3), Some(4)));
    let (c, out, _) = run(socket, &["verify", "--signatures", "3", "--keyring", &keyring, &inrelease]);
    assert_eq!((c, out.lines().next()), (0, Some(format!("{inrelease}: verified").as_str())));
}

/// Keyrings are named by their path, never by their position.
fn keyring_cases(socket: Option<&Path>) {
    let inrelease = fixture("bookworm_InRelease");
    let passwd = file("passwd-keyring", b"root:x:0:0:root:/root:/bin/bash\n");
    let empty = file("empty.gpg", b"");
    let debian = std::fs::read(fixture("debian-archive-keyring.gpg")).unwrap();
    let truncated = file("truncated.gpg", &debian[..300]);
    let cases = [
        (s(&passwd).to_string(), format!("umd: verify: keyring {}: not an OpenPGP keyring (it looks like text)\n", s(&passwd))),
        (s(&empty).to_string(), format!("umd: verify: keyring {}: not an OpenPGP keyring (it is empty)\n", s(&empty))),
        (
            inrelease.clone(),
            format!("umd: verify: keyring {inrelease}: not an OpenPGP keyring (it is a cleartext-signed document)\n"),
        ),
        (
            "/nonexistent/keyring.gpg".into(),
            "umd: verify: keyring /nonexistent/keyring.gpg: No such file or directory (os error 2)\n".into(),
        ),
    ];
    for (k, line) in cases {
        let (c, out, err) = run(socket, &["verify", "--keyring", &k, &inrelease]);
        assert_eq!((c, out.as_str(), err.as_str()), (2, "", line.as_str()), "keyring {k}");
    }
    // Framing and armor errors found deeper in: still the path, not "keyring 0".
    let armored = file("armored.asc", &armor_keyring(&debian[..4000]));
    let text = std::fs::read_to_string(&armored).unwrap();
    let bad_crc = file("bad-crc.asc", text.replace(&crc_line(&text), "=AAAA").as_bytes());
    for k in [&truncated, &bad_crc] {
        let (c, out, err) = run(socket, &["verify", "--keyring", s(k), &inrelease]);
        assert_eq!((c, out.as_str()), (2, ""), "{err}");
        assert!(err.starts_with(&format!("umd: verify: keyring {}: ", s(k))), "{err}");
        assert!(!err.contains("keyring 0") && !err.contains("keyring #"), "{err}");
    }
    if socket.is_none() {
        let (c, _, err) = run(None, &["pgp", "keys", s(&passwd)]);
        assert_eq!(
            (c, err.as_str()),
            (
                2,
                format!(
                    "umd: pgp keys: keyring {}: not an OpenPGP keyring (it looks like text)\n",
                    s(&passwd)
                )
                .as_str()
            )
        );
    }
}

#[test]
fn verify_names_the_file_and_says_what_to_do_in_process() {
    verify_cases(None);
}

#[test]
fn verify_names_the_keyring_by_its_path_in_process() {
    keyring_cases(None);
}

#[test]
fn verify_says_the_same_through_the_service() {
    let service = svc::Service::start("messages", svc::OPEN);
    verify_cases(Some(&service.socket));
    keyring_cases(Some(&service.socket));
    assert!(!service.log_text().contains("WARN"), "the service blamed a handler:\n{}", service.log_text());
}

#[test]
fn a_handler_program_that_cannot_be_read_is_named_by_its_path() {
    let (c, _, err) = run(None, &["sample", "request", "--offset", "1", "--handler", "/nonexistent/handler"]);
    assert_eq!(
        (c, err.as_str()),
        (
            2,
            "umd: driver sample: driver not available (handler program /nonexistent/handler: No such file or \
             directory (os error 2))\n"
        )
    );
    let text_file = file("not-a-program", b"echo hello\n");
    let (c, _, err) = run(None, &["sample", "request", "--offset", "1", "--handler", s(&text_file)]);
    assert_eq!(
        (c, err),
        (
            2,
            format!(
                "umd: driver sample: driver not available (handler program {} is not an ELF executable (a \
                 handler is a compiled, statically linked program))\n",
                s(&text_file)
            )
        )
    );
}
