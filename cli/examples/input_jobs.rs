//! A job that reads its input other than as lines, as a template and for the input-format
//! end-to-end tests (`tests/input_formats.rs`).
//!
//! `recordsizes` writes, for each input file, how many records it holds and their bytes:
//! `NAME<TAB>RECORDS BYTES`. `-D format=whole-file` (the default) reads each file as one record,
//! so its line gives the file's (decompressed) size; `-D format=length-delimited` reads records
//! of a 4-byte big-endian length and that many bytes; `-D format=lines` reads lines.
//!
//! `cargo run -p quern --example input_jobs -- run recordsizes --input DIR --output OUT`

use quern_sdk::{
    Emitter, InputFormat, JobDef, JobError, Mapper, Output, Params, Reducer, TaskContext,
};

/// Emits `(file name, (1, record bytes))` for every record.
struct RecordSizes;

impl Mapper for RecordSizes {
    type Key = String;
    type Value = (u64, u64);
    fn map(
        &self,
        _offset: u64,
        record: &[u8],
        out: &mut Emitter<'_, String, (u64, u64)>,
    ) -> Result<(), JobError> {
        let context: &TaskContext = out.context();
        let name = context.input.as_ref().map_or("", |i| i.file_name());
        let name = name.to_string();
        out.emit(&name, &(1, record.len() as u64))
    }
}

/// Sums a file's records and bytes.
struct Totals;

impl Reducer for Totals {
    type Key = String;
    type Value = (u64, u64);
    type OutKey = String;
    type OutValue = String;
    fn reduce(
        &self,
        name: String,
        values: &mut dyn Iterator<Item = (u64, u64)>,
        out: &mut Output<'_, String, String>,
    ) -> Result<(), JobError> {
        let (records, bytes) = values.fold((0, 0), |(r, b), (n, len)| (r + n, b + len));
        out.write(&name, &format!("{records} {bytes}"));
        Ok(())
    }
}

/// The job, reading its input as `-D format=…` says.
fn record_sizes(params: &Params) -> Result<JobDef<RecordSizes, Totals>, JobError> {
    let format = match params.get("format").unwrap_or("whole-file") {
        "whole-file" => InputFormat::WholeFile,
        "length-delimited" => InputFormat::LengthDelimited,
        "lines" => InputFormat::Lines,
        other => {
            return Err(JobError::Param(format!(
                "job parameter format='{other}' is not whole-file, length-delimited or lines"
            )));
        }
    };
    Ok(JobDef::new("recordsizes", RecordSizes, Totals).input(format))
}

fn main() -> std::process::ExitCode {
    let mut jobs = quern_examples::registry();
    jobs.register_factory("recordsizes", record_sizes);
    quern::main_with(jobs)
}
