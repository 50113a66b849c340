//! The map-side sort buffer: records accumulate in one byte arena with a small index entry each;
//! when the arena is full the index is sorted by (partition, key bytes) and written out as a run.
//! Memory per map task is bounded by the buffer's limit, however large the split.
//!
//! Each index entry carries the key's first eight bytes as a big-endian integer, so most
//! comparisons in the sort are one integer compare instead of a `memcmp` into the arena.
//! Writing the sorted records reads the arena in key order, at random, so the arena sits on huge
//! pages where the kernel allows and each record is prefetched a few entries ahead.

use crate::spill::{RunWriter, write_group};
use quern_sdk::engine::EncodedRecord;
use quern_sdk::key::key_prefix;
use quern_sdk::{JobEngine, JobError, TaskContext, ValueStream};

/// Where one record lies in the arena; the value follows the key.
#[derive(Clone, Copy)]
struct Entry {
    /// The key's first eight bytes, zero-padded, big-endian: orders like the bytes.
    prefix: u64,
    partition: u32,
    key_start: u32,
    key_len: u32,
    value_len: u32,
}

impl Entry {
    /// Orders by (partition, key bytes), touching the arena only when the prefixes tie.
    fn cmp_in(&self, other: &Entry, arena: &[u8]) -> std::cmp::Ordering {
        (self.partition, self.prefix)
            .cmp(&(other.partition, other.prefix))
            .then_with(|| {
                if self.key_len <= 8 && other.key_len <= 8 {
                    // Equal prefixes of short keys differ only in trailing zero bytes.
                    return self.key_len.cmp(&other.key_len);
                }
                let (a, b) = (self.key(arena), other.key(arena));
                a[a.len().min(8)..]
                    .cmp(&b[b.len().min(8)..])
                    .then(a.len().cmp(&b.len()))
            })
    }

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
    /// A buffer holding about `limit` bytes of records and index. Both are reserved whole up
    /// front (address space only, until written), on huge pages where the kernel gives them,
    /// so that neither is moved as it grows.
    pub fn new(limit: usize) -> Self {
        let limit = limit.clamp(1, MAX_LIMIT);
        SortBuffer {
            arena: reserved(limit),
            entries: reserved(limit / std::mem::size_of::<Entry>()),
            limit,
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
            prefix: key_prefix(key),
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
        ctx: &TaskContext,
        out: &mut RunWriter,
    ) -> Result<(), JobError> {
        let arena = &self.arena;
        self.entries.sort_unstable_by(|a, b| a.cmp_in(b, arena));
        let entries = &self.entries;
        let same_group = |a: &Entry, b: &Entry| a.cmp_in(b, arena).is_eq();
        // Where the next group starts in `entries`.
        let mut at = 0;
        for group in entries.chunk_by(same_group) {
            for ahead in at + PREFETCH_AHEAD..at + PREFETCH_AHEAD + group.len() {
                prefetch(arena, entries.get(ahead));
            }
            at += group.len();
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
                write_group(job, ctx, key, &mut values, out)?;
            }
        }
        self.arena.clear();
        self.entries.clear();
        Ok(())
    }
}

/// An empty vector with room for `len` items on huge pages (see
/// [`crate::memory::advise_huge_pages`]), or, if that much address space cannot be had, one
/// that grows as it is filled.
fn reserved<T>(len: usize) -> Vec<T> {
    let mut items = Vec::new();
    if items.try_reserve_exact(len).is_ok() {
        crate::memory::advise_huge_pages(items.spare_capacity_mut());
    }
    items
}

/// How many entries ahead of the one being written its record is fetched into the cache. The
/// sorted order visits the arena at random, so without this every record written is a cache and
/// TLB miss: a quarter of a sort job's time went to that wait in `memmove`.
const PREFETCH_AHEAD: usize = 16;

/// Asks the CPU to start loading `entry`'s record (its first and last cache lines) now.
fn prefetch(arena: &[u8], entry: Option<&Entry>) {
    #[cfg(target_arch = "x86_64")]
    if let Some(entry) = entry {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let start = entry.key_start as usize;
        let last = (start + (entry.key_len + entry.value_len) as usize).saturating_sub(1);
        for byte in [arena.get(start), arena.get(last)].into_iter().flatten() {
            // SAFETY: a prefetch is only a hint to the cache: it reads nothing into the program
            // and cannot fault; the address is in the arena besides.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(byte).cast()) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (arena, entry);
}

/// The records of one group of sorted entries: one exact key, as combining needs.
struct BufferValues<'a> {
    arena: &'a [u8],
    entries: std::slice::Iter<'a, Entry>,
}

impl ValueStream for BufferValues<'_> {
    fn next_record(&mut self) -> Result<Option<EncodedRecord<'_>>, JobError> {
        let arena = self.arena;
        Ok(self
            .entries
            .next()
            .map(|entry| (entry.key(arena), entry.value(arena))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_order_exactly_as_their_key_bytes() {
        let keys: [&[u8]; 12] = [
            b"",
            b"\0",
            b"a",
            b"a\0",
            b"ab",
            b"abcdefgh",
            b"abcdefgh\0",
            b"abcdefghi",
            b"abcdefgz",
            b"b",
            b"\xff\xff\xff\xff\xff\xff\xff\xff",
            b"\xff\xff\xff\xff\xff\xff\xff\xff\0",
        ];
        let mut arena = Vec::new();
        let entries: Vec<Entry> = keys
            .iter()
            .map(|k| {
                let entry = Entry {
                    prefix: key_prefix(k),
                    partition: 0,
                    key_start: arena.len() as u32,
                    key_len: k.len() as u32,
                    value_len: 0,
                };
                arena.extend_from_slice(k);
                entry
            })
            .collect();
        for (i, a) in entries.iter().enumerate() {
            for (j, b) in entries.iter().enumerate() {
                assert_eq!(
                    a.cmp_in(b, &arena),
                    keys[i].cmp(keys[j]),
                    "{:?} vs {:?}",
                    keys[i],
                    keys[j]
                );
            }
        }
    }
}
