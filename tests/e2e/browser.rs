//! The dashboard in a real browser: headless Chromium driven over WebDriver (Debian's `chromium`
//! and `chromium-driver`, installed by `tests/deps.sh`). The W3C WebDriver protocol is a handful
//! of JSON calls, spoken here with the HTTP client the tests already use. A test that finds no
//! browser fails, saying what to install; a failing test leaves a screenshot under the test
//! build directory.

use crate::{Daemon, Gantry, FAST};
use serde_json::{json, Value};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(10);

fn program(name: &str) -> PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
        .unwrap_or_else(|| panic!("{name} is not installed: the dashboard tests need Chromium and its WebDriver (apt-get install -y chromium chromium-driver; tests/deps.sh does it as root)"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// Chromium under chromedriver, in a process group of their own that is killed when this is
/// dropped (a panicking test would otherwise leave the browser running).
struct Browser {
    driver: Child,
    url: String,
    session: String,
    agent: ureq::Agent,
    name: &'static str,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn start(name: &'static str) -> Browser {
        let (chromium, chromedriver) = (program("chromium"), program("chromedriver"));
        let port = free_port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("chromedriver starts");
        let url = format!("http://127.0.0.1:{port}");
        // A bound for a hung call, not a speed check: a minute was once not enough in CI,
        // where a browser's first start shares two cores with the rest of the suite.
        let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(240)).build();
        let deadline = Instant::now() + WAIT;
        while agent.get(&format!("{url}/status")).call().is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not answer on {url}");
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = tempfile::tempdir().expect("profile dir");
        let mut args = vec!["--headless=new".to_string(), "--disable-gpu".into(), "--window-size=1280,1000".into(), format!("--user-data-dir={}", profile.path().display())];
        // Chromium refuses to run as root inside its sandbox; CI runs as root.
        if unsafe { libc::geteuid() } == 0 {
            args.push("--no-sandbox".into());
        }
        let capabilities = json!({ "capabilities": { "alwaysMatch": { "browserName": "chrome", "goog:chromeOptions": { "binary": chromium, "args": args } } } });
        let mut browser = Browser { driver, url, session: String::new(), agent, name, _profile: profile };
        let answer = browser.call("POST", "/session", Some(capabilities));
        browser.session = answer["sessionId"].as_str().unwrap_or_else(|| panic!("no WebDriver session: {answer}")).to_string();
        browser
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.try_call(method, path, body).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The answer's value, or the WebDriver error as text.
    fn try_call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let request = self.agent.request(method, &format!("{}{path}", self.url));
        let result = match body {
            Some(body) => request.send_json(body),
            None => request.call(),
        };
        let answer: Value = match result {
            Ok(r) => r.into_json().unwrap_or(Value::Null),
            Err(ureq::Error::Status(code, r)) => return Err(format!("WebDriver {method} {path}: {code} {}", r.into_string().unwrap_or_default())),
            Err(e) => return Err(format!("WebDriver {method} {path}: {e}")),
        };
        Ok(answer["value"].clone())
    }

    fn session_call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body)
    }

    fn go(&self, url: &str) {
        self.session_call("POST", "/url", Some(json!({ "url": url })));
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page.
    fn js(&self, script: &str, args: Value) -> Value {
        self.session_call("POST", "/execute/sync", Some(json!({ "script": script, "args": args })))
    }

    /// Waits up to [`WAIT`] for `check(page)` to give something, where `page` is what `script`
    /// answers; polls the DOM.
    fn wait_for<T>(&self, what: &str, script: &str, check: impl Fn(&Value) -> Option<T>) -> T {
        let deadline = Instant::now() + WAIT;
        loop {
            let seen = self.js(script, json!([]));
            if let Some(found) = check(&seen) {
                return found;
            }
            assert!(Instant::now() < deadline, "waited {WAIT:?} for {what}; the page shows: {seen}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The page's text has no line that is only "null" (an absent part written out).
    fn assert_no_null(&self) {
        let text = self.js("return document.body.innerText;", json!([]));
        let text = text.as_str().unwrap_or_default();
        assert!(!text.lines().any(|line| line.trim() == "null"), "the page shows a bare null: {text}");
    }

    fn text_of(&self, selector: &str) -> String {
        self.js("const e = document.querySelector(arguments[0]); return e ? e.textContent : null;", json!([selector])).as_str().unwrap_or_default().to_string()
    }

    fn wait_text(&self, selector: &str, contains: &str) -> String {
        let script = format!("const e = document.querySelector({}); return e ? e.textContent : null;", json!(selector));
        self.wait_for(&format!("{selector} to contain {contains:?}"), &script, |v| v.as_str().filter(|t| t.contains(contains)).map(str::to_string))
    }

    fn element(&self, selector: &str) -> String {
        self.wait_for(&format!("an element {selector}"), &format!("return document.querySelector({}) !== null;", json!(selector)), |v| v.as_bool().filter(|found| *found));
        let answer = self.session_call("POST", "/element", Some(json!({ "using": "css selector", "value": selector })));
        answer.as_object().and_then(|o| o.values().next()).and_then(Value::as_str).expect("an element reference").to_string()
    }

    /// Clicks the element `selector` finds. A page that redraws itself as events arrive (the
    /// nodes page, on each report) may replace the element between finding and clicking it; it
    /// is then found again.
    fn click(&self, selector: &str) {
        for _ in 0..5 {
            let id = self.element(selector);
            match self.try_call("POST", &format!("/session/{}/element/{id}/click", self.session), Some(json!({}))) {
                Err(e) if e.contains("stale element reference") => continue,
                answer => {
                    answer.unwrap_or_else(|e| panic!("{e}"));
                    return;
                }
            }
        }
        panic!("{selector}: replaced five times before it could be clicked");
    }

    /// Types into an input as a user would (after clearing it).
    fn type_into(&self, selector: &str, text: &str) {
        let id = self.element(selector);
        self.session_call("POST", &format!("/element/{id}/clear"), Some(json!({})));
        self.session_call("POST", &format!("/element/{id}/value"), Some(json!({ "text": text })));
    }

    fn screenshot(&self, path: &std::path::Path) {
        use base64::Engine;
        let shot = self.session_call("GET", "/screenshot", None);
        if let Some(png) = shot.as_str().and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok()) {
            let _ = std::fs::write(path, png);
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if std::thread::panicking() && !self.session.is_empty() {
            let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser-failures");
            let _ = std::fs::create_dir_all(&dir);
            let path = dir.join(format!("{}.png", self.name));
            self.screenshot(&path);
            eprintln!("screenshot of the failing page: {}", path.display());
        }
        if !self.session.is_empty() {
            let _ = self.agent.delete(&format!("{}/session/{}", self.url, self.session)).call();
        }
        // SAFETY: kill(2) on our own child's process group.
        unsafe {
            libc::kill(-(self.driver.id() as i32), libc::SIGKILL);
        }
        let _ = self.driver.wait();
    }
}

/// The dashboard of `d`, logged in with mode none's local token through the `#token=` link.
fn dashboard(browser: &Browser, d: &Daemon, page: &str) {
    browser.go(&format!("{}/ui/#token={}", d.url, d.token.as_deref().expect("mode none's token")));
    browser.wait_text("#live", "live");
    browser.go(&format!("{}/ui/#/{page}", d.url));
}

#[test]
fn the_gpus_page_shows_each_gpu_and_a_jobs_process_appears_on_it_live() {
    let g = Gantry::new();
    let d = g.serve(FAST, &["--simulate", "2xA100"]);
    let browser = Browser::start("gpus_page");
    dashboard(&browser, &d, "gpus");
    let cards = browser.wait_for("two GPU cards", "return document.querySelectorAll('[data-gpu]').length;", |v| (v.as_u64() == Some(2)).then_some(2));
    assert_eq!(cards, 2);
    assert!(browser.text_of("[data-gpu='0']").contains("A100"), "{}", browser.text_of("[data-gpu='0']"));

    // A mark on this document: still there later means the page was not reloaded.
    browser.js("window.gantryMark = 'same page';", json!([]));
    let id = d.submit(json!({ "commands": ["sleep 30"], "memory_mib": 6000 }))[0];
    let link = format!("[data-gpu] a[href='#/job/{id}']");
    let script = format!("return document.querySelector({}) ? Date.now() : null;", json!(link));
    let shown_ms = browser.wait_for("the job's process on its GPU card", &script, Value::as_u64);
    let job = d.job(id);
    let started_ms = job["attempts"][0]["started_ms"].as_u64().expect("started");
    // Shown within 2 s of the start, without a reload (the page is the same document).
    assert!(shown_ms.saturating_sub(started_ms) < 2000, "shown {} ms after the job started", shown_ms.saturating_sub(started_ms));
    assert_eq!(browser.js("return window.gantryMark;", json!([])), json!("same page"));
    browser.screenshot(&PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard-gpus.png"));
    d.request("POST", &format!("/api/v1/jobs/{id}/cancel"), None);
}

#[test]
fn a_job_submitted_from_the_form_runs_and_its_log_appears_live() {
    let g = Gantry::new();
    let d = g.serve(FAST, &["--simulate", "1"]);
    let browser = Browser::start("submit_form");
    dashboard(&browser, &d, "jobs");
    browser.type_into("#submit textarea", "echo first-line; sleep 1; echo second-line");
    browser.click("#submit button[type=submit]");
    let href = browser.wait_for("the submitted job's link", "const a = document.querySelector('#submit [role=status] a'); return a ? a.getAttribute('href') : null;", |v| v.as_str().map(str::to_string));
    browser.click(&format!("#submit [role=status] a[href='{href}']"));
    browser.wait_text("#log", "first-line");
    browser.wait_text("#log", "second-line");
    browser.wait_text("#job-state", "succeeded");
    browser.assert_no_null();
    let id: u64 = href.rsplit('/').next().and_then(|n| n.parse().ok()).expect("job id");
    assert_eq!(d.job(id)["spec"]["commands"][0], "echo first-line; sleep 1; echo second-line");
}

#[test]
fn a_command_file_with_a_bad_line_shows_it_at_that_line_and_is_not_saved() {
    let g = Gantry::new();
    let d = g.serve(FAST, &["--simulate", "1"]);
    let browser = Browser::start("command_file");
    dashboard(&browser, &d, "files");
    browser.click("button.plain");
    browser.element("#command-text");
    let before = d.get("/api/v1/command-files/single/0");
    browser.type_into("#command-text", "1\necho fine\nnot-a-number\n");
    browser.click(".editor ~ .row button");
    let problem = browser.wait_text("#diagnostics", ":3:");
    assert!(problem.contains("command_gpu"), "{problem}");
    assert_eq!(browser.text_of(".editor .gutter .bad"), "3", "the gutter marks line 3");
    assert_eq!(d.get("/api/v1/command-files/single/0")["text"], before["text"], "the file was not changed");
}

#[test]
fn a_rules_edit_shows_on_the_next_read() {
    let g = Gantry::new();
    let d = g.serve(FAST, &["--simulate", "1"]);
    let browser = Browser::start("rules");
    dashboard(&browser, &d, "rules");
    browser.type_into("#rules input[name=max_gpu]", "3");
    browser.click("#rules button[type=submit]");
    browser.wait_text("#rules-message", "saved");
    assert_eq!(d.get("/api/v1/rules")["max_gpu"], 3);
    // Read again: another page, then the rules page anew.
    browser.go(&format!("{}/ui/#/plugins", d.url));
    // On the way: the plugins page says what each may do.
    browser.wait_text("main table tbody", "100 ms a call; 64 MiB; no files, network or environment");
    browser.go(&format!("{}/ui/#/rules", d.url));
    let script = "const e = document.querySelector('#rules input[name=max_gpu]'); return e ? e.value : null;";
    browser.wait_for("the page to read the new value", script, |v| (v.as_str() == Some("3")).then_some(()));
}

#[test]
fn a_secret_mode_login_lets_the_page_change_things_and_a_page_of_another_origin_cannot() {
    let g = Gantry::new();
    let d = g.serve(&format!("{FAST}[auth]\nsecret = \"s3cret\"\n"), &["--simulate", "1"]);
    let browser = Browser::start("secret_login");
    browser.go(&format!("{}/ui/#/jobs", d.url));
    browser.type_into("#f-password", "s3cret");
    browser.click("main form button[type=submit]");
    browser.wait_text("#live", "live");
    browser.element("#submit textarea");
    browser.type_into("#submit textarea", "true");
    browser.click("#submit button[type=submit]");
    browser.wait_text("#submit [role=status]", "submitted");
    let count = || d.call("GET", "/api/v1/jobs", &[("Authorization", &login(&d))], None, None).2["total"].as_u64().expect("total");
    assert_eq!(count(), 1);
    // localhost is another site than 127.0.0.1: a page there sends what any page may, with
    // the browser's cookies if it would send them.
    let other = d.url.replace("127.0.0.1", "localhost");
    browser.go(&format!("{other}/ui/"));
    let target = format!("{}/api/v1/jobs", d.url);
    browser.js(
        "window.sent = 'pending'; fetch(arguments[0], { method: 'POST', credentials: 'include', mode: 'no-cors', headers: { 'Content-Type': 'text/plain' }, body: JSON.stringify({ commands: ['true'] }) }).then(() => { window.sent = 'sent'; }, (e) => { window.sent = 'refused: ' + e; });",
        json!([target]),
    );
    let sent = browser.wait_for("the foreign request to end", "return window.sent === 'pending' ? null : window.sent;", |v| v.as_str().map(str::to_string));
    assert_eq!(count(), 1, "a page of another origin submitted a job ({sent})");
}

fn login(d: &Daemon) -> String {
    let (code, _, body) = d.call("POST", "/api/auth/login", &[], Some(json!({ "password": "s3cret" })), None);
    assert_eq!(code, 200, "{body}");
    format!("Bearer {}", body["token"].as_str().expect("token"))
}

#[test]
fn the_page_goes_stale_when_the_daemon_stops_and_live_again_when_it_is_back() {
    let g = Gantry::new();
    let listen = format!("127.0.0.1:{}", free_port());
    let mut d = g.serve_at(FAST, &listen, &["--simulate", "1"]);
    let browser = Browser::start("reconnect");
    dashboard(&browser, &d, "gpus");
    browser.wait_text("#live", "live");
    d.request("POST", "/api/v1/shutdown", None);
    d.exited(Duration::from_secs(20));
    browser.wait_text("#live", "stale since");
    let _d = g.serve_at(FAST, &listen, &["--simulate", "1"]);
    let deadline = Instant::now() + Duration::from_secs(40);
    while browser.text_of("#live") != "live" {
        assert!(Instant::now() < deadline, "the page did not reconnect: {}", browser.text_of("#live"));
        std::thread::sleep(Duration::from_millis(200));
    }
    browser.wait_for("GPU cards again", "return document.querySelectorAll('[data-gpu]').length;", |v| (v.as_u64() == Some(1)).then_some(()));
}

#[test]
fn an_admin_logs_in_with_an_account_and_manages_accounts_from_the_page() {
    let g = Gantry::new();
    let d = g.serve(&format!("{FAST}[auth]\nmode = \"users\"\n"), &["--simulate", "1"]);
    let _ = g.add_account(None, "admin@lab.org", "admin");
    let browser = Browser::start("accounts");
    browser.go(&format!("{}/ui/#/account", d.url));
    browser.type_into("#f-e-mail", "admin@lab.org");
    browser.type_into("#f-password", "correct horse");
    browser.click("main form button[type=submit]");
    browser.wait_text("#accounts", "admin@lab.org");
    browser.type_into("#f-new-account-s-e-mail", "ada@lab.org");
    browser.type_into("#f-password", "another horse");
    browser.click("#new-account button[type=submit]");
    browser.wait_text("#accounts", "ada@lab.org");
    let script = "const s = [...document.querySelectorAll('#accounts select')].find((e) => e.getAttribute('aria-label') === 'role of ada@lab.org'); if (!s) return null; s.value = 'viewer'; s.dispatchEvent(new Event('change')); return true;";
    browser.wait_for("ada's role control", script, |v| v.as_bool());
    let (code, _, tokens) = d.call("POST", "/auth/jwt/login", &[], None, Some(&[("username", "admin@lab.org"), ("password", "correct horse")]));
    assert_eq!(code, 200, "{tokens}");
    let admin = format!("Bearer {}", tokens["access_token"].as_str().expect("token"));
    let deadline = Instant::now() + WAIT;
    loop {
        let users = d.call("GET", "/api/v1/users", &[("Authorization", &admin)], None, None).2;
        let ada = users.as_array().and_then(|u| u.iter().find(|u| u["email"] == "ada@lab.org").cloned()).unwrap_or(Value::Null);
        if ada["role"] == "viewer" {
            break;
        }
        assert!(Instant::now() < deadline, "ada is not a viewer: {ada}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_masters_nodes_page_shows_each_node_live_and_when_it_goes_quiet() {
    let m = Gantry::new();
    let master = m.serve(&format!("{FAST}[federation]\noffline_after_s = 3\n"), &["--simulate", "1"]);
    let token = crate::federation::issue(&master, "a1");
    let a = Gantry::new();
    let mut agent = a.serve(&crate::federation::agent_config(&master, "a1", &token), &["--simulate", "2xA100"]);
    let browser = Browser::start("nodes");
    dashboard(&browser, &master, "nodes");
    browser.wait_text("[data-node='a1']", "online");
    browser.wait_for("a1's two GPU cards", "return document.querySelectorAll(\"[data-node='a1'] [data-gpu]\").length;", |v| (v.as_u64() == Some(2)).then_some(()));
    // A job on the agent shows in the master's page as the report arrives.
    let id = agent.submit(json!({ "commands": ["sleep 30"] }))[0];
    browser.wait_text("[data-node='a1']", "1 running");
    agent.request("POST", &format!("/api/v1/jobs/{id}/cancel"), None);
    agent.crash();
    browser.wait_text("[data-node='a1']", "stale");
    browser.wait_text("[data-node='a1']", "offline");
}

#[test]
fn a_pulled_slave_shows_on_the_nodes_page_with_why_its_pull_fails() {
    let a = Gantry::new();
    let mut agent = a.serve(FAST, &["--simulate", "2xA100"]);
    let port = agent.url.rsplit(':').next().expect("port").to_string();
    let m = Gantry::new();
    let config = format!(
        "{FAST}[federation]\nrefresh_interval_s = 0.5\noffline_after_s = 3\n[[federation.slaves]]\nname = \"p1\"\nip = \"127.0.0.1\"\nport = {port}\ntoken = \"{}\"\n",
        agent.token.as_deref().expect("local token")
    );
    let master = m.serve(&config, &["--simulate", "1"]);
    let browser = Browser::start("pulled");
    dashboard(&browser, &master, "nodes");
    browser.wait_text("[data-node='p1']", "pulled");
    browser.wait_for("p1's two GPU cards", "return document.querySelectorAll(\"[data-node='p1'] [data-gpu]\").length;", |v| (v.as_u64() == Some(2)).then_some(()));
    // The slave goes away: the page says why as the next pull fails, then ages the node.
    agent.crash();
    let said = browser.wait_text("[data-node='p1']", "last pull failed");
    assert!(said.contains("127.0.0.1") && said.matches("/api/info").count() == 1, "{said}");
    browser.assert_no_null();
    browser.wait_text("[data-node='p1']", "offline");
}

#[test]
fn a_job_submitted_on_a_node_from_the_masters_page_runs_there_and_is_followed_and_cancelled_through_the_master() {
    let m = Gantry::new();
    let master = m.serve(FAST, &["--simulate", "1"]);
    let token = crate::federation::issue(&master, "a1");
    let a = Gantry::new();
    let agent = a.serve(&format!("{}accept_from_master = true\n", crate::federation::agent_config(&master, "a1", &token)), &["--simulate", "1"]);
    master.wait_get("/api/v1/nodes/a1", WAIT, |n| n["accepts_actions"] == true);
    let browser = Browser::start("remote_job");
    dashboard(&browser, &master, "jobs");
    browser.element("#f-node");
    browser.js("document.querySelector('#f-node').value = 'a1';", json!([]));
    browser.type_into("#submit textarea", "echo remote-line; sleep 60");
    browser.click("#submit button[type=submit]");
    let href = browser.wait_for("the submitted job's link", "const a = document.querySelector('#submit [role=status] a'); return a ? a.getAttribute('href') : null;", |v| v.as_str().map(str::to_string));
    let id: u64 = href.strip_prefix("#/job/a1:").and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("not a job on a1: {href}"));
    assert_eq!(agent.job(id)["spec"]["commands"][0], "echo remote-line; sleep 60", "it was submitted on the node");
    // The master's nodes page lists it among a1's running jobs; its page follows its log.
    browser.go(&format!("{}/ui/#/nodes", master.url));
    browser.click(&format!("[data-job='a1:{id}'] a"));
    browser.wait_text("#log", "remote-line");
    browser.wait_text("#job-state", "running");
    browser.js("[...document.querySelectorAll('button')].find((b) => b.textContent === 'cancel').click();", json!([]));
    browser.wait_text("#job-state", "cancelled");
    browser.assert_no_null();
    assert_eq!(agent.job(id)["state"], "cancelled");
}

#[test]
fn the_providers_page_shows_each_providers_health_and_the_jobs_running_there() {
    let cluster = crate::k8s::Cluster::start();
    let g = Gantry::new();
    // `away`: an API server nobody runs.
    let config = format!("{FAST}{}[providers.away]\nplugin = \"provider-k8s\"\nbase_url = \"http://127.0.0.1:9\"\n[providers.away.options]\nimage = \"busybox\"\n", cluster.config(&g));
    let d = g.serve(&config, &["--simulate", "1"]);
    let there = d.submit(json!({ "commands": ["sleep 60"], "provider": "k8s" }))[0];
    d.wait_job(there, WAIT, |j| j["attempts"][0]["remote"]["state"] == "Running");
    let stuck = d.submit(json!({ "commands": ["true"], "provider": "away" }))[0];
    d.wait_job(stuck, WAIT, |j| j["reason"].as_str().is_some_and(|r| r.contains("unreachable")));

    let browser = Browser::start("providers");
    dashboard(&browser, &d, "providers");
    browser.wait_text("#providers [data-provider=k8s]", "ok");
    let away = browser.wait_text("#providers [data-provider=away]", "failing");
    assert!(away.contains("http://127.0.0.1:9"), "{away}");
    let row = browser.wait_text(&format!("#remote-jobs [data-job='{there}']"), "k8s#gantry-");
    assert!(row.contains("Running") && row.contains("sleep 60") && row.contains("EUR (1.5 EUR/h)"), "the site rate of one GPU: {row}");
    assert_eq!(browser.js("return document.querySelectorAll('#remote-jobs [data-job]').length;", json!([])), json!(1), "the job that waits runs nowhere");
    // Wait here or pay there: this node's GPU is free; the cluster sells at its site rate.
    browser.type_into("#offer-form #f-gpus", "1");
    browser.click("#offer-form button[type=submit]");
    browser.wait_text("#wait-here", "Here: free now");
    let offer = browser.wait_text("#offers [data-offer=k8s]", "1.50 EUR");
    assert!(offer.contains("yes"), "{offer}");
    assert_eq!(browser.js("return document.querySelectorAll('#offers [data-offer=away]').length;", json!([])), json!(0), "a cluster without a rate sells nothing");
    browser.assert_no_null();
    browser.go(&format!("{}/ui/#/jobs", d.url));
    browser.wait_text(&format!("#jobs [data-job='{there}']"), "k8s#gantry-");
    for id in [there, stuck] {
        crate::ok(g.run(&["cancel", &id.to_string()]));
    }
}
