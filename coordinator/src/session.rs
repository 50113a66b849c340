//! Worker identity. Registering gives a worker an unguessable session secret (128 random bits);
//! every later call that names the worker must carry it in the [`SESSION_HEADER`] metadata, so
//! that nobody else can report, heartbeat, commit or leave in its name. Compared in constant
//! time.

use crate::state::State;
use quern_proto::SESSION_HEADER;
use quern_proto::ids::WorkerId;
use subtle::ConstantTimeEq;
use tonic::{Request, Status};

/// A fresh session secret, as hex.
pub fn new_session() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The session secret a request carries, if any.
pub fn session_of<T>(request: &Request<T>) -> &str {
    request
        .metadata()
        .get(SESSION_HEADER)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
}

impl State {
    /// Refuses a call naming `worker` whose session secret is not that worker's. A worker the
    /// coordinator does not know (or an id that does not parse: None) passes: the call's own
    /// checks find nothing it may touch.
    pub fn check_session(&self, worker: Option<WorkerId>, session: &str) -> Result<(), Status> {
        let Some(known) = worker.and_then(|id| self.workers.get(&id)) else {
            return Ok(());
        };
        if bool::from(known.session.as_bytes().ct_eq(session.as_bytes())) {
            return Ok(());
        }
        Err(Status::permission_denied(format!(
            "the call names {} but does not carry its session",
            known.id
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    #[test]
    fn a_call_naming_a_worker_needs_that_workers_session() {
        let mut state = State::default();
        let (a, _) = add_worker(&mut state, 1);
        let (b, _) = add_worker(&mut state, 1);
        let (secret_a, secret_b) = (
            state.workers[&a].session.clone(),
            state.workers[&b].session.clone(),
        );
        assert_eq!(secret_a.len(), 32);
        assert_ne!(secret_a, secret_b);
        assert!(state.check_session(Some(a), &secret_a).is_ok());
        for forged in ["", secret_b.as_str(), &secret_a[..31]] {
            let refused = state.check_session(Some(a), forged).unwrap_err();
            assert_eq!(refused.code(), tonic::Code::PermissionDenied);
            assert_eq!(
                refused.message(),
                format!("the call names {a} but does not carry its session")
            );
        }
        let unknown = Some(worker_id(99));
        assert!(
            state.check_session(unknown, "").is_ok(),
            "no one to protect"
        );
        assert!(
            state.check_session(None, "").is_ok(),
            "an id that names no one"
        );
    }
}
