//! Decompresses a compressed input object as its map reads it (which objects are compressed:
//! [`Compression`], by extension). The ranged reads' chunks become a [`BufRead`]
//! ([`ChunkReader`], which counts the compressed bytes as they come), decoded on the map's
//! blocking thread: gzip by flate2's `MultiGzDecoder` (so concatenated members, as `cat a.gz
//! b.gz` or bgzip make, read as one stream), zstd by the `zstd` crate (every frame). Both are
//! well-kept crates; zstd's C library builds with the C compiler the workspace already needs.
//!
//! A decoder's failure is the object's fault, the same on every try: it becomes
//! [`InputError::Corrupt`] naming the object, which fails the job at once. A failed read
//! underneath (a storage error) reaches the decoder inside an `io::Error` and passes through as
//! itself (see `JobError`'s `From<io::Error>`).

use bytes::{Buf, Bytes};
use quern_sdk::JobError;
use quern_sdk::input::InputError;
use quern_storage::Compression;
use std::cell::Cell;
use std::io::{self, BufRead, BufReader, Read};
use std::rc::Rc;

/// The object's bytes as the ranged reads deliver them, in order.
pub type Chunks = Box<dyn Iterator<Item = Result<Bytes, JobError>>>;

/// Decoded bytes handed on at a time.
const DECODED_BUFFER: usize = 64 << 10;

/// Chunks read as a [`BufRead`], counting the bytes received.
pub struct ChunkReader {
    chunks: Chunks,
    current: Bytes,
    received: Rc<Cell<u64>>,
}

impl ChunkReader {
    pub fn new(chunks: Chunks) -> Self {
        ChunkReader {
            chunks,
            current: Bytes::new(),
            received: Rc::default(),
        }
    }

    /// The count of bytes received so far, which goes on counting as the reader reads.
    pub fn received(&self) -> Rc<Cell<u64>> {
        self.received.clone()
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for ChunkReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.current.is_empty() {
            match self.chunks.next() {
                None => break,
                Some(Err(e)) => return Err(io::Error::other(e)),
                Some(Ok(chunk)) => {
                    self.received.set(self.received.get() + chunk.len() as u64);
                    self.current = chunk;
                }
            }
        }
        Ok(&self.current)
    }

    fn consume(&mut self, amount: usize) {
        self.current.advance(amount);
    }
}

/// The bytes of the object at `url`, decompressed as `compression` says.
pub fn decompress(
    compression: Compression,
    input: ChunkReader,
    url: &str,
) -> Result<Box<dyn BufRead>, JobError> {
    let decoder: Box<dyn Read> = match compression {
        Compression::None => return Ok(Box::new(input)),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(input)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(input)?),
    };
    let checked = Checked {
        decoder,
        url: url.to_string(),
        compression,
    };
    Ok(Box::new(BufReader::with_capacity(DECODED_BUFFER, checked)))
}

/// A decoder whose own failures name the object as corrupt.
struct Checked {
    decoder: Box<dyn Read>,
    url: String,
    compression: Compression,
}

impl Read for Checked {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.decoder.read(buf).map_err(|e| self.classify(e))
    }
}

impl Checked {
    /// `e` as itself if it is a read's failure (or an interruption), else as corrupt input.
    fn classify(&self, e: io::Error) -> io::Error {
        let underneath = e.get_ref().is_some_and(|inner| inner.is::<JobError>());
        if underneath || e.kind() == io::ErrorKind::Interrupted {
            return e;
        }
        io::Error::other(JobError::from(InputError::Corrupt {
            url: self.url.clone(),
            format: self.compression.name().to_string(),
            source: e,
        }))
    }
}

/// Decoded bytes as chunks, for the line reader: owned copies of what the decoder hands out.
pub struct DecodedChunks(pub Box<dyn BufRead>);

impl Iterator for DecodedChunks {
    type Item = Result<Bytes, JobError>;
    fn next(&mut self) -> Option<Self::Item> {
        let chunk = match self.0.fill_buf() {
            Ok([]) => return None,
            Ok(bytes) => Bytes::copy_from_slice(bytes),
            Err(e) => return Some(Err(e.into())),
        };
        self.0.consume(chunk.len());
        Some(Ok(chunk))
    }
}
