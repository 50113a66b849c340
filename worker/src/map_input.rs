//! The records of a map's whole input: one byte range of one object, or the small objects of a
//! packed split (see the coordinator's `split`), each read whole, one after another, in the order
//! the assignment lists them. Each object is opened by [`SplitRecords`] exactly as a split of
//! its own is, so it keeps its own size and version check (a changed object fails the task naming
//! it), its own offsets and its record format. As each object's first record comes, the task's
//! context is moved to it (see `quern_sdk::MapInput`), so job code names the file of the record
//! it maps.

use crate::decompress::Chunks;
use crate::input_format::SplitRecords;
use quern_proto::{Assignment, MapSplit};
use quern_sdk::engine::RecordSource;
use quern_sdk::{InputCursor, InputFormat, InputSplit, JobError, MapInput};

/// The object ranges a map or sample assignment reads, in order: its split, or its packed
/// objects (an assignment carries one or the other).
pub fn map_splits(assignment: &Assignment) -> impl Iterator<Item = &MapSplit> {
    assignment.split.iter().chain(&assignment.packed)
}

/// What job code is told of the input of `assignment`; None for a task that reads none.
pub fn map_input(assignment: &Assignment) -> Option<MapInput> {
    let splits = map_splits(assignment).map(|split| InputSplit {
        url: split.url.clone(),
        start: split.start,
        end: split.end,
    });
    MapInput::new(splits.collect())
}

/// Each object's chunks in turn, from its read start; None once the reader stopped.
pub type ObjectChunks = Box<dyn FnMut() -> Option<Chunks>>;

/// The records of a map's input, counted.
pub struct MapRecords(Inner);

enum Inner {
    /// One range of one object: its records as they come, not copied.
    One(SplitRecords),
    Packed(Packed),
}

impl MapRecords {
    /// The records of `splits`, read as `format` from the chunks `objects` gives for each in
    /// turn, none longer than `max_record`; `cursor` is moved to each object as it opens.
    pub fn open(
        splits: Vec<MapSplit>,
        format: &InputFormat,
        max_record: u64,
        objects: ObjectChunks,
        cursor: Option<InputCursor>,
    ) -> Result<Self, JobError> {
        let mut queue = ObjectQueue {
            splits: splits.into_iter(),
            format: format.clone(),
            max_record,
            objects,
        };
        let first = queue.open_next()?;
        let inner = match (first, queue.splits.len()) {
            (Some(records), 0) => Inner::One(records),
            (first, _) => Inner::Packed(Packed::new(queue, first, cursor)),
        };
        Ok(MapRecords(inner))
    }

    /// Records handed out so far.
    pub fn records_read(&self) -> u64 {
        match &self.0 {
            Inner::One(records) => records.records_read(),
            Inner::Packed(packed) => packed.done_records + packed.current_counts().0,
        }
    }

    /// Bytes the map owns, read so far: for each object, as [`SplitRecords::bytes_read`] counts.
    pub fn bytes_read(&self) -> u64 {
        match &self.0 {
            Inner::One(records) => records.bytes_read(),
            Inner::Packed(packed) => packed.done_bytes + packed.current_counts().1,
        }
    }
}

impl RecordSource for MapRecords {
    #[inline]
    fn next_record(&mut self) -> Result<Option<(u64, &[u8])>, JobError> {
        match &mut self.0 {
            Inner::One(records) => records.next_record(),
            Inner::Packed(packed) => packed.next_record(),
        }
    }
}

/// The objects of a map's input not yet opened.
struct ObjectQueue {
    splits: std::vec::IntoIter<MapSplit>,
    format: InputFormat,
    max_record: u64,
    objects: ObjectChunks,
}

impl ObjectQueue {
    /// The records of the next object; None after the last, or once the reader stopped (a
    /// cancelled attempt: the map checks for that after its last record).
    fn open_next(&mut self) -> Result<Option<SplitRecords>, JobError> {
        let Some(split) = self.splits.next() else {
            return Ok(None);
        };
        let Some(chunks) = (self.objects)() else {
            return Ok(None);
        };
        SplitRecords::open(&split, &self.format, self.max_record, chunks).map(Some)
    }
}

/// The objects of a packed split, read one after another.
struct Packed {
    objects: ObjectQueue,
    current: Option<SplitRecords>,
    /// Index of `current` among the packed objects.
    index: usize,
    cursor: Option<InputCursor>,
    /// Records and owned bytes of the objects before `current`.
    done_records: u64,
    done_bytes: u64,
    /// The record handed out, copied: a record borrowed from `current` could not be returned
    /// from a call that may go on to replace `current` with the next object.
    record: Vec<u8>,
}

impl Packed {
    /// The pack of `current`, its first object, and the rest still in `objects`.
    fn new(
        objects: ObjectQueue,
        current: Option<SplitRecords>,
        cursor: Option<InputCursor>,
    ) -> Self {
        Packed {
            objects,
            current,
            index: 0,
            cursor,
            done_records: 0,
            done_bytes: 0,
            record: Vec::new(),
        }
    }

    #[inline]
    fn next_record(&mut self) -> Result<Option<(u64, &[u8])>, JobError> {
        loop {
            let Some(current) = &mut self.current else {
                return Ok(None);
            };
            if let Some((offset, record)) = current.next_record()? {
                self.record.clear();
                self.record.extend_from_slice(record);
                return Ok(Some((offset, self.record.as_slice())));
            }
            self.next_object()?;
        }
    }

    /// Counts the current object as done and opens the next, naming it to job code.
    fn next_object(&mut self) -> Result<(), JobError> {
        let (records, bytes) = self.current_counts();
        self.done_records += records;
        self.done_bytes += bytes;
        self.current = self.objects.open_next()?;
        self.index += 1;
        if let Some(cursor) = &self.cursor {
            cursor.select(self.index);
        }
        Ok(())
    }

    /// Records and owned bytes read of the current object.
    fn current_counts(&self) -> (u64, u64) {
        self.current
            .as_ref()
            .map_or((0, 0), |c| (c.records_read(), c.bytes_read()))
    }
}

#[cfg(test)]
mod tests;
