//! ASCII armor (RFC 9580 §6.2): the manager removes it itself — a bounded,
//! line-oriented step — so the handler only ever sees binary packets.
//!
//! The grammar is gpg's: after the `-----BEGIN PGP …-----` line come armor
//! headers (`Key: value`), then a blank line (which RFC 9580 §6.2 requires
//! and gpg enforces: without it, gpg takes the first base64 line for a bad
//! header and refuses), then base64, an optional CRC-24 line and the
//! matching `-----END PGP …-----` line.

use base64::Engine;

/// Largest armored input accepted (64 MiB): the decoded data is at most 3/4 of it.
pub const MAX_ARMORED: usize = 64 << 20;

/// What an armor block says it holds (its `BEGIN PGP ...` label).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Label {
    /// `PUBLIC KEY BLOCK`.
    PublicKey,
    /// `SIGNATURE`.
    Signature,
    /// `MESSAGE`.
    Message,
    /// Anything else (kept verbatim).
    Other(String),
}

impl Label {
    fn parse(s: &str) -> Label {
        match s {
            "PUBLIC KEY BLOCK" => Label::PublicKey,
            "SIGNATURE" => Label::Signature,
            "MESSAGE" => Label::Message,
            other => Label::Other(other.to_string()),
        }
    }
}

/// One decoded armor block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// Its label.
    pub label: Label,
    /// The decoded binary data.
    pub data: Vec<u8>,
}

/// Why armor could not be removed. Messages say which line.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArmorError {
    /// The input is larger than [`MAX_ARMORED`].
    #[error("armored input of {0} bytes exceeds the {MAX_ARMORED}-byte limit")]
    TooLarge(usize),
    /// No `-----BEGIN PGP ...-----` line.
    #[error("no armor header line (-----BEGIN PGP ...-----)")]
    NoBegin,
    /// A block without its `-----END PGP ...-----` line.
    #[error("armor block {label:?} opened on line {line} is not closed")]
    NoEnd {
        /// The block's label.
        label: String,
        /// Line of its BEGIN.
        line: usize,
    },
    /// The END label differs from the BEGIN label.
    #[error("armor block opened as {begin:?} is closed as {end:?} (line {line})")]
    Mismatch {
        /// BEGIN label.
        begin: String,
        /// END label.
        end: String,
        /// Line of the END.
        line: usize,
    },
    /// Invalid base64.
    #[error("invalid base64 in the armor block starting on line {line}")]
    Base64 {
        /// Line of the BEGIN.
        line: usize,
    },
    /// The CRC-24 checksum does not match the data.
    #[error("armor checksum mismatch in the block starting on line {line} (the data was altered)")]
    Checksum {
        /// Line of the BEGIN.
        line: usize,
    },
    /// A line between the BEGIN line and the blank line is not an armor
    /// header (`Key: value`): the blank line is missing, or a header is
    /// malformed.
    #[error("line {line}: expected an armor header ('Key: value') or the blank line before the data")]
    Header {
        /// The line.
        line: usize,
    },
    /// A line after the checksum line other than the END line.
    #[error("line {line}: data after the armor checksum line")]
    AfterChecksum {
        /// The line.
        line: usize,
    },
    /// Text outside any armor block where only blank lines may be (after a
    /// cleartext document's signed text).
    #[error("line {line}: text outside the armor blocks")]
    TextOutside {
        /// The line.
        line: usize,
    },
}

/// CRC-24 (RFC 9580 §6.1).
pub fn crc24(data: &[u8]) -> u32 {
    const INIT: u32 = 0x00B7_04CE;
    const POLY: u32 = 0x0186_4CFB;
    let mut crc = INIT;
    for &b in data {
        crc ^= u32::from(b) << 16;
        for _ in 0..8 {
            crc <<= 1;
            if crc & 0x0100_0000 != 0 {
                crc ^= POLY;
            }
        }
    }
    crc & 0x00FF_FFFF
}

/// Whether `input` looks armored (first non-blank line starts with `-----BEGIN PGP`).
pub fn is_armored(input: &[u8]) -> bool {
    let trimmed = input.iter().position(|b| !b.is_ascii_whitespace()).map(|i| &input[i..]).unwrap_or(&[]);
    trimmed.starts_with(b"-----BEGIN PGP ")
}

fn label_of(line: &str, prefix: &str) -> Option<String> {
    line.strip_prefix(prefix)?.strip_suffix("-----").map(str::to_string)
}

/// Decodes every armor block in `input`, in order. Text outside blocks is ignored
/// (as gpg does); armor headers (`Key: value`) are skipped; the checksum line is
/// optional (RFC 9580 makes it so) but must match when present.
pub fn decode_all(input: &[u8]) -> Result<Vec<Block>, ArmorError> {
    decode(input, false, 1)
}

/// As [`decode_all`], but nothing except blank lines may lie outside the
/// blocks: for the signature blocks that end a cleartext document, where
/// anything else would be unsigned text beside signed text. `first_line`
/// numbers the first line of `input` in messages.
pub fn decode_only_blocks(input: &[u8], first_line: usize) -> Result<Vec<Block>, ArmorError> {
    decode(input, true, first_line)
}

fn decode(input: &[u8], only_blocks: bool, first_line: usize) -> Result<Vec<Block>, ArmorError> {
    if input.len() > MAX_ARMORED {
        return Err(ArmorError::TooLarge(input.len()));
    }
    let text = String::from_utf8_lossy(input);
    let mut lines = text
        .split('\n')
        .map(|l| l.trim_end_matches(['\r', ' ', '\t']))
        .enumerate()
        .map(|(n, l)| (n + first_line - 1, l));
    let mut blocks = Vec::new();
    while let Some((n, line)) = lines.next() {
        let Some(label) = label_of(line, "-----BEGIN PGP ") else {
            if only_blocks && !line.is_empty() {
                return Err(ArmorError::TextOutside { line: n + 1 });
            }
            continue;
        };
        let begin_line = n + 1;
        // Armor headers until the first blank line, which must be there.
        let mut body = String::new();
        let mut checksum: Option<String> = None;
        let mut in_headers = true;
        let mut closed = false;
        for (m, l) in lines.by_ref() {
            if let Some(end) = label_of(l, "-----END PGP ") {
                if end != label {
                    return Err(ArmorError::Mismatch { begin: label, end, line: m + 1 });
                }
                closed = true;
                break;
            }
            if in_headers {
                if l.is_empty() {
                    in_headers = false;
                    continue;
                }
                if l.contains(": ") {
                    continue;
                }
                return Err(ArmorError::Header { line: m + 1 });
            }
            if checksum.is_some() {
                // The checksum line ends the data: only blank lines, then the
                // END line, may follow (gpg refuses more data there; other
                // text it skips, which a strict reader need not).
                if l.is_empty() {
                    continue;
                }
                return Err(ArmorError::AfterChecksum { line: m + 1 });
            }
            if let Some(c) = l.strip_prefix('=') {
                checksum = Some(c.to_string());
                continue;
            }
            body.push_str(l.trim());
        }
        if !closed {
            return Err(ArmorError::NoEnd { label, line: begin_line });
        }
        let engine = base64::engine::general_purpose::STANDARD;
        let data = engine.decode(body.as_bytes()).map_err(|_| ArmorError::Base64 { line: begin_line })?;
        if let Some(c) = checksum {
            let sum = engine.decode(c.as_bytes()).map_err(|_| ArmorError::Base64 { line: begin_line })?;
            let want = crc24(&data).to_be_bytes();
            if sum.len() != 3 || sum[..] != want[1..] {
                return Err(ArmorError::Checksum { line: begin_line });
            }
        }
        blocks.push(Block { label: Label::parse(&label), data });
    }
    if blocks.is_empty() {
        return Err(ArmorError::NoBegin);
    }
    Ok(blocks)
}

/// Binary input as it is; armored input decoded and its blocks concatenated (a
/// keyring may be several armored blocks; a signature file one).
pub fn binary(input: &[u8]) -> Result<Vec<u8>, ArmorError> {
    if !is_armored(input) {
        return Ok(input.to_vec());
    }
    Ok(decode_all(input)?.into_iter().flat_map(|b| b.data).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn armor(label: &str, data: &[u8]) -> String {
        let engine = base64::engine::general_purpose::STANDARD;
        let b64 = engine.encode(data);
        let lines: Vec<&str> = b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect();
        let crc = crc24(data).to_be_bytes();
        format!(
            "-----BEGIN PGP {label}-----\nComment: test\n\n{}\n={}\n-----END PGP {label}-----\n",
            lines.join("\n"),
            engine.encode(&crc[1..])
        )
    }

    #[test]
    fn crc24_known_answer() {
        // RFC 4880's example implementation on "123456789".
        assert_eq!(crc24(b"123456789"), 0x21CF02);
    }

    #[test]
    fn armored_blocks_round_trip_and_checksums_are_checked() {
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let a = armor("SIGNATURE", &data);
        assert!(is_armored(a.as_bytes()));
        let blocks = decode_all(a.as_bytes()).unwrap();
        assert_eq!(blocks, vec![Block { label: Label::Signature, data: data.clone() }]);
        // Change one base64 character of the body: the checksum no longer matches.
        let mut tampered = a.clone().into_bytes();
        let j = a.find("\n\n").unwrap() + 5;
        tampered[j] = if tampered[j] == b'A' { b'B' } else { b'A' };
        assert!(matches!(
            decode_all(&tampered),
            Err(ArmorError::Checksum { .. }) | Err(ArmorError::Base64 { .. })
        ));
    }

    #[test]
    fn two_blocks_concatenate_and_binary_passes_through() {
        let a = format!("{}{}", armor("PUBLIC KEY BLOCK", b"one"), armor("PUBLIC KEY BLOCK", b"two"));
        assert_eq!(binary(a.as_bytes()).unwrap(), b"onetwo");
        assert_eq!(binary(&[0x99, 1, 2]).unwrap(), vec![0x99, 1, 2]);
    }

    #[test]
    fn unclosed_and_mismatched_blocks_are_refused() {
        assert!(matches!(
            decode_all(b"-----BEGIN PGP SIGNATURE-----\n\nAAAA\n"),
            Err(ArmorError::NoEnd { .. })
        ));
        assert!(matches!(
            decode_all(b"-----BEGIN PGP SIGNATURE-----\n\nAAAA\n-----END PGP MESSAGE-----\n"),
            Err(ArmorError::Mismatch { .. })
        ));
        assert_eq!(decode_all(b"hello"), Err(ArmorError::NoBegin));
    }

    #[test]
    fn a_block_without_the_blank_line_after_its_headers_is_refused_as_gpg_does() {
        let good = armor("SIGNATURE", b"data");
        assert!(decode_all(good.as_bytes()).is_ok());
        // gpg: "invalid armor header: iQ…", and the block is refused.
        let no_blank = good.replace("Comment: test\n\n", "");
        assert_eq!(decode_all(no_blank.as_bytes()), Err(ArmorError::Header { line: 2 }));
        let bad_header = good.replace("Comment: test", "Comment:test");
        assert_eq!(decode_all(bad_header.as_bytes()), Err(ArmorError::Header { line: 2 }));
    }

    #[test]
    fn nothing_but_the_end_line_may_follow_the_checksum() {
        let good = armor("SIGNATURE", b"data");
        let more = good.replace("\n-----END", "\nZGF0YQ==\n-----END");
        assert_eq!(decode_all(more.as_bytes()), Err(ArmorError::AfterChecksum { line: 6 }));
        let blank = good.replace("\n-----END", "\n\n-----END");
        assert_eq!(decode_all(blank.as_bytes()).unwrap()[0].data, b"data");
    }

    #[test]
    fn only_blank_lines_may_surround_blocks_where_text_would_be_unsigned() {
        let block = armor("SIGNATURE", b"data");
        let two = format!("{block}\n  \n{block}\n");
        assert_eq!(decode_only_blocks(two.as_bytes(), 1).unwrap().len(), 2);
        let between = format!("{block}junk\n{block}");
        assert_eq!(decode_all(between.as_bytes()).unwrap().len(), 2, "gpg ignores it elsewhere");
        assert_eq!(decode_only_blocks(between.as_bytes(), 10), Err(ArmorError::TextOutside { line: 16 }));
        let after = format!("{block}trailing\n");
        assert_eq!(decode_only_blocks(after.as_bytes(), 1), Err(ArmorError::TextOutside { line: 7 }));
    }

    proptest::proptest! {
        #[test]
        fn decoding_never_panics(input in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2000)) {
            let _ = decode_all(&input);
            let mut framed = b"-----BEGIN PGP SIGNATURE-----\n\n".to_vec();
            framed.extend_from_slice(&input);
            framed.extend_from_slice(b"\n-----END PGP SIGNATURE-----\n");
            let _ = decode_all(&framed);
        }
    }
}
