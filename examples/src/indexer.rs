//! `indexer`: an inverted index. Every word of the input becomes one output line
//! `word<TAB>N file1,file2,…`: N is the number of distinct input files that hold the word, and
//! the files are their base names (from the map task's input), sorted bytewise. A word is a
//! maximal run of ASCII letters, kept case-sensitively.
//!
//! The combiner is correct because the reduce is a set union: the union of unions is the union,
//! whatever grouping and however many times it runs, so a map folds its many sightings of a word
//! into one sorted, deduplicated list before the shuffle.

use quern_sdk::{Combiner, Emitter, JobDef, JobError, Mapper, Output, Reducer, TaskContext};

/// The name `quern run` and `quern submit` know this job by.
pub const NAME: &str = "indexer";

/// The words of `line`: maximal runs of ASCII letters, in order.
pub fn words(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    line.split(|b| !b.is_ascii_alphabetic())
        .filter(|w| !w.is_empty())
}

/// Emits each word with the one-file list of the file its split reads.
pub struct WordFiles;

impl Mapper for WordFiles {
    type Key = Vec<u8>;
    type Value = Vec<String>;
    fn map(
        &self,
        _offset: u64,
        line: &[u8],
        out: &mut Emitter<'_, Vec<u8>, Vec<String>>,
    ) -> Result<(), JobError> {
        let file = out.context().input.as_ref().map_or("", |i| i.file_name());
        let files = vec![file.to_string()];
        for word in words(line) {
            out.emit(word, &files)?;
        }
        Ok(())
    }
}

/// The sorted, deduplicated union of file lists.
fn union(lists: &mut dyn Iterator<Item = Vec<String>>) -> Vec<String> {
    let mut files: Vec<String> = lists.flatten().collect();
    files.sort_unstable();
    files.dedup();
    files
}

/// Folds a word's file lists into their union, map-side.
pub struct UnionCombiner;

impl Combiner for UnionCombiner {
    type Key = Vec<u8>;
    type Value = Vec<String>;
    fn combine(
        &self,
        _: &TaskContext,
        _word: &Vec<u8>,
        lists: &mut dyn Iterator<Item = Vec<String>>,
    ) -> Vec<String> {
        union(lists)
    }
}

/// Writes `word<TAB>N file1,file2,…` from the union of the word's file lists.
pub struct IndexReducer;

impl Reducer for IndexReducer {
    type Key = Vec<u8>;
    type Value = Vec<String>;
    type OutKey = [u8];
    type OutValue = str;
    fn reduce(
        &self,
        word: Vec<u8>,
        lists: &mut dyn Iterator<Item = Vec<String>>,
        out: &mut Output<'_, [u8], str>,
    ) -> Result<(), JobError> {
        let files = union(lists);
        out.write(&word, &format!("{} {}", files.len(), files.join(",")));
        Ok(())
    }
}

/// The job.
pub fn job() -> JobDef<WordFiles, IndexReducer> {
    JobDef::new(NAME, WordFiles, IndexReducer).combiner(UnionCombiner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_runs_of_ascii_letters() {
        let found: Vec<&[u8]> = words(b"It's 2x-fast, caf\xc3\xa9!").collect();
        let expected: Vec<&[u8]> = vec![b"It", b"s", b"x", b"fast", b"caf"];
        assert_eq!(found, expected);
    }

    #[test]
    fn a_word_lists_its_files_once_each_sorted() {
        let mut lists = [
            vec!["b.txt".to_string()],
            vec!["a.txt".to_string(), "b.txt".to_string()],
            vec!["B.txt".to_string()],
        ]
        .into_iter();
        assert_eq!(union(&mut lists), ["B.txt", "a.txt", "b.txt"]);
    }
}
