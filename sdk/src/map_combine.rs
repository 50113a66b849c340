//! Map-side combining in the job's own types, before anything is encoded (Spark's map-side
//! aggregation): while a map task runs, the values of each key are folded by the job's combiner
//! (its binary [`Combiner::merge`]) as they are emitted, so a word seen a million times is encoded and handed to the engine once
//! per table, not a million times.
//!
//! Memory stays bounded: the table holds at most [`MAX_KEYS`] keys and [`MAX_KEY_BYTES`] of
//! them, and every [`MAX_FOLDS`] folds a key's value is measured: one whose encoding has grown
//! past [`MAX_HELD_VALUE`] (a combiner that builds a list) is passed on, so no value grows without
//! bound, while a sum or a count stays in the table. The engine combines again, so passing a key
//! on more than once is harmless.

use crate::JobError;
use crate::context::TaskContext;
use crate::engine::MapSink;
use crate::job::Combiner;
use crate::key::{Key, key_prefix};
use crate::value::{Value, encode_value};
use hashbrown::HashTable;
use std::hash::BuildHasher;

/// Distinct keys held at once; past this the table is passed on whole.
const MAX_KEYS: usize = 1 << 16;
/// Bytes of encoded keys held at once; past this the table is passed on whole.
const MAX_KEY_BYTES: usize = 32 << 20;
/// Folds between measurements of a key's value.
const MAX_FOLDS: u16 = 256;
/// Encoded bytes past which a measured value is passed on.
const MAX_HELD_VALUE: usize = 64;

/// A held key in the hash table, with its folded value: its first sixteen bytes (two words,
/// zero-padded, so keys of up to sixteen bytes, nearly every word of a text, compare whole here)
/// and its length, and where the rest lies. A fold touches nothing else for such a key (and a
/// combiner that ignores its key), and the table of a task's distinct words stays small enough
/// for cache: folding is bound by memory latency, not by the work it does. Sixteen bytes fit in
/// the 40 bytes that eight did, with the length and fold count narrowed: a longer key's length
/// is its place in [`MapCombine::starts`].
struct Slot<V> {
    /// Bytes 0..8 and 8..16 of the key, as [`key_prefix`] reads them.
    prefix: u64,
    suffix: u64,
    /// Into [`MapCombine::keys`] and [`MapCombine::starts`].
    index: u32,
    /// The key's length, up to `u16::MAX`: exact for every key compared whole.
    len: u16,
    folds: u16,
    /// None once passed on, until the key comes again.
    value: Option<V>,
}

/// What a slot holds of `key`: `(prefix, suffix, len)`.
#[inline]
fn inline_part(key: &[u8]) -> (u64, u64, u16) {
    let suffix = match key.get(8..) {
        Some(rest) => key_prefix(rest),
        None => 0,
    };
    let len = u16::try_from(key.len()).unwrap_or(u16::MAX);
    (key_prefix(key), suffix, len)
}

/// Bytes of a key that a slot holds whole.
const INLINE: usize = 16;

/// Hashes held keys. One of up to sixteen bytes (nearly all words) is its two words and length
/// mixed by one wide multiply, cheaper than hashing its bytes; a longer key hashes its bytes.
/// Seeded per table, as std's maps are, so input cannot be crafted to collide.
struct KeyHasher {
    bytes: foldhash::fast::RandomState,
    /// One per word of a short key: neither factor of the multiply is known to the input.
    seeds: (u64, u64),
}

impl KeyHasher {
    fn new() -> Self {
        let bytes = foldhash::fast::RandomState::default();
        let seeds = (bytes.hash_one(0u8), bytes.hash_one(1u8));
        KeyHasher { bytes, seeds }
    }

    #[inline]
    fn hash(&self, key: &[u8], (prefix, suffix, len): (u64, u64, u16)) -> u64 {
        if key.len() > INLINE {
            return self.bytes.hash_one(key);
        }
        let wide = u128::from(prefix ^ self.seeds.0)
            * u128::from(suffix ^ self.seeds.1 ^ (u64::from(len) << 56));
        (wide as u64) ^ ((wide >> 64) as u64)
    }
}

pub(crate) struct MapCombine<'c, K, V> {
    combiner: &'c dyn Combiner<Key = K, Value = V>,
    ctx: &'c TaskContext,
    hasher: KeyHasher,
    slots: HashTable<Slot<V>>,
    /// Decoded, for the combiner, by slot index.
    keys: Vec<K>,
    /// Where each key's encoding starts in `encoded_keys`, by slot index.
    starts: Vec<u32>,
    /// The held keys' encodings, end to end.
    encoded_keys: Vec<u8>,
    encoded_value: Vec<u8>,
}

impl<'c, K: Key, V: Value> MapCombine<'c, K, V> {
    pub(crate) fn new(
        combiner: &'c dyn Combiner<Key = K, Value = V>,
        ctx: &'c TaskContext,
    ) -> Self {
        MapCombine {
            combiner,
            ctx,
            hasher: KeyHasher::new(),
            slots: HashTable::new(),
            keys: Vec::new(),
            starts: Vec::new(),
            encoded_keys: Vec::new(),
            encoded_value: Vec::new(),
        }
    }

    /// Folds `value` into what `key` (encoded) holds. Inlined into the mapper's loop: this runs
    /// for every pair, and all but a fold stays out of line.
    #[inline]
    pub(crate) fn add(
        &mut self,
        key: &[u8],
        value: &V,
        sink: &mut dyn MapSink,
    ) -> Result<(), JobError> {
        let part = inline_part(key);
        let hash = self.hasher.hash(key, part);
        let (starts, encoded_keys) = (&self.starts, &self.encoded_keys);
        let found = self.slots.find_mut(hash, |slot| {
            (slot.prefix, slot.suffix, slot.len) == part
                && (key.len() <= INLINE || stored_key(encoded_keys, starts, slot) == key)
        });
        let Some(slot) = found else {
            return self.insert((hash, part), key, value, sink);
        };
        slot.value = Some(match slot.value.take() {
            None => value.clone(),
            Some(held) => {
                let key = &self.keys[slot.index as usize];
                self.combiner.merge(self.ctx, key, held, value.clone())
            }
        });
        slot.folds += 1;
        if slot.folds < MAX_FOLDS {
            return Ok(());
        }
        slot.folds = 0;
        measure(key, slot, &mut self.encoded_value, sink)
    }

    /// Holds a key not held yet, with its hash and [`inline_part`].
    #[inline(never)]
    fn insert(
        &mut self,
        (hash, (prefix, suffix, len)): (u64, (u64, u64, u16)),
        key: &[u8],
        value: &V,
        sink: &mut dyn MapSink,
    ) -> Result<(), JobError> {
        if self.keys.len() >= MAX_KEYS || self.encoded_keys.len() + key.len() > MAX_KEY_BYTES {
            self.flush(sink)?;
        }
        let slot = Slot {
            prefix,
            suffix,
            len,
            index: self.keys.len() as u32,
            folds: 1,
            value: Some(value.clone()),
        };
        self.keys.push(K::decode_key(key)?);
        self.starts.push(self.encoded_keys.len() as u32);
        self.encoded_keys.extend_from_slice(key);
        let (hasher, starts, encoded_keys) = (&self.hasher, &self.starts, &self.encoded_keys);
        self.slots.insert_unique(hash, slot, |slot| {
            let key = stored_key(encoded_keys, starts, slot);
            hasher.hash(key, (slot.prefix, slot.suffix, slot.len))
        });
        Ok(())
    }

    /// Passes every held key on to the engine.
    pub(crate) fn flush(&mut self, sink: &mut dyn MapSink) -> Result<(), JobError> {
        for slot in self.slots.drain() {
            let key = stored_key(&self.encoded_keys, &self.starts, &slot);
            pass_on(key, slot.value, &mut self.encoded_value, sink)?;
        }
        self.keys.clear();
        self.starts.clear();
        self.encoded_keys.clear();
        Ok(())
    }
}

/// Measures the value `slot` holds for `key` (encoded), and passes it on if it has grown past
/// [`MAX_HELD_VALUE`].
#[cold]
#[inline(never)]
fn measure<V: Value>(
    key: &[u8],
    slot: &mut Slot<V>,
    encoded: &mut Vec<u8>,
    sink: &mut dyn MapSink,
) -> Result<(), JobError> {
    let Some(value) = &slot.value else {
        return Ok(());
    };
    encoded.clear();
    encode_value(value, encoded)?;
    if encoded.len() <= MAX_HELD_VALUE {
        return Ok(());
    }
    slot.value = None;
    sink.emit(key, encoded)
}

/// The encoded key that `slot` holds: from its start to the next key's, or to the end.
fn stored_key<'a, V>(encoded_keys: &'a [u8], starts: &[u32], slot: &Slot<V>) -> &'a [u8] {
    let index = slot.index as usize;
    let end = starts
        .get(index + 1)
        .map_or(encoded_keys.len(), |&e| e as usize);
    &encoded_keys[starts[index] as usize..end]
}

/// Hands `key` and its folded value, if it holds one, to the engine.
fn pass_on<V: Value>(
    key: &[u8],
    value: Option<V>,
    encoded: &mut Vec<u8>,
    sink: &mut dyn MapSink,
) -> Result<(), JobError> {
    let Some(value) = value else {
        return Ok(());
    };
    encoded.clear();
    encode_value(&value, encoded)?;
    sink.emit(key, encoded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::decode_value;

    struct Sum;
    impl Combiner for Sum {
        type Key = String;
        type Value = u64;
        fn combine(
            &self,
            _: &TaskContext,
            _: &String,
            values: &mut dyn Iterator<Item = u64>,
        ) -> u64 {
            values.sum()
        }
    }

    #[derive(Default)]
    struct Collect(Vec<(Vec<u8>, u64)>);
    impl MapSink for Collect {
        fn emit(&mut self, key: &[u8], value: &[u8]) -> Result<(), JobError> {
            self.0.push((key.to_vec(), decode_value(value)?));
            Ok(())
        }
    }

    #[test]
    fn a_sum_stays_in_the_table_however_often_its_key_comes() {
        let ctx = TaskContext::default();
        let mut combine = MapCombine::new(&Sum, &ctx);
        let mut sink = Collect::default();
        let hot = 10 * MAX_FOLDS as u64 + 10;
        for i in 0..hot {
            combine.add(b"hot", &1, &mut sink).unwrap();
            if i % 100 == 0 {
                combine.add(b"cold", &2, &mut sink).unwrap();
            }
        }
        assert!(sink.0.is_empty(), "nothing went on while mapping");
        combine.flush(&mut sink).unwrap();
        sink.0.sort();
        let cold = 2 * hot.div_ceil(100);
        assert_eq!(sink.0, [(b"cold".to_vec(), cold), (b"hot".to_vec(), hot)]);
    }

    /// Concatenates: a value that grows with every fold.
    struct Concat;
    impl Combiner for Concat {
        type Key = String;
        type Value = Vec<u64>;
        fn combine(
            &self,
            _: &TaskContext,
            _: &String,
            values: &mut dyn Iterator<Item = Vec<u64>>,
        ) -> Vec<u64> {
            values.flatten().collect()
        }
    }

    /// Sums by `merge`, counting its calls; `combine` must not be called.
    #[derive(Default)]
    struct MergeSum(std::sync::atomic::AtomicU64);
    impl Combiner for MergeSum {
        type Key = String;
        type Value = u64;
        fn combine(&self, _: &TaskContext, _: &String, _: &mut dyn Iterator<Item = u64>) -> u64 {
            panic!("map-side combining folds by merge")
        }
        fn merge(&self, _: &TaskContext, _: &String, held: u64, value: u64) -> u64 {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            held + value
        }
    }

    #[test]
    fn a_combiner_with_a_merge_folds_each_pair_by_it() {
        let ctx = TaskContext::default();
        let merge = MergeSum::default();
        let mut combine = MapCombine::new(&merge, &ctx);
        let mut sink = Collect::default();
        // "a" 1 + 2 + ... + 10, "b" 7 once.
        for i in 1..=10 {
            combine.add(b"a", &i, &mut sink).unwrap();
        }
        combine.add(b"b", &7, &mut sink).unwrap();
        combine.flush(&mut sink).unwrap();
        sink.0.sort();
        assert_eq!(sink.0, [(b"a".to_vec(), 55), (b"b".to_vec(), 7)]);
        assert_eq!(
            merge.0.into_inner(),
            9,
            "one merge per pair after the first"
        );
    }

    #[test]
    fn a_growing_value_is_passed_on_in_bounded_pieces() {
        let ctx = TaskContext::default();
        let mut combine = MapCombine::new(&Concat, &ctx);
        let mut sink = Vec::new();
        let mut collect = CollectLists(&mut sink);
        let n = 2 * MAX_FOLDS as u64 + 10;
        for i in 0..n {
            combine.add(b"list", &vec![i], &mut collect).unwrap();
        }
        // Two pieces went on while mapping, each well past MAX_HELD_VALUE encoded; the rest
        // waits for the flush.
        let piece = |from: u64| (from..from + u64::from(MAX_FOLDS)).collect::<Vec<u64>>();
        assert_eq!(collect.0, &[piece(0), piece(u64::from(MAX_FOLDS))]);
        combine.flush(&mut collect).unwrap();
        let all: Vec<u64> = sink.concat();
        assert_eq!(all, (0..n).collect::<Vec<u64>>());
        assert_eq!(sink.len(), 3);
    }

    struct CollectLists<'a>(&'a mut Vec<Vec<u64>>);
    impl MapSink for CollectLists<'_> {
        fn emit(&mut self, key: &[u8], value: &[u8]) -> Result<(), JobError> {
            assert_eq!(key, b"list");
            self.0.push(decode_value(value)?);
            Ok(())
        }
    }

    #[test]
    fn a_full_table_is_passed_on_whole() {
        let ctx = TaskContext::default();
        let mut combine = MapCombine::new(&Sum, &ctx);
        let mut sink = Collect::default();
        for i in 0..=MAX_KEYS {
            combine
                .add(format!("k{i}").as_bytes(), &1, &mut sink)
                .unwrap();
        }
        assert_eq!(
            sink.0.len(),
            MAX_KEYS,
            "the table went on when the next key came"
        );
        assert_eq!(combine.keys.len(), 1);
    }

    #[test]
    fn keys_alike_in_their_first_sixteen_bytes_or_but_for_zero_padding_stay_apart() {
        let ctx = TaskContext::default();
        let mut combine = MapCombine::new(&Sum, &ctx);
        let mut sink = Collect::default();
        let keys: [&[u8]; 13] = [
            b"a",
            b"a\0",
            b"a\0\0\0\0\0\0\0",
            b"abcdefgh",
            b"abcdefghi",
            b"abcdefghj",
            b"abcdefghij",
            b"abcdefgh\0",
            b"abcdefghijklmnop",
            b"abcdefghijklmnoq",
            b"abcdefghijklmnop\0",
            b"abcdefghijklmnopq",
            b"abcdefghijklmnopr",
        ];
        // Key i is added i + 1 times, interleaved.
        for round in 0..keys.len() {
            for (i, key) in keys.iter().enumerate() {
                if round <= i {
                    combine.add(key, &1, &mut sink).unwrap();
                }
            }
        }
        combine.flush(&mut sink).unwrap();
        sink.0.sort();
        let mut expected: Vec<(Vec<u8>, u64)> = keys
            .iter()
            .enumerate()
            .map(|(i, key)| (key.to_vec(), i as u64 + 1))
            .collect();
        expected.sort();
        assert_eq!(sink.0, expected, "each key on its own");
    }

    #[test]
    fn a_table_full_of_key_bytes_is_passed_on_whole() {
        let ctx = TaskContext::default();
        let mut combine = MapCombine::new(&Sum, &ctx);
        let mut sink = Collect::default();
        let big = |i: u8| vec![i; MAX_KEY_BYTES / 3];
        for i in 0..3 {
            combine.add(&big(i), &1, &mut sink).unwrap();
        }
        assert!(sink.0.is_empty(), "three fit");
        combine.add(&big(3), &1, &mut sink).unwrap();
        assert_eq!(sink.0.len(), 3, "the fourth did not");
        combine.add(&big(3), &1, &mut sink).unwrap();
        combine.flush(&mut sink).unwrap();
        assert_eq!(sink.0[3..], [(big(3), 2)]);
    }
}
