//! Input splitting: cuts each input object into byte ranges of about the split size, and packs
//! small objects whole into shared splits, so one map task reads several of them in sequence
//! (Hadoop's `CombineFileInputFormat`). As in Hadoop, a remainder of less than 10% of a split
//! joins the last split instead of making a tiny task. Where lines fall is the worker's business
//! (see the worker's `split_reader`).
//!
//! Only lines split: an object read whole (a compressed one, by its extension, or any object of
//! a job whose input format is not lines) is one range, whatever its size.
//!
//! Packing: an object smaller than the split size is read whole by one task anyway, so it joins
//! the open pack, in listing order, while the pack's bytes stay within the split size; the pack
//! then becomes one split. A large object's splits are made as it comes, the open pack going
//! on past it, so the packs hold the small objects in listing order and the same listing always
//! makes the same splits (a restarted coordinator lists again and must match its journal).

use quern_proto::InputFormat;
use quern_storage::{Compression, InputObject, Version};

/// A tail below this fraction of the split size is folded into the previous split.
const SPLIT_SLOP: f64 = 1.1;

/// Objects one pack holds at most, whatever their bytes: bounds an assignment's size (each
/// object travels with its URL and version) and the work a failed attempt repeats.
pub const MAX_PACKED_OBJECTS: usize = 1_000;

/// Bytes `start..end` of one object, as listing saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRange {
    pub url: String,
    pub start: u64,
    pub end: u64,
    pub object_size: u64,
    /// What listing saw, for the reader to check the object did not change since.
    pub version: Version,
}

/// One map task's input: one range of one object, or several small objects read whole, in
/// listing order (a pack). Never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub ranges: Vec<ObjectRange>,
}

impl From<ObjectRange> for Split {
    fn from(range: ObjectRange) -> Self {
        Split {
            ranges: vec![range],
        }
    }
}

/// The splits of `objects`, read as `format`, in order. Empty objects give none.
pub fn make_splits(objects: &[InputObject], split_size: u64, format: InputFormat) -> Vec<Split> {
    let split_size = split_size.max(1);
    let mut splits = Vec::new();
    let mut pack = Pack::default();
    for object in objects.iter().filter(|o| o.size > 0) {
        let whole = reads_whole(object, format);
        if object.size < split_size {
            if let Some(full) = pack.add(object, split_size) {
                splits.push(full);
            }
        } else {
            let cut = if whole { u64::MAX } else { split_size };
            splits.extend(cut_object(object, cut).map(Split::from));
        }
    }
    splits.extend(pack.finish());
    splits
}

/// Small objects gathered for one split.
#[derive(Default)]
struct Pack {
    ranges: Vec<ObjectRange>,
    bytes: u64,
}

impl Pack {
    /// Adds `object` (smaller than `split_size`) whole; returns the pack before it if that had
    /// no room left for it.
    fn add(&mut self, object: &InputObject, split_size: u64) -> Option<Split> {
        let full = self.bytes + object.size > split_size || self.ranges.len() == MAX_PACKED_OBJECTS;
        let done = if full { self.finish() } else { None };
        self.bytes += object.size;
        self.ranges.push(whole_range(object));
        done
    }

    /// The pack as a split, if it holds anything; the pack is empty after.
    fn finish(&mut self) -> Option<Split> {
        self.bytes = 0;
        let ranges = std::mem::take(&mut self.ranges);
        (!ranges.is_empty()).then_some(Split { ranges })
    }
}

/// `object` cut into ranges of `split_size` bytes, the last taking a tail within the slop.
fn cut_object(object: &InputObject, split_size: u64) -> impl Iterator<Item = ObjectRange> + '_ {
    let mut start = 0;
    std::iter::from_fn(move || {
        if start >= object.size {
            return None;
        }
        let remaining = object.size - start;
        let len = if remaining as f64 > split_size as f64 * SPLIT_SLOP {
            split_size
        } else {
            remaining
        };
        let range = ObjectRange {
            start,
            end: start + len,
            ..whole_range(object)
        };
        start += len;
        Some(range)
    })
}

/// All of `object`.
fn whole_range(object: &InputObject) -> ObjectRange {
    ObjectRange {
        url: object.url.to_string(),
        start: 0,
        end: object.size,
        object_size: object.size,
        version: object.version.clone(),
    }
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

    /// The ranges of splits that each read one range.
    fn ranges(splits: &[Split]) -> Vec<(u64, u64)> {
        splits
            .iter()
            .map(|s| match s.ranges.as_slice() {
                [r] => (r.start, r.end),
                more => panic!("a split of {} ranges", more.len()),
            })
            .collect()
    }

    /// Each split's objects, by name; packed objects are read whole.
    fn names(splits: &[Split]) -> Vec<Vec<&str>> {
        splits
            .iter()
            .map(|s| {
                s.ranges
                    .iter()
                    .map(|r| r.url.trim_start_matches("file:///in/"))
                    .collect()
            })
            .collect()
    }

    fn is_whole(range: &ObjectRange) -> bool {
        range.start == 0 && range.end == range.object_size
    }

    #[test]
    fn objects_are_cut_into_split_size_ranges_with_a_slop_tail() {
        let splits = make_splits(
            &[object("a", 210), object("empty", 0), object("b", 105)],
            100,
            InputFormat::Lines,
        );
        assert_eq!(ranges(&splits), [(0, 100), (100, 210), (0, 105)]);
        let ranges: Vec<_> = splits.iter().flat_map(|s| &s.ranges).collect();
        assert_eq!(ranges[2].url, "file:///in/b");
        assert!(
            ranges
                .iter()
                .all(|r| r.object_size == if r.url.ends_with('a') { 210 } else { 105 })
        );
        // Each split carries what listing saw of its object, for the reader to check.
        let versions: Vec<_> = ranges.iter().map(|r| r.version.clone()).collect();
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
        assert_eq!(
            names(&splits),
            [
                ["a.txt"],
                ["a.txt"],
                ["a.txt"],
                ["a.txt"],
                ["b.txt.gz"],
                ["c.zst"]
            ]
        );
        assert_eq!(ranges(&splits[4..]), [(0, 330), (0, 250)]);
        // Still checked on read against what listing saw.
        assert_eq!(
            splits[4].ranges[0].version,
            Version::Tag("v-b.txt.gz".to_string())
        );
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

    #[test]
    fn small_objects_are_packed_whole_up_to_the_split_size_in_listing_order() {
        let objects = [
            object("a", 40),
            object("b", 30),
            object("c", 30),
            object("d", 20),
            object("e", 90),
            object("f", 99),
        ];
        let splits = make_splits(&objects, 100, InputFormat::Lines);
        // a+b+c is exactly the split size; d does not fit beside e, nor e beside f.
        assert_eq!(
            names(&splits),
            [vec!["a", "b", "c"], vec!["d"], vec!["e"], vec!["f"]]
        );
        assert!(splits.iter().flat_map(|s| &s.ranges).all(is_whole));
        let sizes: Vec<u64> = splits[0].ranges.iter().map(|r| r.object_size).collect();
        assert_eq!(sizes, [40, 30, 30]);
        // Each packed object keeps what listing saw of it, for the reader to check.
        let versions: Vec<_> = splits[0].ranges.iter().map(|r| r.version.clone()).collect();
        let tag = |name: &str| Version::Tag(format!("v-{name}"));
        assert_eq!(versions, [tag("a"), tag("b"), tag("c")]);
    }

    #[test]
    fn large_objects_are_cut_as_before_and_packing_goes_on_past_them() {
        let objects = [
            object("s1", 30),
            object("big", 250),
            object("s2", 30),
            object("at-split-size", 100),
            object("s3", 50),
        ];
        let splits = make_splits(&objects, 100, InputFormat::Lines);
        assert_eq!(
            names(&splits),
            [
                vec!["big"],
                vec!["big"],
                vec!["big"],
                vec!["at-split-size"],
                vec!["s1", "s2"],
                vec!["s3"],
            ]
        );
        assert_eq!(
            ranges(&splits[..4]),
            [(0, 100), (100, 200), (200, 250), (0, 100)]
        );
    }

    #[test]
    fn empty_objects_are_skipped_in_a_pack() {
        let objects = [
            object("a", 10),
            object("empty", 0),
            object("b", 10),
            object("empty.gz", 0),
        ];
        let splits = make_splits(&objects, 100, InputFormat::Lines);
        assert_eq!(names(&splits), [vec!["a", "b"]]);
    }

    #[test]
    fn small_compressed_and_whole_format_objects_are_packed_too() {
        let objects = [
            object("a.gz", 40),
            object("b.txt", 40),
            object("big.zst", 500),
        ];
        let splits = make_splits(&objects, 100, InputFormat::Lines);
        assert_eq!(names(&splits), [vec!["big.zst"], vec!["a.gz", "b.txt"]]);
        assert_eq!(splits[0].ranges[0].end, 500);
        let splits = make_splits(&objects, 100, InputFormat::WholeFile);
        assert_eq!(names(&splits), [vec!["big.zst"], vec!["a.gz", "b.txt"]]);
    }

    #[test]
    fn a_pack_holds_at_most_its_object_limit() {
        let objects: Vec<_> = (0..2_500).map(|i| object(&format!("{i:05}"), 1)).collect();
        let splits = make_splits(&objects, 1 << 20, InputFormat::Lines);
        let counts: Vec<usize> = splits.iter().map(|s| s.ranges.len()).collect();
        assert_eq!(counts, [MAX_PACKED_OBJECTS, MAX_PACKED_OBJECTS, 500]);
        let order: Vec<_> = splits
            .iter()
            .flat_map(|s| &s.ranges)
            .map(|r| &r.url)
            .collect();
        let listed: Vec<_> = objects.iter().map(|o| o.url.to_string()).collect();
        assert!(order.iter().zip(&listed).all(|(a, b)| *a == b));
    }
}
