//! The baseline Quern's word count is measured against: the fastest plain program we can write
//! for the job on this machine, with no framework, no shuffle and no fault tolerance. Rayon over
//! the files (each thread folds the files it takes into one table), 4 MiB reads, a 256-entry byte
//! table for whitespace, FxHash, and no allocation per token. Words of up to 16 bytes (nearly all
//! of them in text) are kept inline in their table's entries, as one 128-bit integer and a
//! length, so finding one compares two integers and follows no pointer; longer words go to a
//! second table of byte strings, copied the first time a thread's table sees them. It writes the
//! `word<TAB>count` lines Quern writes, sorted.
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

/// A word of at most 16 bytes, inline: its bytes little-endian, zero-padded, and its length
/// (which tells "a" from "a\0").
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Short {
    bytes: u128,
    len: u8,
}

impl Short {
    fn bytes(&self) -> Vec<u8> {
        self.bytes.to_le_bytes()[..self.len as usize].to_vec()
    }
}

/// One thread's counts: short words inline, longer ones as byte strings.
#[derive(Default)]
struct Counts {
    short: FxHashMap<Short, u64>,
    long: FxHashMap<Vec<u8>, u64>,
}

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
        if i - start <= 16 && start + 16 <= bytes.len() {
            // One unaligned load of 16 bytes, masked to the word: the bytes past it are there.
            let mut chunk = [0u8; 16];
            chunk.copy_from_slice(&bytes[start..start + 16]);
            let len = i - start;
            let mask = if len == 16 {
                u128::MAX
            } else {
                (1u128 << (8 * len)) - 1
            };
            let word = Short {
                bytes: u128::from_le_bytes(chunk) & mask,
                len: len as u8,
            };
            *counts.short.entry(word).or_insert(0) += 1;
        } else {
            add(&bytes[start..i], counts);
        }
    }
}

fn add(word: &[u8], counts: &mut Counts) {
    if word.len() <= 16 {
        let mut chunk = [0u8; 16];
        chunk[..word.len()].copy_from_slice(word);
        let word = Short {
            bytes: u128::from_le_bytes(chunk),
            len: word.len() as u8,
        };
        *counts.short.entry(word).or_insert(0) += 1;
        return;
    }
    match counts.long.get_mut(word) {
        Some(n) => *n += 1,
        None => {
            counts.long.insert(word.to_vec(), 1);
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

fn merge_table<K: Eq + std::hash::Hash>(
    mut a: FxHashMap<K, u64>,
    mut b: FxHashMap<K, u64>,
) -> FxHashMap<K, u64> {
    if a.len() < b.len() {
        std::mem::swap(&mut a, &mut b);
    }
    for (word, n) in b {
        *a.entry(word).or_insert(0) += n;
    }
    a
}

fn merge(a: Counts, b: Counts) -> Counts {
    Counts {
        short: merge_table(a.short, b.short),
        long: merge_table(a.long, b.long),
    }
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
    let mut words: Vec<(Vec<u8>, u64)> = total
        .short
        .into_iter()
        .map(|(word, n)| (word.bytes(), n))
        .chain(total.long)
        .collect();
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
