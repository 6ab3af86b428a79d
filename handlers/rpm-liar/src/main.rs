//! `umd-rpm-liar-handler`: an RPM handler that lies, for the manager's tests.
//! Never shipped: only tests embed it (`crates/umd-rpm/tests/lies.rs`).
//!
//! It describes each input honestly with [`umd_rpm_handler::describe`], then
//! falsifies the description as its one argument says. Where a lie finds nothing
//! to change (the start-up probe has no files), the description stays honest, so
//! the liar passes `post_start` and lies where it matters.
//!
//! * `change-digest` — the first non-empty file digest is changed (one hex digit),
//!   in the `FILEDIGESTS` value and in the file list: a foreign digest smuggled in.
//! * `change-file-list` — the same change in the file list only.
//! * `drop-file` — the last file with a digest is left out of the file list.
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
//! * `slow MS` — not a lie: waits MS milliseconds before answering about a
//!   header with files (time for a recovery test to kill it under a request).

use std::cell::RefCell;

use umd_rpm_wire::{tag, Command, Description, Entry, Value};

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

fn lie(how: &str, d: &mut Description, remembered: &RefCell<Option<Vec<u8>>>) {
    match how {
        "change-digest" | "change-file-list" => {
            let Some(i) = d.files.iter().position(|f| !f.digest.is_empty()) else { return };
            flip(&mut d.files[i].digest);
            if how == "change-digest" {
                if let Some(Entry { value: Value::StringArray(v), .. }) = entry(d, tag::FILEDIGESTS) {
                    flip(&mut v[i]);
                }
            }
        }
        "drop-file" => {
            if let Some(i) = d.files.iter().rposition(|f| !f.digest.is_empty()) {
                d.files.remove(i);
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
        "shrink-data" if !d.files.is_empty() => d.main.dl = d.main.dl.saturating_sub(16),
        _ => {}
    }
}

fn main() -> std::process::ExitCode {
    let how = std::env::args().nth(1).unwrap_or_default();
    let remembered = RefCell::new(None);
    umd_handler::serve_framed(|request, out| {
        let (&c, input) = request.split_first().ok_or("empty request")?;
        let command = if c == Command::Package as u8 { Command::Package } else { Command::DbHeader };
        let mut d = umd_rpm_handler::describe(command, input)?;
        if how == "crash" && !d.files.is_empty() {
            std::process::abort();
        }
        if how == "slow" && !d.files.is_empty() {
            let ms: u64 = std::env::args().nth(2).and_then(|a| a.parse().ok()).unwrap_or(300);
            let ts = rustix::time::Timespec {
                tv_sec: (ms / 1000) as i64,
                tv_nsec: ((ms % 1000) * 1_000_000) as i64,
            };
            // ppoll(2) on no fds: on the allow-list, where nanosleep is not.
            let _ = rustix::event::poll(&mut [], Some(&ts));
        }
        lie(&how, &mut d, &remembered);
        out.extend_from_slice(&d.encode().map_err(|e| e.to_string())?);
        Ok(())
    })
}
