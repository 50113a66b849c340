//! Keeps a worker's resident memory to what its running tasks hold, and puts the large buffers
//! a task reads at random on huge pages ([`advise_huge_pages`]).
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

/// Malloc arenas: one per core. glibc gives threads up to eight per core, each keeping its own
/// free memory, and a long job's threads touch more of them: word count's peak grew from 87 MiB
/// at 1 GiB to 105 at 10 GiB. One per core, as Hadoop's `MALLOC_ARENA_MAX=4` caps its daemons,
/// held it at 76 and 88 MiB, with page faults a third as many.
fn arenas() -> i32 {
    std::thread::available_parallelism().map_or(1, |n| i32::try_from(n.get()).unwrap_or(i32::MAX))
}

/// Fixes the allocator's mmap threshold and arena count for this process. Idempotent; arenas
/// made before the first call stay.
///
/// Fixing the mmap threshold also fixes glibc's trim threshold at its 128 KiB default, so each
/// arena returns what it frees at the top of its heap. Local read chunks, which would then be
/// faulted in afresh by each read (150,000 page faults in a word count of 1 GiB), never reach
/// the allocator: storage keeps their buffers for the next read.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets the allocator's tunables; any value is valid for
    // M_MMAP_THRESHOLD up to HEAP_MAX_SIZE / 2 (32 MiB on 64-bit), and any positive one for
    // M_ARENA_MAX.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, LARGE_BLOCK);
        libc::mallopt(libc::M_ARENA_MAX, arenas());
    }
}

/// The size of a transparent huge page on x86-64 and most arm64 kernels.
const HUGE_PAGE: usize = 2 << 20;

/// Asks the kernel to back the whole huge pages within `block` (a large allocation, mapped on its
/// own) with transparent huge pages where it allows them on request, as Debian's default
/// (`madvise`) does. A map's sort buffer is written once and then read in key order, at random:
/// on 4 KiB pages every 96 MiB buffer took 25,000 page faults to fill, and each record read a
/// TLB miss. Does nothing where huge pages are off, or on memory too small to hold one.
pub fn advise_huge_pages<T>(block: &[T]) {
    let start = block.as_ptr() as usize;
    let end = start + std::mem::size_of_val(block);
    let (first, last) = (
        start.next_multiple_of(HUGE_PAGE),
        end / HUGE_PAGE * HUGE_PAGE,
    );
    if last <= first {
        return;
    }
    #[cfg(target_os = "linux")]
    // SAFETY: MADV_HUGEPAGE changes only how the kernel backs these pages, never their contents,
    // and [first, last) lies within `block`, which the caller holds.
    unsafe {
        libc::madvise(
            first as *mut libc::c_void,
            last - first,
            libc::MADV_HUGEPAGE,
        );
    }
}
