//! An in-process runner for unit-testing a job: the whole map → partition → sort → group →
//! reduce path in memory, without a cluster, grouping by the job's key prefix as a worker does.
//! It holds everything in memory, so it is for small test inputs only.

use crate::JobError;
use crate::context::TaskContext;
use crate::engine::{
    EncodedRecord, JobEngine, MapSink, RecordSource, ValueStream, group_of, partition_of,
};
use crate::input::RecordInput;

struct Lines<'a> {
    text: &'a [u8],
    pos: usize,
}

impl RecordSource for Lines<'_> {
    fn next_record(&mut self) -> Result<Option<(u64, &[u8])>, JobError> {
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

/// A mapped record: its partition, key, value, and how many bytes of the key group it.
struct Record {
    partition: u32,
    key: Vec<u8>,
    value: Vec<u8>,
    group_len: usize,
}

impl Record {
    fn group(&self) -> (u32, &[u8]) {
        (self.partition, &self.key[..self.group_len])
    }
}

struct Collect<'a> {
    job: &'a dyn JobEngine,
    partitions: u32,
    records: Vec<Record>,
}

impl MapSink for Collect<'_> {
    fn emit(&mut self, key: &[u8], value: &[u8]) -> Result<(), JobError> {
        // Checked as on a cluster: a partition out of range is the task's error.
        let partition = partition_of(self.job, key, self.partitions)?;
        self.records.push(Record {
            partition,
            key: key.to_vec(),
            value: value.to_vec(),
            group_len: group_of(self.job, key)?.len(),
        });
        Ok(())
    }
}

struct Group<'a> {
    values: std::iter::Copied<std::slice::Iter<'a, &'a Record>>,
}

impl ValueStream for Group<'_> {
    fn next_record(&mut self) -> Result<Option<EncodedRecord<'_>>, JobError> {
        Ok(self
            .values
            .next()
            .map(|r| (r.key.as_slice(), r.value.as_slice())))
    }
}

/// Runs `job` over `input` (one file, read as the job's input format says) with `partitions`
/// reducers and returns the text of each part file, in partition order. A job's combiner runs as
/// its mapper emits, as on a cluster; a correct combiner cannot change the result.
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
    map_input(job, &ctx, input, &mut sink)?;
    let mut records = sink.records;
    records.sort_by(|a, b| (a.partition, &a.key).cmp(&(b.partition, &b.key)));
    let mut parts = vec![Vec::new(); partitions as usize];
    for (partition, part) in parts.iter_mut().enumerate() {
        let task = TaskContext {
            task: partition as u32,
            ..ctx.clone()
        };
        job.start_reduce(&task)?;
        let records = records.iter().filter(|r| r.partition == task.task);
        let records: Vec<&Record> = records.collect();
        for group in records.chunk_by(|a, b| a.group() == b.group()) {
            let mut values = Group {
                values: group.iter().copied(),
            };
            job.reduce(&task, &group[0].key, &mut values, part)?;
        }
        job.finish_reduce(&task, part)?;
    }
    Ok(parts)
}

/// Maps `input`, read as the job's input format says, as one file.
fn map_input(
    job: &dyn JobEngine,
    ctx: &TaskContext,
    input: &[u8],
    sink: &mut dyn MapSink,
) -> Result<u64, JobError> {
    let format = job.input_format();
    let Some(reader) = format.reader() else {
        return job.map(
            ctx,
            &mut Lines {
                text: input,
                pos: 0,
            },
            sink,
        );
    };
    let mut records = reader.open(RecordInput {
        bytes: Box::new(input),
        url: "the local input".to_string(),
        size: Some(input.len() as u64),
        max_record: u64::MAX,
    })?;
    job.map(ctx, records.as_mut(), sink)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Emitter, InputFormat, JobDef, Mapper, Output, Partitioner, Reducer};

    struct WholeLines;

    impl Mapper for WholeLines {
        type Key = Vec<u8>;
        type Value = u64;
        fn map(
            &self,
            _: u64,
            line: &[u8],
            out: &mut Emitter<'_, Vec<u8>, u64>,
        ) -> Result<(), JobError> {
            out.emit(line, &1)
        }
    }

    /// Each distinct line once, alone on its output line.
    struct Distinct;

    impl Reducer for Distinct {
        type Key = Vec<u8>;
        type Value = u64;
        type OutKey = [u8];
        type OutValue = ();
        fn reduce(
            &self,
            key: Vec<u8>,
            _: &mut dyn Iterator<Item = u64>,
            out: &mut Output<'_, [u8], ()>,
        ) -> Result<(), JobError> {
            out.write(key.as_slice(), &());
            Ok(())
        }
    }

    struct Seven;

    impl Partitioner for Seven {
        fn partition(&self, _: &[u8], _: u32) -> u32 {
            7
        }
    }

    #[test]
    fn the_jobs_input_format_cuts_the_input_into_records() {
        let text = b"b\na\nb\n";
        let lines = JobDef::new("distinct", WholeLines, Distinct);
        assert_eq!(run_job(&lines, text, 1).unwrap(), [b"a\nb\n".to_vec()]);
        let whole = JobDef::new("distinct", WholeLines, Distinct).input(InputFormat::WholeFile);
        // One record, the whole text; written as the key alone, then a newline.
        assert_eq!(run_job(&whole, text, 1).unwrap(), [b"b\na\nb\n\n".to_vec()]);
    }

    #[test]
    fn keys_alone_come_out_without_a_tab_and_a_partition_out_of_range_is_an_error() {
        let job = JobDef::new("distinct", WholeLines, Distinct);
        let parts = run_job(&job, b"b\na\nb\n", 1).unwrap();
        assert_eq!(parts, [b"a\nb\n".to_vec()]);
        let bad = JobDef::new("distinct", WholeLines, Distinct).partitioner(Seven);
        let error = run_job(&bad, b"a\n", 2).unwrap_err();
        assert_eq!(
            error.to_string(),
            "job code failed: the partitioner put a key in partition 7, but the job has 2 \
             partitions (0..=1)"
        );
    }
}
