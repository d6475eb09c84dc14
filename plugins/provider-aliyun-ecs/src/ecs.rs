//! Alibaba Cloud ECS (RPC API `2014-05-26`) as gantry's provider interface: the instance a
//! submission becomes, the user data that runs the job's container on it, what an instance and
//! its console say about the job, prices. No I/O here, so all of it is tested natively.
//!
//! An instance is not a job: it boots an image with Docker and the NVIDIA runtime, and its user
//! data writes the job's script and environment to files, runs the job's image with
//! `docker run --gpus all`, prints the exit code on the console ([`EXIT_MARK`]) and powers the
//! instance off. `AutoReleaseTime` releases it at the job's time limit however it went.

use gantry_provider::{sign, CostEstimate, JobConfig, JobResult, JobState, ProviderError};
use serde_json::Value;

pub const VERSION: &str = "2014-05-26";

/// The user data's last line on the console: the job's exit code after it.
pub const EXIT_MARK: &str = "gantry-exit-code: ";

/// User data may be at most this long, base64-encoded.
const USER_DATA_BYTES: usize = 32 * 1024;

/// What the provider instance configures.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub base_url: String,
    pub access_key_id: String,
    pub access_key_secret: String,
    pub region_id: String,
    /// The instance's system image: one with Docker and the NVIDIA container runtime.
    pub image_id: String,
    pub security_group_id: String,
    pub v_switch_id: String,
    /// For jobs whose `gpu_type` names no instance type (`ecs.gn7i-c8g1.2xlarge`).
    pub instance_type: String,
    /// `NoSpot`, `SpotAsPriceGo` or `SpotWithPriceLimit`.
    pub spot_strategy: String,
    /// The container image for jobs that name none.
    pub image: Option<String>,
    pub time_limit_min: Option<u64>,
}

impl Settings {
    pub fn read<F: Fn(&str) -> Option<String>>(instance: &gantry_provider::Settings<F>) -> Result<Settings, ProviderError> {
        let spot_strategy = instance.get("SPOT_STRATEGY").unwrap_or_else(|| "NoSpot".into());
        if !["NoSpot", "SpotAsPriceGo", "SpotWithPriceLimit"].contains(&spot_strategy.as_str()) {
            return Err(ProviderError::InvalidConfig(format!("options.spot_strategy: '{spot_strategy}' is none of NoSpot, SpotAsPriceGo, SpotWithPriceLimit")));
        }
        Ok(Settings {
            base_url: instance.base_url()?,
            access_key_id: instance.need("ACCESS_KEY_ID")?,
            access_key_secret: instance.need("TOKEN")?,
            region_id: instance.need("REGION_ID")?,
            image_id: instance.need("IMAGE_ID")?,
            security_group_id: instance.need("SECURITY_GROUP_ID")?,
            v_switch_id: instance.need("V_SWITCH_ID")?,
            instance_type: instance.need("INSTANCE_TYPE")?,
            spot_strategy,
            image: instance.get("IMAGE"),
            time_limit_min: instance.number("TIME_LIMIT_MIN", "minutes")?,
        })
    }

    /// The host part of the base URL, which the signature covers.
    pub fn host(&self) -> &str {
        let rest = self.base_url.split_once("://").map_or(self.base_url.as_str(), |(_, r)| r);
        rest.split('/').next().unwrap_or(rest)
    }

    pub fn timeout_s(&self, job: &JobConfig) -> Option<u64> {
        job.timeout_s.or_else(|| self.time_limit_min.map(|m| m.saturating_mul(60))).filter(|&s| s > 0)
    }

    /// The instance type a job runs on: its `gpu_type` when that names one, else the instance's.
    pub fn instance_type<'a>(&'a self, job: &'a JobConfig) -> &'a str {
        if job.gpu.gpu_type.starts_with("ecs.") { &job.gpu.gpu_type } else { &self.instance_type }
    }
}

/// One RPC call: its action and parameters, form-encoded as the body of a signed POST.
pub struct Call {
    pub action: &'static str,
    pub params: Vec<(String, String)>,
}

impl Call {
    pub fn new(action: &'static str, settings: &Settings) -> Call {
        Call { action, params: vec![("RegionId".into(), settings.region_id.clone())] }
    }

    pub fn with(mut self, name: &str, value: impl Into<String>) -> Call {
        self.params.push((name.to_string(), value.into()));
        self
    }

    pub fn body(&self) -> String {
        let pairs: Vec<(&str, &str)> = self.params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        sign::canonical_query(&pairs)
    }

    /// The headers of the signed request at `timestamp` (Unix seconds) with `nonce`.
    pub fn headers(&self, settings: &Settings, timestamp: u64, nonce: &str) -> Vec<(String, String)> {
        let date = sign::utc(timestamp);
        let body = self.body();
        let content_type = "application/x-www-form-urlencoded";
        let signed_headers = [("x-acs-action", self.action), ("x-acs-version", VERSION), ("x-acs-date", date.as_str()), ("x-acs-signature-nonce", nonce), ("content-type", content_type)];
        let request = sign::acs3::Request { method: "POST", host: settings.host(), path: "/", query: &[], headers: &signed_headers, body: body.as_bytes() };
        sign::acs3::sign(&request, &settings.access_key_id, &settings.access_key_secret).headers
    }
}

/// The shell script the instance runs at first boot.
pub fn user_data(settings: &Settings, job: &JobConfig) -> Result<String, ProviderError> {
    if job.command.iter().all(|c| c.trim().is_empty()) {
        return Err(ProviderError::InvalidConfig("command: empty".into()));
    }
    let image = Some(job.image.clone()).filter(|i| !i.is_empty()).or_else(|| settings.image.clone());
    let image = image.ok_or_else(|| ProviderError::InvalidConfig("image: ECS runs the job in a container; give the job an image, or the instance options.image".into()))?;
    if image.chars().any(|c| c.is_whitespace() || c == '\'') {
        return Err(ProviderError::InvalidConfig(format!("image: '{image}' is not an image reference")));
    }
    let mut env = String::new();
    for (name, value) in &job.env {
        if value.contains('\n') || name.contains('=') || name.contains('\n') {
            return Err(ProviderError::InvalidConfig(format!("env: {name}: docker's env file holds one-line values")));
        }
        env.push_str(&format!("{name}={value}\n"));
    }
    let script = sign::base64(job.command.join("\n").as_bytes());
    let env = sign::base64(env.as_bytes());
    let data = format!(
        "#!/bin/sh\n\
         # gantry {key}: the job's container, its exit code on the console, then power off.\n\
         c=${{GANTRY_CONSOLE:-/dev/console}}\n\
         [ -w \"$c\" ] && exec >\"$c\" 2>&1\n\
         d=${{GANTRY_DIR:-/run/gantry}}\n\
         mkdir -p \"$d\"\n\
         echo '{script}' | base64 -d > \"$d/job.sh\"\n\
         echo '{env}' | base64 -d > \"$d/job.env\"\n\
         docker run --rm --gpus all --env-file \"$d/job.env\" -v \"$d:/gantry:ro\" '{image}' sh /gantry/job.sh\n\
         echo \"{EXIT_MARK}$?\"\n\
         poweroff\n",
        key = job.key,
    );
    let encoded = sign::base64(data.as_bytes());
    if encoded.len() > USER_DATA_BYTES {
        return Err(ProviderError::InvalidConfig(format!("command: {} bytes of user data; ECS takes at most {USER_DATA_BYTES} base64-encoded", encoded.len())));
    }
    Ok(encoded)
}

/// `RunInstances` for `job`: one pay-as-you-go instance, its `ClientToken` the attempt's key so a
/// repeated call makes no second one, released at the job's time limit.
pub fn run_instances(settings: &Settings, job: &JobConfig, now_s: u64) -> Result<Call, ProviderError> {
    let token: String = job.key.chars().filter(char::is_ascii).take(64).collect();
    let mut call = Call::new("RunInstances", settings)
        .with("InstanceType", settings.instance_type(job))
        .with("ImageId", settings.image_id.clone())
        .with("SecurityGroupId", settings.security_group_id.clone())
        .with("VSwitchId", settings.v_switch_id.clone())
        .with("InstanceChargeType", "PostPaid")
        .with("SpotStrategy", settings.spot_strategy.clone())
        .with("InstanceName", job.key.clone())
        .with("UserData", user_data(settings, job)?)
        .with("ClientToken", token)
        .with("Amount", "1");
    if let Some(seconds) = settings.timeout_s(job) {
        // ECS wants at least half an hour ahead, and whole seconds.
        call = call.with("AutoReleaseTime", sign::utc(now_s + seconds.max(1800) + 300));
    }
    Ok(call)
}

/// An instance id as the host gives it back: only what ECS makes, so it can't smuggle parameters.
pub fn instance_id(id: &str) -> Result<&str, ProviderError> {
    let plain = id.starts_with("i-") && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if plain { Ok(id) } else { Err(ProviderError::NotFound(format!("'{id}' is not the id of an ECS instance"))) }
}

/// The exit code the user data printed, from the last such line of the console.
pub fn exit_code(console: &str) -> Option<i32> {
    console.lines().rev().find_map(|line| line.trim_end().strip_prefix(EXIT_MARK)).and_then(|code| code.trim().parse().ok())
}

/// The job's output: the console without the user data's exit line.
pub fn job_output(console: &str) -> String {
    console.split_inclusive('\n').filter(|line| !line.starts_with(EXIT_MARK)).collect()
}

/// What an instance (an entry of `DescribeInstances`) and its console say.
pub fn result(instance: &Value, console: Option<&str>) -> JobResult {
    let id = instance["InstanceId"].as_str().unwrap_or_default();
    let status = instance["Status"].as_str().unwrap_or("Unknown");
    let code = console.and_then(exit_code);
    let (state, message) = match (status, code) {
        (_, Some(0)) => (JobState::Succeeded, "exited 0".to_string()),
        (_, Some(code)) => (JobState::Failed, format!("exited {code}")),
        ("Pending" | "Starting", None) => (JobState::Pending, status.to_string()),
        ("Running" | "Stopping", None) => (JobState::Running, status.to_string()),
        ("Stopped", None) => (JobState::Failed, "the instance stopped before its job reported an exit code (stopped outside gantry, or the container could not start)".to_string()),
        (other, None) => (JobState::Unknown, format!("ECS says {other}")),
    };
    JobResult { message, exit_code: code, ..gantry_provider::result(id, state) }
}

/// The API's error: `{RequestId, Code, Message}`.
pub fn error(status: u16, body: &[u8]) -> ProviderError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let field = |name: &str| parsed.as_ref().and_then(|v| v[name].as_str()).unwrap_or_default().to_string();
    let (code, message) = (field("Code"), field("Message"));
    let text = if code.is_empty() { format!("ECS answered HTTP {status}: {}", String::from_utf8_lossy(&body[..body.len().min(512)]).trim()) } else { format!("ECS answered HTTP {status}: {code}: {message}") };
    match (status, code.as_str()) {
        (404, _) | (_, "InvalidInstanceId.NotFound") => ProviderError::NotFound(text),
        // The key is wrong, ECS throttles, or it is away: not the job's fault, so it waits.
        (_, "Throttling" | "Throttling.User" | "Throttling.Api" | "ServiceUnavailable") | (401 | 403 | 429 | 500..=504, _) => ProviderError::Transport(text),
        _ => ProviderError::Remote(text),
    }
}

/// `DescribePrice`'s answer as the cost of `job` on `instance_type`.
pub fn estimate(settings: &Settings, job: &JobConfig, answer: &Value) -> Result<CostEstimate, ProviderError> {
    let price = &answer["PriceInfo"]["Price"];
    let per_hour = price["TradePrice"].as_f64().filter(|p| p.is_finite() && *p >= 0.0).ok_or_else(|| ProviderError::Remote(format!("DescribePrice gave no TradePrice: {answer}")))?;
    let currency = price["Currency"].as_str().unwrap_or("CNY").to_string();
    let total = settings.timeout_s(job).map_or(0.0, |s| per_hour * s as f64 / 3600.0);
    Ok(CostEstimate { currency, per_hour, total, detail: format!("{} pay-as-you-go ({}), {}", settings.instance_type(job), settings.spot_strategy, settings.region_id) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use gantry_provider::testing;
    use serde_json::json;

    pub fn settings() -> Settings {
        Settings {
            base_url: "https://ecs.cn-hangzhou.aliyuncs.com".into(),
            access_key_id: "LTAI-test".into(),
            access_key_secret: "secret".into(),
            region_id: "cn-hangzhou".into(),
            image_id: "ubuntu_22_04_gpu".into(),
            security_group_id: "sg-1".into(),
            v_switch_id: "vsw-1".into(),
            instance_type: "ecs.gn7i-c8g1.2xlarge".into(),
            spot_strategy: "NoSpot".into(),
            image: Some("pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime".into()),
            time_limit_min: None,
        }
    }

    fn decoded(b64: &str) -> String {
        let out = std::process::Command::new("base64").arg("-d").stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).spawn().and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().expect("stdin").write_all(b64.as_bytes())?;
            c.wait_with_output()
        });
        String::from_utf8(out.expect("base64 runs").stdout).expect("utf-8")
    }

    #[test]
    fn run_instances_is_one_released_pay_as_you_go_instance_keyed_by_the_attempt() {
        let call = run_instances(&settings(), &testing::job(), 1_698_315_752).expect("call");
        let get = |name: &str| call.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        assert_eq!((get("ClientToken"), get("InstanceChargeType"), get("Amount"), get("RegionId")), (Some("gantry-7-2"), Some("PostPaid"), Some("1"), Some("cn-hangzhou")));
        assert_eq!(get("AutoReleaseTime"), Some("2023-10-26T10:57:32Z"), "90 s asked, the half hour ECS needs at least, and 5 min to spare");
        let script = decoded(get("UserData").expect("user data"));
        assert!(script.contains("docker run --rm --gpus all --env-file") && script.contains("'pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime' sh /gantry/job.sh") && script.ends_with("echo \"gantry-exit-code: $?\"\npoweroff\n"), "{script}");
        let mut typed = testing::job();
        typed.gpu.gpu_type = "ecs.gn6v-c8g1.2xlarge".into();
        assert_eq!(settings().instance_type(&typed), "ecs.gn6v-c8g1.2xlarge");
        typed.env.push(("BAD".into(), "two\nlines".into()));
        assert!(matches!(run_instances(&settings(), &typed, 0), Err(ProviderError::InvalidConfig(m)) if m.starts_with("env: BAD")));
    }

    #[test]
    fn the_user_data_runs_the_job_and_prints_its_exit_code() {
        let dir = std::env::temp_dir().join(format!("ecs-user-data-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("bin")).expect("dir");
        // docker here runs the command after the image with the env file loaded and /gantry mapped.
        std::fs::write(dir.join("bin/docker"), "#!/bin/sh\nwhile [ \"$1\" != sh ]; do case \"$1\" in --env-file) set -a; . \"$2\"; set +a; shift 2;; -v) src=${2%%:*}; shift 2;; *) shift;; esac; done\nshift\nexec sh \"$src/${1#/gantry/}\"\n").expect("docker");
        std::fs::write(dir.join("bin/poweroff"), "#!/bin/sh\necho powered off\n").expect("poweroff");
        std::process::Command::new("chmod").args(["+x"]).arg(dir.join("bin/docker")).arg(dir.join("bin/poweroff")).status().expect("chmod");
        let mut job = testing::job();
        job.command = vec!["echo \"job $GANTRY_JOB_ID\"".into(), "exit 4".into()];
        let script = decoded(&user_data(&settings(), &job).expect("user data"));
        let out = std::process::Command::new("sh").arg("-c").arg(&script).env("PATH", format!("{}:/usr/bin:/bin", dir.join("bin").display())).env("GANTRY_DIR", dir.join("run")).env("GANTRY_CONSOLE", "/dev/stdout").output().expect("runs");
        let console = String::from_utf8_lossy(&out.stdout);
        assert_eq!(exit_code(&console), Some(4), "{console}");
        assert_eq!(job_output(&console), "job 7\npowered off\n");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_instance_and_its_console_say_where_the_job_is() {
        let instance = |status: &str| json!({ "InstanceId": "i-bp1", "Status": status });
        assert_eq!(result(&instance("Pending"), None).state, JobState::Pending);
        assert_eq!(result(&instance("Running"), Some("step 1\n")).state, JobState::Running);
        let done = result(&instance("Stopped"), Some("out\ngantry-exit-code: 0\n"));
        assert_eq!((done.state, done.exit_code, done.provider_job_id.as_str()), (JobState::Succeeded, Some(0), "i-bp1"));
        assert_eq!(result(&instance("Stopped"), Some("")).state, JobState::Failed);
        assert!(instance_id("i-bp1").is_ok() && instance_id("i-x&Force=true").is_err());
        let throttled = error(400, br#"{"RequestId":"r","Code":"Throttling.User","Message":"Request was denied due to user flow control."}"#);
        assert!(matches!(throttled, ProviderError::Transport(m) if m.contains("Throttling.User")));
        assert!(matches!(error(403, br#"{"Code":"InvalidAccessKeyId.NotFound","Message":"x"}"#), ProviderError::Transport(_)));
        assert!(matches!(error(400, br#"{"Code":"InvalidInstanceType.ValueUnauthorized","Message":"x"}"#), ProviderError::Remote(_)));
        let cost = estimate(&settings(), &testing::job(), &json!({ "PriceInfo": { "Price": { "TradePrice": 12.4, "Currency": "CNY" } } })).expect("priced");
        assert_eq!((cost.currency.as_str(), cost.per_hour), ("CNY", 12.4));
    }

    #[test]
    fn a_call_is_signed_over_its_form_body() {
        let call = Call::new("DescribeInstances", &settings()).with("InstanceIds", "[\"i-bp1\"]");
        assert_eq!(call.body(), "InstanceIds=%5B%22i-bp1%22%5D&RegionId=cn-hangzhou");
        let headers = call.headers(&settings(), 1_698_315_752, "n1");
        let get = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        assert_eq!((get("x-acs-action"), get("x-acs-date"), get("x-acs-version")), (Some("DescribeInstances"), Some("2023-10-26T10:22:32Z"), Some(VERSION)));
        assert!(get("Authorization").is_some_and(|a| a.starts_with("ACS3-HMAC-SHA256 Credential=LTAI-test,SignedHeaders=content-type;host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,Signature=")));
    }
}
