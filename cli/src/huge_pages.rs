//! Transparent huge pages for the coordinator's heap. An idle coordinator's work is one small
//! heartbeat at a time, each touching its worker's few objects (its HTTP/2 stream, its task, its
//! decode buffer, its entry in the state) spread over the heap; with 2,000 workers they all went
//! cold since the last beat, and on a virtual machine each page the TLB lost is a two-level walk.
//! glibc puts its heap on huge pages when `GLIBC_TUNABLES` asks (`glibc.malloc.hugetlb=1`, where
//! the kernel's THP mode is `madvise` or `always`), which it reads only as the process starts: so
//! `quern coordinator` starts itself again with it. Measured against 2,000 heartbeating workers
//! (`bench/control_plane.sh`'s shape): the idle coordinator's CPU falls by about a fifth, for
//! about 35 MiB more resident memory. Setting `glibc.malloc.hugetlb` at all (`=0` to turn it off)
//! leaves the process as it is.

use std::ffi::{OsStr, OsString};

const TUNABLES: &str = "GLIBC_TUNABLES";
const HUGE_PAGES: &str = "glibc.malloc.hugetlb";

/// Runs this program again in place, with the same arguments and a heap on huge pages, unless
/// `GLIBC_TUNABLES` already says how the heap should be. Returns only if it did not (the reason,
/// if it failed, for the log).
pub fn restart_with_huge_pages() -> Option<std::io::Error> {
    let tunables = with_huge_pages(std::env::var_os(TUNABLES).as_deref())?;
    restart_with(&tunables)
}

/// `GLIBC_TUNABLES` as `current` is, plus huge pages for the heap; None if it sets them already.
fn with_huge_pages(current: Option<&OsStr>) -> Option<OsString> {
    let asked = format!("{HUGE_PAGES}=1");
    let Some(current) = current.filter(|c| !c.is_empty()) else {
        return Some(asked.into());
    };
    if current.to_string_lossy().contains(HUGE_PAGES) {
        return None;
    }
    let mut tunables = current.to_os_string();
    tunables.push(":");
    tunables.push(asked);
    Some(tunables)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn restart_with(tunables: &OsStr) -> Option<std::io::Error> {
    use std::os::unix::process::CommandExt;
    let mut args = std::env::args_os();
    let name = args.next().unwrap_or_else(|| "quern".into());
    // `exec` returns only if it failed; on success this process is the new program, same pid.
    let error = std::process::Command::new("/proc/self/exe")
        .arg0(name)
        .args(args)
        .env(TUNABLES, tunables)
        .exec();
    Some(error)
}

/// Only glibc reads the tunable.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn restart_with(_tunables: &OsStr) -> Option<std::io::Error> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_pages_are_asked_for_when_the_heap_is_not_configured() {
        assert_eq!(with_huge_pages(None), Some("glibc.malloc.hugetlb=1".into()));
        assert_eq!(
            with_huge_pages(Some(OsStr::new(""))),
            Some("glibc.malloc.hugetlb=1".into())
        );
    }

    #[test]
    fn other_tunables_are_kept() {
        assert_eq!(
            with_huge_pages(Some(OsStr::new("glibc.malloc.arena_max=2"))),
            Some("glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1".into())
        );
    }

    /// Also what stops the restarted process from restarting again.
    #[test]
    fn a_heap_already_configured_is_left_alone() {
        assert_eq!(
            with_huge_pages(Some(OsStr::new("glibc.malloc.hugetlb=0"))),
            None
        );
        assert_eq!(
            with_huge_pages(Some(OsStr::new("glibc.malloc.hugetlb=1"))),
            None
        );
    }
}
