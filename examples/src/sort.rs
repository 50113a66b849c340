//! `sort`: every input line, sorted bytewise across the part files, duplicates kept. Partitions
//! hold contiguous ranges of lines, cut by a sample of the input taken before the maps run, so
//! `cat part-r-*` gives what `LC_ALL=C sort` gives (Hadoop's TeraSort, Spark's `sortBy`).

use quern_sdk::{Emitter, JobDef, JobError, Mapper, Output, Reducer};

/// The name `quern run` and `quern submit` know this job by.
pub const NAME: &str = "sort";

/// Each line is a key, with no value.
pub struct Lines;

impl Mapper for Lines {
    type Key = Vec<u8>;
    type Value = ();
    fn map(&self, _: u64, line: &[u8], out: &mut Emitter<'_, Vec<u8>, ()>) -> Result<(), JobError> {
        out.emit(line, &())
    }
}

/// Writes each line as many times as it came.
pub struct Repeat;

impl Reducer for Repeat {
    type Key = Vec<u8>;
    type Value = ();
    type OutKey = [u8];
    type OutValue = ();
    fn reduce(
        &self,
        line: Vec<u8>,
        copies: &mut dyn Iterator<Item = ()>,
        out: &mut Output<'_, [u8], ()>,
    ) -> Result<(), JobError> {
        for () in copies {
            out.write(&line, &());
        }
        Ok(())
    }
}

/// The job: lines as keys, in total order.
pub fn job() -> JobDef<Lines, Repeat> {
    JobDef::new(NAME, Lines, Repeat).total_order()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_kept_and_lines_come_out_sorted() {
        let parts = quern_sdk::local::run_job(&job(), b"b\na\r\nb\n\nc\ta\n", 1).unwrap();
        assert_eq!(parts.concat(), b"\na\nb\nb\nc\ta\n");
    }
}
