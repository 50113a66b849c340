//! Word count. A token is a maximal run of bytes that are not ASCII whitespace (space, tab, LF, CR,
//! VT, FF), as Python's `bytes.split()` finds them; no UTF-8 validation, counted case-sensitively.

use quern_sdk::{Combiner, Emitter, JobDef, JobError, Mapper, Output, Reducer, TaskContext};

pub const NAME: &str = "wordcount";

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// The tokens of `line`, in order.
pub fn tokens(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    line.split(|&b| is_space(b)).filter(|t| !t.is_empty())
}

pub struct TokenMapper;

impl Mapper for TokenMapper {
    type Key = Vec<u8>;
    type Value = u64;
    fn map(
        &self,
        _offset: u64,
        line: &[u8],
        out: &mut Emitter<'_, Vec<u8>, u64>,
    ) -> Result<(), JobError> {
        for token in tokens(line) {
            out.emit(token, &1)?;
        }
        Ok(())
    }
}

pub struct SumCombiner;

impl Combiner for SumCombiner {
    type Key = Vec<u8>;
    type Value = u64;
    fn combine(
        &self,
        _: &TaskContext,
        _key: &Vec<u8>,
        values: &mut dyn Iterator<Item = u64>,
    ) -> u64 {
        values.sum()
    }
    fn merge(&self, _: &TaskContext, _key: &Vec<u8>, held: u64, value: u64) -> u64 {
        held + value
    }
}

pub struct SumReducer;

impl Reducer for SumReducer {
    type Key = Vec<u8>;
    type Value = u64;
    type OutKey = Vec<u8>;
    type OutValue = u64;
    fn reduce(
        &self,
        key: Vec<u8>,
        values: &mut dyn Iterator<Item = u64>,
        out: &mut Output<'_, Vec<u8>, u64>,
    ) -> Result<(), JobError> {
        out.write(&key, &values.sum());
        Ok(())
    }
}

pub fn job() -> JobDef<TokenMapper, SumReducer> {
    JobDef::new(NAME, TokenMapper, SumReducer).combiner(SumCombiner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use quern_sdk::local::run_job;

    #[test]
    fn tokens_split_on_ascii_whitespace_only() {
        let line = b"a\tb  c\x0bd\x0ce\rf\xa0g \xff";
        let found: Vec<&[u8]> = tokens(line).collect();
        let expected: Vec<&[u8]> = vec![b"a", b"b", b"c", b"d", b"e", b"f\xa0g", b"\xff"];
        assert_eq!(found, expected);
    }

    #[test]
    fn counts_words_case_sensitively_in_key_order() {
        let parts = run_job(&job(), b"the cat\nThe cat the\r\n\ndog", 1).unwrap();
        assert_eq!(parts, vec![b"The\t1\ncat\t2\ndog\t1\nthe\t2\n".to_vec()]);
    }
}
