//! The SDK's example jobs (`indexer`, `join`) and job chaining, each on a real cluster, checked
//! against a result worked out here from the input files alone.

mod common;

use common::watch::summary_counter;
use common::*;
use quern::chain::{Chain, Step};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// `quern submit JOB --coordinator C --input I… --output O --wait`, then `extra`; must succeed.
/// Returns what it printed.
fn submit_and_wait(
    address: &str,
    job: &str,
    inputs: &[&Path],
    output: &Path,
    extra: &[&str],
) -> String {
    let mut args = vec!["submit", job, "--coordinator", address, "--wait"];
    for input in inputs {
        args.extend(["--input", input.to_str().unwrap()]);
    }
    args.extend(["--output", output.to_str().unwrap()]);
    args.extend_from_slice(extra);
    let run = quern(&args);
    assert!(run.status.success(), "{}", stderr(&run));
    stdout(&run)
}

/// `books` from the corpus, copied into a new directory `in` under `dir`.
fn corpus_books(dir: &Path, books: &[&str]) -> std::path::PathBuf {
    let input = dir.join("in");
    std::fs::create_dir(&input).unwrap();
    for book in books {
        std::fs::copy(corpus().join(book), input.join(book)).unwrap();
    }
    input
}

/// The inverted index of the files in `dir`, as `word<TAB>N file1,file2,…` lines, sorted; worked
/// out here: a word is a maximal run of ASCII letters.
fn expected_index(dir: &Path) -> Vec<Vec<u8>> {
    let mut files_of: BTreeMap<Vec<u8>, BTreeSet<String>> = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let mut word = Vec::new();
        for b in std::fs::read(&path).unwrap().into_iter().chain([b' ']) {
            if b.is_ascii_alphabetic() {
                word.push(b);
            } else if !word.is_empty() {
                files_of
                    .entry(std::mem::take(&mut word))
                    .or_default()
                    .insert(name.clone());
            }
        }
    }
    let mut lines: Vec<Vec<u8>> = files_of
        .into_iter()
        .map(|(mut word, files)| {
            let files: Vec<String> = files.into_iter().collect();
            word.extend(format!("\t{} {}", files.len(), files.join(",")).bytes());
            word
        })
        .collect();
    lines.sort();
    lines
}

/// Every word of four books, each with the books that hold it, across many splits and two
/// reducers: the combiner folds a split's sightings without changing the index.
#[test]
fn indexer_lists_each_word_with_the_sorted_files_that_hold_it() {
    let cluster = Cluster::start(2, 2);
    let dir = tempfile::tempdir().unwrap();
    let books = [
        "pg-being_ernest.txt",
        "pg-metamorphosis.txt",
        "pg-frankenstein.txt",
        "pg-grimm.txt",
    ];
    let input = corpus_books(dir.path(), &books);
    let output = dir.path().join("out");
    let extra = ["--reducers", "2", "--split-size", "128KiB"];
    submit_and_wait(&cluster.address, "indexer", &[&input], &output, &extra);
    let expected = expected_index(&input);
    assert!(expected.len() > 10_000, "{}", expected.len());
    assert!(expected.iter().any(|l| l.ends_with(
        b"\t4 pg-being_ernest.txt,pg-frankenstein.txt,pg-grimm.txt,pg-metamorphosis.txt"
    )));
    assert_eq!(read_part_lines(&output, 2), expected);
}

/// The indexer over 240 small files packed into a few map tasks: each word still lists exactly
/// the files that hold it, though one task reads many files (the context names each record's
/// own file) and its combiner folds sightings from several of them.
#[test]
fn indexer_names_each_words_files_when_small_files_share_map_tasks() {
    let cluster = Cluster::start(2, 2);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    // Lines of a book, a few to a file, so most words occur in several files of one task.
    let book = std::fs::read_to_string(corpus().join("pg-metamorphosis.txt")).unwrap();
    let lines: Vec<&str> = book.lines().skip(100).take(240 * 4).collect();
    for (i, chunk) in lines.chunks(4).enumerate() {
        std::fs::write(input.join(format!("page-{i:03}.txt")), chunk.join("\n")).unwrap();
    }
    let output = dir.path().join("out");
    let extra = ["--reducers", "2", "--split-size", "8KiB"];
    let printed = submit_and_wait(&cluster.address, "indexer", &[&input], &output, &extra);
    let maps = summary_counter(&printed, "tasks:");
    assert!((2..20).contains(&maps), "{maps} map tasks for 240 files");
    let expected = expected_index(&input);
    let files_of = |line: &Vec<u8>| -> usize {
        let line = String::from_utf8_lossy(line);
        line.split(['\t', ' ']).nth(1).unwrap().parse().unwrap()
    };
    assert!(
        expected.iter().any(|l| files_of(l) >= 20),
        "words in many files"
    );
    assert_eq!(read_part_lines(&output, 2), expected);
}

/// Lines `key<TAB>rest` of one side of a join: key `k{i}` has `copies(i)` lines, each naming
/// its side, key and copy, spread over `files` files of `dir` named `PREFIX-N.tsv`, with a line
/// without a TAB now and then. Returns every `(key, rest)`, and how many lines had no TAB.
fn join_side(
    dir: &Path,
    prefix: &str,
    files: usize,
    copies: impl Fn(usize) -> usize,
) -> (Vec<(String, String)>, u64) {
    let (mut pairs, mut skipped) = (Vec::new(), 0);
    let mut texts = vec![String::new(); files];
    for i in 0..400 {
        for copy in 0..copies(i) {
            let rest = format!("{prefix} {i}.{copy}\tpadding {}", "x".repeat(i % 17));
            let text = &mut texts[(i + copy) % files];
            text.push_str(&format!("k{i}\t{rest}\n"));
            pairs.push((format!("k{i}"), rest));
        }
        if i % 97 == 0 {
            texts[i % files].push_str("a line without a tab\n");
            skipped += 1;
        }
    }
    for (n, text) in texts.iter().enumerate() {
        std::fs::write(dir.join(format!("{prefix}-{n}.tsv")), text).unwrap();
    }
    (pairs, skipped)
}

/// A reduce-side join of generated tables over many splits and three reducers: every left ×
/// right pair of a key once, keys with duplicates on both sides, keys on one side only joining
/// nothing, and lines without a TAB counted.
#[test]
fn join_writes_every_pair_of_left_and_right_lines_of_a_key() {
    let cluster = Cluster::start(2, 2);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    // Keys k4, k8, … have no left lines, and k3, k9, … no right ones: they join nothing.
    let (users, skipped_users) = join_side(&input, "users", 2, |i| i % 4);
    let (orders, skipped_orders) = join_side(&input, "orders", 3, |i| i % 3);
    let mut expected: Vec<Vec<u8>> = Vec::new();
    for (key, left) in &users {
        for (_, right) in orders.iter().filter(|(k, _)| k == key) {
            expected.push(format!("{key}\t{left}\t{right}").into_bytes());
        }
    }
    expected.sort();
    assert!(expected.len() > 500, "{}", expected.len());
    let output = dir.path().join("out");
    let extra = [
        "-D",
        "left=users",
        "--reducers",
        "3",
        "--split-size",
        "4KiB",
    ];
    let summary = submit_and_wait(&cluster.address, "join", &[&input], &output, &extra);
    assert_eq!(read_part_lines(&output, 3), expected);
    assert_eq!(
        summary_counter(&summary, "counter: join.skipped"),
        skipped_users + skipped_orders
    );
}

/// What grep for `pattern` finds in word count's one part file over the files of `input`, worked
/// out here: the counts as `word<TAB>count` lines in byte order of the words, each matching
/// line under `part-r-00000:OFFSET`; sorted.
fn grep_of_counts(input: &Path, pattern: &str) -> Vec<Vec<u8>> {
    let mut found = Vec::new();
    let mut offset = 0;
    for line in expected_count_lines(input).split_inclusive(|&b| b == b'\n') {
        let bare = &line[..line.len() - 1];
        if bare.windows(pattern.len()).any(|w| w == pattern.as_bytes()) {
            let mut record = format!("part-r-00000:{offset}\t").into_bytes();
            record.extend_from_slice(bare);
            found.push(record);
        }
        offset += line.len();
    }
    found.sort();
    found
}

/// Word count, then grep over its counts.
fn count_then_grep(pattern: &str) -> Chain {
    Chain::new(Step::new("wordcount").reducers(1))
        .then(Step::new("grep").param("pattern", pattern).reducers(2))
}

/// Runs `chain` over `input` into `output` on the cluster at `address`.
fn run_chain(
    chain: &Chain,
    address: &str,
    input: &Path,
    output: &Path,
) -> anyhow::Result<Vec<quern_proto::JobStatus>> {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (input, output) = (input.to_str().unwrap(), output.to_str().unwrap());
    runtime.block_on(async {
        let mut client = quern::client::connect(address, None, &Default::default()).await?;
        let registry = quern_examples::registry();
        chain
            .run(&mut client, address, &registry, &[input], output)
            .await
    })
}

/// The names in `dir`, sorted.
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// A chain runs grep over word count's output on a real cluster: the lines of the counts that
/// hold the pattern, with their offsets in the counts' part file; the counts, an intermediate
/// output, are gone once grep has read them.
#[test]
fn a_chain_greps_the_word_counts_and_removes_the_intermediate_output() {
    let cluster = Cluster::start(2, 2);
    let dir = tempfile::tempdir().unwrap();
    let input = corpus_books(dir.path(), &["pg-being_ernest.txt", "pg-metamorphosis.txt"]);
    let output = dir.path().join("love");
    let statuses = run_chain(&count_then_grep("love"), &cluster.address, &input, &output);
    assert_eq!(statuses.unwrap().len(), 2);
    let expected = grep_of_counts(&input, "love");
    assert!(expected.len() > 5, "{expected:?}");
    assert_eq!(read_part_lines(&output, 2), expected);
    assert_eq!(names_in(dir.path()), ["in", "love"]);
}

/// When the second job fails (here its output holds a finished job's), the chain's error says
/// which step failed and names the intermediate output it read, which is kept.
#[test]
fn a_failed_step_keeps_the_intermediate_output_it_read_and_names_it() {
    let cluster = Cluster::start(1, 2);
    let dir = tempfile::tempdir().unwrap();
    let input = corpus_books(dir.path(), &["pg-metamorphosis.txt"]);
    let output = dir.path().join("love");
    std::fs::create_dir(&output).unwrap();
    std::fs::write(output.join("_SUCCESS"), "{}").unwrap();
    let chain = count_then_grep("love");
    let error = run_chain(&chain, &cluster.address, &input, &output).unwrap_err();
    let error = quern_proto::error_chain(error.as_ref());
    let kept = dir.path().join("love.step-1");
    assert!(
        error.starts_with(&format!(
            "step 2 of 2 (grep) failed; its input, the intermediate output file://{}, is kept: ",
            kept.display()
        )),
        "{error}"
    );
    assert!(kept.join("_SUCCESS").is_file());
    assert_eq!(
        std::fs::read(kept.join("part-r-00000")).unwrap(),
        expected_count_lines(&input)
    );
}

/// The same chain on a cluster in the test's own process, as `quern run` starts one.
#[test]
fn a_chain_runs_on_an_embedded_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let input = corpus_books(dir.path(), &["pg-metamorphosis.txt"]);
    let output = dir.path().join("the");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (inputs, out) = ([input.to_str().unwrap()], output.to_str().unwrap());
    let chain = count_then_grep("the");
    let run = chain.run_local(quern_examples::registry(), 2, &inputs, out);
    assert_eq!(runtime.block_on(run).unwrap().len(), 2);
    assert_eq!(read_part_lines(&output, 2), grep_of_counts(&input, "the"));
    assert_eq!(names_in(dir.path()), ["in", "the"]);
}

/// Word count's one part file over the files of `input`, worked out here.
fn expected_count_lines(input: &Path) -> Vec<u8> {
    let counts: BTreeMap<Vec<u8>, u64> = expected_counts(input).into_iter().collect();
    let mut text = Vec::new();
    for (word, count) in counts {
        text.extend(word);
        text.extend(format!("\t{count}\n").bytes());
    }
    text
}
