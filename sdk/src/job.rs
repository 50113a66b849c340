//! The typed job API: [`Mapper`], [`Combiner`], [`Reducer`] (or [`GroupReducer`]),
//! [`Partitioner`], and [`JobDef`], which binds them under a name, with the job's grouping, and
//! erases them to the engine's byte-level [`JobEngine`].
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
use crate::key::{CompositeKey, Key, KeyEncode, KeyParts};
use crate::map_combine::MapCombine;
use crate::text::{TextFormat, write_line};
use crate::value::{Value, decode_value, encode_value};
use std::borrow::Borrow;
use std::marker::PhantomData;

/// Turns one input record (a line, unless the job says otherwise with [`JobDef::input`]) into
/// zero or more key/value pairs.
///
///
/// ```
/// use quern_sdk::local::LocalRun;
/// use quern_sdk::prelude::*;
///
/// /// Each line's length in bytes, under its first word.
/// struct FirstWord;
///
/// impl Mapper for FirstWord {
///     type Key = String;
///     type Value = u64;
///     fn map(
///         &self,
///         _offset: u64,
///         line: &[u8],
///         out: &mut Emitter<'_, String, u64>,
///     ) -> Result<(), JobError> {
///         let text = String::from_utf8_lossy(line);
///         match text.split_whitespace().next() {
///             Some(word) => out.emit(word, &(line.len() as u64)),
///             None => Ok(()),
///         }
///     }
/// }
///
/// // Map-only, its pairs are the output, in the order it emits them.
/// let job = JobDef::map_only("first-word", FirstWord);
/// let output = LocalRun::new(&job).partitions(0).run(&[("in.txt", "to be\n\nor not\r\n")])?;
/// assert_eq!(output.parts, [b"to\t5\nor\t6\n"]);
/// # Ok::<(), JobError>(())
/// ```
pub trait Mapper: Send + Sync + 'static {
    /// The type of the keys it emits.
    type Key: Key;
    /// The type of the values it emits.
    type Value: Value;
    /// Runs once per task, before its first record: read side data, check parameters. The
    /// default does nothing.
    fn setup(&self, ctx: &TaskContext) -> Result<(), JobError> {
        let _ = ctx;
        Ok(())
    }
    /// `offset` is the byte offset of the record in its input object (decompressed, if the object
    /// is compressed); a line has no terminator; a whole file comes at offset 0.
    fn map(
        &self,
        offset: u64,
        record: &[u8],
        out: &mut Emitter<'_, Self::Key, Self::Value>,
    ) -> Result<(), JobError>;
    /// Runs once per task, after its last record, and may emit last pairs. The default does
    /// nothing.
    fn cleanup(&self, out: &mut Emitter<'_, Self::Key, Self::Value>) -> Result<(), JobError> {
        let _ = out;
        Ok(())
    }
}

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
}

/// Turns one key and all its values into output records. In a job that groups by a key prefix
/// ([`JobDef::group_by_first`]), `key` is the group's first key and the values come in key
/// order; a [`GroupReducer`] also sees each value's key.
///
/// ```
/// use quern_sdk::local::run_job;
/// use quern_sdk::prelude::*;
///
/// /// The highest reading of each station.
/// struct Highest;
///
/// impl Reducer for Highest {
///     type Key = String;
///     type Value = i64;
///     type OutKey = str;
///     type OutValue = i64;
///     fn reduce(
///         &self,
///         station: String,
///         readings: &mut dyn Iterator<Item = i64>,
///         out: &mut Output<'_, str, i64>,
///     ) -> Result<(), JobError> {
///         if let Some(highest) = readings.max() {
///             out.write(&station, &highest);
///         }
///         Ok(())
///     }
/// }
///
/// # /// `station reading` lines.
/// # struct Readings;
/// # impl Mapper for Readings {
/// #     type Key = String;
/// #     type Value = i64;
/// #     fn map(&self, _: u64, line: &[u8], out: &mut Emitter<'_, String, i64>) -> Result<(), JobError> {
/// #         let line = String::from_utf8_lossy(line);
/// #         let (station, reading) = line.split_once(' ').ok_or_else(|| JobError::user("no space"))?;
/// #         out.emit(station, &reading.parse().map_err(|_| JobError::user("not a number"))?)
/// #     }
/// # }
/// let job = JobDef::new("highest", Readings, Highest);
/// let parts = run_job(&job, b"oslo -3\nrome 21\noslo 4\noslo -12\n", 1)?;
/// assert_eq!(parts, [b"oslo\t4\nrome\t21\n"]);
/// # Ok::<(), JobError>(())
/// ```
pub trait Reducer: Send + Sync + 'static {
    /// The mapper's key type.
    type Key: Key;
    /// The mapper's value type.
    type Value: Value;
    /// The key of an output line.
    type OutKey: TextFormat + ?Sized;
    /// The value of an output line; `()` writes the key alone.
    type OutValue: TextFormat + ?Sized;
    /// Runs once per task, before its first key group. The default does nothing.
    fn setup(&self, ctx: &TaskContext) -> Result<(), JobError> {
        let _ = ctx;
        Ok(())
    }
    /// Writes the output records of `key` and all its values, in no particular order.
    fn reduce(
        &self,
        key: Self::Key,
        values: &mut dyn Iterator<Item = Self::Value>,
        out: &mut Output<'_, Self::OutKey, Self::OutValue>,
    ) -> Result<(), JobError>;
    /// Runs once per task, after its last key group, and may write last records. The default
    /// does nothing.
    fn cleanup(&self, out: &mut Output<'_, Self::OutKey, Self::OutValue>) -> Result<(), JobError> {
        let _ = out;
        Ok(())
    }
}

/// Turns one group of records, each with its full key, into output records: the reducer of a
/// secondary sort, in a job that groups by a key prefix ([`JobDef::group_by_first`]). Bind it
/// with [`JobDef::with_group_reducer`].
///
/// ```
/// use quern_sdk::local::run_job;
/// use quern_sdk::prelude::*;
///
/// /// `station reading` lines, keyed by (station, reading): a secondary sort on the reading.
/// struct Readings;
///
/// impl Mapper for Readings {
///     type Key = (String, i64);
///     type Value = ();
///     fn map(
///         &self,
///         _: u64,
///         line: &[u8],
///         out: &mut Emitter<'_, (String, i64), ()>,
///     ) -> Result<(), JobError> {
///         let line = String::from_utf8_lossy(line);
///         let (station, reading) = line.split_once(' ').ok_or_else(|| JobError::user("no space"))?;
///         let reading: i64 = reading.parse().map_err(|_| JobError::user("not a number"))?;
///         out.emit_parts((station, reading), &())
///     }
/// }
///
/// /// Each station's readings, ascending: the keys come sorted within the group.
/// struct Ascending;
///
/// impl GroupReducer for Ascending {
///     type Key = (String, i64);
///     type Value = ();
///     type OutKey = str;
///     type OutValue = str;
///     fn reduce(
///         &self,
///         first: (String, i64),
///         records: &mut dyn Iterator<Item = ((String, i64), ())>,
///         out: &mut Output<'_, str, str>,
///     ) -> Result<(), JobError> {
///         let readings: Vec<String> = records.map(|((_, r), ())| r.to_string()).collect();
///         out.write(&first.0, &readings.join(","));
///         Ok(())
///     }
/// }
///
/// let job = JobDef::with_group_reducer("ascending", Readings, Ascending).group_by_first();
/// let parts = run_job(&job, b"oslo -3\nrome 21\noslo 4\noslo -12\n", 1)?;
/// assert_eq!(parts, [b"oslo\t-12,-3,4\nrome\t21\n"]);
/// # Ok::<(), JobError>(())
/// ```
pub trait GroupReducer: Send + Sync + 'static {
    /// The mapper's key type.
    type Key: Key;
    /// The mapper's value type.
    type Value: Value;
    /// The key of an output line.
    type OutKey: TextFormat + ?Sized;
    /// The value of an output line; `()` writes the key alone.
    type OutValue: TextFormat + ?Sized;
    /// Runs once per task, before its first group. The default does nothing.
    fn setup(&self, ctx: &TaskContext) -> Result<(), JobError> {
        let _ = ctx;
        Ok(())
    }
    /// Writes the output records of one group: `first` is its first (smallest) key, and
    /// `records` every `(key, value)` of the group in key order, starting with `first`'s.
    fn reduce(
        &self,
        first: Self::Key,
        records: &mut dyn Iterator<Item = (Self::Key, Self::Value)>,
        out: &mut Output<'_, Self::OutKey, Self::OutValue>,
    ) -> Result<(), JobError>;
    /// Runs once per task, after its last group, and may write last records. The default does
    /// nothing.
    fn cleanup(&self, out: &mut Output<'_, Self::OutKey, Self::OutValue>) -> Result<(), JobError> {
        let _ = out;
        Ok(())
    }
}

/// A [`GroupReducer`] as a job's reduce stage (see [`JobDef::with_group_reducer`]).
pub struct Grouped<R>(pub R);

/// How a job's reducer takes its groups, erased to encoded bytes: implemented for every
/// [`Reducer`] and for a [`GroupReducer`] in [`Grouped`]. Job code implements those, not this.
pub trait ReduceStage<K, V>: Send + Sync + 'static {
    /// Runs once per reduce task `ctx`, before its first group.
    fn setup(&self, ctx: &TaskContext) -> Result<(), JobError>;
    /// Reduces one group (`key` its first full key) in the task `ctx`, appending text lines to
    /// `out`; returns how many records it wrote.
    fn reduce(
        &self,
        ctx: &TaskContext,
        key: &[u8],
        records: &mut dyn ValueStream,
        out: &mut TextSink,
    ) -> Result<u64, JobError>;
    /// Runs once per reduce task `ctx`, after its last group, appending to `out`; returns how
    /// many records it wrote.
    fn cleanup(&self, ctx: &TaskContext, out: &mut TextSink) -> Result<u64, JobError>;
}

impl<R: Reducer> ReduceStage<R::Key, R::Value> for R {
    fn setup(&self, ctx: &TaskContext) -> Result<(), JobError> {
        Reducer::setup(self, ctx)
    }

    fn reduce(
        &self,
        ctx: &TaskContext,
        key: &[u8],
        records: &mut dyn ValueStream,
        out: &mut TextSink,
    ) -> Result<u64, JobError> {
        let key = R::Key::decode_key(key)?;
        let mut values = Decoded::new(records, value_of::<R::Value>);
        let written = write_output(ctx, out, |out| Reducer::reduce(self, key, &mut values, out))?;
        values.finish()?;
        Ok(written)
    }

    fn cleanup(&self, ctx: &TaskContext, out: &mut TextSink) -> Result<u64, JobError> {
        write_output(ctx, out, |out| Reducer::cleanup(self, out))
    }
}

impl<R: GroupReducer> ReduceStage<R::Key, R::Value> for Grouped<R> {
    fn setup(&self, ctx: &TaskContext) -> Result<(), JobError> {
        self.0.setup(ctx)
    }

    fn reduce(
        &self,
        ctx: &TaskContext,
        key: &[u8],
        records: &mut dyn ValueStream,
        out: &mut TextSink,
    ) -> Result<u64, JobError> {
        let first = R::Key::decode_key(key)?;
        let mut records = Decoded::new(records, record_of::<R::Key, R::Value>);
        let written = write_output(ctx, out, |out| self.0.reduce(first, &mut records, out))?;
        records.finish()?;
        Ok(written)
    }

    fn cleanup(&self, ctx: &TaskContext, out: &mut TextSink) -> Result<u64, JobError> {
        write_output(ctx, out, |out| self.0.cleanup(out))
    }
}

/// Runs `write` over an [`Output`] appending to `out`; returns how many records it wrote.
fn write_output<K: TextFormat + ?Sized, V: TextFormat + ?Sized>(
    ctx: &TaskContext,
    out: &mut TextSink,
    write: impl FnOnce(&mut Output<'_, K, V>) -> Result<(), JobError>,
) -> Result<u64, JobError> {
    let mut output = Output::new(ctx, out);
    write(&mut output)?;
    Ok(output.records)
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

/// What a mapper writes its pairs to. Keeps scratch buffers, so emitting does not allocate.
pub struct Emitter<'a, K, V> {
    context: &'a TaskContext,
    sink: &'a mut dyn MapSink,
    key: Vec<u8>,
    value: Vec<u8>,
    /// Folds values as they are emitted, where the job has a combiner.
    combine: Option<MapCombine<'a, K, V>>,
    emitted: u64,
}

impl<K: Key, V: Value> Emitter<'_, K, V> {
    /// The task this mapper runs in: its input (file name, split), the job's parameters.
    pub fn context(&self) -> &TaskContext {
        self.context
    }

    /// Emits one pair. The key may be a borrowed form of `K` (`&[u8]` for `Vec<u8>`, `&str` for
    /// `String`); for a tuple key from borrowed parts, see [`Emitter::emit_parts`].
    pub fn emit<Q>(&mut self, key: &Q, value: &V) -> Result<(), JobError>
    where
        Q: KeyEncode + ?Sized,
        K: Borrow<Q>,
    {
        self.emit_parts(key, value)
    }

    /// Emits one pair whose key is given in parts (see [`KeyParts`]): for a `(String, u64)` key,
    /// `out.emit_parts((word, n), &value)` with `word: &str`, which allocates nothing.
    pub fn emit_parts(&mut self, key: impl KeyParts<K>, value: &V) -> Result<(), JobError> {
        self.emitted += 1;
        self.key.clear();
        key.encode_key(&mut self.key);
        if let Some(combine) = &mut self.combine {
            return combine.add(&self.key, value, self.sink);
        }
        self.value.clear();
        encode_value(value, &mut self.value)?;
        self.sink.emit(&self.key, &self.value)
    }
}

/// What a reducer writes its output records to.
pub struct Output<'a, K: ?Sized, V: ?Sized> {
    context: &'a TaskContext,
    out: &'a mut TextSink,
    records: u64,
    types: PhantomData<fn(&K, &V)>,
}

impl<'a, K: TextFormat + ?Sized, V: TextFormat + ?Sized> Output<'a, K, V> {
    fn new(context: &'a TaskContext, out: &'a mut TextSink) -> Self {
        Output {
            context,
            out,
            records: 0,
            types: PhantomData,
        }
    }

    /// The task this reducer runs in: its partition, the job's parameters.
    pub fn context(&self) -> &TaskContext {
        self.context
    }

    /// Writes one output line: `key<TAB>value`, or `key` alone if the value type is `()`.
    pub fn write(&mut self, key: &K, value: &V) {
        write_line(key, value, &self.context.separator, self.out);
        self.records += 1;
    }
}

/// Decodes an encoded record (key, value) into a typed item.
type DecodeRecord<T> = fn(&[u8], &[u8]) -> Result<T, JobError>;

fn value_of<V: Value>(_key: &[u8], value: &[u8]) -> Result<V, JobError> {
    decode_value(value)
}

fn record_of<K: Key, V: Value>(key: &[u8], value: &[u8]) -> Result<(K, V), JobError> {
    Ok((K::decode_key(key)?, decode_value(value)?))
}

/// Decodes a [`ValueStream`] into typed items (values, or keys and values); the first error
/// ends the iteration and is kept.
struct Decoded<'a, T> {
    stream: &'a mut dyn ValueStream,
    decode: DecodeRecord<T>,
    error: Option<JobError>,
}

impl<'a, T> Decoded<'a, T> {
    fn new(stream: &'a mut dyn ValueStream, decode: DecodeRecord<T>) -> Self {
        Decoded {
            stream,
            decode,
            error: None,
        }
    }

    fn finish(self) -> Result<(), JobError> {
        self.error.map_or(Ok(()), Err)
    }
}

impl<T> Iterator for Decoded<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        if self.error.is_some() {
            return None;
        }
        let decoded = match self.stream.next_record() {
            Ok(Some((key, value))) => (self.decode)(key, value),
            Ok(None) => return None,
            Err(e) => Err(e),
        };
        decoded.map_err(|e| self.error = Some(e)).ok()
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
        let mut emitter = Emitter {
            context: ctx,
            sink,
            key: Vec::new(),
            value: Vec::new(),
            // A map-only run has no reduce to fold for, as in Hadoop.
            combine: self
                .combiner
                .as_deref()
                .filter(|_| ctx.partitions > 0)
                .map(|combiner| MapCombine::new(combiner, ctx)),
            emitted: 0,
        };
        self.mapper.setup(ctx)?;
        while let Some((offset, record)) = records.next_record()? {
            self.mapper.map(offset, record, &mut emitter)?;
        }
        self.mapper.cleanup(&mut emitter)?;
        if let Some(combine) = &mut emitter.combine {
            combine.flush(emitter.sink)?;
        }
        Ok(emitter.emitted)
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
