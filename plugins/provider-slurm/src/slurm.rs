//! slurmrestd's OpenAPI v0.0.38 (what Debian 12's Slurm 22.05 serves) as gantry's provider
//! interface: the job a submission becomes, and what a job's record says about it. No I/O here,
//! so all of it is tested natively.

use gantry_provider::{JobConfig, JobResult, JobState, ProviderError};
use serde::Deserialize;
use serde_json::{json, Map, Value};

pub const API: &str = "/slurm/v0.0.38";

/// What the provider instance configures, from the environment the host grants the plugin.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    pub base_url: String,
    pub token: String,
    /// The user the token belongs to; it reads and cancels every job. A job is submitted as its
    /// own user, which a token of SlurmUser or root may do.
    pub token_user: String,
    pub partition: Option<String>,
    /// Minutes, for jobs that give no timeout.
    pub time_limit_min: Option<u64>,
    /// Where output files go, for jobs whose working directory is not shared with this host.
    pub log_dir: Option<String>,
    /// `gres` GPU type (`gpu:TYPE:N`) for jobs that name none.
    pub gres_type: Option<String>,
}

impl Settings {
    pub fn read<F: Fn(&str) -> Option<String>>(instance: &gantry_provider::Settings<F>) -> Result<Settings, ProviderError> {
        Ok(Settings {
            base_url: instance.base_url()?,
            token: instance.need("TOKEN")?,
            token_user: instance.get("TOKEN_USER").unwrap_or_else(|| "root".into()),
            partition: instance.get("PARTITION"),
            time_limit_min: instance.number("TIME_LIMIT_MIN", "minutes")?,
            log_dir: instance.get("LOG_DIR"),
            gres_type: instance.get("GRES_TYPE"),
        })
    }
}

/// Where a job's output goes: the configured log directory, else its working directory.
pub fn output_path(settings: &Settings, job: &JobConfig) -> Result<String, ProviderError> {
    let dir = settings.log_dir.clone().unwrap_or_else(|| job.working_dir.clone());
    if !dir.starts_with('/') {
        return Err(ProviderError::InvalidConfig("working-dir: Slurm needs an absolute directory for the job's output, or options.log_dir".into()));
    }
    Ok(format!("{}/{}.out", dir.trim_end_matches('/'), job.key))
}

/// The body of `POST /job/submit`.
pub fn submission(settings: &Settings, job: &JobConfig) -> Result<Value, ProviderError> {
    if job.command.is_empty() {
        return Err(ProviderError::InvalidConfig("command: empty".into()));
    }
    if !job.image.is_empty() {
        return Err(ProviderError::InvalidConfig("image: Slurm runs commands on its nodes; this adapter does not run containers".into()));
    }
    let mut environment = Map::new();
    for (key, value) in &job.env {
        environment.insert(key.clone(), Value::String(value.clone()));
    }
    // slurmrestd refuses a job without an environment, and a script needs a PATH.
    environment.entry("PATH").or_insert_with(|| Value::String("/usr/local/bin:/usr/bin:/bin".into()));
    let mut spec = Map::new();
    spec.insert("name".into(), json!(job.key));
    spec.insert("comment".into(), json!(job.name));
    spec.insert("environment".into(), Value::Object(environment));
    spec.insert("current_working_directory".into(), json!(if job.working_dir.is_empty() { "/tmp".to_string() } else { job.working_dir.clone() }));
    spec.insert("standard_output".into(), json!(output_path(settings, job)?));
    if job.gpu.count > 0 {
        let kind = Some(job.gpu.gpu_type.clone()).filter(|t| !t.is_empty()).or_else(|| settings.gres_type.clone());
        let gres = match kind {
            Some(kind) => format!("gpu:{kind}:{}", job.gpu.count),
            None => format!("gpu:{}", job.gpu.count),
        };
        spec.insert("gres".into(), json!(gres));
    }
    if job.cpus > 0 {
        spec.insert("cpus_per_task".into(), json!(job.cpus));
    }
    if job.ram_gib > 0 {
        spec.insert("memory_per_node".into(), json!(u64::from(job.ram_gib) * 1024));
    }
    if let Some(partition) = &settings.partition {
        spec.insert("partition".into(), json!(partition));
    }
    let minutes = job.timeout_s.map(|s| s.div_ceil(60).max(1)).or(settings.time_limit_min);
    if let Some(minutes) = minutes {
        spec.insert("time_limit".into(), json!(minutes));
    }
    let script = format!("#!/bin/bash\n{}\n", job.command.join("\n"));
    Ok(json!({ "script": script, "job": Value::Object(spec) }))
}

#[derive(Debug, Default, Deserialize)]
pub struct Answer {
    #[serde(default)]
    pub errors: Vec<ApiError>,
    #[serde(default)]
    pub jobs: Vec<SlurmJob>,
    pub job_id: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ApiError {
    #[serde(default)]
    pub error: String,
    #[serde(default)]
    pub description: String,
    pub error_number: Option<i64>,
    pub error_code: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
pub struct SlurmJob {
    pub job_id: u64,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub job_state: String,
    #[serde(default)]
    pub state_reason: String,
    /// The shell's wait status, as `waitpid` gives it.
    pub exit_code: Option<i64>,
    pub start_time: Option<u64>,
    pub end_time: Option<u64>,
    #[serde(default)]
    pub standard_output: String,
}

/// An answer's body, or why it is not one: slurmrestd puts its errors in the body (with HTTP
/// 500), and an authentication failure as plain text.
pub fn answer(status: u16, body: &[u8]) -> Result<Answer, ProviderError> {
    let parsed: Result<Answer, _> = serde_json::from_slice(body);
    match parsed {
        Ok(answer) if answer.errors.is_empty() => Ok(answer),
        Ok(answer) => {
            let first = &answer.errors[0];
            let text = [first.description.as_str(), first.error.as_str()].into_iter().filter(|s| !s.is_empty()).collect::<Vec<_>>().join(": ");
            // 2017: "Invalid job id specified".
            if first.error_number == Some(2017) || first.error_code == Some(2017) {
                return Err(ProviderError::NotFound(text));
            }
            Err(ProviderError::Remote(format!("Slurm: {text}")))
        }
        Err(_) => {
            let text = String::from_utf8_lossy(&body[..body.len().min(512)]).trim().to_string();
            Err(ProviderError::Remote(format!("slurmrestd answered HTTP {status}: {text}")))
        }
    }
}

pub fn state(job_state: &str) -> JobState {
    match job_state {
        "PENDING" | "CONFIGURING" | "REQUEUED" | "RESV_DEL_HOLD" | "REQUEUE_HOLD" | "REQUEUE_FED" => JobState::Pending,
        "RUNNING" | "COMPLETING" | "SUSPENDED" | "STAGE_OUT" | "SIGNALING" | "RESIZING" | "STOPPED" => JobState::Running,
        "COMPLETED" => JobState::Succeeded,
        "CANCELLED" => JobState::Cancelled,
        "FAILED" | "TIMEOUT" | "NODE_FAIL" | "OUT_OF_MEMORY" | "BOOT_FAIL" | "DEADLINE" | "PREEMPTED" | "SPECIAL_EXIT" | "REVOKED" => JobState::Failed,
        _ => JobState::Unknown,
    }
}

/// A job's record as gantry reads it. The exit code is the shell's: a wait status that ended by
/// a signal reads as `128 + signal`, as a shell reports it.
pub fn result(job: &SlurmJob) -> JobResult {
    let state = state(&job.job_state);
    let finished = matches!(state, JobState::Succeeded | JobState::Failed | JobState::Cancelled);
    let exit_code = job.exit_code.filter(|_| finished).map(|status| {
        let signal = status & 0x7f;
        let code = if signal == 0 { (status >> 8) & 0xff } else { 128 + signal };
        i32::try_from(code).unwrap_or(i32::MAX)
    });
    let ms = |s: Option<u64>| s.filter(|&s| s > 0).map(|s| s.saturating_mul(1000));
    let message = match job.state_reason.as_str() {
        "None" | "" => job.job_state.clone(),
        reason => format!("{} ({reason})", job.job_state),
    };
    JobResult {
        provider_job_id: job.job_id.to_string(),
        state,
        message,
        exit_code,
        started_ms: ms(job.start_time).filter(|_| state != JobState::Pending),
        ended_ms: ms(job.end_time).filter(|_| finished),
        log_path: Some(job.standard_output.clone()).filter(|p| p.starts_with('/') && !p.contains('%')),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings { base_url: "http://127.0.0.1:6820".into(), token: "t".into(), token_user: "root".into(), partition: Some("debug".into()), ..Settings::default() }
    }

    fn job() -> JobConfig {
        gantry_provider::testing::job()
    }

    #[test]
    fn a_job_becomes_a_batch_script_with_gres_environment_and_output() {
        let body = submission(&settings(), &job()).expect("valid");
        assert_eq!(body["script"], "#!/bin/bash\ncd src\npython train.py\n");
        let spec = &body["job"];
        assert_eq!(spec["name"], "gantry-7-2");
        assert_eq!(spec["gres"], "gpu:2");
        assert_eq!(spec["time_limit"], 2, "90 s is two minutes, rounded up");
        assert_eq!(spec["partition"], "debug");
        assert_eq!(spec["standard_output"], "/home/alice/run/gantry-7-2.out");
        assert_eq!(spec["environment"]["GANTRY_JOB_ID"], "7");
        assert!(spec["environment"]["PATH"].is_string(), "slurmrestd needs an environment and the script a PATH");
    }

    #[test]
    fn what_slurm_cannot_run_is_named_by_field() {
        let mut relative = job();
        relative.working_dir = "run".into();
        assert!(matches!(submission(&settings(), &relative), Err(ProviderError::InvalidConfig(m)) if m.starts_with("working-dir")));
        let mut image = job();
        image.image = "pytorch:2".into();
        assert!(matches!(submission(&settings(), &image), Err(ProviderError::InvalidConfig(m)) if m.starts_with("image")));
    }

    #[test]
    fn wait_statuses_read_as_a_shell_reports_them() {
        let ended = |state: &str, status: i64| result(&SlurmJob { job_id: 3, job_state: state.into(), exit_code: Some(status), end_time: Some(5), start_time: Some(4), ..SlurmJob::default() });
        let failed = ended("FAILED", 3 << 8);
        assert_eq!((failed.state, failed.exit_code, failed.ended_ms), (JobState::Failed, Some(3), Some(5000)));
        assert_eq!(ended("CANCELLED", 15).exit_code, Some(143));
        assert_eq!(ended("COMPLETED", 0).state, JobState::Succeeded);
        let running = ended("RUNNING", 0);
        assert_eq!((running.state, running.exit_code, running.ended_ms), (JobState::Running, None, None));
    }

    #[test]
    fn slurms_errors_are_named() {
        let refused = br#"{"errors":[{"error_code":2014,"error":"Requested node configuration is not available"}]}"#;
        assert!(matches!(answer(500, refused), Err(ProviderError::Remote(m)) if m == "Slurm: Requested node configuration is not available"));
        let missing = br#"{"errors":[{"description":"Unable to find JobId=99","error_number":2017,"error":"Invalid job id specified"}],"jobs":[]}"#;
        assert!(matches!(answer(500, missing), Err(ProviderError::NotFound(_))));
        assert!(matches!(answer(401, b"Authentication failure"), Err(ProviderError::Remote(m)) if m.contains("401") && m.contains("Authentication failure")));
    }
}
