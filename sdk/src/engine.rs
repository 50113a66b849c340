//! The byte-level interface between a job and the engine. The worker drives a job only through
//! [`JobEngine`]; keys and values cross it as encoded bytes, so the engine never needs the job's
//! types. [`crate::JobDef`] erases a typed job to this interface.

use crate::JobError;
use crate::context::TaskContext;
use crate::input::InputFormat;

/// Records of one split, `(offset, record)`: a line without its terminator at its byte offset,
/// a whole file at 0, or another format's record at its offset (see [`crate::input`]). Offsets
/// are in the object's bytes, decompressed if it is compressed.
pub trait RecordSource {
    /// The next record, or None at the end of the split.
    fn next_record(&mut self) -> Result<Option<(u64, &[u8])>, JobError>;
}

/// Where a map task's records go: the partition, sort and spill machinery.
pub trait MapSink {
    /// Takes one encoded pair.
    fn emit(&mut self, key: &[u8], value: &[u8]) -> Result<(), JobError>;
}

/// One encoded record: `(key, value)`.
pub type EncodedRecord<'a> = (&'a [u8], &'a [u8]);

/// The records of one key group, each an encoded key and value. A map-side group (combining) is
/// one exact key; a reduce group is every record whose key has the group's prefix (see
/// [`JobEngine::group_prefix`]), in key order, with values of equal keys in no particular order.
pub trait ValueStream {
    /// The next record of the group, `(full key, value)`, or None at its end.
    fn next_record(&mut self) -> Result<Option<EncodedRecord<'_>>, JobError>;
    /// The next value of the group, or None at its end.
    fn next_value(&mut self) -> Result<Option<&[u8]>, JobError> {
        Ok(self.next_record()?.map(|(_, value)| value))
    }
}

/// Reduce output lines are appended to a plain buffer the engine flushes between key groups.
pub type TextSink = Vec<u8>;

/// A job as the engine sees it.
pub trait JobEngine: Send + Sync + 'static {
    /// The name the job is registered and submitted under.
    fn name(&self) -> &str;
    /// Runs the mapper over every record of a split, in the task `ctx`; returns how many pairs
    /// the mapper emitted (the sink may see fewer: a job with a combiner folds them as they come).
    fn map(
        &self,
        ctx: &TaskContext,
        records: &mut dyn RecordSource,
        sink: &mut dyn MapSink,
    ) -> Result<u64, JobError>;
    /// How the job's input is cut into records (see [`crate::input`]); lines by default.
    fn input_format(&self) -> InputFormat {
        InputFormat::Lines
    }
    /// Whether the job has a reducer; one without runs map-only (see
    /// [`crate::JobDef::map_only`]).
    fn has_reducer(&self) -> bool {
        true
    }
    /// Whether the job can run map-only (`--reducers 0`): its map output types write as text.
    fn can_run_map_only(&self) -> bool {
        false
    }
    /// Writes one map output pair (encoded) as an output text line, in map task `ctx` of a
    /// map-only job.
    fn write_map_record(
        &self,
        ctx: &TaskContext,
        key: &[u8],
        value: &[u8],
        out: &mut TextSink,
    ) -> Result<(), JobError> {
        let _ = (ctx, key, value, out);
        Err(JobError::user(not_map_only(self.name())))
    }
    /// Which of `partitions` reduce partitions an encoded key belongs to, given the key's
    /// grouping prefix (see [`JobEngine::group_prefix`] and [`partition_of`]), so that a reduce
    /// group never spans two partitions.
    /// `ctx` is the map task's (a total-order job partitions by its cut points).
    fn partition(&self, ctx: &TaskContext, key: &[u8], partitions: u32) -> u32;
    /// Whether the job sorts across partitions (see [`crate::total_order`]): its maps wait for
    /// a sampling stage's cut points.
    fn total_order(&self) -> bool {
        false
    }
    /// How many leading bytes of an encoded key the reduce groups by: records whose keys share
    /// that prefix reach one `reduce` call, in key order (a secondary sort). The prefixes must
    /// keep groups together in key order, as whole leading components of a tuple key do. The
    /// default is the whole key.
    fn group_prefix(&self, key: &[u8]) -> Result<usize, JobError> {
        Ok(key.len())
    }
    /// Whether the job folds values map-side (see [`crate::Combiner`]).
    fn has_combiner(&self) -> bool;
    /// Combines one key group, in the map task `ctx`, into a single encoded value appended to
    /// `out`.
    fn combine(
        &self,
        ctx: &TaskContext,
        key: &[u8],
        values: &mut dyn ValueStream,
        out: &mut Vec<u8>,
    ) -> Result<(), JobError>;
    /// Runs once in a reduce task `ctx`, before its first key group (the reducer's `setup`).
    fn start_reduce(&self, ctx: &TaskContext) -> Result<(), JobError> {
        let _ = ctx;
        Ok(())
    }
    /// Runs once in a reduce task `ctx`, after its last key group (the reducer's `cleanup`),
    /// appending any last text lines to `out`; returns how many records it wrote.
    fn finish_reduce(&self, ctx: &TaskContext, out: &mut TextSink) -> Result<u64, JobError> {
        let _ = (ctx, out);
        Ok(0)
    }
    /// Reduces one key group in the task `ctx`, appending text lines to `out`; returns how many
    /// records it wrote. `key` is the group's first (smallest) full key.
    fn reduce(
        &self,
        ctx: &TaskContext,
        key: &[u8],
        values: &mut dyn ValueStream,
        out: &mut TextSink,
    ) -> Result<u64, JobError>;
}

/// What is wrong with running job `name` map-only, when it cannot.
pub fn not_map_only(name: &str) -> String {
    format!(
        "job '{name}' cannot run map-only (--reducers 0): its map output types do not write as \
         text (see JobDef::runs_map_only)"
    )
}

/// The grouping prefix of `key` (see [`JobEngine::group_prefix`]), checked: a user grouping can
/// answer anything.
pub fn group_of<'k>(job: &dyn JobEngine, key: &'k [u8]) -> Result<&'k [u8], JobError> {
    let len = job.group_prefix(key)?;
    key.get(..len).ok_or_else(|| {
        JobError::user(format!(
            "the grouping took a prefix of {len} bytes of a key of {} bytes",
            key.len()
        ))
    })
}

/// The partition of `key`, chosen by its grouping prefix and checked: a user partitioner can
/// answer anything, and going on with an answer out of range would lose the record.
pub fn partition_of(
    job: &dyn JobEngine,
    ctx: &TaskContext,
    key: &[u8],
    partitions: u32,
) -> Result<u32, JobError> {
    let partition = job.partition(ctx, group_of(job, key)?, partitions);
    if partition >= partitions {
        return Err(JobError::user(format!(
            "the partitioner put a key in partition {partition}, but the job has {partitions} \
             partitions (0..={})",
            partitions - 1
        )));
    }
    Ok(partition)
}
