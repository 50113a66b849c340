//! Map-side hash combining, for jobs with a combiner (Spark's map-side aggregation). Records go
//! into a hash table keyed by their key bytes; each key's values are appended and folded by the
//! combiner every [`FOLD_EVERY`] values, so a word seen a million times costs a million appends
//! and a few thousand combiner calls, and no sort. Only when the table outgrows its memory limit,
//! or at the end of the task, are its distinct keys sorted (few, next to the records) and written
//! out as a run; runs merge as the sort buffer's do.

use crate::map_output::partition_of;
use crate::spill::RunWriter;
use integer_encoding::VarInt;
use quern_sdk::{JobEngine, JobError, ValueStream};
use std::collections::HashMap;

/// Values a key collects before the combiner folds them into one.
const FOLD_EVERY: u32 = 64;
/// What a distinct key costs besides its values: its table slot, counted twice for the table's
/// spare capacity (hashbrown grows by doubling and stays at most 7/8 full), and the key's bytes
/// when they are too long to live in the slot.
fn key_cost(key: &[u8]) -> usize {
    let slot = 2 * std::mem::size_of::<(Key, Slot)>();
    if key.len() > INLINE_KEY {
        slot + key.len()
    } else {
        slot
    }
}

/// One key's pending values, each framed as `varint(length) bytes`.
struct Slot {
    partition: u32,
    values: Vec<u8>,
    count: u32,
}

/// Keys up to this long live inside the table's slots, so a lookup compares them without a
/// pointer chase to the heap (most words are short).
type Key = smallvec::SmallVec<[u8; INLINE_KEY]>;
const INLINE_KEY: usize = 24;

pub struct CombineTable {
    table: HashMap<Key, Slot, foldhash::fast::RandomState>,
    bytes: usize,
    limit: usize,
    scratch: Vec<u8>,
}

impl CombineTable {
    /// A table holding about `limit` bytes of keys and values.
    pub fn new(limit: usize) -> Self {
        CombineTable {
            table: HashMap::default(),
            bytes: 0,
            limit: limit.max(1),
            scratch: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Whether the table has outgrown its limit and should be written out.
    pub fn is_full(&self) -> bool {
        self.bytes > self.limit
    }

    /// Adds one record, folding the key's values when enough have gathered.
    /// The key's partition is computed once, when the key is first seen.
    pub fn insert(
        &mut self,
        job: &dyn JobEngine,
        partitions: u32,
        key: &[u8],
        value: &[u8],
    ) -> Result<(), JobError> {
        let slot = match self.table.get_mut(key) {
            Some(slot) => slot,
            None => {
                let partition = partition_of(job, key, partitions)?;
                self.bytes += key_cost(key);
                self.table.entry(Key::from_slice(key)).or_insert(Slot {
                    partition,
                    values: Vec::new(),
                    count: 0,
                })
            }
        };
        // Memory is what the value buffer holds, not what it uses: a fold keeps the capacity.
        let before = slot.values.capacity();
        push_framed(&mut slot.values, value);
        slot.count += 1;
        if slot.count >= FOLD_EVERY {
            fold(job, key, slot, &mut self.scratch)?;
        }
        self.bytes = (self.bytes + slot.values.capacity()).saturating_sub(before);
        Ok(())
    }

    /// Writes every key, sorted by (partition, key), with its values folded into one, and empties
    /// the table.
    pub fn write_sorted(
        &mut self,
        job: &dyn JobEngine,
        out: &mut RunWriter,
    ) -> Result<(), JobError> {
        let mut entries: Vec<(Key, Slot)> = self.table.drain().collect();
        entries.sort_unstable_by(|a, b| (a.1.partition, &a.0).cmp(&(b.1.partition, &b.0)));
        for (key, mut slot) in entries {
            if slot.count > 1 {
                fold(job, &key, &mut slot, &mut self.scratch)?;
            }
            out.start_partition(slot.partition)?;
            let mut values = Framed {
                bytes: &slot.values,
            };
            while let Some(value) = values.next_value()? {
                out.write(&key, value)?;
            }
        }
        self.bytes = 0;
        Ok(())
    }
}

fn push_framed(out: &mut Vec<u8>, value: &[u8]) {
    let mut header = [0u8; 10];
    let used = (value.len() as u64).encode_var(&mut header);
    out.extend_from_slice(&header[..used]);
    out.extend_from_slice(value);
}

/// Replaces a slot's values with the combiner's fold of them.
fn fold(
    job: &dyn JobEngine,
    key: &[u8],
    slot: &mut Slot,
    scratch: &mut Vec<u8>,
) -> Result<(), JobError> {
    scratch.clear();
    job.combine(
        key,
        &mut Framed {
            bytes: &slot.values,
        },
        scratch,
    )?;
    slot.values.clear();
    push_framed(&mut slot.values, scratch);
    slot.count = 1;
    Ok(())
}

/// The framed values of one slot.
struct Framed<'a> {
    bytes: &'a [u8],
}

impl ValueStream for Framed<'_> {
    fn next_value(&mut self) -> Result<Option<&[u8]>, JobError> {
        if self.bytes.is_empty() {
            return Ok(None);
        }
        let corrupt = || JobError::Io(std::io::Error::other("corrupt combine table frame"));
        let (len, used) = u64::decode_var(self.bytes).ok_or_else(corrupt)?;
        let end = used
            .checked_add(len as usize)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(corrupt)?;
        let value = &self.bytes[used..end];
        self.bytes = &self.bytes[end..];
        Ok(Some(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_full_once_its_keys_and_value_buffers_reach_the_limit() {
        let job = quern_examples::wordcount::job();
        let one = [1u8]; // 1u64 in bincode's varint encoding
        let limit = 10_000;
        let mut table = CombineTable::new(limit);
        let mut keys = 0;
        while !table.is_full() {
            table
                .insert(&job, 1, format!("key-{keys}").as_bytes(), &one)
                .unwrap();
            keys += 1;
        }
        // Each key costs at least its slot twice over, plus its value buffer.
        let per_key = 2 * std::mem::size_of::<(Key, Slot)>();
        assert!(
            keys <= limit / per_key + 1,
            "{keys} keys fit in {limit} bytes"
        );
        // A key longer than a slot holds is counted with its bytes.
        let long = vec![b'x'; 1000];
        let before = table.bytes;
        table.insert(&job, 1, &long, &one).unwrap();
        assert!(table.bytes >= before + per_key + long.len());
    }
}
