//! Compressed input and the record formats, read through a map's records as a worker reads
//! them: chunks of the object's bytes in, records and counts out. Expected records are computed
//! here from the plain text, and compressed copies written with the encoders' own crates.

use super::*;
use crate::error::TaskError;
use bytes::Bytes;
use quern_proto::FailureKind;
use quern_storage::StorageError;
use std::io::Write as _;

const TEXT: &[u8] = b"first line\r\nsecond\n\nfourth, the longest line here\nno newline";

fn gzip(text: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(text).unwrap();
    encoder.finish().unwrap()
}

fn zstd(text: &[u8]) -> Vec<u8> {
    zstd::encode_all(text, 3).unwrap()
}

/// The whole of the object `name`, `size` bytes, as the coordinator splits one read whole.
fn whole(name: &str, size: usize) -> MapSplit {
    MapSplit {
        url: format!("file:///in/{name}"),
        start: 0,
        end: size as u64,
        object_size: size as u64,
        ..MapSplit::default()
    }
}

/// `bytes` delivered in chunks of `chunk` bytes.
fn chunks(bytes: &[u8], chunk: usize) -> Chunks {
    let pieces: Vec<Result<Bytes, JobError>> = bytes
        .chunks(chunk)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Box::new(pieces.into_iter())
}

fn open(name: &str, bytes: &[u8], format: &InputFormat, limit: u64, chunk: usize) -> SplitRecords {
    SplitRecords::open(
        &whole(name, bytes.len()),
        format,
        limit,
        chunks(bytes, chunk),
    )
    .unwrap()
}

/// Every record of `records`, or the first error.
fn read_all(records: &mut SplitRecords) -> Result<Vec<(u64, Vec<u8>)>, JobError> {
    let mut out = Vec::new();
    while let Some((offset, record)) = records.next_record()? {
        out.push((offset, record.to_vec()));
    }
    Ok(out)
}

/// The lines of `text` with their offsets, as the line rules say: computed directly.
fn lines_of(text: &[u8]) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut offset = 0;
    for piece in text.split_inclusive(|&b| b == b'\n') {
        let line = piece.strip_suffix(b"\n").unwrap_or(piece);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        out.push((offset as u64, line.to_vec()));
        offset += piece.len();
    }
    out
}

/// The error's text as a task report shows it, and how the coordinator takes it.
fn reported(e: JobError) -> (String, FailureKind) {
    let error = TaskError::Job(e);
    (quern_proto::error_chain(&error), error.failure_kind())
}

#[test]
fn gzip_and_zstd_objects_read_as_the_lines_of_their_text_at_decompressed_offsets() {
    let two_members = [gzip(&TEXT[..15]), gzip(&TEXT[15..])].concat();
    let two_frames = [zstd(&TEXT[..30]), zstd(&TEXT[30..])].concat();
    let objects = [
        ("a.gz", gzip(TEXT)),
        ("members.gz", two_members),
        ("a.zst", zstd(TEXT)),
        ("frames.zst", two_frames),
    ];
    for (name, bytes) in &objects {
        for chunk in [1, 7, 4096] {
            let mut records = open(name, bytes, &InputFormat::Lines, 1 << 20, chunk);
            assert_eq!(
                read_all(&mut records).unwrap(),
                lines_of(TEXT),
                "{name} in chunks of {chunk}"
            );
            assert_eq!(records.records_read(), 5);
            // The compressed bytes read, not the text's.
            assert_eq!(records.bytes_read(), bytes.len() as u64, "{name}");
        }
    }
}

#[test]
fn a_long_line_in_a_compressed_object_fails_naming_it_and_the_decompressed_offset() {
    let mut records = open("a.gz", &gzip(TEXT), &InputFormat::Lines, 20, 5);
    let (text, kind) = reported(read_all(&mut records).unwrap_err());
    assert_eq!(
        text,
        "cannot read the input: a line at byte 20 of file:///in/a.gz is longer than the 20-byte \
         limit"
    );
    assert_eq!(kind, FailureKind::Fatal);
}

#[test]
fn a_corrupt_compressed_object_fails_the_job_naming_it() {
    let gz = gzip(TEXT);
    let zst = zstd(TEXT);
    let mut flipped = gz.clone();
    flipped[15] ^= 0xff;
    let cases: [(&str, &[u8]); 5] = [
        ("not-gzip.gz", b"plain text, not gzip\n"),
        ("truncated.gz", &gz[..gz.len() - 12]),
        ("flipped.gz", &flipped),
        ("not-zstd.zst", b"plain text, not zstd\n"),
        ("truncated.zst", &zst[..zst.len() - 5]),
    ];
    for (name, bytes) in cases {
        let mut records = open(name, bytes, &InputFormat::Lines, 1 << 20, 4);
        let (text, kind) = reported(read_all(&mut records).unwrap_err());
        let format = if name.ends_with(".gz") {
            "gzip"
        } else {
            "zstd"
        };
        assert!(
            text.starts_with(&format!(
                "cannot read the input: file:///in/{name} is not valid {format}: "
            )),
            "{name}: {text}"
        );
        assert_eq!(kind, FailureKind::Fatal, "{name}");
    }
}

#[test]
fn a_storage_error_under_a_decoder_is_reported_as_itself() {
    let gz = gzip(TEXT);
    let changed = StorageError::InputChanged {
        url: "file:///in/a.gz".into(),
        reason: "it was replaced".into(),
    };
    let pieces: Vec<Result<Bytes, JobError>> = vec![
        Ok(Bytes::copy_from_slice(&gz[..10])),
        Err(JobError::Input(Box::new(changed))),
    ];
    let mut records = SplitRecords::open(
        &whole("a.gz", gz.len()),
        &InputFormat::Lines,
        1 << 20,
        Box::new(pieces.into_iter()),
    )
    .unwrap();
    let (text, kind) = reported(read_all(&mut records).unwrap_err());
    assert_eq!(
        text,
        "cannot read the input: input file:///in/a.gz changed after the job was submitted: it \
         was replaced"
    );
    assert_eq!(kind, FailureKind::Fatal);
}

#[test]
fn a_whole_file_is_one_record_plain_or_compressed() {
    for (name, bytes) in [("a.txt", TEXT.to_vec()), ("a.txt.gz", gzip(TEXT))] {
        let mut records = open(name, &bytes, &InputFormat::WholeFile, 1 << 20, 3);
        assert_eq!(read_all(&mut records).unwrap(), [(0, TEXT.to_vec())]);
        assert_eq!(records.records_read(), 1);
        assert_eq!(records.bytes_read(), bytes.len() as u64);
    }
}

#[test]
fn a_whole_file_over_the_limit_fails_naming_it_and_its_size() {
    let limit = 10;
    let mut records = open("a.txt", TEXT, &InputFormat::WholeFile, limit, 3);
    let (text, kind) = reported(read_all(&mut records).unwrap_err());
    assert_eq!(
        text,
        format!(
            "cannot read the input: file:///in/a.txt is {} bytes, over the 10-byte record limit \
             (--max-line)",
            TEXT.len()
        )
    );
    assert_eq!(kind, FailureKind::Fatal);
    let mut records = open("a.zst", &zstd(TEXT), &InputFormat::WholeFile, limit, 3);
    let (text, _) = reported(read_all(&mut records).unwrap_err());
    assert_eq!(
        text,
        "cannot read the input: file:///in/a.zst is more than 10 bytes, over the 10-byte record \
         limit (--max-line)"
    );
}

#[test]
fn length_delimited_records_read_plain_or_compressed() {
    let records_in: [&[u8]; 3] = [b"one", b"", b"three\nwith a newline"];
    let mut framed = Vec::new();
    let mut expected = Vec::new();
    for record in records_in {
        expected.push((framed.len() as u64, record.to_vec()));
        framed.extend_from_slice(&(record.len() as u32).to_be_bytes());
        framed.extend_from_slice(record);
    }
    for (name, bytes) in [("r.bin", framed.clone()), ("r.bin.zst", zstd(&framed))] {
        let mut records = open(name, &bytes, &InputFormat::LengthDelimited, 1 << 20, 2);
        assert_eq!(read_all(&mut records).unwrap(), expected, "{name}");
        assert_eq!(records.records_read(), 3);
    }
}

#[test]
fn part_of_an_object_read_whole_is_refused() {
    let gz = gzip(TEXT);
    let split = MapSplit {
        end: 10,
        ..whole("a.gz", gz.len())
    };
    let refused = SplitRecords::open(&split, &InputFormat::Lines, 1 << 20, chunks(&gz, 4));
    let (text, kind) = reported(refused.err().expect("refused"));
    assert_eq!(
        text,
        format!(
            "cannot read the input: the task was given bytes 0..10 of file:///in/a.gz ({} \
             bytes), but a gzip file is read whole; submit the job with a client that knows it",
            gz.len()
        )
    );
    assert_eq!(kind, FailureKind::Fatal);
    let split = MapSplit {
        start: 5,
        ..whole("a.txt", TEXT.len())
    };
    let refused = SplitRecords::open(&split, &InputFormat::WholeFile, 1 << 20, chunks(TEXT, 4));
    assert!(refused.is_err());
}

#[test]
fn a_plain_split_of_lines_counts_the_bytes_of_its_own_lines() {
    let split = MapSplit {
        start: 12,
        end: 20,
        ..whole("a.txt", TEXT.len())
    };
    let mut records =
        SplitRecords::open(&split, &InputFormat::Lines, 1 << 20, chunks(&TEXT[11..], 4)).unwrap();
    assert_eq!(
        read_all(&mut records).unwrap(),
        [(12, b"second".to_vec()), (19, Vec::new())]
    );
    assert_eq!((records.records_read(), records.bytes_read()), (2, 8));
}
