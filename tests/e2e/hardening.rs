//! What a browser elsewhere, or a flood of unauthenticated requests, can do to a daemon: DNS
//! rebinding, concurrent password guesses, a flood of registrations (issue 14, in part).

use crate::{Gantry, FAST};
use serde_json::json;

#[test]
fn a_rebound_host_name_reaches_nothing_and_the_servers_own_names_do() {
    let g = Gantry::new();
    let d = g.serve(&format!("{FAST}[server]\nallowed_hosts = [\"gpu1.lab.example\"]\n"), &["--simulate", "1"]);
    let port = d.url.rsplit(':').next().expect("port").to_string();
    // A page of attacker.example whose name now resolves to 127.0.0.1 sends its own Host; it
    // can carry no token, but even one that could is refused.
    for method in ["GET", "POST"] {
        let (code, _, body) = d.call(method, "/api/v1/jobs", &[("Host", &format!("attacker.example:{port}"))], (method == "POST").then(|| json!({ "commands": ["true"] })), None);
        assert_eq!((code, body["error"].as_str()), (421, Some("host")), "{method}: {body}");
    }
    assert_eq!(d.call("GET", "/api/v1/health", &[("Host", "attacker.example")], None, None).0, 421);
    assert_eq!(d.get("/api/v1/jobs")["total"], 0, "nothing was submitted");
    for host in [format!("127.0.0.1:{port}"), format!("localhost:{port}"), format!("gpu1.lab.example:{port}")] {
        assert_eq!(d.call("GET", "/api/v1/health", &[("Host", &host)], None, None).0, 200, "{host}");
    }
}

#[test]
fn concurrent_wrong_logins_get_no_more_checks_than_the_limit() {
    let g = Gantry::new();
    let d = g.serve(&format!("{FAST}[auth]\nsecret = \"s3cret\"\nlogin_attempts_per_minute = 5\n"), &["--simulate", "1"]);
    let d = std::sync::Arc::new(d);
    let guesses: Vec<_> = (0..60)
        .map(|i| {
            let d = d.clone();
            std::thread::spawn(move || d.call("POST", "/api/auth/login", &[], Some(json!({ "password": format!("guess {i}") })), None).0)
        })
        .collect();
    let codes: Vec<u16> = guesses.into_iter().map(|t| t.join().expect("thread")).collect();
    let checked = codes.iter().filter(|&&c| c == 401).count();
    let refused = codes.iter().filter(|&&c| c == 429).count();
    assert_eq!((checked, refused), (5, 55), "{codes:?}");
    // The address waits now, even with the right secret.
    assert_eq!(d.call("POST", "/api/auth/login", &[], Some(json!({ "password": "s3cret" })), None).0, 429);
}

fn daemon_pid(g: &Gantry) -> u64 {
    let info: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(g.state.path().join("daemon.json")).expect("daemon.json")).expect("json");
    info["pid"].as_u64().expect("pid")
}

/// The daemon's peak resident memory so far (`VmHWM`), in MiB.
fn peak_mib(g: &Gantry) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", daemon_pid(g))).expect("status");
    let kib: u64 = status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()).expect("VmHWM");
    kib / 1024
}

#[test]
fn a_flood_of_registrations_hashes_a_few_at_a_time() {
    let g = Gantry::new();
    let d = std::sync::Arc::new(g.serve(&format!("{FAST}[auth]\nmode = \"users\"\nallow_register = true\n"), &["--simulate", "1"]));
    // An account exists before the flood.
    assert_eq!(d.call("POST", "/auth/register", &[], Some(json!({ "email": "first@lab.org", "password": "correct horse" })), None).0, 201);
    let before = peak_mib(&g);
    // argon2 takes 19 MiB per hash: 40 at once would be ~760 MiB; a core's worth at a time is
    // tens of MiB.
    let flood: Vec<_> = (0..40)
        .map(|i| {
            let d = d.clone();
            std::thread::spawn(move || d.call("POST", "/auth/register", &[], Some(json!({ "email": format!("u{i}@lab.org"), "password": "correct horse" })), None).0)
        })
        .collect();
    let codes: Vec<u16> = flood.into_iter().map(|t| t.join().expect("thread")).collect();
    assert!(codes.iter().all(|&c| c == 201), "{codes:?}");
    let grew = peak_mib(&g).saturating_sub(before);
    assert!(grew < 250, "the daemon's peak memory grew by {grew} MiB for 40 concurrent registrations");
}

#[test]
fn a_logout_or_a_new_password_ends_the_sessions_before_it() {
    // Secret mode: one identity, so a logout ends its every session, also across a restart.
    let g = Gantry::new();
    let config = format!("{FAST}[auth]\nsecret = \"s3cret\"\n");
    let d = g.serve(&config, &["--simulate", "1"]);
    let login = |d: &crate::Daemon| {
        let (code, _, body) = d.call("POST", "/api/auth/login", &[], Some(json!({ "password": "s3cret" })), None);
        assert_eq!(code, 200, "{body}");
        format!("Bearer {}", body["token"].as_str().expect("token"))
    };
    let (old, other) = (login(&d), login(&d));
    let submit = |d: &crate::Daemon, token: &str| d.call("POST", "/api/v1/jobs", &[("Authorization", token)], Some(json!({ "commands": ["true"], "hold": true })), None).0;
    assert_eq!(submit(&d, &old), 201);
    assert_eq!(d.call("POST", "/api/auth/logout", &[("Authorization", &old)], None, None).0, 204);
    assert_eq!((submit(&d, &old), submit(&d, &other)), (401, 401), "the tokens of before the logout still submit");
    let new = login(&d);
    assert_eq!(submit(&d, &new), 201);
    drop(d);
    let d = g.serve(&config, &["--simulate", "1"]);
    assert_eq!((submit(&d, &old), submit(&d, &new)), (401, 201), "a restart brought a signed-out session back");

    // Users mode: a new password ends the old access token, session and refresh token.
    let g = Gantry::new();
    let d = g.serve(&format!("{FAST}[auth]\nmode = \"users\"\naccounts_may_submit = true\n"), &["--simulate", "1"]);
    let _ = g.add_account(None, "ada@lab.org", "user");
    let jwt = |password: &str| d.call("POST", "/auth/jwt/login", &[], None, Some(&[("username", "ada@lab.org"), ("password", password)]));
    let (_, _, tokens) = jwt("correct horse");
    let access = format!("Bearer {}", tokens["access_token"].as_str().expect("access"));
    let refresh = tokens["refresh_token"].as_str().expect("refresh").to_string();
    assert_eq!(d.call("GET", "/api/v1/node", &[("Authorization", &access)], None, None).0, 200);
    assert_eq!(d.call("PATCH", "/auth/users/me", &[("Authorization", &access)], Some(json!({ "password": "battery staple" })), None).0, 200);
    assert_eq!(d.call("GET", "/api/v1/node", &[("Authorization", &access)], None, None).0, 401);
    assert_eq!(d.call("POST", "/auth/jwt/refresh", &[], Some(json!({ "refresh_token": refresh })), None).0, 401);
    let (code, _, tokens) = jwt("battery staple");
    assert_eq!(code, 200, "{tokens}");
    let access = format!("Bearer {}", tokens["access_token"].as_str().expect("access"));
    assert_eq!(d.call("POST", "/auth/jwt/logout", &[("Authorization", &access)], None, None).0, 204);
    assert_eq!(d.call("GET", "/api/v1/node", &[("Authorization", &access)], None, None).0, 401, "a token outlived its logout");
}

#[test]
fn metrics_keep_a_bounded_number_of_queue_series() {
    let g = Gantry::new();
    let d = g.serve(FAST, &["--simulate", "1"]);
    // 150 held jobs without a queue: 150 queues of their own, and one of 3.
    let mut jobs: Vec<serde_json::Value> = (0..150).map(|_| json!({ "commands": ["true"], "hold": true })).collect();
    jobs.extend((0..3).map(|_| json!({ "commands": ["true"], "hold": true, "queue": "deep" })));
    d.submit(json!({ "jobs": jobs }));
    let text = d.get_text("/metrics");
    let series: Vec<&str> = text.lines().filter(|l| l.starts_with("gantry_queue_depth{")).collect();
    assert_eq!(series.len(), 101, "{series:?}");
    assert!(series.contains(&"gantry_queue_depth{queue=\"deep\"} 3"), "the deepest queue has its own series: {series:?}");
    assert!(series.contains(&"gantry_queue_depth{queue=\"(others)\"} 51"), "{series:?}");
}

#[test]
fn half_sent_requests_are_cut_off_and_do_not_crowd_out_others() {
    use std::io::{Read, Write};
    let g = Gantry::new();
    let d = g.serve(&format!("{FAST}[server]\nmax_connections = 48\nheader_timeout_s = 1\n"), &["--simulate", "1"]);
    // Few file descriptors, as on a host with a low limit: accepting every connection would
    // run out of them, and then nothing could be answered.
    let limited = std::process::Command::new("prlimit").arg("--pid").arg(daemon_pid(&g).to_string()).arg("--nofile=128:128").status().expect("prlimit (util-linux) is needed: apt-get install -y util-linux");
    assert!(limited.success());
    let addr = d.url.trim_start_matches("http://").to_string();
    let slow: Vec<std::net::TcpStream> = (0..200)
        .map(|_| {
            let mut stream = std::net::TcpStream::connect(&addr).expect("connect");
            stream.write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n").expect("half a request");
            stream
        })
        .collect();
    let (code, _, health) = d.call("GET", "/api/v1/health", &[], None, None);
    assert_eq!((code, health["status"].as_str()), (200, Some("ok")), "{health}");
    // The half-sent requests were closed by the daemon, not left to hold a connection.
    let mut first = slow.into_iter().next().expect("a slow connection");
    first.set_read_timeout(Some(std::time::Duration::from_secs(20))).expect("timeout");
    let mut rest = Vec::new();
    let read = first.read_to_end(&mut rest);
    assert!(read.is_ok() || read.as_ref().is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset), "the connection stayed open: {read:?}");
}

#[test]
fn input_that_would_fail_later_is_refused_at_submit_naming_the_field() {
    let g = Gantry::new();
    let d = g.serve(FAST, &["--simulate", "2xA100"]);
    let refused = |body: serde_json::Value, field: &str| {
        let (code, answer) = d.request("POST", "/api/v1/jobs", Some(body));
        assert!(matches!(code, 413 | 422), "{code} {answer}");
        assert!(answer["error"].is_string() && answer["detail"].to_string().contains(field), "{field}: {answer}");
    };
    refused(json!({ "commands": ["echo a\u{0}b"] }), "commands");
    refused(json!({ "commands": ["x".repeat(200 * 1024)] }), "commands");
    refused(json!({ "commands": ["true"], "env": { "BIG": "x".repeat(300 * 1024) } }), "env");
    refused(json!({ "commands": ["true"], "gpus": { "min": 4294967295u64, "max": 4294967295u64 } }), "gpus");
    refused(json!({ "commands": ["true"], "gpus": { "min": 3, "max": 3 } }), "gpus: needs 3 GPUs; this node has 2");
    refused(json!({ "commands": ["true"], "memory_mib": u64::MAX }), "memory_mib");
    refused(json!({ "commands": ["true"], "memory_mib": 200_000 }), "memory_mib: needs 200000 MiB on each GPU");
    refused(json!({ "commands": ["true"], "start_at_ms": u64::MAX }), "start_at_ms");
    refused(json!({ "commands": ["true"], "gpu": 1 }), "unknown field `gpu`");
    refused(json!({ "jobs": [{ "commands": ["true"] }], "priority": 1 }), "unknown field `priority`");
    refused(json!({ "jobs": [{ "commands": ["true"] }, { "commands": ["true"], "memroy_mib": 1 }] }), "jobs[1]");
    assert_eq!(d.get("/api/v1/jobs")["total"], 0, "nothing was accepted");
    // A page has a maximum; asking for more says so.
    let (code, answer) = d.request("GET", "/api/v1/jobs?limit=5000", None);
    assert_eq!((code, answer["error"].as_str()), (400, Some("query")), "{answer}");
}

#[test]
fn a_command_file_that_is_a_device_a_fifo_or_huge_is_refused_at_once() {
    let g = Gantry::new();
    let d = g.serve(FAST, &["--simulate", "1"]);
    let fifo = g.state.path().join("commands.fifo");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo").success());
    let huge = g.state.path().join("huge.txt");
    std::fs::File::create(&huge).and_then(|f| f.set_len(100 << 20)).expect("a 100 MiB file");
    for (file, code, said) in [("/dev/zero".into(), 422, "not a regular file"), (fifo, 422, "not a regular file"), (huge, 413, "at most")] {
        let started = std::time::Instant::now();
        let (got, answer) = d.request("POST", "/api/v1/runs", Some(json!({ "file": file })));
        assert_eq!(got, code, "{}: {answer}", file.display());
        assert!(answer["detail"].to_string().contains(said), "{}: {answer}", file.display());
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "{} took {:?}", file.display(), started.elapsed());
    }
    assert_eq!(d.get("/api/v1/health")["status"], "ok", "the daemon is still there");
}
