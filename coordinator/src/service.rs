//! The coordinator's gRPC service: turns wire messages into state transitions and runs the I/O
//! those transitions ask for (listing input at submit, committing output at the end).

use crate::CoordinatorConfig;
use crate::commit::{JobCommit, clean_up_job, commit_job, output_dir};
use crate::error::{CoordinatorError, error_chain};
use crate::fetch_failure::Confirmation;
use crate::job::{Job, OpenUpload};
use crate::journal::{Grant, Journal, JournalError, RecoveredJob};
use crate::session::{new_session, session_of};
use crate::split::{Split, make_splits};
use crate::state::{Action, State};
use crate::status::{cluster_status, job_status_in, running_input};
use crate::wire::{AboutAttempt, FromWorker};
use quern_proto::coordinator_server::Coordinator;
use quern_proto::ids::{AttemptId, JobId, WorkerId};
use quern_proto::*;
use quern_storage::{OutputDir, StorageUrl, check_output_apart, list_inputs};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, UnboundedReceiverStream};
use tonic::{Request, Response, Status, Streaming};

/// Answers to one worker's heartbeats waiting to be sent; a worker that does not read them holds
/// up only its own stream.
const HEARTBEAT_ANSWERS_QUEUED: usize = 4;

/// The longest a `GetJob` call is held for its job to end.
const MAX_STATUS_WAIT: Duration = Duration::from_secs(10);

/// Room for a default split (64 MiB) of 100-byte records with their index entries (24 bytes
/// each), so such a map sorts once and writes its output once: at 64 MiB it spilled twice and
/// merged the spills, and `bench/sort.sh` took 5.8-6.3 s against 5.1-5.3 s at 96 MiB, with the
/// same peak RSS (a buffer is touched only as it fills). Hadoop's tuning advice is the same: size
/// the sort buffer so a map spills once.
const DEFAULT_SORT_BUFFER: u64 = 96 << 20;
/// Map output uncompressed: on one machine (shuffle over loopback, spills in the page cache)
/// compressing costs CPU and saves nothing (`bench/sort.sh` and `bench/wordcount.sh` measure
/// both; see README).
const DEFAULT_SHUFFLE_COMPRESSION: ShuffleCompression = ShuffleCompression::None;
const DEFAULT_MAX_ATTEMPTS: u32 = 4;
/// Worker losses in a row that fail a task. With a reduce killed about a third of the time (the
/// crash-loop test), 4 in a row happens about once in 80 jobs; 8, about twice in 10,000.
const DEFAULT_MAX_WORKER_LOSSES: u32 = 8;
/// Bounds that keep one job from exhausting the coordinator's memory.
const MAX_REDUCERS: u32 = 100_000;
const MAX_MAP_TASKS: usize = 1_000_000;
const DEFAULT_MAX_LINE: u64 = 64 << 20;

#[derive(Clone)]
pub struct CoordinatorService {
    state: Arc<Mutex<State>>,
    config: Arc<CoordinatorConfig>,
    /// With `--state-dir`: what a restart needs (see [`crate::journal`]).
    journal: Option<Arc<Mutex<Journal>>>,
}

impl CoordinatorService {
    /// A coordinator starting now, and the jobs its journal says had not ended.
    pub fn open(config: CoordinatorConfig) -> Result<(Self, Vec<RecoveredJob>), JournalError> {
        let mut state = State::starting_now();
        state.rejoin_until = Some(Instant::now() + config.worker_timeout);
        state.fetch_confirmation = Confirmation::for_heartbeats_every(config.heartbeat_interval);
        let (journal, unfinished) = match &config.state_dir {
            Some(dir) => {
                let (journal, recovered) = Journal::open(dir, state.incarnation)?;
                state.number_attempts_after(recovered.attempt_base);
                (Some(Arc::new(Mutex::new(journal))), recovered.jobs)
            }
            // `quern coordinator` warns of it; the embedded cluster of `quern run` needs none.
            None => (None, Vec::new()),
        };
        if let Some(journal) = journal.clone() {
            state.on_failure = Some(Arc::new(move |id| journal_end(&journal, id)));
        }
        let service = CoordinatorService {
            state: Arc::new(Mutex::new(state)),
            config: Arc::new(config),
            journal,
        };
        Ok((service, unfinished))
    }

    /// Journals `write`, if there is a journal: done before what it records is acknowledged.
    pub(crate) fn journal(
        &self,
        write: impl FnOnce(&mut Journal) -> Result<(), JournalError>,
    ) -> Result<(), JournalError> {
        match &self.journal {
            Some(journal) => write(&mut journal.lock().unwrap_or_else(|p| p.into_inner())),
            None => Ok(()),
        }
    }

    /// Journals job `id`'s cut points if its sampling stage just finished: under the lock that
    /// made them, so they are in the journal before any of its maps can report.
    fn journal_cut_points(&self, state: &State, id: JobId) {
        let Some(job) = state.jobs.get(&id) else {
            return;
        };
        if !job.sampled() {
            return;
        }
        if let Err(e) = self.journal(|j| j.cut_points_chosen(id, &job.cut_points)) {
            tracing::warn!(job = %id, error = %error_chain(&e), "cannot journal the cut points");
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock would be a bug in the state machine; keep serving.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn config(&self) -> &CoordinatorConfig {
        &self.config
    }

    /// The body of a worker's call, if it carries the session secret of the worker it names.
    fn worker_call<T: FromWorker>(&self, request: Request<T>) -> Result<T, Status> {
        let session = session_of(&request).to_string();
        let body = request.into_inner();
        let worker = body.worker_id().parse().ok();
        self.lock().check_session(worker, &session)?;
        Ok(body)
    }

    /// Returns when job `id` has ended, or `wait` (at most [`MAX_STATUS_WAIT`]) has passed; at
    /// once if the job is not running (or not known).
    async fn until_job_ends(&self, id: JobId, wait: Duration) {
        if wait.is_zero() {
            return;
        }
        let ended;
        let notified;
        {
            let state = self.lock();
            if !state.jobs.get(&id).is_some_and(|job| job.is_active()) {
                return;
            }
            // Made under the lock, so an end that comes before the wait still wakes it.
            ended = state.job_ended.clone();
            notified = ended.notified();
        }
        let _ = tokio::time::timeout(wait.min(MAX_STATUS_WAIT), notified).await;
    }

    /// Takes one worker's heartbeats as they come on its stream, until it ends, answering those
    /// that call for something. The stream is the worker's once its first heartbeat passes the
    /// session check; a heartbeat that names another worker, or none, or comes without the
    /// worker's session, ends the stream with the error.
    async fn serve_heartbeats(
        &self,
        mut beats: Streaming<HeartbeatRequest>,
        session: String,
        answers: mpsc::Sender<Result<HeartbeatResponse, Status>>,
    ) {
        let mut owner: Option<(String, WorkerId)> = None;
        while let Ok(Some(beat)) = beats.message().await {
            let answer = match self.take_heartbeat(&beat, &session, &mut owner) {
                Ok(answer) if answer == HeartbeatResponse::default() => continue,
                Ok(answer) => Ok(answer),
                Err(status) => Err(status),
            };
            let ended = answer.is_err();
            if answers.send(answer).await.is_err() || ended {
                return;
            }
        }
    }

    /// One heartbeat on a stream that belongs to `owner`, if it has one yet.
    fn take_heartbeat(
        &self,
        beat: &HeartbeatRequest,
        session: &str,
        owner: &mut Option<(String, WorkerId)>,
    ) -> Result<HeartbeatResponse, Status> {
        let grace = self.config.heartbeat_interval * 2;
        let mut state = self.lock();
        let id = match owner {
            Some((name, id)) if *name == beat.worker_id => *id,
            Some((name, _)) => {
                return Err(Status::invalid_argument(format!(
                    "a heartbeat for {} on the stream of {name}",
                    beat.worker_id
                )));
            }
            None => {
                let id = parse_worker(&beat.worker_id)?;
                state.check_session(Some(id), session)?;
                *owner = Some((beat.worker_id.clone(), id));
                id
            }
        };
        Ok(state.heartbeat(id, &beat.running_attempts, &beat.held_jobs, grace))
    }

    /// Runs follow-up I/O in the background; each may lead to more.
    pub fn run_actions(&self, actions: Vec<Action>) {
        for action in actions {
            let service = self.clone();
            tokio::spawn(async move { service.run_action(action).await });
        }
    }

    async fn run_action(&self, action: Action) {
        match action {
            Action::CommitJob(id) => {
                let Some(commit) = self.job_commit(id) else {
                    return;
                };
                crate::failpoint::stop_before_success(id);
                let result = commit_job(&commit).await.map_err(|e| error_chain(&e));
                if result.is_ok() {
                    self.journal_end(id);
                }
                let actions = self.lock().job_committed(id, result);
                self.run_actions(actions);
            }
            // Its end was journaled as it failed (see `State::on_failure`).
            Action::CleanUpJob(id) => {
                let Some(commit) = self.job_commit(id) else {
                    return;
                };
                if let Err(e) = clean_up_job(&commit).await {
                    tracing::warn!(job = %id, error = %error_chain(&e), "cannot clean up a failed job's output");
                }
            }
        }
    }

    /// Journals that job `id` ended, if there is a journal.
    fn journal_end(&self, id: JobId) {
        if let Some(journal) = &self.journal {
            journal_end(journal, id);
        }
    }

    fn job_commit(&self, id: JobId) -> Option<JobCommit> {
        let state = self.lock();
        let job = state.jobs.get(&id)?;
        Some(JobCommit {
            job_id: id.to_string(),
            job_name: job.spec.job_name.clone(),
            spec: job.spec.clone(),
            parts: job.part_count(),
            counters: job.counters.clone(),
            stray_uploads: job.uncommitted_uploads(),
        })
    }

    /// Validates a spec and fills in defaults; local paths become absolute URLs.
    fn normalize(
        &self,
        mut spec: JobSpec,
    ) -> Result<(JobSpec, Vec<StorageUrl>, StorageUrl), CoordinatorError> {
        let invalid = |what: &str| Err(CoordinatorError::InvalidJob(what.to_string()));
        if spec.job_name.is_empty() {
            return invalid("no job name");
        }
        if spec.reducers > MAX_REDUCERS {
            return invalid(&format!("--reducers may be at most {MAX_REDUCERS}"));
        }
        if spec.split_size == 0 {
            return invalid("--split-size must be at least 1 byte");
        }
        if spec.inputs.is_empty() {
            return invalid("no --input given");
        }
        let inputs = spec
            .inputs
            .iter()
            .map(|i| StorageUrl::parse(i))
            .collect::<Result<Vec<_>, _>>()?;
        let output = StorageUrl::parse(&spec.output)?;
        check_output_apart(&output, &inputs, spec.overwrite)?;
        spec.output = output.to_string();
        if spec.max_line_bytes == 0 {
            spec.max_line_bytes = DEFAULT_MAX_LINE;
        }
        if spec.sort_buffer_bytes == 0 {
            spec.sort_buffer_bytes = DEFAULT_SORT_BUFFER;
        }
        if spec.max_attempts == 0 {
            spec.max_attempts = DEFAULT_MAX_ATTEMPTS;
        }
        if spec.max_worker_losses == 0 {
            spec.max_worker_losses = DEFAULT_MAX_WORKER_LOSSES;
        }
        if spec.task_timeout_ms == 0 {
            spec.task_timeout_ms = self.config.task_timeout.as_millis() as u64;
        }
        spec.speculative.get_or_insert(self.config.speculative);
        if spec.shuffle_compression == ShuffleCompression::Default as i32 {
            spec.shuffle_compression = DEFAULT_SHUFFLE_COMPRESSION as i32;
        }
        Ok((spec, inputs, output))
    }

    /// Opens the upload of an attempt's part file, where the store holds one open until
    /// commit, and records it with the job so it is aborted if the attempt never commits.
    async fn open_and_record(
        &self,
        request: &OpenUploadRequest,
        job: JobId,
        partition: u32,
        spec: &JobSpec,
    ) -> Result<Option<String>, Status> {
        let attempt = AttemptId(request.attempt_id);
        let out = output_dir(spec).map_err(CoordinatorError::from)?;
        let Some(upload_id) = out
            .open_upload(partition)
            .await
            .map_err(CoordinatorError::from)?
        else {
            return Ok(None);
        };
        // Recorded only while the attempt is still expected: then its partition is not done,
        // so the job has not started its end-of-job clean-up, which will see this upload.
        let recorded = {
            let mut state = self.lock();
            let expected = request
                .attempt_call()
                .is_some_and(|call| state.expects(call));
            match state.jobs.get_mut(&job) {
                Some(j) if expected && j.is_active() => {
                    j.uploads.push(OpenUpload {
                        partition,
                        attempt,
                        upload_id: upload_id.clone(),
                    });
                    true
                }
                _ => false,
            }
        };
        let refused = if recorded {
            // On disk before the attempt hears of it: a restart aborts it unless committed.
            let upload = OpenUpload {
                partition,
                attempt,
                upload_id: upload_id.clone(),
            };
            self.journal(|j| j.upload_opened(job, &upload))
                .err()
                .map(|e| Status::unavailable(error_chain(&e)))
        } else {
            // The attempt or its job ended while the upload was being opened.
            Some(not_expected(attempt, &job.to_string()))
        };
        if let Some(refused) = refused {
            // Nobody will commit it.
            let _ = out.abort_upload(partition, &upload_id).await;
            return Err(refused);
        }
        Ok(Some(upload_id))
    }

    /// The job, part and spec of a running attempt that writes a part file: a reduce, or a map
    /// of a map-only job. A reduce opens its output once its shuffle is done, right before its
    /// job code runs; a map-only map as it starts.
    fn output_attempt(&self, request: &OpenUploadRequest) -> Result<(JobId, u32, JobSpec), Status> {
        let attempt = AttemptId(request.attempt_id);
        let mut state = self.lock();
        if !request
            .attempt_call()
            .is_some_and(|call| state.expects(call))
        {
            return Err(not_expected(attempt, &request.job_id));
        }
        let Some(running) = state.attempts.get_mut(&attempt) else {
            return Err(not_expected(attempt, &request.job_id));
        };
        // At most one upload per attempt: it opens its output once.
        if running.opened_output {
            return Err(Status::failed_precondition(format!(
                "attempt {attempt} of {} opened its output already",
                request.job_id
            )));
        }
        running.opened_output = true;
        running.in_job_code = true;
        let running = &state.attempts[&attempt];
        if !state.commits_output(attempt) {
            return Err(Status::invalid_argument(format!(
                "attempt {attempt} writes no part file: it is a map of a job with reduces"
            )));
        }
        let spec = state.jobs[&running.job].spec.clone();
        Ok((running.job, running.task.index, spec))
    }

    async fn submit(&self, spec: JobSpec) -> Result<SubmitJobResponse, CoordinatorError> {
        let (spec, inputs, output) = self.normalize(spec)?;
        // Hold the output while its storage is checked, so that two submits cannot both pass
        // (and an --overwrite cannot wipe a running job's output).
        self.lock().reserve_output(&spec.output)?;
        let splits = self.split_input(&spec, &inputs, Some(&output)).await;
        let (splits, id) = match splits {
            Ok(splits) => (splits, self.lock().new_job_id()),
            Err(e) => {
                self.lock().release_output(&spec.output);
                return Err(e);
            }
        };
        let shuffle_secret = new_session();
        // On disk before the submit is answered; the output stays held meanwhile.
        let journaled = match &shuffle_secret {
            Ok(secret) => self
                .journal(|journal| journal.job_submitted(id, &spec, secret))
                .map_err(CoordinatorError::from),
            Err(e) => Err(CoordinatorError::NoRandomness(*e)),
        };
        let mut state = self.lock();
        state.release_output(&spec.output);
        journaled?;
        let response = SubmitJobResponse {
            job_id: id.to_string(),
            map_tasks: splits.len() as u32,
            reduce_tasks: spec.reducers,
        };
        tracing::info!(job = %id, name = %spec.job_name, maps = splits.len(), reduces = spec.reducers, "job submitted");
        let mut job = Job::new(id, spec, splits);
        job.shuffle_secret = shuffle_secret?;
        let actions = state.add_job(job);
        drop(state);
        self.run_actions(actions);
        Ok(response)
    }

    /// Lists the input into splits and, given `output`, checks that it may be written, within
    /// the storage timeout.
    pub(crate) async fn split_input(
        &self,
        spec: &JobSpec,
        inputs: &[StorageUrl],
        output: Option<&StorageUrl>,
    ) -> Result<Vec<Split>, CoordinatorError> {
        let storage_timeout = self.config.storage_timeout;
        let objects = tokio::time::timeout(storage_timeout, async {
            let mut objects = Vec::new();
            for input in inputs {
                objects.extend(list_inputs(input).await?);
            }
            if let Some(output) = output {
                OutputDir::open(output)?.prepare(spec.overwrite).await?;
            }
            Ok::<_, CoordinatorError>(objects)
        })
        .await
        .map_err(|_| CoordinatorError::Timeout {
            what: format!(
                "listing the input and checking the output of '{}'",
                spec.job_name
            ),
            seconds: storage_timeout.as_secs(),
        })??;
        let splits = make_splits(&objects, spec.split_size, spec.input_format());
        if splits.len() > MAX_MAP_TASKS {
            return Err(CoordinatorError::InvalidJob(format!(
                "the input makes {} map tasks, more than the {MAX_MAP_TASKS} a job may have; raise --split-size",
                splits.len()
            )));
        }
        Ok(splits)
    }
}

/// Journals that job `id` ended. If that fails, a restart runs the job again; its output is the
/// same.
fn journal_end(journal: &Mutex<Journal>, id: JobId) {
    let mut journal = journal.lock().unwrap_or_else(|p| p.into_inner());
    if let Err(e) = journal.job_ended(id) {
        tracing::error!(job = %id, error = %error_chain(&e), "cannot journal the end of a job");
    }
}

fn parse_job(text: &str) -> Result<JobId, Status> {
    text.parse()
        .map_err(|_| CoordinatorError::UnknownJob(text.to_string()).into())
}

/// The answer to a call from an attempt that the coordinator no longer waits for.
fn not_expected(attempt: AttemptId, job_id: &str) -> Status {
    Status::failed_precondition(format!(
        "attempt {attempt} of {job_id} is no longer expected"
    ))
}

/// Refuses a worker address that is not an `http(s)://host:port` URL: reduces connect to it.
fn check_worker_address(address: &str) -> Result<(), Status> {
    let uri = address.parse::<tonic::codegen::http::Uri>().ok();
    let valid = uri.is_some_and(|uri| {
        matches!(uri.scheme_str(), Some("http" | "https"))
            && uri.host().is_some_and(|h| !h.is_empty())
            && uri.port_u16().is_some()
            && uri.path_and_query().is_none_or(|p| p.as_str() == "/")
    });
    if !valid {
        return Err(Status::invalid_argument(format!(
            "the worker address '{address}' is not an http(s)://host:port URL"
        )));
    }
    Ok(())
}

fn parse_worker(text: &str) -> Result<WorkerId, Status> {
    text.parse()
        .map_err(|_| CoordinatorError::UnknownWorker(text.to_string()).into())
}

#[tonic::async_trait]
impl Coordinator for CoordinatorService {
    async fn submit_job(
        &self,
        request: Request<SubmitJobRequest>,
    ) -> Result<Response<SubmitJobResponse>, Status> {
        let spec = request
            .into_inner()
            .spec
            .ok_or(CoordinatorError::MissingField("spec"))?;
        let name = spec.job_name.clone();
        // In a task of its own: a client that goes away mid-submit drops this handler, which
        // must not leave the output reserved or a job half added.
        let service = self.clone();
        let submitted = tokio::spawn(async move { service.submit(spec).await })
            .await
            .map_err(|e| Status::internal(format!("submitting failed: {e}")))?;
        match submitted {
            Ok(response) => Ok(Response::new(response)),
            Err(e) => {
                tracing::info!(job_name = %name, error = %error_chain(&e), "job refused");
                Err(e.into())
            }
        }
    }

    async fn get_job(
        &self,
        request: Request<GetJobRequest>,
    ) -> Result<Response<JobStatus>, Status> {
        let request = request.into_inner();
        let id = parse_job(&request.job_id)?;
        self.until_job_ends(id, Duration::from_millis(request.wait_ms.into()))
            .await;
        let state = self.lock();
        let job = state
            .jobs
            .get(&id)
            .ok_or(CoordinatorError::UnknownJob(request.job_id))?;
        let mut status = job_status_in(&state, job, request.history);
        (status.running_input_records, status.running_input_bytes) = running_input(&state, id);
        Ok(Response::new(status))
    }

    async fn list_jobs(
        &self,
        _: Request<ListJobsRequest>,
    ) -> Result<Response<ListJobsResponse>, Status> {
        let state = self.lock();
        let jobs = state
            .jobs
            .values()
            .map(|j| job_status_in(&state, j, false))
            .collect();
        Ok(Response::new(ListJobsResponse { jobs }))
    }

    async fn cluster_status(
        &self,
        _: Request<ClusterStatusRequest>,
    ) -> Result<Response<ClusterStatusResponse>, Status> {
        Ok(Response::new(cluster_status(&self.lock())))
    }

    async fn register_worker(
        &self,
        request: Request<RegisterWorkerRequest>,
    ) -> Result<Response<RegisterWorkerResponse>, Status> {
        let request = request.into_inner();
        if request.slots == 0 {
            return Err(Status::invalid_argument("a worker needs at least one slot"));
        }
        check_worker_address(&request.address)?;
        let session = new_session()
            .map_err(|e| Status::internal(format!("cannot make a session secret: {e}")))?;
        let (id, actions) = {
            let mut state = self.lock();
            let id = state.register_worker(
                request.address.clone(),
                request.slots,
                request.jobs,
                session.clone(),
            );
            (id, state.adopt_held(id, &request.held))
        };
        tracing::info!(worker = %id, address = %request.address, slots = request.slots, "worker registered");
        self.run_actions(actions);
        Ok(Response::new(RegisterWorkerResponse {
            worker_id: id.to_string(),
            heartbeat_interval_ms: self.config.heartbeat_interval.as_millis() as u64,
            session,
        }))
    }

    type HeartbeatsStream = ReceiverStream<Result<HeartbeatResponse, Status>>;

    async fn heartbeats(
        &self,
        request: Request<Streaming<HeartbeatRequest>>,
    ) -> Result<Response<Self::HeartbeatsStream>, Status> {
        let session = session_of(&request).to_string();
        let beats = request.into_inner();
        let (answers, outgoing) = mpsc::channel(HEARTBEAT_ANSWERS_QUEUED);
        let service = self.clone();
        tokio::spawn(async move { service.serve_heartbeats(beats, session, answers).await });
        Ok(Response::new(ReceiverStream::new(outgoing)))
    }

    async fn leave(
        &self,
        request: Request<LeaveRequest>,
    ) -> Result<Response<LeaveResponse>, Status> {
        let id = parse_worker(&self.worker_call(request)?.worker_id)?;
        tracing::info!(worker = %id, "worker leaving");
        let actions = self.lock().worker_left(id);
        self.run_actions(actions);
        Ok(Response::new(LeaveResponse {}))
    }

    type AssignmentsStream = UnboundedReceiverStream<Result<Assignment, Status>>;

    async fn assignments(
        &self,
        request: Request<AssignmentsRequest>,
    ) -> Result<Response<Self::AssignmentsStream>, Status> {
        let worker = self.worker_call(request)?.worker_id;
        let id = parse_worker(&worker)?;
        let (sender, receiver) = mpsc::unbounded_channel();
        let mut state = self.lock();
        if !state.attach_stream(id, sender) {
            return Err(CoordinatorError::UnknownWorker(worker).into());
        }
        state.schedule();
        Ok(Response::new(UnboundedReceiverStream::new(receiver)))
    }

    async fn report_task(
        &self,
        request: Request<TaskReport>,
    ) -> Result<Response<ReportTaskResponse>, Status> {
        let report = self.worker_call(request)?;
        let (accepted, actions) = {
            let mut state = self.lock();
            let task = state
                .attempts
                .get(&AttemptId(report.attempt_id))
                .map(|a| (a.job, a.task));
            let sampling = task.filter(|(_, t)| t.kind == TaskKind::Sample);
            let (accepted, actions) = state.report(&report);
            if let Some((job, _)) = sampling.filter(|_| accepted && report.succeeded) {
                self.journal_cut_points(&state, job);
            }
            if let Some((job, task)) =
                task.filter(|(_, t)| accepted && report.succeeded && t.kind == TaskKind::Map)
            {
                // Under the lock, so nobody sees the map done before it is journaled. Not
                // waited for, nor fatal: a map whose record is lost runs again after a restart.
                let counters = report.counters.unwrap_or_default();
                let attempt = AttemptId(report.attempt_id);
                if let Err(e) = self.journal(|j| j.map_done(job, task.index, attempt, counters)) {
                    tracing::warn!(%job, error = %error_chain(&e), "cannot journal a finished map");
                }
            }
            (accepted, actions)
        };
        if !accepted {
            tracing::info!(
                attempt = report.attempt_id,
                "ignored a report from an attempt no longer expected"
            );
        }
        self.run_actions(actions);
        Ok(Response::new(ReportTaskResponse { accepted }))
    }

    async fn map_output_locations(
        &self,
        request: Request<MapOutputLocationsRequest>,
    ) -> Result<Response<MapOutputLocationsResponse>, Status> {
        let request = self.worker_call(request)?;
        let id = parse_job(&request.job_id)?;
        let attempt = AttemptId(request.attempt_id);
        let mut state = self.lock();
        if !request
            .attempt_call()
            .is_some_and(|call| state.expects(call))
        {
            return Err(not_expected(attempt, &request.job_id));
        }
        let events = state
            .map_output_locations(id, request.from_event)
            .ok_or_else(|| CoordinatorError::UnknownJob(request.job_id.clone()))?;
        Ok(Response::new(events))
    }

    /// Commits an attempt's output if it is the partition's first to ask (see
    /// [`crate::commit`]). The storage step runs in its own task: a worker that hangs up (or
    /// dies) does not cancel it halfway, so the partition always ends up committed or retried.
    async fn commit_task(
        &self,
        request: Request<CommitRequest>,
    ) -> Result<Response<CommitResponse>, Status> {
        let request = self.worker_call(request)?;
        let attempt = AttemptId(request.attempt_id);
        let chosen = request
            .attempt_call()
            .and_then(|call| self.lock().begin_commit(call));
        let Some(commit) = chosen else {
            return Ok(Response::new(CommitResponse { committed: false }));
        };
        let service = self.clone();
        let counters = request.counters.unwrap_or_default();
        let timeout = self.config.storage_timeout;
        let committed = tokio::spawn(async move {
            let grant = Grant {
                attempt: commit.attempt,
                upload_id: commit.upload_id.clone().unwrap_or_default(),
                counters: counters.clone(),
            };
            // On disk before the output is made final: a restart finds the grant, and so knows
            // what the part file it may find there counted.
            let journaled =
                service.journal(|j| j.commit_granted(commit.job, commit.task.index, &grant));
            let result = match journaled {
                Err(e) => Err(error_chain(&e)),
                Ok(()) => match tokio::time::timeout(timeout, commit.run(request.part_ids)).await {
                    Ok(result) => result.map_err(|e| error_chain(&e)),
                    Err(_) => Err(format!(
                        "the storage did not answer within {}",
                        humantime::format_duration(timeout)
                    )),
                },
            };
            let actions = service
                .lock()
                .commit_finished(&commit, counters, result.clone());
            if result.is_ok() {
                crate::failpoint::stop_after_commit(&commit);
            }
            service.run_actions(actions);
            result
        });
        match committed.await {
            Ok(Ok(())) => Ok(Response::new(CommitResponse { committed: true })),
            Ok(Err(error)) => Err(Status::unavailable(format!(
                "cannot commit attempt {attempt} of {}: {error}",
                request.job_id
            ))),
            Err(e) => Err(Status::internal(format!("the commit stopped: {e}"))),
        }
    }

    async fn report_fetch_failure(
        &self,
        request: Request<FetchFailureReport>,
    ) -> Result<Response<FetchFailureResponse>, Status> {
        let report = self.worker_call(request)?;
        let (keep_going, actions) = self.lock().fetch_failure_reported(&report);
        self.run_actions(actions);
        Ok(Response::new(FetchFailureResponse { keep_going }))
    }

    async fn open_upload(
        &self,
        request: Request<OpenUploadRequest>,
    ) -> Result<Response<OpenUploadResponse>, Status> {
        let request = self.worker_call(request)?;
        let (job, partition, spec) = self.output_attempt(&request)?;
        // Opened and recorded in a task of its own: a worker that dies mid-call drops this
        // handler, and an upload opened but not recorded would never be aborted.
        let service = self.clone();
        let opened = tokio::spawn(async move {
            service
                .open_and_record(&request, job, partition, &spec)
                .await
        });
        let upload_id = opened
            .await
            .map_err(|e| Status::internal(format!("opening an upload failed: {e}")))??;
        Ok(Response::new(OpenUploadResponse {
            upload_id: upload_id.unwrap_or_default(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::{CoordinatorService, check_worker_address};
    use crate::CoordinatorConfig;
    use crate::testing::add_job;
    use quern_proto::coordinator_server::Coordinator;
    use quern_proto::{GetJobRequest, JobState};
    use std::time::Duration;
    use tokio::time::Instant;
    use tonic::Request;

    /// The job's state as `GetJob` answers with a wait of `wait_ms`, and how long it took.
    async fn status_after(
        service: &CoordinatorService,
        job: String,
        wait_ms: u32,
    ) -> (i32, Duration) {
        let start = Instant::now();
        let request = GetJobRequest {
            job_id: job,
            history: false,
            wait_ms,
        };
        let status = service.get_job(Request::new(request)).await.unwrap();
        (status.into_inner().state, start.elapsed())
    }

    /// On tokio's paused clock: time moves only to the next timer, so the durations are exact.
    #[tokio::test(start_paused = true)]
    async fn a_status_call_that_may_wait_is_answered_when_its_job_ends() {
        let (service, _) = CoordinatorService::open(CoordinatorConfig::default()).unwrap();
        let id = add_job(&mut service.lock(), 1, 1);
        // Nothing happens: answered when the wait runs out, the job still running.
        let running = status_after(&service, id.to_string(), 300).await;
        assert_eq!(
            running,
            (JobState::Running as i32, Duration::from_millis(300))
        );
        // The job fails 50 ms into a wait of 10 s: answered then.
        let waiting = tokio::spawn({
            let service = service.clone();
            async move { status_after(&service, id.to_string(), 10_000).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        service.lock().fail_job(id, "stopped by the test".into());
        let ended = waiting.await.unwrap();
        assert_eq!(ended, (JobState::Failed as i32, Duration::from_millis(50)));
        // An ended job is answered at once, however long the call may wait.
        let after = status_after(&service, id.to_string(), 10_000).await;
        assert_eq!(after, (JobState::Failed as i32, Duration::ZERO));
    }

    #[test]
    fn a_worker_address_must_be_an_http_url_with_a_host_and_port() {
        for good in [
            "http://10.0.0.5:7071",
            "https://node-3.example.com:443",
            "http://[::1]:7071",
        ] {
            assert!(check_worker_address(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "10.0.0.5:7071",
            "http://10.0.0.5",
            "ftp://10.0.0.5:21",
            "http://10.0.0.5:7071/../x",
            "http://10.0.0.5:7071?q",
            "../../etc",
        ] {
            let refused = check_worker_address(bad).unwrap_err();
            assert_eq!(
                refused.message(),
                format!("the worker address '{bad}' is not an http(s)://host:port URL")
            );
        }
    }
}
