//! Reads the text lines of one split from a stream of byte chunks (the object's, or a compressed
//! object's decompressed bytes, read whole: see [`crate::input_format`]), read from the split's input as
//! it was listed: [`split_source`] binds the split to its object together with the size and
//! version the coordinator saw at listing, and every ranged read checks them, so an input changed
//! since fails the task with an error naming it rather than feeding it bytes of two versions.
//!
//! The boundary rule: a line belongs to the split where its first byte lies. A split `[start, end)`
//! with `start > 0` is read from `start - 1` and skips through the first newline (if the byte
//! before `start` is a newline, the first line starts exactly at `start`); it then yields every
//! line that starts before `end`, reading past `end` to finish the last one. So every line is read
//! exactly once, whatever the split size. Lines end at `\n`; a `\r` before it is dropped, as
//! Hadoop's `LineRecordReader` does.
//!
//! The reader counts the bytes of the lines it hands out, terminators included, not the bytes it
//! reads: the look-behind and look-ahead belong to the neighbouring splits. So the counts of all
//! splits of an object sum to its size, whatever the split size.

use bytes::Bytes;
use quern_proto::MapSplit;
use quern_sdk::JobError;
use quern_sdk::engine::RecordSource;
use quern_storage::{InputObject, InputSource, StorageError, StorageUrl, Version};

/// The object a split reads, as the coordinator listed it.
pub fn split_source(split: &MapSplit) -> Result<InputSource, StorageError> {
    let version = match (split.version.as_str(), split.modified_seconds) {
        ("", 0) => Version::Unknown,
        ("", seconds) => Version::Modified(seconds),
        (tag, _) => Version::Tag(tag.to_string()),
    };
    InputSource::new(InputObject {
        url: StorageUrl::parse(&split.url)?,
        size: split.object_size,
        version,
    })
}

/// Where a split's reader starts in its object.
pub fn read_start(start: u64) -> u64 {
    start.saturating_sub(1)
}

/// Lines of one split. `C` yields the object's bytes in order from [`read_start`]. A line that
/// lies within one chunk is handed out borrowed from it, uncopied; only a line that spans chunks
/// is gathered into a buffer of its own.
pub struct SplitLines<C> {
    chunks: C,
    /// The chunk being read.
    chunk: Bytes,
    /// Object offset of `chunk[0]`.
    chunk_offset: u64,
    /// Next unread byte in `chunk`.
    cursor: usize,
    /// The line being read, when it spans chunks.
    carry: Vec<u8>,
    end: u64,
    /// Still before the first line (a split that does not start at 0).
    skipping: bool,
    exhausted: bool,
    done: bool,
    /// Bytes of the lines handed out, terminators included: the bytes this split owns.
    bytes_read: u64,
    /// Longest line allowed, and the object's URL to name when one is longer.
    max_line: u64,
    url: String,
}

/// A line [`SplitLines::next_raw`] found: in `carry` or else in `chunk`, from `start`, `len`
/// bytes without its `\n`, and `took` bytes with its terminator.
struct RawLine {
    in_carry: bool,
    start: usize,
    len: usize,
    took: usize,
}

impl<C, E> SplitLines<C>
where
    C: Iterator<Item = Result<Bytes, E>>,
    E: Into<JobError>,
{
    pub fn new(chunks: C, start: u64, end: u64) -> Self {
        SplitLines {
            chunks,
            chunk: Bytes::new(),
            chunk_offset: read_start(start),
            cursor: 0,
            carry: Vec::new(),
            end,
            skipping: start > 0,
            exhausted: false,
            done: start >= end,
            bytes_read: 0,
            max_line: u64::MAX,
            url: String::new(),
        }
    }

    /// Fails on a line longer than `max_line` bytes, naming `url`; also bounds the memory a
    /// reader holds for one line.
    pub fn with_line_limit(mut self, max_line: u64, url: &str) -> Self {
        self.max_line = max_line;
        self.url = url.to_string();
        self
    }

    /// The error for the line at object offset `offset`.
    fn line_too_long(&self, offset: u64) -> JobError {
        JobError::Input(Box::new(StorageError::LineTooLong {
            url: self.url.clone(),
            offset,
            limit: self.max_line,
        }))
    }

    /// Bytes of the lines handed out so far, their `\n` or `\r\n` included; not the bytes read
    /// before the first line or past the last, which other splits own.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// Object offset of the next unread byte.
    fn offset(&self) -> u64 {
        self.chunk_offset + self.cursor as u64
    }

    /// Moves on to the next chunk; false at the end of the object.
    fn refill(&mut self) -> Result<bool, JobError> {
        if self.exhausted {
            return Ok(false);
        }
        match self.chunks.next() {
            Some(chunk) => {
                let chunk = chunk.map_err(Into::into)?;
                self.chunk_offset += self.chunk.len() as u64;
                self.chunk = chunk;
                self.cursor = 0;
                Ok(true)
            }
            None => {
                self.exhausted = true;
                Ok(false)
            }
        }
    }

    /// The next raw line, or None at the end of the object.
    #[inline]
    fn next_raw(&mut self) -> Result<Option<RawLine>, JobError> {
        let Some(len) = memchr::memchr(b'\n', &self.chunk[self.cursor..]) else {
            return self.next_raw_across_chunks();
        };
        if len as u64 > self.max_line {
            return Err(self.line_too_long(self.offset()));
        }
        let start = self.cursor;
        self.cursor += len + 1;
        Ok(Some(RawLine {
            in_carry: false,
            start,
            len,
            took: len + 1,
        }))
    }

    /// The next raw line when it does not end in the current chunk: gathered into `carry` from
    /// the chunks it spans.
    #[inline(never)]
    fn next_raw_across_chunks(&mut self) -> Result<Option<RawLine>, JobError> {
        let offset = self.offset();
        self.carry.clear();
        loop {
            let rest = &self.chunk[self.cursor..];
            let newline = memchr::memchr(b'\n', rest);
            let piece = newline.unwrap_or(rest.len());
            self.carry.extend_from_slice(&rest[..piece]);
            if self.carry.len() as u64 > self.max_line {
                return Err(self.line_too_long(offset));
            }
            if newline.is_some() {
                self.cursor += piece + 1;
                let len = self.carry.len();
                return Ok(Some(RawLine {
                    in_carry: true,
                    start: 0,
                    len,
                    took: len + 1,
                }));
            }
            self.cursor += piece;
            if !self.refill()? {
                break;
            }
        }
        let len = self.carry.len();
        Ok((len > 0).then_some(RawLine {
            in_carry: true,
            start: 0,
            len,
            took: len,
        }))
    }
}

impl<C, E> RecordSource for SplitLines<C>
where
    C: Iterator<Item = Result<Bytes, E>>,
    E: Into<JobError>,
{
    #[inline]
    fn next_record(&mut self) -> Result<Option<(u64, &[u8])>, JobError> {
        if self.done {
            return Ok(None);
        }
        if self.skipping {
            self.skipping = false;
            if self.next_raw()?.is_none() {
                self.done = true;
                return Ok(None);
            }
        }
        let offset = self.offset();
        if offset >= self.end {
            self.done = true;
            return Ok(None);
        }
        let Some(raw) = self.next_raw()? else {
            self.done = true;
            return Ok(None);
        };
        self.bytes_read += raw.took as u64;
        let bytes = if raw.in_carry {
            &self.carry[..]
        } else {
            &self.chunk[..]
        };
        let line = &bytes[raw.start..raw.start + raw.len];
        Ok(Some((offset, line.strip_suffix(b"\r").unwrap_or(line))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads split `[start, end)` of `text`, delivered in chunks of `chunk` bytes: its lines,
    /// and the bytes the reader counted.
    fn read_split(text: &[u8], start: u64, end: u64, chunk: usize) -> (Vec<(u64, Vec<u8>)>, u64) {
        let from = read_start(start) as usize;
        let chunks: Vec<Result<Bytes, JobError>> = text[from..]
            .chunks(chunk)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let mut lines = SplitLines::new(chunks.into_iter(), start, end);
        let mut out = Vec::new();
        while let Some((offset, line)) = lines.next_record().unwrap() {
            out.push((offset, line.to_vec()));
        }
        (out, lines.bytes_read())
    }

    fn split_lines(text: &[u8], start: u64, end: u64, chunk: usize) -> Vec<(u64, Vec<u8>)> {
        read_split(text, start, end, chunk).0
    }

    /// Bytes of the lines of `text` that start in `[start, end)`, terminators included, counted
    /// directly from the whole text.
    fn owned_bytes(text: &[u8], start: u64, end: u64) -> u64 {
        let mut offset = 0;
        let mut owned = 0;
        for piece in text.split_inclusive(|&b| b == b'\n') {
            if (start..end).contains(&offset) {
                owned += piece.len() as u64;
            }
            offset += piece.len() as u64;
        }
        owned
    }

    /// Lines of `text` with offsets, computed directly: the expected answer for any split size.
    fn all_lines(text: &[u8]) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        let mut offset = 0;
        for piece in text.split_inclusive(|&b| b == b'\n') {
            let line = piece.strip_suffix(b"\n").unwrap_or(piece);
            out.push((
                offset as u64,
                line.strip_suffix(b"\r").unwrap_or(line).to_vec(),
            ));
            offset += piece.len();
        }
        out
    }

    fn read_in_splits(text: &[u8], split: u64, chunk: usize) -> Vec<(u64, Vec<u8>)> {
        let len = text.len() as u64;
        (0..len.div_ceil(split))
            .flat_map(|i| split_lines(text, i * split, ((i + 1) * split).min(len), chunk))
            .collect()
    }

    #[test]
    fn every_line_is_read_exactly_once_at_every_split_size() {
        let texts: [&[u8]; 5] = [
            b"alpha beta\ngamma\n\ndelta epsilon zeta\neta\n",
            b"no trailing newline\nlast line",
            b"crlf line\r\nsecond\r\n\r\nfourth\r\n",
            b"\n\n\nx\n\n",
            b"short\na line much longer than the split size, spanning many splits\nend\n",
        ];
        for text in texts {
            for split in 1..=text.len() as u64 + 1 {
                for chunk in [1, 3, 64] {
                    assert_eq!(
                        read_in_splits(text, split, chunk),
                        all_lines(text),
                        "split {split} chunk {chunk} of {:?}",
                        String::from_utf8_lossy(text)
                    );
                }
            }
        }
    }

    #[test]
    fn split_byte_counts_sum_to_the_input_length_at_every_split_size() {
        let texts: [&[u8]; 5] = [
            b"alpha beta\ngamma\n\ndelta epsilon zeta\neta\n",
            b"no trailing newline\nlast line",
            b"crlf line\r\nsecond\r\n\r\nfourth\r\nno newline\r",
            b"\n\n\nx\n\n",
            b"short\na line much longer than the split size, spanning many splits\nend",
        ];
        for text in texts {
            let len = text.len() as u64;
            for split in 1..=len + 1 {
                for chunk in [1, 3, 64] {
                    let mut total = 0;
                    for start in (0..len).step_by(split as usize) {
                        let end = (start + split).min(len);
                        let (_, counted) = read_split(text, start, end, chunk);
                        assert_eq!(
                            counted,
                            owned_bytes(text, start, end),
                            "split [{start}, {end}) chunk {chunk} of {:?}",
                            String::from_utf8_lossy(text)
                        );
                        total += counted;
                    }
                    assert_eq!(total, len, "split {split} chunk {chunk}");
                }
            }
        }
    }

    #[test]
    fn a_split_counts_the_bytes_of_its_own_lines_with_their_terminators() {
        // Lines: "ab\r\n" at 0, "cd\n" at 4, "\n" at 7, "last" at 8 (no newline); 12 bytes.
        let text = b"ab\r\ncd\n\nlast";
        assert_eq!(read_split(text, 0, 3, 2).1, 4);
        assert_eq!(read_split(text, 3, 5, 2).1, 3);
        assert_eq!(read_split(text, 5, 12, 2).1, 5);
        // A split inside one line owns nothing, though it reads that line to skip it.
        assert_eq!(read_split(text, 1, 3, 2).1, 0);
    }

    #[test]
    fn crlf_is_stripped_but_a_lone_cr_is_kept() {
        let lines = split_lines(b"a\r\nb\rc\n", 0, 7, 64);
        assert_eq!(lines, vec![(0, b"a".to_vec()), (3, b"b\rc".to_vec())]);
    }

    #[test]
    fn a_split_inside_one_long_line_is_empty() {
        let text = b"0123456789abcdef\nx\n";
        assert!(split_lines(text, 4, 8, 2).is_empty());
        assert_eq!(
            split_lines(text, 0, 4, 2),
            vec![(0, b"0123456789abcdef".to_vec())]
        );
        assert_eq!(split_lines(text, 8, 19, 2), vec![(17, b"x".to_vec())]);
    }

    #[test]
    fn a_line_over_the_limit_fails_naming_the_object_and_offset() {
        let text = b"short\nthis line is too long\nok\n";
        let chunks: Vec<Result<Bytes, JobError>> = text
            .chunks(4)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let mut lines = SplitLines::new(chunks.into_iter(), 0, text.len() as u64)
            .with_line_limit(10, "s3://b/k");
        assert_eq!(lines.next_record().unwrap(), Some((0, &b"short"[..])));
        let err = lines.next_record().unwrap_err();
        let cause = std::error::Error::source(&err).unwrap().to_string();
        assert_eq!(
            cause,
            "a line at byte 6 of s3://b/k is longer than the 10-byte limit"
        );
    }

    #[test]
    fn an_empty_object_has_no_lines() {
        assert!(split_lines(b"", 0, 0, 4).is_empty());
    }
}
