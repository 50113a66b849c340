//! Test support: an S3-compatible server (s3s-fs, which checks request signatures) embedded in the
//! test process on a loopback port, with its own runtime thread, so tests talk to a real S3 API
//! over real HTTP. Objects live as plain files under [`S3Server::root`]. And [`certificates`]:
//! a test CA and a certificate it signed, for TLS tests.

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

pub const ACCESS_KEY: &str = "quern-test-access-key";
pub const SECRET_KEY: &str = "quern-test-secret-key";
pub const REGION: &str = "us-east-1";

pub struct S3Server {
    pub endpoint: String,
    dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl S3Server {
    /// Starts a server on `127.0.0.1:0` and returns once it accepts connections.
    pub fn start() -> S3Server {
        let dir = tempfile::tempdir().expect("a temporary directory for the S3 server");
        let root = dir.path().to_path_buf();
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a runtime for the S3 server");
            runtime.block_on(serve(root, ready_tx, stop_rx));
        });
        let endpoint = ready_rx.recv().expect("the S3 server starts");
        S3Server {
            endpoint,
            dir,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// Where the objects live: `root/BUCKET/KEY`.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Creates a bucket (a directory under the root).
    pub fn create_bucket(&self, bucket: &str) {
        std::fs::create_dir_all(self.root().join(bucket)).expect("bucket directory");
    }

    /// Writes an object directly into the server's storage.
    pub fn put_file(&self, bucket: &str, key: &str, data: &[u8]) {
        let path = self.root().join(bucket).join(key);
        std::fs::create_dir_all(path.parent().expect("a key has a parent"))
            .expect("key directories");
        std::fs::write(path, data).expect("object file");
    }

    /// The bytes of an object, read from the server's storage.
    pub fn object(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        std::fs::read(self.root().join(bucket).join(key)).ok()
    }

    /// Multipart uploads that were started and neither completed nor aborted.
    pub fn open_uploads(&self) -> Vec<String> {
        let mut open: Vec<String> = std::fs::read_dir(self.root())
            .expect("server root")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|name| name.starts_with(".upload-") && name.ends_with(".json"))
            .collect();
        open.sort();
        open
    }

    /// The environment a `quern` process needs to reach this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_string()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_string()),
            ("AWS_REGION", REGION.to_string()),
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".to_string()),
        ]
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(
    root: PathBuf,
    ready: mpsc::Sender<String>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let fs = s3s_fs::FileSystem::new(root).expect("s3s-fs over the root directory");
    let mut builder = S3ServiceBuilder::new(fs);
    builder.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
    let service = builder.build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let address = listener.local_addr().expect("the bound address");
    let _ = ready.send(format!("http://{address}"));
    let http = ConnBuilder::new(TokioExecutor::new());
    loop {
        let socket = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => socket,
                Err(_) => continue,
            },
            _ = &mut stop => return,
        };
        // Small responses must not wait ~40 ms for a delayed ACK (Nagle).
        let _ = socket.set_nodelay(true);
        let connection = http
            .serve_connection(TokioIo::new(socket), service.clone())
            .into_owned();
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }
}

/// Test TLS material: a CA and a certificate it signed for 127.0.0.1 and localhost, written as
/// PEM files `NAME-ca.pem`, `NAME-cert.pem` and `NAME-key.pem` in `dir`; returns their paths
/// (CA certificate, certificate, key). Made with rcgen and ring, so no OpenSSL is needed.
pub fn certificates(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, format!("{name} CA"));
    let ca_key = rcgen::KeyPair::generate().expect("a CA key");
    let ca = rcgen::CertifiedIssuer::self_signed(ca, ca_key).expect("a CA certificate");
    let key = rcgen::KeyPair::generate().expect("a key");
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".into()])
        .expect("certificate parameters")
        .signed_by(&key, &*ca)
        .expect("a certificate");
    let paths = (
        dir.join(format!("{name}-ca.pem")),
        dir.join(format!("{name}-cert.pem")),
        dir.join(format!("{name}-key.pem")),
    );
    std::fs::write(&paths.0, ca.pem()).expect("write the CA certificate");
    std::fs::write(&paths.1, cert.pem()).expect("write the certificate");
    std::fs::write(&paths.2, key.serialize_pem()).expect("write the key");
    paths
}

/// The input files of a bench baseline in `dir`, sorted: as Quern lists a directory, names
/// starting with `.` or `_` (markers such as `_SUCCESS`) are not input.
pub fn input_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_file() && !name.starts_with('.') && !name.starts_with('_') {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}
