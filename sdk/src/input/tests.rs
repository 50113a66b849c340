//! The built-in record formats, read from plain bytes as a worker hands them over.

use super::*;
use std::io::{BufReader, Read};

fn input(bytes: &[u8], size: Option<u64>, max_record: u64) -> RecordInput<'_> {
    RecordInput {
        bytes: Box::new(bytes),
        url: "file:///in/data".to_string(),
        size,
        max_record,
    }
}

fn records(format: &InputFormat, input: RecordInput<'_>) -> Result<Vec<(u64, Vec<u8>)>, JobError> {
    let reader = format.reader().expect("a whole-file format");
    let mut source = reader.open(input)?;
    let mut out = Vec::new();
    while let Some((offset, record)) = source.next_record()? {
        out.push((offset, record.to_vec()));
    }
    Ok(out)
}

/// Records framed with a 4-byte big-endian length, written here independently of the reader.
fn framed(records: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for record in records {
        out.extend_from_slice(&(record.len() as u32).to_be_bytes());
        out.extend_from_slice(record);
    }
    out
}

fn cause(e: &JobError) -> String {
    std::error::Error::source(e).map_or(String::new(), |cause| {
        let mut text = cause.to_string();
        if let Some(deeper) = cause.source() {
            text = format!("{text}: {deeper}");
        }
        text
    })
}

#[test]
fn a_whole_file_is_one_record_at_offset_zero() {
    let text = b"line one\r\nline two\nno newline";
    let got = records(
        &InputFormat::WholeFile,
        input(text, Some(text.len() as u64), 100),
    );
    assert_eq!(got.unwrap(), [(0, text.to_vec())]);
}

#[test]
fn a_whole_file_over_the_limit_fails_naming_it_and_its_size() {
    let text = [b'x'; 20];
    let err = records(&InputFormat::WholeFile, input(&text, Some(20), 10)).unwrap_err();
    assert_eq!(
        cause(&err),
        "file:///in/data is 20 bytes, over the 10-byte record limit (--max-line)"
    );
    // Of unknown size (compressed): read one byte past the limit, and no further.
    let err = records(&InputFormat::WholeFile, input(&text, None, 10)).unwrap_err();
    assert_eq!(
        cause(&err),
        "file:///in/data is more than 10 bytes, over the 10-byte record limit (--max-line)"
    );
    let exact = records(&InputFormat::WholeFile, input(&text, None, 20)).unwrap();
    assert_eq!(exact, [(0, text.to_vec())]);
}

#[test]
fn length_delimited_records_come_at_the_offsets_of_their_lengths() {
    let data = framed(&[b"alpha", b"", b"a record\nwith a newline", b"z"]);
    // Read a few bytes at a time, as a decompressor hands them out.
    let bytes = BufReader::with_capacity(3, data.as_slice());
    let got = records(
        &InputFormat::LengthDelimited,
        RecordInput {
            bytes: Box::new(bytes),
            ..input(&[], None, 100)
        },
    )
    .unwrap();
    assert_eq!(
        got,
        [
            (0, b"alpha".to_vec()),
            (9, Vec::new()),
            (13, b"a record\nwith a newline".to_vec()),
            (40, b"z".to_vec()),
        ]
    );
    assert!(
        records(&InputFormat::LengthDelimited, input(&[], None, 100))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_length_delimited_record_over_the_limit_or_cut_short_fails_naming_where() {
    let data = framed(&[b"ok", b"far too long a record"]);
    let err = records(&InputFormat::LengthDelimited, input(&data, None, 10)).unwrap_err();
    assert_eq!(
        cause(&err),
        "the record at byte 6 of file:///in/data is 21 bytes, over the 10-byte limit (--max-line)"
    );
    let err = records(&InputFormat::LengthDelimited, input(&data[..20], None, 100)).unwrap_err();
    assert_eq!(
        cause(&err),
        "file:///in/data is not valid length-delimited records: the record at byte 6 is 21 \
         bytes long, but the file ends 10 bytes into it"
    );
    let err = records(&InputFormat::LengthDelimited, input(&data[..8], None, 100)).unwrap_err();
    assert_eq!(
        cause(&err),
        "file:///in/data is not valid length-delimited records: the file ends 2 bytes into the \
         length of a record at byte 6"
    );
}

/// Bytes that fail with the engine's error after a few good ones, as a storage read does.
struct FailsAfter<'a>(&'a [u8]);

impl Read for FailsAfter<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.0.is_empty() {
            return Err(std::io::Error::other(JobError::user("storage went away")));
        }
        self.0.read(buf)
    }
}

#[test]
fn a_read_error_comes_back_as_the_engines_own_error() {
    let data = framed(&[b"first", b"second"]);
    let got = records(
        &InputFormat::LengthDelimited,
        RecordInput {
            bytes: Box::new(BufReader::new(FailsAfter(&data[..12]))),
            ..input(&[], None, 100)
        },
    );
    assert!(
        matches!(&got, Err(JobError::User(m)) if m == "storage went away"),
        "{got:?}"
    );
}

#[test]
fn only_lines_are_split_and_formats_name_themselves() {
    struct Mine;
    impl RecordFormat for Mine {
        fn name(&self) -> &str {
            "mine"
        }
        fn open<'a>(&self, _: RecordInput<'a>) -> Result<Box<dyn RecordSource + 'a>, JobError> {
            Err(JobError::user("not used"))
        }
    }
    let formats = [
        InputFormat::Lines,
        InputFormat::WholeFile,
        InputFormat::LengthDelimited,
        InputFormat::custom(Mine),
    ];
    let names: Vec<_> = formats.iter().map(|f| format!("{f:?}")).collect();
    assert_eq!(names, ["lines", "whole-file", "length-delimited", "mine"]);
    let split: Vec<_> = formats.iter().map(InputFormat::splits_objects).collect();
    assert_eq!(split, [true, false, false, false]);
    assert!(InputFormat::Lines.reader().is_none());
}
