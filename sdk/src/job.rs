//! The typed job: a [`Mapper`], a [`Reducer`] (or [`GroupReducer`]), optionally a [`Combiner`]
//! and a [`Partitioner`], bound by [`JobDef`] under a name, with the job's grouping and input
//! format, and erased to the engine's byte-level [`JobEngine`]. The map and reduce sides live in
//! [`crate::map`] and [`crate::reduce`].
//!
//! A secondary sort (Hadoop's grouping comparator) is a tuple key grouped by its leading
//! components: [`JobDef::group_by_first`] makes one reduce group of all the records whose keys
//! share the first component, partitioned by that component alone, in order of the whole key. A
//! [`GroupReducer`] sees each record's full key; a [`Reducer`] sees the group's first key and
//! the values in key order.

use crate::JobError;
use crate::context::TaskContext;
use crate::engine::{JobEngine, MapSink, RecordSource, TextSink, ValueStream, not_map_only};
use crate::input::InputFormat;
use crate::key::{CompositeKey, Key};
use crate::map::{Emitter, Mapper};
use crate::map_combine::MapCombine;
use crate::reduce::{Decoded, GroupReducer, Grouped, Output, ReduceStage, Reducer, value_of};
use crate::text::{TextFormat, write_line};
use crate::value::{Value, decode_value, encode_value};
use std::marker::PhantomData;

/// Folds the values of one key into one, map-side, before the shuffle. It must give the same
/// reduce result whether it runs zero, one or many times (sum, min, max, …).
///
/// ```
/// use quern_sdk::local::LocalRun;
/// use quern_sdk::prelude::*;
///
/// struct Sum;
///
/// impl Combiner for Sum {
///     type Key = String;
///     type Value = u64;
///     fn combine(&self, ctx: &TaskContext, _: &String, values: &mut dyn Iterator<Item = u64>) -> u64 {
///         ctx.counter("sum.combines").increment();
///         values.sum()
///     }
/// }
///
/// # struct Words;
/// # impl Mapper for Words {
/// #     type Key = String;
/// #     type Value = u64;
/// #     fn map(&self, _: u64, line: &[u8], out: &mut Emitter<'_, String, u64>) -> Result<(), JobError> {
/// #         String::from_utf8_lossy(line).split_whitespace().try_for_each(|w| out.emit(w, &1))
/// #     }
/// # }
/// # impl Reducer for Sum {
/// #     type Key = String;
/// #     type Value = u64;
/// #     type OutKey = str;
/// #     type OutValue = u64;
/// #     fn reduce(&self, key: String, values: &mut dyn Iterator<Item = u64>,
/// #               out: &mut Output<'_, str, u64>) -> Result<(), JobError> {
/// #         Ok(out.write(&key, &values.sum()))
/// #     }
/// # }
/// // `Words` emits (word, 1); `Sum` also sums as the reducer. With or without the combiner, the
/// // counts are the same; with it, the reducer gets one value per key and map.
/// let files = [("a", "a b a a\n"), ("b", "b a\n")];
/// let plain = LocalRun::new(&JobDef::new("count", Words, Sum)).run(&files)?;
/// let combined = LocalRun::new(&JobDef::new("count", Words, Sum).combiner(Sum)).run(&files)?;
/// assert_eq!(plain.parts, [b"a\t4\nb\t2\n"]);
/// assert_eq!(combined.parts, plain.parts);
/// assert!(combined.counters["sum.combines"] > 0);
/// # Ok::<(), JobError>(())
/// ```
pub trait Combiner: Send + Sync + 'static {
    /// The mapper's key type.
    type Key: Key;
    /// The mapper's value type, which combining keeps.
    type Value: Value;
    /// Folds `values`, all of `key`, into one, in the map task `ctx` (whose counters it may
    /// add to).
    fn combine(
        &self,
        ctx: &TaskContext,
        key: &Self::Key,
        values: &mut dyn Iterator<Item = Self::Value>,
    ) -> Self::Value;
    /// Folds one more `value` of `key` into `held`, the fold so far: map-side combining calls
    /// this as the mapper emits, once per pair (Spark's `reduceByKey` function). The default
    /// is [`combine`](Combiner::combine) over the two. Override it where the fold is binary
    /// (a sum, a min) to fold without building an iterator per pair; it must agree with
    /// `combine`.
    ///
    /// ```
    /// use quern_sdk::local::LocalRun;
    /// use quern_sdk::prelude::*;
    ///
    /// struct Sum;
    ///
    /// impl Combiner for Sum {
    ///     type Key = String;
    ///     type Value = u64;
    ///     fn combine(&self, _: &TaskContext, _: &String, values: &mut dyn Iterator<Item = u64>) -> u64 {
    ///         values.sum()
    ///     }
    ///     fn merge(&self, _: &TaskContext, _: &String, held: u64, value: u64) -> u64 {
    ///         held + value
    ///     }
    /// }
    ///
    /// # struct Words;
    /// # impl Mapper for Words {
    /// #     type Key = String;
    /// #     type Value = u64;
    /// #     fn map(&self, _: u64, line: &[u8], out: &mut Emitter<'_, String, u64>) -> Result<(), JobError> {
    /// #         String::from_utf8_lossy(line).split_whitespace().try_for_each(|w| out.emit(w, &1))
    /// #     }
    /// # }
    /// # impl Reducer for Sum {
    /// #     type Key = String;
    /// #     type Value = u64;
    /// #     type OutKey = str;
    /// #     type OutValue = u64;
    /// #     fn reduce(&self, key: String, values: &mut dyn Iterator<Item = u64>,
    /// #               out: &mut Output<'_, str, u64>) -> Result<(), JobError> {
    /// #         Ok(out.write(&key, &values.sum()))
    /// #     }
    /// # }
    /// let job = JobDef::new("count", Words, Sum).combiner(Sum);
    /// let output = LocalRun::new(&job).run(&[("a", "a b a a\n"), ("b", "b a\n")])?;
    /// assert_eq!(output.parts, [b"a\t4\nb\t2\n"]);
    /// # Ok::<(), JobError>(())
    /// ```
    fn merge(
        &self,
        ctx: &TaskContext,
        key: &Self::Key,
        held: Self::Value,
        value: Self::Value,
    ) -> Self::Value {
        self.combine(ctx, key, &mut [held, value].into_iter())
    }
}

/// Chooses the reduce partition of an encoded key.
///
/// ```
/// use quern_sdk::local::run_job;
/// use quern_sdk::prelude::*;
///
/// /// Words by their first letter: a to m in partition 0, the rest in the last partition.
/// struct ByFirstLetter;
///
/// impl Partitioner for ByFirstLetter {
///     fn partition(&self, key: &[u8], partitions: u32) -> u32 {
///         match key.first() {
///             Some(b'a'..=b'm') => 0,
///             _ => partitions - 1,
///         }
///     }
/// }
///
/// # struct Words;
/// # impl Mapper for Words {
/// #     type Key = Vec<u8>;
/// #     type Value = ();
/// #     fn map(&self, _: u64, line: &[u8], out: &mut Emitter<'_, Vec<u8>, ()>) -> Result<(), JobError> {
/// #         line.split(|&b| b == b' ').try_for_each(|w| out.emit(w, &()))
/// #     }
/// # }
/// # struct Distinct;
/// # impl Reducer for Distinct {
/// #     type Key = Vec<u8>;
/// #     type Value = ();
/// #     type OutKey = [u8];
/// #     type OutValue = ();
/// #     fn reduce(&self, key: Vec<u8>, _: &mut dyn Iterator<Item = ()>,
/// #               out: &mut Output<'_, [u8], ()>) -> Result<(), JobError> {
/// #         Ok(out.write(&key, &()))
/// #     }
/// # }
/// // `Words` emits each word, `Distinct` writes each distinct one.
/// let job = JobDef::new("split", Words, Distinct).partitioner(ByFirstLetter);
/// let parts = run_job(&job, b"pear apple zest melon", 2)?;
/// assert_eq!(parts, [&b"apple\nmelon\n"[..], b"pear\nzest\n"]);
/// # Ok::<(), JobError>(())
/// ```
pub trait Partitioner: Send + Sync + 'static {
    /// Which of `partitions` partitions `key` (encoded) goes to: the same in every process. In a
    /// job that groups by a key prefix, `key` is the prefix, so a group stays in one partition.
    fn partition(&self, key: &[u8], partitions: u32) -> u32;
}

/// The default partitioner: a stable hash (xxh3) of the key bytes, the same in every process.
pub struct HashPartitioner;

impl Partitioner for HashPartitioner {
    fn partition(&self, key: &[u8], partitions: u32) -> u32 {
        (xxhash_rust::xxh3::xxh3_64(key) % u64::from(partitions.max(1))) as u32
    }
}

type BoxedCombiner<K, V> = Box<dyn Combiner<Key = K, Value = V>>;
/// Decodes one map output pair and writes it as a text line, with a separator.
type MapRecordWriter = fn(&[u8], &[u8], &[u8], &mut TextSink) -> Result<(), JobError>;

/// How many leading bytes of an encoded key a job groups by (see [`JobDef::grouping`]).
type GroupPrefix = Box<dyn Fn(&[u8]) -> Result<usize, JobError> + Send + Sync>;

/// A named job: a mapper, a reducer, and optionally a combiner, a partitioner and a grouping.
pub struct JobDef<M: Mapper, R> {
    name: String,
    mapper: M,
    reducer: R,
    combiner: Option<BoxedCombiner<M::Key, M::Value>>,
    partitioner: Box<dyn Partitioner>,
    /// How the map output is written in a map-only run; None if it cannot be.
    map_text: Option<MapRecordWriter>,
    /// False for a job made with [`JobDef::map_only`].
    has_reducer: bool,
    /// None groups by the whole key.
    grouping: Option<GroupPrefix>,
    /// Partitions by sampled cut points (see [`JobDef::total_order`]).
    total_order: bool,
    /// How the input is cut into records; the client tells the coordinator, which splits by it.
    input: InputFormat,
}

/// The reducer of a job that has none: it runs map-only (see [`JobDef::map_only`]).
pub struct NoReducer<K, V>(PhantomData<fn(K, V)>);

impl<K: Key, V: Value> Reducer for NoReducer<K, V> {
    type Key = K;
    type Value = V;
    type OutKey = ();
    type OutValue = ();
    fn reduce(
        &self,
        _: K,
        _: &mut dyn Iterator<Item = V>,
        _: &mut Output<'_, (), ()>,
    ) -> Result<(), JobError> {
        Err(JobError::user(
            "this job has no reducer: it runs map-only (--reducers 0)",
        ))
    }
}

impl<M> JobDef<M, NoReducer<M::Key, M::Value>>
where
    M: Mapper,
    M::Key: TextFormat,
    M::Value: TextFormat,
{
    /// Job `name` with `mapper` and no reducer: it runs map-only, each map writing its pairs
    /// as `key<TAB>value` lines to its own part file, `part-m-NNNNN` (Hadoop's zero-reducer
    /// job). `quern run` and `submit` choose `--reducers 0` for it.
    pub fn map_only(name: impl Into<String>, mapper: M) -> Self {
        JobDef {
            has_reducer: false,
            ..JobDef::new(name, mapper, NoReducer(PhantomData)).runs_map_only()
        }
    }
}

impl<M, R> JobDef<M, R>
where
    M: Mapper,
    M::Key: TextFormat,
    M::Value: TextFormat,
    R: Reducer<Key = M::Key, Value = M::Value>,
{
    /// Lets the job also run map-only, with `--reducers 0`: its maps then write their pairs as
    /// `key<TAB>value` lines (the key alone for a `()` value), skipping the combiner, the
    /// shuffle and the reducer.
    pub fn runs_map_only(mut self) -> Self {
        self.map_text = Some(write_map_record::<M::Key, M::Value>);
        self
    }
}

fn write_map_record<K: Key + TextFormat, V: Value + TextFormat>(
    key: &[u8],
    value: &[u8],
    separator: &[u8],
    out: &mut TextSink,
) -> Result<(), JobError> {
    let key = K::decode_key(key)?;
    let value: V = decode_value(value)?;
    write_line(&key, &value, separator, out);
    Ok(())
}

impl<M, R> JobDef<M, R>
where
    M: Mapper,
    R: Reducer<Key = M::Key, Value = M::Value>,
{
    /// Job `name`, with `mapper` and `reducer`, hash partitioning, no combiner, grouped by the
    /// whole key.
    pub fn new(name: impl Into<String>, mapper: M, reducer: R) -> Self {
        JobDef::with_stage(name.into(), mapper, reducer)
    }
}

impl<M, G> JobDef<M, Grouped<G>>
where
    M: Mapper,
    G: GroupReducer<Key = M::Key, Value = M::Value>,
{
    /// Job `name`, as [`JobDef::new`], with a reducer that sees each record's key: the usual
    /// reducer of a job grouped by a key prefix ([`JobDef::group_by_first`]).
    pub fn with_group_reducer(name: impl Into<String>, mapper: M, reducer: G) -> Self {
        JobDef::with_stage(name.into(), mapper, Grouped(reducer))
    }
}

impl<M, R> JobDef<M, R>
where
    M: Mapper,
    R: ReduceStage<M::Key, M::Value>,
{
    fn with_stage(name: String, mapper: M, reducer: R) -> Self {
        JobDef {
            name,
            mapper,
            reducer,
            combiner: None,
            partitioner: Box::new(HashPartitioner),
            map_text: None,
            has_reducer: true,
            grouping: None,
            total_order: false,
            input: InputFormat::Lines,
        }
    }

    /// Reads the input as `format` instead of as lines: each file whole
    /// ([`InputFormat::WholeFile`]), length-delimited records, or a format of one's own (see
    /// [`crate::input`]).
    pub fn input(mut self, format: InputFormat) -> Self {
        self.input = format;
        self
    }

    /// Folds values map-side with `combiner` before the shuffle.
    pub fn combiner(mut self, combiner: impl Combiner<Key = M::Key, Value = M::Value>) -> Self {
        self.combiner = Some(Box::new(combiner));
        self
    }

    /// Partitions keys with `partitioner` instead of by hash.
    pub fn partitioner(mut self, partitioner: impl Partitioner) -> Self {
        self.partitioner = Box::new(partitioner);
        self
    }

    /// Sorts across partitions: partition `i` holds keys below those of partition `i + 1`, so
    /// the part files in order are sorted (Hadoop's `TotalOrderPartitioner`). The cut points
    /// come from a sample of the map output keys, taken by a short stage of tasks before the
    /// maps run (see [`crate::total_order`]); the partitioner set otherwise is not used.
    pub fn total_order(mut self) -> Self {
        self.total_order = true;
        self
    }

    /// Groups reduce input by a prefix of the encoded key: `prefix_len` says how many leading
    /// bytes of a key group it, and must keep groups together in key order (a fixed number of
    /// bytes does). For tuple keys, [`JobDef::group_by_first`] says it for you.
    pub fn grouping(
        mut self,
        prefix_len: impl Fn(&[u8]) -> Result<usize, JobError> + Send + Sync + 'static,
    ) -> Self {
        self.grouping = Some(Box::new(prefix_len));
        self
    }
}

impl<M, R> JobDef<M, R>
where
    M: Mapper<Key: CompositeKey>,
    R: ReduceStage<M::Key, M::Value>,
{
    /// Groups reduce input by the first component of the tuple key: a secondary sort, where one
    /// reduce call gets every record of a first component, ordered by the rest of the key, and
    /// partitioning sees the first component alone.
    pub fn group_by_first(self) -> Self {
        self.group_by_components::<1>()
    }

    /// Groups reduce input by the first `N` components of the tuple key (as
    /// [`JobDef::group_by_first`] does by one); `N` past the key's components does not compile.
    pub fn group_by_components<const N: usize>(self) -> Self {
        const {
            assert!(
                N >= 1 && N <= <M::Key as CompositeKey>::COMPONENTS,
                "N must be 1..=the key's components"
            )
        };
        self.grouping(|key| <M::Key as CompositeKey>::prefix_len(key, N))
    }
}

impl<M, R> JobEngine for JobDef<M, R>
where
    M: Mapper,
    R: ReduceStage<M::Key, M::Value>,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn map(
        &self,
        ctx: &TaskContext,
        records: &mut dyn RecordSource,
        sink: &mut dyn MapSink,
    ) -> Result<u64, JobError> {
        // A map-only run has no reduce to fold for, as in Hadoop.
        let combine = self
            .combiner
            .as_deref()
            .filter(|_| ctx.partitions > 0)
            .map(|combiner| MapCombine::new(combiner, ctx));
        let mut emitter = Emitter::new(ctx, sink, combine);
        self.mapper.setup(ctx)?;
        while let Some((offset, record)) = records.next_record()? {
            self.mapper.map(offset, record, &mut emitter)?;
        }
        self.mapper.cleanup(&mut emitter)?;
        emitter.finish()
    }

    fn input_format(&self) -> InputFormat {
        self.input.clone()
    }

    fn partition(&self, ctx: &TaskContext, key: &[u8], partitions: u32) -> u32 {
        if self.total_order {
            return crate::total_order::partition(&ctx.cut_points, key);
        }
        self.partitioner.partition(key, partitions)
    }

    fn total_order(&self) -> bool {
        self.total_order
    }

    fn has_reducer(&self) -> bool {
        self.has_reducer
    }

    fn can_run_map_only(&self) -> bool {
        self.map_text.is_some()
    }

    fn write_map_record(
        &self,
        ctx: &TaskContext,
        key: &[u8],
        value: &[u8],
        out: &mut TextSink,
    ) -> Result<(), JobError> {
        match self.map_text {
            Some(write) => write(key, value, &ctx.separator, out),
            None => Err(JobError::user(not_map_only(&self.name))),
        }
    }

    fn group_prefix(&self, key: &[u8]) -> Result<usize, JobError> {
        match &self.grouping {
            Some(prefix_len) => prefix_len(key),
            None => Ok(key.len()),
        }
    }

    fn has_combiner(&self) -> bool {
        self.combiner.is_some()
    }

    fn combine(
        &self,
        ctx: &TaskContext,
        key: &[u8],
        values: &mut dyn ValueStream,
        out: &mut Vec<u8>,
    ) -> Result<(), JobError> {
        let combiner = self
            .combiner
            .as_ref()
            .ok_or_else(|| JobError::user(format!("job {} has no combiner", self.name)))?;
        let key = M::Key::decode_key(key)?;
        let mut decoded = Decoded::new(values, value_of::<M::Value>);
        let combined = combiner.combine(ctx, &key, &mut decoded);
        decoded.finish()?;
        encode_value(&combined, out)
    }

    fn start_reduce(&self, ctx: &TaskContext) -> Result<(), JobError> {
        self.reducer.setup(ctx)
    }

    fn finish_reduce(&self, ctx: &TaskContext, out: &mut TextSink) -> Result<u64, JobError> {
        self.reducer.cleanup(ctx, out)
    }

    fn reduce(
        &self,
        ctx: &TaskContext,
        key: &[u8],
        values: &mut dyn ValueStream,
        out: &mut TextSink,
    ) -> Result<u64, JobError> {
        self.reducer.reduce(ctx, key, values, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Params;
    use crate::key::KeyEncode;

    #[test]
    fn hash_partitions_are_stable_across_processes_and_in_range() {
        // xxh3 is fixed by its specification, so these hold on every machine and every run.
        assert_eq!(xxhash_rust::xxh3::xxh3_64(b""), 0x2D06800538D394C2);
        let p = HashPartitioner;
        assert_eq!(p.partition(b"", 7), (0x2D06800538D394C2u64 % 7) as u32);
        let mut seen = [0u32; 4];
        for i in 0..1000u32 {
            let part = p.partition(&i.to_be_bytes(), 4);
            seen[part as usize] += 1;
        }
        assert!(
            seen.iter().all(|&n| n > 200),
            "partitions spread keys: {seen:?}"
        );
        assert_eq!(p.partition(b"anything", 1), 0);
    }

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
            out.emit(std::str::from_utf8(line).unwrap_or(""), &1)
        }
    }
    struct Total;
    impl Reducer for Total {
        type Key = String;
        type Value = u64;
        type OutKey = str;
        type OutValue = u64;
        fn reduce(
            &self,
            key: String,
            values: &mut dyn Iterator<Item = u64>,
            out: &mut Output<'_, str, u64>,
        ) -> Result<(), JobError> {
            out.write(&key, &values.sum());
            Ok(())
        }
    }
    /// Records of one key, handed out in order.
    struct Encoded(Vec<u8>, Vec<Vec<u8>>, usize);
    impl ValueStream for Encoded {
        fn next_record(&mut self) -> Result<Option<crate::engine::EncodedRecord<'_>>, JobError> {
            self.2 += 1;
            Ok(self
                .1
                .get(self.2 - 1)
                .map(|v| (self.0.as_slice(), v.as_slice())))
        }
    }

    #[test]
    fn output_lines_use_the_jobs_separator_parameter() {
        let job = JobDef::new("total", Words, Total).runs_map_only();
        let (mut one, mut key) = (Vec::new(), Vec::new());
        encode_value(&7u64, &mut one).unwrap();
        "be".encode_key(&mut key);
        for (params, expected) in [
            (Params::default(), "be\t14\n"),
            (
                Params::new([(crate::text::SEPARATOR_PARAM.to_string(), ", ".to_string())]),
                "be, 14\n",
            ),
        ] {
            let ctx = TaskContext::with_params(params);
            let mut out = Vec::new();
            let mut values = Encoded(key.clone(), vec![one.clone(), one.clone()], 0);
            job.reduce(&ctx, &key, &mut values, &mut out).unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), expected);
            let mut map_only = Vec::new();
            job.write_map_record(&ctx, &key, &one, &mut map_only)
                .unwrap();
            assert_eq!(
                String::from_utf8(map_only).unwrap(),
                expected.replace("14", "7")
            );
        }
    }
}
