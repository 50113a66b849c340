//! The record framing shared by spills, map output files and the shuffle: each record is
//! `varint(key length) varint(value length) key value`. A run of records sorted by key bytes is
//! a segment; readers reuse their buffers, so reading a record does not allocate.

use integer_encoding::{VarInt, VarIntReader};
use std::io::{self, BufRead, Read, Write};

/// Appends one framed record to `out`; returns the bytes written.
pub fn write_record(out: &mut impl Write, key: &[u8], value: &[u8]) -> io::Result<u64> {
    let mut header = [0u8; 20];
    let mut used = (key.len() as u64).encode_var(&mut header);
    used += (value.len() as u64).encode_var(&mut header[used..]);
    out.write_all(&header[..used])?;
    out.write_all(key)?;
    out.write_all(value)?;
    Ok((used + key.len() + value.len()) as u64)
}

/// Reads framed records from a byte stream.
pub struct RecordReader<R> {
    input: R,
    key: Vec<u8>,
    value: Vec<u8>,
}

impl<R: BufRead> RecordReader<R> {
    pub fn new(input: R) -> Self {
        RecordReader {
            input,
            key: Vec::new(),
            value: Vec::new(),
        }
    }

    /// Reads the next record into this reader's buffers; false at a clean end of input.
    pub fn advance(&mut self) -> io::Result<bool> {
        if self.input.fill_buf()?.is_empty() {
            return Ok(false);
        }
        let key_len = read_len(&mut self.input)?;
        let value_len = read_len(&mut self.input)?;
        read_exactly(&mut self.input, &mut self.key, key_len)?;
        read_exactly(&mut self.input, &mut self.value, value_len)?;
        Ok(true)
    }

    pub fn key(&self) -> &[u8] {
        &self.key
    }

    pub fn value(&self) -> &[u8] {
        &self.value
    }

    /// Swaps this reader's key buffer with `other`, so a merge can keep a key without copying.
    pub fn swap_key(&mut self, other: &mut Vec<u8>) {
        std::mem::swap(&mut self.key, other);
    }
}

fn read_len(input: &mut impl BufRead) -> io::Result<usize> {
    let len: u64 = input.read_varint()?;
    usize::try_from(len).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "record too long"))
}

fn read_exactly(input: &mut impl BufRead, buf: &mut Vec<u8>, len: usize) -> io::Result<()> {
    buf.clear();
    let read = input.take(len as u64).read_to_end(buf)?;
    if read < len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "truncated record",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_including_empty_and_long_fields() {
        let long = vec![7u8; 300];
        let records: Vec<(&[u8], &[u8])> = vec![(b"", b""), (b"k", &long), (&long, b"v")];
        let mut bytes = Vec::new();
        for (k, v) in &records {
            write_record(&mut bytes, k, v).unwrap();
        }
        let mut reader = RecordReader::new(bytes.as_slice());
        for (k, v) in &records {
            assert!(reader.advance().unwrap());
            assert_eq!((reader.key(), reader.value()), (*k, *v));
        }
        assert!(!reader.advance().unwrap());
    }

    #[test]
    fn a_truncated_record_is_an_error_not_an_end() {
        let mut bytes = Vec::new();
        write_record(&mut bytes, b"key", b"value").unwrap();
        let mut reader = RecordReader::new(&bytes[..bytes.len() - 1]);
        assert!(reader.advance().is_err());
    }
}
