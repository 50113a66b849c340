//! The whole-file format: each file is one record, at offset 0, bounded by the record limit.

use super::{InputError, RecordFormat, RecordInput, RecordSource};
use crate::JobError;
use std::io::Read;

/// [`super::InputFormat::WholeFile`]'s reader.
pub(crate) struct WholeFileFormat;

impl RecordFormat for WholeFileFormat {
    fn name(&self) -> &str {
        "whole-file"
    }

    fn open<'a>(&self, input: RecordInput<'a>) -> Result<Box<dyn RecordSource + 'a>, JobError> {
        Ok(Box::new(WholeFile {
            input,
            record: Vec::new(),
            done: false,
        }))
    }
}

struct WholeFile<'a> {
    input: RecordInput<'a>,
    record: Vec<u8>,
    done: bool,
}

impl WholeFile<'_> {
    fn too_large(&self, size: String) -> JobError {
        InputError::FileTooLarge {
            url: self.input.url.clone(),
            size,
            limit: self.input.max_record,
        }
        .into()
    }
}

impl RecordSource for WholeFile<'_> {
    fn next_record(&mut self) -> Result<Option<(u64, &[u8])>, JobError> {
        if std::mem::replace(&mut self.done, true) {
            return Ok(None);
        }
        let limit = self.input.max_record;
        // Known beforehand for a plain file: refused before a byte is read.
        if let Some(size) = self.input.size.filter(|&size| size > limit) {
            return Err(self.too_large(size.to_string()));
        }
        // One byte past the limit tells a file over it, without holding more.
        let bytes = &mut self.input.bytes;
        bytes
            .take(limit.saturating_add(1))
            .read_to_end(&mut self.record)?;
        if self.record.len() as u64 > limit {
            return Err(self.too_large(format!("more than {limit}")));
        }
        Ok(Some((0, &self.record)))
    }
}
