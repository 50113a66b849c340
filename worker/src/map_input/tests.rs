//! A map's records over one object and over a packed split, from chunks as the reader hands
//! them: each object's records in order with its own offsets, the context naming each record's
//! object, the counts summed over the objects.

use super::*;
use bytes::Bytes;
use std::io::Write as _;

/// The whole of the object `name`, `bytes` long, as the coordinator packs it.
fn whole(name: &str, bytes: &[u8]) -> MapSplit {
    MapSplit {
        url: format!("file:///in/{name}"),
        start: 0,
        end: bytes.len() as u64,
        object_size: bytes.len() as u64,
        ..MapSplit::default()
    }
}

fn gzip(text: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(text).unwrap();
    encoder.finish().unwrap()
}

/// Records of `objects` (name, bytes) read as one map, each delivered in 3-byte chunks, with
/// the line limit `limit`; and the input as job code sees it.
fn open(objects: &[(&str, Vec<u8>)], limit: u64) -> (MapRecords, MapInput) {
    let splits: Vec<MapSplit> = objects.iter().map(|(n, b)| whole(n, b)).collect();
    let assignment = Assignment {
        packed: splits.clone(),
        ..Assignment::default()
    };
    let input = map_input(&assignment).unwrap();
    let mut bodies = objects
        .iter()
        .map(|(_, b)| b.clone())
        .collect::<Vec<_>>()
        .into_iter();
    let chunks = move || {
        let body = bodies.next()?;
        let pieces: Vec<Result<Bytes, JobError>> = body
            .chunks(3)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        Some(Box::new(pieces.into_iter()) as Chunks)
    };
    let records = MapRecords::open(
        splits,
        &InputFormat::Lines,
        limit,
        Box::new(chunks),
        Some(input.cursor()),
    )
    .unwrap();
    (records, input)
}

/// Every record with the file name job code sees while mapping it.
fn read_all(
    records: &mut MapRecords,
    input: &MapInput,
) -> Result<Vec<(String, u64, String)>, JobError> {
    let mut out = Vec::new();
    while let Some((offset, record)) = records.next_record()? {
        let text = String::from_utf8_lossy(record).into_owned();
        out.push((input.file_name().to_string(), offset, text));
    }
    Ok(out)
}

#[test]
fn a_packed_split_reads_each_object_whole_in_turn_and_names_it() {
    let objects = [
        ("a.txt", b"to be\nor not".to_vec()),
        ("b.txt.gz", gzip(b"that is\r\n")),
        ("c.txt", b"\nthe question\n".to_vec()),
    ];
    let (mut records, input) = open(&objects, u64::MAX);
    let expected = [
        ("a.txt", 0, "to be"),
        ("a.txt", 6, "or not"),
        ("b.txt.gz", 0, "that is"),
        ("c.txt", 0, ""),
        ("c.txt", 1, "the question"),
    ];
    let expected: Vec<_> = expected
        .iter()
        .map(|(n, o, t)| (n.to_string(), *o, t.to_string()))
        .collect();
    assert_eq!(read_all(&mut records, &input).unwrap(), expected);
    assert_eq!(records.records_read(), 5);
    // Each object's bytes as a split of its own counts them: a compressed one's stored bytes.
    let stored: usize = objects.iter().map(|(_, b)| b.len()).sum();
    assert_eq!(records.bytes_read(), stored as u64);
    assert_eq!(records.next_record().unwrap(), None);
}

#[test]
fn a_line_over_the_limit_in_a_packed_object_names_that_object() {
    let objects = [
        ("short.txt", b"ok\n".to_vec()),
        ("long.txt", b"a line longer than ten\n".to_vec()),
    ];
    let (mut records, input) = open(&objects, 10);
    let error = read_all(&mut records, &input).unwrap_err();
    let cause = std::error::Error::source(&error).unwrap().to_string();
    assert_eq!(
        cause,
        "a line at byte 0 of file:///in/long.txt is longer than the 10-byte limit"
    );
}

#[test]
fn a_reader_that_stopped_ends_the_records() {
    let splits = vec![whole("a.txt", b"x\n"), whole("b.txt", b"y\n")];
    let records = MapRecords::open(
        splits,
        &InputFormat::Lines,
        u64::MAX,
        Box::new(|| None),
        None,
    );
    let mut records = records.unwrap();
    assert_eq!(records.next_record().unwrap(), None);
    assert_eq!((records.records_read(), records.bytes_read()), (0, 0));
}

#[test]
fn one_object_is_read_as_a_split_of_its_own() {
    let objects = [("a.txt", b"to be\nor not\n".to_vec())];
    let (mut records, input) = open(&objects, u64::MAX);
    let expected = vec![
        ("a.txt".to_string(), 0, "to be".to_string()),
        ("a.txt".to_string(), 6, "or not".to_string()),
    ];
    assert_eq!(read_all(&mut records, &input).unwrap(), expected);
    assert_eq!((records.records_read(), records.bytes_read()), (2, 13));
}
