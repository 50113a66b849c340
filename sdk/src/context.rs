//! What job code knows about the task it runs in: the job's parameters (`-D key=value`), which
//! job, task and attempt it is, and for a map, the input it reads. Job code reaches it through
//! the [`crate::Emitter`] a mapper writes to and the [`crate::Output`] a reducer writes to, and
//! counts things in it with [`TaskContext::counter`].

use crate::JobError;
use crate::counter::{Counter, UserCounters};
use crate::text::{DEFAULT_SEPARATOR, SEPARATOR_PARAM};
use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A job's parameters, as given with `-D key=value` (or `--param`) on `run` and `submit`. They
/// travel in the job spec to every task, and a job's factory builds its mapper, combiner,
/// partitioner and reducer from them (see [`crate::JobRegistry::register_factory`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params(BTreeMap<String, String>);

impl Params {
    /// Parameters from `(key, value)` pairs; a later pair replaces an earlier one.
    pub fn new(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        Params(pairs.into_iter().collect())
    }

    /// The value of `key`, if given.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// The value of `key`; an error naming it if it was not given.
    pub fn require(&self, key: &str) -> Result<&str, JobError> {
        self.get(key).ok_or_else(|| {
            JobError::Param(format!(
                "job parameter '{key}' is not set (give -D {key}=VALUE)"
            ))
        })
    }

    /// The value of `key` parsed as a `T`, if given; an error naming the key and the value if it
    /// does not parse.
    pub fn parse<T: FromStr>(&self, key: &str) -> Result<Option<T>, JobError>
    where
        T::Err: std::fmt::Display,
    {
        self.get(key)
            .map(|text| {
                text.parse().map_err(|e| {
                    JobError::Param(format!("job parameter {key}='{text}' is not valid: {e}"))
                })
            })
            .transpose()
    }

    /// Every parameter, by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// One byte range of one object a map task reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InputSplit {
    /// The object's URL (`file:///…`, `s3://…`).
    pub url: String,
    /// The split's first byte; it starts at the first whole line at or after it.
    pub start: u64,
    /// The split's end; its last line may run past it.
    pub end: u64,
}

impl InputSplit {
    /// The object's base name: the part of its URL after the last `/`.
    pub fn file_name(&self) -> &str {
        self.url.rsplit('/').next().unwrap_or(&self.url)
    }
}

/// The input a map task reads: one byte range of one object, or several small objects packed
/// into one task, each read whole, one after another (Hadoop's `CombineFileInputFormat`). It
/// dereferences to the [`InputSplit`] of the object whose record is being mapped, so
/// `ctx.input.as_ref().map_or("", |i| i.file_name())` names each record's own file, packed or
/// not, and its offsets are offsets in that file. In `setup` it is the first object.
#[derive(Clone, Debug)]
pub struct MapInput {
    splits: Arc<[InputSplit]>,
    /// Index into `splits` of the object being read: moved by the engine's reader (through an
    /// [`InputCursor`]) on the mapper's own thread, between records, and shared by every clone
    /// of the context.
    current: Arc<AtomicUsize>,
}

impl MapInput {
    /// The input of a map over `splits`, in the order it reads them; None if there are none.
    pub fn new(splits: Vec<InputSplit>) -> Option<Self> {
        (!splits.is_empty()).then(|| MapInput {
            splits: splits.into(),
            current: Arc::default(),
        })
    }

    /// Every object range the task reads, in order.
    pub fn splits(&self) -> &[InputSplit] {
        &self.splits
    }

    /// The handle the engine moves from one object to the next with.
    pub fn cursor(&self) -> InputCursor {
        InputCursor {
            current: self.current.clone(),
            len: self.splits.len(),
        }
    }
}

impl std::ops::Deref for MapInput {
    type Target = InputSplit;
    fn deref(&self) -> &InputSplit {
        let index = self.current.load(Ordering::Relaxed);
        // `InputCursor::select` keeps the index in range, and `new` refuses an empty list.
        &self.splits[index.min(self.splits.len() - 1)]
    }
}

/// Moves a [`MapInput`] to the object the reader goes on to; for the engine, not job code.
#[derive(Clone, Debug)]
pub struct InputCursor {
    current: Arc<AtomicUsize>,
    len: usize,
}

impl InputCursor {
    /// Makes object `index` (of [`MapInput::splits`]) the one the context names; an index past
    /// the end names the last.
    pub fn select(&self, index: usize) {
        self.current
            .store(index.min(self.len.saturating_sub(1)), Ordering::Relaxed);
    }
}

/// The task a piece of job code runs in.
#[derive(Clone, Debug)]
pub struct TaskContext {
    /// The job's id (`job-1764130320123-0001`).
    pub job_id: String,
    /// The map task's index, or the reduce's partition.
    pub task: u32,
    /// This attempt's id: a task may run more than once.
    pub attempt: u64,
    /// The job's number of reduce partitions.
    pub partitions: u32,
    /// A map's input, naming the object of the record being mapped; None for a reduce.
    pub input: Option<MapInput>,
    /// The job's parameters.
    pub params: Arc<Params>,
    /// This attempt's user counters (see [`TaskContext::counter`]).
    pub counters: UserCounters,
    /// What separates key and value on output lines (see [`crate::text`]).
    pub separator: Vec<u8>,
    /// A total-order job's cut points (see [`crate::total_order`]); empty for other jobs.
    pub cut_points: Arc<Vec<Vec<u8>>>,
}

impl Default for TaskContext {
    fn default() -> Self {
        TaskContext {
            job_id: String::new(),
            task: 0,
            attempt: 0,
            partitions: 0,
            input: None,
            params: Arc::default(),
            counters: UserCounters::default(),
            separator: DEFAULT_SEPARATOR.to_vec(),
            cut_points: Arc::default(),
        }
    }
}

impl TaskContext {
    /// The context of a task of a job with `params`: its output separator is theirs.
    pub fn with_params(params: Params) -> Self {
        let separator = params
            .get(SEPARATOR_PARAM)
            .map_or(DEFAULT_SEPARATOR, str::as_bytes)
            .to_vec();
        TaskContext {
            params: Arc::new(params),
            separator,
            ..TaskContext::default()
        }
    }

    /// The user counter `name` of this attempt, for job code to add to:
    /// `out.context().counter("grep.matches").increment()`. The job's totals count each task's
    /// one successful attempt, so a retried or backed-up task is counted once.
    pub fn counter(&self, name: &str) -> Counter {
        self.counters.counter(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_read_typed_and_errors_name_the_key() {
        let params = Params::new([
            ("pattern".to_string(), "love".to_string()),
            ("limit".to_string(), "x12".to_string()),
        ]);
        assert_eq!(params.require("pattern").unwrap(), "love");
        assert_eq!(
            params.require("missing").unwrap_err().to_string(),
            "job parameter 'missing' is not set (give -D missing=VALUE)"
        );
        assert_eq!(params.parse::<u32>("absent").unwrap(), None);
        assert_eq!(
            params.parse::<u32>("limit").unwrap_err().to_string(),
            "job parameter limit='x12' is not valid: invalid digit found in string"
        );
    }

    #[test]
    fn a_split_knows_its_file_name() {
        let split = InputSplit {
            url: "s3://books/in/pg-metamorphosis.txt".into(),
            ..InputSplit::default()
        };
        assert_eq!(split.file_name(), "pg-metamorphosis.txt");
    }

    #[test]
    fn a_packed_input_names_the_object_its_cursor_selects() {
        let split = |name: &str| InputSplit {
            url: format!("file:///in/{name}"),
            start: 0,
            end: 10,
        };
        let input = MapInput::new(vec![split("a.txt"), split("b.txt")]).unwrap();
        let ctx = TaskContext {
            input: Some(input.clone()),
            ..TaskContext::default()
        };
        let name = |ctx: &TaskContext| ctx.input.as_ref().map_or("", |i| i.file_name()).to_string();
        assert_eq!(name(&ctx), "a.txt");
        // The engine's cursor moves every clone of the context.
        input.cursor().select(1);
        assert_eq!(name(&ctx), "b.txt");
        assert_eq!(ctx.input.as_ref().unwrap().url, "file:///in/b.txt");
        input.cursor().select(7);
        assert_eq!(name(&ctx), "b.txt");
        assert_eq!(input.splits().len(), 2);
        assert!(MapInput::new(Vec::new()).is_none());
    }
}
