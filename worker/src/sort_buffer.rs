//! The map-side sort buffer: records accumulate in one byte arena with a small index entry each;
//! when the arena is full the index is sorted by (partition, key bytes) and written out as a run.
//! Memory per map task is bounded by the buffer's limit, however large the split.

use crate::spill::{RunWriter, write_group};
use quern_sdk::{JobEngine, JobError, ValueStream};

/// Where one record lies in the arena; the value follows the key.
#[derive(Clone, Copy)]
struct Entry {
    partition: u32,
    key_start: u32,
    key_len: u32,
    value_len: u32,
}

impl Entry {
    fn key<'a>(&self, arena: &'a [u8]) -> &'a [u8] {
        let start = self.key_start as usize;
        &arena[start..start + self.key_len as usize]
    }

    fn value<'a>(&self, arena: &'a [u8]) -> &'a [u8] {
        let start = (self.key_start + self.key_len) as usize;
        &arena[start..start + self.value_len as usize]
    }
}

/// The arena addresses records with u32 offsets.
const MAX_LIMIT: usize = u32::MAX as usize;

pub struct SortBuffer {
    arena: Vec<u8>,
    entries: Vec<Entry>,
    limit: usize,
}

impl SortBuffer {
    /// A buffer holding about `limit` bytes of records and index.
    pub fn new(limit: usize) -> Self {
        SortBuffer {
            arena: Vec::new(),
            entries: Vec::new(),
            limit: limit.clamp(1, MAX_LIMIT),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn used(&self) -> usize {
        self.arena.len() + self.entries.len() * std::mem::size_of::<Entry>()
    }

    /// Whether a record of this size fits. An empty buffer takes any record, so a record larger
    /// than the whole buffer still goes through (as a run of its own).
    pub fn fits(&self, key: &[u8], value: &[u8]) -> bool {
        let needed = key.len() + value.len() + std::mem::size_of::<Entry>();
        self.is_empty() || self.used() + needed <= self.limit
    }

    pub fn push(&mut self, partition: u32, key: &[u8], value: &[u8]) {
        let entry = Entry {
            partition,
            key_start: self.arena.len() as u32,
            key_len: key.len() as u32,
            value_len: value.len() as u32,
        };
        self.arena.extend_from_slice(key);
        self.arena.extend_from_slice(value);
        self.entries.push(entry);
    }

    /// Sorts the records, writes them to `out` group by group (combined where the job has a
    /// combiner), and empties the buffer.
    pub fn write_sorted(
        &mut self,
        job: &dyn JobEngine,
        out: &mut RunWriter,
    ) -> Result<(), JobError> {
        let arena = &self.arena;
        self.entries.sort_unstable_by(|a, b| {
            a.partition
                .cmp(&b.partition)
                .then_with(|| a.key(arena).cmp(b.key(arena)))
        });
        let same_group =
            |a: &Entry, b: &Entry| a.partition == b.partition && a.key(arena) == b.key(arena);
        for group in self.entries.chunk_by(same_group) {
            let first = group[0];
            out.start_partition(first.partition)?;
            let key = first.key(arena);
            if group.len() == 1 {
                out.write(key, first.value(arena))?;
            } else {
                let mut values = BufferValues {
                    arena,
                    entries: group.iter(),
                };
                write_group(job, key, &mut values, out)?;
            }
        }
        self.arena.clear();
        self.entries.clear();
        Ok(())
    }
}

/// The values of one group of sorted entries.
struct BufferValues<'a> {
    arena: &'a [u8],
    entries: std::slice::Iter<'a, Entry>,
}

impl ValueStream for BufferValues<'_> {
    fn next_value(&mut self) -> Result<Option<&[u8]>, JobError> {
        Ok(self.entries.next().map(|entry| entry.value(self.arena)))
    }
}
