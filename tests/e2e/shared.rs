//! A GPU server shared by a research group's Unix users: a system daemon (root, `serve
//! --system`) used by throwaway users made for each test (`useradd`), each running the CLI as
//! themselves (`setpriv`), and a user daemon that other users may not use.
//!
//! These need root, as a system daemon does: CI runs as root. Without it they fail, saying so.

use crate::{stderr, stdout, Daemon, Gantry, FAST};
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn require_root() {
    // SAFETY: geteuid has no failure and touches no memory.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(euid, 0, "these tests make Unix users (useradd) and run a system daemon, which needs root: run them as root, as CI does (`sudo -E cargo test --test e2e shared`)");
    for tool in ["useradd", "userdel", "groupadd", "groupdel", "setpriv", "getent"] {
        let found = Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().is_ok_and(|o| o.status.success());
        assert!(found, "{tool} is missing: install it with `apt-get install -y passwd util-linux libc-bin` (the README's test command, through tests/deps.sh, does)");
    }
}

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(out.status.success(), "{program} {args:?}: {}", stderr(&out));
}

/// A name no other test (or earlier run) uses.
fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}{}x{}", std::process::id() % 100_000, NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A Unix group made for a test, removed after it.
struct Group {
    name: String,
    gid: u32,
}

impl Group {
    fn create() -> Group {
        let name = unique("gtyg");
        run("groupadd", &[&name]);
        let line = Command::new("getent").args(["group", &name]).output().expect("getent");
        let gid = stdout(&line).split(':').nth(2).and_then(|g| g.trim().parse().ok()).expect("gid");
        Group { name, gid }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let _ = Command::new("groupdel").arg(&self.name).output();
    }
}

/// A Unix user made for a test, with a home of its own (0700), removed after it.
struct User {
    name: String,
    uid: u32,
    gid: u32,
    home: PathBuf,
}

impl User {
    fn create(groups: &[&Group]) -> User {
        let name = unique("gty");
        // A slim container may have no /home yet.
        std::fs::create_dir_all("/home").expect("/home");
        let home = PathBuf::from("/home").join(&name);
        let extra: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
        let mut args = vec!["-m", "-d", home.to_str().expect("utf-8"), "-s", "/bin/sh", "-U"];
        let joined = extra.join(",");
        if !extra.is_empty() {
            args.extend(["-G", joined.as_str()]);
        }
        args.push(&name);
        run("useradd", &args);
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).expect("home 0700");
        let id = |flag: &str| stdout(&Command::new("id").args([flag, &name]).output().expect("id")).trim().parse::<u32>().expect("number");
        User { uid: id("-u"), gid: id("-g"), name, home }
    }

    /// `program args` as this user, in their home, with a login's environment.
    fn command(&self, program: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid", &self.uid.to_string(), "--regid", &self.gid.to_string(), "--init-groups", "--"])
            .arg(program)
            .args(args)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", &self.home)
            .env("USER", &self.name)
            .env("GANTRY_NVML_LIBRARY", crate::NO_DRIVER)
            .current_dir(&self.home);
        cmd
    }

    /// The CLI as this user, against the daemon on `socket`.
    fn gantry(&self, socket: &Path, args: &[&str]) -> Output {
        let mut all = vec!["--socket", socket.to_str().expect("utf-8")];
        all.extend_from_slice(args);
        self.command(&cli(), &all).output().expect("gantry runs")
    }

    /// A file of theirs, only theirs to read.
    fn private_file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.home.join(name);
        std::fs::write(&path, text).expect("write");
        std::os::unix::fs::chown(&path, Some(self.uid), Some(self.gid)).expect("chown");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        path
    }
}

impl Drop for User {
    fn drop(&mut self) {
        // Forced: a job of theirs may still be ending.
        let _ = Command::new("userdel").args(["-f", "-r", &self.name]).output();
    }
}

/// A directory every user may enter (the tests' temporary directories are 0700).
fn open_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

/// The `gantry` binary where every user may run it: in place if every directory above it may be
/// entered by others, else a copy.
fn cli() -> PathBuf {
    static CLI: OnceLock<PathBuf> = OnceLock::new();
    CLI.get_or_init(|| {
        let built = PathBuf::from(env!("CARGO_BIN_EXE_gantry"));
        let open = built.ancestors().skip(1).all(|dir| std::fs::metadata(dir).is_ok_and(|m| m.permissions().mode() & 0o001 != 0));
        if open {
            return built;
        }
        // Copies left by earlier runs whose process is gone are removed first.
        let prefix = "gantry-e2e-cli-";
        for entry in std::fs::read_dir(std::env::temp_dir()).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.strip_prefix(prefix).and_then(|pid| pid.parse::<i32>().ok()).is_some_and(|pid| !crate::alive(pid)) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        let dir = std::env::temp_dir().join(format!("{prefix}{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        // The daemon's binary and its shim go with it: `gantry serve` runs the `gantryd` beside
        // it, and that daemon runs its jobs under the `gantry-shim` beside it.
        for companion in ["gantryd", "gantry-shim"] {
            std::fs::copy(built.with_file_name(companion), dir.join(companion)).expect("copy the daemon's binaries");
        }
        let copy = dir.join("gantry");
        std::fs::copy(&built, &copy).expect("copy the CLI");
        copy
    })
    .clone()
}

/// A system daemon on `socket`, on simulated GPUs, with `config` added.
fn system_daemon(g: &Gantry, socket: &Path, gpus: &str, config: &str) -> Daemon {
    g.serve(&format!("{FAST}{config}"), &["--system", "--socket", socket.to_str().expect("utf-8"), "--simulate", gpus])
}

fn submitted(out: &Output) -> u64 {
    assert!(out.status.success(), "submit: {}", stderr(out));
    stdout(out).trim().strip_prefix("submitted job ").and_then(|id| id.parse().ok()).unwrap_or_else(|| panic!("not a submission: {}", stdout(out)))
}

fn log_of(user: &User, socket: &Path, id: u64) -> String {
    let out = user.gantry(socket, &["logs", &id.to_string()]);
    assert!(out.status.success(), "logs {id}: {}", stderr(&out));
    stdout(&out)
}

#[test]
fn jobs_run_as_their_submitter_and_users_reach_only_what_is_theirs() {
    require_root();
    let group = Group::create();
    let (ada, bob) = (User::create(&[&group]), User::create(&[]));
    let (g, shared) = (Gantry::new(), open_dir());
    // A directory the daemon makes, as it makes /run/gantry without systemd.
    let socket = shared.path().join("run").join("gantry.sock");
    // Ada is an admin through her group (log bindings are admins' work): gantry still reads
    // nothing for her beyond her own rights.
    let d = system_daemon(&g, &socket, "2", &format!("\n[auth]\nadmin_group = \"{}\"\n", group.name));
    let state = g.state.path().display().to_string();

    // Ada's job runs as Ada, with her groups, her home, her login variables and nothing of the
    // daemon's: not its environment, not its state directory.
    let probe = format!("id -u; id -G; echo HOME=$HOME USER=$USER LOGNAME=$LOGNAME; pwd; ls {state} >/dev/null 2>&1 && echo STATE-READABLE || echo state-closed; env | grep -c '^GANTRY_STATE_DIR=' || true; umask");
    let id = submitted(&ada.gantry(&socket, &["submit", "--", &probe]));
    let job = d.finished(id);
    assert_eq!(job["state"], "succeeded", "{job:#}");
    assert_eq!(job["spec"]["owner"], ada.name.as_str());
    let log = log_of(&ada, &socket, id);
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.first().copied(), Some(ada.uid.to_string().as_str()), "{log}");
    let groups: Vec<u32> = lines[1].split_whitespace().filter_map(|g| g.parse().ok()).collect();
    assert!(groups.contains(&ada.gid) && groups.contains(&group.gid) && !groups.contains(&0), "{log}");
    assert_eq!(lines[2], format!("HOME={} USER={} LOGNAME={}", ada.home.display(), ada.name, ada.name), "{log}");
    assert_eq!(lines[3], ada.home.display().to_string(), "it starts where it was submitted: {log}");
    assert_eq!(lines[4], "state-closed", "{log}");
    assert_eq!(lines[5], "0", "the daemon's environment is not the job's: {log}");
    assert_eq!(lines[6], "0022", "{log}");
    // The state directory and what is in it are the daemon's alone.
    for path in [g.state.path().to_path_buf(), g.state.path().join("gantry.db"), g.state.path().join("local.token")] {
        let mode = std::fs::metadata(&path).expect("exists").permissions().mode() & 0o077;
        assert_eq!(mode, 0, "{} is open to others", path.display());
    }

    // Bob sees that Ada's job exists, not what it runs, and can neither read nor change it.
    let held = submitted(&ada.gantry(&socket, &["submit", "--hold", "--env", "TOKEN=s3cret", "--", "echo secret-work"]));
    let listed = bob.gantry(&socket, &["jobs", "--json"]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    let text = stdout(&listed);
    assert!(text.contains(&format!("\"id\": {held}")) || text.contains(&format!("\"id\":{held}")), "{text}");
    assert!(!text.contains("secret-work") && !text.contains("s3cret"), "{text}");
    let (id_text, held_text) = (id.to_string(), held.to_string());
    for args in [["logs", id_text.as_str()], ["cancel", held_text.as_str()], ["hold", held_text.as_str()], ["release", held_text.as_str()]] {
        let out = bob.gantry(&socket, &args);
        assert!(!out.status.success(), "bob {args:?}: {}", stdout(&out));
        assert!(stderr(&out).contains(&format!("belongs to {}", ada.name)), "bob {args:?}: {}", stderr(&out));
    }
    assert_eq!(d.job(held)["state"], "held");
    let theirs = bob.gantry(&socket, &["api", "GET", &format!("/api/log/read?path={state}/jobs/{id}/1/output.log")]);
    assert!(stderr(&theirs).contains("HTTP 403") && stdout(&theirs).is_empty(), "{} {}", stdout(&theirs), stderr(&theirs));

    // Gantry reads for a user only what they could read: Bob not Ada's 0600 command file nor
    // /etc/shadow; Ada, an admin, binds neither /etc/shadow nor a root-only file through a hard
    // link in her own home; Bob does not read the log Ada bound.
    let commands = ada.private_file("command_gpu_ada.txt", "1\necho from-ada\n1\n");
    let shadow = std::fs::read_to_string("/etc/shadow").unwrap_or_default();
    for file in [commands.to_str().expect("utf-8"), "/etc/shadow"] {
        let out = bob.gantry(&socket, &["run", file]);
        assert!(!out.status.success(), "bob ran {file}");
        assert!(stderr(&out).contains("ermission denied"), "{file}: {}", stderr(&out));
        assert!(!stderr(&out).contains("echo from-ada") && !shadow.lines().next().is_some_and(|l| stderr(&out).contains(l)), "{}", stderr(&out));
    }
    let secret = ada.home.join("root-only.log");
    std::fs::write(&secret, "root's secret\n").expect("write");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let link = ada.home.join("link.log");
    std::fs::hard_link(&secret, &link).expect("a hard link, made as root");
    let bind = |who: &User, target: &str| {
        let body = json!({ "mode": "single", "config_index": 0, "queue_id": 1, "process_index": 0, "log_path": target }).to_string();
        who.gantry(&socket, &["api", "POST", "/api/log/bind", "--data", &body])
    };
    for target in [link.display().to_string(), "/etc/shadow".to_string()] {
        let out = bind(&ada, &target);
        assert!(!out.status.success() && stderr(&out).contains("HTTP 403"), "bind {target}: {} {}", stdout(&out), stderr(&out));
        assert!(!stderr(&out).contains("root's secret"), "{}", stderr(&out));
    }
    let ada_log = ada.private_file("train.log", "epoch 1\n");
    let refused = bind(&bob, ada_log.to_str().expect("utf-8"));
    assert!(stderr(&refused).contains("HTTP 403") && stderr(&refused).contains("needs admin"), "{}", stderr(&refused));
    let bound = bind(&ada, ada_log.to_str().expect("utf-8"));
    assert!(bound.status.success(), "{}", stderr(&bound));
    let content = "/api/log/content?mode=single&config_index=0&queue_id=1&process_index=0";
    let read = ada.gantry(&socket, &["api", "GET", content]);
    assert!(stdout(&read).contains("epoch 1"), "{} {}", stdout(&read), stderr(&read));
    let peek = bob.gantry(&socket, &["api", "GET", content]);
    assert!(stderr(&peek).contains("HTTP 403") && !stdout(&peek).contains("epoch 1"), "{} {}", stdout(&peek), stderr(&peek));

    // Training tasks are their owner's: Bob reports on none of Ada's.
    let task = ada.gantry(&socket, &["api", "POST", "/api/v1/tasks", "--data", &json!({ "job_id": id }).to_string()]);
    assert!(task.status.success(), "{}", stderr(&task));
    let report = bob.gantry(&socket, &["api", "POST", &format!("/api/v1/tasks/{id}/progress"), "--data", r#"{"step": 1}"#]);
    assert!(stderr(&report).contains("HTTP 403") && stderr(&report).contains(&format!("belongs to {}", ada.name)), "{} {}", stdout(&report), stderr(&report));

    // Ada may run her own file: it is read as her.
    let out = ada.gantry(&socket, &["run", commands.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", stderr(&out));

    // A working directory the user may not enter fails the job, saying why.
    let closed = submitted(&bob.gantry(&socket, &["submit", "--cwd", &ada.home.display().to_string(), "--", "true"]));
    let job = d.finished(closed);
    assert_eq!(job["state"], "failed", "{job:#}");
    let told = format!("{} {}", job["reason"], log_of(&bob, &socket, closed));
    assert!(told.contains("ermission denied") && told.contains(&bob.name), "{told}");
}

#[test]
fn a_killed_system_daemon_adopts_every_users_jobs_and_they_keep_their_user() {
    require_root();
    let (ada, bob) = (User::create(&[]), User::create(&[]));
    let (g, shared) = (Gantry::new(), open_dir());
    let socket = shared.path().join("gantry.sock");
    let mut d = system_daemon(&g, &socket, "2", "");
    let gate = shared.path().join("go");
    let script = format!("while [ ! -e {} ]; do sleep 0.05; done; id -u", gate.display());
    let ids = [submitted(&ada.gantry(&socket, &["submit", "--", &script])), submitted(&bob.gantry(&socket, &["submit", "--", &script]))];
    for id in ids {
        d.wait_job(id, Duration::from_secs(30), |j| j["state"] == "running");
    }
    d.crash();
    let d = system_daemon(&g, &socket, "2", "");
    std::fs::write(&gate, "").expect("open the gate");
    for (id, user) in ids.iter().zip([&ada, &bob]) {
        let job = d.finished(*id);
        assert_eq!(job["state"], "succeeded", "{job:#}");
        assert_eq!(log_of(user, &socket, *id).trim(), user.uid.to_string(), "job {id} kept its user across the restart");
    }
}

/// Running jobs per owner, by the daemon's own account.
fn running_by(d: &Daemon, owner: &str) -> usize {
    let jobs = d.get("/api/v1/jobs?state=running");
    jobs["jobs"].as_array().expect("jobs").iter().filter(|j| j["spec"]["owner"] == owner).count()
}

#[test]
fn a_quota_caps_one_user_while_another_runs_beside_and_the_lighter_user_goes_first() {
    require_root();
    let (ada, bob) = (User::create(&[]), User::create(&[]));
    let (g, shared) = (Gantry::new(), open_dir());
    let socket = shared.path().join("gantry.sock");
    let d = system_daemon(&g, &socket, "4", &format!("\n[quotas.users.{}]\ngpus = 1\n", ada.name));
    let gate = shared.path().join("go");
    let wait = format!("while [ ! -e {} ]; do sleep 0.05; done", gate.display());
    let ada_jobs: Vec<u64> = (0..3).map(|_| submitted(&ada.gantry(&socket, &["submit", "--", &wait]))).collect();
    let bob_jobs: Vec<u64> = (0..2).map(|_| submitted(&bob.gantry(&socket, &["submit", "--", &wait]))).collect();
    for id in &bob_jobs {
        d.wait_job(*id, Duration::from_secs(30), |j| j["state"] == "running");
    }
    assert_eq!(running_by(&d, &ada.name), 1, "one of ada's at a time, with GPUs free");
    let waiting = ada_jobs.iter().map(|id| d.job(*id)).find(|j| j["state"] == "waiting").expect("one of ada's waits");
    assert!(waiting["reason"].as_str().is_some_and(|r| r.contains("quota") && r.contains(&ada.name)), "{waiting:#}");
    let quota = ada.gantry(&socket, &["quota", "--json"]);
    let quota: serde_json::Value = serde_json::from_str(&stdout(&quota)).unwrap_or_else(|_| panic!("{}", stderr(&quota)));
    assert_eq!((quota["cap"]["gpus"].as_u64(), quota["holds"]["gpus"].as_u64()), (Some(1), Some(1)), "{quota:#}");
    std::fs::write(&gate, "").expect("open the gate");
    for id in ada_jobs.iter().chain(&bob_jobs) {
        assert_eq!(d.finished(*id)["state"], "succeeded");
    }

    // One GPU: ada has used it; her queued job is older than bob's, but bob's starts first.
    let (g, shared) = (Gantry::new(), open_dir());
    let socket = shared.path().join("gantry.sock");
    let d = system_daemon(&g, &socket, "1", "");
    let first_gate = shared.path().join("first");
    let first = submitted(&ada.gantry(&socket, &["submit", "--", &format!("sleep 1; while [ ! -e {} ]; do sleep 0.05; done", first_gate.display())]));
    d.wait_job(first, Duration::from_secs(30), |j| j["state"] == "running");
    let ada_later = submitted(&ada.gantry(&socket, &["submit", "--", "sleep 5"]));
    let bob_later = submitted(&bob.gantry(&socket, &["submit", "--", "sleep 5"]));
    std::fs::write(&first_gate, "").expect("open the gate");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (a, b) = (d.job(ada_later), d.job(bob_later));
        if b["state"] == "running" {
            assert_eq!(a["state"], "waiting", "bob, who used less, went first");
            break;
        }
        assert!(a["state"] != "running", "ada's later job started before bob's: {a:#}");
        assert!(Instant::now() < deadline, "neither started");
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[test]
fn a_users_own_daemon_refuses_other_users_on_its_socket_and_on_tcp() {
    require_root();
    let (ada, bob) = (User::create(&[]), User::create(&[]));
    let state = ada.home.join("gantry-state");
    let log = tempfile::NamedTempFile::new().expect("log");
    let mut daemon = ada
        .command(&cli(), &["serve", "--listen", "127.0.0.1:0", "--simulate", "1"])
        .env("GANTRY_STATE_DIR", &state)
        .stdout(Stdio::null())
        .stderr(log.reopen().expect("log"))
        .spawn()
        .expect("ada's daemon starts");
    let url = crate::daemon_url_in(&state, &|| std::fs::read_to_string(log.path()).unwrap_or_default());
    let socket = state.join("gantry.sock");
    let owner = ada.command(&cli(), &["jobs"]).env("GANTRY_STATE_DIR", &state).output().expect("cli");
    assert!(owner.status.success(), "ada uses her own daemon without a token: {}", stderr(&owner));

    let on_socket = bob.gantry(&socket, &["jobs"]);
    assert!(!on_socket.status.success(), "bob reached ada's daemon: {}", stdout(&on_socket));
    let on_tcp = bob.command(&cli(), &["--server", &url, "submit", "--", "id > owned.txt"]).output().expect("cli");
    assert!(!on_tcp.status.success(), "bob submitted to ada's daemon: {}", stdout(&on_tcp));
    assert!(stderr(&on_tcp).contains("local.token"), "{}", stderr(&on_tcp));
    let _ = daemon.kill();
    let _ = daemon.wait();
}

#[test]
fn web_accounts_submit_on_a_system_daemon_only_once_bound_to_a_unix_user() {
    require_root();
    let ada = User::create(&[]);
    let (g, shared) = (Gantry::new(), open_dir());
    let socket = shared.path().join("gantry.sock");
    let d = system_daemon(&g, &socket, "1", "\n[auth]\nmode = \"users\"\n");
    let login = |email: &str| {
        let (code, _, tokens) = d.call("POST", "/auth/jwt/login", &[], None, Some(&[("username", email), ("password", "correct horse")]));
        assert_eq!(code, 200, "{tokens}");
        format!("Bearer {}", tokens["access_token"].as_str().expect("token"))
    };
    // Root makes the accounts over the system socket, as the daemon's owner.
    let _ = g.add_account(Some(&socket), "admin@lab.org", "admin");
    let account = g.add_account(Some(&socket), "ada@lab.org", "user");
    let (admin, user) = (login("admin@lab.org"), login("ada@lab.org"));
    let submit = || d.call("POST", "/api/v1/jobs", &[("Authorization", &user)], Some(json!({ "commands": ["id -u"] })), None);
    let (code, _, refused) = submit();
    assert_eq!(code, 403, "{refused}");
    assert!(refused["detail"].as_str().is_some_and(|t| t.contains("not bound to a Unix user")), "{refused}");

    let path = format!("/api/v1/users/{account}");
    let (code, _, wrong) = d.call("PATCH", &path, &[("Authorization", &admin)], Some(json!({ "unix_user": "no-such-user-gantry" })), None);
    assert_eq!((code, wrong["detail"].as_str().is_some_and(|t| t.contains("unix_user"))), (422, true), "{wrong}");
    assert_eq!(d.call("PATCH", &path, &[("Authorization", &user)], Some(json!({ "unix_user": ada.name })), None).0, 403, "binding is an admin's");
    let (code, _, bound) = d.call("PATCH", &path, &[("Authorization", &admin)], Some(json!({ "unix_user": ada.name })), None);
    assert_eq!((code, bound["unix_user"].as_str()), (200, Some(ada.name.as_str())), "{bound}");

    let (code, _, ids) = submit();
    assert_eq!(code, 201, "{ids}");
    let id = ids["ids"][0].as_u64().expect("id");
    let deadline = Instant::now() + Duration::from_secs(60);
    let job = loop {
        let (_, _, job) = d.call("GET", &format!("/api/v1/jobs/{id}"), &[("Authorization", &admin)], None, None);
        if matches!(job["state"].as_str(), Some("succeeded" | "failed" | "cancelled")) {
            break job;
        }
        assert!(Instant::now() < deadline, "job {id} did not end: {job:#}");
        std::thread::sleep(Duration::from_millis(25));
    };
    assert_eq!((job["state"].as_str(), job["spec"]["owner"].as_str()), (Some("succeeded"), Some(ada.name.as_str())), "{job:#}");
    let (_, _, log) = d.call("GET", &format!("/api/v1/jobs/{id}/log"), &[("Authorization", &user)], None, None);
    assert_eq!(log["data"].as_str().map(str::trim), Some(ada.uid.to_string().as_str()), "{log}");
}

/// `submitted job NODE:ID`, as a submission through a federation master prints it.
fn submitted_on(out: &Output) -> (String, u64) {
    assert!(out.status.success(), "submit: {}", stderr(out));
    let text = stdout(out);
    let remote = text.trim().strip_prefix("submitted job ").and_then(|r| r.rsplit_once(':'));
    remote.and_then(|(node, id)| Some((node.to_string(), id.parse().ok()?))).unwrap_or_else(|| panic!("not a submission on a node: {text}"))
}

/// A group's servers under one master (issue 16): its users submit, read logs and cancel on the
/// other servers through the master, each as their own Unix user there; the master is no
/// superuser there (not root, not another user), and a node that did not opt in is not acted on.
#[test]
fn through_their_master_users_act_on_other_nodes_as_themselves_and_the_master_is_no_superuser() {
    require_root();
    let (ada, bob) = (User::create(&[]), User::create(&[]));
    let shared = open_dir();
    let m = Gantry::new();
    let master_socket = shared.path().join("master.sock");
    let master = system_daemon(&m, &master_socket, "1", "");
    let mut agents = Vec::new();
    for (name, accepts) in [("a1", true), ("a2", true), ("a3", false)] {
        let token = crate::federation::issue(&master, name);
        let g = Gantry::new();
        let config = format!("\n[federation]\nmaster = \"{}\"\nnode_name = \"{name}\"\ntoken = \"{token}\"\nreport_interval_s = 0.3\naccept_from_master = {accepts}\n", master.url);
        let daemon = system_daemon(&g, &shared.path().join(format!("{name}.sock")), "1xRTX4090", &config);
        agents.push((g, daemon));
    }
    let node = |name: &str| master.get(&format!("/api/v1/nodes/{name}"));
    let wait_node = |name: &str, check: &dyn Fn(&serde_json::Value) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let seen = node(name);
            if check(&seen) {
                return seen;
            }
            assert!(Instant::now() < deadline, "node {name}: {seen:#}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    for (name, accepts) in [("a1", true), ("a2", true), ("a3", false)] {
        let seen = wait_node(name, &|n| n["status"] == "online");
        assert_eq!(seen["accepts_actions"], accepts, "{seen:#}");
    }
    let views = master.get("/api/v1/nodes").to_string();
    assert!(!views.contains("gtm_"), "a node's key shows in the master's views: {views}");

    // Ada fills a1's GPU; then a job for any node with room goes to a2 (a3 did not opt in), and
    // runs there as Ada.
    let (node_of_filler, filler) = submitted_on(&ada.gantry(&master_socket, &["submit", "--node", "a1", "--mem", "20G", "--", "sleep 60"]));
    assert_eq!(node_of_filler, "a1");
    wait_node("a1", &|n| n["report"]["jobs"]["running"] == 1);
    let (chosen, id) = submitted_on(&ada.gantry(&master_socket, &["submit", "--node", "any", "--mem", "10G", "--", "id -u; id -un"]));
    assert_eq!(chosen, "a2", "a1 is full and a3 takes no actions from its master");
    let job = agents[1].1.finished(id);
    assert_eq!((job["state"].as_str(), job["spec"]["owner"].as_str()), (Some("succeeded"), Some(ada.name.as_str())), "{job:#}");
    let out = ada.gantry(&master_socket, &["logs", &format!("a2:{id}")]);
    assert_eq!(stdout(&out), format!("{}\n{}\n", ada.uid, ada.name), "{}", stderr(&out));
    let followed = ada.gantry(&master_socket, &["logs", "--follow", &format!("a2:{id}")]);
    assert_eq!(stdout(&followed), stdout(&out), "followed through the master, to the attempt's end: {}", stderr(&followed));

    // Bob reads and changes none of Ada's jobs there: the node checks who is calling.
    let (_, long) = submitted_on(&ada.gantry(&master_socket, &["submit", "--node", "a2", "--", "sleep 60"]));
    for args in [vec!["logs".to_string(), format!("a2:{id}")], vec!["cancel".to_string(), format!("a2:{long}")]] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = bob.gantry(&master_socket, &args);
        assert!(!out.status.success() && stderr(&out).contains(&format!("belongs to {}", ada.name)), "bob {args:?}: {} {}", stdout(&out), stderr(&out));
    }
    let out = ada.gantry(&master_socket, &["cancel", &format!("a2:{long}")]);
    // A running job is being stopped as the answer comes.
    assert!(stdout(&out).starts_with(&format!("job a2:{long}: ")), "{} {}", stdout(&out), stderr(&out));
    assert_eq!(agents[1].1.finished(long)["state"], "cancelled");

    // Root on the master is nobody on a node, a node that did not opt in is not acted on, and
    // a made-up key gets nowhere.
    let out = Command::new(cli()).args(["--socket", master_socket.to_str().expect("utf-8"), "submit", "--node", "a2", "--", "true"]).env("GANTRY_NVML_LIBRARY", crate::NO_DRIVER).output().expect("gantry");
    assert!(!out.status.success() && stderr(&out).contains("may not act as root"), "{} {}", stdout(&out), stderr(&out));
    let out = ada.gantry(&master_socket, &["submit", "--node", "a3", "--", "true"]);
    assert!(!out.status.success() && stderr(&out).contains("accept_from_master"), "{} {}", stdout(&out), stderr(&out));
    let forged = [("Authorization", "Bearer gtm_0000"), ("X-Gantry-User", ada.name.as_str()), ("X-Gantry-Role", "user")];
    let (code, _, _) = agents[1].1.call("POST", "/api/v1/jobs", &forged, Some(json!({ "commands": ["true"] })), None);
    assert_eq!(code, 401, "a key that is not the node's");

    let out = ada.gantry(&master_socket, &["cancel", &format!("a1:{filler}")]);
    assert!(out.status.success(), "{}", stderr(&out));
}
