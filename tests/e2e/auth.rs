//! Authentication by mode and role: seed 001's secret, seed 002's accounts, the refusal to serve
//! the network without either.

use crate::{stderr, Gantry, FAST};
use serde_json::json;
use std::time::Duration;

#[test]
fn secret_mode_sessions_cookie_csrf_and_login_rate_limit() {
    let g = Gantry::new();
    let d = g.serve(&format!("{FAST}\n[auth]\nsecret = \"s3cret\"\nlogin_attempts_per_minute = 3\n"), &["--simulate", "1xA100"]);
    assert_eq!(d.get("/api/auth/check"), json!({ "requires_auth": true, "mode": "secret" }));
    assert_eq!(d.request("GET", "/api/v1/health", None).0, 200);
    let (code, refused) = d.request("GET", "/api/v1/node", None);
    assert_eq!((code, refused["error"].as_str()), (401, Some("unauthorized")), "{refused}");
    assert_eq!(d.request("GET", "/api/gpu", None).0, 401);

    let (code, _, wrong) = d.call("POST", "/api/auth/login", &[], Some(json!({ "password": "guess" })), None);
    assert_eq!((code, &wrong["success"]), (401, &json!(false)), "{wrong}");
    let (code, cookie, ok) = d.call("POST", "/api/auth/login", &[], Some(json!({ "password": "s3cret" })), None);
    assert_eq!((code, &ok["success"]), (200, &json!(true)), "{ok}");
    let cookie = cookie.expect("a session cookie");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let session = cookie.split(';').next().expect("name=value").to_string();

    // The cookie reads; a change made with it alone is refused (CSRF), with the token or this
    // server's Origin it goes through; a bearer token needs neither.
    assert_eq!(d.call("GET", "/api/v1/node", &[("Cookie", &session)], None, None).0, 200);
    let job = json!({ "commands": ["true"] });
    let (code, _, csrf) = d.call("POST", "/api/v1/jobs", &[("Cookie", &session)], Some(job.clone()), None);
    assert_eq!((code, csrf["error"].as_str()), (403, Some("csrf")), "{csrf}");
    let evil = [("Cookie", session.as_str()), ("Origin", "http://evil.example")];
    assert_eq!(d.call("POST", "/api/v1/jobs", &evil, Some(job.clone()), None).0, 403);
    let token = ok["csrf_token"].as_str().expect("csrf token");
    assert_eq!(d.call("POST", "/api/v1/jobs", &[("Cookie", &session), ("X-CSRF-Token", token)], Some(job.clone()), None).0, 201);
    let host = d.url.trim_start_matches("http://").to_string();
    let origin = format!("http://{host}");
    assert_eq!(d.call("POST", "/api/v1/jobs", &[("Cookie", &session), ("Origin", &origin)], Some(job.clone()), None).0, 201);
    let bearer = format!("Bearer {}", ok["token"].as_str().expect("token"));
    assert_eq!(d.call("POST", "/api/v1/jobs", &[("Authorization", &bearer)], Some(job), None).0, 201);
    assert_eq!(d.call("GET", "/api/v1/node", &[("Authorization", "Bearer forged.token.value")], None, None).0, 401);

    // The CLI says what is missing, and works with the token.
    let out = g.run(&["--server", &d.url, "status"]);
    assert!(!out.status.success() && stderr(&out).contains("needs a login"), "{}", stderr(&out));
    let out = g.run(&["--server", &d.url, "--token", ok["token"].as_str().expect("token"), "status"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // Two more failures use up this address's three; then even the right secret waits.
    for _ in 0..2 {
        assert_eq!(d.call("POST", "/api/auth/login", &[], Some(json!({ "password": "guess" })), None).0, 401);
    }
    let (code, _, limited) = d.call("POST", "/api/auth/login", &[], Some(json!({ "password": "s3cret" })), None);
    assert_eq!((code, limited["error"].as_str()), (429, Some("rate_limited")), "{limited}");
}

#[test]
fn a_generated_secret_is_printed_once() {
    let g = Gantry::new();
    let config = "[auth]\nmode = \"secret\"\n";
    let d = g.serve(config, &["--simulate", "1xA100"]);
    let log = g.daemon_log();
    let line = log.lines().find(|l| l.contains("generated the access secret")).unwrap_or_else(|| panic!("not printed: {log}"));
    let secret = line.split("secret ").nth(1).and_then(|r| r.split_whitespace().next()).expect("the secret").to_string();
    assert_eq!(d.call("POST", "/api/auth/login", &[], Some(json!({ "password": secret })), None).0, 200);
    drop(d);
    let _again = g.serve(config, &["--simulate", "1xA100"]);
    assert_eq!(g.daemon_log().matches("generated the access secret").count(), 1);
}

fn login(d: &crate::Daemon, email: &str) -> String {
    let (code, _, tokens) = d.call("POST", "/auth/jwt/login", &[], None, Some(&[("username", email), ("password", "correct horse")]));
    assert_eq!((code, tokens["token_type"].as_str()), (200, Some("bearer")), "{tokens}");
    format!("Bearer {}", tokens["access_token"].as_str().expect("access token"))
}

#[test]
fn users_mode_roles_ownership_tokens_and_refresh() {
    let g = Gantry::new();
    // Jobs run as the daemon's user here, which the configuration accepts for every account.
    let d = g.serve(&format!("{FAST}\n[auth]\nmode = \"users\"\naccounts_may_submit = true\nallow_register = true\n"), &["--simulate", "1xA100"]);
    let register = |email: &str| d.call("POST", "/auth/register", &[], Some(json!({ "email": email, "password": "correct horse", "first_name": "张", "last_name": "三", "organization": "示例科技有限公司" })), None);
    // The first to register is an ordinary user: the admin is made locally.
    let (code, _, first) = register("first@lab.org");
    assert_eq!((code, first["is_superuser"].as_bool(), first["role"].as_str()), (201, Some(false), Some("user")), "{first}");
    let _ = g.add_account(None, "admin@lab.org", "admin");
    let (code, _, user) = register("demo@example.com");
    assert_eq!((code, user["is_superuser"].as_bool(), user["is_active"].as_bool(), user["is_verified"].as_bool()), (201, Some(false), Some(true), Some(false)), "{user}");
    assert!(user["id"].is_string() && user["organization"] == "示例科技有限公司", "{user}");
    assert_eq!(register("demo@example.com").0, 409);
    let (admin, user) = (login(&d, "admin@lab.org"), login(&d, "demo@example.com"));
    let (code, _, viewer) = d.call("POST", "/api/v1/users", &[("Authorization", &admin)], Some(json!({ "email": "watch@lab.org", "password": "correct horse", "role": "viewer" })), None);
    assert_eq!((code, viewer["role"].as_str()), (201, Some("viewer")), "{viewer}");
    let viewer = login(&d, "watch@lab.org");
    let (code, _, wrong) = d.call("POST", "/auth/jwt/login", &[], None, Some(&[("username", "demo@example.com"), ("password", "wrong horse")]));
    assert_eq!(code, 401, "{wrong}");

    let (_, _, protected) = d.call("GET", "/api/protected-route", &[("Authorization", &user)], None, None);
    assert_eq!(protected, json!({ "message": "这是一个受保护的路由", "user": "demo@example.com" }));
    assert_eq!(d.call("GET", "/api/admin-only", &[("Authorization", &user)], None, None).0, 403);
    assert_eq!(d.call("GET", "/api/admin-only", &[("Authorization", &admin)], None, None).0, 200);

    // Each submits; a job belongs to its submitter, whatever the body says.
    let submit = |who: &str, owner: &str| d.call("POST", "/api/v1/jobs", &[("Authorization", who)], Some(json!({ "commands": ["sleep 300"], "owner": owner, "hold": true })), None);
    let (code, _, mine) = submit(&user, "admin@lab.org");
    assert_eq!(code, 201, "{mine}");
    let mine = mine["ids"][0].as_u64().expect("id");
    let theirs = submit(&admin, "admin@lab.org").2["ids"][0].as_u64().expect("id");
    assert_eq!(d.call("GET", &format!("/api/v1/jobs/{mine}"), &[("Authorization", &user)], None, None).2["spec"]["owner"], "demo@example.com");
    // Everyone sees that the other's job exists (as `squeue` shows), not what it runs.
    let listed = d.call("GET", "/api/v1/jobs", &[("Authorization", &user)], None, None).2;
    let listed = listed["jobs"].as_array().expect("jobs").clone();
    assert_eq!(listed.iter().map(|j| j["id"].as_u64()).collect::<Vec<_>>(), vec![Some(mine), Some(theirs)]);
    assert_eq!((listed[0]["spec"]["commands"][0].as_str(), listed[0].get("redacted")), (Some("sleep 300"), None), "{listed:?}");
    assert_eq!((listed[1]["spec"]["commands"].as_array().map(Vec::len), listed[1]["redacted"].as_bool()), (Some(0), Some(true)), "{listed:?}");
    let one = d.call("GET", &format!("/api/v1/jobs/{theirs}"), &[("Authorization", &user)], None, None).2;
    assert_eq!((one["state"].as_str(), one["redacted"].as_bool(), one["spec"]["owner"].as_str()), (Some("held"), Some(true), Some("admin@lab.org")), "{one}");
    assert_eq!(d.call("GET", "/api/v1/jobs", &[("Authorization", &viewer)], None, None).2["total"], 2);
    assert_eq!(d.call("POST", &format!("/api/v1/jobs/{theirs}/cancel"), &[("Authorization", &user)], None, None).0, 403);
    assert_eq!(d.call("GET", &format!("/api/v1/jobs/{theirs}/log"), &[("Authorization", &user)], None, None).0, 403);
    assert_eq!(d.call("POST", &format!("/api/v1/jobs/{mine}/cancel"), &[("Authorization", &user)], None, None).0, 200);
    assert_eq!(d.call("POST", &format!("/api/v1/jobs/{theirs}/cancel"), &[("Authorization", &admin)], None, None).0, 200);
    assert_eq!(submit(&viewer, "x").0, 403);
    assert_eq!(d.call("PUT", "/api/config", &[("Authorization", &user)], Some(json!({ "max_gpu": 2 })), None).0, 403);
    assert_eq!(d.call("PUT", "/api/config", &[("Authorization", &admin)], Some(json!({ "max_gpu": 2 })), None).0, 200);

    let (code, _, me) = d.call("GET", "/auth/users/me", &[("Authorization", &user)], None, None);
    assert_eq!((code, me["email"].as_str(), me["first_name"].as_str()), (200, Some("demo@example.com"), Some("张")), "{me}");
    assert_eq!(me["usage"]["jobs_submitted"], 1);
    let (_, _, patched) = d.call("PATCH", "/auth/users/me", &[("Authorization", &user)], Some(json!({ "organization": "Lab B" })), None);
    assert_eq!(patched["organization"], "Lab B");

    // An API token for scripts works until it is revoked.
    let (code, _, created) = d.call("POST", "/api/v1/tokens", &[("Authorization", &user)], Some(json!({ "name": "ci" })), None);
    assert_eq!(code, 201, "{created}");
    let script = format!("Bearer {}", created["token"].as_str().expect("token"));
    assert_eq!(d.call("GET", "/api/v1/node", &[("Authorization", &script)], None, None).0, 200);
    let listed = d.call("GET", "/api/v1/tokens", &[("Authorization", &user)], None, None).2;
    assert_eq!(listed[0]["name"], "ci");
    assert!(listed[0].get("token").is_none(), "{listed}");
    assert_eq!(d.call("DELETE", &format!("/api/v1/tokens/{}", created["id"].as_str().expect("id")), &[("Authorization", &user)], None, None).0, 204);
    assert_eq!(d.call("GET", "/api/v1/node", &[("Authorization", &script)], None, None).0, 401);

    // A refresh token buys a new pair once.
    let (_, _, tokens) = d.call("POST", "/auth/jwt/login", &[], None, Some(&[("username", "demo@example.com"), ("password", "correct horse")]));
    let refresh = tokens["refresh_token"].as_str().expect("refresh").to_string();
    let (code, _, renewed) = d.call("POST", "/auth/jwt/refresh", &[], Some(json!({ "refresh_token": refresh })), None);
    assert_eq!(code, 200, "{renewed}");
    let fresh = format!("Bearer {}", renewed["access_token"].as_str().expect("access"));
    assert_eq!(d.call("GET", "/api/v1/node", &[("Authorization", &fresh)], None, None).0, 200);
    assert_eq!(d.call("POST", "/auth/jwt/refresh", &[], Some(json!({ "refresh_token": refresh })), None).0, 401);

    // A deactivated account is out at once, its unexpired token too.
    let id = user_id(&d, &admin, "demo@example.com");
    assert_eq!(d.call("PATCH", &format!("/api/v1/users/{id}"), &[("Authorization", &admin)], Some(json!({ "role": "user", "is_active": false })), None).0, 200);
    assert_eq!(d.call("GET", "/api/v1/node", &[("Authorization", &fresh)], None, None).0, 403);
}

#[test]
fn accounts_run_nothing_as_the_daemons_user_unless_configured() {
    let g = Gantry::new();
    let d = g.serve(&format!("{FAST}\n[auth]\nmode = \"users\"\n"), &["--simulate", "1"]);
    // Registration is closed by default; the daemon's owner makes the accounts.
    let (code, _, closed) = d.call("POST", "/auth/register", &[], Some(json!({ "email": "stranger@example.com", "password": "correct horse" })), None);
    assert_eq!((code, closed["error"].as_str()), (403, Some("forbidden")), "{closed}");
    let _ = g.add_account(None, "admin@lab.org", "admin");
    let _ = g.add_account(None, "demo@example.com", "user");
    let (admin, user) = (login(&d, "admin@lab.org"), login(&d, "demo@example.com"));
    let submit = |who: &str| d.call("POST", "/api/v1/jobs", &[("Authorization", who)], Some(json!({ "commands": ["true"], "hold": true })), None);
    let (code, _, refused) = submit(&user);
    assert_eq!(code, 403, "{refused}");
    assert!(refused["detail"].as_str().is_some_and(|d| d.contains("accounts_may_submit")), "{refused}");
    assert_eq!(submit(&admin).0, 201);
}

fn user_id(d: &crate::Daemon, admin: &str, email: &str) -> String {
    let users = d.call("GET", "/api/v1/users", &[("Authorization", admin)], None, None).2;
    users.as_array().expect("users").iter().find(|u| u["email"] == email).and_then(|u| u["id"].as_str()).expect("listed").to_string()
}

#[test]
fn the_network_is_refused_without_auth_unless_allowed() {
    let g = Gantry::new();
    std::fs::write(g.state.path().join("open.toml"), "[gpu]\nsimulate = \"1\"\n").expect("config");
    let out = g.command().arg("--config").arg(g.state.path().join("open.toml")).args(["serve", "--listen", "0.0.0.0:0"]).output().expect("runs");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("refusing to listen on 0.0.0.0"), "{}", stderr(&out));

    // Allowed knowingly, it serves (and says where).
    std::fs::write(g.state.path().join("open.toml"), "[gpu]\nsimulate = \"1\"\n[auth]\nallow_open_network = true\n").expect("config");
    let mut child = g
        .command()
        .arg("--config")
        .arg(g.state.path().join("open.toml"))
        .args(["serve", "--listen", "0.0.0.0:0"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starts");
    let url = g.daemon_url();
    let served = ureq::get(&format!("{url}/api/auth/check")).timeout(Duration::from_secs(10)).call().map(|r| r.status());
    let _ = child.kill();
    let _ = child.wait();
    assert!(url.starts_with("http://0.0.0.0:"), "{url}");
    assert_eq!(served.ok(), Some(200));
}

#[test]
fn a_job_calls_the_daemon_as_its_owner_with_its_own_token() {
    let g = Gantry::new();
    let d = g.serve(FAST, &["--simulate", "1"]);
    let gantry = env!("CARGO_BIN_EXE_gantry");
    let follow_up = json!({ "commands": ["echo follow-up"] }).to_string();
    // Over TCP, with nothing but what the job's environment gives it.
    let script = format!(
        "{gantry} --server {url} api POST /api/v1/jobs --data '{follow_up}'; {gantry} --server {url} api POST /api/v1/shutdown || echo shutdown-refused",
        url = d.url
    );
    let id = d.submit(json!({ "commands": [script] }))[0];
    let job = d.finished(id);
    assert_eq!(job["state"], "succeeded", "{job:#}");
    let log = d.log(id);
    assert!(log.contains("\"ids\":[2]") && log.contains("shutdown-refused") && log.contains("403"), "{log}");
    let second = d.finished(2);
    assert_eq!((second["state"].as_str(), &second["spec"]["owner"]), (Some("succeeded"), &job["spec"]["owner"]), "{second:#}");
    assert_eq!(d.get("/api/v1/health")["status"], "ok", "the job's token could not stop the daemon");
}
