//! Who may see the status page, its API and its metrics, when the cluster has a token. A request
//! gets in with `Authorization: Bearer TOKEN` (scripts, Prometheus), checked by the same
//! constant-time [`RequireToken`] as every gRPC call, or with a session cookie. A browser gets a
//! cookie from a one-time code, as Jupyter's login URL gives one: the coordinator prints
//! `/login?code=…` when it starts, and the code works once. Anyone else pastes the cluster token
//! into the login form. Without a cluster token, everything is open (the listener rule keeps such
//! a page on loopback).

use crate::session::new_session;
use quern_proto::auth::{RequireToken, Token};
use std::collections::VecDeque;
use std::sync::Mutex;
use subtle::ConstantTimeEq;
use tonic::service::Interceptor;

/// The cookie a logged-in browser carries.
pub const COOKIE: &str = "quern_session";
/// Browser sessions kept at most; past this the oldest is logged out.
const SESSIONS_KEPT: usize = 256;

/// The page's gatekeeper; see the module docs.
pub struct Access {
    token: Option<Token>,
    /// The login code not yet used, if any.
    code: Mutex<Option<String>>,
    /// Session cookies given, oldest first.
    sessions: Mutex<VecDeque<String>>,
    /// Cookies are marked `Secure`: the page is served over TLS.
    secure: bool,
}

/// Why an [`Access`] cannot be made.
#[derive(Debug, thiserror::Error)]
#[error("cannot make a login code for the status page: {0}")]
pub struct NoRandomness(#[source] pub getrandom::Error);

impl Access {
    /// Access to a page for the cluster of `token` (None: open), with a fresh one-time code.
    pub fn new(token: Option<Token>, secure: bool) -> Result<Access, NoRandomness> {
        let code = match token {
            Some(_) => Some(new_session().map_err(NoRandomness)?),
            None => None,
        };
        Ok(Access {
            token,
            code: Mutex::new(code),
            sessions: Mutex::new(VecDeque::new()),
            secure,
        })
    }

    /// Whether the page needs a login at all.
    pub fn required(&self) -> bool {
        self.token.is_some()
    }

    /// The one-time login code, while it is unused.
    pub fn code(&self) -> Option<String> {
        lock(&self.code).clone()
    }

    /// Whether a request with these headers may see the page.
    pub fn admits(&self, authorization: Option<&str>, cookie: Option<&str>) -> bool {
        if !self.required() {
            return true;
        }
        authorization.is_some_and(|header| self.bearer_matches(header))
            || cookie
                .and_then(session_cookie)
                .is_some_and(|s| self.has_session(s))
    }

    /// Whether `header` (an `Authorization` value) carries the cluster token.
    fn bearer_matches(&self, header: &str) -> bool {
        let Ok(value) = header.parse() else {
            return false;
        };
        let mut request = tonic::Request::new(());
        request.metadata_mut().insert("authorization", value);
        RequireToken(self.token.clone()).call(request).is_ok()
    }

    /// Whether `token`, typed into the login form, is the cluster token.
    pub fn token_matches(&self, token: &str) -> bool {
        self.bearer_matches(&format!("Bearer {}", token.trim()))
    }

    /// Uses up the one-time code if `given` is it; returns whether it was.
    pub fn take_code(&self, given: &str) -> bool {
        let mut code = lock(&self.code);
        let matches = code
            .as_deref()
            .is_some_and(|code| bool::from(code.as_bytes().ct_eq(given.as_bytes())));
        if matches {
            *code = None;
        }
        matches
    }

    /// A new browser session; returns the `Set-Cookie` value that carries it.
    pub fn open_session(&self) -> Result<String, NoRandomness> {
        let session = new_session().map_err(NoRandomness)?;
        let mut sessions = lock(&self.sessions);
        if sessions.len() >= SESSIONS_KEPT {
            sessions.pop_front();
        }
        sessions.push_back(session.clone());
        let secure = if self.secure { "; Secure" } else { "" };
        Ok(format!(
            "{COOKIE}={session}; Path=/; HttpOnly; SameSite=Strict{secure}"
        ))
    }

    fn has_session(&self, given: &str) -> bool {
        lock(&self.sessions).iter().fold(false, |found, s| {
            found | bool::from(s.as_bytes().ct_eq(given.as_bytes()))
        })
    }
}

/// The session in a `Cookie` header, if it has ours.
fn session_cookie(header: &str) -> Option<&str> {
    header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Nothing panics while holding these; if something did, the data is still whole.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "a-cluster-secret-of-some-length";

    fn access() -> Access {
        Access::new(Some(Token::new(TOKEN).unwrap()), false).unwrap()
    }

    #[test]
    fn the_login_code_works_once_and_gives_a_session() {
        let access = access();
        let code = access.code().unwrap();
        assert!(!access.take_code("not-the-code"));
        assert!(access.take_code(&code));
        assert!(!access.take_code(&code));
        assert_eq!(access.code(), None);
        let cookie = access.open_session().unwrap();
        assert!(cookie.ends_with("; Path=/; HttpOnly; SameSite=Strict"));
        let pair = cookie.split(';').next().unwrap();
        assert!(access.admits(None, Some(&format!("other=1; {pair}"))));
        assert!(!access.admits(None, Some("quern_session=forged")));
        assert!(!access.admits(None, None));
    }

    #[test]
    fn the_bearer_token_gets_in_and_no_other() {
        let access = access();
        assert!(access.admits(Some(&format!("Bearer {TOKEN}")), None));
        assert!(!access.admits(Some("Bearer a-cluster-secret-of-some-lengtX"), None));
        assert!(!access.admits(Some(TOKEN), None));
        assert!(access.token_matches(&format!(" {TOKEN}\n")));
        assert!(!access.token_matches("short"));
    }

    #[test]
    fn without_a_token_everything_is_open() {
        let access = Access::new(None, false).unwrap();
        assert!(access.admits(None, None));
        assert_eq!(access.code(), None);
    }
}
