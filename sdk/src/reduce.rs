//! The reduce side of the typed job API: a [`Reducer`] (or a [`GroupReducer`], which sees each
//! record's key, for a secondary sort) turns a key group into output records, which it writes to
//! an [`Output`] as text lines. [`ReduceStage`] is how a job holds either, and `Decoded` turns
//! the engine's encoded records back into the job's types.

use crate::JobError;
use crate::context::TaskContext;
use crate::engine::{TextSink, ValueStream};
use crate::key::Key;
use crate::text::{TextFormat, write_line};
use crate::value::{Value, decode_value};
use std::marker::PhantomData;

/// Turns one key and all its values into output records. In a job that groups by a key prefix
/// ([`JobDef::group_by_first`](crate::JobDef::group_by_first)), `key` is the group's first key and the values come in key
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
/// secondary sort, in a job that groups by a key prefix ([`JobDef::group_by_first`](crate::JobDef::group_by_first)). Bind it
/// with [`JobDef::with_group_reducer`](crate::JobDef::with_group_reducer).
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

/// A [`GroupReducer`] as a job's reduce stage (see [`JobDef::with_group_reducer`](crate::JobDef::with_group_reducer)).
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

pub(crate) fn value_of<V: Value>(_key: &[u8], value: &[u8]) -> Result<V, JobError> {
    decode_value(value)
}

fn record_of<K: Key, V: Value>(key: &[u8], value: &[u8]) -> Result<(K, V), JobError> {
    Ok((K::decode_key(key)?, decode_value(value)?))
}

/// Decodes a [`ValueStream`] into typed items (values, or keys and values); the first error
/// ends the iteration and is kept.
pub(crate) struct Decoded<'a, T> {
    stream: &'a mut dyn ValueStream,
    decode: DecodeRecord<T>,
    error: Option<JobError>,
}

impl<'a, T> Decoded<'a, T> {
    pub(crate) fn new(stream: &'a mut dyn ValueStream, decode: DecodeRecord<T>) -> Self {
        Decoded {
            stream,
            decode,
            error: None,
        }
    }

    pub(crate) fn finish(self) -> Result<(), JobError> {
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
