//! Which input objects are compressed, told by the name's extension as Hadoop's codecs do:
//! `.gz` is gzip, `.zst` is zstd, anything else is read as it is. The coordinator asks, to read a
//! compressed object whole in one map task; the worker asks, to decompress it as it reads.

/// How an input object's bytes are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Not compressed: read as stored, and splittable.
    None,
    /// gzip, one member or several concatenated (`.gz`).
    Gzip,
    /// zstd, one frame or several (`.zst`).
    Zstd,
}

impl Compression {
    /// The compression of the object at `url` (or path), by its extension.
    pub fn of(url: &str) -> Compression {
        if url.ends_with(".gz") {
            Compression::Gzip
        } else if url.ends_with(".zst") {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// Its name, for messages: `gzip`, `zstd`; empty for none.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_is_told_by_the_extension() {
        assert_eq!(Compression::of("s3://b/books/a.txt.gz"), Compression::Gzip);
        assert_eq!(Compression::of("file:///in/a.zst"), Compression::Zstd);
        assert_eq!(Compression::of("file:///in/a.gzip.txt"), Compression::None);
        assert_eq!(Compression::of("file:///in/zst"), Compression::None);
    }
}
