//! The one bounded decoder for everything the manager decodes from a handler or
//! a client: postcard, with a **nesting depth limit** and a **memory budget**
//! charged *while* decoding.
//!
//! postcard checks that the bytes are well formed, but not what they cost once
//! decoded: an empty vector is one byte on the wire and 24 in memory, so a
//! reply of a few megabytes can make the receiver allocate gigabytes, and a
//! recursive type (a signature embedded in a signature embedded in …) nested
//! ten thousand deep overflows the receiver's stack before any check runs.
//! [`decode`] wraps postcard's deserializer in a serde deserializer of its own
//! that
//!
//! * counts nesting: every compound value (struct, tuple, sequence, map, enum
//!   variant, `Some`, newtype) enters one level, and a level beyond
//!   [`DecodeLimits::max_depth`] is refused *before* the value is read, so the
//!   stack the decoder uses is bounded whatever the bytes say;
//! * charges a [`Charge`] for what the value being built will hold on the heap,
//!   before it is allocated: each byte string and string its length, each
//!   sequence (a `Vec`) the capacity serde's `Vec` reserves and every growth
//!   after it, element by element, and each map entry twice its key and value.
//!   When the budget says no, decoding stops there with
//!   [`DecodeError::Memory`].
//!
//! What is charged is what `Vec`, `String` and the maps allocate. A `Box`
//! inside a decoded type is not seen, so the wire types decoded through here
//! do not box (an embedded value of at most one element is a sequence instead;
//! see `umd-pgp-wire`).
//!
//! ```
//! use umd_wire::decode::{decode, DecodeError, DecodeLimits};
//! let bytes = postcard::to_allocvec(&vec![vec![0u8; 0]; 1000]).unwrap(); // 1002 bytes
//! let tight = DecodeLimits { max_depth: 8, max_memory: 4096 };
//! assert!(matches!(decode::<Vec<Vec<u8>>>(&bytes, &tight), Err(DecodeError::Memory { .. })));
//! let roomy = DecodeLimits { max_depth: 8, max_memory: 64 << 10 };
//! assert_eq!(decode::<Vec<Vec<u8>>>(&bytes, &roomy).unwrap().len(), 1000);
//! ```

use std::cell::{Cell, RefCell};
use std::fmt;
use std::marker::PhantomData;

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor,
};
use serde::Deserialize;

/// What serde's `Vec` visitor preallocates at most, in bytes (serde's
/// `size_hint::cautious`): the decoder charges the same.
const SERDE_MAX_PREALLOC: usize = 1 << 20;

/// Something that accounts for memory as a value is decoded.
pub trait Charge {
    /// Accounts for `bytes` more bytes about to be allocated; an `Err` stops
    /// decoding, with this text as the reason.
    fn charge(&mut self, bytes: usize) -> Result<(), String>;
}

/// A fixed budget of bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// The most that may be charged.
    pub limit: usize,
    /// What has been charged so far.
    pub used: usize,
}

impl Budget {
    /// A budget of `limit` bytes, nothing used.
    pub fn new(limit: usize) -> Budget {
        Budget { limit, used: 0 }
    }

    /// What is left.
    pub fn remaining(&self) -> usize {
        self.limit - self.used
    }
}

impl Charge for Budget {
    fn charge(&mut self, bytes: usize) -> Result<(), String> {
        match self.used.checked_add(bytes).filter(|&u| u <= self.limit) {
            Some(u) => {
                self.used = u;
                Ok(())
            }
            None => Err(format!("more than {} bytes of memory", self.limit)),
        }
    }
}

/// Bounds of one decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Deepest nesting of compound values. Each struct, tuple, sequence, map,
    /// enum variant, `Some` and newtype is one level; the outermost value is
    /// level 1.
    pub max_depth: usize,
    /// The most heap the decoded value may take, as charged (see the module
    /// documentation).
    pub max_memory: usize,
}

impl DecodeLimits {
    /// `per_byte` bytes of memory for each byte of `input_len`, plus
    /// `constant`, at `max_depth`; saturating.
    ///
    /// ```
    /// use umd_wire::decode::DecodeLimits;
    /// let l = DecodeLimits::relative(16, 1000, 2, 4096);
    /// assert_eq!((l.max_depth, l.max_memory), (16, 6096));
    /// ```
    pub fn relative(max_depth: usize, input_len: usize, per_byte: usize, constant: usize) -> DecodeLimits {
        DecodeLimits { max_depth, max_memory: input_len.saturating_mul(per_byte).saturating_add(constant) }
    }
}

/// Why a value could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Nested deeper than the limit.
    Depth {
        /// The limit.
        limit: usize,
    },
    /// Decoding would have allocated more than the budget allows.
    Memory {
        /// What the budget said.
        reason: String,
    },
    /// The bytes are not a value of the type (postcard's error).
    Malformed(postcard::Error),
    /// The bytes are not a value of the type (the type's own reason).
    Invalid(String),
    /// Bytes are left after the value (there is one encoding per value).
    Trailing {
        /// How many.
        bytes: usize,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Depth { limit } => write!(f, "values nested more than {limit} levels deep"),
            DecodeError::Memory { reason } => write!(f, "decoding would take {reason}"),
            DecodeError::Malformed(e) => write!(f, "malformed: {e}"),
            DecodeError::Invalid(why) => write!(f, "invalid: {why}"),
            DecodeError::Trailing { bytes } => write!(f, "{bytes} bytes after the value"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Decodes one `T` that must take all of `bytes`, within `limits`.
pub fn decode<'de, T: Deserialize<'de>>(bytes: &'de [u8], limits: &DecodeLimits) -> Result<T, DecodeError> {
    let mut budget = Budget::new(limits.max_memory);
    decode_charging(bytes, limits.max_depth, &mut budget)
}

/// As [`decode`], charging `charge` (a service's request memory budget, say)
/// instead of a fixed budget.
pub fn decode_charging<'de, T: Deserialize<'de>>(
    bytes: &'de [u8],
    max_depth: usize,
    charge: &mut dyn Charge,
) -> Result<T, DecodeError> {
    let state =
        State { depth: Cell::new(0), max_depth, charge: RefCell::new(charge), refusal: RefCell::new(None) };
    let mut inner = postcard::Deserializer::from_bytes(bytes);
    let result = T::deserialize(Wrap { inner: &mut inner, state: &state });
    match (result, state.refusal.into_inner()) {
        (_, Some(refusal)) => Err(refusal),
        (Err(Wrapped::Inner(e)), None) => Err(DecodeError::Malformed(e)),
        (Err(Wrapped::Custom(m)), None) => Err(DecodeError::Invalid(m)),
        (Ok(v), None) => match inner.finalize() {
            Ok([]) => Ok(v),
            Ok(rest) => Err(DecodeError::Trailing { bytes: rest.len() }),
            Err(e) => Err(DecodeError::Malformed(e)),
        },
    }
}

/// What the wrappers share during one decode.
struct State<'c> {
    depth: Cell<usize>,
    max_depth: usize,
    charge: RefCell<&'c mut dyn Charge>,
    /// The first refusal (depth, memory, or a type's own message): postcard's
    /// custom errors carry no text, so the reason is kept here.
    refusal: RefCell<Option<DecodeError>>,
}

impl State<'_> {
    fn refuse<E: de::Error>(&self, why: DecodeError) -> E {
        let text = why.to_string();
        self.refusal.borrow_mut().get_or_insert(why);
        E::custom(text)
    }

    fn charge<E: de::Error>(&self, bytes: usize) -> Result<(), E> {
        if bytes == 0 {
            return Ok(());
        }
        let r = self.charge.borrow_mut().charge(bytes);
        r.map_err(|reason| self.refuse(DecodeError::Memory { reason }))
    }

    /// Runs `f` one level deeper, refusing before it runs if that is too deep.
    fn nested<T, E: de::Error>(&self, f: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        let d = self.depth.get() + 1;
        if d > self.max_depth {
            return Err(self.refuse(DecodeError::Depth { limit: self.max_depth }));
        }
        self.depth.set(d);
        let r = f();
        self.depth.set(d - 1);
        r
    }

    /// Hands an error from the types being decoded back to postcard, keeping
    /// a type's own message (postcard's errors would drop it).
    fn outward<E: de::Error>(&self, e: Wrapped<E>) -> E {
        match e {
            Wrapped::Inner(e) => e,
            Wrapped::Custom(m) => self.refuse(DecodeError::Invalid(m)),
        }
    }
}

/// The error the decoded types see: postcard's, or their own message.
#[derive(Debug)]
enum Wrapped<E> {
    Inner(E),
    Custom(String),
}

impl<E: fmt::Display> fmt::Display for Wrapped<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Wrapped::Inner(e) => e.fmt(f),
            Wrapped::Custom(m) => f.write_str(m),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for Wrapped<E> {}

impl<E: de::Error> de::Error for Wrapped<E> {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Wrapped::Custom(msg.to_string())
    }
}

/// The wrapping deserializer.
struct Wrap<'s, 'c, D> {
    inner: D,
    state: &'s State<'c>,
}

/// How a visited sequence is stored.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Storage {
    /// Inline in its parent (struct fields, tuples, arrays): nothing to charge.
    Inline,
    /// On the heap, one element after another (a `Vec`).
    Heap,
}

/// The wrapping visitor.
struct WrapVisitor<'s, 'c, V> {
    inner: V,
    state: &'s State<'c>,
    storage: Storage,
}

macro_rules! forward_scalars {
    ($($method:ident),* $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
            let v = WrapVisitor { inner: visitor, state: self.state, storage: Storage::Inline };
            self.inner.$method(v).map_err(Wrapped::Inner)
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Wrap<'_, '_, D> {
    type Error = Wrapped<D::Error>;

    forward_scalars!(
        deserialize_any,
        deserialize_bool,
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64,
        deserialize_i128,
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64,
        deserialize_u128,
        deserialize_f32,
        deserialize_f64,
        deserialize_char,
        deserialize_str,
        deserialize_string,
        deserialize_bytes,
        deserialize_byte_buf,
        deserialize_option,
        deserialize_unit,
        deserialize_identifier,
        deserialize_ignored_any,
    );

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let v = WrapVisitor { inner: visitor, state: self.state, storage: Storage::Inline };
        self.inner.deserialize_unit_struct(name, v).map_err(Wrapped::Inner)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let v = WrapVisitor { inner: visitor, state: self.state, storage: Storage::Inline };
        self.inner.deserialize_newtype_struct(name, v).map_err(Wrapped::Inner)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        let v = WrapVisitor { inner: visitor, state: self.state, storage: Storage::Heap };
        self.inner.deserialize_seq(v).map_err(Wrapped::Inner)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Self::Error> {
        let v = WrapVisitor { inner: visitor, state: self.state, storage: Storage::Inline };
        self.inner.deserialize_tuple(len, v).map_err(Wrapped::Inner)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let v = WrapVisitor { inner: visitor, state: self.state, storage: Storage::Inline };
        self.inner.deserialize_tuple_struct(name, len, v).map_err(Wrapped::Inner)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        let v = WrapVisitor { inner: visitor, state: self.state, storage: Storage::Heap };
        self.inner.deserialize_map(v).map_err(Wrapped::Inner)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let v = WrapVisitor { inner: visitor, state: self.state, storage: Storage::Inline };
        self.inner.deserialize_struct(name, fields, v).map_err(Wrapped::Inner)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let v = WrapVisitor { inner: visitor, state: self.state, storage: Storage::Inline };
        self.inner.deserialize_enum(name, variants, v).map_err(Wrapped::Inner)
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

macro_rules! forward_visits {
    ($($method:ident($ty:ty)),* $(,)?) => {$(
        fn $method<E: de::Error>(self, v: $ty) -> Result<Self::Value, E> {
            self.inner.$method(v)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for WrapVisitor<'_, '_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.expecting(f)
    }

    forward_visits!(
        visit_bool(bool),
        visit_i8(i8),
        visit_i16(i16),
        visit_i32(i32),
        visit_i64(i64),
        visit_i128(i128),
        visit_u8(u8),
        visit_u16(u16),
        visit_u32(u32),
        visit_u64(u64),
        visit_u128(u128),
        visit_f32(f32),
        visit_f64(f64),
        visit_char(char),
    );

    // Strings and byte strings: a visitor that owns them allocates their
    // length (one that borrows them allocates nothing; charged all the same).
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        self.state.charge(v.len())?;
        self.inner.visit_str(v)
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        self.state.charge(v.len())?;
        self.inner.visit_borrowed_str(v)
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        self.state.charge(v.len())?;
        self.inner.visit_string(v)
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
        self.state.charge(v.len())?;
        self.inner.visit_bytes(v)
    }

    fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<Self::Value, E> {
        self.state.charge(v.len())?;
        self.inner.visit_borrowed_bytes(v)
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Self::Value, E> {
        self.state.charge(v.len())?;
        self.inner.visit_byte_buf(v)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.inner.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.inner.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        let state = self.state;
        state.nested(|| self.inner.visit_some(Wrap { inner: d, state }).map_err(|e| state.outward(e)))
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        let state = self.state;
        state.nested(|| {
            self.inner.visit_newtype_struct(Wrap { inner: d, state }).map_err(|e| state.outward(e))
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        let state = self.state;
        let seq = WrapSeq { inner: seq, state, storage: self.storage, len: 0, capacity: None };
        state.nested(|| self.inner.visit_seq(seq).map_err(|e| state.outward(e)))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let state = self.state;
        state.nested(|| self.inner.visit_map(WrapMap { inner: map, state }).map_err(|e| state.outward(e)))
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        let state = self.state;
        state.nested(|| self.inner.visit_enum(WrapEnum { inner: data, state }).map_err(|e| state.outward(e)))
    }
}

/// A sequence being read; for a heap sequence, the capacity its `Vec` has.
struct WrapSeq<'s, 'c, A> {
    inner: A,
    state: &'s State<'c>,
    storage: Storage,
    /// Elements read so far.
    len: usize,
    /// The `Vec`'s capacity as serde's visitor reserved and grew it (known
    /// once the element type is, at the first element).
    capacity: Option<usize>,
}

impl<'de, A: SeqAccess<'de>> WrapSeq<'_, '_, A> {
    /// Charges what a `Vec<T>` allocates to take one more element: the first
    /// time, the capacity serde reserves from the length hint; then each
    /// doubling `Vec` makes when it is full (its growth rule).
    fn charge_element<T, E: de::Error>(&mut self) -> Result<(), E> {
        let size = std::mem::size_of::<T>();
        if size == 0 {
            // Nothing is allocated, but each element costs a step: at least
            // count it, so a billion zero-size elements cannot be free.
            return self.state.charge(1);
        }
        let mut cap = match self.capacity {
            Some(c) => c,
            None => {
                let c = self.inner.size_hint().unwrap_or(0).min(SERDE_MAX_PREALLOC / size);
                self.state.charge(c.saturating_mul(size))?;
                c
            }
        };
        if self.len >= cap {
            let min_cap = if size == 1 {
                8
            } else if size <= 1024 {
                4
            } else {
                1
            };
            let grown = cap.saturating_mul(2).max(self.len + 1).max(min_cap);
            self.state.charge((grown - cap).saturating_mul(size))?;
            cap = grown;
        }
        self.capacity = Some(cap);
        self.len += 1;
        Ok(())
    }
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for WrapSeq<'_, '_, A> {
    type Error = Wrapped<A::Error>;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Self::Error> {
        if self.storage == Storage::Heap && self.inner.size_hint() != Some(0) {
            self.charge_element::<T::Value, Self::Error>()?;
        }
        self.inner.next_element_seed(WrapSeed { inner: seed, state: self.state }).map_err(Wrapped::Inner)
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

/// A map being read: each entry charged twice its key and value (a map's
/// nodes hold spare room).
struct WrapMap<'s, 'c, A> {
    inner: A,
    state: &'s State<'c>,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for WrapMap<'_, '_, A> {
    type Error = Wrapped<A::Error>;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Self::Error> {
        if self.inner.size_hint() != Some(0) {
            self.state.charge(2 * std::mem::size_of::<K::Value>().max(1))?;
        }
        self.inner.next_key_seed(WrapSeed { inner: seed, state: self.state }).map_err(Wrapped::Inner)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Self::Error> {
        self.state.charge(2 * std::mem::size_of::<V::Value>())?;
        self.inner.next_value_seed(WrapSeed { inner: seed, state: self.state }).map_err(Wrapped::Inner)
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

/// An enum being read.
struct WrapEnum<'s, 'c, A> {
    inner: A,
    state: &'s State<'c>,
}

impl<'s, 'c, 'de, A: EnumAccess<'de>> EnumAccess<'de> for WrapEnum<'s, 'c, A> {
    type Error = Wrapped<A::Error>;
    type Variant = WrapVariant<'s, 'c, A::Variant>;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Self::Variant), Self::Error> {
        let state = self.state;
        let (v, variant) =
            self.inner.variant_seed(WrapSeed { inner: seed, state }).map_err(Wrapped::Inner)?;
        Ok((v, WrapVariant { inner: variant, state }))
    }
}

/// An enum variant's content being read.
struct WrapVariant<'s, 'c, A> {
    inner: A,
    state: &'s State<'c>,
}

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for WrapVariant<'_, '_, A> {
    type Error = Wrapped<A::Error>;

    fn unit_variant(self) -> Result<(), Self::Error> {
        self.inner.unit_variant().map_err(Wrapped::Inner)
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Self::Error> {
        self.inner.newtype_variant_seed(WrapSeed { inner: seed, state: self.state }).map_err(Wrapped::Inner)
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Self::Error> {
        let v = WrapVisitor { inner: visitor, state: self.state, storage: Storage::Inline };
        self.inner.tuple_variant(len, v).map_err(Wrapped::Inner)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let v = WrapVisitor { inner: visitor, state: self.state, storage: Storage::Inline };
        self.inner.struct_variant(fields, v).map_err(Wrapped::Inner)
    }
}

/// A seed whose value is decoded through the wrapper.
struct WrapSeed<'s, 'c, S> {
    inner: S,
    state: &'s State<'c>,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for WrapSeed<'_, '_, S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
        let state = self.state;
        self.inner.deserialize(Wrap { inner: d, state }).map_err(|e| state.outward(e))
    }
}

/// A sequence of at most one `T`, decoded as an `Option<Box<T>>` — the wire
/// encoding of a sequence of zero or one elements is postcard's encoding of an
/// `Option` (a `0`, or a `1` and the value). Use it where a type would box:
/// the element is charged like any sequence's, where a `Box` would not be.
///
/// ```
/// use umd_wire::decode::{decode, at_most_one, DecodeLimits};
/// #[derive(serde::Deserialize, Debug, PartialEq)]
/// struct Node { #[serde(deserialize_with = "at_most_one")] next: Option<Box<u32>> }
/// let limits = DecodeLimits { max_depth: 8, max_memory: 1024 };
/// let some = postcard::to_allocvec(&Some(7u32)).unwrap();
/// assert_eq!(decode::<Node>(&some, &limits).unwrap(), Node { next: Some(Box::new(7)) });
/// assert!(decode::<Node>(&[2, 7, 8], &limits).is_err()); // two elements
/// ```
pub fn at_most_one<'de, D, T>(d: D) -> Result<Option<Box<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct AtMostOne<T>(PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for AtMostOne<T> {
        type Value = Option<Box<T>>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("at most one value")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            if seq.size_hint().is_some_and(|n| n > 1) {
                return Err(de::Error::invalid_length(seq.size_hint().unwrap_or(2), &self));
            }
            let first: Option<T> = seq.next_element()?;
            if seq.next_element::<de::IgnoredAny>()?.is_some() {
                return Err(de::Error::invalid_length(2, &self));
            }
            Ok(first.map(Box::new))
        }
    }
    d.deserialize_seq(AtMostOne(PhantomData))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;

    /// A recursive type: each level is one more `Some(Box<..>)`.
    #[derive(Serialize, Deserialize, Debug)]
    struct Chain {
        next: Option<Box<Chain>>,
    }

    fn chain(depth: usize) -> Vec<u8> {
        // Built by hand: serializing a deep chain would recurse too.
        let mut v = vec![1u8; depth];
        v.push(0);
        v
    }

    #[test]
    fn deep_nesting_is_refused_at_the_limit_without_recursing() {
        let limits = DecodeLimits { max_depth: 64, max_memory: 1 << 20 };
        // 1,000,000 levels: a plain postcard decode would overflow the stack.
        let deep = chain(1_000_000);
        assert_eq!(decode::<Chain>(&deep, &limits).unwrap_err(), DecodeError::Depth { limit: 64 });
        // Each level is a struct and a Some: two levels per link.
        assert!(decode::<Chain>(&chain(31), &limits).is_ok());
        assert!(decode::<Chain>(&chain(32), &limits).is_err());
    }

    #[test]
    fn memory_is_charged_while_decoding_not_after() {
        // 4 million empty byte vectors: 4 MB on the wire, 96 MB decoded.
        let mut bytes = vec![0x80, 0x80, 0xf4, 0x01]; // varint 4_000_000
        bytes.extend(std::iter::repeat_n(0u8, 4_000_000));
        let limits = DecodeLimits { max_depth: 8, max_memory: 8 << 20 };
        let e = decode::<Vec<Vec<u8>>>(&bytes, &limits).unwrap_err();
        assert!(matches!(e, DecodeError::Memory { .. }), "{e}");
    }

    #[test]
    fn a_vec_is_charged_what_it_allocates() {
        for n in [0usize, 1, 3, 4, 5, 100, 1000, 100_000] {
            let v: Vec<u64> = (0..n as u64).collect();
            let bytes = postcard::to_allocvec(&v).unwrap();
            let mut b = Budget::new(usize::MAX);
            let back: Vec<u64> = decode_charging(&bytes, 4, &mut b).unwrap();
            assert_eq!(back, v);
            assert_eq!(b.used, back.capacity() * 8, "{n} elements");
        }
        let s = vec![String::from("abc"), String::new()];
        let mut b = Budget::new(usize::MAX);
        let _: Vec<String> = decode_charging(&postcard::to_allocvec(&s).unwrap(), 4, &mut b).unwrap();
        assert_eq!(b.used, 2 * std::mem::size_of::<String>() + 3);
    }

    #[test]
    fn trailing_and_malformed_bytes_are_errors() {
        let limits = DecodeLimits { max_depth: 8, max_memory: 1 << 20 };
        assert_eq!(decode::<u8>(&[1, 2], &limits), Err(DecodeError::Trailing { bytes: 1 }));
        assert!(matches!(decode::<Vec<u8>>(&[5, 1], &limits), Err(DecodeError::Malformed(_))));
        assert!(matches!(decode::<bool>(&[7], &limits), Err(DecodeError::Malformed(_))));
    }

    #[test]
    fn a_huge_announced_length_preallocates_nothing_it_cannot_back() {
        // 2^40 elements announced, none there: postcard gives no length hint
        // when fewer bytes remain than elements are announced, so serde
        // reserves nothing and the first push is a small allocation; then the
        // missing element ends the decode.
        let bytes = [0x80, 0x80, 0x80, 0x80, 0x80, 0x20];
        let mut b = Budget::new(usize::MAX);
        assert!(decode_charging::<Vec<u64>>(&bytes, 4, &mut b).is_err());
        assert_eq!(b.used, 4 * 8);
        // Backed by bytes: reserved up front, but never more than serde's cap.
        let mut bytes = vec![0x80, 0x80, 0x20]; // 2^19 elements of one byte each
        bytes.extend(std::iter::repeat_n(1u8, 1 << 19));
        let mut b = Budget::new(usize::MAX);
        let v: Vec<u64> = decode_charging(&bytes, 4, &mut b).unwrap();
        assert_eq!((v.len(), b.used), (1 << 19, (1 << 19) * 8));
        const { assert!(SERDE_MAX_PREALLOC / 8 < 1 << 19, "grown past the cap: charged as it grew") };
    }
}
