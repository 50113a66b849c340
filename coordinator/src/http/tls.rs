//! The status page over TLS, with the coordinator's own certificate and key (`--tls-cert`,
//! `--tls-key`): rustls with ring, as every other listener of Quern, through tokio-rustls, and
//! each connection served by hyper as axum would serve it. A handshake that fails ends that
//! connection only.

use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use rustls_pki_types::pem::{Error as PemError, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// A certificate or key the page cannot serve TLS with; names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the {what} {} for the status page: {source}", .path.display())]
    Pem {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    #[error("cannot serve TLS with the certificate {} and key {}: {source}", .cert.display(), .key.display())]
    Config {
        cert: PathBuf,
        key: PathBuf,
        #[source]
        source: rustls::Error,
    },
}

/// Accepts TLS connections with one certificate.
#[derive(Clone)]
pub struct Acceptor(TlsAcceptor);

impl Acceptor {
    /// Loads the certificate chain in `cert` and its key in `key` (PEM).
    pub fn load(cert: &Path, key: &Path) -> Result<Acceptor, TlsError> {
        fn pem(what: &'static str, path: &Path) -> impl FnOnce(PemError) -> TlsError {
            let path = path.to_path_buf();
            move |source| TlsError::Pem { what, path, source }
        }
        let chain = CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(pem("certificate", cert))?;
        let private = PrivateKeyDer::from_pem_file(key).map_err(pem("key", key))?;
        let config_error = |source| TlsError::Config {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            source,
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(config_error)?
            .with_no_client_auth()
            .with_single_cert(chain, private)
            .map_err(config_error)?;
        Ok(Acceptor(TlsAcceptor::from(Arc::new(config))))
    }
}

/// Serves `router` over TLS on `listener` until `stop` completes.
pub async fn serve(
    listener: TcpListener,
    acceptor: Acceptor,
    router: Router,
    stop: impl Future<Output = ()> + Send + 'static,
) {
    tokio::pin!(stop);
    loop {
        let accepted = tokio::select! {
            () = &mut stop => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                tokio::spawn(connection(stream, acceptor.clone(), router.clone()));
            }
            Err(e) => tracing::warn!(error = %e, "the status page cannot accept a connection"),
        }
    }
}

async fn connection(stream: tokio::net::TcpStream, acceptor: Acceptor, router: Router) {
    let peer = stream.peer_addr().ok();
    let stream = match acceptor.0.accept(stream).await {
        Ok(stream) => stream,
        Err(e) => {
            tracing::debug!(?peer, error = %e, "TLS handshake with the status page failed");
            return;
        }
    };
    let service = TowerToHyperService::new(router);
    if let Err(e) = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await
    {
        tracing::debug!(?peer, error = %e, "a status page connection ended");
    }
}
