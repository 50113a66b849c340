//! The storage layer against a real S3-compatible server (s3s-fs, embedded): listing past one
//! page, the commit protocol (only the accepted attempt's upload completes; every other upload
//! is aborted, so no multipart upload is left open), and what `--overwrite` may delete.
//!
//! One test function: the S3 settings come from the process environment, which is set once here
//! before any store is made, with no other test thread reading it.

use bytes::Bytes;
use quern_storage::{OutputDir, StorageError, StorageUrl, list_inputs};
use quern_testkit::S3Server;

fn url(text: &str) -> StorageUrl {
    StorageUrl::parse(text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_listing_and_commit() {
    let server = S3Server::start();
    for (name, value) in server.env() {
        // SAFETY: the only test in this binary; nothing else reads the environment meanwhile.
        unsafe { std::env::set_var(name, value) };
    }
    server.create_bucket("data");
    listing_covers_more_than_one_page(&server).await;
    empty_prefixes_and_missing_buckets_are_errors(&server).await;
    only_the_committed_attempt_completes_its_upload(&server).await;
    uploads_of_attempts_that_never_commit_are_aborted(&server).await;
    overwrite_replaces_only_job_output(&server).await;
}

async fn listing_covers_more_than_one_page(server: &S3Server) {
    for i in 0..1100 {
        server.put_file(
            "data",
            &format!("many/obj-{i:05}"),
            format!("word{i}\n").as_bytes(),
        );
    }
    server.put_file("data", "many/_SUCCESS", b"");
    server.put_file("data", "many/.hidden", b"x");
    let objects = list_inputs(&url("s3://data/many/")).await.unwrap();
    assert_eq!(objects.len(), 1100);
    assert_eq!(objects[0].url.to_string(), "s3://data/many/obj-00000");
    assert_eq!(objects[1099].url.to_string(), "s3://data/many/obj-01099");
    assert!(
        objects
            .iter()
            .all(|o| o.size == format!("word{}\n", 0).len() as u64 || o.size > 6)
    );
    let globbed = list_inputs(&url("s3://data/many/obj-0100?")).await.unwrap();
    assert_eq!(globbed.len(), 10);
    // Keys are used as S3 has them, not percent-encoded.
    server.put_file("data", "odd/a~b%20c.txt", b"tilde\n");
    let odd = list_inputs(&url("s3://data/odd/a~b%20c.txt"))
        .await
        .unwrap();
    assert_eq!(odd.len(), 1);
    assert_eq!(odd[0].size, 6);
}

async fn empty_prefixes_and_missing_buckets_are_errors(server: &S3Server) {
    let err = list_inputs(&url("s3://data/nothing-here/"))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "input path does not exist: s3://data/nothing-here/"
    );
    let err = list_inputs(&url("s3://no-such-bucket/x/"))
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::NoBucket { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "bucket 'no-such-bucket' does not exist at {}",
            server.endpoint
        )
    );
}

async fn only_the_committed_attempt_completes_its_upload(server: &S3Server) {
    let out = OutputDir::open(&url("s3://data/out-race/")).unwrap();
    out.prepare(false).await.unwrap();
    // As the coordinator does: it opens each attempt's upload and keeps the id.
    let winner_id = out.open_upload(0).await.unwrap().unwrap();
    let mut loser = out.create_part(0, 7, None).await.unwrap();
    let mut winner = out
        .create_part(0, 8, Some(winner_id.clone()))
        .await
        .unwrap();
    assert_eq!(server.open_uploads().len(), 2);
    // More than one 8 MiB part for the winner, so completion joins parts.
    let big: Vec<u8> = (0..9 << 20).map(|i| b'a' + (i % 26) as u8).collect();
    winner.write(big.clone().into()).await.unwrap();
    winner.write(Bytes::from_static(b"tail\n")).await.unwrap();
    loser.write(Bytes::from_static(b"loser\n")).await.unwrap();
    let winner = winner.finish().await.unwrap();
    let loser = loser.finish().await.unwrap();
    assert_eq!(
        server.object("data", "out-race/part-r-00000"),
        None,
        "nothing visible before commit"
    );
    // The coordinator completes the winner's upload from the part ids the attempt reports.
    out.commit_part(0, 8, Some(&winner_id), winner.part_ids())
        .await
        .unwrap();
    loser.abort().await.unwrap();
    let mut expected = big;
    expected.extend_from_slice(b"tail\n");
    assert!(server.object("data", "out-race/part-r-00000") == Some(expected));
    assert_eq!(server.open_uploads(), Vec::<String>::new());
    let sizes = out.part_sizes(1).await.unwrap();
    assert_eq!(sizes, vec![("part-r-00000".to_string(), (9 << 20) + 5)]);
}

async fn uploads_of_attempts_that_never_commit_are_aborted(server: &S3Server) {
    let out = OutputDir::open(&url("s3://data/out-dead/")).unwrap();
    // As the coordinator does: open the upload and keep its id, then hand it to the attempt.
    let id = out
        .open_upload(1)
        .await
        .unwrap()
        .expect("S3 holds uploads open");
    let mut dead = out.create_part(1, 9, Some(id.clone())).await.unwrap();
    assert_eq!(dead.upload_id(), Some(id.as_str()));
    dead.write(Bytes::from_static(b"half written\n"))
        .await
        .unwrap();
    drop(dead); // the worker died: nobody finishes or aborts this upload
    assert_eq!(server.open_uploads().len(), 1);
    out.abort_upload(1, &id).await.unwrap();
    assert_eq!(server.open_uploads(), Vec::<String>::new());
    assert_eq!(server.object("data", "out-dead/part-r-00001"), None);
}

async fn overwrite_replaces_only_job_output(server: &S3Server) {
    let job_output = [
        "_SUCCESS",
        "part-r-00000",
        "part-m-00001",
        "_temporary/attempt-3/part-r-00002",
    ];
    for key in job_output {
        server.put_file("data", &format!("prev/{key}"), b"old\n");
    }
    server.put_file("data", "prev-sibling/keep.txt", b"not below prev/\n");
    let out = OutputDir::open(&url("s3://data/prev")).unwrap();
    out.prepare(true).await.unwrap();
    for key in job_output {
        assert!(
            server.object("data", &format!("prev/{key}")).is_none(),
            "{key}"
        );
    }
    assert!(server.object("data", "prev-sibling/keep.txt").is_some());

    for key in ["_SUCCESS", "part-r-00000", "notes/thesis.tex"] {
        server.put_file("data", &format!("mixed/{key}"), b"mine\n");
    }
    let out = OutputDir::open(&url("s3://data/mixed/")).unwrap();
    let err = out.prepare(true).await.unwrap_err();
    assert!(
        err.to_string().starts_with(
            "--overwrite refused: output s3://data/mixed/ holds 'notes/thesis.tex', which is not job output"
        ),
        "{err}"
    );
    for key in ["_SUCCESS", "part-r-00000", "notes/thesis.tex"] {
        assert!(
            server.object("data", &format!("mixed/{key}")).is_some(),
            "{key}"
        );
    }
}
