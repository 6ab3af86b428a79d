//! `umd-rpm-liar-handler`: an RPM handler that lies, for the manager's tests.
//! Never shipped: only tests embed it (`crates/umd-rpm/tests/lies.rs`).
//!
//! It describes each input honestly with [`umd_rpm_handler::describe`], then
//! falsifies the description as its one argument says. Where a lie finds nothing
//! to change (the start-up probe has no files), the description stays honest, so
//! the liar passes `post_start` and lies where it matters.
//!
//! The file list is not on the wire (the manager derives it from the values it
//! checked), so lies about files are lies about those values:
//!
//! * `change-digest` — the first non-empty file digest in the `FILEDIGESTS`
//!   value is changed (one hex digit): a foreign digest smuggled in.
//! * `change-file-list` — the first base name in the `BASENAMES` value is
//!   changed: a file renamed in the list the manager derives.
//! * `drop-file` — the last base name is left out of `BASENAMES`: a file the
//!   manager's list would not hold.
//! * `hide-digests` — `FILEDIGESTS` is described without its value.
//! * `move-digests` — `FILEDIGESTS`' index entry claims the `BASENAMES` offset.
//! * `change-name` — the package name becomes `trusted`.
//! * `hide-signature` — the header signature tags are described without value.
//! * `swap-signature` — every header signature becomes the first one the liar
//!   was ever shown (remembered across requests).
//! * `claim-signature` — a database header's signature tags are claimed for
//!   the region tag's neighbour: the entry's tag number changes.
//! * `shrink-data` — the main header claims a data store 16 bytes shorter.
//! * `crash` — the handler aborts (a parser taken over, or a bug) instead of
//!   answering about a header with files.
//!
//! Lies about size, within every bound the manager announces (the reply is as
//! large as the input allows, [`umd_rpm_wire::max_description`]), on headers
//! with files — or on every input, the start-up probe's included, with a
//! second argument `always`:
//!
//! * `bloat-strings` — `BASENAMES` holds as many empty names as the reply can
//!   carry: one byte each on the wire, 24 in memory.
//! * `bloat-entries` — the main header holds as many empty index entries as
//!   the reply can carry.
//! * `stall-frame` — announces as large a reply as the input allows, sends
//!   4 KiB of it and waits.
//! * `many-blobs` — a database's answer holds as many empty blobs as it can.
//!
//! Not a lie, for the recovery tests:
//!
//! * `slow MS` — waits MS milliseconds before answering about a
//!   header with files (time for a recovery test to kill it under a request).

use std::cell::RefCell;

use umd_rpm_wire::{tag, Command, DbBlob, DbBlobs, Description, Entry, Value};

fn entry(d: &mut Description, t: u32) -> Option<&mut Entry> {
    d.main.entries.iter_mut().find(|e| e.tag == t)
}

fn flip(s: &mut [u8]) {
    if let Some(c) = s.first_mut() {
        *c = if *c == b'0' { b'1' } else { b'0' };
    }
}

fn sig_entries(d: &mut Description) -> impl Iterator<Item = &mut Entry> {
    let sig = d.signature.as_mut().map(|s| s.entries.iter_mut());
    sig.into_iter()
        .flatten()
        .chain(d.main.entries.iter_mut())
        .filter(|e| matches!(e.tag, tag::RSAHEADER | tag::DSAHEADER) && matches!(e.value, Value::Bin(_)))
}

/// How many bytes the size bound of a reply about `input_len` bytes leaves
/// beside the honest description `d`.
fn room(d: &Description, input_len: usize) -> usize {
    let honest = d.encode().map_or(0, |b| b.len());
    umd_rpm_wire::max_description(input_len).saturating_sub(honest + 64)
}

fn lie(
    how: &str,
    always: bool,
    d: &mut Description,
    input_len: usize,
    remembered: &RefCell<Option<Vec<u8>>>,
) {
    let room = room(d, input_len);
    match how {
        "change-digest" => {
            if let Some(Entry { value: Value::StringArray(v), .. }) = entry(d, tag::FILEDIGESTS) {
                if let Some(digest) = v.iter_mut().find(|s| !s.is_empty()) {
                    flip(digest);
                }
            }
        }
        "change-file-list" => {
            if let Some(Entry { value: Value::StringArray(v), .. }) = entry(d, tag::BASENAMES) {
                if let Some(name) = v.first_mut() {
                    name.push(b'x');
                }
            }
        }
        "drop-file" => {
            if let Some(Entry { value: Value::StringArray(v), .. }) = entry(d, tag::BASENAMES) {
                v.pop();
            }
        }
        "hide-digests" => {
            if let Some(e) = entry(d, tag::FILEDIGESTS) {
                e.value = Value::Opaque;
            }
        }
        "move-digests" => {
            let Some(off) = entry(d, tag::BASENAMES).map(|e| e.offset) else { return };
            if let Some(e) = entry(d, tag::FILEDIGESTS) {
                e.offset = off;
            }
        }
        "change-name" => {
            if let Some(e) = entry(d, tag::NAME) {
                e.value = Value::String(b"trusted".to_vec());
            }
        }
        "hide-signature" => sig_entries(d).for_each(|e| e.value = Value::Opaque),
        "swap-signature" => {
            let mut r = remembered.borrow_mut();
            for e in sig_entries(d) {
                let Value::Bin(b) = &mut e.value else { continue };
                match &*r {
                    None => *r = Some(b.clone()),
                    Some(first) => {
                        e.count = first.len() as u32;
                        *b = first.clone();
                    }
                }
            }
        }
        "claim-signature" => sig_entries(d).for_each(|e| e.tag = 1),
        "shrink-data" if has_files(d) => d.main.dl = d.main.dl.saturating_sub(16),
        "bloat-strings" if always || has_files(d) => {
            let names = Value::StringArray(vec![Vec::new(); room]);
            match entry(d, tag::BASENAMES) {
                Some(e) => e.value = names,
                None => d.main.entries.push(Entry {
                    tag: tag::BASENAMES,
                    ty: 8,
                    offset: 0,
                    count: 0,
                    value: names,
                }),
            }
        }
        "bloat-entries" if always || has_files(d) => {
            let empty = Entry { tag: 0, ty: 0, offset: 0, count: 0, value: Value::Opaque };
            d.main.entries.extend(std::iter::repeat_n(empty, room / 5));
        }
        _ => {}
    }
}

fn has_files(d: &mut Description) -> bool {
    entry(d, tag::BASENAMES).is_some()
}

fn main() -> std::process::ExitCode {
    let how = std::env::args().nth(1).unwrap_or_default();
    // Lie on every request, the start-up probe's included.
    let always = std::env::args().nth(2).as_deref() == Some("always");
    let remembered = RefCell::new(None);
    umd_handler::serve_framed(|request, out| {
        let (&c, input) = request.split_first().ok_or("empty request")?;
        let command = Command::from_u8(c).ok_or("unknown command")?;
        if command == Command::DbBlobs {
            let mut blobs = umd_rpm_handler::db::read(input)?;
            if how == "many-blobs" {
                // Two bytes each: as many as the rest of the size bound holds.
                let used = DbBlobs { headers: blobs.clone() }.encode().map_err(|e| e.to_string())?.len();
                let room = DbBlobs::max_reply(input.len()).saturating_sub(used + 16);
                blobs.extend(std::iter::repeat_n(DbBlob { hnum: 0, blob: Vec::new() }, room / 2));
            }
            out.extend_from_slice(&DbBlobs { headers: blobs }.encode().map_err(|e| e.to_string())?);
            return Ok(());
        }
        let mut d = umd_rpm_handler::describe(command, input)?;
        if how == "crash" && has_files(&mut d) {
            std::process::abort();
        }
        if how == "stall-frame" && (always || has_files(&mut d)) {
            // A reply frame header announcing as much as the manager takes,
            // 4 KiB of it, then nothing: the manager must not hold the
            // announced size waiting for the rest.
            let mut frame = vec![b'U', b'M', 1, 2];
            frame.extend_from_slice(&(umd_rpm_wire::max_description(input.len()) as u32).to_le_bytes());
            frame.extend_from_slice(&[0u8; 4096]);
            std::io::Write::write_all(&mut std::io::stdout(), &frame).map_err(|e| e.to_string())?;
            std::io::Write::flush(&mut std::io::stdout()).map_err(|e| e.to_string())?;
            let _ = std::io::Read::read(&mut std::io::stdin(), &mut [0u8; 1]);
            std::process::abort();
        }
        if how == "slow" && has_files(&mut d) {
            let ms: u64 = std::env::args().nth(2).and_then(|a| a.parse().ok()).unwrap_or(300);
            let ts = rustix::time::Timespec {
                tv_sec: (ms / 1000) as i64,
                tv_nsec: ((ms % 1000) * 1_000_000) as i64,
            };
            // ppoll(2) on no fds: on the allow-list, where nanosleep is not.
            let _ = rustix::event::poll(&mut [], Some(&ts));
        }
        lie(&how, always, &mut d, input.len(), &remembered);
        out.extend_from_slice(&d.encode().map_err(|e| e.to_string())?);
        Ok(())
    })
}
