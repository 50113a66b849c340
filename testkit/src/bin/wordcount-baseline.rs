//! The baseline Quern's word count is measured against: the fastest plain program we can write
//! for the job on this machine, with no framework, no shuffle and no fault tolerance. Rayon over
//! the files (each thread folds the files it takes into one table), 4 MiB reads, a 256-entry byte
//! table for whitespace, FxHash, and no allocation per token (a word is copied only the first
//! time a thread's table sees it). It writes the `word<TAB>count` lines Quern writes, sorted.
//!
//! `wordcount-baseline INPUT_DIR OUTPUT_FILE`

use rayon::prelude::*;
use rustc_hash::FxHashMap;
use std::io::{Read, Write};
use std::path::Path;

/// Bytes per read.
const READ: usize = 4 << 20;

/// ASCII whitespace as Quern's word count splits on it: space, tab, LF, CR, VT, FF.
const SPACE: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 6 {
        table[[b' ', b'\t', b'\n', b'\r', 0x0b, 0x0c][i] as usize] = true;
        i += 1;
    }
    table
};

type Counts = FxHashMap<Vec<u8>, u64>;

/// Counts the words of `bytes` into `counts`; returns where the last (maybe unfinished) word
/// starts, or `bytes.len()` if `bytes` ends in whitespace.
fn count_words(bytes: &[u8], counts: &mut Counts) -> usize {
    let mut i = 0;
    loop {
        while i < bytes.len() && SPACE[bytes[i] as usize] {
            i += 1;
        }
        let start = i;
        while i < bytes.len() && !SPACE[bytes[i] as usize] {
            i += 1;
        }
        if i == bytes.len() {
            return start;
        }
        add(&bytes[start..i], counts);
    }
}

fn add(word: &[u8], counts: &mut Counts) {
    match counts.get_mut(word) {
        Some(n) => *n += 1,
        None => {
            counts.insert(word.to_vec(), 1);
        }
    }
}

/// Counts the words of the file at `path` into `counts`, reading it in [`READ`] pieces.
fn count_file(path: &Path, counts: &mut Counts, buf: &mut Vec<u8>) -> std::io::Result<()> {
    let mut file = std::fs::File::open(path)?;
    let mut kept = 0;
    loop {
        buf.resize(kept + READ, 0);
        let read = file.read(&mut buf[kept..])?;
        let filled = kept + read;
        if read == 0 {
            if filled > 0 {
                add(&buf[..filled], counts);
            }
            return Ok(());
        }
        let tail = count_words(&buf[..filled], counts);
        buf.copy_within(tail..filled, 0);
        kept = filled - tail;
    }
}

fn merge(mut a: Counts, mut b: Counts) -> Counts {
    if a.len() < b.len() {
        std::mem::swap(&mut a, &mut b);
    }
    for (word, n) in b {
        *a.entry(word).or_insert(0) += n;
    }
    a
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output] = args.as_slice() else {
        eprintln!("usage: wordcount-baseline INPUT_DIR OUTPUT_FILE");
        std::process::exit(2);
    };
    let files = quern_testkit::input_files(Path::new(input))?;
    let total = files
        .par_iter()
        .try_fold(
            || (Counts::default(), Vec::new()),
            |(mut counts, mut buf), path| {
                count_file(path, &mut counts, &mut buf)?;
                Ok::<_, std::io::Error>((counts, buf))
            },
        )
        .map(|folded| folded.map(|(counts, _)| counts))
        .try_reduce(Counts::default, |a, b| Ok(merge(a, b)))?;
    let mut words: Vec<(Vec<u8>, u64)> = total.into_iter().collect();
    words.par_sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(output)?);
    let mut number = itoa::Buffer::new();
    for (word, n) in &words {
        out.write_all(word)?;
        out.write_all(b"\t")?;
        out.write_all(number.format(*n).as_bytes())?;
        out.write_all(b"\n")?;
    }
    out.flush()
}
