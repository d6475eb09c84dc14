//! The commands that drive the daemon: submit, run, stop, jobs, status, logs, cancel, hold,
//! release. Each is one or two API calls and a printout.

use super::client::Client;
use super::units::{duration, parse_memory, parse_pair, url_encode};
use anyhow::{anyhow, Context};
use clap::{Args, ValueEnum};
use gantry::service::LogChunk;
use gantry::model::{GpuCount, Job, JobSpec, RunMode, RunStatus, Status};
use serde_json::json;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct SubmitArgs {
    /// Jobs of one queue run one after another; without one, the job waits only for a GPU.
    #[arg(long, short)]
    queue: Option<String>,
    /// GPUs: N, or MIN..MAX to take as many as the rules allow.
    #[arg(long, value_name = "N|MIN..MAX")]
    gpus: Option<GpuCount>,
    /// GPU memory needed on each GPU: 20G, 512M (a bare number is MiB).
    #[arg(long, value_parser = parse_memory)]
    mem: Option<u64>,
    /// Further attempts after a failure.
    #[arg(long)]
    retries: Option<u32>,
    /// Start only after this job succeeded (repeatable).
    #[arg(long, value_name = "ID")]
    after: Vec<u64>,
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    priority: i32,
    /// Working directory (default: the current one).
    #[arg(long)]
    cwd: Option<PathBuf>,
    /// KEY=VALUE added to the job's environment (repeatable).
    #[arg(long, value_parser = parse_pair)]
    env: Vec<(String, String)>,
    /// Send none of this shell's environment: the job gets only its login variables (HOME,
    /// USER, SHELL, a default PATH) and --env. By default it gets this shell's environment, as
    /// Slurm's `sbatch` does, so `conda activate` and `PATH` carry over.
    #[arg(long)]
    no_export: bool,
    /// KEY=VALUE label (repeatable).
    #[arg(long, value_parser = parse_pair)]
    label: Vec<(String, String)>,
    /// Submit held: it waits until `gantry release ID`.
    #[arg(long)]
    hold: bool,
    #[arg(long)]
    json: bool,
    /// An array: one job per index, `{}` in the command replaced by it (Slurm's syntax: 0..99,
    /// 0-99, 1,5,7, 0..20:2; `%4` at the end runs at most four at once).
    #[arg(long, value_name = "INDICES")]
    array: Option<String>,
    /// A sweep: one job per combination of the values (NAME=1e-3,3e-4 or NAME=1..3,
    /// repeatable), `{NAME}` in the command replaced by each.
    #[arg(long, value_name = "NAME=VALUES", value_parser = parse_pair)]
    sweep: Vec<(String, String)>,
    /// At most this many elements of the array or sweep run at once.
    #[arg(long, value_name = "N")]
    max_running: Option<u32>,
    /// On a federation master: submit on this node, as yourself there, or on `any` node whose
    /// GPUs have room for it now (as the policy judges them), else one that could hold it.
    #[arg(long, value_name = "NAME|any")]
    node: Option<String>,
    /// Stop an attempt that runs longer than this (90s, 30m, 12h, 2d), failing it; a provider
    /// gets it as its own limit.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    time: Option<std::time::Duration>,
    /// Hand the job to this configured provider (`gantry providers` lists them): it runs there,
    /// not on this server's GPUs, with the same states, retries, logs and cancel.
    #[arg(long, value_name = "NAME", conflicts_with = "burst")]
    provider: Option<String>,
    /// Wait for a GPU here, but not for long: after --max-wait (default: the daemon's
    /// `burst_max_wait_s`), or at once if it can never fit here, hand the job to the first
    /// provider that takes it (`--burst-to` names them, in order; default: every one).
    #[arg(long)]
    burst: bool,
    /// How long a --burst job waits here: 90s, 30m, 2h.
    #[arg(long, value_name = "DURATION", value_parser = duration, requires = "burst")]
    max_wait: Option<std::time::Duration>,
    /// A provider a --burst job may go to (repeatable; tried in this order).
    #[arg(long, value_name = "NAME", requires = "burst")]
    burst_to: Vec<String>,
    /// The container image the --provider runs it in (default: the provider's options.image).
    #[arg(long, requires = "provider")]
    image: Option<String>,
    /// The GPU type the provider should give it (A100, or the provider's own name of a type).
    #[arg(long, value_name = "TYPE")]
    gpu_type: Option<String>,
    /// Submit nothing: show how long the job would wait here beside what each provider would
    /// charge for it (for --time, if given).
    #[arg(long, conflicts_with_all = ["array", "sweep", "node"])]
    dry_run: bool,
    /// The command, run by a shell.
    #[arg(last = true, required = true, num_args = 1..)]
    command: Vec<String>,
}

/// A job here (`12`), an element of an array here (`12.3`: array 12, index 3), or a job on a
/// node of this federation master (`gpu2:12`).
#[derive(Clone, Debug, PartialEq)]
pub struct JobRef {
    node: Option<String>,
    id: u64,
    element: Option<u32>,
}

impl std::str::FromStr for JobRef {
    type Err = String;

    fn from_str(text: &str) -> Result<JobRef, String> {
        let wrong = || format!("'{text}' is not ID, ARRAY.INDEX or NODE:ID (a job id is a number)");
        let (node, rest) = match text.rsplit_once(':') {
            Some((node, id)) if !node.is_empty() => (Some(node.to_string()), id),
            Some(_) => return Err(wrong()),
            None => (None, text),
        };
        let (id, element) = match rest.split_once('.') {
            Some(_) if node.is_some() => return Err(format!("'{text}': an array element on another node is named by its job id there")),
            Some((id, index)) => (id, Some(index.parse().map_err(|_| wrong())?)),
            None => (rest, None),
        };
        Ok(JobRef { node, id: id.parse().map_err(|_| wrong())?, element })
    }
}

impl std::fmt::Display for JobRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.node, self.element) {
            (Some(node), _) => write!(f, "{node}:{}", self.id),
            (None, Some(index)) => write!(f, "{}.{index}", self.id),
            (None, None) => write!(f, "{}", self.id),
        }
    }
}

impl JobRef {
    /// The job's route: here (an array's element found by its index), or through the master
    /// on its node.
    fn route(&self, client: &Client) -> anyhow::Result<String> {
        match (&self.node, self.element) {
            (Some(node), _) => Ok(format!("/api/v1/nodes/{}/jobs/{}", url_encode(node), self.id)),
            (None, Some(index)) => {
                let array: gantry::service::ArrayView = client.get(&format!("/api/v1/arrays/{}", self.id))?;
                let id = array.elements.iter().find(|e| e.index == index).map(|e| e.id).ok_or_else(|| anyhow!("array {} has no element {index}", self.id))?;
                Ok(format!("/api/v1/jobs/{id}"))
            }
            (None, None) => Ok(format!("/api/v1/jobs/{}", self.id)),
        }
    }
}

pub fn submit(client: &Client, args: SubmitArgs) -> anyhow::Result<ExitCode> {
    let cwd = match args.cwd {
        Some(dir) => Some(dir),
        None => std::env::current_dir().ok(),
    };
    let spec = JobSpec {
        commands: vec![args.command.join(" ")],
        queue: args.queue,
        gpus: args.gpus,
        memory_mib: args.mem.unwrap_or(0),
        priority: args.priority,
        retries: args.retries,
        cwd,
        env: exported(args.no_export).chain(args.env).collect(),
        labels: args.label.into_iter().collect(),
        after: args.after.into_iter().map(|id| gantry::model::Dependency::Job(gantry::model::JobId(id))).collect(),
        hold: args.hold,
        time_limit_s: args.time.map(|d| d.as_secs().max(1)),
        provider: args.provider,
        image: args.image,
        gpu_type: args.gpu_type,
        burst: args.burst.then(|| gantry::model::Burst {
            max_wait_ms: args.max_wait.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            providers: args.burst_to,
        }),
        ..JobSpec::default()
    };
    if args.dry_run {
        let count = spec.gpus.map_or(1, |g| g.min.max(1));
        let answer = super::providers::ask(client, &super::providers::Question { gpu: String::new(), count, memory_mib: spec.memory_mib, catalog: false })?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&answer)?);
        } else {
            super::providers::print(&answer, spec.time_limit_s.map(|s| s as f64 / 3600.0));
            println!("nothing submitted (--dry-run)");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let route = match &args.node {
        Some(node) => format!("/api/v1/nodes/{}/jobs", url_encode(node)),
        None => "/api/v1/jobs".to_string(),
    };
    let mut body = serde_json::to_value(&spec)?;
    if args.array.is_some() || !args.sweep.is_empty() {
        let sweep: Vec<serde_json::Value> = args.sweep.iter().map(|(name, values)| json!({ "name": name, "values": gantry::model::array::parse_values(values) })).collect();
        let mut array = json!({ "sweep": sweep });
        if let Some(indices) = &args.array {
            array["indices"] = json!(indices);
        }
        if let Some(n) = args.max_running {
            array["max_running"] = json!(n);
        }
        body["array"] = array;
    }
    let answer: serde_json::Value = client.post(&route, &body)?;
    if args.json {
        println!("{answer}");
    } else if let Some(array) = answer["array"].as_u64() {
        let count = answer["ids"].as_array().map_or(0, Vec::len);
        println!("submitted array {array}: {count} jobs, {array}.0 … {array}.{} (`gantry jobs {array}`)", count.saturating_sub(1));
    } else {
        let node = answer["node"].as_str().map(|n| format!("{n}:")).unwrap_or_default();
        let ids = answer["ids"].as_array().cloned().unwrap_or_default();
        for id in ids {
            println!("submitted job {node}{id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// This shell's environment, less what gantry sets for each job or must not pass on (its own
/// settings and tokens).
fn exported(none: bool) -> impl Iterator<Item = (String, String)> {
    std::env::vars()
        .filter(move |_| !none)
        .filter(|(name, _)| !(name.starts_with("GANTRY_") || matches!(name.as_str(), "CUDA_VISIBLE_DEVICES" | "CUDA_DEVICE_ORDER" | "_" | "OLDPWD" | "PWD" | "SHLVL")))
}

#[derive(Clone, Copy, ValueEnum)]
enum ModeArg {
    Single,
    Multi,
}

#[derive(Args)]
pub struct RunArgs {
    /// A command file (seed 004's command_gpu*.txt or command_gpus*.txt format).
    file: PathBuf,
    /// The format; by default taken from the file name.
    #[arg(long, value_enum)]
    mode: Option<ModeArg>,
    #[arg(long)]
    json: bool,
}

pub fn run(client: &Client, args: RunArgs) -> anyhow::Result<ExitCode> {
    // The daemon reads the file: name it absolutely, as seen from here.
    let file = std::path::absolute(&args.file).with_context(|| format!("{}", args.file.display()))?;
    let mode = args.mode.map(|m| match m {
        ModeArg::Single => RunMode::Single,
        ModeArg::Multi => RunMode::Multi,
    });
    let run: RunStatus = client.post("/api/v1/runs", &json!({ "file": file, "mode": mode }))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&run)?);
    } else {
        println!("run {} started: {} job(s) from {}", run.run.id, run.counts.total, run.run.file.display());
    }
    Ok(ExitCode::SUCCESS)
}

pub fn stop(client: &Client, run: u64) -> anyhow::Result<ExitCode> {
    let status: RunStatus = client.post(&format!("/api/v1/runs/{run}/stop"), &json!({}))?;
    println!("run {} stopped: {} succeeded, {} failed, {} cancelled", status.run.id, status.counts.succeeded, status.counts.failed, status.counts.cancelled);
    Ok(ExitCode::SUCCESS)
}

pub fn shutdown(client: &Client) -> anyhow::Result<ExitCode> {
    let answer: serde_json::Value = client.post("/api/v1/shutdown", &json!({}))?;
    println!("gantry daemon (pid {}) is stopping; running jobs carry on", answer["pid"]);
    Ok(ExitCode::SUCCESS)
}

/// `cancel`, `hold`, `release`: one job, one verb.
/// `verb` on one job, or on a whole array named by its id (as `scancel 12` does; `12.0` is its
/// first element alone).
pub fn act(client: &Client, verb: &str, job: &JobRef) -> anyhow::Result<ExitCode> {
    if job.node.is_none() && job.element.is_none() {
        let found: Job = client.get(&format!("/api/v1/jobs/{}", job.id))?;
        if found.array.is_some_and(|place| place.id.0 == job.id) {
            let array: gantry::service::ArrayView = client.post(&format!("/api/v1/arrays/{}/{verb}", job.id), &json!({}))?;
            println!("array {}: {}", array.id, states(&array.counts));
            return Ok(ExitCode::SUCCESS);
        }
    }
    let answer: Job = client.post(&format!("{}/{verb}", job.route(client)?), &json!({}))?;
    println!("job {job}: {}", answer.state.as_str());
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct JobsArgs {
    /// Only jobs in this state (waiting, held, running, succeeded, failed, cancelled).
    #[arg(long)]
    state: Option<String>,
    #[arg(long)]
    json: bool,
    /// On a federation master: also the jobs running on every node, as `NODE:ID`.
    #[arg(long)]
    all_nodes: bool,
    /// An array or sweep (by its id): its elements and how far it is.
    array: Option<u64>,
}

/// Every job (in `state`), page by page as the daemon answers them.
fn all_jobs(client: &Client, state: Option<&str>) -> anyhow::Result<Vec<serde_json::Value>> {
    let filter = state.map(|s| format!("&state={}", url_encode(s))).unwrap_or_default();
    let mut jobs = Vec::new();
    loop {
        let answer: serde_json::Value = client.get(&format!("/api/v1/jobs?offset={}{filter}", jobs.len()))?;
        let page = answer["jobs"].as_array().cloned().unwrap_or_default();
        let total = answer["total"].as_u64().unwrap_or(0);
        if page.is_empty() {
            return Ok(jobs);
        }
        jobs.extend(page);
        if jobs.len() as u64 >= total {
            return Ok(jobs);
        }
    }
}

pub fn jobs(client: &Client, args: JobsArgs) -> anyhow::Result<ExitCode> {
    if let Some(id) = args.array {
        let answer: serde_json::Value = client.get(&format!("/api/v1/arrays/{id}"))?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&answer)?);
            return Ok(ExitCode::SUCCESS);
        }
        let array: gantry::service::ArrayView = serde_json::from_value(answer)?;
        let c = &array.counts;
        println!("array {id}: {} jobs, at most {} at once; {}", c.total, array.max_running, states(c));
        for element in &array.elements {
            let params: Vec<String> = element.labels.iter().filter(|(k, _)| k.as_str() != "array_index").map(|(k, v)| format!("{k}={v}")).collect();
            println!("{:>9}  job {:<6}  {:<9}  {}", format!("{id}.{}", element.index), element.id, element.state.as_str(), params.join(" "));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let all = all_jobs(client, args.state.as_deref())?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(ExitCode::SUCCESS);
    }
    let jobs: Vec<Job> = all.into_iter().map(serde_json::from_value).collect::<Result<_, _>>()?;
    println!("{:>5}  {:<9}  {:<10}  {:<14}  {:<6}  {:>8}  {:>3}  COMMAND", "ID", "STATE", "OWNER", "QUEUE", "GPUS", "MEM", "TRY");
    for job in &jobs {
        let gpus = job.current_attempt().map(where_it_runs).unwrap_or_default();
        let command = if job.redacted { "(not yours to see)".to_string() } else { job.spec.commands.join(" && ") };
        let command = match job.array {
            Some(place) => format!("[{}.{}] {command}", place.id, place.index),
            None => command,
        };
        println!(
            "{:>5}  {:<9}  {:<10}  {:<14}  {:<6}  {:>8}  {:>3}  {}",
            job.id,
            job.state.as_str(),
            truncate(job.spec.owner.as_deref().unwrap_or("-"), 10),
            truncate(&job.queue, 14),
            gpus,
            format!("{}M", job.memory_mib),
            job.attempts.len(),
            truncate(&command, 60)
        );
    }
    if args.all_nodes {
        let nodes: Vec<gantry::federation::NodeView> = client.get("/api/v1/nodes")?;
        for node in nodes {
            for job in node.report.map(|r| r.running).unwrap_or_default() {
                let gpus = job.gpus.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
                let id = format!("{}:{}", node.name, job.id);
                println!("{id:>5}  {:<9}  {:<10}  {:<14}  {gpus:<6}  {:>8}  {:>3}  (on node {})", "running", truncate(job.owner.as_deref().unwrap_or("-"), 10), truncate(&job.queue, 14), format!("{}M", job.memory_mib), "", node.name);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A local attempt's GPUs (`0,1`), or the provider and its id for the job (`slurm#4127`).
fn where_it_runs(attempt: &gantry::model::Attempt) -> String {
    match &attempt.remote {
        Some(remote) => format!("{}#{}", remote.provider, remote.id.as_deref().unwrap_or("?")),
        None => attempt.gpus.iter().map(u32::to_string).collect::<Vec<_>>().join(","),
    }
}

/// How many jobs are in each state, as every summary line says it.
fn states(c: &gantry::model::Counts) -> String {
    format!("{} waiting, {} held, {} running, {} succeeded, {} failed, {} cancelled", c.waiting, c.held, c.running, c.succeeded, c.failed, c.cancelled)
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max { text.to_string() } else { format!("{}…", text.chars().take(max - 1).collect::<String>()) }
}

pub fn status(client: &Client, json_out: bool) -> anyhow::Result<ExitCode> {
    let status: serde_json::Value = client.get("/api/v1/status")?;
    if json_out {
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(ExitCode::SUCCESS);
    }
    let status: Status = serde_json::from_value(status).map_err(|e| anyhow!("unexpected status from the daemon: {e}"))?;
    let c = &status.counts;
    println!("jobs: {}", states(c));
    if let Some(decider) = &status.last_decider {
        println!("placement: {decider}");
    }
    for run in &status.runs {
        let c = &run.counts;
        println!(
            "run {} [{:?}] {}: {} total, {} waiting, {} running, {} succeeded, {} failed",
            run.run.id, run.run.state, run.run.file.display(), c.total, c.waiting + c.held, c.running, c.succeeded, c.failed
        );
    }
    for queue in &status.queues {
        let backoff = queue.backoff_until_ms.map(|t| format!(", backing off until {t}")).unwrap_or_default();
        let error = queue.last_error.as_deref().map(|e| format!(", last error: {e}")).unwrap_or_default();
        println!("queue {}: {} left, running {:?}{backoff}{error}", queue.name, queue.counts.waiting + queue.counts.held + queue.counts.running, queue.current);
    }
    let mut per_gpu: BTreeMap<u32, Vec<gantry::model::JobId>> = BTreeMap::new();
    for job in &status.running {
        for gpu in &job.gpus {
            per_gpu.entry(*gpu).or_default().push(job.id);
        }
    }
    for (gpu, jobs) in per_gpu {
        println!("GPU {gpu}: jobs {jobs:?}");
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct LogsArgs {
    /// ID, or NODE:ID on a federation master.
    #[arg(value_name = "ID|NODE:ID")]
    id: JobRef,
    /// Keep printing as the job writes, until it ends.
    #[arg(long, short)]
    follow: bool,
    /// An earlier attempt (default: the latest).
    #[arg(long)]
    attempt: Option<u32>,
}

pub fn logs(client: &Client, args: LogsArgs) -> anyhow::Result<ExitCode> {
    let attempt = args.attempt.map(|n| format!("&attempt={n}")).unwrap_or_default();
    let mut out = std::io::stdout().lock();
    let log = format!("{}/log", args.id.route(client)?);
    if !args.follow || args.id.node.is_some() {
        // A log on another node is followed page by page through the master.
        let mut offset = 0;
        loop {
            let chunk: LogChunk = client.get(&format!("{log}?offset={offset}{attempt}"))?;
            out.write_all(chunk.data.as_bytes())?;
            out.flush()?;
            if !args.follow || chunk.complete {
                return Ok(ExitCode::SUCCESS);
            }
            if chunk.next_offset == offset {
                std::thread::sleep(std::time::Duration::from_millis(500));
            }
            offset = chunk.next_offset;
        }
    }
    // Server-sent events: `log` events carry chunks, `end` says the attempt is over.
    let events = client.stream(&format!("{log}?follow=true{attempt}"))?;
    let mut kind = String::new();
    for line in std::io::BufRead::lines(std::io::BufReader::new(events)) {
        let line = line.context("reading the log stream")?;
        if let Some(k) = line.strip_prefix("event: ") {
            kind = k.to_string();
            if kind == "end" {
                break;
            }
        } else if let Some(data) = line.strip_prefix("data: ").filter(|_| kind == "log") {
            let chunk: LogChunk = serde_json::from_str(data).context("reading the log stream")?;
            out.write_all(chunk.data.as_bytes())?;
            out.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::JobRef;

    #[test]
    fn a_job_is_named_by_its_id_an_array_element_as_array_dot_index_and_on_another_node_as_node_colon_id() {
        let here: JobRef = "12".parse().expect("an id");
        let there: JobRef = "gpu-2.lab:7".parse().expect("node:id");
        let element: JobRef = "12.3".parse().expect("array.index");
        assert_eq!((here.id, here.node.as_deref(), here.element, here.to_string()), (12, None, None, "12".to_string()));
        assert_eq!((there.id, there.node.as_deref(), there.element, there.to_string()), (7, Some("gpu-2.lab"), None, "gpu-2.lab:7".to_string()));
        assert_eq!((element.id, element.element, element.to_string()), (12, Some(3), "12.3".to_string()));
        for wrong in [":7", "gpu2:", "gpu2:x", "x", "12.x", "gpu2:12.3"] {
            assert!(wrong.parse::<JobRef>().is_err(), "{wrong}");
        }
    }
}

#[derive(Args)]
pub struct ApiArgs {
    /// GET, POST, PUT, PATCH or DELETE.
    method: String,
    /// The route, with its query: `/api/v1/jobs?state=running`.
    path: String,
    /// A JSON body, or `@FILE`, or `@-` for standard input.
    #[arg(long, short)]
    data: Option<String>,
}

/// Prints the body as the daemon sent it; a refusal exits 1 with the body on standard error.
pub fn api(client: &Client, args: ApiArgs) -> anyhow::Result<ExitCode> {
    let method = args.method.to_ascii_uppercase();
    if !matches!(method.as_str(), "GET" | "POST" | "PUT" | "PATCH" | "DELETE") {
        anyhow::bail!("'{}' is not one of GET, POST, PUT, PATCH, DELETE", args.method);
    }
    if !args.path.starts_with('/') {
        anyhow::bail!("'{}': a route starts with /, like /api/v1/node", args.path);
    }
    let body = match args.data.as_deref() {
        None => None,
        Some("@-") => {
            let mut text = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut text).context("reading standard input")?;
            Some(text)
        }
        Some(data) => match data.strip_prefix('@') {
            Some(file) => Some(std::fs::read(file).with_context(|| format!("reading {file}"))?),
            None => Some(data.as_bytes().to_vec()),
        },
    };
    let (status, answer) = client.raw(&method, &args.path, body)?;
    if (200..300).contains(&status) {
        std::io::stdout().write_all(&answer)?;
        println!();
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("HTTP {status}: {}", String::from_utf8_lossy(&answer));
        Ok(ExitCode::from(1))
    }
}

pub fn quota(client: &Client, user: Option<String>, json: bool) -> anyhow::Result<ExitCode> {
    let path = match &user {
        Some(name) => format!("/api/v1/quota?user={}", url_encode(name)),
        None => "/api/v1/quota".to_string(),
    };
    let answer: serde_json::Value = client.get(&path)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(ExitCode::SUCCESS);
    }
    let limit = |cap: &serde_json::Value| {
        let gpus = cap["gpus"].as_u64().map_or_else(|| "no limit".to_string(), |g| g.to_string());
        let memory = cap["memory_mib"].as_u64().map_or_else(|| "no limit".to_string(), |m| format!("{m} MiB"));
        format!("GPUs {gpus}, memory {memory}")
    };
    let holds = |h: &serde_json::Value| format!("{} GPU(s), {} MiB", h["gpus"], h["memory_mib"]);
    println!("{}: may hold {}; holds {}", answer["owner"].as_str().unwrap_or("?"), limit(&answer["cap"]), holds(&answer["holds"]));
    for group in answer["groups"].as_array().into_iter().flatten() {
        println!("  group {}: may hold {}; its members hold {}", group["name"].as_str().unwrap_or("?"), limit(&group["cap"]), holds(&group["holds"]));
    }
    println!(
        "recent use: {:.2} GPU-hours (half-life {} h); of equal priority, whoever used less starts first",
        answer["recent_gpu_hours"].as_f64().unwrap_or(0.0),
        answer["half_life_hours"]
    );
    Ok(ExitCode::SUCCESS)
}
