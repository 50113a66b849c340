//! `grep`: distributed grep. With `-D pattern=STR`, every input line holding the literal bytes
//! `STR` becomes one output line `FILE:OFFSET<TAB>LINE`: the base name of the line's file, the
//! byte offset of the line's start in it, and the line without its `\n` or `\r\n`. The pattern is
//! a job parameter, so every task of the job, on any worker, greps for the same one. The user
//! counter `grep.matches` counts the matching lines. With `--reducers 0` it runs map-only: each
//! map writes its matches, in input order, to its own `part-m-NNNNN`.

use quern_sdk::{Emitter, JobDef, JobError, Mapper, Output, Params, Reducer};

/// The name `quern run` and `quern submit` know this job by.
pub const NAME: &str = "grep";
/// The user counter of matching lines.
pub const MATCHES: &str = "grep.matches";

/// Emits each matching line under its `FILE:OFFSET`, which is unique, so each key has one value.
pub struct GrepMapper {
    pattern: memchr::memmem::Finder<'static>,
}

impl Mapper for GrepMapper {
    type Key = String;
    type Value = Vec<u8>;
    fn map(
        &self,
        offset: u64,
        line: &[u8],
        out: &mut Emitter<'_, String, Vec<u8>>,
    ) -> Result<(), JobError> {
        if self.pattern.find(line).is_none() {
            return Ok(());
        }
        out.context().counter(MATCHES).increment();
        let file = out.context().input.as_ref().map_or("", |i| i.file_name());
        let key = format!("{file}:{offset}");
        out.emit(&key, &line.to_vec())
    }
}

/// Writes every matching line under its location.
pub struct LinesReducer;

impl Reducer for LinesReducer {
    type Key = String;
    type Value = Vec<u8>;
    type OutKey = String;
    type OutValue = Vec<u8>;
    fn reduce(
        &self,
        key: String,
        values: &mut dyn Iterator<Item = Vec<u8>>,
        out: &mut Output<'_, String, Vec<u8>>,
    ) -> Result<(), JobError> {
        for line in values {
            out.write(&key, &line);
        }
        Ok(())
    }
}

/// The job, for the pattern in `params`; an error names the parameter if it is missing or empty.
pub fn job(params: &Params) -> Result<JobDef<GrepMapper, LinesReducer>, JobError> {
    let pattern = params.require("pattern")?;
    if pattern.is_empty() {
        return Err(JobError::Param(
            "job parameter 'pattern' is empty: every line would match".into(),
        ));
    }
    let mapper = GrepMapper {
        pattern: memchr::memmem::Finder::new(pattern.as_bytes()).into_owned(),
    };
    Ok(JobDef::new(NAME, mapper, LinesReducer).runs_map_only())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grep_keeps_the_lines_holding_the_pattern_with_their_offsets() {
        let params = Params::new([("pattern".to_string(), "ov".to_string())]);
        let job = job(&params).unwrap();
        let parts = quern_sdk::local::run_job(&job, b"love\nhate\r\nabove all\n", 1).unwrap();
        assert_eq!(
            String::from_utf8(parts.concat()).unwrap(),
            ":0\tlove\n:11\tabove all\n"
        );
        assert!(super::job(&Params::default()).is_err());
    }
}
