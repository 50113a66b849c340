//! The buffers local reads fill: a map reads its input in chunks of [`READ_BUFFER_BYTES`], and a
//! chunk's buffer, once every view of it is dropped, goes back to a small free list here rather
//! than to the allocator.
//!
//! Handed back to glibc, a freed chunk either stayed resident in whichever malloc arena the
//! reading thread used (up to 16 of them on two cores, so a long job's peak grew with the arenas
//! it touched) or, trimmed, had to be faulted in afresh by the next read. Kept here, the same few
//! buffers serve every read, and memory is bounded by the reads in flight.

use bytes::Bytes;
use std::sync::{Mutex, PoisonError};

/// The size of a pooled buffer: the largest read that takes one, and the chunk a map reads.
pub const READ_BUFFER_BYTES: usize = 4 << 20;

/// Reads smaller than this (a small file, a split's tail) get a buffer of their own, sized to fit.
const SMALLEST_POOLED: usize = READ_BUFFER_BYTES / 4;

/// Free buffers kept at most (64 MiB): more than two map slots have in flight (the chunk being
/// read, those queued, the one being split into lines). A buffer freed past this goes back to
/// the allocator.
const KEPT: usize = 16;

static FREE: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// An empty buffer with room for at least `len` bytes: a kept one when the read is chunk-sized.
pub(crate) fn buffer_for(len: usize) -> Vec<u8> {
    if !(SMALLEST_POOLED..=READ_BUFFER_BYTES).contains(&len) {
        return Vec::with_capacity(len);
    }
    let kept = FREE.lock().unwrap_or_else(PoisonError::into_inner).pop();
    kept.unwrap_or_else(|| Vec::with_capacity(READ_BUFFER_BYTES))
}

/// The bytes read into `buf`; a pooled buffer goes back to the free list when the last view of
/// them is dropped.
pub(crate) fn into_bytes(buf: Vec<u8>) -> Bytes {
    if buf.capacity() == READ_BUFFER_BYTES {
        Bytes::from_owner(Kept(buf))
    } else {
        buf.into()
    }
}

/// A pooled buffer lent out as [`Bytes`].
struct Kept(Vec<u8>);

impl AsRef<[u8]> for Kept {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Kept {
    fn drop(&mut self) {
        let mut buf = std::mem::take(&mut self.0);
        buf.clear();
        let mut free = FREE.lock().unwrap_or_else(PoisonError::into_inner);
        if free.len() < KEPT {
            free.push(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_sized_buffer_is_reused_once_its_bytes_are_dropped() {
        let mut buf = buffer_for(READ_BUFFER_BYTES);
        buf.extend_from_slice(b"first read");
        let address = buf.as_ptr();
        let bytes = into_bytes(buf);
        assert_eq!(&bytes[..], b"first read");
        let view = bytes.slice(6..);
        drop(bytes);
        // Still lent out through the slice: a new read gets another buffer.
        let other = buffer_for(READ_BUFFER_BYTES);
        assert_ne!(other.as_ptr(), address);
        assert_eq!(&view[..], b"read");
        drop(view);
        // No other test in this crate reads a chunk-sized range, so nothing else takes it.
        let again = buffer_for(SMALLEST_POOLED);
        assert_eq!(again.as_ptr(), address);
        assert!(again.is_empty() && again.capacity() == READ_BUFFER_BYTES);
    }

    #[test]
    fn a_small_read_gets_a_buffer_of_its_own() {
        let buf = buffer_for(4096);
        assert!(buf.capacity() >= 4096 && buf.capacity() < SMALLEST_POOLED);
        let bytes = into_bytes(buf);
        assert!(bytes.is_empty());
    }
}
