//! Jobs handed to a real Slurm: each test starts a single-node cluster of its own on 127.0.0.1
//! (`tests/slurm/start.sh`: munged, slurmctld, slurmd with four GPUs, slurmrestd as nobody with
//! JWT) and a daemon whose `[providers.slurm]` is the bundled `provider-slurm` pointed at it.
//! What is checked is what Slurm itself says of the jobs (`scontrol show job`), not only what
//! gantry says of them.

use super::{ok, stderr, stdout, Daemon, Gantry};
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// A cluster started for one test; dropping it cancels its jobs (slurmd orphans the processes
/// of jobs still running when it stops) and stops its daemons.
struct Slurm {
    dir: tempfile::TempDir,
    url: String,
    token: String,
    conf: PathBuf,
}

impl Slurm {
    fn start() -> Slurm {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(unsafe { libc::geteuid() }, 0, "the Slurm tests need root: they make GPU device files and run slurmd (CI runs as root)");
        let dir = tempfile::Builder::new().prefix("gantry-slurm").tempdir().expect("slurm dir");
        // slurmrestd runs as nobody and reads slurm.conf from here.
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
        let port = free_ports();
        let out = Command::new("bash").arg(super::repo("tests/slurm/start.sh")).arg(dir.path()).arg(port.to_string()).output().expect("bash runs");
        let said: BTreeMap<String, String> = stdout(&out).lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let slurm = Slurm {
            url: said.get("SLURMRESTD_URL").cloned().unwrap_or_default(),
            token: said.get("SLURM_JWT_ROOT").cloned().unwrap_or_default(),
            conf: dir.path().join("slurm.conf"),
            dir,
        };
        assert!(out.status.success() && !slurm.token.is_empty(), "tests/slurm/start.sh failed (install what it names with `bash tests/deps.sh`): {}{}", stdout(&out), stderr(&out));
        slurm
    }

    fn scontrol(&self, args: &[&str]) -> String {
        let out = Command::new("scontrol").args(args).env("SLURM_CONF", &self.conf).output().expect("scontrol runs");
        assert!(out.status.success(), "scontrol {args:?}: {}", stderr(&out));
        stdout(&out)
    }

    /// `scontrol show job ID` as fields.
    fn job(&self, id: &str) -> BTreeMap<String, String> {
        let text = self.scontrol(&["show", "job", "-o", id]);
        text.split_whitespace().filter_map(|f| f.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// Every job the controller remembers (`MinJobAge=600` keeps finished ones), as fields.
    fn jobs(&self) -> Vec<BTreeMap<String, String>> {
        let text = self.scontrol(&["show", "job", "-o"]);
        text.lines().map(|l| l.split_whitespace().filter_map(|f| f.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()).collect()
    }

    /// Every job the controller remembers, by name.
    fn names(&self) -> Vec<String> {
        self.jobs().iter().filter_map(|j| j.get("JobName").cloned()).collect()
    }

    /// A daemon whose provider `slurm` is this cluster.
    fn daemon(&self, g: &Gantry) -> Daemon {
        g.serve(&self.config(g), &[])
    }

    /// A working directory on the cluster's "shared filesystem" (this machine's), where the
    /// jobs' output files go.
    fn work(&self) -> String {
        let work = self.dir.path().join("work");
        std::fs::create_dir_all(&work).expect("work dir");
        work.display().to_string()
    }

    fn config(&self, g: &Gantry) -> String {
        let token = g.token_file("slurm.jwt", &self.token);
        format!(
            "[providers.slurm]\nplugin = \"provider-slurm\"\nbase_url = \"{}\"\ntoken_file = \"{}\"\npoll_ms = 200\npoll_max_ms = 1000\n[providers.slurm.options]\npartition = \"debug\"\n",
            self.url,
            token.display()
        )
    }
}

impl Drop for Slurm {
    fn drop(&mut self) {
        let dir = self.dir.path();
        let _ = Command::new("scancel").args(["--full", "--user", "root"]).env("SLURM_CONF", &self.conf).status();
        let _ = Command::new("scancel").args(["--user", "nobody"]).env("SLURM_CONF", &self.conf).status();
        std::thread::sleep(Duration::from_millis(300));
        for pid_file in ["run/slurmrestd.pid", "run/slurmd.pid", "run/slurmctld.pid", "munge/munged.pid"] {
            let pid = std::fs::read_to_string(dir.join(pid_file)).ok().and_then(|p| p.trim().parse::<i32>().ok());
            if let Some(pid) = pid {
                // SAFETY: signalling a daemon this test started, by its pid file.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
        }
    }
}

/// A port whose next two are free as well (slurmctld and slurmd take them).
fn free_ports() -> u16 {
    for _ in 0..200 {
        let Ok(listener) = TcpListener::bind("127.0.0.1:0") else { continue };
        let Ok(port) = listener.local_addr().map(|a| a.port()) else { continue };
        if port < 60000 && (1..=2).all(|n| TcpListener::bind(("127.0.0.1", port + n)).is_ok()) {
            return port;
        }
    }
    panic!("no three free ports in a row on 127.0.0.1")
}

fn remote(job: &serde_json::Value, attempt: usize) -> serde_json::Value {
    job["attempts"][attempt]["remote"].clone()
}

/// The Slurm id of the job's latest attempt, once Slurm took it.
fn slurm_id(d: &Daemon, id: u64) -> String {
    let job = d.wait_job(id, Duration::from_secs(60), |j| j["attempts"].as_array().and_then(|a| a.last()).is_some_and(|a| a["remote"]["id"].is_string()));
    let last = job["attempts"].as_array().map_or(0, Vec::len) - 1;
    remote(&job, last)["id"].as_str().unwrap_or_default().to_string()
}

#[test]
fn a_job_runs_on_slurm_with_the_gpus_slurm_gave_it_and_its_log_streams() {
    let slurm = Slurm::start();
    let g = Gantry::new();
    let work = tempfile::tempdir().expect("work dir");
    let d = slurm.daemon(&g);
    let submitted = ok(g.command().current_dir(work.path()).args(["submit", "--provider", "slurm", "--gpus", "2", "--", "echo CVD=$CUDA_VISIBLE_DEVICES; sleep 2; echo after"]).output().expect("submit"));
    assert_eq!(submitted.trim(), "submitted job 1");
    let followed = ok(g.run(&["logs", "1", "-f"]));
    assert!(followed.contains("CVD=0,1") && followed.contains("after"), "the log as followed: {followed:?}");
    let job = d.finished(1);
    assert_eq!(job["state"], "succeeded", "{job:#}");
    let there = remote(&job, 0);
    let id = there["id"].as_str().expect("a Slurm id");
    let seen = slurm.job(id);
    assert_eq!(seen["JobState"], "COMPLETED");
    assert_eq!(seen["JobName"], there["key"].as_str().expect("key"), "Slurm knows the attempt by its key");
    assert_eq!(seen["WorkDir"], work.path().display().to_string());
    assert!(seen.get("TresPerNode").is_some_and(|t| t.contains("gpu:2")), "{seen:?}");
    assert_eq!(job["attempts"][0]["exit_code"], 0);
    let listed = ok(g.run(&["jobs"]));
    assert!(listed.contains(&format!("slurm#{id}")), "gantry jobs says where it ran: {listed}");
    let providers = ok(g.run(&["providers"]));
    assert!(providers.contains("slurm") && providers.contains(" ok "), "{providers}");
}

#[test]
fn an_exit_code_3_is_a_failure_retried_as_a_new_slurm_job() {
    let slurm = Slurm::start();
    let g = Gantry::new();
    let d = slurm.daemon(&g);
    let id = d.submit(serde_json::json!({"commands": ["echo try $GANTRY_ATTEMPT; exit 3"], "provider": "slurm", "retries": 1, "cwd": slurm.work()}))[0];
    let job = d.finished(id);
    assert_eq!(job["state"], "failed", "{job:#}");
    let attempts = job["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 2, "{job:#}");
    let ids: Vec<&str> = attempts.iter().map(|a| a["remote"]["id"].as_str().expect("a Slurm id")).collect();
    assert_ne!(ids[0], ids[1], "the retry is a new Slurm job");
    for (attempt, slurm_id) in attempts.iter().zip(&ids) {
        assert_eq!(attempt["exit_code"], 3, "{attempt:#}");
        let seen = slurm.job(slurm_id);
        assert_eq!(seen["JobState"], "FAILED");
        assert_eq!(seen["ExitCode"], "3:0");
    }
    assert_eq!(d.log(id), "try 2\n");
}

#[test]
fn cancel_reaches_slurm() {
    let slurm = Slurm::start();
    let g = Gantry::new();
    let d = slurm.daemon(&g);
    let id = d.submit(serde_json::json!({"commands": ["sleep 300"], "provider": "slurm", "cwd": slurm.work()}))[0];
    let slurm_id = slurm_id(&d, id);
    d.wait_job(id, Duration::from_secs(30), |j| remote(j, 0)["state"].as_str().is_some_and(|s| s.starts_with("RUNNING")));
    ok(g.run(&["cancel", &id.to_string()]));
    let job = d.finished(id);
    assert_eq!(job["state"], "cancelled", "{job:#}");
    assert_eq!(slurm.job(&slurm_id)["JobState"], "CANCELLED");
}

#[test]
fn a_job_needing_five_gpus_is_refused_with_slurms_reason_and_not_retried() {
    let slurm = Slurm::start();
    let g = Gantry::new();
    let d = slurm.daemon(&g);
    let id = d.submit(serde_json::json!({"commands": ["true"], "provider": "slurm", "gpus": {"min": 5, "max": 5}, "retries": 3, "cwd": slurm.work()}))[0];
    let job = d.finished(id);
    assert_eq!(job["state"], "failed", "{job:#}");
    assert!(job["reason"].as_str().is_some_and(|r| r.contains("Requested node configuration is not available")), "{job:#}");
    assert_eq!(job["attempts"].as_array().map(Vec::len), Some(1), "the same request would be refused again");
    // Slurm 22.05 records a job it refuses as FAILED (BadConstraints); nothing of it runs.
    let refused = slurm.jobs();
    assert_eq!(refused.len(), 1, "one refusal, no retry: {refused:?}");
    assert_eq!(refused[0]["JobState"], "FAILED", "{refused:?}");
    let nowhere = d.submit(serde_json::json!({"commands": ["true"], "provider": "slurm"}))[0];
    let job = d.finished(nowhere);
    assert_eq!(job["state"], "failed", "{job:#}");
    assert!(job["reason"].as_str().is_some_and(|r| r.contains("working-dir")), "a job with no directory for its output is refused naming the field: {job:#}");
    assert_eq!(slurm.jobs().len(), 1, "nothing more reached Slurm: {:?}", slurm.jobs());
}

#[test]
fn a_restarted_daemon_follows_its_slurm_jobs_without_submitting_them_again() {
    let slurm = Slurm::start();
    let g = Gantry::new();
    let mut d = slurm.daemon(&g);
    let job = |word: &str| serde_json::json!({"commands": [format!("echo before {word}; sleep 4; echo after {word}")], "provider": "slurm", "cwd": slurm.work()});
    let ids = d.submit(serde_json::json!({"jobs": [job("one"), job("two")]}));
    let slurm_ids: Vec<String> = ids.iter().map(|&id| slurm_id(&d, id)).collect();
    d.crash();
    drop(d);
    let d = g.serve(&slurm.config(&g), &[]);
    for ((&id, slurm_id), word) in ids.iter().zip(&slurm_ids).zip(["one", "two"]) {
        let job = d.finished(id);
        assert_eq!(job["state"], "succeeded", "{job:#}");
        assert_eq!(job["attempts"].as_array().map(Vec::len), Some(1), "{job:#}");
        assert_eq!(remote(&job, 0)["id"], slurm_id.as_str());
        assert_eq!(d.log(id), format!("before {word}\nafter {word}\n"));
    }
    assert_eq!(slurm.names().len(), 2, "one Slurm job for each attempt: {:?}", slurm.names());
}

#[test]
fn a_burst_job_waits_its_max_wait_for_a_local_gpu_then_goes_to_slurm_and_one_with_room_stays_here() {
    let slurm = Slurm::start();
    let g = Gantry::new();
    let d = g.serve(&slurm.config(&g), &["--simulate", "1"]);
    let work = slurm.work();
    let submit = |args: &[&str]| {
        let out = ok(g.command().current_dir(&work).arg("submit").args(args).output().expect("submit"));
        out.trim().strip_prefix("submitted job ").and_then(|id| id.parse::<u64>().ok()).unwrap_or_else(|| panic!("submit said {out:?}"))
    };
    let blocker = submit(&["--gpus", "1", "--", "sleep 60"]);
    d.wait_job(blocker, Duration::from_secs(30), |j| j["state"] == "running");

    let burst = submit(&["--burst", "--max-wait", "3s", "--gpus", "1", "--", "echo ran with $CUDA_VISIBLE_DEVICES"]);
    let job = d.finished(burst);
    assert_eq!(job["state"], "succeeded", "{job:#}");
    let there = remote(&job, 0);
    assert_eq!(there["provider"], "slurm", "the only local GPU was busy: {job:#}");
    let waited = job["attempts"][0]["started_ms"].as_u64().unwrap_or(0).saturating_sub(job["submitted_ms"].as_u64().unwrap_or(u64::MAX));
    // Slurm's start time is in whole seconds.
    assert!(waited >= 2000, "it waited its max wait (3 s) here first, not {waited} ms");
    assert_eq!(slurm.job(there["id"].as_str().expect("a Slurm id"))["JobState"], "COMPLETED");
    assert_eq!(d.log(burst), "ran with 0\n");
    assert_eq!(d.get(&format!("/api/v1/jobs/{blocker}"))["state"], "running", "the local job was left alone");

    // Two GPUs never fit on this one-GPU node: it is not refused, and does not wait.
    let wide = submit(&["--burst", "--max-wait", "1h", "--gpus", "2", "--", "echo wide $CUDA_VISIBLE_DEVICES"]);
    let job = d.finished(wide);
    assert_eq!((job["state"].as_str(), remote(&job, 0)["provider"].as_str()), (Some("succeeded"), Some("slurm")), "{job:#}");
    assert_eq!(d.log(wide), "wide 0,1\n");

    ok(g.run(&["cancel", &blocker.to_string()]));
    d.finished(blocker);
    let here = submit(&["--burst", "--max-wait", "2s", "--gpus", "1", "--", "echo here"]);
    let job = d.finished(here);
    assert_eq!(job["state"], "succeeded", "{job:#}");
    assert!(remote(&job, 0).is_null(), "a GPU was free here: {job:#}");
    assert_eq!(job["attempts"][0]["gpus"], serde_json::json!([0]));
    assert_eq!(slurm.jobs().len(), 2, "only the two bursts reached Slurm: {:?}", slurm.jobs());

    let nowhere = g.command().current_dir(&work).args(["submit", "--burst", "--burst-to", "k8s", "--", "true"]).output().expect("submit");
    assert!(!nowhere.status.success() && stderr(&nowhere).contains("burst.providers") && stderr(&nowhere).contains("configured: slurm"), "{}", stderr(&nowhere));
}
