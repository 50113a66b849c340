//! Worker identity end to end: a call that names a registered worker but lacks its session
//! secret (a forged `Leave`, `Heartbeat` or `ReportTask` from anyone who reached the port) is
//! refused, and the worker goes on serving.

mod common;

use common::watch::*;
use common::*;
use quern_proto::coordinator_client::CoordinatorClient;
use quern_proto::{HeartbeatRequest, LeaveRequest, SESSION_HEADER, TaskReport};

#[tokio::test(flavor = "multi_thread")]
async fn calls_in_a_workers_name_without_its_session_are_refused() {
    let cluster = Cluster::start(1, 1);
    let (workers, _) = cluster_view(&cluster.address);
    let worker = workers.keys().next().expect("one worker").clone();
    let mut client = CoordinatorClient::connect(cluster.address.clone())
        .await
        .unwrap();

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

    let mut guessed = tonic::Request::new(HeartbeatRequest {
        worker_id: worker.clone(),
        ..HeartbeatRequest::default()
    });
    guessed.metadata_mut().insert(
        SESSION_HEADER,
        "00000000000000000000000000000000".parse().unwrap(),
    );
    let forged_heartbeat = client.heartbeat(guessed).await.unwrap_err();
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
