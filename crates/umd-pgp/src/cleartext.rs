//! The cleartext signature framework (RFC 9580 §7): the manager splits a signed
//! document (such as Debian's `InRelease`) into its text and its signature block
//! and canonicalizes the text itself; the handler sees only the signature packets.
//!
//! The rules are gpgv's (GnuPG 2.2), checked against it by a differential test
//! on real `InRelease` files (`crates/umd-cli/tests/cleartext_differential.rs`):
//!
//! * **Header block.** After `-----BEGIN PGP SIGNED MESSAGE-----` only `Hash:`
//!   armor headers may come, then a blank line. Any other header (`Comment:`,
//!   `Version:`), a malformed line or a missing blank line is refused. A
//!   `Hash:` header lists, comma-separated, names among `SHA1`, `SHA224`,
//!   `SHA256`, `SHA384`, `SHA512`, `RIPEMD160` (gpg's; `MD5` and unknown names
//!   are refused), in a line of at most 60 characters.
//! * **Hash agreement** ([`Cleartext::check_hash_headers`]): every signature's
//!   hash algorithm must be announced by a `Hash:` header. Without any `Hash:`
//!   header gpg assumes MD5, so it refuses every v4 signature; only v6
//!   signatures, for which RFC 9580 §7.1 says not to emit the header, may
//!   then stand.
//! * **Text.** Lines end at LF. A line starting with `- ` is dash-escaped: that
//!   prefix is removed, once, whether or not it was needed. Another line
//!   starting with `-----` that is not the `-----BEGIN PGP SIGNATURE-----` line
//!   is refused (gpg: "unexpected armor"); other lines starting with `-` are
//!   text as they are. Trailing spaces, tabs and CRs of each line are not
//!   signed (RFC 9580 §7.2 names spaces and tabs; gpg also drops CRs, which
//!   covers CR LF documents) and are not part of the verified text either.
//! * **Around the armor.** Blank lines may precede the document and follow
//!   the signature blocks; several signature blocks may follow one another.
//!
//! Stricter than gpgv, and why:
//!
//! * **Unsigned text before the `-----BEGIN PGP SIGNED MESSAGE-----` line,
//!   after the signature blocks, or between them is refused.** gpgv ignores it,
//!   but a reader of the file — or a program that parses it the way apt parses
//!   `InRelease` — sees it beside the signed text, and nothing distinguishes it
//!   there. apt refuses such files for that reason ("Clearsigned file … does
//!   not start with a signed message block", "contains unsigned lines").
//! * **Hash names are spelled in full.** gpg takes a prefix for the first name
//!   it matches (`SHA2` for SHA224, `SHA` for SHA1); a header is a statement
//!   about the signatures, and an abbreviation is not one.
//! * **The signature armor is decoded strictly** ([`armor`]): gpg ignores
//!   text between a block's checksum line and its END line and skips some
//!   other lines that are not base64; here they make the block invalid — the
//!   block was changed after it was armored.
//! * **Only signature (and marker) packets** may make up the signature blocks
//!   (gpgv agrees: it refuses a literal data packet there as "ambiguous
//!   signature data"; see [`crate::verifier`]).

use crate::packet::CheckedSig;

use crate::armor::{self, ArmorError, Label};

/// Largest cleartext document accepted (64 MiB).
pub const MAX_DOCUMENT: usize = 64 << 20;

const BEGIN_SIGNED: &[u8] = b"-----BEGIN PGP SIGNED MESSAGE-----";
const BEGIN_SIGNATURE: &[u8] = b"-----BEGIN PGP SIGNATURE-----";
/// gpg's bound on a `Hash:` header line.
const MAX_HASH_LINE: usize = 60;

/// The hash names a `Hash:` header may give, with their algorithm ids: gpg
/// 2.2's list (RFC 9580's text names; MD5 is refused, as gpg refuses it).
const HASH_NAMES: &[(&str, u8)] =
    &[("SHA1", 2), ("RIPEMD160", 3), ("SHA256", 8), ("SHA384", 9), ("SHA512", 10), ("SHA224", 11)];

fn hash_name(id: u8) -> String {
    HASH_NAMES
        .iter()
        .find(|(_, i)| *i == id)
        .map_or_else(|| format!("algorithm {id}"), |(n, _)| n.to_string())
}

/// A split cleartext document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cleartext {
    /// The text as it was signed and as a reader gets it (what `--output`
    /// writes once verified): dash-unescaped lines without their trailing
    /// spaces, tabs and CRs, each ending in `\n`.
    pub text: Vec<u8>,
    /// The text as it is hashed (RFC 9580 §7.2): the same lines joined with
    /// CR LF, no line ending after the last line.
    pub signed: Vec<u8>,
    /// The hash algorithms the `Hash:` headers announce (ids, in order).
    pub hashes: Vec<u8>,
    /// The signature blocks, dearmored: binary signature packets.
    pub signatures: Vec<u8>,
}

/// Why a document is not a well-formed cleartext signature. Lines are
/// numbered from 1.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CleartextError {
    /// Larger than [`MAX_DOCUMENT`].
    #[error("document of {0} bytes exceeds the {MAX_DOCUMENT}-byte limit")]
    TooLarge(usize),
    /// No `-----BEGIN PGP SIGNED MESSAGE-----` line.
    #[error("not a cleartext-signed document (no '-----BEGIN PGP SIGNED MESSAGE-----' line)")]
    NotCleartext,
    /// Text before the `-----BEGIN PGP SIGNED MESSAGE-----` line.
    #[error(
        "line {0}: unsigned text before '-----BEGIN PGP SIGNED MESSAGE-----' (refused: a reader could take it \
         for part of the signed document)"
    )]
    TextBefore(usize),
    /// A line of the header block that is not a valid `Hash:` header, or no
    /// blank line after the headers.
    #[error("line {line}: {why}")]
    BadHeader {
        /// The line.
        line: usize,
        /// What is wrong.
        why: &'static str,
    },
    /// An unescaped line starting with `-----` inside the signed text.
    #[error("line {0}: unexpected armor line in the signed text (a line starting with '-----' must be dash-escaped)")]
    UnexpectedArmor(usize),
    /// No signature block after the text.
    #[error("no '-----BEGIN PGP SIGNATURE-----' block after the signed text")]
    NoSignature,
    /// The signature blocks' armor is broken, or text lies beside them.
    #[error("signature block: {0}")]
    Armor(#[from] ArmorError),
    /// The signature block holds something else.
    #[error("the block after the text is not a signature block")]
    NotSignature,
    /// A signature's hash algorithm is not announced by a `Hash:` header.
    #[error(
        "a signature uses {hash}, which the document's 'Hash:' header does not announce ({announced}); gpgv \
         refuses such a document too"
    )]
    HashNotAnnounced {
        /// The signature's hash.
        hash: String,
        /// What the headers announce.
        announced: String,
    },
}

/// Whether `input` holds a `-----BEGIN PGP SIGNED MESSAGE-----` line, i.e. is
/// meant as a cleartext document ([`split`] then says whether it is one).
pub fn is_cleartext(input: &[u8]) -> bool {
    input.split(|&b| b == b'\n').any(|l| trim_ws(l) == BEGIN_SIGNED)
}

/// Splits and canonicalizes a cleartext-signed document.
pub fn split(input: &[u8]) -> Result<Cleartext, CleartextError> {
    if input.len() > MAX_DOCUMENT {
        return Err(CleartextError::TooLarge(input.len()));
    }
    // Lines of bytes, numbered from 1: the text need not be UTF-8.
    let mut lines = input.split(|&b| b == b'\n').enumerate().map(|(n, l)| (n + 1, l));
    loop {
        match lines.next() {
            None => return Err(CleartextError::NotCleartext),
            Some((_, l)) if trim_ws(l) == BEGIN_SIGNED => break,
            Some((_, l)) if trim_ws(l).is_empty() => continue,
            Some((n, _)) if is_cleartext(input) => return Err(CleartextError::TextBefore(n)),
            Some(_) => return Err(CleartextError::NotCleartext),
        }
    }
    let mut hashes = Vec::new();
    loop {
        match lines.next() {
            None => return Err(CleartextError::NoSignature),
            Some((_, l)) if trim_ws(l).is_empty() => break,
            Some((line, l)) => {
                hash_header(trim_ws(l), &mut hashes).map_err(|why| CleartextError::BadHeader { line, why })?
            }
        }
    }
    let mut text = Vec::new();
    let mut signed = Vec::new();
    let mut sig_start = None;
    for (n, l) in lines.by_ref() {
        if trim_ws(l) == BEGIN_SIGNATURE {
            sig_start = Some(n);
            break;
        }
        let l = match l.strip_prefix(b"- ") {
            Some(unescaped) => unescaped,
            None if l.starts_with(b"-----") => return Err(CleartextError::UnexpectedArmor(n)),
            None => l,
        };
        let l = trim_ws(l);
        if !text.is_empty() {
            signed.extend_from_slice(b"\r\n");
        }
        text.extend_from_slice(l);
        text.push(b'\n');
        signed.extend_from_slice(l);
    }
    let sig_start = sig_start.ok_or(CleartextError::NoSignature)?;
    // The signature blocks: from their BEGIN line to the end of the input, and
    // nothing but blank lines beside them.
    let offset = nth_line_offset(input, sig_start - 1);
    let blocks = armor::decode_only_blocks(&input[offset..], sig_start)?;
    let mut signatures = Vec::new();
    for b in blocks {
        if b.label != Label::Signature {
            return Err(CleartextError::NotSignature);
        }
        signatures.extend_from_slice(&b.data);
    }
    Ok(Cleartext { text, signed, hashes, signatures })
}

/// Reads one header line (trailing whitespace removed): `Hash: LIST`.
fn hash_header(l: &[u8], hashes: &mut Vec<u8>) -> Result<(), &'static str> {
    let Some(list) = l.strip_prefix(b"Hash: ") else {
        return Err("only 'Hash:' armor headers may come before the blank line that starts the text");
    };
    if l.len() > MAX_HASH_LINE {
        return Err("'Hash:' header longer than 60 characters");
    }
    let tokens: Vec<&[u8]> = list.split(|&b| b == b',').collect();
    for (i, t) in tokens.iter().enumerate() {
        let t = t.trim_ascii_start();
        let t = &t[..t.iter().rposition(|&b| b != b' ' && b != b'\t').map_or(0, |e| e + 1)];
        if t.is_empty() && i > 0 && i == tokens.len() - 1 {
            continue; // "SHA256," — a trailing comma, which gpg accepts
        }
        match HASH_NAMES.iter().find(|(n, _)| n.as_bytes() == t) {
            Some(&(_, id)) => hashes.push(id),
            None => return Err("'Hash:' header names an unknown or refused hash algorithm"),
        }
    }
    Ok(())
}

impl Cleartext {
    /// Checks that every signature's hash algorithm was announced by a
    /// `Hash:` header. With no header at all, only v6 signatures pass
    /// (RFC 9580 §7.1 says not to emit it for them; gpg assumes MD5 and so
    /// refuses any v4 signature).
    pub fn check_hash_headers<'a>(
        &self,
        sigs: impl IntoIterator<Item = &'a CheckedSig>,
    ) -> Result<(), CleartextError> {
        for s in sigs {
            let exempt = self.hashes.is_empty() && s.version() == 6;
            if !exempt && !self.hashes.contains(&s.hash_algo()) {
                let announced = if self.hashes.is_empty() {
                    "no 'Hash:' header".to_string()
                } else {
                    self.hashes.iter().map(|&h| hash_name(h)).collect::<Vec<_>>().join(", ")
                };
                return Err(CleartextError::HashNotAnnounced { hash: hash_name(s.hash_algo()), announced });
            }
        }
        Ok(())
    }
}

/// A line without its trailing spaces, tabs and CRs (gpg's set for cleartext).
fn trim_ws(l: &[u8]) -> &[u8] {
    let end = l.iter().rposition(|&b| !matches!(b, b' ' | b'\t' | b'\r')).map_or(0, |i| i + 1);
    &l[..end]
}

/// Where line `n` (0-based) starts.
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

    fn sig(version: u8, hash_algo: u8) -> CheckedSig {
        use umd_pgp_wire::{Field, Sig};
        crate::packet::tests::checked_sig(Sig {
            version,
            sig_type: 1,
            pk_algo: 22,
            hash_algo,
            hashed: vec![],
            unhashed: vec![],
            left16: [0; 2],
            salt: vec![],
            values: vec![Field::Mpi(vec![1]), Field::Mpi(vec![1])],
        })
    }

    #[test]
    fn text_is_unescaped_and_canonicalized_for_hashing_and_written_as_signed() {
        let c = split(DOC.as_bytes()).unwrap();
        // The trailing blanks are not signed: neither hashed nor written out.
        assert_eq!(c.text, b"Origin: Debian\n-----dashed\n\nlast line\n");
        assert_eq!(c.signed, b"Origin: Debian\r\n-----dashed\r\n\r\nlast line");
        assert_eq!(c.hashes, vec![8]);
        assert_eq!(c.signatures, vec![0x89]);
    }

    #[test]
    fn crlf_documents_and_trailing_carriage_returns_canonicalize_the_same() {
        let a = split(DOC.as_bytes()).unwrap();
        let b = split(DOC.replace('\n', "\r\n").as_bytes()).unwrap();
        assert_eq!((&a.signed, &a.text), (&b.signed, &b.text));
        let c = split(DOC.replace("last line", "last line \r \r").as_bytes()).unwrap();
        assert_eq!((&a.signed, &a.text), (&c.signed, &c.text));
        // A CR inside a line is text.
        let d = split(DOC.replace("last line", "last\rline").as_bytes()).unwrap();
        assert!(d.signed.ends_with(b"last\rline"));
    }

    #[test]
    fn a_needless_dash_escape_is_removed_and_an_unescaped_dash_line_kept() {
        let c =
            split(DOC.replace("Origin", "- Origin").replace("last line", "-x and --").as_bytes()).unwrap();
        assert_eq!(c.text, b"Origin: Debian\n-----dashed\n\n-x and --\n");
    }

    #[test]
    fn an_unescaped_armor_line_in_the_text_is_refused() {
        let doc = DOC.replace("- -----dashed", "-----dashed");
        assert_eq!(split(doc.as_bytes()), Err(CleartextError::UnexpectedArmor(5)));
        let doc = DOC.replace("- -----dashed", "-----END PGP SIGNATURE-----");
        assert_eq!(split(doc.as_bytes()), Err(CleartextError::UnexpectedArmor(5)));
    }

    #[test]
    fn only_well_formed_hash_headers_may_precede_the_text() {
        let with = |h: &str| split(DOC.replace("Hash: SHA256\n", h).as_bytes());
        for ok in [
            "Hash: SHA256, SHA512\n",
            "Hash: SHA512,SHA256,\n",
            "Hash: SHA512\nHash: SHA256\n",
            "Hash:  SHA256  \n",
            "Hash: SHA1 , RIPEMD160,SHA224,SHA384\n",
            "",
        ] {
            assert!(with(ok).is_ok(), "{ok:?}");
        }
        assert_eq!(with("Hash: SHA512, SHA256\n").unwrap().hashes, vec![10, 8]);
        for bad in [
            "Comment: hello\n",
            "Version: 1\n",
            "hash: SHA256\n",
            "Hash: sha256\n",
            "Hash:SHA256\n",
            "Hash:\tSHA256\n",
            " Hash: SHA256\n",
            "Hash: MD5\n",
            "Hash: SHA3-256\n",
            "Hash: SHA512,,SHA256\n",
            "Hash: ,SHA256\n",
            "Hash: \n",
            "Hash: SHA256, SHA384, SHA512, SHA224, SHA1, RIPEMD160, SHA256\n",
            "not a header\n",
        ] {
            assert!(
                matches!(with(bad), Err(CleartextError::BadHeader { line: 2, .. })),
                "{bad:?}: {:?}",
                with(bad)
            );
        }
        // No blank line: the first line of text is taken for a header.
        let no_blank = DOC.replace("Hash: SHA256\n\n", "Hash: SHA256\n");
        assert!(matches!(split(no_blank.as_bytes()), Err(CleartextError::BadHeader { line: 3, .. })));
    }

    #[test]
    fn every_signature_hash_must_be_announced_except_v6_without_headers() {
        let c = split(DOC.as_bytes()).unwrap();
        assert!(c.check_hash_headers(&[sig(4, 8)]).is_ok());
        let e = c.check_hash_headers(&[sig(4, 8), sig(4, 10)]).unwrap_err();
        assert_eq!(e.to_string(), "a signature uses SHA512, which the document's 'Hash:' header does not announce (SHA256); gpgv refuses such a document too");
        assert!(c.check_hash_headers(&[sig(6, 10)]).is_err(), "a present header binds v6 signatures too");
        let bare = split(DOC.replace("Hash: SHA256\n", "").as_bytes()).unwrap();
        assert!(bare.check_hash_headers(&[sig(6, 10)]).is_ok());
        assert!(bare.check_hash_headers(&[sig(4, 8)]).is_err());
    }

    #[test]
    fn unsigned_text_around_the_armor_is_refused_and_blank_lines_are_not() {
        assert!(split(format!("\n  \n{DOC}\n\n").as_bytes()).is_ok());
        assert_eq!(split(format!("garbage\n{DOC}").as_bytes()), Err(CleartextError::TextBefore(1)));
        assert_eq!(
            split(format!("{DOC}garbage\n").as_bytes()),
            Err(CleartextError::Armor(ArmorError::TextOutside { line: 12 }))
        );
        // Two signature blocks: both read.
        let block = &DOC[DOC.find("-----BEGIN PGP SIGNATURE").unwrap()..];
        assert_eq!(split(format!("{DOC}\n{block}").as_bytes()).unwrap().signatures, vec![0x89, 0x89]);
        // A second signed message after the first is unsigned text to this one.
        assert!(matches!(split(format!("{DOC}{DOC}").as_bytes()), Err(CleartextError::Armor(_))));
    }

    #[test]
    fn malformed_documents_are_refused_with_a_reason() {
        assert_eq!(split(b"hello"), Err(CleartextError::NotCleartext));
        assert_eq!(
            split(b"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\ntext\n"),
            Err(CleartextError::NoSignature)
        );
        let msg = DOC.replace(
            "PGP SIGNATURE-----\n\niQ==\n-----END PGP SIGNATURE",
            "PGP MESSAGE-----\n\niQ==\n-----END PGP MESSAGE",
        );
        assert!(split(msg.as_bytes()).is_err());
        let no_blank = DOC.replace("SIGNATURE-----\n\niQ==", "SIGNATURE-----\niQ==");
        assert_eq!(split(no_blank.as_bytes()), Err(CleartextError::Armor(ArmorError::Header { line: 9 })));
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
