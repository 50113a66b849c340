//! The map side of the typed job API: a [`Mapper`] turns each input record into key/value pairs,
//! which it writes to an [`Emitter`] (which encodes them, and folds them by the job's combiner as
//! they come).

use crate::JobError;
use crate::context::TaskContext;
use crate::engine::MapSink;
use crate::key::{Key, KeyEncode, KeyParts};
use crate::map_combine::MapCombine;
use crate::value::{Value, encode_value};
use std::borrow::Borrow;

/// Turns one input record (a line, unless the job says otherwise with [`JobDef::input`](crate::JobDef::input)) into
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

impl<'a, K: Key, V: Value> Emitter<'a, K, V> {
    /// An emitter for map task `context` into `sink`, folding by `combine` if the job has it.
    pub(crate) fn new(
        context: &'a TaskContext,
        sink: &'a mut dyn MapSink,
        combine: Option<MapCombine<'a, K, V>>,
    ) -> Self {
        Emitter {
            context,
            sink,
            key: Vec::new(),
            value: Vec::new(),
            combine,
            emitted: 0,
        }
    }

    /// Passes on what the combiner still holds; returns how many pairs the mapper emitted.
    pub(crate) fn finish(mut self) -> Result<u64, JobError> {
        if let Some(combine) = &mut self.combine {
            combine.flush(self.sink)?;
        }
        Ok(self.emitted)
    }

    /// The task this mapper runs in: its input (file name, split), the job's parameters.
    pub fn context(&self) -> &TaskContext {
        self.context
    }

    /// Emits one pair. The key may be a borrowed form of `K` (`&[u8]` for `Vec<u8>`, `&str` for
    /// `String`); for a tuple key from borrowed parts, see [`Emitter::emit_parts`].
    #[inline]
    pub fn emit<Q>(&mut self, key: &Q, value: &V) -> Result<(), JobError>
    where
        Q: KeyEncode + ?Sized,
        K: Borrow<Q>,
    {
        self.emit_parts(key, value)
    }

    /// Emits one pair whose key is given in parts (see [`KeyParts`]): for a `(String, u64)` key,
    /// `out.emit_parts((word, n), &value)` with `word: &str`, which allocates nothing.
    #[inline]
    pub fn emit_parts(&mut self, key: impl KeyParts<K>, value: &V) -> Result<(), JobError> {
        self.emitted += 1;
        let key = match key.as_encoded() {
            Some(bytes) => bytes,
            None => {
                self.key.clear();
                key.encode_key(&mut self.key);
                &self.key
            }
        };
        if let Some(combine) = &mut self.combine {
            return combine.add(key, value, self.sink);
        }
        self.value.clear();
        encode_value(value, &mut self.value)?;
        self.sink.emit(key, &self.value)
    }
}
