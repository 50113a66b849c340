//! Map-side combining in the job's own types, before anything is encoded (Spark's map-side
//! aggregation): while a map task runs, the values of each key are folded by the job's combiner
//! as they are emitted, so a word seen a million times is encoded and handed to the engine a few
//! thousand times, not a million.
//!
//! Memory stays bounded: the table holds at most [`MAX_KEYS`] keys, and a key's value is passed
//! on after [`MAX_FOLDS`] values, so even a combiner whose value grows (a list) cannot grow it
//! without bound. The engine combines again, so passing a key on more than once is harmless.

use crate::JobError;
use crate::context::TaskContext;
use crate::engine::MapSink;
use crate::job::Combiner;
use crate::key::Key;
use crate::value::{Value, encode_value};
use std::collections::HashMap;

/// Distinct keys held at once; past this the table is passed on whole.
const MAX_KEYS: usize = 1 << 16;
/// Values folded into one before it is passed on.
const MAX_FOLDS: u32 = 256;

struct Pending<K, V> {
    key: K,
    /// None only while the combiner folds it.
    value: Option<V>,
    folds: u32,
}

/// Encoded keys up to 24 bytes live inside the table's slots, so a lookup compares them without
/// a pointer chase to the heap (most words are short).
type EncodedKey = smallvec::SmallVec<[u8; 24]>;

pub(crate) struct MapCombine<'c, K, V> {
    combiner: &'c dyn Combiner<Key = K, Value = V>,
    ctx: &'c TaskContext,
    table: HashMap<EncodedKey, Pending<K, V>, foldhash::fast::RandomState>,
    encoded: Vec<u8>,
}

impl<'c, K: Key, V: Value> MapCombine<'c, K, V> {
    pub(crate) fn new(
        combiner: &'c dyn Combiner<Key = K, Value = V>,
        ctx: &'c TaskContext,
    ) -> Self {
        MapCombine {
            combiner,
            ctx,
            table: HashMap::default(),
            encoded: Vec::new(),
        }
    }

    /// Folds `value` into what `key` (encoded) holds.
    pub(crate) fn add(
        &mut self,
        key: &[u8],
        value: &V,
        sink: &mut dyn MapSink,
    ) -> Result<(), JobError> {
        let Some(pending) = self.table.get_mut(key) else {
            if self.table.len() >= MAX_KEYS {
                self.flush(sink)?;
            }
            let pending = Pending {
                key: K::decode_key(key)?,
                value: Some(value.clone()),
                folds: 1,
            };
            self.table.insert(EncodedKey::from_slice(key), pending);
            return Ok(());
        };
        let held = pending
            .value
            .take()
            .expect("a pending key holds a value between folds");
        let mut both = [held, value.clone()].into_iter();
        pending.value = Some(self.combiner.combine(self.ctx, &pending.key, &mut both));
        pending.folds += 1;
        if pending.folds >= MAX_FOLDS
            && let Some((key, pending)) = self.table.remove_entry(key)
        {
            pass_on(&key, pending, &mut self.encoded, sink)?;
        }
        Ok(())
    }

    /// Passes every held key on to the engine.
    pub(crate) fn flush(&mut self, sink: &mut dyn MapSink) -> Result<(), JobError> {
        for (key, pending) in self.table.drain() {
            pass_on(&key, pending, &mut self.encoded, sink)?;
        }
        Ok(())
    }
}

fn pass_on<K, V: Value>(
    key: &[u8],
    pending: Pending<K, V>,
    encoded: &mut Vec<u8>,
    sink: &mut dyn MapSink,
) -> Result<(), JobError> {
    let value = pending
        .value
        .expect("a pending key holds a value between folds");
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
    fn values_fold_as_they_come_and_a_hot_key_is_passed_on_in_bounded_pieces() {
        let ctx = TaskContext::default();
        let mut combine = MapCombine::new(&Sum, &ctx);
        let mut sink = Collect::default();
        let hot = 2 * MAX_FOLDS as u64 + 10;
        for i in 0..hot {
            combine.add(b"hot", &1, &mut sink).unwrap();
            if i % 100 == 0 {
                combine.add(b"cold", &2, &mut sink).unwrap();
            }
        }
        // Two full pieces of the hot key went on while mapping; the rest waits for the flush.
        let piece = MAX_FOLDS as u64;
        assert_eq!(
            sink.0,
            vec![(b"hot".to_vec(), piece), (b"hot".to_vec(), piece)]
        );
        combine.flush(&mut sink).unwrap();
        let total = |key: &[u8]| -> u64 {
            sink.0
                .iter()
                .filter(|(k, _)| k == key)
                .map(|(_, v)| v)
                .sum()
        };
        assert_eq!(total(b"hot"), hot);
        assert_eq!(total(b"cold"), 2 * 6);
        assert_eq!(sink.0.len(), 4);
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
        assert_eq!(combine.table.len(), 1);
    }
}
