//! The cleartext signature framework (RFC 9580 §7): the manager splits a signed
//! document (such as Debian's `InRelease`) into its text and its signature block
//! and canonicalizes the text itself; the handler sees only the signature packets.

use crate::armor::{self, ArmorError, Label};

/// Largest cleartext document accepted (64 MiB).
pub const MAX_DOCUMENT: usize = 64 << 20;

const BEGIN_SIGNED: &str = "-----BEGIN PGP SIGNED MESSAGE-----";
const BEGIN_SIGNATURE: &str = "-----BEGIN PGP SIGNATURE-----";

/// A split cleartext document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cleartext {
    /// The text as a reader sees it: dash-unescaped lines, each ending in `\n`
    /// (what `--output` writes once the signature is verified).
    pub text: Vec<u8>,
    /// The text as it was signed (RFC 9580 §7.2): trailing spaces and tabs removed
    /// from each line, lines joined with CR LF, no line ending after the last line.
    pub signed: Vec<u8>,
    /// The `Hash:` armor header values, if any (informational: the hash algorithm
    /// that counts is the one in each signature).
    pub hash_headers: Vec<String>,
    /// The signature block, dearmored: binary signature packets.
    pub signatures: Vec<u8>,
}

/// Why a document is not a well-formed cleartext signature.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CleartextError {
    /// Larger than [`MAX_DOCUMENT`].
    #[error("document of {0} bytes exceeds the {MAX_DOCUMENT}-byte limit")]
    TooLarge(usize),
    /// No `-----BEGIN PGP SIGNED MESSAGE-----` line.
    #[error("not a cleartext-signed document (no '{BEGIN_SIGNED}' line)")]
    NotCleartext,
    /// The armor headers are not followed by a blank line.
    #[error("line {0}: expected an armor header ('Hash: ...') or the blank line before the text")]
    BadHeader(usize),
    /// No signature block after the text.
    #[error("no '{BEGIN_SIGNATURE}' block after the signed text")]
    NoSignature,
    /// The signature block's armor is broken.
    #[error("signature block: {0}")]
    Armor(#[from] ArmorError),
    /// The signature block holds something else.
    #[error("the block after the text is not a signature block")]
    NotSignature,
}

/// Whether `input` starts (after blank space) with the cleartext framework line.
pub fn is_cleartext(input: &[u8]) -> bool {
    let start = input.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(input.len());
    input[start..].starts_with(BEGIN_SIGNED.as_bytes())
}

/// Splits and canonicalizes a cleartext-signed document.
pub fn split(input: &[u8]) -> Result<Cleartext, CleartextError> {
    if input.len() > MAX_DOCUMENT {
        return Err(CleartextError::TooLarge(input.len()));
    }
    // Work on lines of bytes: the text need not be UTF-8.
    let mut lines = input.split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l)).enumerate();
    loop {
        match lines.next() {
            None => return Err(CleartextError::NotCleartext),
            Some((_, l)) if trim_end(l) == BEGIN_SIGNED.as_bytes() => break,
            Some((_, l)) if trim_end(l).is_empty() => continue,
            Some(_) => return Err(CleartextError::NotCleartext),
        }
    }
    let mut hash_headers = Vec::new();
    loop {
        match lines.next() {
            None => return Err(CleartextError::NoSignature),
            Some((_, l)) if trim_end(l).is_empty() => break,
            Some((n, l)) => {
                let l = String::from_utf8_lossy(trim_end(l));
                match l.split_once(": ") {
                    Some(("Hash", v)) => hash_headers.push(v.to_string()),
                    Some((k, _)) if !k.is_empty() && !k.contains(' ') => {}
                    _ => return Err(CleartextError::BadHeader(n + 1)),
                }
            }
        }
    }
    let mut text_lines: Vec<&[u8]> = Vec::new();
    let mut sig_start = None;
    for (n, l) in lines.by_ref() {
        if trim_end(l) == BEGIN_SIGNATURE.as_bytes() {
            sig_start = Some(n);
            break;
        }
        // Dash-escaping: "- " prefixes a line that started with '-'.
        text_lines.push(l.strip_prefix(b"- ").unwrap_or(l));
    }
    let sig_start = sig_start.ok_or(CleartextError::NoSignature)?;
    let mut text = Vec::new();
    let mut signed = Vec::new();
    for (i, l) in text_lines.iter().enumerate() {
        text.extend_from_slice(l);
        text.push(b'\n');
        if i > 0 {
            signed.extend_from_slice(b"\r\n");
        }
        signed.extend_from_slice(trim_end(l));
    }
    // The signature block: from its BEGIN line to the end of the input.
    let offset = nth_line_offset(input, sig_start);
    let blocks = armor::decode_all(&input[offset..])?;
    let mut signatures = Vec::new();
    for b in blocks {
        if b.label != Label::Signature {
            return Err(CleartextError::NotSignature);
        }
        signatures.extend_from_slice(&b.data);
    }
    Ok(Cleartext { text, signed, hash_headers, signatures })
}

fn trim_end(l: &[u8]) -> &[u8] {
    let end = l.iter().rposition(|&b| b != b' ' && b != b'\t').map_or(0, |i| i + 1);
    &l[..end]
}

fn nth_line_offset(input: &[u8], n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    input.iter().enumerate().filter(|(_, &b)| b == b'\n').nth(n - 1).map_or(input.len(), |(i, _)| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nOrigin: Debian \t\n- -----dashed\n\nlast line\n-----BEGIN PGP SIGNATURE-----\n\niQ==\n-----END PGP SIGNATURE-----\n";

    #[test]
    fn text_is_unescaped_and_canonicalized_for_hashing() {
        let c = split(DOC.as_bytes()).unwrap();
        assert_eq!(c.text, b"Origin: Debian \t\n-----dashed\n\nlast line\n");
        assert_eq!(c.signed, b"Origin: Debian\r\n-----dashed\r\n\r\nlast line");
        assert_eq!(c.hash_headers, vec!["SHA256".to_string()]);
        assert_eq!(c.signatures, vec![0x89]);
    }

    #[test]
    fn crlf_documents_canonicalize_the_same() {
        let crlf = DOC.replace('\n', "\r\n");
        let a = split(DOC.as_bytes()).unwrap();
        let b = split(crlf.as_bytes()).unwrap();
        assert_eq!(a.signed, b.signed);
    }

    #[test]
    fn malformed_documents_are_refused_with_a_reason() {
        assert_eq!(split(b"hello"), Err(CleartextError::NotCleartext));
        assert_eq!(
            split(b"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\ntext\n"),
            Err(CleartextError::NoSignature)
        );
        assert_eq!(
            split(b"-----BEGIN PGP SIGNED MESSAGE-----\nnot a header\n\ntext\n"),
            Err(CleartextError::BadHeader(2))
        );
        let msg = DOC.replace(
            "PGP SIGNATURE-----\n\niQ==\n-----END PGP SIGNATURE",
            "PGP MESSAGE-----\n\niQ==\n-----END PGP MESSAGE",
        );
        assert!(split(msg.as_bytes()).is_err());
    }

    proptest::proptest! {
        #[test]
        fn splitting_never_panics(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2000)) {
            let mut doc = b"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n".to_vec();
            doc.extend_from_slice(&body);
            doc.extend_from_slice(b"\n-----BEGIN PGP SIGNATURE-----\n\n");
            doc.extend_from_slice(&body);
            let _ = split(&doc);
            let _ = split(&body);
        }
    }
}
