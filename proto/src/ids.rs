//! Typed ids, so that passing a job id where an attempt id belongs is a compile error. Each has a
//! stable text form used on the wire, in logs and in `quern status`.

use std::fmt;
use std::str::FromStr;

/// An id's text form could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error("invalid {kind} id '{text}'")]
pub struct InvalidId {
    pub kind: &'static str,
    pub text: String,
}

/// An id issued by one incarnation of the coordinator: the incarnation (its start time in
/// milliseconds since the epoch), and a number counted from 1 within it. A restarted coordinator
/// never issues an id it issued before. Ordered by incarnation, then number: oldest first.
macro_rules! incarnation_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal, $width:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name {
            pub incarnation: u64,
            pub number: u32,
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(
                    f,
                    concat!($prefix, "{}-{:0", $width, "}"),
                    self.incarnation, self.number
                )
            }
        }

        /// Only the text form an id displays as parses (`job-7-0012`, not `job-7-12` or
        /// `job-+7-0012`), so an id names exactly one directory or key.
        impl FromStr for $name {
            type Err = InvalidId;
            fn from_str(text: &str) -> Result<Self, InvalidId> {
                text.strip_prefix($prefix)
                    .and_then(|rest| rest.split_once('-'))
                    .and_then(|(incarnation, number)| {
                        Some($name {
                            incarnation: incarnation.parse().ok()?,
                            number: number.parse().ok()?,
                        })
                    })
                    .filter(|id| id.to_string() == text)
                    .ok_or_else(|| InvalidId {
                        kind: $kind,
                        text: text.to_string(),
                    })
            }
        }
    };
}

incarnation_id!(
    /// A job, as Hadoop's `job_1764130320123_0001` carries its cluster timestamp, so that a
    /// client following a job by id can never follow another by mistake. Text:
    /// `job-1764130320123-0001`.
    JobId,
    "job-",
    "job",
    4
);

incarnation_id!(
    /// A worker's registration: a worker that registers again (after its coordinator restarted,
    /// or declared it dead) gets a new id. Text: `worker-1764130320123-1`.
    WorkerId,
    "worker-",
    "worker",
    1
);

impl WorkerId {
    /// Names no registered worker (their numbers start at 1): one of an earlier incarnation of
    /// the coordinator, that did a task before a restart.
    pub const EARLIER: WorkerId = WorkerId {
        incarnation: 0,
        number: 0,
    };
}

/// Every task run is an attempt with its own id, unique within a coordinator's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AttemptId(pub u64);

impl fmt::Display for AttemptId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_text() {
        let job = JobId {
            incarnation: 1764130320123,
            number: 7,
        };
        assert_eq!(job.to_string(), "job-1764130320123-0007");
        assert_eq!("job-1764130320123-0007".parse::<JobId>().unwrap(), job);
        for bad in [
            "job-0007",
            "job--0007",
            "job-1-x",
            "1-0007",
            "job-1764130320123-7",
            "job-+1764130320123-0007",
            "job-1-0001/../x",
            "../job-1-0001",
        ] {
            assert!(bad.parse::<JobId>().is_err(), "{bad}");
        }
        let later = JobId {
            incarnation: job.incarnation + 1,
            number: 1,
        };
        assert!(job < later, "an earlier incarnation's jobs come first");
        let worker = WorkerId {
            incarnation: 5,
            number: 12,
        };
        assert_eq!("worker-5-12".parse::<WorkerId>().unwrap(), worker);
        assert_eq!(worker.to_string(), "worker-5-12");
        let err = "worker-x".parse::<WorkerId>().unwrap_err();
        assert_eq!(err.to_string(), "invalid worker id 'worker-x'");
    }
}
