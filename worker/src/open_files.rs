//! The worker's open-file limit. A reduce's merge holds a file open for each map output it reads
//! from disk, so a job of a thousand maps needs more than the 1,024 files many systems allow a
//! process by default; a worker raises its own limit as far as the system lets it, as Go's runtime
//! does for every program, and Hadoop's install guides have operators do by hand.

/// Raises this process's soft limit on open files to its hard limit. A system that refuses
/// leaves the limit as it was, with a warning: the worker still runs, and jobs of fewer maps
/// are unaffected.
pub fn raise_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let raised = getrlimit(Resource::RLIMIT_NOFILE).and_then(|(soft, hard)| {
        if soft < hard {
            setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
        }
        Ok((soft, hard))
    });
    match raised {
        Ok((soft, hard)) if soft < hard => {
            tracing::debug!(from = soft, to = hard, "raised the open-file limit")
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }
}
