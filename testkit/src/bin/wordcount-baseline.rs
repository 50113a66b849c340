//! The baseline Quern's word count is measured against: a plain hand-written rayon loop over the
//! files of a directory (read, split on ASCII whitespace, count, merge), writing the same
//! `word<TAB>count` lines, sorted, that Quern writes. No framework, no shuffle, no fault tolerance.
//!
//! `wordcount-baseline INPUT_DIR OUTPUT_FILE`

use rayon::prelude::*;
use std::collections::HashMap;
use std::io::Write;

fn count(bytes: &[u8]) -> HashMap<&[u8], u64> {
    let mut counts = HashMap::new();
    for word in bytes
        .split(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c))
        .filter(|w| !w.is_empty())
    {
        *counts.entry(word).or_insert(0) += 1;
    }
    counts
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output] = args.as_slice() else {
        eprintln!("usage: wordcount-baseline INPUT_DIR OUTPUT_FILE");
        std::process::exit(2);
    };
    let files: Vec<_> = std::fs::read_dir(input)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    let contents: Vec<Vec<u8>> = files
        .par_iter()
        .map(std::fs::read)
        .collect::<Result<_, _>>()?;
    let total = contents
        .par_iter()
        .map(|bytes| count(bytes))
        .reduce(HashMap::new, |mut a, b| {
            for (word, n) in b {
                *a.entry(word).or_insert(0) += n;
            }
            a
        });
    let mut words: Vec<_> = total.into_iter().collect();
    words.par_sort_unstable();
    let mut out = std::io::BufWriter::new(std::fs::File::create(output)?);
    for (word, n) in words {
        out.write_all(word)?;
        writeln!(out, "\t{n}")?;
    }
    out.flush()
}
