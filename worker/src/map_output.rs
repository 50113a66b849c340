//! Collects a map task's records into its map output: partition each record, buffer it, spill
//! sorted runs when the buffer fills, and at the end merge the spills (combining again) into one
//! run file on local disk, which the shuffle service serves partition by partition. A job with a
//! combiner arrives here already folded by key (the SDK combines as its mapper emits), so the sort
//! buffer holds few records; it combines again as it writes runs.

use crate::codec::Codec;
use crate::merge::{Grouping, Groups, Merge};
use crate::sort_buffer::SortBuffer;
use crate::spill::{Run, RunWriter, write_group};
use quern_sdk::engine::partition_of;
use quern_sdk::{JobEngine, JobError, MapSink, TaskContext};
use std::path::PathBuf;
use std::sync::Arc;

/// The map output of a task, and what it took to make it.
#[derive(Debug)]
pub struct MapOutput {
    pub run: Run,
    /// Records in the final output (after combining).
    pub records: u64,
    pub spills: u64,
}

/// The [`MapSink`] a map task writes to.
pub struct MapOutputWriter {
    job: Arc<dyn JobEngine>,
    /// The map task the output is of: its combiner's counters go there.
    ctx: TaskContext,
    partitions: u32,
    codec: Codec,
    buffer: SortBuffer,
    dir: PathBuf,
    spills: Vec<Run>,
}

impl MapOutputWriter {
    /// A writer for the output of map task `ctx`, into `ctx.partitions` partitions, whose
    /// spills and output go to `dir` compressed by `codec`, holding about `buffer_bytes` in
    /// memory.
    pub fn new(
        job: Arc<dyn JobEngine>,
        ctx: TaskContext,
        buffer_bytes: usize,
        dir: PathBuf,
        codec: Codec,
    ) -> Self {
        let buffer = SortBuffer::new(buffer_bytes);
        MapOutputWriter {
            job,
            partitions: ctx.partitions.max(1),
            codec,
            ctx,
            buffer,
            dir,
            spills: Vec::new(),
        }
    }

    fn spill(&mut self) -> Result<(), JobError> {
        let path = self.dir.join(format!("spill-{}", self.spills.len()));
        let mut out = RunWriter::create(&path, self.partitions, self.codec)?;
        self.buffer
            .write_sorted(self.job.as_ref(), &self.ctx, &mut out)?;
        self.spills.push(out.finish()?);
        Ok(())
    }

    /// Writes the final map output to `dir/output`.
    pub fn finish(mut self) -> Result<MapOutput, JobError> {
        let path = self.dir.join("output");
        let mut out = RunWriter::create(&path, self.partitions, self.codec)?;
        if self.spills.is_empty() {
            self.buffer
                .write_sorted(self.job.as_ref(), &self.ctx, &mut out)?;
        } else {
            if !self.buffer.is_empty() {
                self.spill()?;
            }
            self.merge_spills(&mut out)?;
        }
        let records = out.records();
        let run = out.finish()?;
        for spill in &self.spills {
            std::fs::remove_file(&spill.path)?;
        }
        Ok(MapOutput {
            run,
            records,
            spills: self.spills.len() as u64,
        })
    }

    fn merge_spills(&self, out: &mut RunWriter) -> Result<(), JobError> {
        let mut key = Vec::new();
        for partition in 0..self.partitions {
            let segments = self
                .spills
                .iter()
                .map(|spill| spill.open_partition(partition))
                .collect::<Result<Vec<_>, _>>()?;
            // Combining folds equal keys only, whatever the job groups its reduce by.
            let mut groups = Groups::new(Merge::new(segments)?, Grouping::ExactKey);
            out.start_partition(partition)?;
            while groups.next_group(&mut key)? {
                write_group(self.job.as_ref(), &self.ctx, &key, &mut groups, out)?;
            }
        }
        Ok(())
    }
}

impl MapSink for MapOutputWriter {
    fn emit(&mut self, key: &[u8], value: &[u8]) -> Result<(), JobError> {
        if !self.buffer.fits(key, value) {
            self.spill()?;
        }
        let partition = partition_of(self.job.as_ref(), &self.ctx, key, self.partitions)?;
        self.buffer.push(partition, key, value);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quern_sdk::TaskContext;
    use quern_sdk::engine::RecordSource;
    use std::collections::BTreeMap;

    struct Text<'a>(std::vec::IntoIter<&'a [u8]>);
    impl RecordSource for Text<'_> {
        fn next_record(&mut self) -> Result<Option<(u64, &[u8])>, JobError> {
            Ok(self.0.next().map(|line| (0, line)))
        }
    }

    /// Word counts per partition, read back from a run: the merged map output. Without a combiner
    /// a key repeats, and its counts add up.
    fn read_counts(run: &Run, partitions: u32, combined: bool) -> Vec<BTreeMap<Vec<u8>, u64>> {
        (0..partitions)
            .map(|p| {
                let mut segment = run.open_partition(p).unwrap();
                let mut counts = BTreeMap::new();
                let mut last: Option<Vec<u8>> = None;
                while segment.advance().unwrap() {
                    let key = segment.key().to_vec();
                    if combined {
                        assert!(last.as_ref() < Some(&key), "keys sorted and unique");
                    } else {
                        assert!(last.as_ref() <= Some(&key), "keys sorted");
                    }
                    let (count, _) = bincode::decode_from_slice::<u64, _>(
                        segment.value(),
                        bincode::config::standard(),
                    )
                    .unwrap();
                    *counts.entry(key.clone()).or_insert(0) += count;
                    last = Some(key);
                }
                counts
            })
            .collect()
    }

    /// A map task of a job with `partitions` reduce partitions.
    fn tasks_of(partitions: u32) -> TaskContext {
        TaskContext {
            partitions,
            ..TaskContext::default()
        }
    }

    #[test]
    fn a_partition_out_of_range_fails_the_task_naming_it() {
        for partitions in [1, 3] {
            let job: Arc<dyn JobEngine> = Arc::new(crate::testing::TestJob {
                partition: Some(partitions),
                ..Default::default()
            });
            let dir = tempfile::tempdir().unwrap();
            let ctx = tasks_of(partitions);
            let mut writer = MapOutputWriter::new(
                job.clone(),
                ctx.clone(),
                1 << 20,
                dir.path().to_path_buf(),
                Codec::None,
            );
            let lines: Vec<&[u8]> = vec![b"a b c"];
            let error = job
                .map(&ctx, &mut Text(lines.into_iter()), &mut writer)
                .expect_err("a record in no partition");
            let message = error.to_string();
            assert!(
                message.contains(&format!("partition {partitions},"))
                    && message.contains(&format!("has {partitions} partitions")),
                "{message}"
            );
        }
    }

    #[test]
    fn a_tiny_buffer_spills_and_merges_to_the_same_counts() {
        let words = [
            "the", "cat", "sat", "on", "the", "mat", "and", "the", "cat", "ran",
        ];
        let text: Vec<String> = (0..200)
            .map(|i| words[i % words.len()..].join(" "))
            .collect();
        let mut expected: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
        for line in &text {
            for word in line.split(' ') {
                *expected.entry(word.as_bytes().to_vec()).or_default() += 1;
            }
        }
        let combined: Arc<dyn JobEngine> = Arc::new(quern_examples::wordcount::job());
        let plain: Arc<dyn JobEngine> = Arc::new(quern_sdk::JobDef::new(
            "wc-no-combiner",
            quern_examples::wordcount::TokenMapper,
            quern_examples::wordcount::SumReducer,
        ));
        let runs = [
            (&combined, 64),
            (&combined, 1 << 20),
            (&plain, 64),
            (&plain, 1 << 20),
        ];
        let codecs = [Codec::None, Codec::Lz4, Codec::Zstd];
        for ((job, buffer), codec) in runs.into_iter().flat_map(|r| codecs.map(|c| (r, c))) {
            let dir = tempfile::tempdir().unwrap();
            let ctx = tasks_of(3);
            let path = dir.path().to_path_buf();
            let mut writer = MapOutputWriter::new(job.clone(), ctx.clone(), buffer, path, codec);
            let lines: Vec<&[u8]> = text.iter().map(|l| l.as_bytes()).collect();
            job.map(&ctx, &mut Text(lines.into_iter()), &mut writer)
                .unwrap();
            let output = writer.finish().unwrap();
            assert_eq!(output.spills > 0, buffer == 64, "buffer {buffer}");
            let parts = read_counts(&output.run, 3, job.has_combiner());
            for (p, counts) in parts.iter().enumerate() {
                for key in counts.keys() {
                    assert_eq!(job.partition(&ctx, key, 3), p as u32);
                }
            }
            let merged: BTreeMap<Vec<u8>, u64> = parts.into_iter().flatten().collect();
            if job.has_combiner() {
                assert_eq!(output.records as usize, expected.len());
            }
            assert_eq!(merged, expected, "buffer {buffer}, {codec:?}");
            let left: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(left, ["output"]);
        }
    }
}
