//! An in-process runner for unit-testing a job: the whole map → partition → sort → reduce path in
//! memory, without a cluster. It holds everything in memory, so it is for small test inputs only.

use crate::JobError;
use crate::context::TaskContext;
use crate::engine::{JobEngine, LineSource, MapSink, ValueStream};

struct Lines<'a> {
    text: &'a [u8],
    pos: usize,
}

impl LineSource for Lines<'_> {
    fn next_line(&mut self) -> Result<Option<(u64, &[u8])>, JobError> {
        if self.pos >= self.text.len() {
            return Ok(None);
        }
        let start = self.pos;
        let rest = &self.text[start..];
        let len = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        self.pos = start + len + 1;
        let line = rest[..len].strip_suffix(b"\r").unwrap_or(&rest[..len]);
        Ok(Some((start as u64, line)))
    }
}

type Record = (u32, Vec<u8>, Vec<u8>);

struct Collect<'a> {
    job: &'a dyn JobEngine,
    partitions: u32,
    records: Vec<Record>,
}

impl MapSink for Collect<'_> {
    fn emit(&mut self, key: &[u8], value: &[u8]) -> Result<(), JobError> {
        let partition = self.job.partition(key, self.partitions);
        self.records.push((partition, key.to_vec(), value.to_vec()));
        Ok(())
    }
}

struct Group<'a> {
    values: std::slice::Iter<'a, Record>,
}

impl ValueStream for Group<'_> {
    fn next_value(&mut self) -> Result<Option<&[u8]>, JobError> {
        Ok(self.values.next().map(|(_, _, v)| v.as_slice()))
    }
}

/// Runs `job` over `input` (text lines) with `partitions` reducers and returns the text of each
/// part file, in partition order. A job's combiner runs as its mapper emits, as on a cluster; a
/// correct combiner cannot change the result.
pub fn run_job(
    job: &dyn JobEngine,
    input: &[u8],
    partitions: u32,
) -> Result<Vec<Vec<u8>>, JobError> {
    let partitions = partitions.max(1);
    let mut sink = Collect {
        job,
        partitions,
        records: Vec::new(),
    };
    let ctx = TaskContext {
        partitions,
        ..TaskContext::default()
    };
    job.map(
        &ctx,
        &mut Lines {
            text: input,
            pos: 0,
        },
        &mut sink,
    )?;
    let mut records = sink.records;
    records.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let mut parts = vec![Vec::new(); partitions as usize];
    for group in records.chunk_by(|a, b| a.0 == b.0 && a.1 == b.1) {
        let (partition, key, _) = &group[0];
        let mut values = Group {
            values: group.iter(),
        };
        job.reduce(&ctx, key, &mut values, &mut parts[*partition as usize])?;
    }
    Ok(parts)
}
