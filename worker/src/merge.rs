//! K-way merge of sorted segments, and grouping of the merged records by key.
//!
//! Map tasks merge their spills with it, grouping by exact key to combine; reduce tasks merge the
//! segments they fetched, grouping by the job's key prefix (a secondary sort groups by a key's
//! leading components, so one group holds many keys, in key order). A binary heap holds each
//! segment's next key; buffers are recycled between records, so merging does not allocate per
//! record.

use crate::record::RecordReader;
use quern_sdk::engine::{EncodedRecord, group_of};
use quern_sdk::{JobEngine, JobError, ValueStream};
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::io::{self, BufRead};
use std::sync::Arc;

/// A sorted run of records.
pub type Segment = RecordReader<Box<dyn BufRead + Send>>;

struct Head {
    key: Vec<u8>,
    source: usize,
}

impl Ord for Head {
    fn cmp(&self, other: &Self) -> Ordering {
        // BinaryHeap is a max-heap: reverse, so the smallest key (then lowest source) pops first.
        other
            .key
            .cmp(&self.key)
            .then(other.source.cmp(&self.source))
    }
}
impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Head {}

/// Records of many sorted segments in key order.
pub struct Merge {
    sources: Vec<Segment>,
    heap: BinaryHeap<Head>,
    key: Vec<u8>,
    spare: Vec<u8>,
    /// The source of the current record; it advances on the next call.
    current: Option<usize>,
}

impl Merge {
    pub fn new(sources: Vec<Segment>) -> io::Result<Self> {
        let mut merge = Merge {
            heap: BinaryHeap::with_capacity(sources.len()),
            sources,
            key: Vec::new(),
            spare: Vec::new(),
            current: None,
        };
        for source in 0..merge.sources.len() {
            merge.push_next(source)?;
        }
        Ok(merge)
    }

    /// Reads `source`'s next record and queues its key.
    fn push_next(&mut self, source: usize) -> io::Result<()> {
        let reader = &mut self.sources[source];
        reader.swap_key(&mut self.spare);
        if reader.advance()? {
            let mut key = Vec::new();
            reader.swap_key(&mut key);
            self.heap.push(Head { key, source });
        }
        Ok(())
    }

    fn advance_current(&mut self) -> io::Result<()> {
        match self.current.take() {
            Some(source) => self.push_next(source),
            None => Ok(()),
        }
    }

    /// The next record in key order.
    pub fn next_record(&mut self) -> io::Result<Option<(&[u8], &[u8])>> {
        self.advance_current()?;
        let Some(head) = self.heap.pop() else {
            return Ok(None);
        };
        self.spare = std::mem::replace(&mut self.key, head.key);
        self.current = Some(head.source);
        Ok(Some((&self.key, self.sources[head.source].value())))
    }

    /// The key of the record after the current one.
    fn peek_key(&mut self) -> io::Result<Option<&[u8]>> {
        self.advance_current()?;
        Ok(self.heap.peek().map(|head| head.key.as_slice()))
    }

    fn current_record(&self) -> Option<EncodedRecord<'_>> {
        self.current
            .map(|source| (self.key.as_slice(), self.sources[source].value()))
    }
}

/// What makes merged records one group.
pub enum Grouping {
    /// Equal keys: map-side merging, where groups are combined under their key.
    ExactKey,
    /// Equal grouping prefixes of the job's keys ([`JobEngine::group_prefix`]): the reduce.
    Job(Arc<dyn JobEngine>),
}

impl Grouping {
    /// The bytes of `key` that its group is named by.
    fn prefix<'k>(&self, key: &'k [u8]) -> Result<&'k [u8], JobError> {
        match self {
            Grouping::ExactKey => Ok(key),
            Grouping::Job(job) => group_of(job.as_ref(), key),
        }
    }
}

/// Merged records in groups: [`Groups::next_group`] moves to the next group, and the
/// [`ValueStream`] gives that group's records, in key order.
pub struct Groups {
    merge: Merge,
    grouping: Grouping,
    /// The prefix the current group's keys share.
    prefix: Vec<u8>,
    /// The first record of the group is the merge's current record, not yet handed out.
    first_pending: bool,
    in_group: bool,
}

impl Groups {
    pub fn new(merge: Merge, grouping: Grouping) -> Self {
        Groups {
            merge,
            grouping,
            prefix: Vec::new(),
            first_pending: false,
            in_group: false,
        }
    }

    /// Moves to the next group, copying its first key into `key`; false when the merge is done.
    /// Records of the previous group that were not read are skipped.
    pub fn next_group(&mut self, key: &mut Vec<u8>) -> Result<bool, JobError> {
        while self.in_group && self.next_record()?.is_some() {}
        let Some((next, _)) = self.merge.next_record()? else {
            return Ok(false);
        };
        self.prefix.clear();
        self.prefix.extend_from_slice(self.grouping.prefix(next)?);
        key.clear();
        key.extend_from_slice(next);
        self.first_pending = true;
        self.in_group = true;
        Ok(true)
    }

    /// Whether the record after the current one is in the current group.
    fn next_in_group(&mut self) -> Result<bool, JobError> {
        let Some(next) = self.merge.peek_key()? else {
            return Ok(false);
        };
        Ok(self.grouping.prefix(next)? == self.prefix.as_slice())
    }
}

impl ValueStream for Groups {
    fn next_record(&mut self) -> Result<Option<EncodedRecord<'_>>, JobError> {
        if !self.in_group {
            return Ok(None);
        }
        if self.first_pending {
            self.first_pending = false;
            return Ok(self.merge.current_record());
        }
        if !self.next_in_group()? {
            self.in_group = false;
            return Ok(None);
        }
        Ok(self.merge.next_record()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::write_record;
    use quern_sdk::{CompositeKey, Key, KeyEncode};

    fn segment(records: &[(&str, &str)]) -> Segment {
        let mut bytes = Vec::new();
        for (k, v) in records {
            write_record(&mut bytes, k.as_bytes(), v.as_bytes()).unwrap();
        }
        RecordReader::new(Box::new(std::io::Cursor::new(bytes)))
    }

    fn groups_of(segments: Vec<Segment>) -> Vec<(String, Vec<String>)> {
        let mut groups = Groups::new(Merge::new(segments).unwrap(), Grouping::ExactKey);
        let mut key = Vec::new();
        let mut out = Vec::new();
        while groups.next_group(&mut key).unwrap() {
            let mut values = Vec::new();
            while let Some(v) = groups.next_value().unwrap() {
                values.push(String::from_utf8(v.to_vec()).unwrap());
            }
            values.sort();
            out.push((String::from_utf8(key.clone()).unwrap(), values));
        }
        out
    }

    #[test]
    fn segments_merge_into_key_order_with_equal_keys_grouped() {
        let got = groups_of(vec![
            segment(&[("apple", "1"), ("cherry", "2"), ("cherry", "3")]),
            segment(&[]),
            segment(&[("banana", "4"), ("cherry", "5")]),
            segment(&[("apple", "6"), ("date", "7")]),
        ]);
        let expected = vec![
            ("apple".to_string(), vec!["1".to_string(), "6".to_string()]),
            ("banana".to_string(), vec!["4".to_string()]),
            (
                "cherry".to_string(),
                vec!["2".to_string(), "3".to_string(), "5".to_string()],
            ),
            ("date".to_string(), vec!["7".to_string()]),
        ];
        assert_eq!(got, expected);
    }

    fn tuple_segment(records: &[((&str, u32), &str)]) -> Segment {
        let mut bytes = Vec::new();
        for (key, value) in records {
            let mut encoded = Vec::new();
            key.encode_key(&mut encoded);
            write_record(&mut bytes, &encoded, value.as_bytes()).unwrap();
        }
        RecordReader::new(Box::new(std::io::Cursor::new(bytes)))
    }

    #[test]
    fn a_job_grouping_by_the_first_component_makes_one_group_per_prefix_in_key_order() {
        type Reading = (String, u32);
        // What the job does with its keys is beside the point here: only its grouping is used.
        let job = quern_examples::wordcount::job()
            .grouping(|key: &[u8]| <Reading as CompositeKey>::prefix_len(key, 1));
        let segments = vec![
            tuple_segment(&[(("a", 3), "a3"), (("ab", 1), "ab1"), (("ab", 9), "ab9")]),
            tuple_segment(&[(("a", 1), "a1"), (("a", 7), "a7"), (("b", 2), "b2")]),
            tuple_segment(&[(("a\0", 5), "a05"), (("ab", 4), "ab4")]),
        ];
        let mut groups = Groups::new(Merge::new(segments).unwrap(), Grouping::Job(Arc::new(job)));
        let mut first = Vec::new();
        let mut got = Vec::new();
        while groups.next_group(&mut first).unwrap() {
            let mut records = Vec::new();
            while let Some((key, value)) = groups.next_record().unwrap() {
                let key = Reading::decode_key(key).unwrap();
                records.push((key, String::from_utf8(value.to_vec()).unwrap()));
            }
            assert_eq!(Reading::decode_key(&first).unwrap(), records[0].0);
            got.push(records.into_iter().map(|(_, v)| v).collect::<Vec<_>>());
        }
        let expected = [
            vec!["a1", "a3", "a7"],
            vec!["a05"],
            vec!["ab1", "ab4", "ab9"],
            vec!["b2"],
        ];
        assert_eq!(got, expected);
        let mut exact = Groups::new(
            Merge::new(vec![tuple_segment(&[(("a", 1), "x"), (("a", 2), "y")])]).unwrap(),
            Grouping::ExactKey,
        );
        assert!(exact.next_group(&mut first).unwrap());
        assert_eq!(exact.next_value().unwrap(), Some(&b"x"[..]));
        assert_eq!(exact.next_value().unwrap(), None, "exact keys group alone");
    }

    #[test]
    fn unread_values_are_skipped_by_the_next_group() {
        let segments = vec![
            segment(&[("a", "1"), ("a", "2"), ("b", "3")]),
            segment(&[("a", "4")]),
        ];
        let mut groups = Groups::new(Merge::new(segments).unwrap(), Grouping::ExactKey);
        let mut key = Vec::new();
        assert!(groups.next_group(&mut key).unwrap());
        assert_eq!(key, b"a");
        assert!(groups.next_value().unwrap().is_some());
        assert!(groups.next_group(&mut key).unwrap());
        assert_eq!(key, b"b");
        assert_eq!(groups.next_value().unwrap(), Some(&b"3"[..]));
        assert_eq!(groups.next_value().unwrap(), None);
        assert!(!groups.next_group(&mut key).unwrap());
    }
}
