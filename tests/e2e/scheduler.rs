//! The scheduler end to end: a real daemon on simulated GPUs (the fake NVML, through the same
//! code path as a driver), jobs submitted over HTTP, checked from the jobs' own output.

use crate::{alive, ok, Daemon, Gantry, FAST};
use serde_json::{json, Value};
use std::time::Duration;

fn config(scheduler: &str) -> String {
    format!("{FAST}[scheduler]\n{scheduler}\n")
}

fn attempt(job: &Value, n: usize) -> &Value {
    &job["attempts"][n]
}

fn times(job: &Value) -> (u64, u64) {
    let a = attempt(job, job["attempts"].as_array().map_or(0, |a| a.len().saturating_sub(1)));
    (a["started_ms"].as_u64().expect("started"), a["ended_ms"].as_u64().expect("ended"))
}

fn gpus(job: &Value) -> Vec<u64> {
    let last = job["attempts"].as_array().and_then(|a| a.last()).expect("an attempt");
    last["gpus"].as_array().expect("gpus").iter().filter_map(Value::as_u64).collect()
}

fn state(job: &Value) -> &str {
    job["state"].as_str().unwrap_or_default()
}

/// Intervals `(start, end)` of which no two overlap.
fn disjoint(mut spans: Vec<(u64, u64)>) -> bool {
    spans.sort();
    spans.windows(2).all(|w| w[0].1 <= w[1].0)
}

#[test]
fn jobs_of_a_queue_run_in_order_and_queues_run_side_by_side() {
    let g = Gantry::new();
    let d = g.serve(&config(""), &["--simulate", "4"]);
    // Long enough that b's first job starts while a's first runs even on a loaded CI machine.
    let job = |queue: &str| json!({ "commands": ["sleep 0.8"], "queue": queue });
    let a: Vec<u64> = (0..3).flat_map(|_| d.submit(job("a"))).collect();
    let b: Vec<u64> = (0..2).flat_map(|_| d.submit(job("b"))).collect();
    let a: Vec<Value> = a.iter().map(|&id| d.finished(id)).collect();
    let b: Vec<Value> = b.iter().map(|&id| d.finished(id)).collect();
    for job in a.iter().chain(&b) {
        assert_eq!(state(job), "succeeded", "{job:#}");
    }
    for pair in a.windows(2).chain(b.windows(2)) {
        let (first, second) = (times(&pair[0]), times(&pair[1]));
        assert!(first.1 <= second.0, "a queue's jobs overlapped: {first:?} then {second:?}");
    }
    // The queues ran at the same time: b's first job started before a's first ended.
    assert!(times(&b[0]).0 < times(&a[0]).1, "queues did not run in parallel: a {:?}, b {:?}", times(&a[0]), times(&b[0]));
    assert_ne!(gpus(&a[0]), gpus(&b[0]));
}

#[test]
fn a_queue_with_parallelism_runs_jobs_at_once() {
    let g = Gantry::new();
    let d = g.serve(&config(""), &["--simulate", "4"]);
    let (status, body) = d.request("PUT", "/api/v1/queues/wide", Some(json!({ "parallelism": 3 })));
    assert_eq!(status, 200, "{body}");
    let ids: Vec<u64> = (0..3).flat_map(|_| d.submit(json!({ "commands": ["sleep 0.6"], "queue": "wide" }))).collect();
    let jobs: Vec<Value> = ids.iter().map(|&id| d.finished(id)).collect();
    assert!(!disjoint(jobs.iter().map(times).collect()), "parallelism 3 ran one at a time");
}

#[test]
fn memory_decides_where_jobs_fit_and_a_job_too_big_waits() {
    let g = Gantry::new();
    // Two 24 GiB GPUs, sharing allowed, 1 GiB of each kept free: 15 GiB jobs fit one per GPU,
    // never two.
    let d = g.serve(&config("allow_sharing = true\nmemory_margin_mib = 1024"), &["--simulate", "2xRTX4090"]);
    // More than any GPU here has: refused at once.
    let (code, refused) = d.request("POST", "/api/v1/jobs", Some(json!({ "commands": ["true"], "memory_mib": 30_000 })));
    assert_eq!((code, refused["detail"].as_str()), (422, Some("jobs[0].memory_mib: needs 30000 MiB on each GPU; this node's largest GPU has 24564 MiB")), "{refused}");
    // More than the rules leave of any GPU: it waits, saying why (the rules may change).
    let huge = d.submit(json!({ "commands": ["true"], "memory_mib": 24_000 }))[0];
    let ids: Vec<u64> = (0..4).flat_map(|_| d.submit(json!({ "commands": ["sleep 0.5"], "memory_mib": 15_000 }))).collect();
    let jobs: Vec<Value> = ids.iter().map(|&id| d.finished(id)).collect();
    for gpu in [0, 1] {
        let on_gpu: Vec<(u64, u64)> = jobs.iter().filter(|j| gpus(j) == vec![gpu]).map(times).collect();
        assert!(disjoint(on_gpu.clone()), "two 15 GiB jobs shared 24 GiB GPU {gpu}: {on_gpu:?}");
    }
    let huge = d.job(huge);
    assert_eq!(state(&huge), "waiting", "a 24,000 MiB job with 23,540 MiB usable: {huge:#}");
    assert_eq!(huge["reason"], "needs 24000 MiB per GPU; the largest eligible GPU here has 23540 MiB: it waits");
    // Small jobs share a GPU when sharing is on (best fit packs them onto one).
    let small: Vec<u64> = (0..4).flat_map(|_| d.submit(json!({ "commands": ["sleep 0.8"], "memory_mib": 4_000 }))).collect();
    let small: Vec<Value> = small.iter().map(|&id| d.finished(id)).collect();
    let shared = [0, 1].iter().any(|&gpu| !disjoint(small.iter().filter(|j| gpus(j) == vec![gpu]).map(times).collect()));
    assert!(shared, "sharing on, yet no two 4 GB jobs ran together on a 24 GB GPU");
}

#[test]
fn without_sharing_a_gpu_runs_one_job_at_a_time() {
    let g = Gantry::new();
    let d = g.serve(&config("maximize_resource_utilization = false"), &["--simulate", "1"]);
    let ids: Vec<u64> = (0..3).flat_map(|_| d.submit(json!({ "commands": ["sleep 0.3"], "memory_mib": 100 }))).collect();
    let jobs: Vec<Value> = ids.iter().map(|&id| d.finished(id)).collect();
    assert!(disjoint(jobs.iter().map(times).collect()), "sharing off, yet jobs overlapped on GPU 0");
}

#[test]
fn two_jobs_submitted_at_once_never_share_a_gpu_that_holds_one() {
    let g = Gantry::new();
    // One 24 GiB GPU, sharing on: each job alone fits, both together do not.
    let d = g.serve(&config("allow_sharing = true"), &["--simulate", "1"]);
    let spec = json!({ "commands": ["sleep 0.5"], "memory_mib": 16_000 });
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| d.submit(spec.clone())[0]);
        let b = s.spawn(|| d.submit(spec.clone())[0]);
        (a.join().expect("a"), b.join().expect("b"))
    });
    let (a, b) = (d.finished(a), d.finished(b));
    assert!(disjoint(vec![times(&a), times(&b)]), "both ran at once on one GPU: {:?} {:?}", times(&a), times(&b));
}

#[test]
fn elastic_jobs_take_what_the_rules_leave_and_see_their_gpus() {
    let g = Gantry::new();
    let d = g.serve(&config("gpu_left = 1"), &["--simulate", "4"]);
    let id = d.submit(json!({ "commands": ["echo \"visible=$CUDA_VISIBLE_DEVICES order=$CUDA_DEVICE_ORDER\""], "gpus": { "min": 1, "max": 4 } }))[0];
    let job = d.finished(id);
    assert_eq!(state(&job), "succeeded");
    let used = gpus(&job);
    assert_eq!(used.len(), 3, "min(4, max(1, 4 free - gpu_left 1)) = 3: {job:#}");
    let visible: Vec<String> = used.iter().map(u64::to_string).collect();
    assert_eq!(d.log(id).trim(), format!("visible={} order=PCI_BUS_ID", visible.join(",")));
}

#[test]
fn only_eligible_gpus_are_used() {
    let g = Gantry::new();
    let d = g.serve(&config("use_all_gpus = false\ncompete_gpus = [2]"), &["--simulate", "4"]);
    let ids: Vec<u64> = (0..2).flat_map(|_| d.submit(json!({ "commands": ["echo $CUDA_VISIBLE_DEVICES"] }))).collect();
    for id in ids {
        let job = d.finished(id);
        assert_eq!(gpus(&job), vec![2]);
        assert_eq!(d.log(id).trim(), "2");
    }
}

#[test]
fn concurrent_jobs_each_see_only_their_own_gpus() {
    let g = Gantry::new();
    let d = g.serve(&config(""), &["--simulate", "4"]);
    let ids: Vec<u64> = (0..4).flat_map(|_| d.submit(json!({ "commands": ["echo $CUDA_VISIBLE_DEVICES", "sleep 0.3"] }))).collect();
    let mut seen = Vec::new();
    for id in ids {
        let job = d.finished(id);
        let visible = d.log(id).trim().to_string();
        assert_eq!(visible, gpus(&job)[0].to_string());
        seen.push(visible);
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 4, "four jobs at once got {seen:?}");
}

#[test]
fn failures_are_retried_and_a_failing_queue_backs_off() {
    let g = Gantry::new();
    let d = g.serve(&config("max_retry_before_backoff = 2\nbackoff_duration = 1.5"), &["--simulate", "1"]);
    let id = d.submit(json!({ "commands": ["echo try $GANTRY_ATTEMPT", "exit 7"], "retries": 2 }))[0];
    let job = d.finished(id);
    assert_eq!(state(&job), "failed");
    let attempts = job["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 3, "{job:#}");
    assert!(attempts.iter().all(|a| a["exit_code"] == 7), "{job:#}");
    assert_eq!(d.log(id).trim(), "try 3");
    // After two failures in a row the queue waited its backoff before the third attempt.
    let second_end = attempts[1]["ended_ms"].as_u64().expect("ended");
    let third_start = attempts[2]["started_ms"].as_u64().expect("started");
    assert!(third_start >= second_end + 1400, "no backoff: ended {second_end}, restarted {third_start}");
    // Every attempt kept its own log.
    let (status, first) = d.request("GET", &format!("/api/v1/jobs/{id}/log?attempt=1"), None);
    assert_eq!((status, first["data"].as_str()), (200, Some("try 1\n")));
}

#[test]
fn an_out_of_memory_failure_is_retried_with_more_memory_on_a_bigger_gpu() {
    let g = Gantry::new();
    // GPU 0 has 15 GiB, GPU 1 48 GiB; best fit puts a 6 GiB job on GPU 0 first.
    std::fs::create_dir_all(g.sim_dir()).expect("sim dir");
    std::fs::write(
        g.sim_dir().join("nvml-sim.json"),
        r#"{"count": 2, "model": {"name": "Tesla T4", "memory_mib": 15360}, "gpus": [{}, {"name": "NVIDIA RTX A6000", "memory_mib": 49140}]}"#,
    )
    .expect("sim config");
    let d = g.serve(FAST, &[]);
    let script = r#"if [ "$GANTRY_ATTEMPT" = 1 ]; then GANTRY_SIM_GPU_MEM_MIB=8000 sleep 1; echo 'torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB'; exit 1; fi; echo "on $CUDA_VISIBLE_DEVICES""#;
    let id = d.submit(json!({ "commands": [script], "memory_mib": 6144, "retries": 1 }))[0];
    let job = d.finished(id);
    assert_eq!(state(&job), "succeeded", "{job:#}");
    let first = attempt(&job, 0);
    assert_eq!(first["gpus"], json!([0]));
    assert_eq!(first["out_of_memory"], true);
    // The job's shell (6144) and its allocation (8000) were seen together.
    assert!(first["gpu_memory_peak_mib"].as_u64().expect("peak") >= 14_000, "{job:#}");
    assert_eq!(attempt(&job, 1)["gpus"], json!([1]));
    assert!(job["memory_mib"].as_u64().expect("need") > 15_360, "{job:#}");
    assert_eq!(d.log(id).trim(), "on 1");
}

#[test]
fn dependencies_run_in_order_and_cycles_are_refused() {
    let g = Gantry::new();
    let d = g.serve(&config(""), &["--simulate", "4"]);
    let ids = d.submit(json!({ "jobs": [
        { "key": "last", "commands": ["echo last"], "after": ["middle"] },
        { "key": "middle", "commands": ["sleep 0.2"], "after": ["first"] },
        { "key": "first", "commands": ["sleep 0.3"] },
    ]}));
    let jobs: Vec<Value> = ids.iter().map(|&id| d.finished(id)).collect();
    let (last, middle, first) = (times(&jobs[0]), times(&jobs[1]), times(&jobs[2]));
    assert!(first.1 <= middle.0 && middle.1 <= last.0, "order broken: {first:?} {middle:?} {last:?}");

    let (status, body) = d.request("POST", "/api/v1/jobs", Some(json!({ "jobs": [
        { "key": "a", "commands": ["true"], "after": ["b"] },
        { "key": "b", "commands": ["true"], "after": ["a"] },
    ]})));
    assert_eq!(status, 422, "{body}");
    assert!(body["detail"].as_str().unwrap_or_default().contains("cycle"), "{body}");
    // Nothing of a refused batch was kept.
    assert_eq!(d.get("/api/v1/jobs")["total"], 3);

    // A failed dependency cancels what waits on it.
    let ids = d.submit(json!({ "jobs": [
        { "key": "bad", "commands": ["exit 1"] },
        { "commands": ["echo never"], "after": ["bad"] },
    ]}));
    let dependent = d.finished(ids[1]);
    assert_eq!(state(&dependent), "cancelled");
    assert!(dependent["attempts"].as_array().is_some_and(|a| a.is_empty()));
}

#[test]
fn cancel_kills_the_whole_process_group_grandchildren_included() {
    let g = Gantry::new();
    let d = g.serve(&config("cancel_grace_s = 5"), &["--simulate", "1"]);
    let pid_file = g.state.path().join("grandchild.pid");
    let script = format!("sh -c 'sleep 300 & echo $! > {}; wait'", pid_file.display());
    let id = d.submit(json!({ "commands": [script] }))[0];
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let grandchild: i32 = loop {
        if let Some(pid) = std::fs::read_to_string(&pid_file).ok().and_then(|t| t.trim().parse().ok()) {
            break pid;
        }
        assert!(std::time::Instant::now() < deadline, "the job never started: {:#}", d.job(id));
        std::thread::sleep(Duration::from_millis(20));
    };
    let (status, body) = d.request("POST", &format!("/api/v1/jobs/{id}/cancel"), None);
    assert_eq!(status, 200, "{body}");
    let job = d.finished(id);
    assert_eq!(state(&job), "cancelled", "{job:#}");
    assert_eq!(attempt(&job, 0)["signal"], 15, "{job:#}");
    assert!(!alive(grandchild), "grandchild {grandchild} survived the cancel");
    let (status, _) = d.request("POST", &format!("/api/v1/jobs/{id}/cancel"), None);
    assert_eq!(status, 409, "cancelling a finished job is a conflict");
}

#[test]
fn held_and_delayed_jobs_wait_and_hold_up_their_queue() {
    let g = Gantry::new();
    let d = g.serve(&config(""), &["--simulate", "2"]);
    let held = d.submit(json!({ "commands": ["echo held"], "queue": "q", "hold": true }))[0];
    let behind = d.submit(json!({ "commands": ["echo behind"], "queue": "q" }))[0];
    // A job of another queue, submitted after them, that runs to its end: passes were made with
    // the held head in place, so `behind` waiting is the scheduler's decision, not slowness.
    let witness = d.submit(json!({ "commands": ["true"], "queue": "other" }))[0];
    assert_eq!(state(&d.finished(witness)), "succeeded");
    assert_eq!(state(&d.job(held)), "held");
    assert_eq!(state(&d.job(behind)), "waiting");
    let (status, _) = d.request("POST", &format!("/api/v1/jobs/{held}/release"), None);
    assert_eq!(status, 200);
    assert_eq!(state(&d.finished(behind)), "succeeded");
    assert!(times(&d.job(held)).1 <= times(&d.job(behind)).0);

    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as u64;
    let delayed = d.submit(json!({ "commands": ["true"], "start_at_ms": now + 1000 }))[0];
    let job = d.finished(delayed);
    assert!(times(&job).0 >= now + 1000, "started early: {job:#}");
}

#[test]
fn bad_submissions_name_the_field_at_fault() {
    let g = Gantry::new();
    let d = g.serve(&config(""), &["--simulate", "1"]);
    let (status, body) = d.request("POST", "/api/v1/jobs", Some(json!({ "commands": ["true"], "after": [999] })));
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["detail"], "jobs[0].after: job 999 does not exist");
    let (status, body) = d.request("POST", "/api/v1/jobs", Some(json!({ "commands": ["true"], "gpus": { "min": 3, "max": 1 } })));
    assert_eq!(status, 422, "{body}");
    assert!(body["detail"].as_str().unwrap_or_default().starts_with("jobs[0].gpus"), "{body}");
    let (status, body) = d.request("POST", "/api/v1/jobs", Some(json!({ "command": "true" })));
    assert!(status == 400 || status == 422, "{status} {body}");
    assert_eq!(body["error"], "body");
    let (status, body) = d.request("GET", "/api/v1/jobs/12345", None);
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
}

/// The scenario that matters most: a daemon killed while jobs run comes back, finds them, and
/// every job ends exactly once.
#[test]
fn a_killed_daemon_restarts_and_every_job_runs_exactly_once() {
    let g = Gantry::new();
    let out = g.state.path().join("ran");
    std::fs::write(&out, "").expect("side-effect file");
    let mut d = g.serve(&config(""), &["--simulate", "20"]);
    let script = format!("sleep 0.8; echo $GANTRY_JOB_ID >> {}", out.display());
    let jobs: Vec<Value> = (0..220).map(|_| json!({ "commands": [script] })).collect();
    let ids = d.submit(json!({ "jobs": jobs }));
    assert_eq!(ids.len(), 220);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let running = d.get("/api/v1/jobs?state=running")["total"].as_u64().unwrap_or(0);
        if running == 20 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never 20 running: {running}");
        std::thread::sleep(Duration::from_millis(10));
    }
    d.crash();
    // Some of the running jobs end while no daemon watches.
    std::thread::sleep(Duration::from_millis(1200));
    let restarted: Daemon = g.serve(&config(""), &["--simulate", "20"]);
    // Not dropped: its cleanup would kill the jobs the new daemon has adopted.
    std::mem::forget(std::mem::replace(&mut d, restarted));
    for &id in &ids {
        let job = d.wait_job(id, Duration::from_secs(120), |j| matches!(j["state"].as_str(), Some("succeeded" | "failed" | "cancelled")));
        assert_eq!(state(&job), "succeeded", "{job:#}");
        assert_eq!(job["attempts"].as_array().map(Vec::len), Some(1), "started twice: {job:#}");
        assert_eq!(attempt(&job, 0)["exit_code"], 0);
    }
    let text = std::fs::read_to_string(&out).expect("side effects");
    let mut ran: Vec<u64> = text.lines().map(|l| l.trim().parse().expect("an id")).collect();
    ran.sort_unstable();
    assert_eq!(ran, ids, "each job's side effect exactly once");
}

#[test]
fn rules_hot_reload_and_a_bad_edit_keeps_the_old_rules() {
    let g = Gantry::new();
    let d = g.serve(&config("use_all_gpus = false\ncompete_gpus = [0]"), &["--simulate", "4"]);
    let first = d.submit(json!({ "commands": ["true"] }))[0];
    assert_eq!(gpus(&d.finished(first)), vec![0]);
    let path = g.state.path().join("gantry.toml");
    std::fs::write(&path, config("use_all_gpus = false\ncompete_gpus = [3]")).expect("edit");
    wait_for_log(&g, "scheduling rules reloaded");
    let second = d.submit(json!({ "commands": ["true"] }))[0];
    assert_eq!(gpus(&d.finished(second)), vec![3]);
    std::fs::write(&path, config("use_all_gpus = false\ncompete_gpus = [1]\nmax_gpu = 0")).expect("bad edit");
    wait_for_log(&g, "scheduler.max_gpu");
    let third = d.submit(json!({ "commands": ["true"] }))[0];
    assert_eq!(gpus(&d.finished(third)), vec![3], "the invalid edit must not apply");
}

fn wait_for_log(g: &Gantry, text: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !g.daemon_log().contains(text) {
        assert!(std::time::Instant::now() < deadline, "the daemon never said {text:?}: {}", g.daemon_log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `submitted array ID: …`, as `gantry submit --array/--sweep` prints it.
fn submitted_array(out: &std::process::Output) -> u64 {
    assert!(out.status.success(), "submit: {}", crate::stderr(out));
    let text = crate::stdout(out);
    text.strip_prefix("submitted array ").and_then(|r| r.split(':').next()).and_then(|id| id.parse().ok()).unwrap_or_else(|| panic!("not an array: {text}"))
}

#[test]
fn arrays_and_sweeps_run_one_job_per_element_within_their_limit_and_act_as_one() {
    let g = Gantry::new();
    let d = g.serve(FAST, &["--simulate", "4"]);

    // An array of six, at most two at once (Slurm's %2); each element knows its index.
    let array = submitted_array(&g.run(&["submit", "--array", "0..5%2", "--", "echo idx {} $GANTRY_ARRAY_INDEX; sleep 0.5"]));
    let (mut most, deadline) = (0, std::time::Instant::now() + Duration::from_secs(30));
    loop {
        let view = d.get(&format!("/api/v1/arrays/{array}"));
        let running = view["counts"]["running"].as_u64().expect("running");
        assert!(running <= 2, "more than two elements run at once: {view:#}");
        most = most.max(running);
        if view["counts"]["succeeded"] == 6 {
            assert_eq!(view["max_running"], 2, "{view:#}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{view:#}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(most, 2, "the limit is used, not only respected");
    for index in 0..6 {
        assert_eq!(ok(g.run(&["logs", &format!("{array}.{index}")])), format!("idx {index} {index}\n"));
    }
    let element = d.job(array + 3);
    assert_eq!((element["array"]["id"].as_u64(), element["array"]["index"].as_u64(), element["spec"]["labels"]["array_index"].as_str()), (Some(array), Some(3), Some("3")), "{element:#}");

    // A sweep: the cross product, in order, each element with its values as labels and in its
    // environment; held as one, released as one.
    let sweep = submitted_array(&g.run(&["submit", "--hold", "--sweep", "lr=1e-3,3e-4", "--sweep", "seed=1..3", "--", "echo lr={lr} seed={seed} $GANTRY_PARAM_LR"]));
    let listed = ok(g.run(&["jobs", &sweep.to_string()]));
    assert!(listed.starts_with(&format!("array {sweep}: 6 jobs")) && listed.contains("6 held"), "{listed}");
    assert!(listed.contains(&format!("{sweep}.4")) && listed.contains("lr=3e-4 seed=2"), "{listed}");
    let released = ok(g.run(&["release", &sweep.to_string()]));
    assert!(released.starts_with(&format!("array {sweep}: ")) && released.contains("0 held"), "{released}");
    for index in 0..6 {
        d.finished(sweep + index);
    }
    assert_eq!(ok(g.run(&["logs", &format!("{sweep}.4")])), "lr=3e-4 seed=2 3e-4\n");

    // Cancelling an array by its id cancels every element; `ID.0` would be its first alone.
    let long = submitted_array(&g.run(&["submit", "--array", "0..9", "--max-running", "1", "--", "sleep 30"]));
    d.wait_job(long, Duration::from_secs(10), |j| j["state"] == "running");
    let cancelled = ok(g.run(&["cancel", &long.to_string()]));
    assert!(cancelled.contains("0 waiting"), "{cancelled}");
    for index in 0..10 {
        assert_eq!(d.finished(long + index)["state"], "cancelled");
    }

    // One API request; a wrong one names the field.
    let (code, answer) = d.request("POST", "/api/v1/jobs", Some(json!({ "commands": ["echo {}"], "array": { "indices": [3, 7] } })));
    assert_eq!(code, 201, "{answer}");
    assert_eq!((answer["ids"].as_array().map(Vec::len), answer["array"].clone()), (Some(2), answer["ids"][0].clone()), "{answer}");
    for (array, field) in [(json!({ "indices": "3..1" }), "array.indices"), (json!({ "sweep": [{ "name": "a b", "values": ["1"] }] }), "array.sweep[0].name"), (json!({ "indices": "0..3", "colour": 1 }), "array")] {
        let (code, refused) = d.request("POST", "/api/v1/jobs", Some(json!({ "commands": ["true"], "array": array })));
        assert_eq!(code, 422, "{refused}");
        assert!(refused["detail"].as_str().is_some_and(|d| d.contains(field)), "{field}: {refused}");
    }
}

#[test]
fn a_command_files_gantry_sweep_block_runs_one_job_per_combination_one_after_another_in_its_queue() {
    let g = Gantry::new();
    let d = g.serve(FAST, &["--simulate", "2"]);
    let file = g.state.path().join("command_gpu_sweep.txt");
    std::fs::write(&file, "# seed 004 reads the #gantry lines as comments\n#gantry sweep lr=1e-3,3e-4\n#gantry sweep seed=1..2\n1\necho lr={lr} seed={seed}\n1\n").expect("write");
    let said = ok(g.run(&["run", file.to_str().expect("utf-8")]));
    let run: u64 = said.strip_prefix("run ").and_then(|r| r.split(' ').next()).and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{said}"));
    assert!(said.contains("4 job(s)"), "{said}");
    let jobs = d.get(&format!("/api/v1/jobs?run={run}"))["jobs"].as_array().cloned().expect("jobs");
    let mut ids: Vec<u64> = jobs.iter().filter_map(|j| j["id"].as_u64()).collect();
    ids.sort_unstable();
    let logs: Vec<String> = ids.iter().map(|&id| {
        d.finished(id);
        d.log(id)
    }).collect();
    assert_eq!(logs, ["lr=1e-3 seed=1\n", "lr=1e-3 seed=2\n", "lr=3e-4 seed=1\n", "lr=3e-4 seed=2\n"]);
    // One queue: each started after the one before it ended.
    let times: Vec<(u64, u64)> = ids.iter().map(|&id| {
        let job = d.job(id);
        (job["attempts"][0]["started_ms"].as_u64().expect("started"), job["attempts"][0]["ended_ms"].as_u64().expect("ended"))
    }).collect();
    assert!(times.windows(2).all(|w| w[1].0 >= w[0].1), "{times:?}");
}

#[test]
fn a_job_past_its_time_limit_is_stopped_and_fails_saying_so() {
    let g = Gantry::new();
    let d = g.serve(FAST, &["--simulate", "1"]);
    let submitted = ok(g.run(&["submit", "--time", "2s", "--retries", "1", "--", "echo started $GANTRY_ATTEMPT; sleep 60; echo never"]));
    let id: u64 = submitted.trim().strip_prefix("submitted job ").and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{submitted}"));
    let job = d.finished(id);
    assert_eq!(job["state"], "failed", "{job:#}");
    assert!(job["reason"].as_str().is_some_and(|r| r.contains("ran past its time limit of 2 s")), "{job:#}");
    let attempts = job["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 2, "a time-out is a failure, retried as one: {job:#}");
    for a in attempts {
        let ran = a["ended_ms"].as_u64().unwrap_or(0).saturating_sub(a["started_ms"].as_u64().unwrap_or(0));
        // The limit counts from placement; the shim starts the command a few ms later.
        assert!(ran >= 1900, "not stopped before its limit: {a:#}");
    }
    assert_eq!(d.log(id), "started 2\n", "stopped, not run to its end");

    let quick = d.submit(json!({ "commands": ["true"], "time_limit_s": 60 }))[0];
    assert_eq!(d.finished(quick)["state"], "succeeded", "a job within its limit is left alone");
    let (code, body) = d.request("POST", "/api/v1/jobs", Some(json!({ "commands": ["true"], "time_limit_s": 0 })));
    assert_eq!(code, 422, "{body}");
    assert!(body.to_string().contains("time_limit_s"), "{body}");
}
