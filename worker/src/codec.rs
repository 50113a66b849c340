//! Compression of map output: spills, and the runs the shuffle serves. Each partition of a run is
//! its own compressed stream (a frame), so a reduce fetches its partition's bytes as they lie on
//! disk and decodes them alone, as Hadoop's IFile compresses each segment; an empty partition
//! stays empty. lz4 through `lz4_flex` (pure Rust, the fastest lz4 in Rust), zstd through the
//! `zstd` crate the input decoder already uses: well-kept crates, not hand-written codecs.

use quern_proto::ShuffleCompression;
use std::io::{self, BufRead, BufReader, Read, Write};

/// zstd's level for map output: its fastest regular level. Map output is written once and read
/// once, soon after, so speed matters more than ratio.
const ZSTD_LEVEL: i32 = 1;
/// zstd's window, as a power of two: 64 KiB. A reduce merges one decoder per map output at once,
/// and each decoder holds a window; at zstd's own default (up to 8 MiB for level 1) a reduce over
/// a thousand map outputs would hold gigabytes.
const ZSTD_WINDOW_LOG: u32 = 16;
/// Buffer under a zstd decoder, which reads through `Read`.
const ZSTD_READ_BUFFER: usize = 16 << 10;

/// How a job's map output is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    None,
    Lz4,
    Zstd,
}

impl Codec {
    /// The codec an assignment names. The coordinator resolves the default before it assigns,
    /// so an unset value means a coordinator that predates compression: no compression.
    pub fn of(compression: i32) -> Codec {
        match ShuffleCompression::try_from(compression) {
            Ok(ShuffleCompression::Lz4) => Codec::Lz4,
            Ok(ShuffleCompression::Zstd) => Codec::Zstd,
            _ => Codec::None,
        }
    }

    /// Starts one partition's stream over `inner`.
    pub fn encoder<W: Write>(self, inner: W) -> io::Result<Encoder<W>> {
        Ok(match self {
            Codec::None => Encoder::Plain(inner),
            Codec::Lz4 => Encoder::Lz4(lz4_flex::frame::FrameEncoder::new(inner)),
            Codec::Zstd => {
                let mut encoder = zstd::stream::write::Encoder::new(inner, ZSTD_LEVEL)?;
                encoder.window_log(ZSTD_WINDOW_LOG)?;
                Encoder::Zstd(encoder)
            }
        })
    }

    /// Decodes one partition's stream, `len` bytes of `inner`; an empty partition holds no
    /// stream at all.
    pub fn decoder<R: Read + Send + 'static>(
        self,
        inner: R,
        len: u64,
        buffer: usize,
    ) -> io::Result<Box<dyn BufRead + Send>> {
        let inner = inner.take(len);
        Ok(match self {
            _ if len == 0 => Box::new(io::empty()),
            Codec::None => Box::new(BufReader::with_capacity(buffer, inner)),
            Codec::Lz4 => Box::new(lz4_flex::frame::FrameDecoder::new(inner)),
            Codec::Zstd => {
                let mut decoder = zstd::stream::read::Decoder::with_buffer(
                    BufReader::with_capacity(buffer, inner),
                )?;
                decoder.window_log_max(ZSTD_WINDOW_LOG)?;
                Box::new(BufReader::with_capacity(ZSTD_READ_BUFFER, decoder))
            }
        })
    }
}

/// One partition's stream being written.
pub enum Encoder<W: Write> {
    Plain(W),
    Lz4(lz4_flex::frame::FrameEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Encoder<W> {
    /// Ends the stream (its last block and end mark) and gives back the writer under it.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Encoder::Plain(inner) => Ok(inner),
            Encoder::Lz4(encoder) => encoder.finish().map_err(io::Error::other),
            Encoder::Zstd(encoder) => encoder.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Plain(inner) => inner.write(buf),
            Encoder::Lz4(encoder) => encoder.write(buf),
            Encoder::Zstd(encoder) => encoder.write(buf),
        }
    }

    #[inline]
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Encoder::Plain(inner) => inner.write_all(buf),
            Encoder::Lz4(encoder) => encoder.write_all(buf),
            Encoder::Zstd(encoder) => encoder.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Plain(inner) => inner.flush(),
            Encoder::Lz4(encoder) => encoder.flush(),
            Encoder::Zstd(encoder) => encoder.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Codec; 3] = [Codec::None, Codec::Lz4, Codec::Zstd];

    fn encode(codec: Codec, data: &[u8]) -> Vec<u8> {
        let mut encoder = codec.encoder(Vec::new()).unwrap();
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    /// Decodes the partition that is the first `len` bytes of `bytes`.
    fn decode(codec: Codec, bytes: Vec<u8>, len: u64) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        codec
            .decoder(io::Cursor::new(bytes), len, 4096)?
            .read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn each_codec_gives_back_what_it_was_given() {
        let text: Vec<u8> = (0..200_000u32)
            .flat_map(|i| format!("word{} ", i % 977).into_bytes())
            .collect();
        for codec in ALL {
            let stream = encode(codec, &text);
            if codec != Codec::None {
                assert!(stream.len() < text.len() / 4, "{codec:?}: {}", stream.len());
            }
            let len = stream.len() as u64;
            assert_eq!(decode(codec, stream, len).unwrap(), text, "{codec:?}");
        }
    }

    #[test]
    fn a_decoder_reads_only_its_partition() {
        for codec in ALL {
            let mut bytes = encode(codec, b"first partition");
            let len = bytes.len() as u64;
            bytes.extend(encode(codec, b"second"));
            let first = decode(codec, bytes, len).unwrap();
            assert_eq!(first, b"first partition", "{codec:?}");
        }
    }

    #[test]
    fn a_cut_stream_is_an_error_not_fewer_bytes() {
        let text: Vec<u8> = (0..20_000u32).flat_map(|i| i.to_le_bytes()).collect();
        for codec in [Codec::Lz4, Codec::Zstd] {
            let mut stream = encode(codec, &text);
            stream.truncate(stream.len() / 2);
            let len = stream.len() as u64;
            let result = decode(codec, stream, len);
            assert!(
                result.is_err(),
                "{codec:?} read {:?} bytes",
                result.map(|o| o.len())
            );
        }
    }
}
