//! A job binary whose jobs misbehave on purpose, for the fault-tolerance tests: the built-in jobs,
//! plus word count variants that hurt the worker process on a marked line.
//!
//! - `crashcount`: word count, but a line holding `QUERN-ABORT` aborts the whole worker process
//!   (as a segfault, a stack overflow or the OOM killer would).
//! - `hangcount`: word count, but the first attempt to meet a line holding `QUERN-HANG` hangs
//!   forever (a deadlock, a call that never returns). "First" is decided by creating the file
//!   `QUERN_HANG_MARKER` names; without the variable, every attempt hangs.

use quern_examples::wordcount::{SumCombiner, SumReducer, TokenMapper};
use quern_sdk::{Emitter, JobDef, JobError, Mapper};

/// The marker that takes the worker process down.
const ABORT_MARKER: &[u8] = b"QUERN-ABORT";
/// The marker that hangs the mapper.
const HANG_MARKER: &[u8] = b"QUERN-HANG";

fn holds(line: &[u8], marker: &[u8]) -> bool {
    line.windows(marker.len()).any(|w| w == marker)
}

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
        if holds(line, ABORT_MARKER) {
            std::process::abort();
        }
        TokenMapper.map(offset, line, out)
    }
}

struct HangingMapper;

impl HangingMapper {
    /// Whether this attempt is the first to meet the marked line: it creates the marker file.
    fn first_to_meet_it() -> bool {
        match std::env::var_os("QUERN_HANG_MARKER") {
            None => true,
            Some(path) => std::fs::File::create_new(path).is_ok(),
        }
    }
}

impl Mapper for HangingMapper {
    type Key = Vec<u8>;
    type Value = u64;
    fn map(
        &self,
        offset: u64,
        line: &[u8],
        out: &mut Emitter<'_, Vec<u8>, u64>,
    ) -> Result<(), JobError> {
        if holds(line, HANG_MARKER) && Self::first_to_meet_it() {
            loop {
                std::thread::park();
            }
        }
        TokenMapper.map(offset, line, out)
    }
}

fn main() -> std::process::ExitCode {
    let mut jobs = quern_examples::registry();
    jobs.register(JobDef::new("crashcount", CrashingMapper, SumReducer).combiner(SumCombiner));
    jobs.register(JobDef::new("hangcount", HangingMapper, SumReducer).combiner(SumCombiner));
    quern::main_with(jobs)
}
