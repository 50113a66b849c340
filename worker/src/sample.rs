//! A sample task of a total-order job (see `quern_sdk::total_order`): runs the mapper over the
//! start of its split and reports the keys it emits, each the key's grouping prefix with the
//! bytes of its record, for the coordinator to cut the key range into partitions. It reads only
//! until it has sampled [`SAMPLE_KEY_BYTES`] of keys or read [`SAMPLE_INPUT_BYTES`], writes
//! nothing, and counts nothing toward the job: its maps read the input again.

use crate::attempt::{Progress, cancelled};
use crate::context::Context;
use crate::error::TaskError;
use crate::map::SplitInput;
use quern_proto::{Assignment, SampledKey};
use quern_sdk::engine::{RecordSource, group_of};
use quern_sdk::{JobEngine, JobError, MapSink, TaskContext};
use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Key bytes a sample task reports at most (the coordinator takes up to 20 such reports).
pub const SAMPLE_KEY_BYTES: u64 = 256 << 10;
/// Input bytes a sample task reads at most.
pub const SAMPLE_INPUT_BYTES: u64 = 4 << 20;

pub async fn run_sample(
    ctx: &Context,
    assignment: &Assignment,
    progress: Arc<Progress>,
) -> Result<Vec<SampledKey>, TaskError> {
    let (job, task_ctx) = ctx.job(assignment)?;
    // No reduce partitions to fold for: every record is sampled with its own weight.
    let task_ctx = TaskContext {
        partitions: 0,
        ..task_ctx
    };
    let input = SplitInput::start(assignment, &task_ctx, job.input_format())?;
    let cancel = CancellationToken::new();
    let _cancel_on_drop = cancel.clone().drop_guard();
    let sampled = tokio::task::spawn_blocking(move || {
        let sampled_bytes = Rc::new(Cell::new(0));
        let mut records = Window {
            records: input.records(cancel.clone(), progress)?,
            sampled_bytes: sampled_bytes.clone(),
            read: 0,
        };
        let mut sink = Sampler {
            job: job.as_ref(),
            keys: Vec::new(),
            sampled_bytes,
        };
        job.map(&task_ctx, &mut records, &mut sink)?;
        if cancel.is_cancelled() {
            return Err(cancelled());
        }
        Ok::<_, JobError>(sink.keys)
    })
    .await;
    Ok(sampled.map_err(TaskError::from_join)??)
}

/// The records of a split up to where enough is sampled.
struct Window<L> {
    records: L,
    sampled_bytes: Rc<Cell<u64>>,
    read: u64,
}

impl<L: RecordSource> RecordSource for Window<L> {
    fn next_record(&mut self) -> Result<Option<(u64, &[u8])>, JobError> {
        if self.sampled_bytes.get() >= SAMPLE_KEY_BYTES || self.read >= SAMPLE_INPUT_BYTES {
            return Ok(None);
        }
        let record = self.records.next_record()?;
        if let Some((_, record)) = &record {
            self.read += record.len() as u64 + 1;
        }
        Ok(record)
    }
}

/// Keeps every key the mapper emits, as its grouping prefix weighed by its record's bytes.
struct Sampler<'a> {
    job: &'a dyn JobEngine,
    keys: Vec<SampledKey>,
    sampled_bytes: Rc<Cell<u64>>,
}

impl MapSink for Sampler<'_> {
    fn emit(&mut self, key: &[u8], value: &[u8]) -> Result<(), JobError> {
        let prefix = group_of(self.job, key)?;
        self.sampled_bytes
            .set(self.sampled_bytes.get() + prefix.len() as u64);
        self.keys.push(SampledKey {
            key: prefix.to_vec(),
            weight: (key.len() + value.len()) as u64,
        });
        Ok(())
    }
}
