//! The coordinator's edge with the wire. A worker's call names its worker, and a call about one
//! of its attempts also names the attempt's job, as text and numbers; here they become typed ids
//! once ([`AttemptCall`]), and nothing past this module compares ids as text. A call whose ids
//! do not parse names nothing the coordinator knows, and is treated so.

use quern_proto::ids::{AttemptId, JobId, WorkerId};
use quern_proto::{
    AssignmentsRequest, CommitRequest, FetchFailureReport, HeartbeatRequest, LeaveRequest,
    MapOutputLocationsRequest, OpenUploadRequest, TaskReport,
};

/// A request of a worker's, which names it.
pub trait FromWorker {
    fn worker_id(&self) -> &str;
}

/// A worker's call about one of its attempts: which attempt, of which job, on which worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptCall {
    pub attempt: AttemptId,
    pub job: JobId,
    pub worker: WorkerId,
}

/// A request about one attempt of a worker's.
pub trait AboutAttempt: FromWorker {
    fn job_id(&self) -> &str;
    fn attempt_id(&self) -> u64;

    /// The typed ids of the call; None if they do not parse.
    fn attempt_call(&self) -> Option<AttemptCall> {
        Some(AttemptCall {
            attempt: AttemptId(self.attempt_id()),
            job: self.job_id().parse().ok()?,
            worker: self.worker_id().parse().ok()?,
        })
    }
}

macro_rules! from_worker {
    ($($message:ty),*) => {$(
        impl FromWorker for $message {
            fn worker_id(&self) -> &str {
                &self.worker_id
            }
        }
    )*};
}

macro_rules! about_attempt {
    ($($message:ty),*) => {$(
        impl AboutAttempt for $message {
            fn job_id(&self) -> &str {
                &self.job_id
            }
            fn attempt_id(&self) -> u64 {
                self.attempt_id
            }
        }
    )*};
}

from_worker!(
    HeartbeatRequest,
    LeaveRequest,
    AssignmentsRequest,
    TaskReport,
    MapOutputLocationsRequest,
    OpenUploadRequest,
    CommitRequest,
    FetchFailureReport
);
about_attempt!(
    TaskReport,
    MapOutputLocationsRequest,
    OpenUploadRequest,
    CommitRequest,
    FetchFailureReport
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_parsed_once_and_garbage_names_nothing() {
        let report = TaskReport {
            worker_id: "worker-5-3".into(),
            job_id: "job-5-0012".into(),
            attempt_id: 7,
            ..TaskReport::default()
        };
        assert_eq!(
            report.attempt_call(),
            Some(AttemptCall {
                attempt: AttemptId(7),
                job: JobId {
                    incarnation: 5,
                    number: 12,
                },
                worker: WorkerId {
                    incarnation: 5,
                    number: 3,
                },
            })
        );
        for (job, worker) in [
            ("job-5-0012", ""),
            ("job-0012", "worker-5-3"),
            ("12", "worker-5-3"),
            ("job-5-0012", "worker-3"),
        ] {
            let garbage = TaskReport {
                job_id: job.into(),
                worker_id: worker.into(),
                ..report.clone()
            };
            assert_eq!(garbage.attempt_call(), None, "{job} {worker}");
        }
    }
}
