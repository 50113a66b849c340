//! Input formats end to end, on real processes: word count over a directory of plain, gzip
//! (multi-member too) and zstd copies of the corpus, on a two-worker cluster, against counts
//! computed here on the uncompressed text; and a job that reads each file whole, or as
//! length-delimited records (`cli/examples/input_jobs.rs`), against sizes computed here. The
//! compressed copies are written here with flate2 and zstd.

mod common;

use common::watch::{self, summary_counter, summary_value};
use common::*;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Output;

fn gzip(text: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(text).unwrap();
    encoder.finish().unwrap()
}

fn zstd(text: &[u8]) -> Vec<u8> {
    zstd::encode_all(text, 1).unwrap()
}

/// The corpus books in `dir`, each once: in turn plain, gzip (the first of them as two
/// concatenated members, as `cat a.gz b.gz` makes) and zstd.
fn mixed_corpus(dir: &Path) {
    let mut books: Vec<PathBuf> = std::fs::read_dir(corpus())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    books.sort();
    for (i, book) in books.iter().enumerate() {
        let text = std::fs::read(book).unwrap();
        let name = book.file_name().unwrap().to_str().unwrap();
        let (name, bytes) = match i % 3 {
            0 => (name.to_string(), text),
            1 if i == 1 => {
                let half = text.len() / 2;
                let members = [gzip(&text[..half]), gzip(&text[half..])].concat();
                (format!("{name}.gz"), members)
            }
            1 => (format!("{name}.gz"), gzip(&text)),
            _ => (format!("{name}.zst"), zstd(&text)),
        };
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

fn size_of_files(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

#[test]
fn word_count_over_plain_gzip_and_zstd_books_matches_the_uncompressed_count() {
    let cluster = Cluster::start(2, 2);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    mixed_corpus(&input);
    let output = dir.path().join("wc");
    let run = quern(&submit_wordcount(
        &cluster.address,
        input.to_str().unwrap(),
        output.to_str().unwrap(),
        &["--reducers", "2", "--split-size", "128KiB", "--wait"],
    ));
    assert!(run.status.success(), "submit failed: {}", stderr(&run));
    assert_eq!(read_output(&output, 2), expected_counts(&corpus()));
    // Every line of every book is read once; the bytes read are those stored, compressed.
    let summary = stdout(&run);
    assert_eq!(summary_counter(&summary, "input:"), watch::lines(&corpus()));
    assert_eq!(
        summary_value(&summary, "input:", "bytes"),
        size_of_files(&input),
        "{summary}"
    );
}

/// `recordsizes` output: file name → (records, bytes).
fn read_sizes(output: &Path) -> BTreeMap<String, (u64, u64)> {
    read_part_lines(output, 1)
        .into_iter()
        .map(|line| {
            let line = String::from_utf8(line).unwrap();
            let (name, counts) = line.split_once('\t').unwrap();
            let (records, bytes) = counts.split_once(' ').unwrap();
            (
                name.to_string(),
                (records.parse().unwrap(), bytes.parse().unwrap()),
            )
        })
        .collect()
}

/// `recordsizes` over `input` with `-D format=FORMAT` and `extra` flags, submitted with the
/// example binary to the cluster at `address`.
fn record_sizes(
    jobs: &Path,
    address: &str,
    input: &Path,
    output: &Path,
    format: &str,
    extra: &[&str],
) -> Output {
    let mut args = submit_wordcount(
        address,
        input.to_str().unwrap(),
        output.to_str().unwrap(),
        &["--wait", "--split-size", "1000", "-D"],
    );
    args[1] = "recordsizes";
    let format = format!("format={format}");
    args.push(&format);
    args.extend_from_slice(extra);
    std::process::Command::new(jobs)
        .args(&args)
        .output()
        .unwrap()
}

/// Length-delimited records (a 4-byte big-endian length, then the bytes), framed here.
fn framed(records: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for record in records {
        out.extend_from_slice(&(record.len() as u32).to_be_bytes());
        out.extend_from_slice(record);
    }
    out
}

#[test]
fn whole_files_and_length_delimited_records_reach_the_mapper_whole() {
    let jobs = example_binary("input_jobs");
    let mut cluster = Cluster::start(0, 2);
    cluster.worker_binary = jobs.clone();
    cluster.add_worker(2);
    cluster.add_worker(2);
    cluster.wait_for_ready_workers(2);
    let dir = tempfile::tempdir().unwrap();

    // Files far larger than the 1000-byte split size each reach one map, whole.
    let whole = dir.path().join("whole");
    std::fs::create_dir(&whole).unwrap();
    let book = std::fs::read(corpus().join("pg-metamorphosis.txt")).unwrap();
    let small = b"a small file\r\nof two lines, no newline at the end".to_vec();
    std::fs::write(whole.join("book.txt"), &book).unwrap();
    std::fs::write(whole.join("book.txt.gz"), gzip(&book)).unwrap();
    std::fs::write(whole.join("small.zst"), zstd(&small)).unwrap();
    let output = dir.path().join("whole-out");
    let run = record_sizes(&jobs, &cluster.address, &whole, &output, "whole-file", &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    let expected = BTreeMap::from([
        ("book.txt".to_string(), (1, book.len() as u64)),
        ("book.txt.gz".to_string(), (1, book.len() as u64)),
        ("small.zst".to_string(), (1, small.len() as u64)),
    ]);
    assert_eq!(read_sizes(&output), expected);

    // A whole file over --max-line fails the job at once, naming the file and its size. It is
    // the only file there: with two, which task fails first is a race.
    let big = dir.path().join("big");
    std::fs::create_dir(&big).unwrap();
    std::fs::write(big.join("book.txt"), &book).unwrap();
    let run = record_sizes(
        &jobs,
        &cluster.address,
        &big,
        &dir.path().join("too-large"),
        "whole-file",
        &["--max-line", "100000"],
    );
    assert!(!run.status.success());
    let said = format!("{}{}", stdout(&run), stderr(&run));
    let url = format!("file://{}", big.join("book.txt").display());
    assert!(
        said.contains(&format!(
            "{url} is {} bytes, over the 100000-byte record limit (--max-line)",
            book.len()
        )),
        "{said}"
    );

    // Length-delimited records, plain and compressed, with newlines inside records.
    let records: Vec<Vec<u8>> = (0..500)
        .map(|i| format!("record {i}\n").repeat(i % 7).into_bytes())
        .collect();
    let delimited = dir.path().join("delimited");
    std::fs::create_dir(&delimited).unwrap();
    std::fs::write(delimited.join("r.bin"), framed(&records)).unwrap();
    std::fs::write(delimited.join("r.bin.zst"), zstd(&framed(&records[..100]))).unwrap();
    let output = dir.path().join("delimited-out");
    let run = record_sizes(
        &jobs,
        &cluster.address,
        &delimited,
        &output,
        "length-delimited",
        &[],
    );
    assert!(run.status.success(), "{}", stderr(&run));
    let bytes = |records: &[Vec<u8>]| records.iter().map(|r| r.len() as u64).sum::<u64>();
    let expected = BTreeMap::from([
        ("r.bin".to_string(), (500, bytes(&records))),
        ("r.bin.zst".to_string(), (100, bytes(&records[..100]))),
    ]);
    assert_eq!(read_sizes(&output), expected);
}

#[test]
fn a_corrupt_gzip_input_fails_the_job_naming_it() {
    let cluster = Cluster::start(1, 2);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    std::fs::write(input.join("good.txt"), "some words\n").unwrap();
    let mut bad = gzip(b"words that will not be read\n");
    bad.truncate(bad.len() - 10);
    std::fs::write(input.join("bad.txt.gz"), bad).unwrap();
    let run = quern(&submit_wordcount(
        &cluster.address,
        input.to_str().unwrap(),
        dir.path().join("out").to_str().unwrap(),
        &["--wait"],
    ));
    assert!(!run.status.success());
    let said = format!("{}{}", stdout(&run), stderr(&run));
    let url = format!("file://{}", input.join("bad.txt.gz").display());
    assert!(said.contains(&format!("{url} is not valid gzip")), "{said}");
}
