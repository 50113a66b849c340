//! The words people read for the wire's enums, and a task's short name (`m-00003`): what `quern
//! status` prints, its JSON, and the coordinator's status page all say the same.

use crate::{AttemptState, JobState, TaskKind};

/// `running`, `succeeded` or `failed`; `unknown` for a value this build does not know.
pub fn job_state(state: i32) -> &'static str {
    match JobState::try_from(state) {
        Ok(JobState::Running) => "running",
        Ok(JobState::Succeeded) => "succeeded",
        Ok(JobState::Failed) => "failed",
        _ => "unknown",
    }
}

/// `running`, `succeeded`, `failed` or `killed`; `unknown` for a value this build does not know.
pub fn attempt_state(state: i32) -> &'static str {
    match AttemptState::try_from(state) {
        Ok(AttemptState::Running) => "running",
        Ok(AttemptState::Succeeded) => "succeeded",
        Ok(AttemptState::Failed) => "failed",
        Ok(AttemptState::Killed) => "killed",
        _ => "unknown",
    }
}

/// `map`, `sample` or `reduce`; its first letter starts a task's name.
pub fn task_kind(kind: i32) -> &'static str {
    match TaskKind::try_from(kind) {
        Ok(TaskKind::Map) => "map",
        Ok(TaskKind::Sample) => "sample",
        _ => "reduce",
    }
}

/// A task's short name: its kind's first letter and its index, `m-00003`, `r-00000`.
pub fn task(kind: i32, index: u32) -> String {
    format!("{}-{index:05}", &task_kind(kind)[..1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_is_named_by_its_kinds_letter_and_index() {
        assert_eq!(task(TaskKind::Map as i32, 3), "m-00003");
        assert_eq!(task(TaskKind::Reduce as i32, 0), "r-00000");
        assert_eq!(task(TaskKind::Sample as i32, 12), "s-00012");
    }
}
