//! The template for your own job binary: define jobs with the SDK, put them in a registry with
//! the built-in ones, and hand it to the `quern` CLI. Start workers from this binary and they can
//! run your jobs.
//!
//! `cargo run --release -p quern --example custom_job -- run linecount --input examples/data --output /tmp/lines`
//!
//! `linecount` counts identical lines (like `sort | uniq -c`), keyed by the line as text.

use quern_sdk::{Combiner, Emitter, JobDef, JobError, Mapper, Output, Reducer, TaskContext};

struct LineMapper;

impl Mapper for LineMapper {
    type Key = String;
    type Value = u64;
    fn map(
        &self,
        _offset: u64,
        line: &[u8],
        out: &mut Emitter<'_, String, u64>,
    ) -> Result<(), JobError> {
        // Keys are typed: this job wants text, so a line that is not UTF-8 fails the task.
        let line =
            std::str::from_utf8(line).map_err(|e| JobError::user(format!("not UTF-8: {e}")))?;
        out.emit(line, &1)
    }
}

struct Sum;

impl Combiner for Sum {
    type Key = String;
    type Value = u64;
    fn combine(
        &self,
        _: &TaskContext,
        _key: &String,
        values: &mut dyn Iterator<Item = u64>,
    ) -> u64 {
        values.sum()
    }
}

impl Reducer for Sum {
    type Key = String;
    type Value = u64;
    type OutKey = String;
    type OutValue = u64;
    fn reduce(
        &self,
        key: String,
        values: &mut dyn Iterator<Item = u64>,
        out: &mut Output<'_, String, u64>,
    ) -> Result<(), JobError> {
        out.write(&key, &values.sum());
        Ok(())
    }
}

fn main() -> std::process::ExitCode {
    let mut jobs = quern_examples::registry();
    jobs.register(JobDef::new("linecount", LineMapper, Sum).combiner(Sum));
    quern::main_with(jobs)
}
