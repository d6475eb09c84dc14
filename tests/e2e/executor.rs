//! Job attempts under the real `gantry-shim`: what runs, what is recorded, cancellation, and
//! finding attempts again after the daemon that started them is gone.

use crate::alive;
use gantry::executor::{adopt, cancel, spawn, wait, Adoption, AttemptSpec, ExitRecord, RunningAttempt, Spawner};
use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::Duration;

const SHIM: &str = env!("CARGO_BIN_EXE_gantry-shim");

fn spec(commands: &[&str], env: &[(&str, &str)]) -> AttemptSpec {
    AttemptSpec {
        job_id: 7,
        attempt: 1,
        commands: commands.iter().map(|c| c.to_string()).collect(),
        cwd: None,
        env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
        log_max_bytes: 1 << 20,
        log_keep: 2,
        user: None,
        umask: 0o022,
    }
}

/// One spawner for the tests of this file, as a daemon has one for all its attempts.
fn spawner() -> &'static Spawner {
    static SPAWNER: std::sync::OnceLock<Spawner> = std::sync::OnceLock::new();
    SPAWNER.get_or_init(|| Spawner::new(Path::new(SHIM)))
}

fn start(dir: &Path, commands: &[&str]) -> RunningAttempt {
    spawn(spawner(), dir, &spec(commands, &[])).expect("shim starts")
}

async fn finished(attempt: RunningAttempt) -> ExitRecord {
    match wait(attempt).await.expect("waits") {
        Adoption::Finished(record) => record,
        other => panic!("expected a recorded exit, got {other:?}"),
    }
}

fn log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("output.log")).expect("log")
}

#[tokio::test]
async fn lines_run_in_sequence_in_one_shell_with_the_given_environment() {
    let dir = tempfile::tempdir().expect("dir");
    let spec = spec(
        &["cd /", "X=5", "echo $X $CUDA_VISIBLE_DEVICES $CUDA_DEVICE_ORDER $GANTRY_JOB_ID", "pwd"],
        &[("CUDA_VISIBLE_DEVICES", "2,3"), ("CUDA_DEVICE_ORDER", "PCI_BUS_ID"), ("GANTRY_JOB_ID", "7")],
    );
    let attempt = spawn(spawner(), dir.path(), &spec).expect("starts");
    let record = finished(attempt).await;
    assert!(record.success(), "{record:?}");
    assert!(record.ended_ms >= record.started_ms);
    assert_eq!(log(dir.path()), "5 2,3 PCI_BUS_ID 7\n/\n");
}

#[tokio::test]
async fn the_first_failing_line_ends_the_attempt_with_its_code() {
    let dir = tempfile::tempdir().expect("dir");
    let record = finished(start(dir.path(), &["echo a", "exit 3", "echo b"])).await;
    assert_eq!((record.exit_code, record.signal), (Some(3), None));
    assert_eq!(log(dir.path()), "a\n");
}

#[tokio::test]
async fn stderr_and_stdout_share_the_log_in_order() {
    let dir = tempfile::tempdir().expect("dir");
    finished(start(dir.path(), &["echo one", "echo two >&2", "echo three"])).await;
    assert_eq!(log(dir.path()), "one\ntwo\nthree\n");
}

/// Output larger than the pipe holds, written in bursts, all reaches the log, in order.
#[tokio::test]
async fn output_of_many_pipefuls_reaches_the_log_whole() {
    let dir = tempfile::tempdir().expect("dir");
    let record = finished(start(dir.path(), &["for i in $(seq 1 20000); do echo line $i; done", "head -c 300000 /dev/zero | tr '\\0' z", "echo", "echo end"])).await;
    assert!(record.success(), "{record:?}");
    let text = log(dir.path());
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 20_002, "{} bytes", text.len());
    assert_eq!((lines[0], lines[19_999]), ("line 1", "line 20000"));
    assert_eq!((lines[20_000].len(), lines[20_001]), (300_000, "end"));
}

/// A process that left the job's session keeps the output pipe open after the job's end: the
/// attempt still ends, with the job's own output and exit, once the drain's bound passes.
#[tokio::test]
async fn a_process_that_escaped_the_job_keeps_the_pipe_but_not_the_attempt() {
    let dir = tempfile::tempdir().expect("dir");
    let pid_file = dir.path().join("escaped.pid");
    // The job waits until its child has left its session: killed before, it escaped nothing.
    let escape = format!("setsid sh -c 'echo $$ > {0}; exec sleep 300' & while [ ! -s {0} ]; do sleep 0.01; done", pid_file.display());
    let began = std::time::Instant::now();
    let record = finished(start(dir.path(), &["echo before", &escape, "echo after", "exit 4"])).await;
    assert_eq!(record.exit_code, Some(4), "{record:?}");
    assert!(began.elapsed() < Duration::from_secs(60), "the attempt waited for the escaped process's pipe");
    assert_eq!(log(dir.path()), "before\nafter\n");
    let pid: i32 = std::fs::read_to_string(&pid_file).expect("pid").trim().parse().expect("a pid");
    assert!(alive(pid), "the escaped process outlived the job, as it should have");
    // SAFETY: signalling the test's own escaped sleep.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

#[tokio::test]
async fn peak_memory_is_recorded() {
    let dir = tempfile::tempdir().expect("dir");
    let record = finished(start(dir.path(), &["python3 -c 'x = bytearray(60_000_000); print(len(x))'"])).await;
    assert!(record.success(), "{}", log(dir.path()));
    assert!(record.peak_rss_kib >= 58_000, "{record:?}");
}

#[tokio::test]
async fn cancel_stops_the_whole_process_group_grandchildren_included() {
    let dir = tempfile::tempdir().expect("dir");
    let pidfile = dir.path().join("grandchild.pid");
    let nested = format!("(sleep 300 & echo $! > {}; wait) &", pidfile.display());
    let attempt = start(dir.path(), &[&nested, "wait"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !pidfile.exists() || std::fs::read_to_string(&pidfile).expect("pid").trim().is_empty() {
        assert!(std::time::Instant::now() < deadline, "grandchild never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let grandchild: i32 = std::fs::read_to_string(&pidfile).expect("pid").trim().parse().expect("a pid");
    assert!(alive(grandchild));

    cancel(&attempt.shim, Duration::from_secs(5)).await;
    let record = finished(attempt).await;
    assert_eq!(record.signal, Some(libc::SIGTERM), "{record:?}");
    assert!(!alive(grandchild), "grandchild {grandchild} survived");
}

#[tokio::test]
async fn a_job_that_ignores_sigterm_is_killed_after_the_grace_period() {
    let dir = tempfile::tempdir().expect("dir");
    let attempt = start(dir.path(), &["trap '' TERM", "echo trapped", "sleep 300"]);
    // Cancel once the trap is set, not while the shell is still starting.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(dir.path().join("output.log")).unwrap_or_default().contains("trapped") {
        assert!(std::time::Instant::now() < deadline, "the job never set its trap");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cancel(&attempt.shim, Duration::from_millis(200)).await;
    assert_eq!(finished(attempt).await.signal, Some(libc::SIGKILL));
}

#[tokio::test]
async fn an_attempt_outlives_the_handle_that_started_it_and_is_adopted() {
    let dir = tempfile::tempdir().expect("dir");
    // The daemon "dies": its handle is dropped, nothing is waited for. The job can't end before
    // the test lets it, however slow the machine.
    let go = dir.path().join("go");
    drop(start(dir.path(), &[&format!("while [ ! -e {} ]; do sleep 0.01; done", go.display()), "echo done"]));
    let again = match adopt(dir.path()).expect("adopts") {
        Adoption::Running(attempt) => attempt,
        other => panic!("expected it still running, got {other:?}"),
    };
    std::fs::write(&go, "").expect("let it end");
    assert!(finished(again).await.success());
    assert_eq!(log(dir.path()), "done\n");
    // Looking again later gives the same record.
    assert!(matches!(adopt(dir.path()).expect("adopts"), Adoption::Finished(r) if r.success()));
}

#[tokio::test]
async fn an_attempt_that_ended_while_nobody_watched_has_its_exit_recorded() {
    let dir = tempfile::tempdir().expect("dir");
    drop(start(dir.path(), &["exit 4"]));
    // The shim writes its record just before it exits: until then it is still running.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match adopt(dir.path()).expect("adopts") {
            Adoption::Finished(record) => break assert_eq!(record.exit_code, Some(4)),
            Adoption::Running(_) => assert!(std::time::Instant::now() < deadline, "never finished"),
            other => panic!("{other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_killed_shim_makes_its_job_lost_and_the_job_is_stopped() {
    let dir = tempfile::tempdir().expect("dir");
    let attempt = start(dir.path(), &["sleep 300"]);
    let (shim, job) = (attempt.shim.pid as i32, attempt.shim.job_pgid);
    // SAFETY: signalling a process this test started.
    unsafe { libc::kill(shim, libc::SIGKILL) };
    match wait(attempt).await.expect("waits") {
        Adoption::Lost { ran, .. } => assert!(ran),
        other => panic!("{other:?}"),
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while alive(job) {
        assert!(std::time::Instant::now() < deadline, "the job outlived its shim");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[test]
fn an_attempt_whose_shim_never_started_may_be_started_again() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("spec.json"), serde_json::to_vec(&spec(&["true"], &[])).expect("json")).expect("spec");
    match adopt(dir.path()).expect("adopts") {
        Adoption::Lost { ran, .. } => assert!(!ran),
        other => panic!("{other:?}"),
    }
}

/// A job's group number is a pid, given again once the job is over. A dead shim's leftover is
/// killed only while the group is still the job's: here the number is another process's group
/// (as a browser's or another daemon's job would be, pids wrapping at 32,768), which lives on.
#[test]
fn a_dead_shims_job_group_is_killed_only_while_it_is_still_the_jobs() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("spec.json"), serde_json::to_vec(&spec(&["true"], &[])).expect("json")).expect("spec");
    let mut stranger = std::process::Command::new("sleep").arg("60").process_group(0).spawn().expect("sleep");
    let pgid = i32::try_from(stranger.id()).expect("pid");
    let ticks = gantry::procfs::start_ticks(stranger.id()).expect("its start time");
    // A shim that is gone (no such pid) recorded a job whose group number is now the stranger's.
    let record = |job_start_ticks: u64| serde_json::json!({ "pid": 4_194_999, "start_ticks": 1, "job_pgid": pgid, "job_start_ticks": job_start_ticks });
    std::fs::write(dir.path().join("shim.json"), record(ticks + 1).to_string()).expect("shim record");
    match adopt(dir.path()).expect("adopts") {
        Adoption::Lost { ran, .. } => assert!(ran),
        other => panic!("{other:?}"),
    }
    // A SIGKILL sent would have landed well within this.
    std::thread::sleep(Duration::from_millis(300));
    assert!(stranger.try_wait().expect("try_wait").is_none() && alive(pgid), "another process's group was killed for a job that was over");
    // The same record naming the stranger's own start: it is the job's leftover, and goes.
    std::fs::write(dir.path().join("shim.json"), record(ticks).to_string()).expect("shim record");
    assert!(matches!(adopt(dir.path()).expect("adopts"), Adoption::Lost { ran: true, .. }));
    let status = stranger.wait().expect("waits");
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(libc::SIGKILL), "{status:?}");
}

#[test]
fn an_attempt_recorded_but_never_created_may_be_started() {
    let dir = tempfile::tempdir().expect("dir");
    match adopt(&dir.path().join("jobs/3/1")).expect("adopts") {
        Adoption::Lost { ran, .. } => assert!(!ran),
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_attempt_directory_is_never_started_twice() {
    let dir = tempfile::tempdir().expect("dir");
    let first = start(dir.path(), &["sleep 1"]);
    assert!(spawn(spawner(), dir.path(), &spec(&["true"], &[])).is_err());
    drop(first);
}

/// Runs an attempt with a spawner whose first start is `dies` (shell, with `$FIRST` the file it
/// leaves) and whose later ones are the real spawner: the attempt runs once, on the second.
async fn runs_once_after_the_first_spawner_died(dir: &std::path::Path, dies: &str) {
    let first = dir.join("first-start");
    let program = dir.join("spawner");
    std::fs::write(&program, format!("#!/bin/sh\nFIRST={first}\nif [ ! -e $FIRST ]; then {dies}; fi\nexec {SHIM}\n", first = first.display())).expect("write");
    std::fs::set_permissions(&program, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let spawner = Spawner::new(&program);
    let attempt_dir = dir.join("attempt");
    let attempt = spawn(&spawner, &attempt_dir, &spec(&["echo ran"], &[])).expect("started by the second spawner");
    assert!(first.exists(), "the first spawner was started and died");
    let record = finished(attempt).await;
    assert!(record.success(), "{record:?}");
    assert_eq!(log(&attempt_dir), "ran\n", "ran once, and no shim complained");
}

/// A spawner that dies with an attempt's message unread (killed, out of memory) forked no shim
/// for it: the attempt is asked of a new spawner, and the job runs once.
#[tokio::test]
async fn an_attempt_whose_spawner_died_before_forking_it_goes_to_a_new_spawner_and_runs_once() {
    let dir = tempfile::tempdir().expect("dir");
    runs_once_after_the_first_spawner_died(dir.path(), ": > $FIRST; sleep 0.3; exit 0").await;
}

/// A spawner that dies having read an attempt's message, before it forked a shim, may give back
/// the descriptors it received before its end of the socket: the kernel promises no order. The
/// attempt still goes to a new spawner, once. The stand-in reads the message, closes what came
/// with it, and only dies a moment later.
#[tokio::test]
async fn an_attempt_whose_spawner_read_it_and_died_goes_to_a_new_spawner_and_runs_once() {
    let dir = tempfile::tempdir().expect("dir");
    let reader = "import os, socket, time\nspawner = socket.socket(fileno=0)\nmessage, fds, _, _ = socket.recv_fds(spawner, 8192, 8)\nassert message and len(fds) == 3\nfor fd in fds:\n    os.close(fd)\ntime.sleep(0.3)\n";
    std::fs::write(dir.path().join("reader.py"), reader).expect("write");
    runs_once_after_the_first_spawner_died(dir.path(), &format!(": > $FIRST; exec python3 {}", dir.path().join("reader.py").display())).await;
}
