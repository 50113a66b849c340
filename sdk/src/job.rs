//! The typed job API: [`Mapper`], [`Combiner`], [`Reducer`], [`Partitioner`], and [`JobDef`], which
//! binds them under a name and erases them to the engine's byte-level [`JobEngine`].

use crate::JobError;
use crate::context::TaskContext;
use crate::engine::{JobEngine, LineSource, MapSink, TextSink, ValueStream};
use crate::key::{Key, KeyEncode, KeyParts};
use crate::map_combine::MapCombine;
use crate::text::{TextFormat, write_line};
use crate::value::{Value, decode_value, encode_value};
use std::borrow::Borrow;
use std::marker::PhantomData;

/// Turns one input line into zero or more key/value pairs.
pub trait Mapper: Send + Sync + 'static {
    /// The type of the keys it emits.
    type Key: Key;
    /// The type of the values it emits.
    type Value: Value;
    /// Runs once per task, before its first line: read side data, check parameters. The
    /// default does nothing.
    fn setup(&self, ctx: &TaskContext) -> Result<(), JobError> {
        let _ = ctx;
        Ok(())
    }
    /// `offset` is the byte offset of the line in its input object; `line` has no terminator.
    fn map(
        &self,
        offset: u64,
        line: &[u8],
        out: &mut Emitter<'_, Self::Key, Self::Value>,
    ) -> Result<(), JobError>;
    /// Runs once per task, after its last line, and may emit last pairs. The default does
    /// nothing.
    fn cleanup(&self, out: &mut Emitter<'_, Self::Key, Self::Value>) -> Result<(), JobError> {
        let _ = out;
        Ok(())
    }
}

/// Folds the values of one key into one, map-side, before the shuffle. It must give the same
/// reduce result whether it runs zero, one or many times (sum, min, max, …).
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

/// Turns one key and all its values into output records.
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

/// Chooses the reduce partition of an encoded key.
pub trait Partitioner: Send + Sync + 'static {
    /// Which of `partitions` partitions `key` (encoded) goes to: the same in every process.
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
        write_line(key, value, self.out);
        self.records += 1;
    }
}

/// Decodes a [`ValueStream`] into typed values; the first error ends the iteration and is kept.
struct DecodedValues<'a, V> {
    stream: &'a mut dyn ValueStream,
    error: Option<JobError>,
    types: PhantomData<fn() -> V>,
}

impl<'a, V: Value> DecodedValues<'a, V> {
    fn new(stream: &'a mut dyn ValueStream) -> Self {
        DecodedValues {
            stream,
            error: None,
            types: PhantomData,
        }
    }

    fn finish(self) -> Result<(), JobError> {
        self.error.map_or(Ok(()), Err)
    }
}

impl<V: Value> Iterator for DecodedValues<'_, V> {
    type Item = V;
    fn next(&mut self) -> Option<V> {
        if self.error.is_some() {
            return None;
        }
        let decoded = match self.stream.next_value() {
            Ok(Some(bytes)) => decode_value(bytes),
            Ok(None) => return None,
            Err(e) => Err(e),
        };
        decoded.map_err(|e| self.error = Some(e)).ok()
    }
}

type BoxedCombiner<K, V> = Box<dyn Combiner<Key = K, Value = V>>;

/// A named job: a mapper, a reducer, and optionally a combiner and a partitioner.
pub struct JobDef<M: Mapper, R> {
    name: String,
    mapper: M,
    reducer: R,
    combiner: Option<BoxedCombiner<M::Key, M::Value>>,
    partitioner: Box<dyn Partitioner>,
}

impl<M, R> JobDef<M, R>
where
    M: Mapper,
    R: Reducer<Key = M::Key, Value = M::Value>,
{
    /// Job `name`, with `mapper` and `reducer`, hash partitioning, and no combiner.
    pub fn new(name: impl Into<String>, mapper: M, reducer: R) -> Self {
        JobDef {
            name: name.into(),
            mapper,
            reducer,
            combiner: None,
            partitioner: Box::new(HashPartitioner),
        }
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
}

impl<M, R> JobEngine for JobDef<M, R>
where
    M: Mapper,
    R: Reducer<Key = M::Key, Value = M::Value>,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn map(
        &self,
        ctx: &TaskContext,
        lines: &mut dyn LineSource,
        sink: &mut dyn MapSink,
    ) -> Result<u64, JobError> {
        let mut emitter = Emitter {
            context: ctx,
            sink,
            key: Vec::new(),
            value: Vec::new(),
            combine: self
                .combiner
                .as_deref()
                .map(|combiner| MapCombine::new(combiner, ctx)),
            emitted: 0,
        };
        self.mapper.setup(ctx)?;
        while let Some((offset, line)) = lines.next_line()? {
            self.mapper.map(offset, line, &mut emitter)?;
        }
        self.mapper.cleanup(&mut emitter)?;
        if let Some(combine) = &mut emitter.combine {
            combine.flush(emitter.sink)?;
        }
        Ok(emitter.emitted)
    }

    fn partition(&self, key: &[u8], partitions: u32) -> u32 {
        self.partitioner.partition(key, partitions)
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
        let mut decoded = DecodedValues::new(values);
        let combined = combiner.combine(ctx, &key, &mut decoded);
        decoded.finish()?;
        encode_value(&combined, out)
    }

    fn start_reduce(&self, ctx: &TaskContext) -> Result<(), JobError> {
        self.reducer.setup(ctx)
    }

    fn finish_reduce(&self, ctx: &TaskContext, out: &mut TextSink) -> Result<u64, JobError> {
        let mut output = Output::new(ctx, out);
        self.reducer.cleanup(&mut output)?;
        Ok(output.records)
    }

    fn reduce(
        &self,
        ctx: &TaskContext,
        key: &[u8],
        values: &mut dyn ValueStream,
        out: &mut TextSink,
    ) -> Result<u64, JobError> {
        let key = M::Key::decode_key(key)?;
        let mut decoded = DecodedValues::new(values);
        let mut output = Output::new(ctx, out);
        self.reducer.reduce(key, &mut decoded, &mut output)?;
        decoded.finish()?;
        Ok(output.records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
