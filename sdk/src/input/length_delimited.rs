//! The length-delimited format: each record is a 4-byte big-endian length `n`, then `n` bytes.
//! A record's offset is that of its length; a file that ends inside a length or a record is
//! corrupt, and a length over the record limit fails before the record is read.

use super::{InputError, RecordFormat, RecordInput, RecordSource};
use crate::JobError;
use std::io::Read;

/// Bytes of a record's length.
const HEADER: usize = 4;

/// [`super::InputFormat::LengthDelimited`]'s reader.
pub(crate) struct LengthDelimitedFormat;

impl RecordFormat for LengthDelimitedFormat {
    fn name(&self) -> &str {
        "length-delimited"
    }

    fn open<'a>(&self, input: RecordInput<'a>) -> Result<Box<dyn RecordSource + 'a>, JobError> {
        Ok(Box::new(LengthDelimited {
            input,
            record: Vec::new(),
            offset: 0,
        }))
    }
}

struct LengthDelimited<'a> {
    input: RecordInput<'a>,
    record: Vec<u8>,
    /// Offset of the next record's length.
    offset: u64,
}

impl LengthDelimited<'_> {
    /// The next record's length, or None at the end of the file.
    fn read_length(&mut self) -> Result<Option<u64>, JobError> {
        let mut header = [0; HEADER];
        let mut got = 0;
        while got < HEADER {
            match self.input.bytes.read(&mut header[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        match got {
            0 => Ok(None),
            HEADER => Ok(Some(u64::from(u32::from_be_bytes(header)))),
            _ => Err(self.corrupt(format!(
                "the file ends {got} bytes into the length of a record at byte {}",
                self.offset
            ))),
        }
    }

    fn corrupt(&self, what: String) -> JobError {
        InputError::corrupt(&self.input.url, "length-delimited records", what)
    }
}

impl RecordSource for LengthDelimited<'_> {
    fn next_record(&mut self) -> Result<Option<(u64, &[u8])>, JobError> {
        let Some(len) = self.read_length()? else {
            return Ok(None);
        };
        let offset = self.offset;
        if len > self.input.max_record {
            return Err(InputError::RecordTooLong {
                url: self.input.url.clone(),
                offset,
                size: len,
                limit: self.input.max_record,
            }
            .into());
        }
        self.record.clear();
        let bytes = &mut self.input.bytes;
        bytes.take(len).read_to_end(&mut self.record)?;
        if (self.record.len() as u64) < len {
            return Err(self.corrupt(format!(
                "the record at byte {offset} is {len} bytes long, but the file ends {} bytes \
                 into it",
                self.record.len()
            )));
        }
        self.offset += HEADER as u64 + len;
        Ok(Some((offset, &self.record)))
    }
}
