//! The engine's state machine without processes: a launcher that records what it was asked, and
//! the messages a shim would cause (`Started`, `Ended`) fed by hand. GPUs are simulated through
//! the real NVML path; placement is the real policy service.

use super::*;
use crate::executor::{ExitRecord, RunningAttempt, ShimInfo};
use crate::model::{now_ms, Batch, Dependency, GpuCount, JobFilter, JobSpec, Principal, Role, RunMode, RunState, Scope};
use crate::scheduler::messages::RunRequest;
use std::path::PathBuf;
use std::sync::Mutex;

#[derive(Default)]
struct Record {
    launched: Vec<(JobId, u32)>,
    cancelled: Vec<ShimInfo>,
}

/// Records launches and cancels; starts nothing.
struct Recorder(Arc<Mutex<Record>>);

impl Launcher for Recorder {
    fn launch(&self, job: JobId, attempt: u32, _dir: PathBuf, _spec: crate::executor::AttemptSpec, _tx: mpsc::Sender<Msg>) {
        self.0.lock().expect("record").launched.push((job, attempt));
    }

    fn watch(&self, _job: JobId, _attempt: u32, _running: RunningAttempt, _tx: mpsc::Sender<Msg>) {}

    fn cancel(&self, shim: ShimInfo, _grace: Duration) {
        self.0.lock().expect("record").cancelled.push(shim);
    }
}

struct Harness {
    engine: Engine,
    record: Arc<Mutex<Record>>,
    dir: tempfile::TempDir,
    _rx: mpsc::Receiver<Msg>,
}

fn shim(job: JobId) -> ShimInfo {
    ShimInfo { pid: 4_000_000 + u32::try_from(job.0).unwrap_or(0), start_ticks: 1, job_pgid: 4_000_000, job_start_ticks: 1 }
}

fn exit(code: i32) -> Result<Adoption, String> {
    Ok(Adoption::Finished(ExitRecord { exit_code: Some(code), signal: None, started_ms: now_ms(), ended_ms: now_ms(), peak_rss_kib: 1 }))
}

fn spec(commands: &str) -> JobSpec {
    JobSpec { commands: vec![commands.into()], ..JobSpec::default() }
}

fn in_queue(queue: &str) -> JobSpec {
    JobSpec { queue: Some(queue.into()), ..spec("true") }
}

impl Harness {
    fn new(gpus: u32, rules: SchedulingRules) -> Harness {
        Harness::on(|dir| crate::testing::simulated_gpus(dir, gpus), rules)
    }

    /// An engine on the GPUs `machine` opens in the state directory.
    fn on(machine: impl FnOnce(&std::path::Path) -> Arc<GpuMonitor>, rules: SchedulingRules) -> Harness {
        let dir = tempfile::tempdir().expect("state dir");
        let store = Store::open(&dir.path().join("gantry.db")).expect("store");
        let monitor = machine(dir.path());
        let policy = PolicyService::new(crate::testing::bundled_plugins(), "policy-best-fit");
        let options = SchedulerOptions {
            rules,
            state_dir: dir.path().to_path_buf(),
            shim_program: PathBuf::from("/nonexistent/gantry-shim"),
            simulation: None,
            work_dir: None,
            job_umask: 0o022,
            job_token: None,
            metrics: Arc::new(crate::metrics::SchedulerMetrics::default()),
            clock: crate::model::Clock::System,
            providers: None,
        };
        let record = Arc::new(Mutex::new(Record::default()));
        let (tx, rx) = mpsc::channel();
        let (events, _) = tokio::sync::broadcast::channel(64);
        let parts = Parts { options, store, gpus: monitor, policy, launcher: Box::new(Recorder(record.clone())), remote: None };
        let engine = Engine::new(parts, tx, events).expect("engine");
        Harness { engine, record, dir, _rx: rx }
    }

    fn submit(&mut self, specs: Vec<JobSpec>) -> Vec<JobId> {
        self.engine.submit(Batch::new(specs).expect("valid batch"), None).expect("submitted")
    }

    /// One scheduling pass; the jobs it launched, in order.
    fn pass(&mut self) -> Vec<JobId> {
        let before = self.record.lock().expect("record").launched.len();
        self.engine.pass().expect("pass");
        self.record.lock().expect("record").launched[before..].iter().map(|(job, _)| *job).collect()
    }

    fn started(&mut self, id: JobId) {
        let attempt = self.job(id).attempts.len() as u32;
        self.engine.handle(Msg::Started { job: id, attempt, shim: Ok(shim(id)) }).expect("started");
    }

    fn ended(&mut self, id: JobId, outcome: Result<Adoption, String>) {
        let attempt = self.job(id).attempts.len() as u32;
        self.engine.handle(Msg::Ended { job: id, attempt, outcome }).expect("ended");
    }

    fn job(&self, id: JobId) -> &Job {
        &self.engine.jobs[&id]
    }

    fn state(&self, id: JobId) -> JobState {
        self.job(id).state
    }
}

#[test]
fn a_job_runs_and_the_next_of_its_queue_waits_for_it() {
    let mut h = Harness::new(2, SchedulingRules::default());
    let ids = h.submit(vec![in_queue("q"), in_queue("q")]);
    assert_eq!(h.pass(), vec![ids[0]], "only the head of the queue starts");
    assert_eq!(h.state(ids[0]), JobState::Running);
    assert_eq!(h.job(ids[0]).attempts[0].gpus.len(), 1);
    assert_eq!(h.pass(), vec![], "nothing new while the head runs");
    h.started(ids[0]);
    h.ended(ids[0], exit(0));
    assert_eq!(h.state(ids[0]), JobState::Succeeded);
    assert_eq!(h.pass(), vec![ids[1]]);
    // What was committed survives: a new engine on the same store sees the same states.
    let reopened = Store::open(&h.dir.path().join("gantry.db")).expect("reopen").load().expect("load");
    assert_eq!(reopened.jobs.iter().map(|j| j.state).collect::<Vec<_>>(), [JobState::Succeeded, JobState::Running]);
}

#[test]
fn cancel_ends_a_waiting_job_at_once_and_signals_a_running_one() {
    let mut h = Harness::new(1, SchedulingRules::default());
    let ids = h.submit(vec![spec("sleep 1"), spec("sleep 1")]);
    assert_eq!(h.pass(), vec![ids[0]], "one GPU, no sharing: one job");
    let waiting = h.engine.cancel_request(ids[1], &Scope::All).expect("cancel waiting");
    assert_eq!(waiting.state, JobState::Cancelled);

    h.engine.cancel_request(ids[0], &Scope::All).expect("cancel running");
    assert_eq!(h.state(ids[0]), JobState::Running, "it ends when its shim says so");
    assert!(h.record.lock().expect("record").cancelled.is_empty(), "no shim to signal yet");
    h.started(ids[0]);
    assert_eq!(h.record.lock().expect("record").cancelled, vec![shim(ids[0])], "signalled once the shim is known");
    h.ended(ids[0], Ok(Adoption::Finished(ExitRecord { exit_code: None, signal: Some(15), started_ms: 0, ended_ms: 1, peak_rss_kib: 0 })));
    assert_eq!(h.state(ids[0]), JobState::Cancelled);
    assert_eq!(h.job(ids[0]).reason.as_deref(), Some("cancelled by request"));
    assert!(matches!(h.engine.cancel_request(ids[0], &Scope::All), Err(SchedulerError::Conflict { action: "cancel", .. })));
}

#[test]
fn a_failure_is_retried_then_fails_and_a_retry_request_queues_it_again() {
    let mut h = Harness::new(1, SchedulingRules { max_retry_before_backoff: 0, ..SchedulingRules::default() });
    let id = h.submit(vec![JobSpec { retries: Some(1), ..spec("exit 7") }])[0];
    h.pass();
    h.ended(id, exit(7));
    assert_eq!(h.state(id), JobState::Waiting);
    assert_eq!(h.job(id).reason.as_deref(), Some("attempt 1 exited with code 7; retrying"));
    assert_eq!(h.pass(), vec![id]);
    assert_eq!(h.job(id).attempts.len(), 2);
    h.ended(id, exit(7));
    assert_eq!(h.state(id), JobState::Failed);
    assert_eq!(h.job(id).reason.as_deref(), Some("exited with code 7"));

    let again = h.engine.retry(id, &Scope::All).expect("retry");
    assert_eq!((again.state, again.spec.retries), (JobState::Waiting, Some(3)), "its retries count again from here");
    assert_eq!(h.pass(), vec![id]);
    assert!(matches!(h.engine.retry(id, &Scope::All), Err(SchedulerError::Conflict { action: "retry", .. })));
}

#[test]
fn failures_in_a_row_make_the_queue_back_off() {
    let backoff = Duration::from_secs(3600);
    let mut h = Harness::new(1, SchedulingRules { max_retry_before_backoff: 2, backoff, ..SchedulingRules::default() });
    let ids = h.submit(vec![in_queue("q"), in_queue("q"), in_queue("q")]);
    assert_eq!(h.pass(), vec![ids[0]]);
    h.ended(ids[0], exit(1));
    assert_eq!(h.engine.queues["q"].backoff_until_ms, None, "one failure is not yet a reason to wait");
    assert_eq!(h.pass(), vec![ids[1]], "the next starts at once");
    h.ended(ids[1], exit(1));
    assert_eq!((h.state(ids[0]), h.state(ids[1])), (JobState::Failed, JobState::Failed));
    let queue = &h.engine.queues["q"];
    let until = queue.backoff_until_ms.expect("backing off");
    assert!(until > now_ms() + 3_000_000, "{until}");
    assert_eq!(queue.consecutive_failures, 0, "the count starts again after a backoff");
    assert_eq!(h.pass(), vec![], "the third waits out the backoff");
    assert_eq!(h.engine.next_deadline(), Some(until), "and the thread wakes when it ends");
}

#[test]
fn a_dependency_orders_jobs_and_its_failure_cancels_what_waits_on_it() {
    let mut h = Harness::new(2, SchedulingRules::default());
    let first = JobSpec { key: Some("first".into()), ..spec("true") };
    let then = JobSpec { after: vec![Dependency::Key("first".into())], ..spec("true") };
    let ids = h.submit(vec![first.clone(), then.clone()]);
    assert_eq!(h.pass(), vec![ids[0]], "the dependent waits although a GPU is free");
    h.ended(ids[0], exit(0));
    assert_eq!(h.pass(), vec![ids[1]]);

    let ids = h.submit(vec![first, then]);
    h.pass();
    h.ended(ids[0], exit(3));
    assert_eq!(h.state(ids[1]), JobState::Cancelled);
    assert_eq!(h.job(ids[1]).reason.as_deref(), Some(format!("dependency {} failed", ids[0]).as_str()));
    // A new job after the failed one is cancelled as it is submitted.
    let late = h.submit(vec![JobSpec { after: vec![Dependency::Job(ids[0])], ..spec("true") }])[0];
    assert_eq!(h.state(late), JobState::Cancelled);
    let unknown = h.engine.submit(Batch::new(vec![JobSpec { after: vec![Dependency::Job(JobId(999))], ..spec("true") }]).expect("valid"), None);
    assert!(matches!(unknown, Err(SchedulerError::Invalid(e)) if e.field == "jobs[0].after"));
}

#[test]
fn a_held_head_holds_up_its_queue_until_released() {
    let mut h = Harness::new(2, SchedulingRules::default());
    let ids = h.submit(vec![JobSpec { hold: true, ..in_queue("q") }, in_queue("q")]);
    assert_eq!(h.state(ids[0]), JobState::Held);
    assert_eq!(h.pass(), vec![]);
    assert!(matches!(h.engine.transition(ids[1], &Scope::All, JobState::Held, JobState::Waiting, "release"), Err(SchedulerError::Conflict { .. })));
    h.engine.transition(ids[0], &Scope::All, JobState::Held, JobState::Waiting, "release").expect("release");
    assert_eq!(h.pass(), vec![ids[0]]);
}

#[test]
fn a_user_touches_only_their_own_jobs() {
    let mut h = Harness::new(1, SchedulingRules::default());
    let ids = h.submit(vec![JobSpec { owner: Some("ada".into()), ..spec("true") }, JobSpec { owner: Some("bob".into()), ..spec("true") }]);
    let ada = Principal::account("1", "ada", Role::User).scope();
    assert!(matches!(h.engine.cancel_request(ids[1], &ada), Err(SchedulerError::Forbidden { owner, .. }) if owner == "bob"));
    assert_eq!(h.state(ids[1]), JobState::Waiting, "a refused cancel changes nothing");
    let ada_only = JobFilter { owner: Some("ada".into()), ..JobFilter::default() };
    assert_eq!(h.engine.list(&ada_only).iter().map(|j| j.id).collect::<Vec<_>>(), vec![ids[0]]);
    h.engine.cancel_request(ids[0], &ada).expect("own job");
}

#[test]
fn a_file_runs_once_at_a_time_and_a_stopped_run_says_stopped() {
    let mut h = Harness::new(1, SchedulingRules::default());
    let request = |exclusive| RunRequest { file: "/tmp/command_gpu.txt".into(), mode: RunMode::Single, batch: Batch::new(vec![in_queue("1"), in_queue("1")]).expect("valid"), exclusive };
    let run = h.engine.start_run(request(true)).expect("started").run.id;
    assert!(matches!(h.engine.start_run(request(true)), Err(SchedulerError::AlreadyRunning { run: r, .. }) if r == run));
    let stopped = h.engine.stop_run(run, &Scope::All).expect("stopped");
    assert_eq!(stopped.run.state, RunState::Stopped, "not finished: it was stopped");
    assert_eq!(stopped.counts.cancelled, 2);
    h.engine.start_run(request(true)).expect("a stopped file may start again");
}

#[test]
fn an_out_of_memory_failure_is_retried_with_a_larger_need() {
    let mut h = Harness::new(1, SchedulingRules { max_retry_before_backoff: 0, ..SchedulingRules::default() });
    let id = h.submit(vec![JobSpec { memory_mib: 1000, retries: Some(1), ..spec("python train.py") }])[0];
    h.pass();
    let log = h.job(id).attempts[0].dir.join("output.log");
    std::fs::create_dir_all(log.parent().expect("attempt dir")).expect("dir");
    std::fs::write(&log, "step 1\ntorch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n").expect("log");
    h.ended(id, exit(1));
    let job = h.job(id);
    assert!(job.attempts[0].out_of_memory);
    assert_eq!((job.state, job.memory_mib), (JobState::Waiting, 1250), "its need plus a quarter");
}

#[test]
fn an_attempt_whose_shim_never_recorded_itself_waits_again() {
    let mut h = Harness::new(1, SchedulingRules::default());
    let id = h.submit(vec![spec("true")])[0];
    h.pass();
    h.ended(id, Ok(Adoption::Lost { ran: false, reason: "the shim never started".into() }));
    let job = h.job(id);
    assert_eq!((job.state, job.attempts.len()), (JobState::Waiting, 0));
    assert_eq!(h.pass(), vec![id]);
    assert_eq!(h.record.lock().expect("record").launched.last(), Some(&(id, 1)), "as attempt 1 again");
}

#[test]
fn memory_the_driver_keeps_is_never_promised() {
    // One 80 GB GPU whose driver keeps 1 GiB, as real drivers do: 80,535 MiB can ever be free.
    let machine = serde_json::json!({ "count": 1, "model": { "memory_mib": 81_559, "reserved_mib": 1_024 } });
    let mut h = Harness::on(|dir| crate::testing::simulated_machine(dir, machine), SchedulingRules::default());
    let too_big = h.submit(vec![JobSpec { memory_mib: 81_000, ..spec("python train.py") }])[0];
    assert!(h.job(too_big).reason.as_deref().is_some_and(|r| r.contains("80535 MiB")), "{:?}", h.job(too_big).reason);
    assert_eq!(h.pass(), vec![], "not placed where it can't fit");
    let fits = h.submit(vec![JobSpec { memory_mib: 80_000, ..spec("python train.py") }])[0];
    assert_eq!(h.pass(), vec![fits]);
}

fn owned(owner: &str) -> JobSpec {
    JobSpec { owner: Some(owner.into()), ..spec("true") }
}

/// An attempt that held its GPUs for the last hour.
fn an_hour_long() -> Result<Adoption, String> {
    let now = now_ms();
    Ok(Adoption::Finished(ExitRecord { exit_code: Some(0), signal: None, started_ms: now - 3_600_000, ended_ms: now, peak_rss_kib: 1 }))
}

#[test]
fn a_users_quota_holds_their_jobs_back_while_others_run_beside_them() {
    let mut rules = SchedulingRules::default();
    rules.quotas.users.insert("ada".into(), crate::model::Cap { gpus: Some(1), memory_mib: None });
    let mut h = Harness::new(4, rules);
    let ada = h.submit(vec![owned("ada"), owned("ada"), owned("ada")]);
    let bob = h.submit(vec![owned("bob"), owned("bob")]);
    let mut started = h.pass();
    started.sort();
    assert_eq!(started, vec![ada[0], bob[0], bob[1]]);
    let reason = h.job(ada[1]).reason.clone().unwrap_or_default();
    assert!(reason.contains("quota") && reason.contains("ada may hold 1 GPU(s) and holds 1"), "{reason}");
    assert_eq!(h.pass(), vec![], "still one of ada's at a time, with two GPUs free");
    h.started(ada[0]);
    h.ended(ada[0], exit(0));
    assert_eq!(h.pass(), vec![ada[1]]);
}

#[test]
fn of_two_users_waiting_for_a_gpu_the_one_who_used_less_starts_first() {
    let mut h = Harness::new(1, SchedulingRules::default());
    let first = h.submit(vec![owned("ada")]);
    assert_eq!(h.pass(), first);
    let ada_later = h.submit(vec![owned("ada")]);
    let bob = h.submit(vec![owned("bob")]);
    h.started(first[0]);
    h.ended(first[0], an_hour_long());
    assert_eq!(h.pass(), bob, "ada's job is older, but ada has used the GPU for an hour");
    assert_eq!(h.state(ada_later[0]), JobState::Waiting);
    let used = h.engine.recent_use(now_ms());
    // An hour of one GPU, a little less for the decay during it (a day's half-life); bob's job
    // has just started, and the milliseconds it has run count (the test flaked on `== 0.0`).
    assert!((used["ada"] - 1.0).abs() < 0.02 && used.get("bob").is_none_or(|&b| b < 1e-3), "{used:?}");
}

#[test]
fn an_owner_has_at_most_max_jobs_per_user_unfinished_and_what_ends_makes_room() {
    let mut rules = SchedulingRules::default();
    rules.quotas.max_jobs_per_user = 3;
    let mut h = Harness::new(1, rules);
    let of = |owner: &str| JobSpec { owner: Some(owner.into()), ..spec("true") };
    let ids = h.submit(vec![of("ada"), of("ada")]);
    let refused = h.engine.submit(Batch::new(vec![of("ada"), of("ada")]).expect("valid"), None).expect_err("past the cap");
    assert!(matches!(refused, SchedulerError::TooMany { unfinished: 2, more: 2, limit: 3, .. }), "{refused}");
    // Someone else's jobs don't count against ada's.
    h.submit(vec![of("bob"), of("bob"), of("bob")]);
    h.submit(vec![of("ada")]);
    assert_eq!(h.pass().first(), Some(&ids[0]));
    h.started(ids[0]);
    h.ended(ids[0], exit(0));
    let last = h.submit(vec![of("ada")]);
    let over = |h: &mut Harness| h.engine.submit(Batch::new(vec![of("ada")]).expect("valid"), None);
    assert!(matches!(over(&mut h), Err(SchedulerError::TooMany { unfinished: 3, more: 1, .. })), "3 unfinished again");
    // A cancelled job makes room; retrying it takes the room back.
    h.engine.cancel(last[0], "by the test".into()).expect("cancel");
    assert!(over(&mut h).is_ok(), "room after a cancel");
    let admin = Principal::account("1", "root", Role::Admin).scope();
    h.engine.cancel(ids[1], "by the test".into()).expect("cancel");
    h.engine.retry(ids[1], &admin).expect("retry");
    assert!(matches!(over(&mut h), Err(SchedulerError::TooMany { unfinished: 3, .. })), "the retried job counts again");
}

#[test]
fn a_job_asking_for_more_than_the_node_has_is_refused_and_one_waiting_for_eligible_gpus_is_kept() {
    let mut h = Harness::new(2, SchedulingRules::default());
    let refused = h.engine.submit(Batch::new(vec![JobSpec { gpus: Some(GpuCount { min: 3, max: 3 }), ..spec("true") }]).expect("valid"), None).expect_err("3 of 2 GPUs");
    assert!(refused.to_string().contains("jobs[0].gpus: needs 3 GPUs; this node has 2"), "{refused}");
    let refused = h.engine.submit(Batch::new(vec![JobSpec { memory_mib: 10 << 20, ..spec("true") }]).expect("valid"), None).expect_err("10 TiB");
    assert!(refused.to_string().contains("jobs[0].memory_mib"), "{refused}");
}

#[test]
fn a_new_priority_moves_a_waiting_job_ahead_and_a_running_one_keeps_its_own() {
    let mut h = Harness::new(1, SchedulingRules::default());
    let ids = h.submit(vec![spec("true"), spec("true"), spec("true")]);
    let anyone = Principal::account("1", "root", Role::Admin).scope();
    assert_eq!(h.engine.set_priority(ids[2], &anyone, 5).expect("waiting").spec.priority, 5);
    assert_eq!(h.pass(), vec![ids[2]], "the job with the higher priority starts first");
    assert!(matches!(h.engine.set_priority(ids[2], &anyone, 9), Err(SchedulerError::Conflict { action: "a new priority", .. })));
}

#[test]
fn a_new_jobs_start_counts_the_jobs_ahead_by_their_limits_or_the_run_times_of_their_commands() {
    let mut h = Harness::new(1, SchedulingRules::default());
    let first = h.submit(vec![spec("python train.py")])[0];
    assert_eq!(h.pass(), vec![first]);
    h.started(first);
    h.ended(first, an_hour_long());
    let now = h.engine.now();
    assert_eq!(h.engine.estimate_start(1, now).start_ms, Some(now), "a free GPU");

    // The same command again, without a limit: it runs about as long as the last time.
    let again = h.submit(vec![spec("python train.py")])[0];
    assert_eq!(h.pass(), vec![again]);
    h.started(again);
    let started = h.job(again).attempts[0].started_ms;
    let estimate = h.engine.estimate_start(1, h.engine.now());
    assert_eq!((estimate.start_ms, estimate.ahead, estimate.from_history), (Some(started + 3_600_000), 0, 1));
    // Needing more GPUs than there are free times for: can't be told.
    assert_eq!(h.engine.estimate_start(2, h.engine.now()).start_ms, None);

    // Behind a waiting job with a limit, then one whose run time nothing here tells.
    h.submit(vec![JobSpec { time_limit_s: Some(1800), ..spec("python eval.py") }]);
    h.pass();
    let estimate = h.engine.estimate_start(1, h.engine.now());
    assert_eq!((estimate.start_ms, estimate.ahead, estimate.from_history), (Some(started + 3_600_000 + 1_800_000), 1, 1));
    h.submit(vec![spec("python new.py")]);
    h.pass();
    let estimate = h.engine.estimate_start(1, h.engine.now());
    assert_eq!((estimate.start_ms, estimate.ahead), (None, 2));
    // A job of lower priority waits behind a new one, so it is not counted.
    let low = h.submit(vec![JobSpec { priority: -1, ..spec("python low.py") }])[0];
    h.pass();
    assert_eq!(h.state(low), JobState::Waiting);
    assert_eq!(h.engine.estimate_start(1, h.engine.now()).ahead, 2);
}
