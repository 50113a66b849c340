//! Security end to end (issue 9), on real processes:
//!
//! - **The cluster token.** Every method of both services (listed from the `.proto`, so a method
//!   added later is covered too) is refused without the token and with a wrong one; a worker or
//!   client without it never gets in, and says which flag to give; nothing a whole cluster run
//!   prints or writes holds the token.
//! - **Worker identity.** A call that names a registered worker but lacks its session secret (a
//!   forged `Leave`, `Heartbeat` or `ReportTask` from anyone who reached the port) is refused,
//!   and the worker goes on serving.

mod common;

use common::watch::*;
use common::*;
use quern_proto::coordinator_client::CoordinatorClient;
use quern_proto::{
    FetchChunk, GetJobRequest, HeartbeatRequest, LeaveRequest, ListJobsRequest,
    RegisterWorkerRequest, SESSION_HEADER, TaskReport,
};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

const TOKEN: &str = "the-cluster-token-of-this-test-0123456789";

/// A cluster whose every process has the token, and a token file for clients.
fn token_cluster(workers: usize) -> (Cluster, tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
    let env = vec![("QUERN_TOKEN", TOKEN.to_string())];
    (Cluster::start_with_env(env, workers, 1, &[]), dir, file)
}

/// Every (service, method) the `.proto` declares.
fn methods() -> Vec<(String, String)> {
    let proto = Path::new(env!("CARGO_MANIFEST_DIR")).join("../proto/proto/quern.proto");
    let text = std::fs::read_to_string(&proto).unwrap();
    let mut service = None;
    let mut methods = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("service ") {
            service = rest.split_whitespace().next().map(str::to_string);
        } else if let Some(rest) = line.strip_prefix("rpc ") {
            let name = rest.split('(').next().unwrap().trim().to_string();
            methods.push((service.clone().expect("an rpc inside a service"), name));
        }
    }
    methods
}

/// Calls `/quern.v1.SERVICE/METHOD` at `address` with an empty request (every request message
/// decodes from no bytes), carrying `token` if any; returns the status code it ends with.
async fn call(address: &str, service: &str, method: &str, token: Option<&str>) -> tonic::Code {
    send(address, service, method, token, FetchChunk::default())
        .await
        .code()
}

/// Sends `body`, whatever the method expects, to `/quern.v1.SERVICE/METHOD` at `address`,
/// carrying `token` if any; returns how the call ended (Ok if it was answered without error).
async fn send(
    address: &str,
    service: &str,
    method: &str,
    token: Option<&str>,
    body: FetchChunk,
) -> tonic::Status {
    let channel = tonic::transport::Endpoint::from_shared(address.to_string())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let path = format!("/quern.v1.{service}/{method}").parse().unwrap();
    let mut request = tonic::Request::new(body);
    if let Some(token) = token {
        let value = format!("Bearer {token}").parse().unwrap();
        request.metadata_mut().insert("authorization", value);
    }
    let codec = tonic_prost::ProstCodec::<FetchChunk, ListJobsRequest>::default();
    let answer = tokio::time::timeout(Duration::from_secs(10), grpc.unary(request, path, codec));
    match answer.await {
        Ok(Ok(_)) => tonic::Status::ok(""),
        Ok(Err(status)) => status,
        Err(_) => tonic::Status::deadline_exceeded("no answer in 10 s"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_method_of_both_services_is_refused_without_the_token_or_with_a_wrong_one() {
    let (cluster, _dir, _file) = token_cluster(1);
    let status = quern_with_env(
        &["status", "--coordinator", &cluster.address],
        &[("QUERN_TOKEN", TOKEN.to_string())],
    );
    let (workers, _) = parse_cluster_view(&stdout(&status));
    let shuffle = workers.values().next().expect("one worker").clone();
    let methods = methods();
    assert!(methods.len() > 10, "{methods:?}");
    for (service, method) in methods {
        let address = match service.as_str() {
            "Coordinator" => &cluster.address,
            "Shuffle" => &shuffle,
            other => panic!("a service this test does not know: {other}"),
        };
        for token in [None, Some("a-wrong-token-of-the-right-length")] {
            assert_eq!(
                call(address, &service, &method, token).await,
                tonic::Code::Unauthenticated,
                "{service}/{method} with token {token:?}"
            );
        }
        // With the token the call gets past the check (and fails on its empty request, or not).
        assert_ne!(
            call(address, &service, &method, Some(TOKEN)).await,
            tonic::Code::Unauthenticated,
            "{service}/{method} with the token"
        );
    }
}

/// Runs `quern ARGS` with `token` in QUERN_TOKEN (none: the variable unset), within 30 s.
fn quern_with_token(args: &[&str], token: Option<&str>) -> std::process::Output {
    let mut command = Command::new(QUERN);
    command
        .args(args)
        .env("QUERN_LOG", "warn")
        .env_remove("QUERN_TOKEN");
    if let Some(token) = token {
        command.env("QUERN_TOKEN", token);
    }
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let output = child.wait_with_output().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{args:?} took too long"
    );
    output
}

#[test]
fn workers_and_clients_without_the_token_are_refused_and_a_job_with_it_succeeds() {
    let (cluster, dir, file) = token_cluster(2);
    let address = cluster.address.as_str();
    let worker = ["worker", "--coordinator", address, "--slots", "4"];
    let status = ["status", "--coordinator", address];
    let wrong = Some("a-wrong-token-of-the-right-length");
    let requires =
        format!("the coordinator at {address} requires a token (--token-file or QUERN_TOKEN)");
    let refused = format!("the coordinator at {address} refused the token");
    for (args, token, said) in [
        (&worker[..], None, &requires),
        (&worker[..], wrong, &refused),
        (&status[..], None, &requires),
        (&status[..], wrong, &refused),
    ] {
        let output = quern_with_token(args, token);
        assert!(!output.status.success(), "{args:?} {token:?}");
        let error = stderr(&output);
        // One line: `quern: ` and, from a worker, `worker failed: `, then what happened.
        assert_eq!(error.lines().count(), 1, "{args:?} {token:?}: {error}");
        assert!(
            error.trim_end().ends_with(said.as_str()),
            "{args:?} {token:?}: {error}"
        );
    }

    // Only the two workers with the token joined, and they run the job.
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    std::fs::write(input.join("text.txt"), "only with the token\nthe end\n").unwrap();
    let output = dir.path().join("out");
    let token_file = file.to_str().unwrap();
    wordcount_succeeds(
        address,
        &input,
        &output,
        &["--token-file", token_file],
        Instant::now() + Duration::from_secs(60),
    );
    assert_eq!(read_output(&output, 1), expected_counts(&input));
    let shown = quern(&[
        "status",
        "--coordinator",
        address,
        "--token-file",
        token_file,
    ]);
    let (workers, jobs) = parse_cluster_view(&stdout(&shown));
    assert_eq!((workers.len(), jobs.len()), (2, 1), "{}", stdout(&shown));
}

/// Garbage from someone who holds the token: a 64 MiB request, a body that is not the method's
/// message, ids with `../`, a registration whose address is not a URL. Each is refused with a
/// clear status, and the cluster goes on to run a job exactly.
#[tokio::test(flavor = "multi_thread")]
async fn garbage_is_refused_and_the_cluster_keeps_serving() {
    let (cluster, dir, file) = token_cluster(1);
    let address = cluster.address.as_str();
    let huge = FetchChunk {
        data: vec![b'x'; 64 << 20].into(),
        ..FetchChunk::default()
    };
    let coordinator = cluster.processes.0[0].id();
    let before = resident_kib(coordinator);
    let refused = send(address, "Coordinator", "Leave", Some(TOKEN), huge).await;
    assert_eq!(refused.code(), tonic::Code::OutOfRange, "{refused:?}");
    // Refused from its length prefix: the 64 MiB were never buffered.
    let grown = resident_kib(coordinator).saturating_sub(before);
    assert!(grown < 16 << 10, "the coordinator grew by {grown} KiB");
    // Field 1 of a leave is its worker id, a string: these bytes are not UTF-8.
    let garbage = FetchChunk {
        data: vec![0xff; 100].into(),
        ..FetchChunk::default()
    };
    let refused = send(address, "Coordinator", "Leave", Some(TOKEN), garbage).await;
    assert_eq!(refused.code(), tonic::Code::Internal, "{refused:?}");

    let channel = tonic::transport::Endpoint::from_shared(cluster.address.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let bearer: tonic::metadata::MetadataValue<_> = format!("Bearer {TOKEN}").parse().unwrap();
    let mut client =
        CoordinatorClient::with_interceptor(channel, move |mut request: tonic::Request<()>| {
            request
                .metadata_mut()
                .insert("authorization", bearer.clone());
            Ok(request)
        });
    let unknown = client
        .get_job(GetJobRequest {
            job_id: "../../etc/passwd".into(),
            history: true,
            wait_ms: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    let beat = HeartbeatRequest {
        worker_id: "worker-../..".into(),
        held_jobs: vec!["../../etc".into()],
        ..HeartbeatRequest::default()
    };
    let heartbeat = client
        .heartbeats(tokio_stream::iter([beat]))
        .await
        .expect("the stream opens")
        .into_inner()
        .message()
        .await
        .expect_err("the heartbeat is refused");
    assert_eq!(heartbeat.code(), tonic::Code::FailedPrecondition);
    let rogue = client
        .register_worker(RegisterWorkerRequest {
            address: "../../etc".into(),
            slots: 1000,
            ..RegisterWorkerRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        (rogue.code(), rogue.message()),
        (
            tonic::Code::InvalidArgument,
            "the worker address '../../etc' is not an http(s)://host:port URL"
        )
    );

    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    std::fs::write(input.join("text.txt"), "still serving\nstill\n").unwrap();
    let output = dir.path().join("out");
    let token_file = file.to_str().unwrap().to_string();
    let (input_text, output_text) = (input.clone(), output.clone());
    let address = address.to_string();
    tokio::task::spawn_blocking(move || {
        wordcount_succeeds(
            &address,
            &input_text,
            &output_text,
            &["--token-file", &token_file],
            Instant::now() + Duration::from_secs(60),
        )
    })
    .await
    .unwrap();
    assert_eq!(read_output(&output, 1), expected_counts(&input));
}

/// The resident memory of process `pid`, in KiB.
fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in {status}"))
}

/// A cluster whose coordinator and workers serve TLS with certificates of a private CA, the
/// workers fetching map output from each other over TLS: a job runs exactly. A plain-text client
/// of the TLS coordinator, a client that does not trust its CA, and a TLS client of a plain
/// coordinator each fail at once with one line.
#[test]
fn a_tls_cluster_runs_a_job_exactly_and_refuses_plain_and_untrusted_clients() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = quern_testkit::certificates(dir.path(), "cluster");
    let (other_ca, _, _) = quern_testkit::certificates(dir.path(), "other");
    let env = vec![
        ("QUERN_TOKEN", TOKEN.to_string()),
        ("QUERN_TLS_CA", ca.display().to_string()),
    ];
    let serve_tls = [
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ];
    let mut cluster = Cluster::start_with_env(env.clone(), 0, 1, &serve_tls);
    assert!(
        cluster.address.starts_with("https://127.0.0.1:"),
        "{}",
        cluster.address
    );
    for _ in 0..2 {
        cluster.add_worker_with(&[&["--slots", "1"][..], &serve_tls].concat());
    }
    cluster.wait_for_ready_workers(2);
    let status = quern_with_env(&["status", "--coordinator", &cluster.address], &env);
    let (workers, _) = parse_cluster_view(&stdout(&status));
    assert!(
        workers
            .values()
            .all(|a| a.starts_with("https://127.0.0.1:")),
        "{workers:?}"
    );

    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    for i in 0..6 {
        std::fs::write(
            input.join(format!("{i}.txt")),
            format!("tls {i}\nall the way {i}\n"),
        )
        .unwrap();
    }
    let output = dir.path().join("out");
    let submitted = quern_with_env(
        &submit_wordcount(
            &cluster.address,
            input.to_str().unwrap(),
            output.to_str().unwrap(),
            &["--reducers", "2", "--wait"],
        ),
        &env,
    );
    assert!(submitted.status.success(), "{}", stderr(&submitted));
    assert_eq!(read_output(&output, 2), expected_counts(&input));

    let plain = cluster.address.replace("https://", "http://");
    let untrusted = [
        ("QUERN_TOKEN", TOKEN.to_string()),
        ("QUERN_TLS_CA", other_ca.display().to_string()),
    ];
    let plain_cluster =
        Cluster::start_with_env(vec![("QUERN_TOKEN", TOKEN.to_string())], 0, 1, &[]);
    let tls_to_plain = plain_cluster.address.replace("http://", "https://");
    for (address, env, said) in [
        (
            &plain,
            &env[..1],
            "(if the server serves TLS, use an https:// address)",
        ),
        (
            &cluster.address,
            &untrusted[..],
            "invalid peer certificate: UnknownIssuer",
        ),
        (
            &tls_to_plain,
            &env[..],
            "(the server does not serve TLS; use an http:// address)",
        ),
    ] {
        let started = Instant::now();
        let refused = quern_with_env(&["status", "--coordinator", address], env);
        assert!(started.elapsed() < Duration::from_secs(20), "{address}");
        assert!(!refused.status.success(), "{address}");
        let error = stderr(&refused);
        assert_eq!(error.lines().count(), 1, "{address}: {error}");
        assert!(error.contains(said), "{address}: {error}");
    }
}

/// A whole cluster run, every process logging at debug level to a file, with a state directory,
/// and a worker and a client that give a wrong token: neither token appears in any log line, any
/// message, `quern status`, the output (its `_SUCCESS` manifest included) or the journal.
#[test]
fn nothing_a_cluster_prints_or_writes_holds_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let wrong = "a-wrong-token-of-the-right-length";
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let state = dir.path().join("state");
    // Every process, clients included, reads the token file named in QUERN_TOKEN_FILE.
    let env = vec![
        ("QUERN_TOKEN_FILE", token_file.display().to_string()),
        ("QUERN_LOG", "debug".to_string()),
    ];
    let state_flag = ["--state-dir", state.to_str().unwrap()];
    let cluster = Cluster::start_logging(env.clone(), 2, 1, &state_flag, Some(&logs));
    let address = cluster.address.as_str();
    let refused = quern_with_token(&["worker", "--coordinator", address], Some(wrong));
    assert!(!refused.status.success());

    let input = corpus().join("pg-being_ernest.txt");
    let output = dir.path().join("out");
    let submitted = quern_with_env(
        &[
            "submit",
            "wordcount",
            "--coordinator",
            address,
            "--input",
            input.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
            "--reducers",
            "2",
            "--wait",
        ],
        &env,
    );
    assert!(submitted.status.success(), "{}", stderr(&submitted));
    let (_, jobs) = parse_cluster_view(&stdout(&quern_with_env(
        &["status", "--coordinator", address],
        &env,
    )));
    let status = quern_with_env(&["status", "--coordinator", address, &jobs[0]], &env);
    assert!(status.status.success(), "{}", stderr(&status));
    let wrong_client = quern_with_token(&["status", "--coordinator", address], Some(wrong));
    assert!(!wrong_client.status.success());
    drop(cluster);

    let mut everything: Vec<(String, Vec<u8>)> = vec![
        ("submit stdout".into(), submitted.stdout),
        ("submit stderr".into(), submitted.stderr),
        ("status".into(), status.stdout),
        ("refused worker".into(), refused.stderr),
        ("refused client".into(), wrong_client.stderr),
    ];
    for root in [&logs, &output, &state] {
        for (name, bytes) in files_below(root) {
            everything.push((format!("{}/{name}", root.display()), bytes));
        }
    }
    let coordinator_log = String::from_utf8_lossy(&everything[5].1).into_owned();
    assert!(
        coordinator_log.contains("DEBUG"),
        "debug logs are on: {coordinator_log}"
    );
    assert!(
        everything
            .iter()
            .any(|(name, _)| name.ends_with("_SUCCESS"))
    );
    for (name, bytes) in &everything {
        for secret in [TOKEN, wrong] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{name} holds a token"
            );
        }
    }
}

/// A cluster of one worker, that worker's id, and a client that carries no session.
async fn one_worker_and_a_client() -> (Cluster, String, CoordinatorClient<Channel>) {
    let cluster = Cluster::start(1, 1);
    let (workers, _) = cluster_view(&cluster.address);
    let worker = workers.keys().next().expect("one worker").clone();
    let client = CoordinatorClient::connect(cluster.address.clone())
        .await
        .unwrap();
    (cluster, worker, client)
}

/// Sends heartbeats naming `workers`, in order, on a stream of their own that carries `session`;
/// returns the error the coordinator ends the stream with.
async fn heartbeats_refused(
    client: &mut CoordinatorClient<Channel>,
    workers: &[&str],
    session: &str,
) -> tonic::Status {
    let beats: Vec<HeartbeatRequest> = workers
        .iter()
        .map(|&worker_id| HeartbeatRequest {
            worker_id: worker_id.to_string(),
            ..HeartbeatRequest::default()
        })
        .collect();
    let mut request = tonic::Request::new(tokio_stream::iter(beats));
    request
        .metadata_mut()
        .insert(SESSION_HEADER, session.parse().unwrap());
    client
        .heartbeats(request)
        .await
        .expect("the stream opens")
        .into_inner()
        .message()
        .await
        .expect_err("a heartbeat is refused")
}

/// A heartbeat stream belongs to the worker whose session opened it: a heartbeat naming another
/// worker on it ends the stream with an error, and is not taken.
#[tokio::test(flavor = "multi_thread")]
async fn a_heartbeat_stream_carries_one_workers_heartbeats() {
    let (_cluster, other, mut client) = one_worker_and_a_client().await;
    let registered = client
        .register_worker(RegisterWorkerRequest {
            address: "http://127.0.0.1:1".into(),
            slots: 1,
            ..RegisterWorkerRequest::default()
        })
        .await
        .expect("a registration")
        .into_inner();
    let beats = [registered.worker_id.as_str(), &other];
    let refused = heartbeats_refused(&mut client, &beats, &registered.session).await;
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        refused.message(),
        format!(
            "a heartbeat for {other} on the stream of {}",
            registered.worker_id
        )
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_in_a_workers_name_without_its_session_are_refused() {
    let (cluster, worker, mut client) = one_worker_and_a_client().await;

    let forged_leave = client
        .leave(LeaveRequest {
            worker_id: worker.clone(),
        })
        .await
        .expect_err("a leave without the session is refused");
    assert_eq!(forged_leave.code(), tonic::Code::PermissionDenied);
    assert_eq!(
        forged_leave.message(),
        format!("the call names {worker} but does not carry its session")
    );

    let guessed = "00000000000000000000000000000000";
    let forged_heartbeat = heartbeats_refused(&mut client, &[&worker], guessed).await;
    assert_eq!(forged_heartbeat.code(), tonic::Code::PermissionDenied);

    let forged_report = client
        .report_task(TaskReport {
            worker_id: worker.clone(),
            job_id: "job-0001".into(),
            attempt_id: 1,
            error: "forged".into(),
            ..TaskReport::default()
        })
        .await
        .unwrap_err();
    assert_eq!(forged_report.code(), tonic::Code::PermissionDenied);

    // The worker is still there, and runs a job.
    cluster.wait_for_ready_workers(1);
    assert_eq!(
        count_words_of(&cluster.address, "still here\nstill\n"),
        "here\t1\nstill\t2\n"
    );
}
