//! Sorted runs on the worker's local disk. A run holds every reduce partition of one map task in
//! partition order, each partition's records sorted by key, and compressed as the job says (see
//! [`crate::codec`]); `offsets[p]..offsets[p + 1]` is partition `p` as stored, and `crcs[p]` the
//! CRC-32C of those bytes, which the shuffle sends along so that a reduce never merges a corrupt
//! segment. Spills, and the final map output the shuffle serves, are runs.

use crate::codec::{Codec, Encoder};
use crate::merge::Segment;
use crate::record::{RecordReader, write_record};
use quern_sdk::{JobEngine, JobError, TaskContext, ValueStream};
use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const WRITE_BUFFER: usize = 256 << 10;
/// Read buffer of each segment a merge reads from disk. A merge holds one per segment at once, so
/// it is small: a reduce over 1,000 map outputs holds 16 MiB of them.
pub const SEGMENT_READ_BUFFER: usize = 16 << 10;

/// A finished run file.
#[derive(Debug, Clone)]
pub struct Run {
    pub path: PathBuf,
    /// `partitions + 1` offsets: partition `p` is bytes `offsets[p]..offsets[p + 1]`.
    pub offsets: Vec<u64>,
    /// The CRC-32C of each partition's bytes, as written.
    pub crcs: Vec<u32>,
    pub codec: Codec,
}

impl Run {
    /// Where partition `partition` lies in the file, and its checksum: (first byte, length,
    /// CRC-32C); None if the run has no such partition.
    pub fn partition(&self, partition: u32) -> Option<(u64, u64, u32)> {
        let p = partition as usize;
        let (start, end) = (*self.offsets.get(p)?, *self.offsets.get(p + 1)?);
        Some((start, end - start, *self.crcs.get(p)?))
    }

    /// Bytes of each partition.
    pub fn partition_lens(&self) -> Vec<u64> {
        self.offsets.windows(2).map(|w| w[1] - w[0]).collect()
    }

    /// Opens one partition of the run for reading.
    pub fn open_partition(&self, partition: u32) -> io::Result<Segment> {
        let (start, len, _) = self.partition(partition).ok_or_else(|| {
            io::Error::other(format!(
                "no partition {partition} in {}",
                self.path.display()
            ))
        })?;
        open_segment(&self.path, (start, len), self.codec)
    }
}

/// The records of bytes `start..start + len` of the file at `path`, compressed as `codec` says:
/// a partition of a run, wherever it is read from.
pub fn open_segment(path: &Path, (start, len): (u64, u64), codec: Codec) -> io::Result<Segment> {
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(start))?;
    let stream = codec.decoder(file, len, SEGMENT_READ_BUFFER)?;
    Ok(RecordReader::new(stream))
}

/// A writer that counts the bytes that pass through it, and keeps their CRC-32C since the last
/// [`Checksummed::take`].
struct Checksummed<W> {
    inner: W,
    crc: u32,
    written: u64,
}

impl<W: Write> Write for Checksummed<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc = crc32c::crc32c_append(self.crc, &buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<W> Checksummed<W> {
    fn take(&mut self) -> u32 {
        std::mem::take(&mut self.crc)
    }
}

type RunFile = Checksummed<BufWriter<File>>;

/// Writes a run: call [`RunWriter::start_partition`] with non-decreasing partitions.
pub struct RunWriter {
    /// The file, under the current partition's stream once its first record starts one (plain
    /// between partitions). `None` only after a stream failed to start or end.
    out: Option<Encoder<RunFile>>,
    codec: Codec,
    path: PathBuf,
    partitions: u32,
    offsets: Vec<u64>,
    crcs: Vec<u32>,
    records: u64,
    /// Reused for combined values.
    scratch: Vec<u8>,
}

impl RunWriter {
    pub fn create(path: &Path, partitions: u32, codec: Codec) -> io::Result<Self> {
        let file = File::create(path)?;
        Ok(RunWriter {
            out: Some(Encoder::Plain(Checksummed {
                inner: BufWriter::with_capacity(WRITE_BUFFER, file),
                crc: 0,
                written: 0,
            })),
            codec,
            path: path.to_path_buf(),
            partitions,
            offsets: vec![0],
            crcs: Vec::new(),
            records: 0,
            scratch: Vec::new(),
        })
    }

    /// Marks the start of `partition`; partitions skipped over are empty. A partition out of
    /// range is an error: its records would be in the file but in no partition anyone reads.
    pub fn start_partition(&mut self, partition: u32) -> io::Result<()> {
        if partition >= self.partitions {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "partition {partition} out of range: the run has {} partitions",
                    self.partitions
                ),
            ));
        }
        while self.offsets.len() <= partition as usize {
            self.end_partition()?;
        }
        Ok(())
    }

    /// Ends the partition being written (and its stream): the next one starts here.
    fn end_partition(&mut self) -> io::Result<()> {
        let mut file = self.out.take().ok_or_else(failed_earlier)?.finish()?;
        self.offsets.push(file.written);
        self.crcs.push(file.take());
        self.out = Some(Encoder::Plain(file));
        Ok(())
    }

    /// Where the current partition's records go: its stream, started at its first record.
    #[inline]
    fn stream(&mut self) -> io::Result<&mut Encoder<RunFile>> {
        if self.codec != Codec::None
            && let Some(Encoder::Plain(_)) = self.out
            && let Some(Encoder::Plain(file)) = self.out.take()
        {
            self.out = Some(self.codec.encoder(file)?);
        }
        self.out.as_mut().ok_or_else(failed_earlier)
    }

    pub fn write(&mut self, key: &[u8], value: &[u8]) -> io::Result<()> {
        write_record(self.stream()?, key, value)?;
        self.records += 1;
        Ok(())
    }

    /// Records written so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    pub fn finish(mut self) -> io::Result<Run> {
        while self.offsets.len() <= self.partitions as usize {
            self.end_partition()?;
        }
        self.out.take().ok_or_else(failed_earlier)?.flush()?;
        Ok(Run {
            path: self.path,
            offsets: self.offsets,
            crcs: self.crcs,
            codec: self.codec,
        })
    }
}

fn failed_earlier() -> io::Error {
    io::Error::other("the run's writer failed earlier")
}

/// Writes one key group: combined into one record where the job has a combiner, else as is.
pub fn write_group(
    job: &dyn JobEngine,
    ctx: &TaskContext,
    key: &[u8],
    values: &mut dyn ValueStream,
    out: &mut RunWriter,
) -> Result<(), JobError> {
    if job.has_combiner() {
        let mut combined = std::mem::take(&mut out.scratch);
        combined.clear();
        job.combine(ctx, key, values, &mut combined)?;
        out.write(key, &combined)?;
        out.scratch = combined;
    } else {
        while let Some(value) = values.next_value()? {
            out.write(key, value)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_partition_carries_the_checksum_of_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run");
        let mut writer = RunWriter::create(&path, 3, Codec::None).unwrap();
        writer.start_partition(0).unwrap();
        writer.write(b"a", b"1").unwrap();
        writer.start_partition(2).unwrap();
        writer.write(b"b", b"22").unwrap();
        writer.write(b"c", b"3").unwrap();
        let run = writer.finish().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let expected: Vec<u32> = run
            .offsets
            .windows(2)
            .map(|w| crc32c::crc32c(&bytes[w[0] as usize..w[1] as usize]))
            .collect();
        assert_eq!(run.crcs, expected);
        assert_eq!(run.crcs[1], 0, "an empty partition");
        assert_ne!(run.crcs[0], run.crcs[2]);
    }

    #[test]
    fn a_run_refuses_a_partition_out_of_range() {
        let dir = tempfile::tempdir().unwrap();
        let mut run = RunWriter::create(&dir.path().join("run"), 2, Codec::None).unwrap();
        run.start_partition(1).unwrap();
        let error = run.start_partition(2).expect_err("out of range");
        assert!(
            error.to_string().contains("partition 2 out of range"),
            "{error}"
        );
    }
}
