//! End-to-end tests: the real `gantry` binary, each run with its own temporary state directory.
//!
//! No test here may see a real NVIDIA driver by accident: every run points `GANTRY_NVML_LIBRARY`
//! at a path that does not exist unless the test says otherwise.

mod aliyun;
mod api;
mod browser;
mod auth;
mod cli;
mod compat;
mod console;
mod daemon;
mod executor;
mod federation;
mod fuzz;
mod gpus;
mod hardening;
mod hostile;
mod k8s;
mod lab_ca;
mod replay;
mod runpod;
mod scheduler;
mod sdk;
mod shared;
mod slurm;
mod stub_api;
mod tke;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const NO_DRIVER: &str = "/nonexistent/libnvidia-ml.so.1";

/// Configuration for daemons under test: fast sampling, so memory a job takes shows within a tenth
/// of a second.
pub const FAST: &str = "[gpu]\nsample_interval_ms = 100\nwindow_s = 1\n";

/// A state directory and the commands that run in it.
pub struct Gantry {
    pub state: tempfile::TempDir,
}

impl Default for Gantry {
    fn default() -> Self {
        Self::new()
    }
}

/// The bundled plugins compiled once per test run, by `gantry plugin list` in a state directory of
/// its own: the artifacts directory of its cache. Each test's state directory starts with a copy,
/// so its daemon loads them from its cache as a restarted daemon does, instead of compiling the
/// same 800 KB of components again (8 s of every start in a debug build). Fixtures are not in it:
/// a test that loads one compiles it.
fn warm_plugin_cache() -> Option<&'static Path> {
    static WARM: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    WARM.get_or_init(|| {
        let state = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("warm-plugins");
        let _ = std::fs::remove_dir_all(&state);
        let out = Command::new(env!("CARGO_BIN_EXE_gantry"))
            .args(["plugin", "list"])
            .env("GANTRY_STATE_DIR", &state)
            .env("GANTRY_NVML_LIBRARY", NO_DRIVER)
            .env_remove("GANTRY_CONFIG")
            .output()
            .ok()?;
        out.status.success().then(|| state.join("cache").join("plugins"))
    })
    .as_deref()
}

impl Gantry {
    pub fn new() -> Gantry {
        let g = Gantry { state: tempfile::tempdir().expect("state dir") };
        if let Some(warm) = warm_plugin_cache() {
            use std::os::unix::fs::DirBuilderExt;
            let cache = g.state.path().join("cache").join("plugins");
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&cache).expect("cache dir");
            for artifact in std::fs::read_dir(warm).into_iter().flatten().flatten() {
                std::fs::copy(artifact.path(), cache.join(artifact.file_name())).expect("artifact copied");
            }
        }
        g
    }

    pub fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gantry"));
        cmd.env("GANTRY_STATE_DIR", self.state.path())
            .env("GANTRY_NVML_LIBRARY", NO_DRIVER)
            .env_remove("GANTRY_CONFIG")
            .env_remove("GANTRY_SIM_CONFIG")
            .env_remove("GANTRY_LOG");
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("gantry runs")
    }

    /// A provider's token file in the state directory, mode 0600 as gantry requires.
    pub fn token_file(&self, name: &str, token: &str) -> PathBuf {
        let path = self.state.path().join(name);
        std::fs::write(&path, token).expect("token written");
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).expect("chmod");
        path
    }

    pub fn sim_dir(&self) -> PathBuf {
        self.state.path().join("sim")
    }

    /// What processes set in `GANTRY_SIM_MACHINE` to use this state directory's simulated GPUs.
    pub fn sim_machine(&self) -> String {
        let config = self.sim_dir().join("nvml-sim.json");
        std::fs::canonicalize(&config).unwrap_or(config).to_string_lossy().into_owned()
    }
}

/// Waits for the daemon starting on state directory `state` to say where it listens (its
/// `daemon.json`); `log` says why, if it never does.
pub fn daemon_url_in(state: &Path, log: &dyn Fn() -> String) -> String {
    let info = state.join("daemon.json");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(url) = std::fs::read_to_string(&info).ok().and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok()).and_then(|v| v["url"].as_str().map(String::from)) {
            return url;
        }
        assert!(Instant::now() < deadline, "the daemon did not start: {}", log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Alive and not a zombie (an orphan's zombie may wait for a PID 1 that never reaps it).
/// A client that opens a connection per request. The daemon closes a kept-alive connection idle
/// for its `header_timeout` (10 s), and ureq sends a request with a body on a pooled connection
/// without retrying it, so a test that paused longer on a loaded machine read "Unexpected EOF".
fn fresh_connections() -> ureq::AgentBuilder {
    ureq::AgentBuilder::new().timeout(Duration::from_secs(30)).max_idle_connections(0)
}

pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit(')').next().map(|rest| !rest.trim_start().starts_with('Z')))
        .unwrap_or(false)
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A command's stdout, once it succeeded; its stderr is the failure.
pub fn ok(out: Output) -> String {
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `requirement` from PyPI, installed once (`pip install --target`) into `dir` under the test
/// target dir: that directory, for `PYTHONPATH`. A marker written after a successful install
/// tells a later run it is there.
pub fn pip_install(requirement: &str, dir: &str) -> PathBuf {
    let deps = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(dir);
    let marker = deps.join(format!(".installed-{requirement}"));
    if !marker.exists() {
        let out = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--target"])
            .arg(&deps)
            .arg(requirement)
            .output()
            .unwrap_or_else(|e| panic!("python3 with pip is needed to install {requirement} for the tests ({e}; apt-get install -y python3-pip)"));
        assert!(out.status.success(), "pip install {requirement} failed: {}", String::from_utf8_lossy(&out.stderr));
        std::fs::write(&marker, "").expect("marker written");
    }
    deps
}

pub fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// A `gantry serve` of a state directory, on an ephemeral port. Dropping it kills the daemon
/// and every process it left (shims and jobs inherit the state directory in their environment).
pub struct Daemon {
    child: Option<Child>,
    pub url: String,
    state: PathBuf,
    agent: ureq::Agent,
    /// Mode `none`'s local token, which requests over TCP carry unless they set their own
    /// `Authorization`.
    pub token: Option<String>,
}

impl Gantry {
    /// Writes `config` (TOML, may be empty) to `<state>/gantry.toml` and serves with it.
    pub fn serve(&self, config: &str, args: &[&str]) -> Daemon {
        self.serve_at(config, "127.0.0.1:0", args)
    }

    /// [`Gantry::serve`] on `listen` (`HOST:PORT`).
    pub fn serve_at(&self, config: &str, listen: &str, args: &[&str]) -> Daemon {
        let path = self.state.path().join("gantry.toml");
        std::fs::write(&path, config).expect("write config");
        let _ = std::fs::remove_file(self.state.path().join("daemon.json"));
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.state.path().join("daemon.log")).expect("daemon log");
        let child = self
            .command()
            .arg("--config")
            .arg(&path)
            .args(["serve", "--listen", listen])
            .args(args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("gantry serve starts");
        let url = self.daemon_url();
        let token = std::fs::read_to_string(self.state.path().join("local.token")).ok().map(|t| t.trim().to_string());
        Daemon { child: Some(child), url, state: self.state.path().to_path_buf(), agent: fresh_connections().build(), token }
    }

    /// An account with the password `correct horse`, made as a daemon's owner makes one: `gantry
    /// user add` over the daemon's socket (its own, or `socket`'s). Mode `users` has no other way
    /// to its first admin. Answers the account's id.
    pub fn add_account(&self, socket: Option<&Path>, email: &str, role: &str) -> String {
        use std::io::Write;
        let mut cmd = self.command();
        if let Some(socket) = socket {
            cmd.arg("--socket").arg(socket);
        }
        let mut child = cmd
            .arg("--config")
            .arg(self.state.path().join("gantry.toml"))
            .args(["user", "add", email, "--role", role, "--password-stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("gantry user add runs");
        child.stdin.take().expect("stdin").write_all(b"correct horse\n").expect("password written");
        let out = child.wait_with_output().expect("gantry user add ends");
        assert!(out.status.success(), "gantry user add {email}: {}", stderr(&out));
        let said = stdout(&out);
        said.split(", id ").nth(1).and_then(|rest| rest.split(')').next()).unwrap_or_else(|| panic!("no id in {said:?}")).to_string()
    }

    /// Waits for a starting daemon to say where it listens.
    pub fn daemon_url(&self) -> String {
        daemon_url_in(self.state.path(), &|| self.daemon_log())
    }

    pub fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.state.path().join("daemon.log")).unwrap_or_default()
    }
}

impl Daemon {
    /// The same daemon, its requests trusting `ca` (PEM) for HTTPS.
    pub fn trusting(mut self, ca: &Path) -> Daemon {
        let tls = gantry::tls::client_config(Some(ca)).expect("the test CA");
        self.agent = fresh_connections().tls_config(tls).build();
        self
    }

    /// A request to the daemon, carrying the local token.
    fn to(&self, method: &str, path: &str) -> ureq::Request {
        self.authorized(self.agent.request(method, &format!("{}{path}", self.url)))
    }

    /// `request` with the local token.
    pub fn authorized(&self, request: ureq::Request) -> ureq::Request {
        match &self.token {
            Some(token) => request.set("Authorization", &format!("Bearer {token}")),
            None => request,
        }
    }

    /// `(status, body)`; the body is JSON, or null.
    pub fn request(&self, method: &str, path: &str, body: Option<serde_json::Value>) -> (u16, serde_json::Value) {
        let request = self.to(method, path);
        let result = match body {
            Some(body) => request.send_json(body),
            None => request.call(),
        };
        match result {
            Ok(r) => (r.status(), r.into_json().unwrap_or(serde_json::Value::Null)),
            Err(ureq::Error::Status(code, r)) => (code, r.into_json().unwrap_or(serde_json::Value::Null)),
            Err(e) => self.unanswered(&format!("{method} {path}"), &e),
        }
    }

    /// A request with headers: `(status, the Set-Cookie header, body)`; a form body when `form`
    /// is given, else JSON when `body` is.
    pub fn call(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<serde_json::Value>, form: Option<&[(&str, &str)]>) -> (u16, Option<String>, serde_json::Value) {
        let mut request = if headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("authorization")) { self.agent.request(method, &format!("{}{path}", self.url)) } else { self.to(method, path) };
        for (name, value) in headers {
            request = request.set(name, value);
        }
        let result = match (form, body) {
            (Some(form), _) => request.send_form(form),
            (None, Some(body)) => request.send_json(body),
            (None, None) => request.call(),
        };
        let response = match result {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => self.unanswered(&format!("{method} {path}"), &e),
        };
        let cookie = response.header("set-cookie").map(String::from);
        (response.status(), cookie, response.into_json().unwrap_or(serde_json::Value::Null))
    }

    /// Fails a request that got no answer, saying whether the daemon is still there and what it
    /// logged last: a cut connection alone tells nothing of why.
    fn unanswered(&self, what: &str, error: &ureq::Error) -> ! {
        let running = self.child.as_ref().is_some_and(|child| i32::try_from(child.id()).is_ok_and(alive));
        let log = std::fs::read_to_string(self.state.join("daemon.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = &lines[lines.len().saturating_sub(30)..];
        panic!("{what}: {error}; the daemon is {}; its log ends:\n{}", if running { "running" } else { "gone" }, tail.join("\n"))
    }

    pub fn get_text(&self, path: &str) -> String {
        let response = self.to("GET", path).call().unwrap_or_else(|e| self.unanswered(&format!("GET {path}"), &e));
        response.into_string().expect("text")
    }

    pub fn get(&self, path: &str) -> serde_json::Value {
        let (status, body) = self.request("GET", path, None);
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// Submits one job (or a batch `{"jobs": [...]}`) and returns the ids.
    pub fn submit(&self, spec: serde_json::Value) -> Vec<u64> {
        let (status, body) = self.request("POST", "/api/v1/jobs", Some(spec));
        assert_eq!(status, 201, "submit: {body}");
        body["ids"].as_array().expect("ids").iter().map(|v| v.as_u64().expect("id")).collect()
    }

    pub fn job(&self, id: u64) -> serde_json::Value {
        self.get(&format!("/api/v1/jobs/{id}"))
    }

    /// Waits until `check` holds for the job, or fails after `limit`.
    pub fn wait_job(&self, id: u64, limit: Duration, check: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        self.wait_get(&format!("/api/v1/jobs/{id}"), limit, check)
    }

    /// Polls `GET path` until `check` holds for its answer, or fails after `limit`.
    pub fn wait_get(&self, path: &str, limit: Duration, check: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let deadline = Instant::now() + limit;
        loop {
            let body = self.get(path);
            if check(&body) {
                return body;
            }
            assert!(Instant::now() < deadline, "{path} did not get there in {limit:?}: {body:#}");
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Waits for the job to end and returns it.
    pub fn finished(&self, id: u64) -> serde_json::Value {
        self.wait_job(id, Duration::from_secs(60), |j| matches!(j["state"].as_str(), Some("succeeded" | "failed" | "cancelled")))
    }

    /// The latest attempt's log.
    pub fn log(&self, id: u64) -> String {
        self.get(&format!("/api/v1/jobs/{id}/log"))["data"].as_str().unwrap_or_default().to_string()
    }

    /// Waits for the daemon to exit on its own.
    pub fn exited(&mut self, limit: Duration) -> std::process::ExitStatus {
        let child = self.child.as_mut().expect("a daemon");
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return status;
            }
            assert!(Instant::now() < deadline, "the daemon did not exit within {limit:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, as a crash would: the jobs' shims stay.
    pub fn crash(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.crash();
        kill_leftovers(&self.state);
    }
}

/// The processes whose `/proc/PID` directory `keep` accepts.
pub fn processes(keep: impl Fn(&Path) -> bool) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries.flatten().filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok().filter(|_| keep(&entry.path()))).collect()
}

/// Processes whose environment holds `NAME=value` exactly as `wanted`.
pub fn processes_with_env(wanted: &str) -> Vec<i32> {
    processes(|dir| std::fs::read(dir.join("environ")).is_ok_and(|environ| environ.split(|b| *b == 0).any(|kv| kv == wanted.as_bytes())))
}

/// Kills every process whose environment names this state directory (the daemon's shims), then
/// what a killed shim left of its job, as a daemon would on adopting it: only while the job's
/// group is still the job's (its number is a pid, which may be anybody's by now: a browser's,
/// another test's daemon's job).
pub fn kill_leftovers(state: &Path) {
    let shims = processes_with_env(&format!("GANTRY_STATE_DIR={}", state.display()));
    for &pid in &shims {
        // SAFETY: signalling a process found above; no memory is involved.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    // Gone, and so their attempts' locks free, before the attempts are looked at.
    let deadline = Instant::now() + Duration::from_secs(10);
    while shims.iter().any(|&pid| alive(pid)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let Ok(jobs) = std::fs::read_dir(state.join("jobs")) else { return };
    for attempt in jobs.flatten().filter_map(|job| std::fs::read_dir(job.path()).ok()).flatten().flatten() {
        let _ = gantry::executor::adopt(&attempt.path());
    }
}
