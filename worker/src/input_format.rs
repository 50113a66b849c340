//! Chooses how a map's split becomes the mapper's records, by the job's input format and the
//! object's compression, and counts what the map read (see `quern_sdk::input`):
//!
//! - an uncompressed object read as lines: its split's byte range, by [`SplitLines`];
//! - anything else is read whole (the coordinator made it one split): its chunks are
//!   decompressed if need be ([`crate::decompress`]), then cut into lines by the same
//!   [`SplitLines`] (offsets in the decompressed bytes), or handed to the format's reader.
//!
//! `input_bytes` is the bytes of the object the map owns: for a split of lines, those of its
//! lines (look-behind and look-ahead belong to the neighbours); for an object read whole, the
//! bytes read from storage, so for a compressed object its compressed size.

use crate::decompress::{ChunkReader, Chunks, DecodedChunks, decompress};
use crate::split_reader::SplitLines;
use quern_proto::MapSplit;
use quern_sdk::JobError;
use quern_sdk::engine::RecordSource;
use quern_sdk::input::{InputError, InputFormat, RecordInput};
use quern_storage::Compression;
use std::cell::Cell;
use std::rc::Rc;

/// The records of one map's split, counted.
pub struct SplitRecords {
    source: Source,
    records: u64,
}

enum Source {
    /// A byte range of an uncompressed object, as lines: the reader counts the bytes it owns.
    Lines(SplitLines<Chunks>),
    /// A whole object, and the count of bytes read from storage for it.
    Whole {
        records: Box<dyn RecordSource>,
        received: Rc<Cell<u64>>,
    },
}

impl SplitRecords {
    /// The records of `split`, read as `format` from `chunks` (its bytes from the reader's start),
    /// none longer than `max_record`.
    pub fn open(
        split: &MapSplit,
        format: &InputFormat,
        max_record: u64,
        chunks: Chunks,
    ) -> Result<Self, JobError> {
        let compression = Compression::of(&split.url);
        let source = if compression == Compression::None && format.splits_objects() {
            Source::Lines(
                SplitLines::new(chunks, split.start, split.end)
                    .with_line_limit(max_record, &split.url),
            )
        } else {
            check_whole(split, compression, format)?;
            open_whole(split, compression, format, max_record, chunks)?
        };
        Ok(SplitRecords { source, records: 0 })
    }

    /// Records handed out so far.
    pub fn records_read(&self) -> u64 {
        self.records
    }

    /// Bytes of the object this split owns, read so far (see the module docs).
    pub fn bytes_read(&self) -> u64 {
        match &self.source {
            Source::Lines(lines) => lines.bytes_read(),
            Source::Whole { received, .. } => received.get(),
        }
    }
}

impl RecordSource for SplitRecords {
    #[inline]
    fn next_record(&mut self) -> Result<Option<(u64, &[u8])>, JobError> {
        let record = match &mut self.source {
            Source::Lines(lines) => lines.next_record()?,
            Source::Whole { records, .. } => records.next_record()?,
        };
        self.records += u64::from(record.is_some());
        Ok(record)
    }
}

/// The records of a whole object: decompressed, then lines or the format's own records.
fn open_whole(
    split: &MapSplit,
    compression: Compression,
    format: &InputFormat,
    max_record: u64,
    chunks: Chunks,
) -> Result<Source, JobError> {
    let input = ChunkReader::new(chunks);
    let received = input.received();
    let bytes = decompress(compression, input, &split.url)?;
    let records: Box<dyn RecordSource> = match format.reader() {
        None => Box::new(
            SplitLines::new(DecodedChunks(bytes), 0, u64::MAX)
                .with_line_limit(max_record, &split.url),
        ),
        Some(reader) => reader.open(RecordInput {
            bytes,
            url: split.url.clone(),
            size: (compression == Compression::None).then_some(split.object_size),
            max_record,
        })?,
    };
    Ok(Source::Whole { records, received })
}

/// Refuses a split of part of an object that is read whole: only a client that did not tell
/// the coordinator the job's input format makes one.
fn check_whole(
    split: &MapSplit,
    compression: Compression,
    format: &InputFormat,
) -> Result<(), JobError> {
    if split.start == 0 && split.end == split.object_size {
        return Ok(());
    }
    let why = match compression {
        Compression::None => format!("{} input", format.name()),
        compressed => format!("a {} file", compressed.name()),
    };
    Err(InputError::PartOfWhole {
        url: split.url.clone(),
        start: split.start,
        end: split.end,
        size: split.object_size,
        why,
    }
    .into())
}

#[cfg(test)]
mod tests;
