//! The coordinator's journal, kept in `--state-dir`: what a restarted coordinator needs to go on.
//! It records jobs accepted and ended, map attempts that succeeded, multipart uploads opened, and
//! commit grants. Replaying it on start gives, for each job not ended, what is already done, so
//! that the job resumes under its own id without running it again: finished maps are adopted from
//! the workers that still hold them, and committed partitions stay committed.
//!
//! Durability follows what is acknowledged: a submit, an opened upload and a commit grant are on
//! disk (fsynced) before the call that made them is answered; a job's end before it is reported
//! ended; a map's success is written without waiting (losing it only runs that map again).
//!
//! Records go through [`JournalStore`], a three-call interface (load, append, replace), so that a
//! replicated store (etcd, or a Kubernetes Lease with shared storage) could stand in for the
//! local file for a hot standby. [`FileStore`] is an append-only file of prost records, each
//! framed with its length and CRC-32C; a torn last record (a crash mid-write) is dropped. An
//! append-only file was chosen over an embedded database (redb, SQLite): the coordinator writes a
//! few small records per task and reads them only at start. Each start compacts the journal to
//! what is still needed, so it stays as small as the unfinished jobs.

use crate::job::OpenUpload;
pub use crate::journal_store::{FileStore, JournalError, JournalStore};
use quern_proto::ids::{AttemptId, JobId};
use quern_proto::journal_entry::Entry;
use quern_proto::{
    Counters, JobSpec, JournalCommitGrant, JournalCutPoints, JournalEntry, JournalJob,
    JournalJobEnded, JournalMapDone, JournalStart, JournalUpload,
};
use std::collections::BTreeMap;
use std::path::Path;

/// Attempt ids each incarnation may use: each start takes the block past the last one journaled.
pub const ATTEMPT_BLOCK: u64 = 1 << 32;

/// A reduce attempt chosen to commit its partition, as the journal recorded it.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    pub attempt: AttemptId,
    /// Its multipart upload (S3); empty elsewhere.
    pub upload_id: String,
    pub counters: Counters,
}

/// A job accepted and not ended, and what of it was done before the restart.
#[derive(Debug, Clone, PartialEq)]
pub struct RecoveredJob {
    pub id: JobId,
    /// Its normalized spec.
    pub spec: JobSpec,
    /// Its shuffle secret.
    pub shuffle_secret: String,
    /// Map tasks that succeeded: the attempt whose output to adopt, and what it counted.
    pub maps_done: BTreeMap<u32, (AttemptId, Counters)>,
    /// The latest commit grant of each partition.
    pub grants: BTreeMap<u32, Grant>,
    /// Every multipart upload opened for its reduce attempts.
    pub uploads: Vec<OpenUpload>,
    /// A total-order job's cut points, once sampled.
    pub cut_points: Option<Vec<Vec<u8>>>,
}

impl RecoveredJob {
    fn new(id: JobId, spec: JobSpec, shuffle_secret: String) -> Self {
        RecoveredJob {
            id,
            spec,
            shuffle_secret,
            maps_done: BTreeMap::new(),
            grants: BTreeMap::new(),
            uploads: Vec::new(),
            cut_points: None,
        }
    }
}

/// What replaying the journal gives a starting coordinator.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Jobs accepted and not ended, oldest first.
    pub jobs: Vec<RecoveredJob>,
    /// This incarnation's attempt ids begin past this.
    pub attempt_base: u64,
}

pub struct Journal {
    store: Box<dyn JournalStore>,
}

impl Journal {
    /// Opens (or starts) the journal file in `dir`; see [`Journal::open_in`].
    pub fn open(dir: &Path, incarnation: u64) -> Result<(Journal, Recovered), JournalError> {
        Journal::open_in(Box::new(FileStore::open(dir)?), incarnation)
    }

    /// Replays the journal in `store`, and compacts it to this start and the jobs not ended.
    pub fn open_in(
        mut store: Box<dyn JournalStore>,
        incarnation: u64,
    ) -> Result<(Journal, Recovered), JournalError> {
        let recovered = replay(&store.load()?);
        store.replace(&compacted(&recovered, incarnation))?;
        Ok((Journal { store }, recovered))
    }

    /// Job `id` was accepted with `spec` and `shuffle_secret`; returns once that is durable.
    pub fn job_submitted(
        &mut self,
        id: JobId,
        spec: &JobSpec,
        shuffle_secret: &str,
    ) -> Result<(), JournalError> {
        self.store
            .append(&submitted(id, spec, shuffle_secret), true)
    }

    /// Job `id` ended: a restart does not resume it. Returns once that is durable.
    pub fn job_ended(&mut self, id: JobId) -> Result<(), JournalError> {
        let ended = JournalJobEnded {
            job_id: id.to_string(),
        };
        self.store.append(&record(Entry::Ended(ended)), true)
    }

    /// The sampling stage of `job` chose `cut_points`; returns once that is durable.
    pub fn cut_points_chosen(
        &mut self,
        job: JobId,
        cut_points: &[Vec<u8>],
    ) -> Result<(), JournalError> {
        self.store.append(&cut_points_record(job, cut_points), true)
    }

    /// Map `task` of `job` was done by `attempt`. Not waited for: if lost, the map runs again.
    pub fn map_done(
        &mut self,
        job: JobId,
        task: u32,
        attempt: AttemptId,
        counters: Counters,
    ) -> Result<(), JournalError> {
        self.store
            .append(&map_done(job, task, attempt, counters), false)
    }

    /// A multipart upload was opened for a reduce attempt of `job`; returns once that is durable.
    pub fn upload_opened(&mut self, job: JobId, upload: &OpenUpload) -> Result<(), JournalError> {
        self.store.append(
            &record(Entry::UploadOpened(upload_record(job, upload))),
            true,
        )
    }

    /// `attempt` is to commit `partition` of `job`; returns once that is durable.
    pub fn commit_granted(
        &mut self,
        job: JobId,
        partition: u32,
        grant: &Grant,
    ) -> Result<(), JournalError> {
        self.store.append(
            &record(Entry::CommitGranted(grant_record(job, partition, grant))),
            true,
        )
    }
}

fn record(entry: Entry) -> JournalEntry {
    JournalEntry { entry: Some(entry) }
}

fn submitted(id: JobId, spec: &JobSpec, shuffle_secret: &str) -> JournalEntry {
    record(Entry::Submitted(JournalJob {
        job_id: id.to_string(),
        spec: Some(spec.clone()),
        shuffle_secret: shuffle_secret.to_string(),
    }))
}

fn map_done(job: JobId, task: u32, attempt: AttemptId, counters: Counters) -> JournalEntry {
    record(Entry::MapDone(JournalMapDone {
        job_id: job.to_string(),
        task,
        attempt_id: attempt.0,
        counters: Some(counters),
    }))
}

fn cut_points_record(job: JobId, cut_points: &[Vec<u8>]) -> JournalEntry {
    record(Entry::CutPoints(JournalCutPoints {
        job_id: job.to_string(),
        cut_points: cut_points.to_vec(),
    }))
}

fn upload_record(job: JobId, upload: &OpenUpload) -> JournalUpload {
    JournalUpload {
        job_id: job.to_string(),
        partition: upload.partition,
        attempt_id: upload.attempt.0,
        upload_id: upload.upload_id.clone(),
    }
}

fn grant_record(job: JobId, partition: u32, grant: &Grant) -> JournalCommitGrant {
    JournalCommitGrant {
        job_id: job.to_string(),
        partition,
        attempt_id: grant.attempt.0,
        upload_id: grant.upload_id.clone(),
        counters: Some(grant.counters.clone()),
    }
}

/// The accepted job `text` names, if any.
fn job<'a>(
    jobs: &'a mut BTreeMap<JobId, RecoveredJob>,
    text: &str,
) -> Option<&'a mut RecoveredJob> {
    text.parse::<JobId>().ok().and_then(|id| jobs.get_mut(&id))
}

/// The jobs not ended, with what was done of them, and the attempt base for a new incarnation.
/// Records naming a job that is not (or no longer) accepted are ignored.
fn replay(entries: &[JournalEntry]) -> Recovered {
    let mut jobs: BTreeMap<JobId, RecoveredJob> = BTreeMap::new();
    let mut last_base = None;
    for entry in entries.iter().filter_map(|e| e.entry.as_ref()) {
        match entry {
            Entry::Start(start) => last_base = last_base.max(Some(start.attempt_base)),
            Entry::Submitted(submitted) => {
                if let (Ok(id), Some(spec)) = (submitted.job_id.parse(), &submitted.spec) {
                    let secret = submitted.shuffle_secret.clone();
                    jobs.insert(id, RecoveredJob::new(id, spec.clone(), secret));
                }
            }
            Entry::Ended(ended) => {
                if let Ok(id) = ended.job_id.parse() {
                    jobs.remove(&id);
                }
            }
            Entry::MapDone(done) => {
                if let Some(job) = job(&mut jobs, &done.job_id) {
                    let counters = done.counters.clone().unwrap_or_default();
                    let attempt = AttemptId(done.attempt_id);
                    job.maps_done.insert(done.task, (attempt, counters));
                }
            }
            Entry::UploadOpened(upload) => {
                if let Some(job) = job(&mut jobs, &upload.job_id) {
                    job.uploads.push(OpenUpload {
                        partition: upload.partition,
                        attempt: AttemptId(upload.attempt_id),
                        upload_id: upload.upload_id.clone(),
                    });
                }
            }
            Entry::CutPoints(cuts) => {
                if let Some(job) = job(&mut jobs, &cuts.job_id) {
                    job.cut_points = Some(cuts.cut_points.clone());
                }
            }
            Entry::CommitGranted(grant) => {
                if let Some(job) = job(&mut jobs, &grant.job_id) {
                    let recovered = Grant {
                        attempt: AttemptId(grant.attempt_id),
                        upload_id: grant.upload_id.clone(),
                        counters: grant.counters.clone().unwrap_or_default(),
                    };
                    job.grants.insert(grant.partition, recovered);
                }
            }
        }
    }
    Recovered {
        jobs: jobs.into_values().collect(),
        attempt_base: last_base.map_or(0, |base| base + ATTEMPT_BLOCK),
    }
}

/// The journal a start leaves: the start itself, then each job not ended with what was done.
fn compacted(recovered: &Recovered, incarnation: u64) -> Vec<JournalEntry> {
    let start = JournalStart {
        incarnation,
        attempt_base: recovered.attempt_base,
    };
    let mut entries = vec![record(Entry::Start(start))];
    for job in &recovered.jobs {
        entries.push(submitted(job.id, &job.spec, &job.shuffle_secret));
        if let Some(cut_points) = &job.cut_points {
            entries.push(cut_points_record(job.id, cut_points));
        }
        for (&task, (attempt, counters)) in &job.maps_done {
            entries.push(map_done(job.id, task, *attempt, counters.clone()));
        }
        for upload in &job.uploads {
            entries.push(record(Entry::UploadOpened(upload_record(job.id, upload))));
        }
        for (&partition, grant) in &job.grants {
            entries.push(record(Entry::CommitGranted(grant_record(
                job.id, partition, grant,
            ))));
        }
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(n: u32) -> (JobId, JobSpec) {
        let id = JobId {
            incarnation: 1,
            number: n,
        };
        let spec = JobSpec {
            job_name: format!("job {n}"),
            reducers: n,
            ..JobSpec::default()
        };
        (id, spec)
    }

    fn ids(recovered: &Recovered) -> Vec<JobId> {
        recovered.jobs.iter().map(|j| j.id).collect()
    }

    fn counted(records: u64) -> Counters {
        Counters {
            input_records: records,
            ..Counters::default()
        }
    }

    #[test]
    fn a_restart_gets_the_jobs_not_ended_and_a_fresh_block_of_attempt_ids() {
        let dir = tempfile::tempdir().unwrap();
        let (mut journal, first) = Journal::open(dir.path(), 1).unwrap();
        assert!(first.jobs.is_empty());
        assert_eq!(first.attempt_base, 0);
        for n in 1..=3 {
            let (id, spec) = job(n);
            journal.job_submitted(id, &spec, "secret").unwrap();
        }
        journal.job_ended(job(2).0).unwrap();
        drop(journal);

        let (journal, second) = Journal::open(dir.path(), 2).unwrap();
        assert_eq!(ids(&second), [job(1).0, job(3).0]);
        assert_eq!(second.jobs[1].spec, job(3).1);
        assert_eq!(second.attempt_base, ATTEMPT_BLOCK);
        drop(journal);
        let (_, third) = Journal::open(dir.path(), 3).unwrap();
        assert_eq!(ids(&third), [job(1).0, job(3).0], "compaction keeps them");
        assert_eq!(third.attempt_base, 2 * ATTEMPT_BLOCK);
    }

    #[test]
    fn what_was_done_of_a_job_survives_restarts_and_the_latest_record_of_a_task_wins() {
        let dir = tempfile::tempdir().unwrap();
        let (mut journal, _) = Journal::open(dir.path(), 1).unwrap();
        let (id, spec) = job(2);
        let (other, other_spec) = job(3);
        journal.job_submitted(id, &spec, "its secret").unwrap();
        journal.job_submitted(other, &other_spec, "").unwrap();
        let cuts = vec![b"g".to_vec(), b"p\0".to_vec()];
        journal.cut_points_chosen(id, &cuts).unwrap();
        journal.map_done(id, 0, AttemptId(1), counted(5)).unwrap();
        journal.map_done(id, 1, AttemptId(2), counted(6)).unwrap();
        // Map 0's output was lost and the map ran again.
        journal.map_done(id, 0, AttemptId(4), counted(5)).unwrap();
        journal
            .map_done(other, 0, AttemptId(3), counted(1))
            .unwrap();
        let upload = |partition, attempt, text: &str| OpenUpload {
            partition,
            attempt: AttemptId(attempt),
            upload_id: text.to_string(),
        };
        journal.upload_opened(id, &upload(0, 7, "u7")).unwrap();
        journal.upload_opened(id, &upload(0, 8, "u8")).unwrap();
        let grant = |attempt, text: &str| Grant {
            attempt: AttemptId(attempt),
            upload_id: text.to_string(),
            counters: counted(attempt),
        };
        journal.commit_granted(id, 0, &grant(7, "u7")).unwrap();
        // The first grant's commit failed; another attempt of the partition got it.
        journal.commit_granted(id, 0, &grant(8, "u8")).unwrap();
        journal.job_ended(other).unwrap();
        // A record of an ended job is ignored.
        journal
            .map_done(other, 1, AttemptId(9), counted(1))
            .unwrap();
        drop(journal);

        for incarnation in [2, 3] {
            let (_, recovered) = Journal::open(dir.path(), incarnation).unwrap();
            assert_eq!(ids(&recovered), [id]);
            let job = &recovered.jobs[0];
            assert_eq!(job.shuffle_secret, "its secret");
            assert_eq!(job.cut_points.as_ref(), Some(&cuts));
            let done: Vec<_> = job
                .maps_done
                .iter()
                .map(|(&t, (a, c))| (t, *a, c.clone()))
                .collect();
            assert_eq!(
                done,
                [(0, AttemptId(4), counted(5)), (1, AttemptId(2), counted(6))]
            );
            let uploads: Vec<_> = job.uploads.iter().map(|u| u.upload_id.as_str()).collect();
            assert_eq!(uploads, ["u7", "u8"]);
            assert_eq!(job.grants.len(), 1);
            assert_eq!(job.grants[&0], grant(8, "u8"));
        }
    }
}
