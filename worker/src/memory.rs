//! Keeps a worker's resident memory to what its running tasks hold.
//!
//! glibc's allocator raises its mmap threshold each time a large block is freed (up to 32 MiB),
//! so after the first task, sort buffers, read chunks and fetched segments came from its heaps,
//! which keep freed memory resident: a 1 GiB sort with two 64 MiB slots peaked at 782 MB, and
//! grew with the tasks run rather than with those running. A fixed threshold keeps every block
//! of [`LARGE_BLOCK`] or more in its own mapping, returned to the system when freed; that peak
//! fell to 224 MB, with no change in time.

/// Blocks at least this large are mapped on their own (glibc's default starts at 128 KiB). Above
/// the 4 MiB read chunks, which the heap reuses: mapped afresh, each cost its page faults.
const LARGE_BLOCK: i32 = 8 << 20;

/// Freed bytes an arena keeps at the top of its heap rather than returning them. Fixing the mmap
/// threshold also fixes glibc's trim threshold at its 128 KiB default, so each freed read chunk
/// (4 MiB, below [`LARGE_BLOCK`]) went back to the system and the next one faulted its pages in
/// afresh: 150,000 page faults in a word count of 1 GiB. Two chunks' room: 16 MiB per arena
/// took the sort of `bench/memory.sh` to 295 MiB, past its bound of 278 (slots x sort buffer +
/// 150 MiB); 8 MiB keeps it at 195 MiB and word count's faults at 40,000.
const KEPT_FREE: i32 = 8 << 20;

/// Fixes the allocator's mmap threshold for this process. Idempotent.
pub fn release_large_blocks_on_free() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets the allocator's tunables; any value is valid for
    // M_MMAP_THRESHOLD up to HEAP_MAX_SIZE / 2 (32 MiB on 64-bit).
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, LARGE_BLOCK);
        libc::mallopt(libc::M_TRIM_THRESHOLD, KEPT_FREE);
    }
}
