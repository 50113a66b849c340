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

macro_rules! numeric_id {
    ($name:ident, $inner:ty, $prefix:literal, $kind:literal, $width:literal) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub $inner);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{:0", $width, "}"), self.0)
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;
            fn from_str(text: &str) -> Result<Self, InvalidId> {
                text.strip_prefix($prefix)
                    .and_then(|n| n.parse().ok())
                    .map($name)
                    .ok_or_else(|| InvalidId {
                        kind: $kind,
                        text: text.to_string(),
                    })
            }
        }
    };
}

numeric_id!(WorkerId, u32, "worker-", "worker", 1);

/// A job: the incarnation of the coordinator that accepted it, and its number there. An
/// incarnation is the coordinator's start time in milliseconds since the epoch (as Hadoop's
/// cluster timestamp in `job_1764130320123_0001`), so a restarted coordinator never issues an id
/// it issued before, and a client following a job by id can never follow another by mistake.
/// Text: `job-1764130320123-0001`. Ordered by incarnation, then number: oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobId {
    pub incarnation: u64,
    pub number: u32,
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "job-{}-{:04}", self.incarnation, self.number)
    }
}

impl FromStr for JobId {
    type Err = InvalidId;
    fn from_str(text: &str) -> Result<Self, InvalidId> {
        text.strip_prefix("job-")
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(incarnation, number)| {
                Some(JobId {
                    incarnation: incarnation.parse().ok()?,
                    number: number.parse().ok()?,
                })
            })
            .ok_or_else(|| InvalidId {
                kind: "job",
                text: text.to_string(),
            })
    }
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
        for bad in ["job-0007", "job--0007", "job-1-x", "1-0007"] {
            assert!(bad.parse::<JobId>().is_err(), "{bad}");
        }
        let later = JobId {
            incarnation: job.incarnation + 1,
            number: 1,
        };
        assert!(job < later, "an earlier incarnation's jobs come first");
        assert_eq!("worker-12".parse::<WorkerId>().unwrap(), WorkerId(12));
        let err = "worker-x".parse::<WorkerId>().unwrap_err();
        assert_eq!(err.to_string(), "invalid worker id 'worker-x'");
    }
}
