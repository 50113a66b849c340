//! For the status page tests: a cluster whose coordinator serves `--http`, a bare HTTP/1.0
//! client (no dependency, and nothing between the test and what the server sends), a parser of
//! the Prometheus text format, and headless Chromium.

use super::{Cluster, Processes, QUERN};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A cluster with its status page.
pub struct PageCluster {
    pub cluster: Cluster,
    /// `http://127.0.0.1:PORT/`.
    pub page: String,
    /// The one-time login URL the coordinator printed, if the cluster has a token.
    pub login: Option<String>,
}

/// Starts a coordinator with `--http 127.0.0.1:0` and `flags`, every process with `env`, and
/// `workers` workers of `slots` slots, ready.
pub fn start_with_page(
    env: Vec<(&'static str, String)>,
    workers: usize,
    slots: u32,
    flags: &[&str],
) -> PageCluster {
    let mut coordinator = Command::new(QUERN)
        .args([
            "coordinator",
            "--listen",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
        ])
        .args(flags)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("coordinator starts");
    let mut stdout = BufReader::new(coordinator.stdout.take().unwrap());
    let address = line_after(&mut stdout, "quern coordinator listening on ");
    let page = line_after(&mut stdout, "quern status page on ");
    let login = env
        .iter()
        .any(|(k, _)| *k == "QUERN_TOKEN")
        .then(|| login_line(coordinator.stderr.take().unwrap()));
    let mut cluster = Cluster {
        address,
        processes: Processes(vec![coordinator]),
        env,
        worker_binary: PathBuf::from(QUERN),
        logs: None,
    };
    for _ in 0..workers {
        cluster.add_worker(slots);
    }
    cluster.wait_for_ready_workers(workers);
    PageCluster {
        cluster,
        page,
        login,
    }
}

fn line_after(reader: &mut impl BufRead, prefix: &str) -> String {
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    line.trim()
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("expected {prefix:?} from the coordinator, got {line:?}"))
        .to_string()
}

/// The login URL from a coordinator's (or `quern run`'s) stderr; the rest of its stderr is
/// drained in the background (to the test's stderr with QUERN_TEST_LOGS), so that it never
/// blocks on a pipe.
pub fn login_line(stderr: impl Read + Send + 'static) -> String {
    let (found, receive) = mpsc::channel();
    let show = std::env::var_os("QUERN_TEST_LOGS").is_some();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if show {
                eprintln!("{line}");
            }
            if let Some(rest) = line.split("log in to the status page at ").nth(1) {
                let url = rest.split_whitespace().next().unwrap_or_default();
                let _ = found.send(url.to_string());
            }
        }
    });
    receive
        .recv_timeout(Duration::from_secs(10))
        .expect("the coordinator prints a login URL")
}

/// An HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `GET url` (an `http://` URL) with `headers`, over HTTP/1.0 (no chunking, no keep-alive).
pub fn get(url: &str, headers: &[(&str, &str)]) -> Response {
    let (host, path) = host_and_path(url, "http://");
    let stream = connect(host);
    exchange(stream, host, path, headers)
}

/// `GET url` (an `https://` URL) over TLS, trusting only the CA certificate in `ca` (PEM).
pub fn get_tls(url: &str, ca: &Path, headers: &[(&str, &str)]) -> Response {
    use rustls::pki_types::pem::PemObject;
    let (host, path) = host_and_path(url, "https://");
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let ip = host.rsplit_once(':').unwrap().0.to_string();
    let name = rustls::pki_types::ServerName::try_from(ip).unwrap();
    let tls = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    exchange(
        rustls::StreamOwned::new(tls, connect(host)),
        host,
        path,
        headers,
    )
}

fn host_and_path<'a>(url: &'a str, scheme: &str) -> (&'a str, &'a str) {
    let rest = url
        .strip_prefix(scheme)
        .unwrap_or_else(|| panic!("{url} is not a {scheme} URL"));
    match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash..]),
        None => (rest, "/"),
    }
}

fn connect(host: &str) -> TcpStream {
    let stream = TcpStream::connect(host).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

fn exchange(
    mut stream: impl Read + Write,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Response {
    let mut request = format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    // A TLS server may close without close_notify once it has answered: what came is the answer.
    if let Err(e) = stream.read_to_end(&mut raw) {
        assert!(!raw.is_empty(), "no answer from {host}: {e}");
    }
    let raw = String::from_utf8_lossy(&raw);
    let (head, body) = raw.split_once("\r\n\r\n").expect("a header block");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {head:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Response {
        status,
        headers,
        body: body.to_string(),
    }
}

/// One sample of the Prometheus text format.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Parses the Prometheus text format (as prometheus-client writes it: OpenMetrics-style, with
/// `# EOF` last), failing on anything malformed: a sample line that is not
/// `NAME{LABEL="VALUE",…} NUMBER`, a sample of a family with no `# TYPE`, a missing `# EOF`.
pub fn parse_metrics(text: &str) -> Vec<Sample> {
    let mut typed: Vec<String> = Vec::new();
    let mut samples = Vec::new();
    let mut ended = false;
    for line in text.lines() {
        assert!(!ended, "a line after # EOF: {line:?}");
        if line == "# EOF" {
            ended = true;
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let name = parts.next().expect("a family name");
            let kind = parts.next().expect("a family type");
            assert!(
                [
                    "counter",
                    "gauge",
                    "histogram",
                    "summary",
                    "unknown",
                    "info"
                ]
                .contains(&kind),
                "type {kind:?} in {line:?}"
            );
            typed.push(name.to_string());
        } else if line.starts_with("# HELP ") || line.starts_with("# UNIT ") {
        } else {
            let sample = parse_sample(line);
            assert!(
                typed
                    .iter()
                    .any(|family| sample.name.starts_with(family.as_str())),
                "a sample of no declared family: {line:?}"
            );
            samples.push(sample);
        }
    }
    assert!(ended, "no # EOF at the end");
    samples
}

fn parse_sample(line: &str) -> Sample {
    let (series, value) = line
        .rsplit_once(' ')
        .unwrap_or_else(|| panic!("no value in {line:?}"));
    let value: f64 = value
        .parse()
        .unwrap_or_else(|_| panic!("value not a number in {line:?}"));
    let (name, labels) = match series.split_once('{') {
        Some((name, rest)) => {
            let inner = rest
                .strip_suffix('}')
                .unwrap_or_else(|| panic!("unclosed labels in {line:?}"));
            (name, parse_labels(inner, line))
        }
        None => (series, BTreeMap::new()),
    };
    assert!(
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
        "bad metric name in {line:?}"
    );
    Sample {
        name: name.to_string(),
        labels,
        value,
    }
}

/// `a="x",b="y"` (values without commas or escaped quotes, as ours are).
fn parse_labels(inner: &str, line: &str) -> BTreeMap<String, String> {
    inner
        .split(',')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair
                .split_once('=')
                .unwrap_or_else(|| panic!("bad label {pair:?} in {line:?}"));
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or_else(|| panic!("unquoted label value in {line:?}"));
            (key.to_string(), value.to_string())
        })
        .collect()
}

/// The sum of the samples named `name` whose labels include all of `labels`.
pub fn sum(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

/// Headless Chromium, if there is one. Missing, it fails the test when `QUERN_BROWSER=require`
/// (CI installs it); otherwise it returns None, and the test says it skips.
pub fn chromium() -> Option<PathBuf> {
    let found = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var("QUERN_BROWSER").as_deref() != Ok("require"),
            "Chromium is not installed, and QUERN_BROWSER=require: apt-get install -y chromium"
        );
        eprintln!("SKIPPED: Chromium is not installed (apt-get install -y chromium)");
    }
    found
}

/// Runs headless Chromium on `url` with `extra` flags, in a fresh profile; returns its stdout.
pub fn browse(chromium: &Path, url: &str, extra: &[&str]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let output = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .expect("chromium runs");
    assert!(
        output.status.success(),
        "chromium failed on {url}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The DOM of `url` after Chromium rendered it.
pub fn dump_dom(chromium: &Path, url: &str) -> String {
    browse(chromium, url, &["--dump-dom"])
}

/// A 1280×800 screenshot of `url`, written to `png`.
pub fn screenshot(chromium: &Path, url: &str, png: &Path) {
    browse(
        chromium,
        url,
        &[
            &format!("--screenshot={}", png.display()),
            "--window-size=1280,800",
            "--hide-scrollbars",
        ],
    );
    assert!(png.is_file(), "chromium wrote no screenshot of {url}");
}
