//! TLS on every connection, with rustls through tonic (no OpenSSL). A server (the coordinator, a
//! worker's shuffle service) presents a certificate and key given as PEM files; a client trusts
//! a private CA given as a PEM file, or else the system's roots. An `https://` address always
//! gets TLS: tonic refuses to send plain text to one, and a plain `http://` address never gets
//! TLS, so which one a connection uses is always the one its URL says.

use std::path::{Path, PathBuf};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};

/// A TLS file that cannot be used; names it.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the {what} {}: {source}", .path.display())]
pub struct TlsFileError {
    pub what: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsFileError> {
    std::fs::read(path).map_err(|source| TlsFileError {
        what,
        path: path.to_path_buf(),
        source,
    })
}

/// Makes ring rustls's cryptography for this process. Two providers are linked in (object_store
/// brings aws-lc-rs), and rustls then wants one chosen before any TLS is set up; choosing it
/// again is a no-op.
fn choose_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// What a server presents: the certificate chain in `cert` and its private key in `key`.
pub fn server_config(cert: &Path, key: &Path) -> Result<ServerTlsConfig, TlsFileError> {
    choose_crypto();
    let identity = Identity::from_pem(read("certificate", cert)?, read("key", key)?);
    Ok(ServerTlsConfig::new().identity(identity))
}

/// How a client checks the servers it calls: against a private CA, or the system's roots.
#[derive(Clone, Debug, Default)]
pub struct ClientTls {
    ca: Option<Certificate>,
}

impl ClientTls {
    /// Trusts the CA certificate in `ca` (PEM), or the system's roots if None.
    pub fn load(ca: Option<&Path>) -> Result<ClientTls, TlsFileError> {
        let ca = match ca {
            Some(path) => Some(Certificate::from_pem(read("CA certificate", path)?)),
            None => None,
        };
        Ok(ClientTls { ca })
    }

    /// Whether a private CA was given.
    pub fn has_ca(&self) -> bool {
        self.ca.is_some()
    }

    /// An endpoint for `address`: with TLS, checked against the CA or the system's roots, if it
    /// is an `https://` URL; plain otherwise.
    pub fn endpoint(&self, address: &str) -> Result<Endpoint, tonic::transport::Error> {
        let endpoint = Endpoint::from_shared(address.to_string())?;
        if endpoint.uri().scheme_str() != Some("https") {
            return Ok(endpoint);
        }
        choose_crypto();
        let config = match &self.ca {
            Some(ca) => ClientTlsConfig::new().ca_certificate(ca.clone()),
            None => ClientTlsConfig::new().with_native_roots(),
        };
        endpoint.tls_config(config)
    }
}

/// What to tell a user whose connection to `address` failed with `error` (its text) because the
/// two ends disagree about TLS, if that is what it looks like.
pub fn mismatch_hint(address: &str, error: &str) -> Option<&'static str> {
    if address.starts_with("https://") && error.contains("InvalidContentType") {
        Some("the server does not serve TLS; use an http:// address")
    } else if address.starts_with("http://")
        // A TLS server closes the connection, or its first bytes (a TLS alert) read as a bad
        // HTTP/2 frame.
        && (error.contains("connection closed") || error.contains("h2 protocol error"))
    {
        Some("if the server serves TLS, use an https:// address")
    } else {
        None
    }
}
