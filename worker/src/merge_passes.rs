//! A reduce's merge fan-in: the merge reads every segment at once, each on disk a file held open,
//! so a reduce over thousands of map outputs would need thousands of open files. Past
//! [`MERGE_FACTOR`] segments on disk, batches of them are first merged into one file each, as
//! Hadoop's reduce merges in passes of `mapreduce.task.io.sort.factor`.

use crate::codec::Codec;
use crate::error::TaskError;
use crate::shuffle_fetch::Fetched;
use crate::spill::RunWriter;
use std::io;
use std::path::Path;
use tokio_util::sync::CancellationToken;

/// Segments on disk a merge reads at once, at most. Two reduces merging at once stay well inside
/// the 1,024 open files a process may have by default.
pub const MERGE_FACTOR: usize = 100;

/// `segments` with those on disk merged, a batch at a time into files in `dir`, until at most
/// `factor` remain on disk; segments in memory are kept as they are. Compressed as `codec` says.
/// Stops before the next batch once `cancel` is raised.
pub fn narrow(
    segments: Vec<Fetched>,
    (codec, dir): (Codec, &Path),
    factor: usize,
    cancel: &CancellationToken,
) -> Result<Vec<Fetched>, TaskError> {
    let factor = factor.max(2);
    let (mut on_disk, mut narrowed): (Vec<Fetched>, Vec<Fetched>) = segments
        .into_iter()
        .partition(|segment| !matches!(segment, Fetched::Memory(_)));
    let mut passes = 0;
    while on_disk.len() > factor {
        if cancel.is_cancelled() {
            return Err(TaskError::Cancelled);
        }
        // Just enough in this batch that what is left, with the batch's file, fits the factor.
        let batch = (on_disk.len() - factor + 1).min(factor);
        let path = dir.join(format!("merged-{passes:05}"));
        merge_into(on_disk.drain(..batch).collect(), codec, &path)
            .map_err(TaskError::io("cannot merge fetched segments"))?;
        on_disk.push(Fetched::File(path));
        passes += 1;
    }
    narrowed.append(&mut on_disk);
    Ok(narrowed)
}

/// Merges `segments` into one sorted segment at `path`.
fn merge_into(segments: Vec<Fetched>, codec: Codec, path: &Path) -> io::Result<()> {
    let sources = segments
        .into_iter()
        .map(|segment| segment.open(codec))
        .collect::<io::Result<Vec<_>>>()?;
    let mut merge = crate::merge::Merge::new(sources)?;
    let mut out = RunWriter::create(path, 1, codec)?;
    out.start_partition(0)?;
    while let Some((key, value)) = merge.next_record()? {
        out.write(key, value)?;
    }
    out.finish()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merge::Merge;

    /// A segment on disk in `dir` holding `keys` (sorted) with empty values.
    fn on_disk(dir: &Path, name: &str, keys: &[u32], codec: Codec) -> Fetched {
        let path = dir.join(name);
        let mut out = RunWriter::create(&path, 1, codec).unwrap();
        out.start_partition(0).unwrap();
        for key in keys {
            out.write(format!("{key:06}").as_bytes(), b"").unwrap();
        }
        out.finish().unwrap();
        Fetched::File(path)
    }

    #[test]
    fn segments_on_disk_past_the_factor_are_merged_first_and_nothing_is_lost() {
        for codec in [Codec::None, Codec::Lz4] {
            let dir = tempfile::tempdir().unwrap();
            // 25 segments on disk, key k in segment k % 25, and 3 in memory.
            let mut segments: Vec<Fetched> = (0..25u32)
                .map(|s| {
                    let keys: Vec<u32> = (0..1000).filter(|k| k % 25 == s).collect();
                    on_disk(dir.path(), &format!("segment-{s}"), &keys, codec)
                })
                .collect();
            for _ in 0..3 {
                let memory = on_disk(dir.path(), "memory", &[1000], codec);
                let Fetched::File(path) = memory else {
                    unreachable!()
                };
                segments.push(Fetched::Memory(std::fs::read(path).unwrap()));
            }
            let cancel = CancellationToken::new();
            let narrowed = narrow(segments, (codec, dir.path()), 4, &cancel).unwrap();
            let on_disk = narrowed
                .iter()
                .filter(|s| !matches!(s, Fetched::Memory(_)))
                .count();
            assert_eq!((narrowed.len(), on_disk), (7, 4));
            let sources = narrowed
                .into_iter()
                .map(|s| s.open(codec).unwrap())
                .collect();
            let mut merge = Merge::new(sources).unwrap();
            let mut keys = Vec::new();
            while let Some((key, _)) = merge.next_record().unwrap() {
                keys.push(String::from_utf8(key.to_vec()).unwrap());
            }
            let mut expected: Vec<String> = (0..1000).map(|k| format!("{k:06}")).collect();
            expected.extend(["001000"; 3].map(String::from));
            assert_eq!(keys, expected);
        }
    }

    #[test]
    fn a_cancelled_reduce_merges_no_more_batches() {
        let dir = tempfile::tempdir().unwrap();
        let segments = (0..5)
            .map(|s| on_disk(dir.path(), &format!("segment-{s}"), &[s], Codec::None))
            .collect();
        let cancel = CancellationToken::new();
        cancel.cancel();
        let narrowed = narrow(segments, (Codec::None, dir.path()), 2, &cancel);
        assert!(matches!(narrowed, Err(TaskError::Cancelled)));
        assert!(!dir.path().join("merged-00000").exists());
    }
}
