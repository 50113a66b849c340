//! Total order (Hadoop's `TotalOrderPartitioner`, Spark's `sortBy`): partitions hold contiguous
//! key ranges in order, so the part files, concatenated in partition order, are sorted.
//!
//! A job asks for it with [`crate::JobDef::total_order`]. Before its maps run, a short stage of
//! sample tasks runs the mapper over the start of a few splits and reports the keys it emits
//! with the bytes of their records; the coordinator cuts the sampled range into parts of about
//! equal bytes and sends the cut points to every task of the job
//! ([`crate::TaskContext::cut_points`]), so every worker partitions alike.

/// The partition of an encoded `key` under `cut_points` (ascending): how many cut points are at
/// or below it. With `R - 1` cut points, partitions are `0..R`.
pub fn partition(cut_points: &[Vec<u8>], key: &[u8]) -> u32 {
    cut_points.partition_point(|cut| cut.as_slice() <= key) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_go_to_the_range_between_their_cut_points() {
        let cuts = vec![b"g".to_vec(), b"p".to_vec()];
        let parts: Vec<u32> = [&b""[..], b"a", b"f\xff", b"g", b"gz", b"p", b"zzz"]
            .iter()
            .map(|key| partition(&cuts, key))
            .collect();
        assert_eq!(parts, [0, 0, 0, 1, 1, 2, 2]);
        assert_eq!(partition(&[], b"any"), 0);
    }
}
