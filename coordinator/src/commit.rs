//! Job commit: once every reduce partition has committed its part file, remove the attempts'
//! leftovers and write `_SUCCESS` last, holding a small JSON manifest. A failed job only has its
//! leftovers removed, so it never gets a `_SUCCESS`.

use crate::job::OpenUpload;
use quern_proto::Counters;
use quern_storage::{OutputDir, StorageError, StorageUrl};

#[derive(serde::Serialize)]
struct Manifest<'a> {
    job_id: &'a str,
    job_name: &'a str,
    parts: Vec<PartJson>,
    counters: CountersJson,
}

#[derive(serde::Serialize)]
struct PartJson {
    name: String,
    bytes: u64,
}

#[derive(serde::Serialize)]
struct CountersJson {
    input_records: u64,
    input_bytes: u64,
    map_output_records: u64,
    combine_output_records: u64,
    shuffle_bytes: u64,
    reduce_input_groups: u64,
    output_records: u64,
    output_bytes: u64,
    spills: u64,
}

impl From<&Counters> for CountersJson {
    fn from(c: &Counters) -> Self {
        CountersJson {
            input_records: c.input_records,
            input_bytes: c.input_bytes,
            map_output_records: c.map_output_records,
            combine_output_records: c.combine_output_records,
            shuffle_bytes: c.shuffle_bytes,
            reduce_input_groups: c.reduce_input_groups,
            output_records: c.output_records,
            output_bytes: c.output_bytes,
            spills: c.spills,
        }
    }
}

/// What the commit needs to know about the job, copied out of the locked state.
pub struct JobCommit {
    pub job_id: String,
    pub job_name: String,
    pub output: String,
    pub reducers: u32,
    pub counters: Counters,
    /// Multipart uploads of attempts that never committed, to abort.
    pub stray_uploads: Vec<OpenUpload>,
}

/// Commits a job whose every partition is committed: leftovers go, then `_SUCCESS` comes.
pub async fn commit_job(job: &JobCommit) -> Result<(), StorageError> {
    let out = clean_up_job(job).await?;
    let manifest = Manifest {
        job_id: &job.job_id,
        job_name: &job.job_name,
        parts: out
            .part_sizes(job.reducers)
            .await?
            .into_iter()
            .map(|(name, bytes)| PartJson { name, bytes })
            .collect(),
        counters: (&job.counters).into(),
    };
    let json = serde_json::to_vec_pretty(&manifest).expect("the manifest serializes");
    out.write_success(json).await
}

/// Removes what uncommitted attempts left: open multipart uploads and `_temporary/`.
pub async fn clean_up_job(job: &JobCommit) -> Result<OutputDir, StorageError> {
    let out = OutputDir::open(&StorageUrl::parse(&job.output)?)?;
    for upload in &job.stray_uploads {
        // Most were aborted by their own attempt already; servers differ in how they say so.
        if let Err(e) = out.abort_upload(upload.partition, &upload.upload_id).await {
            tracing::info!(job = %job.job_id, upload = %upload.upload_id, error = %quern_proto::error_chain(&e), "could not abort an uncommitted upload");
        }
    }
    out.discard_temporary().await?;
    Ok(out)
}
