//! A first look at the files a user hands over, before any parser sees them:
//! is this an OpenPGP signature or keyring at all?
//!
//! The handler would refuse `/etc/passwd` as a signature too, but in its own
//! terms ("packet 0 at offset 0: not a packet header (octet 0x72 lacks bit 7)"),
//! and an empty file would reach it only to be described as nothing. Here the
//! manager looks at the first bytes itself — nothing is parsed, so nothing
//! hostile is trusted — and says what the file looks like instead: empty, text,
//! an armored block of another kind, keys where a signature was expected, or the
//! arguments in the wrong order. Anything that may be OpenPGP passes on to the
//! handler, whose description is checked as always.
//!
//! ```
//! use umd_pgp::sniff::{check_signature, InputError};
//!
//! let passwd = b"root:x:0:0:root:/root:/bin/bash\n";
//! let e = check_signature(passwd, None).unwrap_err();
//! assert_eq!(e.to_string(), "not an OpenPGP signature (it looks like text)");
//! assert!(matches!(check_signature(b"", None), Err(InputError::NotOpenPgp { .. })));
//! ```

use std::fmt;

/// What the first bytes of an input look like.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Looks {
    /// No bytes at all.
    Empty,
    /// A cleartext-signed document (`-----BEGIN PGP SIGNED MESSAGE-----`).
    Cleartext,
    /// An ASCII-armored block with this label (`SIGNATURE`, `PUBLIC KEY BLOCK`, ...).
    Armored(String),
    /// Binary OpenPGP packets: the first octet is a packet header with this tag.
    Packets {
        /// The first packet's tag.
        tag: u8,
    },
    /// Printable text that is not armored.
    Text,
    /// Binary data whose first octet cannot start an OpenPGP packet.
    Binary {
        /// That octet.
        first: u8,
    },
}

/// How much of the input is looked at to tell text from binary.
const TEXT_PROBE: usize = 1024;

/// Looks at the first bytes of `input` (at most 1 KiB; nothing is parsed).
pub fn looks(input: &[u8]) -> Looks {
    let start = input.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(input.len());
    let rest = &input[start..];
    if input.is_empty() {
        return Looks::Empty;
    }
    if rest.starts_with(b"-----BEGIN PGP SIGNED MESSAGE-----") {
        return Looks::Cleartext;
    }
    if let Some(after) = rest.strip_prefix(b"-----BEGIN PGP ") {
        let end = after.iter().position(|&b| b == b'-' || b == b'\n').unwrap_or(after.len()).min(64);
        return Looks::Armored(String::from_utf8_lossy(&after[..end]).into_owned());
    }
    let first = input[0];
    if first & 0x80 != 0 {
        let tag = if first & 0x40 != 0 { first & 0x3f } else { (first >> 2) & 0x0f };
        // Text in a non-ASCII script may start with an octet that has bit 7 set:
        // UTF-8 text that decodes is text, not a packet.
        if !is_text(input) {
            return Looks::Packets { tag };
        }
    }
    if is_text(input) {
        Looks::Text
    } else {
        Looks::Binary { first }
    }
}

/// Whether the first KiB is printable text: UTF-8 (a character cut at the end
/// of the probe is fine) without control characters other than tab, line
/// feed, carriage return and form feed.
fn is_text(input: &[u8]) -> bool {
    let head = &input[..input.len().min(TEXT_PROBE)];
    let printable =
        head.iter().all(|&b| matches!(b, b'\t' | b'\n' | b'\r' | 0x0c | 0x20..=0x7e | 0x80..=0xff));
    printable
        && match std::str::from_utf8(head) {
            Ok(_) => true,
            Err(e) => e.error_len().is_none() && head.len() == TEXT_PROBE,
        }
}

/// A name for people of an OpenPGP packet tag (RFC 9580 §5).
pub fn tag_name(tag: u8) -> &'static str {
    match tag {
        1 => "public-key encrypted session key",
        2 => "signature",
        3 => "symmetric-key encrypted session key",
        4 => "one-pass signature",
        5 => "secret key",
        6 => "public key",
        7 => "secret subkey",
        8 => "compressed data",
        9 | 18 | 20 => "encrypted data",
        10 => "marker",
        11 => "literal data",
        12 => "trust",
        13 => "user ID",
        14 => "public subkey",
        17 => "user attribute",
        _ => "unknown",
    }
}

/// Why an input cannot be what it was given as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InputError {
    /// Not OpenPGP data of the expected kind at all.
    NotOpenPgp {
        /// What was expected: `signature`, `keyring`.
        expected: &'static str,
        /// What it looks like instead (`it is empty`, `it looks like text`, ...).
        why: String,
    },
    /// A cleartext-signed document was given together with data: its signed
    /// text is inside it.
    CleartextWithData,
    /// The signature looks like data and the data like a signature.
    Swapped,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputError::NotOpenPgp { expected, why } => write!(f, "not an OpenPGP {expected} ({why})"),
            InputError::CleartextWithData => {
                f.write_str("a cleartext document needs no DATA argument (its signed text is inside it)")
            }
            InputError::Swapped => f.write_str(
                "not an OpenPGP signature, but the DATA is one: the arguments look swapped \
                 (the SIGNATURE comes first, then the DATA)",
            ),
        }
    }
}

impl std::error::Error for InputError {}

fn not(expected: &'static str, why: impl Into<String>) -> InputError {
    InputError::NotOpenPgp { expected, why: why.into() }
}

/// Why `looks` cannot be OpenPGP data at all, if it cannot.
fn unusable(looks: &Looks) -> Option<String> {
    match looks {
        Looks::Empty => Some("it is empty".into()),
        Looks::Text => Some("it looks like text".into()),
        Looks::Binary { first } => Some(format!("its first byte, 0x{first:02x}, starts no OpenPGP packet")),
        Looks::Cleartext | Looks::Armored(_) | Looks::Packets { .. } => None,
    }
}

/// Whether `looks` is a signature or a cleartext document.
fn is_signature(looks: &Looks) -> bool {
    match looks {
        Looks::Cleartext => true,
        Looks::Armored(label) => label == "SIGNATURE" || label == "MESSAGE",
        Looks::Packets { tag } => matches!(tag, 2 | 4 | 8),
        _ => false,
    }
}

/// Checks that `signature` can be an OpenPGP signature — a detached one (binary
/// or armored) when `data` is given, else a cleartext-signed document or a
/// detached one whose data will be found elsewhere.
pub fn check_signature(signature: &[u8], data: Option<&[u8]>) -> Result<(), InputError> {
    let sig = looks(signature);
    if let Some(why) = unusable(&sig) {
        if data.is_some_and(|d| is_signature(&looks(d))) {
            return Err(InputError::Swapped);
        }
        return Err(not("signature", why));
    }
    match &sig {
        Looks::Cleartext if data.is_some() => Err(InputError::CleartextWithData),
        Looks::Armored(label) if label.starts_with("PUBLIC KEY") || label.starts_with("PRIVATE KEY") => {
            Err(not("signature", format!("it is an armored {}: keys, not a signature", label.to_lowercase())))
        }
        Looks::Packets { tag: tag @ (5 | 6) } => Err(not(
            "signature",
            format!("it starts with a {} packet: keys, not a signature", tag_name(*tag)),
        )),
        _ => Ok(()),
    }
}

/// Checks that `keyring` can be an OpenPGP keyring (binary or armored public
/// keys).
pub fn check_keyring(keyring: &[u8]) -> Result<(), InputError> {
    let k = looks(keyring);
    if let Some(why) = unusable(&k) {
        return Err(not("keyring", why));
    }
    match &k {
        Looks::Cleartext => Err(not("keyring", "it is a cleartext-signed document")),
        Looks::Armored(label) if !label.starts_with("PUBLIC KEY") => {
            Err(not("keyring", format!("it is an armored {}, not a public key block", label.to_lowercase())))
        }
        Looks::Packets { tag } if *tag != 6 => {
            Err(not("keyring", format!("it starts with a {} packet, not a public key", tag_name(*tag))))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_files_look_like() {
        assert_eq!(looks(b""), Looks::Empty);
        assert_eq!(looks(b"root:x:0:0::/root:/bin/sh\n"), Looks::Text);
        assert_eq!(looks("Grüße, 世界\n".as_bytes()), Looks::Text, "UTF-8 text whose first octet has bit 7");
        assert_eq!(looks("éa".as_bytes()), Looks::Text);
        assert_eq!(looks(b"\n-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n"), Looks::Cleartext);
        assert_eq!(looks(b"-----BEGIN PGP SIGNATURE-----\n\n"), Looks::Armored("SIGNATURE".into()));
        assert_eq!(
            looks(b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n"),
            Looks::Armored("PUBLIC KEY BLOCK".into())
        );
        assert_eq!(looks(b"\x89\x02\x33"), Looks::Packets { tag: 2 }, "old format, two-octet length");
        assert_eq!(looks(b"\xc2\x33"), Looks::Packets { tag: 2 }, "new format");
        assert_eq!(looks(b"\x99\x01\x0d\x04"), Looks::Packets { tag: 6 });
        assert_eq!(looks(b"\x7fELF\x02\x01\x01\0"), Looks::Binary { first: 0x7f });
        assert_eq!(looks(b"PK\x03\x04\0\0"), Looks::Binary { first: b'P' });
    }

    #[test]
    fn signatures_that_cannot_be_are_named() {
        let msg = |s: &[u8], d: Option<&[u8]>| check_signature(s, d).unwrap_err().to_string();
        assert_eq!(msg(b"", Some(b"data")), "not an OpenPGP signature (it is empty)");
        assert_eq!(msg(b"hello\n", None), "not an OpenPGP signature (it looks like text)");
        assert_eq!(
            msg(b"\0\0\0", None),
            "not an OpenPGP signature (its first byte, 0x00, starts no OpenPGP packet)"
        );
        assert_eq!(
            msg(b"-----BEGIN PGP SIGNED MESSAGE-----\n", Some(b"x")),
            "a cleartext document needs no DATA argument (its signed text is inside it)"
        );
        assert_eq!(
            msg(b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n", None),
            "not an OpenPGP signature (it is an armored public key block: keys, not a signature)"
        );
        assert_eq!(
            msg(b"\x99\x01\x0d\x04", Some(b"x")),
            "not an OpenPGP signature (it starts with a public key packet: keys, not a signature)"
        );
        assert_eq!(check_signature(b"Release text\n", Some(b"\x89\x02\x33")), Err(InputError::Swapped));
        assert!(check_signature(b"\x89\x02\x33", Some(b"text")).is_ok());
        assert!(check_signature(b"-----BEGIN PGP SIGNATURE-----\n", Some(b"text")).is_ok());
        assert!(check_signature(b"-----BEGIN PGP SIGNED MESSAGE-----\n", None).is_ok());
    }

    #[test]
    fn keyrings_that_cannot_be_are_named() {
        let msg = |k: &[u8]| check_keyring(k).unwrap_err().to_string();
        assert_eq!(msg(b""), "not an OpenPGP keyring (it is empty)");
        assert_eq!(msg(b"root:x:0:0\n"), "not an OpenPGP keyring (it looks like text)");
        assert_eq!(
            msg(b"\x89\x02\x33"),
            "not an OpenPGP keyring (it starts with a signature packet, not a public key)"
        );
        assert_eq!(
            msg(b"-----BEGIN PGP SIGNATURE-----\n"),
            "not an OpenPGP keyring (it is an armored signature, not a public key block)"
        );
        assert!(check_keyring(b"\x99\x01\x0d\x04").is_ok());
        assert!(check_keyring(b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n").is_ok());
    }
}
