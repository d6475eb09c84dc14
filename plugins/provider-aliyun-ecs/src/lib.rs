//! gantry's Alibaba Cloud ECS adapter, on the ECS RPC API (`2014-05-26`,
//! `https://ecs.{RegionId}.aliyuncs.com/`), every call a form-encoded POST signed with
//! ACS3-HMAC-SHA256. An attempt becomes one pay-as-you-go GPU instance (`RunInstances`, its
//! `ClientToken` the attempt's key, so a call repeated after a restart makes no second one) whose
//! user data runs the job's container; its state comes from `DescribeInstances` and, once it
//! runs, the exit code on its console (`GetInstanceConsoleOutput`); cancel and release delete it
//! (`DeleteInstance`, `Force=true`). Prices come from `DescribePrice`.
//!
//! Configured through the environment the host gives a provider instance: `BASE_URL`, `TOKEN`
//! (the AccessKey secret), and the options `ACCESS_KEY_ID`, `REGION_ID`, `IMAGE_ID`,
//! `SECURITY_GROUP_ID`, `V_SWITCH_ID`, `INSTANCE_TYPE`, `SPOT_STRATEGY`, `IMAGE`,
//! `TIME_LIMIT_MIN`.

pub mod ecs;

use ecs::{Call, Settings};
use gantry_provider::http::Api;
use gantry_provider::{CostEstimate, GpuSpec, JobConfig, JobResult, JobState, Offer, Provider, ProviderError};
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};

struct Ecs;

fn now_s() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A nonce no other request of this instance has used.
fn nonce() -> String {
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{nanos:x}{:x}", COUNT.fetch_add(1, Ordering::Relaxed))
}

fn connect() -> Result<(Settings, Api), ProviderError> {
    let settings = Settings::read(&gantry_provider::Settings::from_host())?;
    let api = Api::new(&settings.base_url).header("Accept", "application/json");
    Ok((settings, api))
}

/// Sends `call`, signed; its JSON answer, or ECS's error.
fn send(settings: &Settings, api: &Api, call: &Call) -> Result<Value, ProviderError> {
    let headers = call.headers(settings, now_s(), &nonce());
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let answer = api.request("POST", "/", &headers, Some(call.body().as_bytes()))?;
    if answer.ok() { answer.json() } else { Err(ecs::error(answer.status, &answer.body)) }
}

fn console(settings: &Settings, api: &Api, id: &str) -> Result<String, ProviderError> {
    let answer = send(settings, api, &Call::new("GetInstanceConsoleOutput", settings).with("InstanceId", id))?;
    let encoded = answer["ConsoleOutput"].as_str().unwrap_or_default();
    gantry_provider::sign::unbase64(encoded).map(|b| String::from_utf8_lossy(&b).into_owned()).ok_or_else(|| ProviderError::Remote("GetInstanceConsoleOutput: the output is not base64".into()))
}

fn instance_status(settings: &Settings, api: &Api, id: &str) -> Result<JobResult, ProviderError> {
    let answer = send(settings, api, &Call::new("DescribeInstances", settings).with("InstanceIds", format!("[\"{id}\"]")))?;
    let instance = answer["Instances"]["Instance"].as_array().and_then(|list| list.iter().find(|i| i["InstanceId"] == id)).cloned().ok_or_else(|| ProviderError::NotFound(format!("ECS has no instance {id}")))?;
    let running = matches!(instance["Status"].as_str(), Some("Running" | "Stopping" | "Stopped"));
    let log = if running { console(settings, api, id).ok() } else { None };
    Ok(ecs::result(&instance, log.as_deref()))
}

fn delete(id: &str) -> Result<(), ProviderError> {
    let (settings, api) = connect()?;
    match send(&settings, &api, &Call::new("DeleteInstance", &settings).with("InstanceId", ecs::instance_id(id)?).with("Force", "true")) {
        Ok(_) | Err(ProviderError::NotFound(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

impl Provider for Ecs {
    fn submit(job: &JobConfig) -> Result<JobResult, ProviderError> {
        let (settings, api) = connect()?;
        let answer = send(&settings, &api, &ecs::run_instances(&settings, job, now_s())?)?;
        let id = answer["InstanceIdSets"]["InstanceIdSet"].as_array().and_then(|ids| ids.first()).and_then(Value::as_str).ok_or_else(|| ProviderError::Remote(format!("RunInstances named no instance: {answer}")))?;
        Ok(JobResult { message: format!("instance {} ({})", id, settings.instance_type(job)), ..gantry_provider::result(ecs::instance_id(id)?, JobState::Pending) })
    }

    fn status(id: &str) -> Result<JobResult, ProviderError> {
        let (settings, api) = connect()?;
        instance_status(&settings, &api, ecs::instance_id(id)?)
    }

    fn logs(id: &str, _tail_lines: u32) -> Result<String, ProviderError> {
        let (settings, api) = connect()?;
        Ok(ecs::job_output(&console(&settings, &api, ecs::instance_id(id)?)?))
    }

    fn cancel(id: &str) -> Result<JobResult, ProviderError> {
        delete(id)?;
        Ok(JobResult { message: "deleted".into(), ..gantry_provider::result(id, JobState::Cancelled) })
    }

    fn release(id: &str) -> Result<(), ProviderError> {
        delete(id)
    }

    fn estimate_cost(job: &JobConfig) -> Result<CostEstimate, ProviderError> {
        let (settings, api) = connect()?;
        let call = Call::new("DescribePrice", &settings).with("ResourceType", "instance").with("InstanceType", settings.instance_type(job)).with("PriceUnit", "Hour").with("SpotStrategy", settings.spot_strategy.clone());
        ecs::estimate(&settings, job, &send(&settings, &api, &call)?)
    }

    /// The instance type the instance runs, at its price now.
    fn offers(gpu: &GpuSpec) -> Result<Vec<Offer>, ProviderError> {
        let (settings, _) = connect()?;
        let job = JobConfig { name: String::new(), key: String::new(), user: String::new(), working_dir: String::new(), image: String::new(), command: Vec::new(), gpu: gpu.clone(), cpus: 0, ram_gib: 0, env: Vec::new(), timeout_s: None, region: None };
        let cost = Self::estimate_cost(&job)?;
        Ok(vec![Offer { gpu: GpuSpec { gpu_type: settings.instance_type.clone(), ..gpu.clone() }, region: settings.region_id, price_per_hour: cost.per_hour, currency: cost.currency, available: true }])
    }
}

gantry_provider::export_provider!(Ecs);
