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

numeric_id!(JobId, u32, "job-", "job", 4);
numeric_id!(WorkerId, u32, "worker-", "worker", 1);

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
        assert_eq!(JobId(7).to_string(), "job-0007");
        assert_eq!("job-0007".parse::<JobId>().unwrap(), JobId(7));
        assert_eq!("worker-12".parse::<WorkerId>().unwrap(), WorkerId(12));
        let err = "worker-x".parse::<WorkerId>().unwrap_err();
        assert_eq!(err.to_string(), "invalid worker id 'worker-x'");
    }
}
