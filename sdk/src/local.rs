//! An in-process runner for unit-testing a job: the path a cluster runs, in memory. Named input
//! files are cut into splits of a split size as the coordinator cuts them (a tail under a tenth
//! of the split size joins the last split), and each split's lines are read as a worker's split
//! reader reads them: a line belongs to the split where its first byte lies, and `\r\n` ends a
//! line as `\n` does. Each split is one map task with its own context (its input's URL, file
//! name and byte range); its pairs are partitioned (a partition out of range is the task's
//! error), sorted, and folded by the job's combiner, both as the mapper emits and as its output
//! is sorted. Each reduce task then merges its partition of every map's output, groups it by the
//! job's grouping prefix, and runs the reducer between its `setup` and `cleanup`. With no
//! partitions the job runs map-only: each map writes its pairs, in the order emitted, to its own
//! part. User counters are summed over every task.
//!
//! Unlike a cluster, it does not pack small files into one map task: each file is at least its
//! own task, as a cluster's would be with a split size under every file. Job code sees the same
//! either way (the context names each record's own file, and offsets are in that file), and a
//! map-only job's part files follow the tasks, so their count here is one per split.
//!
//! It holds everything in memory, so it is for small test inputs only.

use crate::JobError;
use crate::context::{InputSplit, MapInput, Params, TaskContext};
use crate::counter::UserCounters;
use crate::engine::{
    EncodedRecord, JobEngine, MapSink, RecordSource, ValueStream, group_of, not_map_only,
    partition_of,
};
use crate::input::RecordInput;
use std::collections::BTreeMap;

/// A tail of an input under this fraction of the split size joins the split before it, as the
/// coordinator does.
const SPLIT_SLOP: f64 = 1.1;

/// One map task's input: bytes `start..end` of one named input.
struct Split<'a> {
    name: &'a str,
    text: &'a [u8],
    start: u64,
    end: u64,
}

impl Split<'_> {
    fn input(&self) -> InputSplit {
        InputSplit {
            url: self.name.to_string(),
            start: self.start,
            end: self.end,
        }
    }
}

/// The splits of `files`, in order, cut as the coordinator cuts them; an empty file has none.
fn make_splits<'a>(files: &[(&'a str, &'a [u8])], split_size: u64) -> Vec<Split<'a>> {
    let split_size = split_size.max(1);
    let mut splits = Vec::new();
    for &(name, text) in files {
        let size = text.len() as u64;
        let mut start = 0;
        while start < size {
            let remaining = size - start;
            let len = match remaining as f64 > split_size as f64 * SPLIT_SLOP {
                true => split_size,
                false => remaining,
            };
            let end = start + len;
            splits.push(Split {
                name,
                text,
                start,
                end,
            });
            start = end;
        }
    }
    splits
}

/// The lines of one split: those whose first byte lies in `start..end`, the last read to its
/// end even past `end`.
struct Lines<'a> {
    text: &'a [u8],
    pos: usize,
    end: usize,
}

impl<'a> Lines<'a> {
    fn new(split: &Split<'a>) -> Self {
        let (start, end) = (split.start as usize, split.end as usize);
        Lines {
            text: split.text,
            pos: first_line_at(split.text, start),
            end: end.min(split.text.len()),
        }
    }
}

/// Where the first line starting at or after `start` starts: at `start` itself if the byte
/// before it ends a line, else just past the next newline.
fn first_line_at(text: &[u8], start: usize) -> usize {
    if start == 0 {
        return 0;
    }
    let before = &text[(start - 1).min(text.len())..];
    before
        .iter()
        .position(|&b| b == b'\n')
        .map_or(text.len(), |newline| start + newline)
}

impl RecordSource for Lines<'_> {
    fn next_record(&mut self) -> Result<Option<(u64, &[u8])>, JobError> {
        if self.pos >= self.end {
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

    /// The same partition and key, with `value`.
    fn with_value(&self, value: Vec<u8>) -> Record {
        Record {
            partition: self.partition,
            key: self.key.clone(),
            value,
            group_len: self.group_len,
        }
    }
}

/// A map task's pairs as emitted, partitioned; in a map-only run (no partitions), in partition 0.
struct Collect<'a> {
    job: &'a dyn JobEngine,
    ctx: &'a TaskContext,
    partitions: u32,
    records: Vec<Record>,
}

impl MapSink for Collect<'_> {
    fn emit(&mut self, key: &[u8], value: &[u8]) -> Result<(), JobError> {
        let (partition, group_len) = match self.partitions {
            0 => (0, key.len()),
            // Checked as on a cluster: a partition out of range is the task's error.
            n => (
                partition_of(self.job, self.ctx, key, n)?,
                group_of(self.job, key)?.len(),
            ),
        };
        self.records.push(Record {
            partition,
            key: key.to_vec(),
            value: value.to_vec(),
            group_len,
        });
        Ok(())
    }
}

/// The records of one group, in order.
struct Group<'a> {
    records: std::slice::Iter<'a, Record>,
}

impl ValueStream for Group<'_> {
    fn next_record(&mut self) -> Result<Option<EncodedRecord<'_>>, JobError> {
        Ok(self
            .records
            .next()
            .map(|r| (r.key.as_slice(), r.value.as_slice())))
    }
}

/// What a local run wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocalOutput {
    /// The text of each part file: one per reduce partition in partition order, or in a
    /// map-only run one per map task, in split order.
    pub parts: Vec<Vec<u8>>,
    /// The user counters, summed over every task.
    pub counters: BTreeMap<String, u64>,
}

/// A job to run in memory as a cluster runs it (see the module docs): one reduce partition, the
/// whole of each input in one split, and no parameters, unless told otherwise.
///
/// ```
/// use quern_sdk::local::LocalRun;
/// # let job = quern_sdk::JobDef::map_only("copy", Copy);
/// # struct Copy;
/// # impl quern_sdk::Mapper for Copy {
/// #     type Key = Vec<u8>; type Value = ();
/// #     fn map(&self, _: u64, line: &[u8], out: &mut quern_sdk::Emitter<'_, Vec<u8>, ()>)
/// #         -> Result<(), quern_sdk::JobError> { out.emit(line, &()) }
/// # }
/// let output = LocalRun::new(&job)
///     .partitions(0)
///     .split_size(4)
///     .run(&[("in/a.txt", "one\ntwo\n"), ("in/b.txt", "three")])?;
/// // "three" is cut at byte 4, inside its only line: the line is the first split's.
/// assert_eq!(output.parts, [&b"one\n"[..], b"two\n", b"three\n", b""]);
/// # Ok::<(), quern_sdk::JobError>(())
/// ```
pub struct LocalRun<'j> {
    job: &'j dyn JobEngine,
    partitions: u32,
    split_size: u64,
    params: Params,
}

impl<'j> LocalRun<'j> {
    /// `job`, with one partition, one split per input and no parameters.
    pub fn new(job: &'j dyn JobEngine) -> Self {
        LocalRun {
            job,
            partitions: 1,
            split_size: u64::MAX,
            params: Params::default(),
        }
    }

    /// Runs with `partitions` reduce partitions; 0 runs the job map-only (`--reducers 0`).
    pub fn partitions(self, partitions: u32) -> Self {
        LocalRun { partitions, ..self }
    }

    /// Cuts inputs into splits of about `bytes` (`--split-size`).
    pub fn split_size(self, bytes: u64) -> Self {
        let split_size = bytes.max(1);
        LocalRun { split_size, ..self }
    }

    /// Builds every task's context with `params` (`-D key=value`).
    pub fn params(self, params: Params) -> Self {
        LocalRun { params, ..self }
    }

    /// Runs the job over `files`, each `(name, text)`: the name stands for the input's URL, so
    /// a map's `input.file_name()` is the part of it after the last `/`.
    pub fn run<N: AsRef<str>, T: AsRef<[u8]>>(
        &self,
        files: &[(N, T)],
    ) -> Result<LocalOutput, JobError> {
        self.check_runnable()?;
        let files: Vec<(&str, &[u8])> = files
            .iter()
            .map(|(name, text)| (name.as_ref(), text.as_ref()))
            .collect();
        let mut output = LocalOutput::default();
        let mut shuffled = Vec::new();
        // Only lines are cut into byte ranges, as the coordinator cuts them.
        let split_size = match self.job.input_format().splits_objects() {
            true => self.split_size,
            false => u64::MAX,
        };
        for (task, split) in make_splits(&files, split_size).iter().enumerate() {
            let ctx = self.task_context(task as u32, Some(split.input()));
            let records = self.map_task(&ctx, split)?;
            match self.partitions {
                0 => output.parts.push(self.write_map_only(&ctx, &records)?),
                _ => shuffled.extend(records),
            }
            add_counters(&mut output.counters, &ctx)?;
        }
        if self.partitions > 0 {
            output.parts = self.reduce_tasks(shuffled, &mut output.counters)?;
        }
        Ok(output)
    }

    /// Refuses what a cluster's submit refuses: map-only for a job that cannot run so, and
    /// reducers for a job without one.
    fn check_runnable(&self) -> Result<(), JobError> {
        let job = self.job;
        match self.partitions {
            0 if !job.can_run_map_only() => Err(JobError::user(not_map_only(job.name()))),
            n if n > 0 && !job.has_reducer() => Err(JobError::user(format!(
                "job '{}' has no reducer: it runs map-only, so partitions must be 0, not {n}",
                job.name()
            ))),
            _ => Ok(()),
        }
    }

    /// The context of task `task` (with `input`, for a map), with counters of its own.
    fn task_context(&self, task: u32, input: Option<InputSplit>) -> TaskContext {
        TaskContext {
            job_id: "local".to_string(),
            task,
            partitions: self.partitions,
            input: input.and_then(|split| MapInput::new(vec![split])),
            counters: UserCounters::default(),
            ..TaskContext::with_params(self.params.clone())
        }
    }

    /// Maps one split; returns its output as the shuffle serves it: sorted by partition and
    /// key, and combined where the job has a combiner (map-only: as emitted).
    fn map_task(&self, ctx: &TaskContext, split: &Split) -> Result<Vec<Record>, JobError> {
        let mut sink = Collect {
            job: self.job,
            ctx,
            partitions: self.partitions,
            records: Vec::new(),
        };
        map_split(self.job, ctx, split, &mut sink)?;
        let mut records = sink.records;
        if self.partitions == 0 {
            return Ok(records);
        }
        records.sort_by(|a, b| (a.partition, &a.key).cmp(&(b.partition, &b.key)));
        match self.job.has_combiner() {
            true => combine(self.job, ctx, &records),
            false => Ok(records),
        }
    }

    /// A map-only task's part: its pairs as text lines, in the order emitted.
    fn write_map_only(&self, ctx: &TaskContext, records: &[Record]) -> Result<Vec<u8>, JobError> {
        let mut part = Vec::new();
        for record in records {
            (self.job).write_map_record(ctx, &record.key, &record.value, &mut part)?;
        }
        Ok(part)
    }

    /// Runs every reduce task over its partition of `records` (every map's output); returns
    /// their parts.
    fn reduce_tasks(
        &self,
        mut records: Vec<Record>,
        counters: &mut BTreeMap<String, u64>,
    ) -> Result<Vec<Vec<u8>>, JobError> {
        // Stable: equal keys stay in map order, as a merge of the maps' sorted runs keeps them.
        records.sort_by(|a, b| (a.partition, &a.key).cmp(&(b.partition, &b.key)));
        let mut rest = records.as_slice();
        let mut parts = Vec::new();
        for partition in 0..self.partitions {
            let (mine, others) = rest.split_at(rest.partition_point(|r| r.partition == partition));
            rest = others;
            let ctx = self.task_context(partition, None);
            parts.push(self.reduce_task(&ctx, mine)?);
            add_counters(counters, &ctx)?;
        }
        Ok(parts)
    }

    /// One reduce task over its sorted records: setup, a reduce call per group, cleanup.
    fn reduce_task(&self, ctx: &TaskContext, records: &[Record]) -> Result<Vec<u8>, JobError> {
        let mut part = Vec::new();
        self.job.start_reduce(ctx)?;
        for group in records.chunk_by(|a, b| a.group() == b.group()) {
            let mut values = Group {
                records: group.iter(),
            };
            self.job
                .reduce(ctx, &group[0].key, &mut values, &mut part)?;
        }
        self.job.finish_reduce(ctx, &mut part)?;
        Ok(part)
    }
}

/// Folds each run of equal keys of sorted `records` into one record by the job's combiner, in
/// the map task `ctx`.
fn combine(
    job: &dyn JobEngine,
    ctx: &TaskContext,
    records: &[Record],
) -> Result<Vec<Record>, JobError> {
    let same_key = |a: &Record, b: &Record| (a.partition, &a.key) == (b.partition, &b.key);
    let mut combined = Vec::new();
    for group in records.chunk_by(same_key) {
        let mut value = Vec::new();
        let mut values = Group {
            records: group.iter(),
        };
        job.combine(ctx, &group[0].key, &mut values, &mut value)?;
        combined.push(group[0].with_value(value));
    }
    Ok(combined)
}

/// Adds the counters of the finished task `ctx` to `totals`; an error if it made too many, or
/// one with a bad name, as a cluster's task would fail.
fn add_counters(totals: &mut BTreeMap<String, u64>, ctx: &TaskContext) -> Result<(), JobError> {
    for (name, count) in ctx.counters.totals()? {
        *totals.entry(name).or_default() += count;
    }
    Ok(())
}

/// Runs `job` over `input`, text lines in one split of one input with an empty name, with
/// `partitions` reducers (at least one), and returns the text of each part file, in partition
/// order: [`LocalRun`] with one input, for the simplest tests.
pub fn run_job(
    job: &dyn JobEngine,
    input: &[u8],
    partitions: u32,
) -> Result<Vec<Vec<u8>>, JobError> {
    let run = LocalRun::new(job).partitions(partitions.max(1));
    Ok(run.run(&[("", input)])?.parts)
}

/// Maps `split`, read as the job's input format says: lines of its byte range, or (any other
/// format, which a cluster never splits) records of its whole file.
fn map_split(
    job: &dyn JobEngine,
    ctx: &TaskContext,
    split: &Split,
    sink: &mut dyn MapSink,
) -> Result<u64, JobError> {
    let format = job.input_format();
    let Some(reader) = format.reader() else {
        return job.map(ctx, &mut Lines::new(split), sink);
    };
    let mut records = reader.open(RecordInput {
        bytes: Box::new(split.text),
        url: split.name.to_string(),
        size: Some(split.text.len() as u64),
        max_record: u64::MAX,
    })?;
    job.map(ctx, records.as_mut(), sink)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Combiner, Emitter, InputFormat, JobDef, Mapper, Output, Partitioner, Reducer};

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

    /// Each line under `FILE:OFFSET`, with the byte range of the split it was read in; counts
    /// lines, and the splits that held any.
    struct Located;

    impl Mapper for Located {
        type Key = String;
        type Value = (String, u64, u64);
        fn map(
            &self,
            offset: u64,
            line: &[u8],
            out: &mut Emitter<'_, String, (String, u64, u64)>,
        ) -> Result<(), JobError> {
            let Some(input) = out.context().input.clone() else {
                return Err(JobError::user("a map without input"));
            };
            out.context().counter("lines").increment();
            let key = format!("{}:{offset}", input.file_name());
            let line = String::from_utf8_lossy(line).into_owned();
            out.emit(&key, &(line, input.start, input.end))
        }
    }

    /// Writes `FILE:OFFSET<TAB>LINE`, and checks the line's first byte lay in its split.
    struct InSplit;

    impl Reducer for InSplit {
        type Key = String;
        type Value = (String, u64, u64);
        type OutKey = str;
        type OutValue = str;
        fn reduce(
            &self,
            key: String,
            values: &mut dyn Iterator<Item = (String, u64, u64)>,
            out: &mut Output<'_, str, str>,
        ) -> Result<(), JobError> {
            let offset: u64 = key.rsplit(':').next().unwrap().parse().unwrap();
            for (line, start, end) in values {
                assert!(
                    (start..end).contains(&offset),
                    "{key} read in {start}..{end}"
                );
                out.write(&key, &line);
            }
            Ok(())
        }
    }

    const FILES: [(&str, &str); 4] = [
        ("in/a.txt", "one\r\ntwo\n\nthree four\nfive"),
        ("s3://bucket/dir/b.txt", "\n\nx\r\n"),
        ("empty", ""),
        ("c", "a long line of thirty-two bytes.\nz\n"),
    ];

    #[test]
    fn every_line_is_read_once_in_the_split_where_it_starts_whatever_the_split_size() {
        let job = JobDef::new("located", Located, InSplit);
        let expected = "a.txt:0\tone\na.txt:10\tthree four\na.txt:21\tfive\na.txt:5\ttwo\n\
                        a.txt:9\t\nb.txt:0\t\nb.txt:1\t\nb.txt:2\tx\nc:0\ta long line of \
                        thirty-two bytes.\nc:33\tz\n";
        for split_size in [1, 7, 64, u64::MAX] {
            for partitions in [1, 3] {
                let run = LocalRun::new(&job).partitions(partitions);
                let output = run.split_size(split_size).run(&FILES).unwrap();
                let mut lines: Vec<&str> = Vec::new();
                for part in &output.parts {
                    lines.extend(std::str::from_utf8(part).unwrap().lines());
                }
                lines.sort();
                assert_eq!(lines.join("\n") + "\n", expected, "split size {split_size}");
                assert_eq!(output.counters.get("lines"), Some(&10));
            }
        }
    }

    #[test]
    fn splits_are_cut_as_the_coordinator_cuts_them_with_a_small_tail_joining_the_last() {
        let text = [0u8; 25];
        let ranges = |size| -> Vec<(u64, u64)> {
            let splits = make_splits(&[("f", &text[..]), ("e", &[])], size);
            splits.iter().map(|s| (s.start, s.end)).collect()
        };
        assert_eq!(ranges(10), [(0, 10), (10, 20), (20, 25)]);
        // A tail of 1 byte is under a tenth of 12 (and 2 of 23): it joins the split before.
        assert_eq!(ranges(12), [(0, 12), (12, 25)]);
        assert_eq!(ranges(23), [(0, 25)]);
        assert_eq!(ranges(u64::MAX), [(0, 25)]);
    }

    /// Word count whose combiner counts its calls: the reduce sees one value per key per map.
    struct Words;

    impl Mapper for Words {
        type Key = String;
        type Value = u64;
        fn map(
            &self,
            _: u64,
            line: &[u8],
            out: &mut Emitter<'_, String, u64>,
        ) -> Result<(), JobError> {
            for word in String::from_utf8_lossy(line).split_whitespace() {
                out.emit(word, &1)?;
            }
            Ok(())
        }
    }

    struct Sum;

    impl Combiner for Sum {
        type Key = String;
        type Value = u64;
        fn combine(
            &self,
            ctx: &TaskContext,
            _: &String,
            values: &mut dyn Iterator<Item = u64>,
        ) -> u64 {
            ctx.counter("combines").increment();
            values.sum()
        }
    }

    /// Writes each word's total, and how many values it came in; cleanup writes the groups.
    #[derive(Default)]
    struct Totals(std::sync::Mutex<u64>);

    impl Reducer for Totals {
        type Key = String;
        type Value = u64;
        type OutKey = str;
        type OutValue = str;
        fn setup(&self, _: &TaskContext) -> Result<(), JobError> {
            *self.0.lock().unwrap() = 0;
            Ok(())
        }
        fn reduce(
            &self,
            key: String,
            values: &mut dyn Iterator<Item = u64>,
            out: &mut Output<'_, str, str>,
        ) -> Result<(), JobError> {
            let values: Vec<u64> = values.collect();
            *self.0.lock().unwrap() += 1;
            let total: u64 = values.iter().sum();
            out.write(&key, &format!("{total} in {}", values.len()));
            Ok(())
        }
        fn cleanup(&self, out: &mut Output<'_, str, str>) -> Result<(), JobError> {
            let task = out.context().task;
            out.write(
                "groups",
                &format!("{} in task {task}", self.0.lock().unwrap()),
            );
            Ok(())
        }
    }

    #[test]
    fn the_combiner_folds_each_maps_output_and_the_reducer_runs_setup_and_cleanup() {
        let job = JobDef::new("count", Words, Totals::default()).combiner(Sum);
        let files = [("a", "b a b\nb\n"), ("b", "a b\n")];
        let output = LocalRun::new(&job).run(&files).unwrap();
        assert_eq!(
            String::from_utf8(output.parts.concat()).unwrap(),
            "a\t2 in 2\nb\t4 in 2\ngroups\t2 in task 0\n"
        );
        // Two folds of `b` as file "a" was mapped, then one per key and map as each map's
        // output was sorted.
        assert_eq!(output.counters["combines"], 6);
    }

    #[test]
    fn map_only_runs_write_a_part_per_map_and_refuse_a_job_that_cannot() {
        let job = JobDef::new("located", Located, InSplit);
        let error = LocalRun::new(&job).partitions(0).run(&FILES).unwrap_err();
        assert!(error.to_string().contains("cannot run map-only"), "{error}");
        let job = JobDef::new("count", Words, Totals::default()).runs_map_only();
        let output = LocalRun::new(&job).partitions(0).split_size(4);
        let output = output.run(&[("a", "b a\nb\n")]).unwrap();
        assert_eq!(output.parts, [&b"b\t1\na\t1\n"[..], b"b\t1\n"]);
    }
}
