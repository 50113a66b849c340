//! The cluster secret. Every call to a Quern server (the coordinator, a worker's shuffle service)
//! carries the cluster's token in its `authorization` metadata (`Bearer TOKEN`), added by
//! [`SendToken`]; every server checks it with [`RequireToken`], one interceptor layered over the
//! whole server, so that every method, including ones added later, is covered. The comparison is
//! in constant time. A token never appears in a `Debug` or `Display` form.

use std::fmt;
use std::sync::Arc;
use subtle::ConstantTimeEq;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::{Request, Status};

const HEADER: &str = "authorization";
const SCHEME: &str = "Bearer ";
/// Shortest token accepted: a guessable secret protects nothing.
pub const MIN_TOKEN_CHARS: usize = 16;
/// What a server says to a call without a token, and to one with the wrong token. Clients turn
/// these into a line that says which flag to give (see [`refusal`]).
const NO_TOKEN: &str = "this server requires the cluster token";
const WRONG_TOKEN: &str = "this server refused the token";

/// The cluster's shared secret.
#[derive(Clone)]
pub struct Token(Arc<MetadataValue<Ascii>>);

/// A token that cannot be used; never holds the token itself.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the token is empty")]
    Empty,
    #[error("the token is shorter than {MIN_TOKEN_CHARS} characters")]
    TooShort,
    #[error("the token may hold only printable ASCII characters, without spaces")]
    NotPrintable,
}

impl Token {
    /// The token in `text`, without the whitespace around it (a token file ends with a newline).
    pub fn new(text: &str) -> Result<Token, TokenError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(TokenError::Empty);
        }
        if !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(TokenError::NotPrintable);
        }
        if text.len() < MIN_TOKEN_CHARS {
            return Err(TokenError::TooShort);
        }
        let header = format!("{SCHEME}{text}")
            .parse()
            .map_err(|_| TokenError::NotPrintable)?;
        Ok(Token(Arc::new(header)))
    }

    /// A fresh random token (256 bits, as hex), for a cluster of one process (`quern run`).
    pub fn random() -> Result<Token, getrandom::Error> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)?;
        let text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Ok(Token::new(&text).expect("64 hex digits make a valid token"))
    }

    fn matches(&self, header: &MetadataValue<Ascii>) -> bool {
        bool::from(self.0.as_bytes().ct_eq(header.as_bytes()))
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(…)")
    }
}

/// Server side: refuses every call that does not carry the token, with `Unauthenticated`. With
/// no token (`--allow-unauthenticated`), lets every call through.
#[derive(Clone, Debug)]
pub struct RequireToken(pub Option<Token>);

impl Interceptor for RequireToken {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let Some(token) = &self.0 else {
            return Ok(request);
        };
        match request.metadata().get(HEADER) {
            None => Err(Status::unauthenticated(NO_TOKEN)),
            Some(given) if token.matches(given) => Ok(request),
            Some(_) => Err(Status::unauthenticated(WRONG_TOKEN)),
        }
    }
}

/// Client side: puts the token, if any, in every call's metadata.
#[derive(Clone, Debug, Default)]
pub struct SendToken(pub Option<Token>);

impl Interceptor for SendToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(token) = &self.0 {
            request.metadata_mut().insert(HEADER, (*token.0).clone());
        }
        Ok(request)
    }
}

/// What a client tells its user when `server` (named as the user gave it: `the coordinator at
/// http://…`) refused a call for want of the right token; None if `status` is not that.
pub fn refusal(status: &Status, server: &str) -> Option<String> {
    if status.code() != tonic::Code::Unauthenticated {
        return None;
    }
    Some(if status.message() == WRONG_TOKEN {
        format!("{server} refused the token")
    } else {
        format!("{server} requires a token (--token-file or QUERN_TOKEN)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(send: Option<Token>, require: Option<Token>) -> Result<(), Status> {
        let request = SendToken(send).call(Request::new(()))?;
        RequireToken(require).call(request).map(drop)
    }

    #[test]
    fn only_the_same_token_passes_and_the_refusal_says_which_flag_to_give() {
        let token = Token::new("a-cluster-secret-of-some-length\n").unwrap();
        let other = Token::new("another-secret-of-some-length").unwrap();
        assert!(call(Some(token.clone()), Some(token.clone())).is_ok());
        assert!(call(None, None).is_ok(), "no token required");
        let server = "the coordinator at http://10.0.0.1:7070";
        let missing = call(None, Some(token.clone())).unwrap_err();
        assert_eq!(
            refusal(&missing, server).unwrap(),
            "the coordinator at http://10.0.0.1:7070 requires a token (--token-file or QUERN_TOKEN)"
        );
        let wrong = call(Some(other), Some(token)).unwrap_err();
        assert_eq!(
            refusal(&wrong, server).unwrap(),
            "the coordinator at http://10.0.0.1:7070 refused the token"
        );
        assert_eq!(refusal(&Status::unavailable("down"), server), None);
    }

    #[test]
    fn a_token_must_be_long_and_printable_and_never_shows() {
        assert!(matches!(Token::new(" \n"), Err(TokenError::Empty)));
        assert!(matches!(Token::new("short"), Err(TokenError::TooShort)));
        assert!(matches!(
            Token::new("has a space in the middle"),
            Err(TokenError::NotPrintable)
        ));
        let random = Token::random().unwrap();
        assert_eq!(format!("{random:?}"), "Token(…)");
        assert_ne!(random.0.as_bytes(), Token::random().unwrap().0.as_bytes());
    }
}
