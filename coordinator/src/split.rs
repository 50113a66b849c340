//! Input splitting: cuts each input object into byte ranges of about the split size. As in Hadoop,
//! a remainder of less than 10% of a split joins the last split instead of making a tiny task.
//! Where lines fall is the worker's business (see the worker's `split_reader`).
//!
//! Only lines split: an object read whole (a compressed one, by its extension, or any object of
//! a job whose input format is not lines) is one split, whatever its size.

use quern_proto::InputFormat;
use quern_storage::{Compression, InputObject, Version};

/// A tail below this fraction of the split size is folded into the previous split.
const SPLIT_SLOP: f64 = 1.1;

/// One map task's input: bytes `start..end` of one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub url: String,
    pub start: u64,
    pub end: u64,
    pub object_size: u64,
    /// What listing saw, for the reader to check the object did not change since.
    pub version: Version,
}

/// The splits of `objects`, read as `format`, in order. Empty objects give none.
pub fn make_splits(objects: &[InputObject], split_size: u64, format: InputFormat) -> Vec<Split> {
    let mut splits = Vec::new();
    for object in objects {
        let split_size = match reads_whole(object, format) {
            true => u64::MAX,
            false => split_size.max(1),
        };
        let mut start = 0;
        while start < object.size {
            let remaining = object.size - start;
            let len = if remaining as f64 > split_size as f64 * SPLIT_SLOP {
                split_size
            } else {
                remaining
            };
            splits.push(Split {
                url: object.url.to_string(),
                start,
                end: start + len,
                object_size: object.size,
                version: object.version.clone(),
            });
            start += len;
        }
    }
    splits
}

/// Whether `object` is read whole by one map task: it is compressed, or its format is not lines.
fn reads_whole(object: &InputObject, format: InputFormat) -> bool {
    format != InputFormat::Lines || Compression::of(&object.url.to_string()) != Compression::None
}

#[cfg(test)]
mod tests {
    use super::*;
    use quern_storage::StorageUrl;

    fn object(name: &str, size: u64) -> InputObject {
        InputObject {
            url: StorageUrl::Local(format!("/in/{name}").into()),
            size,
            version: Version::Tag(format!("v-{name}")),
        }
    }

    fn ranges(splits: &[Split]) -> Vec<(u64, u64)> {
        splits.iter().map(|s| (s.start, s.end)).collect()
    }

    #[test]
    fn objects_are_cut_into_split_size_ranges_with_a_slop_tail() {
        let splits = make_splits(
            &[object("a", 210), object("empty", 0), object("b", 105)],
            100,
            InputFormat::Lines,
        );
        assert_eq!(ranges(&splits), [(0, 100), (100, 210), (0, 105)]);
        assert_eq!(splits[2].url, "file:///in/b");
        assert!(
            splits
                .iter()
                .all(|s| s.object_size == if s.url.ends_with('a') { 210 } else { 105 })
        );
        // Each split carries what listing saw of its object, for the reader to check.
        let versions: Vec<_> = splits.iter().map(|s| s.version.clone()).collect();
        let tag = |name: &str| Version::Tag(format!("v-{name}"));
        assert_eq!(versions, [tag("a"), tag("a"), tag("b")]);
    }

    #[test]
    fn a_tail_over_the_slop_gets_its_own_split() {
        let splits = make_splits(&[object("a", 330)], 100, InputFormat::Lines);
        assert_eq!(
            ranges(&splits),
            [(0, 100), (100, 200), (200, 300), (300, 330)]
        );
    }

    #[test]
    fn compressed_objects_and_whole_file_input_are_one_split_each() {
        let objects = [
            object("a.txt", 330),
            object("b.txt.gz", 330),
            object("c.zst", 250),
            object("empty.gz", 0),
        ];
        let splits = make_splits(&objects, 100, InputFormat::Lines);
        let names: Vec<_> = splits.iter().map(|s| s.url.as_str()).collect();
        assert_eq!(
            names,
            [
                "file:///in/a.txt",
                "file:///in/a.txt",
                "file:///in/a.txt",
                "file:///in/a.txt",
                "file:///in/b.txt.gz",
                "file:///in/c.zst",
            ]
        );
        assert_eq!(ranges(&splits[4..]), [(0, 330), (0, 250)]);
        // Still checked on read against what listing saw.
        assert_eq!(splits[4].version, Version::Tag("v-b.txt.gz".to_string()));
        for format in [
            InputFormat::WholeFile,
            InputFormat::LengthDelimited,
            InputFormat::Custom,
        ] {
            let splits = make_splits(&objects, 100, format);
            assert_eq!(
                ranges(&splits),
                [(0, 330), (0, 330), (0, 250)],
                "{format:?}"
            );
        }
    }
}
