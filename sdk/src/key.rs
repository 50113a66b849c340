//! Order-preserving key encoding: comparing two encoded keys as bytes gives the order of the keys,
//! so the engine sorts and merges without knowing the job's types.
//!
//! A key alone is written plainly: byte strings and strings are their own bytes; integers are
//! big-endian, signed ones with the sign bit flipped. Composite keys (tuples of up to four keys)
//! concatenate their components, every one but the last in its *component form*, which must say
//! where it ends: fixed-width types need nothing more, and byte strings and strings are escaped
//! and terminated (the FoundationDB tuple layer's form: `0x00` is written `0x00 0xFF`, and
//! `0x00 0x00` ends the component), so that a string sorts before its extensions and the tuple's
//! bytes sort exactly as the tuples compare. [`component_len`](Key::component_len) finds a
//! component's end without decoding it, which is how a job groups by a key prefix
//! ([`crate::JobDef::group_by_first`]).

use crate::JobError;
use std::borrow::Borrow;

/// Something that can be written as key bytes. Unsized forms (`[u8]`, `str`) let a mapper emit a
/// borrowed key without allocating.
pub trait KeyEncode {
    /// Appends the key's bytes to `out`; bytes compare as the keys do.
    fn encode_key(&self, out: &mut Vec<u8>);
    /// Appends the key as a tuple component followed by more: bytes that compare as the keys do
    /// *and* say where they end, whatever follows. The default, the plain form, is right for
    /// fixed-width encodings; variable-length ones override it.
    fn encode_key_component(&self, out: &mut Vec<u8>) {
        self.encode_key(out);
    }
    /// The key's encoding when it is the key's own bytes (byte strings, strings), so that an
    /// emitter need not copy it; None, the default, when it must be encoded.
    fn as_encoded(&self) -> Option<&[u8]> {
        None
    }
}

/// The first eight bytes of an encoded key, zero-padded, as a big-endian integer: integers
/// compare as the bytes do, and keys of up to eight bytes are equal exactly when their prefixes
/// and lengths are. The engine's sort buffer orders by it, and map-side combining finds keys by
/// it. A short key is read in two overlapping word loads, not byte by byte: this runs for every
/// record.
#[inline]
pub fn key_prefix(key: &[u8]) -> u64 {
    let len = key.len();
    match len {
        8.. => be_word::<8>(key, 0),
        // Bytes 0..4, and len-4..len shifted to end at byte len: they agree where they overlap.
        4..=7 => (be_word::<4>(key, 0) << 32) | (be_word::<4>(key, len - 4) << (8 * (8 - len))),
        1..=3 => {
            (be_word::<1>(key, 0) << 56)
                | (be_word::<1>(key, len / 2) << (8 * (7 - len / 2)))
                | (be_word::<1>(key, len - 1) << (8 * (8 - len)))
        }
        0 => 0,
    }
}

/// Bytes `at..at + N` of `key` (N at most 8) as a big-endian integer, in one load.
#[inline(always)]
fn be_word<const N: usize>(key: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word[8 - N..].copy_from_slice(&key[at..at + N]);
    u64::from_be_bytes(word)
}

/// A key type: encodes in order and decodes back.
///
/// Byte strings, strings, integers and tuples of up to four of them are keys already. Your own
/// type is one when its bytes sort as its values do (`KeyEncode`) and decode back (`Key`):
///
/// ```
/// use quern_sdk::prelude::*;
///
/// /// A day, which sorts by year, then month, then day.
/// #[derive(Debug, PartialEq)]
/// struct Day { year: u16, month: u8, day: u8 }
///
/// impl KeyEncode for Day {
///     fn encode_key(&self, out: &mut Vec<u8>) {
///         // Big-endian, fixed width: the bytes compare as the days do, and say where they end.
///         out.extend_from_slice(&self.year.to_be_bytes());
///         out.extend_from_slice(&[self.month, self.day]);
///     }
/// }
///
/// impl Key for Day {
///     fn decode_key(bytes: &[u8]) -> Result<Self, JobError> {
///         match *bytes {
///             [y0, y1, month, day] => Ok(Day { year: u16::from_be_bytes([y0, y1]), month, day }),
///             _ => Err(JobError::KeyDecode { reason: format!("{} bytes, not 4", bytes.len()) }),
///         }
///     }
///     // Fixed width, so it can lead a tuple key: `(Day, String)`.
///     fn component_len(_: &[u8]) -> Result<usize, JobError> {
///         Ok(4)
///     }
/// }
///
/// let (mut earlier, mut later) = (Vec::new(), Vec::new());
/// Day { year: 1999, month: 12, day: 31 }.encode_key(&mut earlier);
/// Day { year: 2000, month: 1, day: 1 }.encode_key(&mut later);
/// assert!(earlier < later);
/// assert_eq!(Day::decode_key(&later)?, Day { year: 2000, month: 1, day: 1 });
///
/// let mut tuple = Vec::new();
/// (Day { year: 2000, month: 1, day: 1 }, "noon".to_string()).encode_key(&mut tuple);
/// let (day, when) = <(Day, String)>::decode_key(&tuple)?;
/// assert_eq!((day.year, when.as_str()), (2000, "noon"));
/// # Ok::<(), JobError>(())
/// ```
pub trait Key: KeyEncode + Sized + Send + 'static {
    /// The key `bytes` (from [`KeyEncode::encode_key`]) encode.
    fn decode_key(bytes: &[u8]) -> Result<Self, JobError>;
    /// How many bytes at the start of `bytes` are one key in component form (from
    /// [`KeyEncode::encode_key_component`]). A fixed-width type returns its width (checking that
    /// `bytes` has that many); the default refuses, so a type that does not say cannot be a
    /// tuple component other than the last.
    fn component_len(bytes: &[u8]) -> Result<usize, JobError> {
        let _ = bytes;
        Err(JobError::KeyDecode {
            reason: format!(
                "{} cannot be followed by another key component: it does not implement \
                 Key::component_len",
                std::any::type_name::<Self>()
            ),
        })
    }
    /// Decodes the key in component form at the start of `bytes`; returns it and the bytes
    /// after it. The default decodes the first [`component_len`](Key::component_len) bytes
    /// plainly, which is right wherever the component form is the plain form.
    fn decode_key_component(bytes: &[u8]) -> Result<(Self, &[u8]), JobError> {
        let (component, rest) = bytes.split_at(checked_len(Self::component_len, bytes)?);
        Ok((Self::decode_key(component)?, rest))
    }
}

/// A key, or borrowed parts of one, that encodes exactly as a key of type `K` would: what
/// [`crate::Emitter::emit_parts`] takes. `&Q` stands for any `K: Borrow<Q>` (`&str` for
/// `String`, `&[u8]` for `Vec<u8>`, `&K` for `K`), integers stand for themselves by value, and a
/// tuple of parts for the tuple of what they stand for, so a `(String, u64)` key is emitted as
/// `(word, n)` with `word: &str`, without allocating. (`Borrow` cannot do this: `(String, u64)`
/// borrows only as itself.)
pub trait KeyParts<K>: KeyEncode {}

impl<K: Borrow<Q>, Q: KeyEncode + ?Sized> KeyParts<K> for &Q {}

impl<Q: KeyEncode + ?Sized> KeyEncode for &Q {
    fn encode_key(&self, out: &mut Vec<u8>) {
        (**self).encode_key(out);
    }
    fn encode_key_component(&self, out: &mut Vec<u8>) {
        (**self).encode_key_component(out);
    }
    fn as_encoded(&self) -> Option<&[u8]> {
        (**self).as_encoded()
    }
}

/// Appends `bytes` escaped and terminated: each `0x00` as `0x00 0xFF`, then `0x00 0x00`.
fn encode_escaped(bytes: &[u8], out: &mut Vec<u8>) {
    for (i, piece) in bytes.split(|&b| b == 0).enumerate() {
        if i > 0 {
            out.extend_from_slice(&[0x00, 0xFF]);
        }
        out.extend_from_slice(piece);
    }
    out.extend_from_slice(&[0x00, 0x00]);
}

/// Walks the escaped form at the start of `bytes`, handing each run of unescaped bytes to
/// `piece`; returns how many bytes it took, terminator included.
fn walk_escaped(bytes: &[u8], mut piece: impl FnMut(&[u8])) -> Result<usize, JobError> {
    let mut pos = 0;
    loop {
        let rest = &bytes[pos..];
        let zero = rest.iter().position(|&b| b == 0);
        let Some(zero) = zero.filter(|&z| z + 1 < rest.len()) else {
            return Err(key_error(format!(
                "a byte string component has no 0x00 0x00 terminator in {} bytes",
                bytes.len()
            )));
        };
        piece(&rest[..zero]);
        match rest[zero + 1] {
            0x00 => return Ok(pos + zero + 2),
            0xFF => piece(&[0]),
            other => {
                return Err(key_error(format!(
                    "a byte string component has 0x00 followed by 0x{other:02x} at byte {} \
                     (only 0x00 0xFF and the terminator 0x00 0x00 are valid)",
                    pos + zero
                )));
            }
        }
        pos += zero + 2;
    }
}

/// The unescaped bytes of the escaped component at the start of `bytes`, and the bytes after it.
fn decode_escaped(bytes: &[u8]) -> Result<(Vec<u8>, &[u8]), JobError> {
    let mut raw = Vec::new();
    let len = walk_escaped(bytes, |piece| raw.extend_from_slice(piece))?;
    Ok((raw, &bytes[len..]))
}

fn key_error(reason: String) -> JobError {
    JobError::KeyDecode { reason }
}

fn utf8(bytes: Vec<u8>) -> Result<String, JobError> {
    String::from_utf8(bytes).map_err(|e| key_error(format!("not UTF-8: {e}")))
}

impl KeyEncode for [u8] {
    fn encode_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
    fn as_encoded(&self) -> Option<&[u8]> {
        Some(self)
    }
    fn encode_key_component(&self, out: &mut Vec<u8>) {
        encode_escaped(self, out);
    }
}

impl KeyEncode for Vec<u8> {
    fn encode_key(&self, out: &mut Vec<u8>) {
        self.as_slice().encode_key(out);
    }
    fn as_encoded(&self) -> Option<&[u8]> {
        Some(self)
    }
    fn encode_key_component(&self, out: &mut Vec<u8>) {
        self.as_slice().encode_key_component(out);
    }
}

impl Key for Vec<u8> {
    fn decode_key(bytes: &[u8]) -> Result<Self, JobError> {
        Ok(bytes.to_vec())
    }
    fn component_len(bytes: &[u8]) -> Result<usize, JobError> {
        walk_escaped(bytes, |_| {})
    }
    fn decode_key_component(bytes: &[u8]) -> Result<(Self, &[u8]), JobError> {
        decode_escaped(bytes)
    }
}

impl KeyEncode for str {
    fn encode_key(&self, out: &mut Vec<u8>) {
        // UTF-8 byte order is code point order.
        self.as_bytes().encode_key(out);
    }
    fn encode_key_component(&self, out: &mut Vec<u8>) {
        self.as_bytes().encode_key_component(out);
    }
    fn as_encoded(&self) -> Option<&[u8]> {
        Some(self.as_bytes())
    }
}

impl KeyEncode for String {
    fn encode_key(&self, out: &mut Vec<u8>) {
        self.as_str().encode_key(out);
    }
    fn encode_key_component(&self, out: &mut Vec<u8>) {
        self.as_str().encode_key_component(out);
    }
    fn as_encoded(&self) -> Option<&[u8]> {
        Some(self.as_bytes())
    }
}

impl Key for String {
    fn decode_key(bytes: &[u8]) -> Result<Self, JobError> {
        utf8(bytes.to_vec())
    }
    fn component_len(bytes: &[u8]) -> Result<usize, JobError> {
        Vec::<u8>::component_len(bytes)
    }
    fn decode_key_component(bytes: &[u8]) -> Result<(Self, &[u8]), JobError> {
        let (raw, rest) = decode_escaped(bytes)?;
        Ok((utf8(raw)?, rest))
    }
}

fn fixed<const N: usize>(bytes: &[u8], type_name: &str) -> Result<[u8; N], JobError> {
    bytes.try_into().map_err(|_| {
        key_error(format!(
            "{type_name} key needs {N} bytes, got {}",
            bytes.len()
        ))
    })
}

/// The width of the fixed-width key type `T`, if `bytes` holds that many: its component length.
fn fixed_len<T>(bytes: &[u8]) -> Result<usize, JobError> {
    let width = std::mem::size_of::<T>();
    if bytes.len() < width {
        return Err(key_error(format!(
            "{} key component needs {width} bytes, {} left",
            std::any::type_name::<T>(),
            bytes.len()
        )));
    }
    Ok(width)
}

macro_rules! unsigned_key {
    ($($t:ty),*) => {$(
        impl KeyEncode for $t {
            fn encode_key(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_be_bytes());
            }
        }
        impl Key for $t {
            fn decode_key(bytes: &[u8]) -> Result<Self, JobError> {
                Ok(<$t>::from_be_bytes(fixed(bytes, stringify!($t))?))
            }
            fn component_len(bytes: &[u8]) -> Result<usize, JobError> {
                fixed_len::<$t>(bytes)
            }
        }
        impl KeyParts<$t> for $t {}
    )*};
}

macro_rules! signed_key {
    ($($t:ty => $u:ty),*) => {$(
        impl KeyEncode for $t {
            fn encode_key(&self, out: &mut Vec<u8>) {
                // Flipping the sign bit puts negatives before positives in unsigned order.
                let flipped = (*self as $u) ^ (1 << (<$u>::BITS - 1));
                out.extend_from_slice(&flipped.to_be_bytes());
            }
        }
        impl Key for $t {
            fn decode_key(bytes: &[u8]) -> Result<Self, JobError> {
                let flipped = <$u>::from_be_bytes(fixed(bytes, stringify!($t))?);
                Ok((flipped ^ (1 << (<$u>::BITS - 1))) as $t)
            }
            fn component_len(bytes: &[u8]) -> Result<usize, JobError> {
                fixed_len::<$t>(bytes)
            }
        }
        impl KeyParts<$t> for $t {}
    )*};
}

unsigned_key!(u8, u16, u32, u64);
signed_key!(i32 => u32, i64 => u64);

/// A [`Key::component_len`].
type ComponentLen = fn(&[u8]) -> Result<usize, JobError>;

/// How many bytes the components that `lens` measure, one after another, take at the start of
/// `bytes`.
fn components_len(lens: &[ComponentLen], bytes: &[u8]) -> Result<usize, JobError> {
    let mut len = 0;
    for (index, &component_len) in lens.iter().enumerate() {
        len += checked_len(component_len, &bytes[len..]).map_err(in_component(index))?;
    }
    Ok(len)
}

/// `component_len(bytes)`, checked: a key type's own implementation may claim more than is there.
fn checked_len(component_len: ComponentLen, bytes: &[u8]) -> Result<usize, JobError> {
    let len = component_len(bytes)?;
    if len > bytes.len() {
        return Err(key_error(format!(
            "the component claims {len} bytes, {} left",
            bytes.len()
        )));
    }
    Ok(len)
}

/// Says which component of a tuple key an error is in.
fn in_component(index: usize) -> impl FnOnce(JobError) -> JobError {
    move |error| match error {
        JobError::KeyDecode { reason } => key_error(format!("component {index}: {reason}")),
        other => other,
    }
}

/// `T` in component form at the start of `bytes`, as the tuple component `index`; and the rest.
fn component<T: Key>(bytes: &[u8], index: usize) -> Result<(T, &[u8]), JobError> {
    T::decode_key_component(bytes).map_err(in_component(index))
}

/// Tuple keys: every component but the last in component form, the last plainly (or in
/// component form too, where the tuple is itself a component). `$head` are the leading
/// components' (type, parts type, index), `$last` the last one's.
macro_rules! tuple_key {
    ($(($head:ident, $head_part:ident, $i:tt)),+; ($last:ident, $last_part:ident, $l:tt)) => {
        impl<$($head: KeyEncode,)+ $last: KeyEncode> KeyEncode for ($($head,)+ $last,) {
            fn encode_key(&self, out: &mut Vec<u8>) {
                $(self.$i.encode_key_component(out);)+
                self.$l.encode_key(out);
            }
            fn encode_key_component(&self, out: &mut Vec<u8>) {
                $(self.$i.encode_key_component(out);)+
                self.$l.encode_key_component(out);
            }
        }

        impl<$($head: Key,)+ $last: Key> Key for ($($head,)+ $last,) {
            #[allow(non_snake_case)]
            fn decode_key(bytes: &[u8]) -> Result<Self, JobError> {
                let rest = bytes;
                $(let ($head, rest) = component::<$head>(rest, $i)?;)+
                let $last = $last::decode_key(rest).map_err(in_component($l))?;
                Ok(($($head,)+ $last,))
            }
            fn component_len(bytes: &[u8]) -> Result<usize, JobError> {
                components_len(&[$($head::component_len,)+ $last::component_len], bytes)
            }
            #[allow(non_snake_case)]
            fn decode_key_component(bytes: &[u8]) -> Result<(Self, &[u8]), JobError> {
                let rest = bytes;
                $(let ($head, rest) = component::<$head>(rest, $i)?;)+
                let ($last, rest) = component::<$last>(rest, $l)?;
                Ok((($($head,)+ $last,), rest))
            }
        }

        impl<$($head, $head_part: KeyParts<$head>,)+ $last, $last_part: KeyParts<$last>>
            KeyParts<($($head,)+ $last,)> for ($($head_part,)+ $last_part,)
        {
        }

        impl<$($head: Key,)+ $last: Key> CompositeKey for ($($head,)+ $last,) {
            const COMPONENTS: usize = $l + 1;
            fn prefix_len(bytes: &[u8], components: usize) -> Result<usize, JobError> {
                // The last component is written plainly: all of them are the whole key.
                if components > $l {
                    return Ok(bytes.len());
                }
                let lens = [$($head::component_len,)+ $last::component_len];
                components_len(&lens[..components], bytes)
            }
        }
    };
}

/// A tuple key, which a job can group by its leading components (see
/// [`crate::JobDef::group_by_first`]).
pub trait CompositeKey: Key {
    /// How many components the tuple has.
    const COMPONENTS: usize;
    /// How many bytes at the start of the encoded key `bytes` its first `components`
    /// components take.
    fn prefix_len(bytes: &[u8], components: usize) -> Result<usize, JobError>;
}

tuple_key!((A, PA, 0); (B, PB, 1));
tuple_key!((A, PA, 0), (B, PB, 1); (C, PC, 2));
tuple_key!((A, PA, 0), (B, PB, 1), (C, PC, 2); (D, PD, 3));

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt::Debug;

    fn encoded<K: KeyEncode + ?Sized>(key: &K) -> Vec<u8> {
        let mut out = Vec::new();
        key.encode_key(&mut out);
        out
    }

    #[test]
    fn a_key_prefix_is_the_first_eight_bytes_zero_padded_big_endian() {
        let bytes = b"abcdefghij";
        for len in 0..=bytes.len() {
            let key = &bytes[..len];
            let mut padded = [0u8; 8];
            padded[..len.min(8)].copy_from_slice(&key[..len.min(8)]);
            assert_eq!(key_prefix(key), u64::from_be_bytes(padded), "{len} bytes");
        }
    }

    #[test]
    fn keys_that_are_their_own_encoding_say_so_and_others_do_not() {
        let bytes = b"a\0b".to_vec();
        let text = "z\u{e9}".to_string();
        assert_eq!(bytes.as_encoded(), Some(encoded(&bytes).as_slice()));
        assert_eq!(bytes[..].as_encoded(), Some(encoded(&bytes[..]).as_slice()));
        assert_eq!(text.as_encoded(), Some(encoded(&text).as_slice()));
        assert_eq!((&text.as_str()).as_encoded(), Some(text.as_bytes()));
        assert_eq!(7u64.as_encoded(), None);
        assert_eq!((text.as_str(), 1u32).as_encoded(), None);
    }

    fn component<K: KeyEncode + ?Sized>(key: &K) -> Vec<u8> {
        let mut out = Vec::new();
        key.encode_key_component(&mut out);
        out
    }

    #[test]
    fn signed_integers_sort_by_value_as_bytes() {
        let values = [i64::MIN, -1_000, -1, 0, 1, 7, 1_000, i64::MAX];
        let bytes: Vec<Vec<u8>> = values.iter().map(encoded).collect();
        assert!(bytes.windows(2).all(|w| w[0] < w[1]));
        for (v, b) in values.iter().zip(&bytes) {
            assert_eq!(i64::decode_key(b).unwrap(), *v);
        }
    }

    #[test]
    fn unsigned_integers_sort_by_value_as_bytes() {
        let values = [0u32, 1, 255, 256, 65_536, u32::MAX];
        let bytes: Vec<Vec<u8>> = values.iter().map(encoded).collect();
        assert!(bytes.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(u32::decode_key(&bytes[3]).unwrap(), 256);
    }

    #[test]
    fn strings_sort_by_code_point() {
        let words = ["", "A", "Z", "a", "ab", "b", "é", "中"];
        let bytes: Vec<Vec<u8>> = words.iter().map(|w| encoded(*w)).collect();
        assert!(bytes.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(String::decode_key(&bytes[6]).unwrap(), "é");
    }

    #[test]
    fn short_integer_key_is_an_error() {
        let err = u64::decode_key(&[1, 2, 3]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot decode a key: u64 key needs 8 bytes, got 3"
        );
    }

    /// A small xorshift generator: the same cases on every run, no dependency.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }

        /// Short byte strings over bytes that stress the escaping: 0x00, 0xFF and neighbours.
        fn bytes(&mut self) -> Vec<u8> {
            const ALPHABET: [u8; 6] = [0x00, 0x01, 0xFE, 0xFF, b'a', b'b'];
            let len = self.below(5);
            (0..len)
                .map(|_| ALPHABET[self.below(ALPHABET.len())])
                .collect()
        }

        fn string(&mut self) -> String {
            const ALPHABET: [char; 6] = ['\0', '\u{1}', 'a', 'b', 'ÿ', '中'];
            let len = self.below(5);
            (0..len)
                .map(|_| ALPHABET[self.below(ALPHABET.len())])
                .collect()
        }

        fn int(&mut self) -> i64 {
            const EDGES: [i64; 7] = [i64::MIN, -256, -1, 0, 1, 255, i64::MAX];
            EDGES[self.below(EDGES.len())]
        }
    }

    /// Every pair of `keys` compares as bytes as it compares as values; every key decodes back,
    /// alone and as a component followed by more.
    fn check_order_and_round_trip<K: Key + Ord + Debug + Clone>(keys: &[K]) {
        for a in keys {
            let bytes = encoded(a);
            for b in keys {
                assert_eq!(bytes.cmp(&encoded(b)), a.cmp(b), "{a:?} vs {b:?}");
                assert_eq!(component(a).cmp(&component(b)), a.cmp(b), "{a:?} vs {b:?}");
            }
            assert_eq!(&K::decode_key(&bytes).unwrap(), a);
            let mut followed = component(a);
            let len = followed.len();
            followed.extend_from_slice(b"\0\xffmore");
            assert_eq!(K::component_len(&followed).unwrap(), len, "{a:?}");
            let (decoded, rest) = K::decode_key_component(&followed).unwrap();
            assert_eq!((&decoded, rest), (a, &b"\0\xffmore"[..]));
        }
    }

    fn generated<K>(seed: u64, mut make: impl FnMut(&mut Rng) -> K) -> Vec<K> {
        let mut rng = Rng(seed);
        (0..300).map(|_| make(&mut rng)).collect()
    }

    #[test]
    fn tuples_of_strings_and_integers_sort_as_bytes_and_round_trip() {
        check_order_and_round_trip(&generated(1, |r| (r.string(), r.int() as u64)));
        check_order_and_round_trip(&generated(2, |r| (r.bytes(), r.int() as i32, r.string())));
        check_order_and_round_trip(&generated(3, |r| (r.bytes(), r.bytes())));
        check_order_and_round_trip(&generated(4, |r| {
            (r.int(), r.string(), r.bytes(), r.int() as u16)
        }));
        check_order_and_round_trip(&generated(5, |r| ((r.string(), r.int() as u8), r.bytes())));
    }

    #[test]
    fn prefixes_and_zero_bytes_sort_before_their_extensions() {
        let strings = [
            "", "\0", "\0\0", "\0ÿ", "\0\u{1}", "a", "a\0", "a\0b", "a\u{1}", "ab",
        ];
        let mut keys = Vec::new();
        for first in strings {
            for second in strings {
                keys.push((first.to_string(), second.to_string(), 7u8));
            }
        }
        check_order_and_round_trip(&keys);
        let bytes: [&[u8]; 6] = [b"", b"\0", b"\0\xff", b"\0\xff\0", b"\xff", b"\xff\0"];
        let keys: Vec<(Vec<u8>, u32)> = bytes.iter().map(|b| (b.to_vec(), 1)).collect();
        check_order_and_round_trip(&keys);
    }

    #[test]
    fn escaped_components_look_as_documented() {
        assert_eq!(encoded(&("a\0b", 1u8)), b"a\0\xffb\0\0\x01");
        assert_eq!(
            encoded(&(1u8, "a\0b")),
            b"\x01a\0b",
            "the last component is plain"
        );
        assert_eq!(component(&(1u8, "a\0b")), b"\x01a\0\xffb\0\0");
    }

    #[test]
    fn a_prefix_of_the_first_components_is_measured_without_decoding() {
        let key = encoded(&("wx\0yz".to_string(), 3u64, "tail".to_string()));
        type Triple = (String, u64, String);
        assert_eq!(Triple::prefix_len(&key, 0).unwrap(), 0);
        assert_eq!(Triple::prefix_len(&key, 1).unwrap(), 8);
        assert_eq!(Triple::prefix_len(&key, 2).unwrap(), 16);
        assert_eq!(Triple::prefix_len(&key, 3).unwrap(), key.len());
    }

    fn decode_error<K: Key + Debug>(bytes: &[u8]) -> String {
        K::decode_key(bytes).unwrap_err().to_string()
    }

    #[test]
    fn malformed_tuple_bytes_are_errors_naming_the_problem() {
        assert_eq!(
            decode_error::<(String, u64)>(b"abc"),
            "cannot decode a key: component 0: a byte string component has no 0x00 0x00 \
             terminator in 3 bytes"
        );
        assert_eq!(
            decode_error::<(String, u64)>(b"ab\0"),
            "cannot decode a key: component 0: a byte string component has no 0x00 0x00 \
             terminator in 3 bytes"
        );
        assert_eq!(
            decode_error::<(Vec<u8>, u64)>(b"ab\0\x01\0\0"),
            "cannot decode a key: component 0: a byte string component has 0x00 followed by \
             0x01 at byte 2 (only 0x00 0xFF and the terminator 0x00 0x00 are valid)"
        );
        let mut trailing = encoded(&("a", 1u64));
        trailing.push(9);
        assert_eq!(
            decode_error::<(String, u64)>(&trailing),
            "cannot decode a key: component 1: u64 key needs 8 bytes, got 9"
        );
        assert_eq!(
            decode_error::<(u32, u64)>(&[0, 0, 1]),
            "cannot decode a key: component 0: u32 key component needs 4 bytes, 3 left"
        );
        assert_eq!(
            decode_error::<(String, u8)>(b"\xff\0\0\x01"),
            "cannot decode a key: component 0: not UTF-8: invalid utf-8 sequence of 1 bytes \
             from index 0"
        );
    }

    #[test]
    fn a_key_type_that_does_not_measure_itself_cannot_lead_a_tuple() {
        struct Opaque;
        impl KeyEncode for Opaque {
            fn encode_key(&self, _: &mut Vec<u8>) {}
        }
        impl Key for Opaque {
            fn decode_key(_: &[u8]) -> Result<Self, JobError> {
                Ok(Opaque)
            }
        }
        let error = <(Opaque, u8)>::decode_key(&[1]).err().unwrap().to_string();
        assert!(
            error.contains("cannot be followed by another key component"),
            "{error}"
        );
    }

    /// What `Emitter::emit_parts` accepts for a key of type `K`.
    fn parts<K, P: KeyParts<K>>(parts: P) -> Vec<u8> {
        encoded(&parts)
    }

    #[test]
    fn borrowed_parts_encode_as_the_owned_key() {
        type WordYear = (String, u64);
        let owned: WordYear = ("zebra".to_string(), 1999);
        let word: &str = "zebra";
        assert_eq!(parts::<WordYear, _>((word, 1999)), encoded(&owned));
        assert_eq!(parts::<WordYear, _>((word, &1999)), encoded(&owned));
        assert_eq!(parts::<WordYear, _>(&owned), encoded(&owned));
        type Nested = ((String, u8), Vec<u8>);
        let nested: Nested = (("a".into(), 1), b"\0".to_vec());
        assert_eq!(parts::<Nested, _>((("a", 1), &b"\0"[..])), encoded(&nested));
    }
}
