//! Where a process's cluster token comes from (`--token-file` or `QUERN_TOKEN`, not both), the
//! rule every listener follows (an address other machines can reach needs a token, unless
//! `--allow-unauthenticated` says otherwise, and then it warns), and its TLS files.

use crate::args::{AuthArgs, TlsClientArgs, TlsServerArgs};
use anyhow::{Context as _, Result, anyhow, bail};
use quern_proto::auth::Token;
use quern_proto::tls::{ClientTls, server_config};
use std::net::SocketAddr;
use tonic::transport::ServerTlsConfig;

const TOKEN_VAR: &str = "QUERN_TOKEN";

/// The cluster token `args` and the environment give, if any.
pub fn token(args: &AuthArgs) -> Result<Option<Token>> {
    let from_env = std::env::var(TOKEN_VAR).ok();
    match (&args.token_file, from_env) {
        (Some(path), Some(_)) => bail!(
            "the token is given twice, in --token-file {} and in {TOKEN_VAR}; give one",
            path.display()
        ),
        (Some(path), None) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the token file {}", path.display()))?;
            let token = Token::new(&text)
                .map_err(|e| anyhow!("the token file {} cannot be used: {e}", path.display()))?;
            Ok(Some(token))
        }
        (None, Some(text)) => {
            let token = Token::new(&text)
                .map_err(|e| anyhow!("the token in {TOKEN_VAR} cannot be used: {e}"))?;
            Ok(Some(token))
        }
        (None, None) => Ok(None),
    }
}

/// The TLS a server's flags ask for, if any.
pub fn server_tls(args: &TlsServerArgs) -> Result<Option<ServerTlsConfig>> {
    match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Ok(Some(server_config(cert, key)?)),
        _ => Ok(None),
    }
}

/// How a client given `args` checks servers at `https://` addresses; a private CA is refused
/// for an `address` that is not one, which would ignore it.
pub fn client_tls(args: &TlsClientArgs, address: &str) -> Result<ClientTls> {
    if args.tls_ca.is_some() && !address.starts_with("https://") {
        bail!("--tls-ca is given, but {address} is not an https:// address");
    }
    Ok(ClientTls::load(args.tls_ca.as_deref())?)
}

/// Refuses to serve `what` on `listen`, reachable from other machines, without a token, unless
/// `allow_unauthenticated`; then it warns.
pub fn check_listener(
    what: &str,
    listen: SocketAddr,
    token: Option<&Token>,
    allow_unauthenticated: bool,
) -> Result<()> {
    if token.is_some() || listen.ip().is_loopback() {
        return Ok(());
    }
    if !allow_unauthenticated {
        bail!(
            "{what} on {listen} would be reachable from other machines without a token; give the \
             cluster a token (--token-file or {TOKEN_VAR}), or pass --allow-unauthenticated"
        );
    }
    tracing::warn!(%listen, "{what} serves without a token (--allow-unauthenticated): anyone who reaches it can use it");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_loopback_listener_may_go_without_a_token_unless_allowed() {
        let token = Token::new("a-cluster-secret-of-some-length").unwrap();
        let loopback: SocketAddr = "127.0.0.1:7070".parse().unwrap();
        let everywhere: SocketAddr = "0.0.0.0:7070".parse().unwrap();
        assert!(check_listener("the coordinator", loopback, None, false).is_ok());
        assert!(check_listener("the coordinator", everywhere, Some(&token), false).is_ok());
        assert!(check_listener("the coordinator", everywhere, None, true).is_ok());
        let refused = check_listener("the coordinator", everywhere, None, false).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "the coordinator on 0.0.0.0:7070 would be reachable from other machines without a \
             token; give the cluster a token (--token-file or QUERN_TOKEN), or pass \
             --allow-unauthenticated"
        );
    }

    #[test]
    fn a_token_file_is_read_trimmed_and_a_bad_one_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "a-cluster-secret-of-some-length\n").unwrap();
        let args = AuthArgs {
            token_file: Some(path.clone()),
        };
        // The variable is not set in unit tests.
        assert!(token(&args).unwrap().is_some());
        std::fs::write(&path, "short\n").unwrap();
        let error = token(&args).unwrap_err().to_string();
        assert_eq!(
            error,
            format!(
                "the token file {} cannot be used: the token is shorter than 16 characters",
                path.display()
            )
        );
        assert!(token(&AuthArgs::default()).unwrap().is_none());
    }
}
