//! A job binary whose jobs misbehave on purpose, for the fault-tolerance tests: the built-in jobs,
//! plus word count variants that hurt the worker process on a marked line.
//!
//! - `crashcount`: word count, but a line holding `QUERN-ABORT` aborts the whole worker process
//!   (as a segfault, a stack overflow or the OOM killer would).

use quern_examples::wordcount::{SumCombiner, SumReducer, TokenMapper};
use quern_sdk::{Emitter, JobDef, JobError, Mapper};

/// The marker that takes the worker process down.
const ABORT_MARKER: &[u8] = b"QUERN-ABORT";

struct CrashingMapper;

impl Mapper for CrashingMapper {
    type Key = Vec<u8>;
    type Value = u64;
    fn map(
        &self,
        offset: u64,
        line: &[u8],
        out: &mut Emitter<'_, Vec<u8>, u64>,
    ) -> Result<(), JobError> {
        if line.windows(ABORT_MARKER.len()).any(|w| w == ABORT_MARKER) {
            std::process::abort();
        }
        TokenMapper.map(offset, line, out)
    }
}

fn main() -> std::process::ExitCode {
    let mut jobs = quern_examples::registry();
    jobs.register(JobDef::new("crashcount", CrashingMapper, SumReducer).combiner(SumCombiner));
    quern::main_with(jobs)
}
