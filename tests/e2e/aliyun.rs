//! Jobs handed to Alibaba Cloud ECS through the bundled `provider-aliyun-ecs`. No test machine
//! reaches Alibaba Cloud, so each test runs a stand-in of the ECS RPC API (`2014-05-26`) that
//! follows what the adapter relies on, and **verifies every request's ACS3-HMAC-SHA256
//! signature** (the canonical request rebuilt from what arrived, the body's hash, a fresh nonce, a
//! date within 15 minutes): `RunInstances` idempotent by `ClientToken`, instances that go
//! Pending, Starting, Running and Stopped once their user data powers them off,
//! `DescribeInstances`, `GetInstanceConsoleOutput` (base64), `DeleteInstance`, `DescribePrice`,
//! errors as `{RequestId, Code, Message}`. Its "instances" run their user data on this machine
//! with `docker` and `poweroff` stand-ins on the PATH, so the exit code and output are the
//! script's own. The adapter has not been run against Alibaba Cloud itself.

use super::stub_api::{self, Answer, Request};
use super::{ok, Gantry};
use gantry_provider::sign;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const KEY_ID: &str = "LTAI5tTESTKEY";
const SECRET: &str = "test-secret-4f1a";
const PHASE: Duration = Duration::from_millis(300);

struct Instance {
    id: String,
    params: BTreeMap<String, String>,
    status: &'static str,
    made: Instant,
    child: Option<Child>,
    console: PathBuf,
}

#[derive(Default)]
struct State {
    instances: BTreeMap<String, Instance>,
    /// Every RunInstances answered with a new instance.
    made: usize,
    tokens: BTreeMap<String, String>,
    nonces: BTreeSet<String>,
    deleted: Vec<String>,
    /// Requests whose signature did not verify, with why.
    refused: Vec<String>,
    actions: Vec<String>,
    /// Make the next instance but lose the answer.
    lose_next_run: bool,
}

pub(super) struct Ecs {
    url: String,
    state: Arc<Mutex<State>>,
    _dir: tempfile::TempDir,
}

fn error(status: u16, code: &str, message: &str) -> Answer {
    Answer::json(status, &json!({ "RequestId": "stub-request", "Code": code, "Message": message }))
}

/// Why a request's signature is not the one its secret makes, if it is not.
fn signature_fault(request: &Request, state: &mut State) -> Option<String> {
    let header = |name: &str| request.header(name).unwrap_or_default();
    let authorization = header("authorization");
    let Some(credential) = authorization.strip_prefix("ACS3-HMAC-SHA256 Credential=").and_then(|rest| rest.split(',').next()) else { return Some(format!("no ACS3 Authorization: '{authorization}'")) };
    if credential != KEY_ID {
        return Some(format!("InvalidAccessKeyId.NotFound: {credential}"));
    }
    if header("x-acs-content-sha256") != sign::sha256_hex(&request.body) {
        return Some("the body is not the one hashed".into());
    }
    let date = header("x-acs-date");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    if !(now - 900..=now + 900).any(|t| sign::utc(t) == date) {
        return Some(format!("x-acs-date {date} is not within 15 minutes of {}", sign::utc(now)));
    }
    if !state.nonces.insert(header("x-acs-signature-nonce").to_string()) {
        return Some("SignatureNonceUsed".into());
    }
    let signed: Vec<(&str, &str)> = ["x-acs-action", "x-acs-version", "x-acs-date", "x-acs-signature-nonce", "content-type"].iter().map(|n| (*n, header(n))).collect();
    let query: Vec<(&str, &str)> = request.query.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let rebuilt = sign::acs3::Request { method: &request.method, host: header("host"), path: &request.path, query: &query, headers: &signed, body: &request.body };
    let expected = sign::acs3::sign(&rebuilt, KEY_ID, SECRET);
    let wanted = expected.headers.iter().find(|(n, _)| n == "Authorization").map(|(_, v)| v.as_str()).unwrap_or_default();
    (wanted != authorization).then(|| format!("SignatureDoesNotMatch: expected {wanted}"))
}

/// `a=1&b=%22x%22` as its parameters.
fn form(body: &[u8]) -> BTreeMap<String, String> {
    String::from_utf8_lossy(body).split('&').filter_map(|p| p.split_once('=')).map(|(k, v)| (stub_api::decode(k), stub_api::decode(v))).collect()
}

impl Ecs {
    pub(super) fn start() -> Ecs {
        let dir = tempfile::tempdir().expect("dir");
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).expect("bin");
        // The image's part: `docker run … IMAGE sh /gantry/job.sh` runs the script with the env
        // file loaded and /gantry where -v says; `poweroff` ends the "instance".
        std::fs::write(bin.join("docker"), "#!/bin/sh\nwhile [ \"$1\" != sh ]; do case \"$1\" in --env-file) set -a; . \"$2\"; set +a; shift 2;; -v) src=${2%%:*}; shift 2;; *) shift;; esac; done\nshift\nexec sh \"$src/${1#/gantry/}\"\n").expect("docker");
        std::fs::write(bin.join("poweroff"), "#!/bin/sh\nexit 0\n").expect("poweroff");
        ok(Command::new("chmod").arg("+x").arg(bin.join("docker")).arg(bin.join("poweroff")).output().expect("chmod"));
        let state: Arc<Mutex<State>> = Arc::default();
        let (shared, root) = (state.clone(), dir.path().to_path_buf());
        let url = stub_api::serve(None, Arc::new(move |request: &Request| {
            let mut state = shared.lock().expect("state");
            if let Some(fault) = signature_fault(request, &mut state) {
                state.refused.push(fault.clone());
                return error(403, "SignatureDoesNotMatch", &fault);
            }
            route(&mut state, request, &root)
        }));
        Ecs { url, state, _dir: dir }
    }

    pub(super) fn config(&self, g: &Gantry, secret: &str) -> String {
        let token = g.token_file("aliyun.secret", secret);
        format!(
            "[providers.ecs]\nplugin = \"provider-aliyun-ecs\"\nbase_url = \"{}\"\ntoken_file = \"{}\"\npoll_ms = 200\npoll_max_ms = 1000\n[providers.ecs.options]\naccess_key_id = \"{KEY_ID}\"\nregion_id = \"cn-hangzhou\"\nimage_id = \"ubuntu_22_04_x64_20G_alibase_gpu\"\nsecurity_group_id = \"sg-bp1test\"\nv_switch_id = \"vsw-bp1test\"\ninstance_type = \"ecs.gn7i-c8g1.2xlarge\"\nimage = \"pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime\"\n",
            self.url,
            token.display()
        )
    }
}

impl Drop for Ecs {
    fn drop(&mut self) {
        if let Ok(mut state) = self.state.lock() {
            for instance in state.instances.values_mut() {
                instance.stop();
            }
        }
    }
}

impl Instance {
    fn stop(&mut self) {
        stub_api::stop_group(self.child.take());
    }

    /// Its phases by time; once running, its user data, and Stopped when that powered it off.
    fn advance(&mut self, dir: &Path) {
        let age = self.made.elapsed();
        match self.status {
            "Pending" if age >= PHASE => self.status = "Starting",
            "Starting" if age >= PHASE * 2 => {
                self.status = "Running";
                let _ = std::fs::write(&self.console, "");
                let script = sign::unbase64(self.params.get("UserData").map_or("", String::as_str)).unwrap_or_default();
                let mut command = Command::new("sh");
                command.arg("-c").arg(String::from_utf8_lossy(&script).into_owned()).env_clear().env("PATH", format!("{}:/usr/bin:/bin", dir.join("bin").display()));
                command.env("GANTRY_DIR", dir.join(&self.id)).env("GANTRY_CONSOLE", &self.console).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
                std::os::unix::process::CommandExt::process_group(&mut command, 0);
                self.child = command.spawn().ok();
            }
            "Running" => {
                if let Some(child) = self.child.as_mut()
                    && let Ok(Some(_)) = child.try_wait()
                {
                    self.child = None;
                    self.status = "Stopped";
                }
            }
            _ => {}
        }
    }

    fn object(&self) -> Value {
        json!({ "InstanceId": self.id, "InstanceName": self.params.get("InstanceName"), "Status": self.status, "InstanceType": self.params.get("InstanceType"), "RegionId": "cn-hangzhou" })
    }
}

fn route(state: &mut State, request: &Request, dir: &Path) -> Answer {
    for instance in state.instances.values_mut() {
        instance.advance(dir);
    }
    if request.method != "POST" || request.path != "/" || request.header("x-acs-version") != Some("2014-05-26") {
        return error(400, "InvalidParameter", "RPC calls are POSTs to / with x-acs-version 2014-05-26");
    }
    let params = form(&request.body);
    let action = request.header("x-acs-action").unwrap_or_default().to_string();
    state.actions.push(action.clone());
    let param = |name: &str| params.get(name).cloned().unwrap_or_default();
    if param("RegionId") != "cn-hangzhou" {
        return error(400, "InvalidRegionId.NotFound", "The specified RegionId does not exist.");
    }
    match action.as_str() {
        "RunInstances" => {
            for required in ["InstanceType", "ImageId", "SecurityGroupId", "VSwitchId", "UserData"] {
                if param(required).is_empty() {
                    return error(400, "MissingParameter", &format!("{required} is mandatory for this action."));
                }
            }
            if param("UserData").len() > 32 * 1024 {
                return error(400, "InvalidUserData.SizeExceeded", "The specified parameter UserData exceeds the size.");
            }
            let token = param("ClientToken");
            if let Some(id) = state.tokens.get(&token).filter(|_| !token.is_empty()) {
                return Answer::json(200, &json!({ "RequestId": "r", "InstanceIdSets": { "InstanceIdSet": [id] } }));
            }
            state.made += 1;
            let id = format!("i-bp1stub{:04}", state.made);
            state.tokens.insert(token, id.clone());
            let console = dir.join(format!("{id}.console"));
            state.instances.insert(id.clone(), Instance { id: id.clone(), params, status: "Pending", made: Instant::now(), child: None, console });
            if std::mem::take(&mut state.lose_next_run) {
                return Answer::lost();
            }
            Answer::json(200, &json!({ "RequestId": "r", "InstanceIdSets": { "InstanceIdSet": [id] } }))
        }
        "DescribeInstances" => {
            let ids: Vec<String> = serde_json::from_str(&param("InstanceIds")).unwrap_or_default();
            let found: Vec<Value> = state.instances.values().filter(|i| ids.contains(&i.id)).map(Instance::object).collect();
            Answer::json(200, &json!({ "RequestId": "r", "TotalCount": found.len(), "Instances": { "Instance": found } }))
        }
        "GetInstanceConsoleOutput" => match state.instances.get(&param("InstanceId")) {
            Some(instance) => Answer::json(200, &json!({ "RequestId": "r", "InstanceId": instance.id, "ConsoleOutput": sign::base64(&std::fs::read(&instance.console).unwrap_or_default()) })),
            None => error(404, "InvalidInstanceId.NotFound", "The specified InstanceId does not exist."),
        },
        "DeleteInstance" => {
            if param("Force") != "true" && state.instances.get(&param("InstanceId")).is_some_and(|i| i.status == "Running") {
                return error(403, "IncorrectInstanceStatus", "The current status of the resource does not support this operation.");
            }
            match state.instances.remove(&param("InstanceId")) {
                Some(mut instance) => {
                    instance.stop();
                    state.deleted.push(instance.id);
                    Answer::json(200, &json!({ "RequestId": "r" }))
                }
                None => error(404, "InvalidInstanceId.NotFound", "The specified InstanceId does not exist."),
            }
        }
        "DescribePrice" => Answer::json(200, &json!({ "RequestId": "r", "PriceInfo": { "Price": { "OriginalPrice": 15.5, "DiscountPrice": 3.1, "TradePrice": 12.4, "Currency": "CNY" }, "Rules": { "Rule": [] } } })),
        other => error(400, "InvalidAction.NotFound", &format!("Specified api {other} is not found, please check your url and method.")),
    }
}

fn remote(job: &Value) -> Value {
    job["attempts"].as_array().and_then(|a| a.last()).map(|a| a["remote"].clone()).unwrap_or_default()
}

#[test]
fn a_job_runs_on_an_ecs_instance_signed_with_acs3_and_the_instance_is_deleted_after() {
    let ecs = Ecs::start();
    let g = Gantry::new();
    let d = g.serve(&ecs.config(&g, SECRET), &[]);
    let id = d.submit(json!({ "commands": ["echo \"hello from $GANTRY_JOB_ID\"", "exit 3"], "provider": "ecs", "time_limit_s": 600 }))[0];
    let job = d.finished(id);
    assert_eq!(job["state"], "failed", "{job:#}");
    assert_eq!(job["attempts"][0]["exit_code"], 3, "the exit code the user data printed on the console: {job:#}");
    assert_eq!(d.log(id), format!("hello from {id}\n"), "the console, without the exit line");
    let cost = &remote(&job)["cost"];
    assert_eq!((cost["currency"].as_str(), cost["per_hour"].as_f64()), (Some("CNY"), Some(12.4)), "DescribePrice's TradePrice: {job:#}");
    let instance = remote(&job)["id"].as_str().unwrap_or_default().to_string();

    d.wait_job(id, Duration::from_secs(10), |_| ecs.state.lock().expect("state").deleted.contains(&instance));
    let state = ecs.state.lock().expect("state");
    assert!(state.refused.is_empty(), "every request verified: {:?}", state.refused);
    assert_eq!(state.made, 1);
    assert!(state.instances.is_empty(), "released once its output was copied");
    assert!(state.actions.iter().position(|a| a == "DescribePrice") < state.actions.iter().position(|a| a == "RunInstances"), "priced before it was rented: {:?}", state.actions);
    let token = state.tokens.keys().next().cloned().unwrap_or_default();
    assert!(token.starts_with("gantry-") && token.len() > 10, "ClientToken is the attempt's key: {token}");
}

#[test]
fn an_instance_whose_answer_was_lost_is_not_made_twice_as_its_client_token_is_the_same() {
    let ecs = Ecs::start();
    ecs.state.lock().expect("state").lose_next_run = true;
    let g = Gantry::new();
    let d = g.serve(&ecs.config(&g, SECRET), &[]);
    let id = d.submit(json!({ "commands": ["echo once"], "provider": "ecs" }))[0];
    let job = d.finished(id);
    assert_eq!(job["state"], "succeeded", "{job:#}");
    assert_eq!(d.log(id), "once\n");
    let state = ecs.state.lock().expect("state");
    assert_eq!(state.made, 1, "RunInstances came twice with one ClientToken: {:?}", state.actions);
    assert_eq!(state.actions.iter().filter(|a| *a == "RunInstances").count(), 2, "{:?}", state.actions);
}

#[test]
fn cancel_deletes_the_instance_and_a_wrong_secret_leaves_the_job_waiting() {
    let ecs = Ecs::start();
    let g = Gantry::new();
    let d = g.serve(&ecs.config(&g, SECRET), &[]);
    let id = d.submit(json!({ "commands": ["sleep 300"], "provider": "ecs" }))[0];
    d.wait_job(id, Duration::from_secs(30), |j| remote(j)["state"] == "Running");
    ok(g.run(&["cancel", &id.to_string()]));
    assert_eq!(d.finished(id)["state"], "cancelled");
    assert_eq!(ecs.state.lock().expect("state").deleted.len(), 1);
    drop(d);

    let other = Gantry::new();
    let d = other.serve(&ecs.config(&other, "not-the-secret"), &[]);
    let id = d.submit(json!({ "commands": ["true"], "provider": "ecs" }))[0];
    let job = d.wait_job(id, Duration::from_secs(30), |j| j["reason"].as_str().is_some_and(|r| r.contains("SignatureDoesNotMatch")));
    assert_eq!(job["state"], "waiting", "a secret ECS refuses is the instance's fault, not the job's: {job:#}");
    let state = ecs.state.lock().expect("state");
    assert_eq!(state.made, 1, "nothing was made with it");
    assert!(state.refused.iter().all(|r| r.starts_with("SignatureDoesNotMatch")), "{:?}", state.refused);
}
