//! Several real daemons on loopback (issue 16, first part): agents report to a master with the
//! tokens it issued; the master knows each node's GPUs and jobs within a second of a change, and
//! tells online from stale from offline.

use crate::{Daemon, Gantry, FAST};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

pub fn issue(master: &Daemon, name: &str) -> String {
    let (code, issued) = master.request("POST", "/api/v1/nodes", Some(json!({ "name": name })));
    assert_eq!(code, 201, "{issued}");
    issued["token"].as_str().expect("token").to_string()
}

pub fn agent_config(master: &Daemon, name: &str, token: &str) -> String {
    format!("{FAST}[federation]\nmaster = \"{}\"\nnode_name = \"{name}\"\ntoken = \"{token}\"\nreport_interval_s = 0.5\n", master.url)
}

fn node(master: &Daemon, name: &str) -> Value {
    master.get(&format!("/api/v1/nodes/{name}"))
}

fn wait_node(master: &Daemon, name: &str, limit: Duration, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let seen = node(master, name);
        if check(&seen) {
            return seen;
        }
        assert!(Instant::now() < deadline, "node {name} after {limit:?}: {seen:#}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn agents_report_to_their_master_which_tells_online_stale_and_offline() {
    let m = Gantry::new();
    let master = m.serve(&format!("{FAST}[federation]\noffline_after_s = 3\n"), &["--simulate", "1"]);
    let (a1, a2) = (Gantry::new(), Gantry::new());
    let t1 = issue(&master, "a1");
    let t2 = issue(&master, "a2");
    let _agent1 = a1.serve(&agent_config(&master, "a1", &t1), &["--simulate", "2xA100"]);
    let mut agent2 = a2.serve(&agent_config(&master, "a2", &t2), &["--simulate", "4xRTX4090"]);

    for (name, gpus) in [("a1", 2), ("a2", 4)] {
        let seen = wait_node(&master, name, Duration::from_secs(10), |n| n["status"] == "online");
        assert_eq!(seen["report"]["node"]["gpus"].as_array().map(Vec::len), Some(gpus), "{seen:#}");
    }
    // Seed 003's master view of the same.
    let slaves = master.get("/api/slaves");
    assert_eq!(slaves["count"], 2, "{slaves:#}");
    let entry = slaves["slaves"].as_array().and_then(|s| s.iter().find(|e| e["name"] == "a2").cloned()).expect("a2 listed");
    assert_eq!((entry["online"].as_bool(), entry["ip"].as_str()), (Some(true), Some("127.0.0.1")), "{entry:#}");
    assert!(entry["system"]["cpu_cores"].is_u64() && entry["gpus"][3]["memory"]["total"].is_u64() && entry["timestamp"].is_f64(), "{entry:#}");

    // A job that starts on agent 2 shows on the master within a second of its start.
    let id = agent2.submit(json!({ "commands": ["sleep 60"] }))[0];
    let seen = wait_node(&master, "a2", Duration::from_secs(10), |n| n["report"]["jobs"]["running"] == 1);
    let started = agent2.wait_job(id, Duration::from_secs(10), |j| !j["attempts"].as_array().is_none_or(Vec::is_empty))["attempts"][0]["started_ms"].as_u64().expect("started");
    let reported = seen["last_seen_ms"].as_u64().expect("seen");
    assert!(reported.saturating_sub(started) < 1000, "the master heard of the start {} ms after it", reported.saturating_sub(started));
    // Which job, whose and on which GPUs; not what it runs.
    let remote = master.get("/api/v1/nodes/a2/jobs");
    assert_eq!((remote[0]["id"].as_u64(), remote[0]["commands"].as_array().map(Vec::len)), (Some(id), Some(0)), "{remote:#}");
    let out = m.command().args(["--server", &master.url, "--token", master.token.as_deref().expect("token"), "jobs", "--all-nodes"]).output().expect("gantry jobs");
    assert!(crate::stdout(&out).contains(&format!("a2:{id}")), "{}{}", crate::stdout(&out), crate::stderr(&out));

    // Agent 2 dies: stale after two intervals, offline after `offline_after_s`.
    agent2.crash();
    wait_node(&master, "a2", Duration::from_secs(5), |n| n["status"] == "stale");
    wait_node(&master, "a2", Duration::from_secs(8), |n| n["status"] == "offline");
    assert_eq!(node(&master, "a1")["status"], "online", "the other node is not affected");

    // Back, with the job it adopted still running.
    let agent2 = a2.serve(&agent_config(&master, "a2", &t2), &["--simulate", "4xRTX4090"]);
    let back = wait_node(&master, "a2", Duration::from_secs(15), |n| n["status"] == "online" && n["report"]["jobs"]["running"] == 1);
    assert_eq!(back["report"]["jobs"]["running"], 1, "{back:#}");

    // A revoked node is refused: its reports stop counting, and a replayed or forged one too.
    let (code, _) = master.request("DELETE", "/api/v1/nodes/a1", None);
    assert_eq!(code, 204);
    let report = back["report"].clone();
    let (code, _, refused) = master.call("POST", "/api/v1/nodes/a1/report", &[("Authorization", &format!("Bearer {t1}"))], Some(report.clone()), None);
    assert_eq!((code, refused["error"].as_str()), (401, Some("unauthorized")), "{refused}");
    let (code, _, replayed) = master.call("POST", "/api/v1/nodes/a2/report", &[("Authorization", &format!("Bearer {t2}"))], Some(report), None);
    assert_eq!((code, replayed["error"].as_str()), (409, Some("replayed")), "{replayed}");
    assert_eq!(master.request("GET", "/api/v1/nodes/a1", None).0, 404);
    // The CLI's fleet view.
    let out = m.command().args(["--server", &master.url, "--token", master.token.as_deref().expect("token"), "nodes"]).output().expect("gantry nodes");
    let said = crate::stdout(&out);
    assert!(out.status.success() && said.contains("a2") && said.contains("online") && said.contains("RTX 4090"), "{said}{}", crate::stderr(&out));
    agent2.request("POST", &format!("/api/v1/jobs/{id}/cancel"), None);
}

/// Seed 003's documented `/api/info` example, as FlowLine's Python slave answers it (the
/// document writes `"processes": [...]`; these are the fields that slave fills).
const SEED_003_INFO: &str = include_str!("../data/seed003_info.json");

/// A FlowLine slave on loopback: answers every `GET /api/info` with [`SEED_003_INFO`] after
/// `delay`, and counts them.
struct FlowlineSlave {
    port: u16,
    pulls: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl FlowlineSlave {
    fn start(delay: Duration) -> FlowlineSlave {
        use std::io::{Read, Write};
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let pulls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (counted, stopping) = (pulls.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(mut stream) = stream else { continue };
                let counted = counted.clone();
                std::thread::spawn(move || {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let answer = if request.starts_with(b"GET /api/info ") {
                        counted.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(delay);
                        format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{SEED_003_INFO}", SEED_003_INFO.len())
                    } else {
                        "HTTP/1.1 404 NOT FOUND\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
                    };
                    let _ = stream.write_all(answer.as_bytes());
                });
            }
        });
        FlowlineSlave { port, pulls, stop }
    }

    fn pulls(&self) -> usize {
        self.pulls.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for FlowlineSlave {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Every key of `documented` (recursively, into the first element of lists) is in `answered`.
fn has_documented_fields(documented: &Value, answered: &Value, path: &str) -> Vec<String> {
    match (documented, answered) {
        (Value::Object(d), Value::Object(a)) => d.iter().flat_map(|(k, v)| match a.get(k) {
            Some(found) => has_documented_fields(v, found, &format!("{path}.{k}")),
            None => vec![format!("{path}.{k}")],
        }).collect(),
        (Value::Array(d), Value::Array(a)) => match (d.first(), a.first()) {
            (Some(d), Some(a)) => has_documented_fields(d, a, &format!("{path}[0]")),
            (Some(_), None) => vec![format!("{path}[0]")],
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

#[test]
fn a_master_pulls_the_slaves_it_is_configured_with_as_seed_003s_master_does() {
    // A FlowLine slave that takes 300 ms to answer, and a gantry daemon on another loopback
    // address, pulled with its local token; and the same daemon listed again without one.
    let flowline = FlowlineSlave::start(Duration::from_millis(300));
    let a = Gantry::new();
    let mut agent = a.serve_at(FAST, "127.0.0.2:0", &["--simulate", "2xA100"]);
    let agent_port = agent.url.rsplit(':').next().expect("port").to_string();
    let agent_token = agent.token.clone().expect("local token");
    let m = Gantry::new();
    // The seed's own keys: `slaves` with `name` and `ip`, `slave_port`, `refresh_interval`. An
    // hour between pulls: every pull after the first below is a refresh's.
    let config = format!(
        "{FAST}[federation]\nrefresh_interval = 3600\noffline_after_s = 3600\nslave_port = {}\n\
         [[federation.slaves]]\nname = \"GPU server 1\"\nip = \"127.0.0.1\"\n\
         [[federation.slaves]]\nname = \"gantry-1\"\nip = \"127.0.0.2\"\nport = {agent_port}\ntoken = \"{agent_token}\"\n\
         [[federation.slaves]]\nname = \"no-token\"\nip = \"127.0.0.2\"\nport = {agent_port}\n",
        flowline.port
    );
    let master = m.serve(&config, &["--simulate", "1"]);

    // The first pull, at start.
    for name in ["GPU server 1", "gantry-1"] {
        let seen = wait_node(&master, &name.replace(' ', "%20"), Duration::from_secs(10), |n| n["status"] == "online");
        assert_eq!((seen["via"].as_str(), seen["error"].as_str()), (Some("pull"), None), "{seen:#}");
    }
    assert_eq!(flowline.pulls(), 1, "one pull at start, none since");
    let refused = node(&master, "no-token");
    assert!(refused["error"].as_str().is_some_and(|e| e.contains("answered 401") && e.contains("token")), "{refused:#}");
    assert_eq!(refused["status"], "offline", "{refused:#}");

    // Seed 003's master view: the FlowLine slave's entry has every field of the seed's example,
    // with the same values; gantry's own slave is listed by its address.
    let slaves = master.get("/api/slaves");
    assert_eq!(slaves["count"], 3, "{slaves:#}");
    let documented: Value = serde_json::from_str(SEED_003_INFO).expect("the seed's example");
    let entry = master.get("/api/slaves/127.0.0.1");
    let missing = has_documented_fields(&documented, &entry, "");
    assert!(missing.is_empty(), "missing {missing:?} in {entry:#}");
    assert_eq!((entry["name"].as_str(), entry["online"].as_bool(), entry["via"].as_str(), entry["jobs"].is_null()), (Some("GPU server 1"), Some(true), Some("pull"), true), "{entry:#}");
    for field in ["/timestamp", "/system/memory", "/system/swap", "/system/cpu_cores", "/gpus/0/memory", "/gpus/0/power", "/gpus/0/name", "/gpus/0/utilization", "/gpus/0/temperature"] {
        assert_eq!(entry.pointer(field), documented.pointer(field), "{field} in {entry:#}");
    }
    assert_eq!((entry["gpus"][0]["processes"][0]["pid"].as_u64(), entry["gpus"][0]["processes"][0]["used_memory_mib"].as_u64()), (Some(4242), Some(8000)), "{entry:#}");
    let gpus = master.get("/api/v1/nodes/gantry-1/gpus");
    assert_eq!(gpus.as_array().map(Vec::len), Some(2), "{gpus:#}");
    let ours = master.get("/api/slaves/127.0.0.2");
    assert_eq!((ours["name"].as_str(), ours["gpus"].as_array().map(Vec::len)), (Some("gantry-1"), Some(2)), "{ours:#}");

    // A job starts on the slave; a refresh pulls it at once (the next pull is an hour away).
    let id = agent.submit(json!({ "commands": ["sleep 60"], "memory_mib": 3000 }))[0];
    agent.wait_job(id, Duration::from_secs(20), |j| j["state"] == "running");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (code, _, now) = master.call("POST", "/api/slaves/127.0.0.2/refresh", &[], None, None);
        assert_eq!(code, 200, "{now}");
        let on_gpu = now["gpus"].as_array().is_some_and(|gpus| gpus.iter().any(|g| g["processes"].as_array().is_some_and(|p| p.iter().any(|p| p["job"] == id))));
        if on_gpu {
            break;
        }
        assert!(Instant::now() < deadline, "the job's process never showed in a refresh: {now:#}");
        std::thread::sleep(Duration::from_millis(200));
    }

    // `POST /api/refresh` pulls each slave once; 20 refreshes at once of the slow slave share
    // one or two pulls rather than making 20.
    let before = flowline.pulls();
    let (code, _, all) = master.call("POST", "/api/refresh", &[], None, None);
    assert_eq!((code, all["count"].as_u64()), (200, Some(3)), "{all}");
    assert_eq!(flowline.pulls(), before + 1);
    let before = flowline.pulls();
    let refreshes: Vec<_> = (0..20)
        .map(|_| {
            let (url, token) = (master.url.clone(), master.token.clone().expect("token"));
            std::thread::spawn(move || ureq::post(&format!("{url}/api/slaves/127.0.0.1/refresh")).set("Authorization", &format!("Bearer {token}")).call().map(|r| r.status()).unwrap_or(0))
        })
        .collect();
    let codes: Vec<u16> = refreshes.into_iter().map(|t| t.join().expect("refresh")).collect();
    assert!(codes.iter().all(|c| *c == 200), "{codes:?}");
    let made = flowline.pulls() - before;
    assert!((1..=2).contains(&made), "20 refreshes at once made {made} pulls");

    // The slave goes away: a refresh says why, and the last report stays to age.
    agent.request("POST", &format!("/api/v1/jobs/{id}/cancel"), None);
    agent.crash();
    let (code, _, gone) = master.call("POST", "/api/slaves/127.0.0.2/refresh", &[], None, None);
    assert_eq!(code, 200, "{gone}");
    assert!(gone["error"].as_str().is_some_and(|e| e.contains("127.0.0.2")) && gone["gpus"].as_array().map(Vec::len) == Some(2), "{gone:#}");
    let out = m.command().args(["--server", &master.url, "--token", master.token.as_deref().expect("token"), "nodes"]).output().expect("gantry nodes");
    let said = crate::stdout(&out);
    assert!(out.status.success() && said.contains("GPU server 1") && said.contains("pulled") && said.contains("last pull failed") && said.contains("RTX 3090"), "{said}{}", crate::stderr(&out));
    // A pulled slave is not issued: it can't push, nor be revoked as an issued node.
    assert_eq!(master.request("DELETE", "/api/v1/nodes/gantry-1", None).0, 404);
    let (code, _) = master.request("POST", "/api/v1/nodes", Some(json!({ "name": "gantry-1" })));
    assert_eq!(code, 409);
}

#[test]
fn masters_agents_and_slaves_speak_https_trusting_the_labs_ca() {
    let lab = crate::lab_ca::LabCa::new();
    // A slave served over HTTPS, which the master pulls by URL.
    let s = Gantry::new();
    let slave = s.serve(&format!("{FAST}{}", lab.server_section()), &["--simulate", "2xA100"]).trusting(&lab.ca);
    assert!(slave.url.starts_with("https://127.0.0.1:"), "{}", slave.url);
    let m = Gantry::new();
    let config = format!(
        "{FAST}{}[federation]\noffline_after_s = 3\nca_cert = \"{}\"\n[[federation.slaves]]\nname = \"s1\"\nurl = \"{}\"\ntoken = \"{}\"\n",
        lab.server_section(),
        lab.ca.display(),
        slave.url,
        slave.token.as_deref().expect("local token")
    );
    let master = m.serve(&config, &["--simulate", "1"]).trusting(&lab.ca);
    // Plain HTTP to the TLS port is not answered.
    let plain = master.url.replacen("https://", "http://", 1);
    assert!(ureq::get(&format!("{plain}/api/v1/health")).call().is_err(), "plain HTTP answered on the TLS port");

    // An agent that trusts the lab's CA reports; one that trusts only the public CAs never gets
    // past the handshake, and says why.
    let (t1, t2) = (issue(&master, "a1"), issue(&master, "a2"));
    let (a1, a2) = (Gantry::new(), Gantry::new());
    let _agent1 = a1.serve(&format!("{}ca_cert = \"{}\"\n", agent_config(&master, "a1", &t1), lab.ca.display()), &["--simulate", "1"]);
    let _agent2 = a2.serve(&agent_config(&master, "a2", &t2), &["--simulate", "1"]);
    let seen = wait_node(&master, "a1", Duration::from_secs(10), |n| n["status"] == "online");
    assert!(seen["report"]["url"].as_str().is_some_and(|u| u.starts_with("http://127.0.0.1:")), "{seen:#}");
    let pulled = wait_node(&master, "s1", Duration::from_secs(10), |n| n["status"] == "online");
    assert_eq!((pulled["via"].as_str(), pulled["report"]["node"]["gpus"].as_array().map(Vec::len)), (Some("pull"), Some(2)), "{pulled:#}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !a2.daemon_log().contains("certificate") {
        assert!(Instant::now() < deadline, "the untrusting agent's log: {}", a2.daemon_log());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(node(&master, "a2")["report"].is_null(), "a report came through an untrusted handshake");

    // The CLI reaches the master with the lab's CA, and without it is refused.
    let token = master.token.clone().expect("local token");
    let ca = lab.ca.display().to_string();
    let out = m.command().args(["--server", &master.url, "--token", &token, "--ca-cert", &ca, "nodes"]).output().expect("gantry nodes");
    assert!(out.status.success() && crate::stdout(&out).contains("a1"), "{}{}", crate::stdout(&out), crate::stderr(&out));
    let out = m.command().args(["--server", &master.url, "--token", &token, "nodes"]).output().expect("gantry nodes");
    assert!(!out.status.success() && crate::stderr(&out).contains("certificate"), "{}", crate::stderr(&out));

    // A browser's session cookie over HTTPS is never sent in clear.
    let (code, cookie, _) = master.call("POST", "/api/auth/login", &[("Authorization", "")], Some(json!({ "password": token })), None);
    assert_eq!(code, 200);
    assert!(cookie.as_deref().is_some_and(|c| c.contains("HttpOnly") && c.ends_with("; Secure")), "{cookie:?}");
}

/// Two network namespaces joined by a veth pair, with addresses that exist only inside them
/// (10.77.0.1 for a master, 10.77.0.2 for an agent); removed on drop. Needs root and iproute2.
struct Link {
    master_ns: String,
    agent_ns: String,
    agent_if: String,
}

impl Link {
    fn new() -> Link {
        // SAFETY: geteuid has no failure and touches no memory.
        assert_eq!(unsafe { libc::geteuid() }, 0, "the partition test makes network namespaces (ip netns), which needs root: run it as root, as CI does");
        let id = std::process::id();
        let link = Link { master_ns: format!("gantry-m{id}"), agent_ns: format!("gantry-a{id}"), agent_if: format!("gva{id}") };
        let master_if = format!("gvm{id}");
        for args in [
            vec!["netns", "add", &link.master_ns],
            vec!["netns", "add", &link.agent_ns],
            vec!["link", "add", &master_if, "type", "veth", "peer", "name", &link.agent_if],
            vec!["link", "set", &master_if, "netns", &link.master_ns],
            vec!["link", "set", &link.agent_if, "netns", &link.agent_ns],
            vec!["-n", &link.master_ns, "addr", "add", "10.77.0.1/30", "dev", &master_if],
            vec!["-n", &link.agent_ns, "addr", "add", "10.77.0.2/30", "dev", &link.agent_if],
            vec!["-n", &link.master_ns, "link", "set", "lo", "up"],
            vec!["-n", &link.agent_ns, "link", "set", "lo", "up"],
            vec!["-n", &link.master_ns, "link", "set", &master_if, "up"],
            vec!["-n", &link.agent_ns, "link", "set", &link.agent_if, "up"],
        ] {
            ip(&args);
        }
        link
    }

    /// The agent's side of the link goes down, or comes back.
    fn set_agent_link(&self, up: bool) {
        ip(&["-n", &self.agent_ns, "link", "set", &self.agent_if, if up { "up" } else { "down" }]);
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        for ns in [&self.master_ns, &self.agent_ns] {
            let _ = std::process::Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

fn ip(args: &[&str]) {
    let out = std::process::Command::new("ip").args(args).output().unwrap_or_else(|e| panic!("ip: {e}; install iproute2 (apt-get install -y iproute2, as tests/deps.sh does)"));
    assert!(out.status.success(), "ip {}: {}", args.join(" "), crate::stderr(&out));
}

/// A daemon serving inside a network namespace; the test reaches it over its Unix socket.
struct Namespaced<'a> {
    gantry: &'a Gantry,
    child: std::process::Child,
}

impl<'a> Namespaced<'a> {
    fn serve(gantry: &'a Gantry, ns: &str, config: &str, listen: &str, gpus: &str) -> Namespaced<'a> {
        let path = gantry.state.path().join("gantry.toml");
        std::fs::write(&path, config).expect("write config");
        let log = std::fs::File::create(gantry.state.path().join("daemon.log")).expect("daemon log");
        let command = gantry.command();
        let child = std::process::Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(command.get_program())
            .envs(command.get_envs().filter_map(|(k, v)| Some((k, v?))))
            .arg("--config")
            .arg(&path)
            .args(["serve", "--listen", listen, "--simulate", gpus])
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("ip netns exec gantry serve");
        gantry.daemon_url();
        Namespaced { gantry, child }
    }

    /// `gantry api METHOD PATH [-d BODY]` over the daemon's socket, as JSON.
    fn api(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let socket = self.gantry.state.path().join("gantry.sock");
        let mut command = self.gantry.command();
        command.arg("--socket").arg(&socket).args(["api", method, path]);
        if let Some(body) = body {
            command.args(["-d", &body.to_string()]);
        }
        let out = command.output().expect("gantry api");
        assert!(out.status.success(), "{method} {path}: {}{}", crate::stderr(&out), self.gantry.daemon_log());
        serde_json::from_str(&crate::stdout(&out)).unwrap_or_else(|e| panic!("{method} {path}: {e}: {}", crate::stdout(&out)))
    }

    fn wait(&self, path: &str, limit: Duration, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let seen = self.api("GET", path, None);
            if check(&seen) {
                return seen;
            }
            assert!(Instant::now() < deadline, "{path} after {limit:?}: {seen:#}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Namespaced<'_> {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        crate::kill_leftovers(self.gantry.state.path());
    }
}

#[test]
fn a_partitioned_agent_keeps_its_jobs_and_the_master_sees_it_again_when_the_link_returns() {
    let link = Link::new();
    // The namespaces' addresses are reached by nothing but this test.
    let open = "[auth]\nallow_open_network = true\n";
    let (m, a) = (Gantry::new(), Gantry::new());
    let master = Namespaced::serve(&m, &link.master_ns, &format!("{FAST}{open}[federation]\noffline_after_s = 3\n"), "10.77.0.1:7070", "1");
    let token = master.api("POST", "/api/v1/nodes", Some(json!({ "name": "a1" })))["token"].as_str().expect("token").to_string();
    let agent_config = format!("{FAST}{open}[federation]\nmaster = \"http://10.77.0.1:7070\"\nnode_name = \"a1\"\ntoken = \"{token}\"\nreport_interval_s = 0.5\n");
    let agent = Namespaced::serve(&a, &link.agent_ns, &agent_config, "10.77.0.2:7070", "2");

    let first = agent.api("POST", "/api/v1/jobs", Some(json!({ "commands": ["sleep 120"] })))["ids"][0].as_u64().expect("job id");
    let seen = master.wait("/api/v1/nodes/a1", Duration::from_secs(15), |n| n["status"] == "online" && n["report"]["jobs"]["running"] == 1);
    assert_eq!(seen["address"], "10.77.0.2", "{seen:#}");

    // The link goes: the master tells stale, then offline; the agent runs its job and starts
    // another, on its own.
    link.set_agent_link(false);
    master.wait("/api/v1/nodes/a1", Duration::from_secs(5), |n| n["status"] == "stale");
    master.wait("/api/v1/nodes/a1", Duration::from_secs(8), |n| n["status"] == "offline");
    let second = agent.api("POST", "/api/v1/jobs", Some(json!({ "commands": ["sleep 120"] })))["ids"][0].as_u64().expect("job id");
    agent.wait(&format!("/api/v1/jobs/{second}"), Duration::from_secs(20), |j| j["state"] == "running");
    assert_eq!(agent.api("GET", &format!("/api/v1/jobs/{first}"), None)["state"], "running", "the partition touched a local job");
    // A report under way when the link went rides a pooled connection and fails at its 5 s
    // timeout.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !a.daemon_log().contains("a report to the federation master failed") {
        assert!(Instant::now() < deadline, "the agent never said its reports fail: {}", a.daemon_log());
        std::thread::sleep(Duration::from_millis(100));
    }

    // Back: the master's view is whole again with the agent's next report — both jobs.
    link.set_agent_link(true);
    let back = master.wait("/api/v1/nodes/a1", Duration::from_secs(15), |n| n["status"] == "online" && n["report"]["jobs"]["running"] == 2);
    let running: Vec<u64> = back["report"]["running"].as_array().expect("running").iter().filter_map(|j| j["id"].as_u64()).collect();
    assert_eq!(running.len(), 2, "{back:#}");
    assert!(running.contains(&first) && running.contains(&second), "{running:?}");
    assert!(a.daemon_log().contains("reports reach the federation master again"), "{}", a.daemon_log());
    for id in [first, second] {
        agent.api("POST", &format!("/api/v1/jobs/{id}/cancel"), None);
    }
}
