//! `join`: a reduce-side inner join of two inputs (Hadoop's reduce-side join). Every input line
//! is `key<TAB>rest`, split at its first TAB; `-D left=PREFIX` says which side a line is on: the
//! lines of input files whose base name starts with PREFIX are the left side, all others the
//! right. For each key, every pair of a left and a right line of that key becomes one output
//! line `key<TAB>left rest<TAB>right rest`; a key on one side only writes nothing. A line
//! without a TAB joins nothing: it is skipped and counted under `join.skipped`.
//!
//! The textbook secondary sort: the map key is `(key, side)` with the left side's tag sorting
//! first, and the job groups by the key alone, so one reduce call gets a key's left lines, then
//! its right lines. Only the left lines are held in memory; the right side streams past them.

use quern_sdk::{Emitter, GroupReducer, Grouped, JobDef, JobError, Mapper, Output, Params};

/// The name `quern run` and `quern submit` know this job by.
pub const NAME: &str = "join";
/// The parameter naming the left side's file name prefix.
pub const LEFT: &str = "left";
/// The user counter of lines without a TAB.
pub const SKIPPED: &str = "join.skipped";

/// The tag of left lines; it sorts before [`RIGHT_SIDE`], so they reach the reducer first.
const LEFT_SIDE: u8 = 0;
/// The tag of right lines.
const RIGHT_SIDE: u8 = 1;

/// Emits each line's rest under `(key, side)`, the side from its file's name.
pub struct TaggedLines {
    left_prefix: String,
}

impl Mapper for TaggedLines {
    type Key = (Vec<u8>, u8);
    type Value = Vec<u8>;
    fn map(
        &self,
        _offset: u64,
        line: &[u8],
        out: &mut Emitter<'_, (Vec<u8>, u8), Vec<u8>>,
    ) -> Result<(), JobError> {
        let Some(tab) = line.iter().position(|&b| b == b'\t') else {
            out.context().counter(SKIPPED).increment();
            return Ok(());
        };
        let file = out.context().input.as_ref().map_or("", |i| i.file_name());
        let side = match file.starts_with(&self.left_prefix) {
            true => LEFT_SIDE,
            false => RIGHT_SIDE,
        };
        out.emit_parts((&line[..tab], side), &line[tab + 1..].to_vec())
    }
}

/// Writes every left × right pair of one key's group.
pub struct PairsReducer;

impl GroupReducer for PairsReducer {
    type Key = (Vec<u8>, u8);
    type Value = Vec<u8>;
    type OutKey = [u8];
    type OutValue = [u8];
    fn reduce(
        &self,
        first: (Vec<u8>, u8),
        records: &mut dyn Iterator<Item = ((Vec<u8>, u8), Vec<u8>)>,
        out: &mut Output<'_, [u8], [u8]>,
    ) -> Result<(), JobError> {
        let mut left = Vec::new();
        let mut pair = Vec::new();
        for ((_, side), rest) in records {
            if side == LEFT_SIDE {
                left.push(rest);
                continue;
            }
            for left_rest in &left {
                pair.clear();
                pair.extend_from_slice(left_rest);
                pair.push(b'\t');
                pair.extend_from_slice(&rest);
                out.write(&first.0, &pair);
            }
        }
        Ok(())
    }
}

/// The job, for the left side's prefix in `params`; an error names the parameter if it is
/// missing or empty.
pub fn job(params: &Params) -> Result<JobDef<TaggedLines, Grouped<PairsReducer>>, JobError> {
    let left_prefix = params.require(LEFT)?;
    if left_prefix.is_empty() {
        return Err(JobError::Param(
            "job parameter 'left' is empty: every input would be the left side".into(),
        ));
    }
    let mapper = TaggedLines {
        left_prefix: left_prefix.to_string(),
    };
    Ok(JobDef::with_group_reducer(NAME, mapper, PairsReducer).group_by_first())
}

#[cfg(test)]
mod tests {
    use super::*;
    use quern_sdk::local::LocalRun;

    #[test]
    fn every_left_and_right_pair_of_a_key_is_written_and_one_sided_keys_are_not() {
        let params = Params::new([(LEFT.to_string(), "users".to_string())]);
        let job = job(&params).unwrap();
        let files = [
            ("in/users-1.tsv", "1\tann\n2\tbob\n2\tbea\n4\tdan\n"),
            ("in/orders.tsv", "2\tpen\n1\tink\n3\tcup\n2\tmug\nno tab\n"),
            ("in/users-2.tsv", "1\tamy\tadmin\n"),
        ];
        for (split_size, partitions) in [(u64::MAX, 1), (5, 3)] {
            let run = LocalRun::new(&job)
                .partitions(partitions)
                .params(params.clone());
            let output = run.split_size(split_size).run(&files).unwrap();
            let text = String::from_utf8(output.parts.concat()).unwrap();
            let mut lines: Vec<&str> = text.lines().collect();
            lines.sort();
            assert_eq!(
                lines,
                [
                    "1\tamy\tadmin\tink",
                    "1\tann\tink",
                    "2\tbea\tmug",
                    "2\tbea\tpen",
                    "2\tbob\tmug",
                    "2\tbob\tpen",
                ]
            );
            assert_eq!(output.counters.get(SKIPPED), Some(&1));
        }
        assert!(super::job(&Params::default()).is_err());
    }
}
