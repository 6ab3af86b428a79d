//! `umd verify --output` and `umd pgp keys` on the committed Debian fixtures.

use std::process::Command;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../umd-pgp/tests/fixtures");

fn umd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_umd"))
}

#[test]
fn verified_cleartext_text_is_written_with_output_and_only_then() {
    let dir = std::env::temp_dir().join(format!("umd-pgp-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let keyring = format!("{FIXTURES}/debian-archive-keyring.gpg");
    let inrelease = format!("{FIXTURES}/bookworm_InRelease");
    let out = dir.join("Release");
    let s =
        umd().args(["verify", "--keyring", &keyring, "--output"]).arg(&out).arg(&inrelease).status().unwrap();
    assert_eq!(s.code(), Some(0));
    let text = std::fs::read(&out).unwrap();
    assert!(text.starts_with(b"Origin: Debian\n"), "{:?}", String::from_utf8_lossy(&text[..40]));
    assert!(!text.windows(10).any(|w| w == b"-----BEGIN"), "no armor in the verified text");

    // A tampered document: exit 1, and nothing is written.
    let mut doc = std::fs::read(&inrelease).unwrap();
    let at = doc.windows(7).position(|w| w == b"Origin:").unwrap() + 8;
    doc[at] ^= 0x20;
    let tampered = dir.join("InRelease");
    std::fs::write(&tampered, &doc).unwrap();
    let out2 = dir.join("Release2");
    let s =
        umd().args(["verify", "--keyring", &keyring, "--output"]).arg(&out2).arg(&tampered).status().unwrap();
    assert_eq!(s.code(), Some(1));
    assert!(!out2.exists(), "no output for a document that did not verify");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn pgp_keys_lists_the_debian_certificates_as_json() {
    let keyring = format!("{FIXTURES}/debian-archive-keyring.gpg");
    let o = umd().args(["pgp", "keys", "--json", &keyring]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let certs = v["certificates"].as_array().unwrap();
    assert_eq!(certs.len(), 9);
    assert!(certs.iter().all(|c| c["primary"]["valid"] == true));
    assert!(certs.iter().any(|c| c["primary"]["fingerprint"] == "4D64FEC119C2029067D6E791F8D2585B8783D481"
        && c["user_ids"][0]["value"].as_str().unwrap().contains("12/bookworm")));
}

#[test]
fn a_missing_keyring_is_an_error_not_a_verdict() {
    let inrelease = format!("{FIXTURES}/bookworm_InRelease");
    let o = umd().args(["verify", "--keyring", "/nonexistent/keyring.gpg", &inrelease]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/keyring.gpg"));
}

#[test]
fn pgp_keys_prints_times_as_rfc3339_utc() {
    let keyring = format!("{FIXTURES}/debian-archive-keyring.gpg");
    let o = umd().args(["pgp", "keys", &keyring]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8(o.stdout).unwrap();
    // "created 2023-01-21T21:49:07Z, expires 2031-01-19T21:49:07Z — valid"
    let is_rfc3339 = |w: &str| {
        let b = w.trim_end_matches(',').as_bytes();
        b.len() == 20
            && b.iter().enumerate().all(|(i, c)| match i {
                4 | 7 => *c == b'-',
                10 => *c == b'T',
                13 | 16 => *c == b':',
                19 => *c == b'Z',
                _ => c.is_ascii_digit(),
            })
    };
    let words: Vec<&str> = text.split_whitespace().collect();
    let after = |label: &str| words.windows(2).filter(|w| w[0] == label).map(|w| w[1]).collect::<Vec<_>>();
    let created = after("created");
    assert!(created.len() >= 9 && created.iter().all(|w| is_rfc3339(w)), "{text}");
    let expires = after("expires");
    assert!(!expires.is_empty() && expires.iter().all(|w| is_rfc3339(w)), "{text}");
}
