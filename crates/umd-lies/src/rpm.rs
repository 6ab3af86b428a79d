//! Lies about RPM header descriptions ([`umd_rpm_wire::Description`]).
//!
//! Database answers ([`umd_rpm_wire::DbBlobs`]) are not generated here: the
//! manager cannot check a list of blobs against a database it does not read
//! (see `docs/design.md`), only bound its decoding and check each blob as a
//! header; the `many-blobs` lie of `handlers/rpm-liar` and
//! `crates/umd-rpm/tests/memory.rs` hold that bound.

use umd_rpm::check::{self, Checked};
use umd_rpm_wire::{max_description, max_memory, Command, Description, Entry, Header, Value};
use umd_wire::decode::Budget;

use crate::{
    bytes, corrupt_byte, elements, encoded_len, grow, mutated, number, same_as_honest, vector, Choices,
    GROWTH_ODDS,
};

/// An honest input: the command, the bytes, and the honest description.
pub struct Honest {
    /// Package file or database header.
    pub command: Command,
    /// The input.
    pub input: Vec<u8>,
    /// The honest handler's description of it.
    pub description: Description,
}

impl Honest {
    /// Describes `input` with the honest handler's parser (in-process).
    pub fn new(command: Command, input: Vec<u8>) -> Result<Honest, String> {
        let description = umd_rpm_handler::describe(command, &input)?;
        Ok(Honest { command, input, description })
    }

    /// What the manager accepts from the honest description.
    pub fn checked(&self) -> Result<Checked<'_>, String> {
        let mut budget = Budget::new(max_memory(self.input.len()));
        check::check(self.command, &self.input, self.description.clone(), &mut budget)
            .map_err(|e| e.to_string())
    }
}

/// The lie `choices` make of `honest`'s description, encoded.
pub fn lie(honest: &Honest, choices: &[u8]) -> Vec<u8> {
    let mut c = Choices::new(choices);
    let d = mutated(&honest.description, max_description(honest.input.len()), &mut c, mutate);
    let mut out = d.encode().unwrap_or_default();
    if c.one_in(8) {
        corrupt_byte(&mut out, &mut c);
    }
    out
}

/// One vector of the honest description grown to the size bound (what
/// [`lie`] does once in [`GROWTH_ODDS`](crate::GROWTH_ODDS) of its growth
/// draws), `choices` picking which: the lie that costs the manager most
/// memory, for the tests to make every time.
pub fn grown(honest: &Honest, choices: &[u8]) -> Vec<u8> {
    let mut c = Choices::new(choices);
    let mut d = honest.description.clone();
    let used = encoded_len(&d);
    grow_somewhere(&mut d, &mut c, max_description(honest.input.len()).saturating_sub(used));
    d.encode().unwrap_or_default()
}

fn headers(d: &mut Description) -> Vec<&mut Header> {
    d.signature.iter_mut().chain(std::iter::once(&mut d.main)).collect()
}

fn mutate(d: &mut Description, room: usize, c: &mut Choices) {
    match c.below(8) {
        0 => d.lead = if c.below(2) == 0 { None } else { Some(number(d.lead.unwrap_or(0), u64::MAX, c)) },
        1 => {
            // The signature header dropped, or the main one in its place.
            d.signature = match c.below(2) {
                0 => None,
                _ => Some(d.main.clone()),
            }
        }
        2 => {
            let mut hs = headers(d);
            let i = c.below(hs.len());
            let h = &mut hs[i];
            match c.below(4) {
                0 => h.offset = number(h.offset, u64::MAX, c),
                1 => h.magic = !h.magic,
                2 => h.il = number(u64::from(h.il), u64::from(u32::MAX), c) as u32,
                _ => h.dl = number(u64::from(h.dl), u64::from(u32::MAX), c) as u32,
            }
        }
        3 => {
            let mut hs = headers(d);
            let i = c.below(hs.len());
            vector(&mut hs[i].entries, c, |c| {
                Some(Entry {
                    tag: c.u32() % 6000,
                    ty: c.u32() % 10,
                    offset: c.u32() as i32,
                    count: c.u32() % 64,
                    value: Value::Opaque,
                })
            });
        }
        4 | 5 => {
            if let Some(e) = pick_entry(d, c) {
                entry(e, c)
            }
        }
        6 => {
            if let Some(e) = pick_entry(d, c) {
                value(&mut e.value, c)
            }
        }
        _ => {
            // Growth into what is left of the bound, once in `GROWTH_ODDS`.
            if c.one_in(GROWTH_ODDS) {
                let used = encoded_len(&d);
                grow_somewhere(d, c, room.saturating_sub(used))
            }
        }
    }
}

fn pick_entry<'d>(d: &'d mut Description, c: &mut Choices) -> Option<&'d mut Entry> {
    let mut hs = headers(d);
    let i = c.below(hs.len());
    let h = hs.swap_remove(i);
    // Mostly the entries with values: that is where the lies that matter go.
    let used: Vec<usize> = (0..h.entries.len()).filter(|&j| h.entries[j].value != Value::Opaque).collect();
    let j = if !used.is_empty() && c.below(4) != 0 {
        used[c.below(used.len())]
    } else {
        c.below(h.entries.len().max(1))
    };
    h.entries.get_mut(j)
}

fn entry(e: &mut Entry, c: &mut Choices) {
    match c.below(5) {
        0 => e.tag = number(u64::from(e.tag), u64::from(u32::MAX), c) as u32,
        1 => e.ty = number(u64::from(e.ty), u64::from(u32::MAX), c) as u32,
        2 => e.offset = number(e.offset as u32 as u64, u64::from(u32::MAX), c) as u32 as i32,
        3 => e.count = number(u64::from(e.count), u64::from(u32::MAX), c) as u32,
        _ => e.value = Value::Opaque,
    }
}

fn value(v: &mut Value, c: &mut Choices) {
    match v {
        Value::Opaque => {
            *v = match c.below(3) {
                0 => Value::String(b"trusted".to_vec()),
                1 => Value::Int32(vec![c.u32()]),
                _ => Value::StringArray(vec![vec![b'a'; 64]]),
            }
        }
        Value::Int16(x) => {
            elements(x, c, |c| Some(c.u32() as u16), |e, c| *e = number(u64::from(*e), 0xffff, c) as u16)
        }
        Value::Int32(x) => elements(
            x,
            c,
            |c| Some(c.u32()),
            |e, c| *e = number(u64::from(*e), u64::from(u32::MAX), c) as u32,
        ),
        Value::Int64(x) => elements(
            x,
            c,
            |c| Some(u64::from(c.u32()) << 32 | u64::from(c.u32())),
            |e, c| *e = number(*e, u64::MAX, c),
        ),
        Value::String(s) | Value::Bin(s) => bytes(s, c),
        Value::StringArray(a) => elements(
            a,
            c,
            |c| {
                let mut s = Vec::new();
                bytes(&mut s, c);
                Some(s)
            },
            bytes,
        ),
    }
    // The same values in another variant.
    if c.one_in(8) {
        let taken = std::mem::replace(v, Value::Opaque);
        *v = match taken {
            Value::String(s) => Value::Bin(s),
            Value::Bin(s) => Value::String(s),
            Value::StringArray(mut a) => Value::String(a.pop().unwrap_or_default()),
            Value::Int16(x) => Value::Int32(x.into_iter().map(u32::from).collect()),
            Value::Int32(x) => Value::Int16(x.into_iter().map(|v| v as u16).collect()),
            Value::Int64(x) => Value::Int32(x.into_iter().map(|v| v as u32).collect()),
            Value::Opaque => Value::Opaque,
        };
    }
}

fn grow_somewhere(d: &mut Description, c: &mut Choices, room: usize) {
    match c.below(3) {
        0 => {
            let empty = Entry { tag: 0, ty: 0, offset: 0, count: 0, value: Value::Opaque };
            grow(&mut d.main.entries, c, empty, room)
        }
        _ => {
            if let Some(e) = pick_entry(d, c) {
                match &mut e.value {
                    Value::StringArray(a) => grow(a, c, Vec::new(), room),
                    Value::Int32(x) => grow(x, c, 0, room),
                    Value::Int16(x) => grow(x, c, 0, room),
                    Value::Int64(x) => grow(x, c, 0, room),
                    Value::String(s) | Value::Bin(s) => s.extend(std::iter::repeat_n(b'a', room)),
                    Value::Opaque => e.value = Value::StringArray(vec![Vec::new(); room]),
                }
            }
        }
    }
}

/// The manager's judgement of a reply about `honest`'s input, held to the
/// property (see [`crate::pgp::judge`]).
pub fn judge(honest: &Honest, reply: &[u8]) -> Result<bool, String> {
    let input = &honest.input;
    let mut budget = Budget::new(max_memory(input.len()));
    let accepted = Description::decode_charging(reply, input.len(), &mut budget)
        .map_err(|e| e.to_string())
        .and_then(|d| check::check(honest.command, input, d, &mut budget).map_err(|e| e.to_string()));
    same_as_honest(accepted, || honest.checked())
}
