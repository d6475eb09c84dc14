//! An API fuzzer nobody here wrote, against a real daemon in each auth mode: schemathesis (from
//! PyPI, installed into the test build directory) reads `/api/openapi.json`, makes requests from
//! it (examples, boundary values, random data, and chains that follow the document's links) and
//! checks every answer: no 5xx, only documented status codes and content types, bodies that match
//! the documented schemas. Left out: `POST /api/v1/shutdown` (it would end the daemon under test
//! midway; its own tests are in `daemon.rs`) and `GET /api/v1/events` (an endless event stream: a
//! fuzzer reads an answer to its end; `api.rs` tests the stream).

use crate::{stderr, stdout, Gantry, FAST};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

const SCHEMATHESIS: &str = "schemathesis==4.32.5";

/// The schemathesis program, installed once into the test target dir from PyPI.
fn schemathesis() -> &'static (PathBuf, PathBuf) {
    static DEPS: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    DEPS.get_or_init(|| {
        let deps = super::pip_install(SCHEMATHESIS, "pydeps-schemathesis");
        let program = deps.join("bin").join("schemathesis");
        (deps, program)
    })
}

/// Secret mode's sessions end with a logout, which the fuzzer calls too: it logs in for every
/// request, as a client whose session ended would.
const SECRET_LOGIN: &str = r#"
import os, requests, schemathesis

@schemathesis.auth(refresh_interval=None)
class SecretLogin:
    def get(self, case, ctx):
        answer = requests.post(os.environ["GANTRY_URL"] + "/api/auth/login", json={"password": os.environ["GANTRY_SECRET"]}, timeout=30)
        return answer.json()["token"]

    def set(self, case, data, ctx):
        case.headers = case.headers or {}
        case.headers["Authorization"] = "Bearer " + data
"#;

/// What schemathesis counted in a run without failures: operations tested, test cases.
#[derive(Debug)]
struct Counts {
    /// Tested, of `selected` of the document's `total`.
    operations: u64,
    selected: u64,
    total: u64,
    cases: u64,
}

/// Runs schemathesis against the daemon at `url` with `headers`, or with `hooks` (a Python
/// module's source) giving the credentials; fails the test on any failure it reports.
fn fuzz(g: &Gantry, url: &str, headers: &[String], hooks: Option<&str>, env: &[(&str, &str)]) -> Counts {
    let (deps, program) = schemathesis();
    let mut cmd = Command::new("python3");
    cmd.arg(program)
        .arg("run")
        .arg(format!("{url}/api/openapi.json"))
        .args(["--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"])
        .args(LEFT_OUT.iter().flat_map(|path| ["--exclude-path", path]))
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        .args(["--max-examples", "25", "--seed", "14", "--request-timeout", "40", "--workers", "1"])
        .args(["--generation-database", "none", "--no-color"])
        .env("PYTHONPATH", deps)
        .env("GANTRY_URL", url)
        .current_dir(g.state.path());
    for header in headers {
        cmd.args(["-H", header]);
    }
    if let Some(source) = hooks {
        std::fs::write(g.state.path().join("gantry_fuzz_hooks.py"), source).expect("hooks");
        cmd.env("SCHEMATHESIS_HOOKS", "gantry_fuzz_hooks").env("PYTHONPATH", format!("{}:{}", deps.display(), g.state.path().display()));
    }
    for (name, value) in env {
        cmd.env(name, value);
    }
    let out = cmd.output().expect("schemathesis runs");
    let said = stdout(&out);
    let summary = said.rsplit("SUMMARY").next().unwrap_or_default();
    // Its report of a failure starts at FAILURES (ERRORS for its own); what comes before is
    // progress.
    let report = said.find("=== ERRORS").or_else(|| said.find("=== FAILURES")).map_or(summary, |at| &said[at..]);
    assert!(out.status.success(), "schemathesis found failures:\n{report}\n{}", stderr(&out));
    let number_after = |label: &str| summary.split(label).nth(1).and_then(|rest| rest.split_whitespace().next()).and_then(|n| n.split('/').next()?.parse::<u64>().ok());
    let selected = summary.split("Selected:").nth(1).and_then(|rest| rest.split_whitespace().next()).and_then(|n| n.split_once('/')).and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)));
    let (selected, total) = selected.unwrap_or_else(|| panic!("no selected/total count in\n{summary}"));
    let counts = Counts {
        operations: number_after("Tested:").unwrap_or_else(|| panic!("no operation count in\n{summary}")),
        selected,
        total,
        cases: summary.lines().find_map(|l| l.trim().strip_suffix("passed").and_then(|l| l.split_whitespace().next()?.parse().ok())).or_else(|| summary.lines().find_map(|l| l.split(" generated").next()?.trim().parse().ok())).unwrap_or_else(|| panic!("no case count in\n{summary}")),
    };
    println!("schemathesis: {counts:?}");
    counts
}

/// The routes the fuzzer leaves out: the daemon's end, and an endless stream.
const LEFT_OUT: [&str; 2] = ["/api/v1/shutdown", "/api/v1/events"];

/// Every operation the fuzzer selected was tested, and it selected all but those left out
/// (by its own count of the document's operations).
fn assert_every_route_tested(counts: &Counts) {
    assert_eq!(counts.operations, counts.selected, "selected but not tested: {counts:?}");
    assert_eq!(counts.selected + LEFT_OUT.len() as u64, counts.total, "left out more than {LEFT_OUT:?}: {counts:?}");
}

#[test]
fn schemathesis_finds_nothing_in_mode_none() {
    let g = Gantry::new();
    let d = g.serve(FAST, &["--simulate", "2"]);
    let token = d.token.clone().expect("mode none has a local token");
    let counts = fuzz(&g, &d.url, &[format!("Authorization: Bearer {token}")], None, &[]);
    assert_every_route_tested(&counts);
    assert!(counts.cases > 1000, "{counts:?}");
}

#[test]
fn schemathesis_finds_nothing_in_mode_secret() {
    let g = Gantry::new();
    let d = g.serve(&format!("{FAST}[auth]\nsecret = \"s3cret\"\nlogin_attempts_per_minute = 100000\n"), &["--simulate", "2"]);
    let counts = fuzz(&g, &d.url, &[], Some(SECRET_LOGIN), &[("GANTRY_SECRET", "s3cret")]);
    assert_every_route_tested(&counts);
    assert!(counts.cases > 1000, "{counts:?}");
}

#[test]
fn schemathesis_finds_nothing_in_mode_users() {
    let g = Gantry::new();
    let d = g.serve(&format!("{FAST}[auth]\nmode = \"users\"\nallow_register = true\naccounts_may_submit = true\n"), &["--simulate", "2"]);
    let _ = g.add_account(None, "admin@lab.org", "admin");
    // An API token: a logout (which the fuzzer calls) ends sessions, not the tokens of scripts.
    let (code, _, tokens) = d.call("POST", "/auth/jwt/login", &[], None, Some(&[("username", "admin@lab.org"), ("password", "correct horse")]));
    assert_eq!(code, 200, "{tokens}");
    let access = format!("Bearer {}", tokens["access_token"].as_str().expect("access token"));
    let (code, _, token) = d.call("POST", "/api/v1/tokens", &[("Authorization", &access)], Some(serde_json::json!({ "name": "fuzzer" })), None);
    assert_eq!(code, 201, "{token}");
    let token = token["token"].as_str().expect("token").to_string();
    let counts = fuzz(&g, &d.url, &[format!("Authorization: Bearer {token}")], None, &[]);
    assert_every_route_tested(&counts);
    assert!(counts.cases > 1000, "{counts:?}");
}
