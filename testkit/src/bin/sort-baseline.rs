//! The in-memory baseline Quern's sort is measured against: every line of every file of a
//! directory, read in parallel, sorted bytewise with rayon's parallel unstable sort, and written
//! in order, as `LC_ALL=C sort` orders them. It holds the whole input in memory; it is the fastest
//! plain program for the job when the input fits, not a rival that spills.
//!
//! `sort-baseline INPUT_DIR OUTPUT_FILE`

use rayon::prelude::*;
use std::io::Write;

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output] = args.as_slice() else {
        eprintln!("usage: sort-baseline INPUT_DIR OUTPUT_FILE");
        std::process::exit(2);
    };
    let files = quern_testkit::input_files(std::path::Path::new(input))?;
    let texts: Vec<Vec<u8>> = files
        .par_iter()
        .map(std::fs::read)
        .collect::<Result<_, _>>()?;
    let mut lines: Vec<&[u8]> = texts
        .par_iter()
        .flat_map_iter(|text| {
            let text = text.strip_suffix(b"\n").unwrap_or(text);
            text.split(|&b| b == b'\n')
        })
        .collect();
    lines.par_sort_unstable();
    let mut out = std::io::BufWriter::with_capacity(4 << 20, std::fs::File::create(output)?);
    for line in lines {
        out.write_all(line)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}
