//! Generated lies: structure-aware mutations of honest handler descriptions,
//! and the property every one of them must keep.
//!
//! The named lies (`handlers/pgp-liar`, `handlers/rpm-liar`) are the lies we
//! thought of. This crate makes the others: it takes the honest description
//! of a real input (a Debian keyring's certificate, an `InRelease`'s
//! signatures, gpg-made v4 and Sequoia-made v6 keys and signatures, the RPM
//! corpus's packages and database headers) and mutates it *as a value* —
//! every field, the nesting of embedded signatures, duplication, reordering,
//! deletion, and growth of every vector up to the size bound — driven by a
//! string of choice bytes ([`Choices`]). The same bytes give the same lie, so
//! a proptest (`tests/generated.rs`) and a cargo-fuzz target (`fuzz/`,
//! `pgp_lies` and `rpm_lies`) share one generator, and a fuzzer's findings
//! replay as ordinary tests. Every fuzz target's property lives in
//! [`targets`], so `tests/corpora.rs` replays every committed corpus under
//! plain `cargo test`.
//!
//! The property ([`pgp::judge`], [`rpm::judge`]): the manager's decoding and
//! check of the lie never panic and never overflow the stack (a test
//! process would die), stay within the memory figure (four times the input and
//! 16 MiB, measured by the caller's counting allocator), and when the manager
//! accepts a lie, what it accepted equals what it accepts from the honest
//! description: a lie that passes changed nothing.

pub mod pgp;
pub mod rpm;
pub mod targets;

use std::fmt::Debug;

/// The honest inputs committed under `fuzz/streams` (made by
/// `fuzz/streams/make`): `(name, bytes)`.
pub fn streams(kind: &str) -> Vec<(String, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/streams").join(kind);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap_or_default()))
        .collect();
    out.sort();
    out
}

/// A source of choices: reads numbers from a byte string, then zeros. The
/// same bytes make the same choices, so a lie is its bytes.
pub struct Choices<'a> {
    bytes: &'a [u8],
}

impl<'a> Choices<'a> {
    /// Choices read from `bytes`.
    pub fn new(bytes: &'a [u8]) -> Choices<'a> {
        Choices { bytes }
    }

    /// Whether every byte was used.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The next byte (0 once the bytes are used up).
    pub fn byte(&mut self) -> u8 {
        match self.bytes.split_first() {
            Some((&b, rest)) => {
                self.bytes = rest;
                b
            }
            None => 0,
        }
    }

    /// A number in `0..n` (0 for `n` ≤ 1), from as few bytes as `n` needs.
    pub fn below(&mut self, n: usize) -> usize {
        if n <= 1 {
            return 0;
        }
        let mut v = 0usize;
        let mut range = 1usize;
        while range < n {
            v = (v << 8) | usize::from(self.byte());
            range = range.saturating_mul(256);
        }
        v % n
    }

    /// True once in `n` draws, and never once the bytes are used up: a
    /// rare or costly lie must be asked for, or every input that ends at
    /// the draw (most of a fuzzer's short inputs) would make it.
    pub fn one_in(&mut self, n: usize) -> bool {
        !self.is_empty() && self.below(n) == 0
    }

    /// A 32-bit number.
    pub fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }
}

/// Changes a number the ways that find bugs: by one, to the edges, to
/// anything, one bit.
pub fn number(x: u64, max: u64, c: &mut Choices) -> u64 {
    match c.below(7) {
        0 => x.wrapping_add(1) & max,
        1 => x.wrapping_sub(1) & max,
        2 => 0,
        3 => max,
        4 => u64::from(c.u32()) & max,
        5 => x ^ (1 << c.below(max.count_ones().max(1) as usize)),
        _ => (x.wrapping_mul(2)) & max,
    }
}

/// Changes a byte string: a bit, a byte, shorter, longer, a piece cut out,
/// doubled, emptied.
pub fn bytes(v: &mut Vec<u8>, c: &mut Choices) {
    match c.below(7) {
        0 if !v.is_empty() => {
            let i = c.below(v.len());
            v[i] ^= 1 << c.below(8);
        }
        1 if !v.is_empty() => {
            let i = c.below(v.len());
            v[i] = c.byte();
        }
        2 => {
            let n = c.below(v.len() + 1);
            v.truncate(n);
        }
        3 => {
            let n = 1 + c.below(64);
            let b = c.byte();
            v.extend(std::iter::repeat_n(b, n));
        }
        4 if !v.is_empty() => {
            let at = c.below(v.len());
            let n = c.below(v.len() - at + 1);
            v.drain(at..at + n);
        }
        5 => {
            let copy = v.clone();
            v.extend_from_slice(&copy);
        }
        _ => v.clear(),
    }
}

/// Changes a vector: an element deleted, duplicated, two swapped, one
/// moved, the order reversed, cut short, or a new one (from `make`)
/// inserted.
pub fn vector<T: Clone>(v: &mut Vec<T>, c: &mut Choices, make: impl FnOnce(&mut Choices) -> Option<T>) {
    match c.below(7) {
        0 if !v.is_empty() => {
            let i = c.below(v.len());
            v.remove(i);
        }
        1 if !v.is_empty() => {
            let i = c.below(v.len());
            let e = v[i].clone();
            let at = c.below(v.len() + 1);
            v.insert(at, e);
        }
        2 if v.len() > 1 => {
            let (i, j) = (c.below(v.len()), c.below(v.len()));
            v.swap(i, j);
        }
        3 if v.len() > 1 => {
            let i = c.below(v.len());
            let e = v.remove(i);
            let at = c.below(v.len() + 1);
            v.insert(at, e);
        }
        4 => v.reverse(),
        5 => {
            let n = c.below(v.len() + 1);
            v.truncate(n);
        }
        _ => {
            if let Some(e) = make(c) {
                let at = c.below(v.len() + 1);
                v.insert(at, e);
            }
        }
    }
}

/// One growth mutation in this many of the draws that could grow: a lie
/// grown to the bound takes 20-100 ms to make and judge where a median lie
/// takes 10-20 µs, for little new coverage, and a fuzzer that met growth one
/// draw in 32 spent most of its time growing (`fuzz/README.md`, "Third
/// session"). Rarer growth keeps the lie targets fast; the tests grow every
/// kind of vector of every input to the bound each time (`pgp::grown`,
/// `rpm::grown`, `tests/generated.rs`).
pub const GROWTH_ODDS: usize = 256;

/// Changes a vector of values: the vector itself ([`vector`], a new element
/// from `make`), or one of its elements (`change`).
pub fn elements<T: Clone>(
    v: &mut Vec<T>,
    c: &mut Choices,
    make: impl FnOnce(&mut Choices) -> Option<T>,
    change: impl FnOnce(&mut T, &mut Choices),
) {
    if c.below(2) == 0 {
        vector(v, c, make)
    } else if let Some(e) = pick(v, c) {
        change(e, c)
    }
}

/// One element of `v`, if it has any.
pub fn pick<'v, T>(v: &'v mut [T], c: &mut Choices) -> Option<&'v mut T> {
    if v.is_empty() {
        return None;
    }
    let i = c.below(v.len());
    v.get_mut(i)
}

/// A copy of an honest description with one to eight mutations (`mutate`,
/// given the size bound `room`), fewer if the choices run out or once the
/// description is past the bound: the manager refuses such a reply by its
/// length before decoding a byte, so mutating it further would only cost the
/// generator (doubling a vector grown to the bound made lies of 40 MB that
/// took seconds to make and microseconds to refuse).
pub fn mutated<D: Clone + serde::Serialize>(
    honest: &D,
    room: usize,
    c: &mut Choices,
    mutate: impl Fn(&mut D, usize, &mut Choices),
) -> D {
    let mut d = honest.clone();
    let n = 1 + c.below(8);
    for _ in 0..n {
        mutate(&mut d, room, c);
        if c.is_empty() || encoded_len(&d) > room {
            break;
        }
    }
    d
}

/// The bytes `value` takes on the wire (postcard), counted without being
/// written.
pub fn encoded_len<T: serde::Serialize + ?Sized>(value: &T) -> usize {
    postcard::serialize_with_flavor(value, postcard::ser_flavors::Size::default()).unwrap_or(usize::MAX)
}

/// A lie in the encoding itself: one byte of it replaced.
pub fn corrupt_byte(encoded: &mut [u8], c: &mut Choices) {
    if !encoded.is_empty() {
        let i = c.below(encoded.len());
        encoded[i] = c.byte();
    }
}

/// The property, given what the manager made of a reply: refused is
/// `Ok(false)`; accepted, it must be what the honest description gives
/// (`honest`), `Ok(true)`; accepted with another result, the property is
/// broken (`Err`).
pub fn same_as_honest<T: PartialEq + Debug, E>(
    accepted: Result<T, E>,
    honest: impl FnOnce() -> Result<T, String>,
) -> Result<bool, String> {
    let Ok(accepted) = accepted else { return Ok(false) };
    let want = honest()?;
    if accepted != want {
        return Err(format!(
            "a lie was accepted with another result:\n accepted {accepted:?}\n honest   {want:?}"
        ));
    }
    Ok(true)
}

/// Grows `v` with copies of one of its elements (or `fallback`) until about
/// `room` more bytes would be on the wire: a vector grown to the size bound.
pub fn grow<T: Clone + serde::Serialize>(v: &mut Vec<T>, c: &mut Choices, fallback: T, room: usize) {
    let e = if v.is_empty() { fallback } else { v[c.below(v.len())].clone() };
    let each = encoded_len(&e).max(1);
    let n = (room / each).min(4 << 20);
    v.extend(std::iter::repeat_n(e, n));
}
