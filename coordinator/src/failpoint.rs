//! Test only: a coordinator frozen at a precise moment, so that an end-to-end test can kill it
//! there and prove a restart recovers (`tests/coordinator_restart.rs`). A no-op unless its
//! environment variable is set.
//!
//! - **Every partition committed, `_SUCCESS` not yet written**: with
//!   `QUERN_TEST_STOP_BEFORE_SUCCESS=PATH`, the coordinator that claims `PATH` before writing a
//!   job's `_SUCCESS` writes the job id to it (one line) and stops its whole process with
//!   SIGSTOP. A coordinator started again with the same variable finds the marker and goes on.
//! - **A partition committed, its reduce not yet answered**: with
//!   `QUERN_TEST_STOP_AFTER_COMMIT=PATH`, the coordinator that claims `PATH` once it has made a
//!   reduce attempt's output final writes `JOB r-NNNNN ATTEMPT` to it and stops likewise.

use crate::commit::TaskCommit;
use quern_proto::failpoint::{append, claim, stop_this_process};
use quern_proto::ids::JobId;
use std::path::PathBuf;
use std::sync::LazyLock;

static STOP_BEFORE_SUCCESS: LazyLock<Option<PathBuf>> =
    LazyLock::new(|| std::env::var_os("QUERN_TEST_STOP_BEFORE_SUCCESS").map(PathBuf::from));
static STOP_AFTER_COMMIT: LazyLock<Option<PathBuf>> =
    LazyLock::new(|| std::env::var_os("QUERN_TEST_STOP_AFTER_COMMIT").map(PathBuf::from));

/// Called before `_SUCCESS` of `job` is written; see the module.
pub fn stop_before_success(job: JobId) {
    stop_at(
        STOP_BEFORE_SUCCESS.as_ref(),
        &job.to_string(),
        "before _SUCCESS",
    );
}

/// Called once `commit` made its attempt's output final; see the module.
pub fn stop_after_commit(commit: &TaskCommit) {
    let who = format!("{} {} {}", commit.job, commit.task, commit.attempt.0);
    stop_at(STOP_AFTER_COMMIT.as_ref(), &who, "after a commit");
}

/// If `marker` is set and this process claims it: writes `who` to it and stops.
fn stop_at(marker: Option<&PathBuf>, who: &str, moment: &str) {
    let Some(marker) = marker else {
        return;
    };
    let stopped = claim(marker).and_then(|claimed| {
        if claimed {
            append(marker, &format!("{who}\n"))?;
            tracing::warn!(who, "test failpoint: stopping the coordinator {moment}");
            stop_this_process()?;
        }
        Ok(())
    });
    if let Err(e) = stopped {
        tracing::warn!(error = %e, "test failpoint: cannot stop the coordinator {moment}");
    }
}
