//! Many small input files share map tasks, packed whole up to the split size in listing order
//! (as Hadoop's `CombineFileInputFormat` packs them), and every result is exactly what it would
//! be with a task per file: word count's counts and input counters, grep's file names and
//! per-file offsets, map-only included. Expected results are worked out here from the files the
//! test writes. (Issue 11, item 4.)

mod common;

use common::watch::{self, summary_counter, summary_value};
use common::*;
use quern_testkit::S3Server;
use std::path::Path;

/// Writes `count` small files `f-NNNN.txt` into `dir`: a few lines each of words from a small
/// vocabulary (so words recur across files), some lines ending in `\r\n`, some files without a
/// final newline, and one empty. Returns each file's size, in name order.
fn write_small_files(dir: &Path, count: usize) -> Vec<u64> {
    const WORDS: [&str; 12] = [
        "love", "quern", "mill", "grain", "stone", "river", "lovely", "wheel", "flour", "water",
        "ĉu", "x",
    ];
    std::fs::create_dir(dir).unwrap();
    let mut seed: u64 = 7;
    let mut next = |n: usize| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as usize % n
    };
    let mut sizes = Vec::new();
    for i in 0..count {
        let mut text = String::new();
        let lines = if i == 17 { 0 } else { 1 + next(6) };
        for line in 0..lines {
            let words: Vec<&str> = (0..1 + next(8)).map(|_| WORDS[next(WORDS.len())]).collect();
            text += &words.join(" ");
            let last = line + 1 == lines;
            text += match (last && i % 10 == 3, i % 4 == 1) {
                (true, _) => "",
                (false, true) => "\r\n",
                (false, false) => "\n",
            };
        }
        std::fs::write(dir.join(format!("f-{i:04}.txt")), &text).unwrap();
        sizes.push(text.len() as u64);
    }
    sizes
}

/// How many map tasks files of `sizes` (in listing order, all under `split`) make when packed
/// whole: a pack takes files while their bytes stay within the split size; empty files none.
fn packs(sizes: &[u64], split: u64) -> u64 {
    let (mut packs, mut bytes) = (0, 0);
    for &size in sizes.iter().filter(|&&s| s > 0) {
        if packs == 0 || bytes + size > split {
            packs += 1;
            bytes = 0;
        }
        bytes += size;
    }
    packs
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Word count over 300 small files on a real cluster: a few map tasks instead of 300, and the
/// counts, records and bytes exactly those of the files.
#[test]
fn hundreds_of_small_files_share_few_map_tasks_and_count_exactly() {
    let cluster = Cluster::start(2, 2);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    let sizes = write_small_files(&input, 300);
    let output = dir.path().join("out");
    let extra = ["--reducers", "2", "--split-size", "4KiB", "--wait"];
    let run = quern(&submit_wordcount(
        &cluster.address,
        path(&input),
        path(&output),
        &extra,
    ));
    assert!(run.status.success(), "{}", stderr(&run));
    let summary = stdout(&run);
    assert_eq!(read_output(&output, 2), expected_counts(&input));
    let maps = summary_counter(&summary, "tasks:");
    assert_eq!(maps, packs(&sizes, 4096), "{summary}");
    assert!((2..30).contains(&maps), "{maps} map tasks for 300 files");
    assert_eq!(summary_counter(&summary, "input:"), watch::lines(&input));
    let bytes: u64 = sizes.iter().sum();
    assert_eq!(summary_value(&summary, "input:", "bytes"), bytes);
}

/// Map-only grep over packed small files: each match names its own file and its offset in that
/// file, whichever task read it, and each map's part holds its pack's matches.
#[test]
fn grep_over_packed_small_files_names_each_lines_own_file_and_offset() {
    let cluster = Cluster::start(2, 1);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    let sizes = write_small_files(&input, 200);
    let output = dir.path().join("out");
    let mut args = submit_wordcount(
        &cluster.address,
        path(&input),
        path(&output),
        &[
            "-D",
            "pattern=love",
            "--reducers",
            "0",
            "--split-size",
            "2KiB",
            "--wait",
        ],
    );
    args[1] = "grep";
    let run = quern(&args);
    assert!(run.status.success(), "{}", stderr(&run));
    let maps = summary_counter(&stdout(&run), "tasks:");
    assert_eq!(maps, packs(&sizes, 2048));
    assert!(maps < 50, "{maps} map tasks for 200 files");
    let expected = grep_lines(&input, b"love");
    assert!(expected.len() > 200, "{}", expected.len());
    assert_eq!(read_part_lines(&output, 0), expected);
}

/// Small objects under an S3 prefix are packed too, read ahead in turn by the worker's reader
/// task (local files are read on the mapper's thread instead): counts and bytes exact.
#[test]
fn small_s3_objects_share_map_tasks_and_count_exactly() {
    let server = S3Server::start();
    server.create_bucket("small");
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    let sizes = write_small_files(&input, 120);
    for entry in std::fs::read_dir(&input).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        server.put_file(
            "small",
            &format!("in/{name}"),
            &std::fs::read(&path).unwrap(),
        );
    }
    let cluster = Cluster::start_with_env(server.env(), 2, 2, &[]);
    let output = dir.path().join("out");
    let extra = ["--reducers", "2", "--split-size", "4KiB", "--wait"];
    let run = quern_with_env(
        &submit_wordcount(&cluster.address, "s3://small/in/", path(&output), &extra),
        &cluster.env,
    );
    assert!(run.status.success(), "{}", stderr(&run));
    let summary = stdout(&run);
    assert_eq!(read_output(&output, 2), expected_counts(&input));
    // The empty file is not uploaded as an object to pack: S3 listing skips zero-byte keys.
    let maps = summary_counter(&summary, "tasks:");
    assert_eq!(maps, packs(&sizes, 4096), "{summary}");
    assert!(maps < 20, "{maps} map tasks for 120 objects");
    let bytes: u64 = sizes.iter().sum();
    assert_eq!(summary_value(&summary, "input:", "bytes"), bytes);
}

/// `sort` in total order over packed small files: its sample tasks read the start of packs, and
/// the parts concatenated are every line of every file sorted bytewise.
#[test]
fn sort_over_packed_small_files_samples_the_packs_and_sorts_every_line() {
    let cluster = Cluster::start(2, 2);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    write_small_files(&input, 250);
    let output = dir.path().join("out");
    let mut args = submit_wordcount(
        &cluster.address,
        path(&input),
        path(&output),
        &["--reducers", "3", "--split-size", "2KiB", "--wait"],
    );
    args[1] = "sort";
    let run = quern(&args);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(summary_counter(&stdout(&run), "tasks:") < 60);
    // Lines as a worker reads them: `\n` or `\r\n` ends one, a last one may have neither.
    let mut expected: Vec<Vec<u8>> = Vec::new();
    for entry in std::fs::read_dir(&input).unwrap() {
        let text = std::fs::read(entry.unwrap().path()).unwrap();
        for piece in text.split_inclusive(|&b| b == b'\n') {
            let line = piece.strip_suffix(b"\n").unwrap_or(piece);
            expected.push(line.strip_suffix(b"\r").unwrap_or(line).to_vec());
        }
    }
    expected.sort();
    let sorted: Vec<u8> = (0..3)
        .flat_map(|p| std::fs::read(output.join(format!("part-r-{p:05}"))).unwrap())
        .collect();
    let got: Vec<Vec<u8>> = sorted
        .strip_suffix(b"\n")
        .unwrap()
        .split(|&b| b == b'\n')
        .map(<[u8]>::to_vec)
        .collect();
    assert!(got == expected, "not every line sorted");
}
