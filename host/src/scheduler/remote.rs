//! Attempts that a provider runs (`[providers.NAME]`): submitted, followed and cancelled through
//! the provider's plugin, each reporting back as messages, as a shim's attempt does. The engine
//! commits an attempt (with its key) before it is submitted, and again with the provider's id,
//! so a daemon restarted at any point follows the job it made instead of making another.
//!
//! Following a job is polling: its status after `poll_ms`, then twice as long each time nothing
//! changed, up to `poll_max_ms`. Each poll also copies what the job wrote to its output file
//! since the last into the attempt's log, reading it with the rights of the job's owner, so
//! `gantry logs -f` follows a Slurm job as it does a local one.

use super::messages::Msg;
use crate::executor::{Adoption, ExitRecord, RotatingLog};
use crate::model::{JobId, RemoteAttempt, RemoteCost};
use crate::plugin::{describe, GpuSpec, JobConfig, JobResult, JobState, ProviderCall, ProviderError, ProviderReply};
use crate::providers::{CallError, Providers};
use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Duration;

/// Most bytes of a provider's output file copied per poll: a job that writes faster is caught up
/// over the next polls, never read whole into memory.
const COPY_BYTES: u64 = 4 << 20;

/// A job as a provider needs it, taken from the job and its attempt by the engine.
#[derive(Clone, Debug)]
pub struct RemoteSpec {
    pub provider: String,
    pub key: String,
    pub name: String,
    pub commands: Vec<String>,
    pub gpus: u32,
    pub memory_mib: u64,
    pub cwd: Option<PathBuf>,
    pub env: BTreeMap<String, String>,
    /// The Unix user it runs as (`None`: the daemon's own).
    pub run_as: Option<u32>,
    /// The attempt's directory, where its log is.
    pub dir: PathBuf,
    pub log_max_bytes: u64,
    pub log_keep: u32,
    pub started_ms: u64,
    pub time_limit_s: Option<u64>,
    pub image: Option<String>,
    pub gpu_type: Option<String>,
    pub cpus: Option<u32>,
    pub ram_gib: Option<u32>,
    /// The tightest monthly budget that applies to the job's owner, if one does.
    pub budget: Option<BudgetLeft>,
    /// For a bursting job: the most it may cost an hour, and in which currency.
    pub max_price: Option<(f64, String)>,
}

/// Why a bursting job may not go where the price is `per_hour` in `currency`, if it may not.
fn too_dear(max: &(f64, String), currency: &str, per_hour: f64) -> Option<String> {
    let (most, ours) = max;
    if per_hour <= 0.0 {
        None
    } else if currency != ours {
        Some(format!("it charges in {currency}, and [scheduler] burst_max_price_per_hour is in {ours}"))
    } else {
        (per_hour > *most).then(|| format!("it charges {} {ours} an hour, more than [scheduler] burst_max_price_per_hour = {}", amount(per_hour), amount(*most)))
    }
}

/// A monthly budget and what was spent against it this month.
#[derive(Clone, Debug, PartialEq)]
pub struct BudgetLeft {
    /// `alice`, or `group ml`.
    pub whose: String,
    pub limit: f64,
    pub spent: f64,
    pub currency: String,
}

impl BudgetLeft {
    /// Why a provider that charges `per_hour` in `currency` may not take a job with this budget
    /// (and `time_limit_s`, if it has one); `None` where it may.
    pub fn refuses(&self, currency: &str, per_hour: f64, time_limit_s: Option<u64>) -> Option<String> {
        let Self { whose, limit, spent, currency: ours } = self;
        let left = limit - spent;
        let (limit, spent, left_text) = (amount(*limit), amount(*spent), amount(left));
        if per_hour <= 0.0 {
            None
        } else if currency != ours {
            Some(format!("it charges in {currency}, and {whose}'s monthly budget is in {ours}"))
        } else if left <= 0.0 {
            Some(format!("{whose}'s monthly budget is spent: {spent} of {limit} {ours} this month ([quotas] monthly_budget)"))
        } else {
            let most = per_hour * time_limit_s? as f64 / 3600.0;
            (most > left).then(|| format!("it may cost {} {ours} by its time limit, and {whose} has {left_text} of {limit} {ours} left this month ([quotas] monthly_budget)", amount(most)))
        }
    }
}

/// Money as people read it: cents, or four places for what is less than one.
fn amount(x: f64) -> String {
    if x.abs() >= 1.0 { format!("{x:.2}") } else { format!("{x:.4}") }
}

pub struct RemoteJobs {
    providers: Arc<Providers>,
    runtime: tokio::runtime::Handle,
}

/// How a submission went, for the engine.
enum Submitted {
    Yes(JobResult),
    /// The provider said no: the job can't run there as it is. It fails, without retries.
    Refused(String),
    /// The provider could not be reached, or its plugin failed: the job waits and is submitted
    /// again after a while.
    Unavailable(String),
}

impl RemoteJobs {
    pub fn new(providers: Arc<Providers>, runtime: tokio::runtime::Handle) -> Self {
        RemoteJobs { providers, runtime }
    }

    pub fn has(&self, name: &str) -> bool {
        self.providers.names().iter().any(|n| n == name)
    }

    pub fn names(&self) -> Vec<String> {
        self.providers.names()
    }

    pub fn key(&self, job: JobId, attempt: u32) -> String {
        self.providers.key(job.0, attempt)
    }

    /// Submits the attempt (again, with its key, when `known` has no id yet) and follows it to
    /// its end: `RemoteSubmitted`, `RemoteState` as it changes, then `Ended`; or `RemoteRefused`
    /// / `RemoteUnavailable` instead of all of that.
    pub fn run(&self, job: JobId, attempt: u32, spec: RemoteSpec, known: RemoteAttempt, tx: Sender<Msg>) {
        let providers = self.providers.clone();
        self.runtime.spawn(async move {
            let user = match user_of(spec.run_as).await {
                Ok(user) => user,
                Err(reason) => {
                    let _ = tx.send(Msg::RemoteRefused { job, attempt, reason });
                    return;
                }
            };
            let config = job_config(&spec, user);
            // A new submission is priced first, so a budget is checked before anything is rented.
            let priced = match (&known.id, &known.cost) {
                (None, None) => price(&providers, &spec.provider, config.clone()).await,
                _ => None,
            };
            if known.id.is_none()
                && let Some((currency, per_hour)) = &priced
                && let Some(why) = spec.max_price.as_ref().and_then(|max| too_dear(max, currency, *per_hour)).or_else(|| spec.budget.as_ref()?.refuses(currency, *per_hour, spec.time_limit_s))
            {
                let _ = tx.send(Msg::RemoteRefused { job, attempt, reason: format!("provider {}: {why}", spec.provider) });
                return;
            }
            let first = match &known.id {
                Some(id) => status(&providers, &spec, id).await.map_or_else(Submitted::Unavailable, Submitted::Yes),
                None => submit(&providers, &spec, config.clone()).await,
            };
            let result = match first {
                Submitted::Yes(result) => result,
                Submitted::Refused(reason) => {
                    let _ = tx.send(Msg::RemoteRefused { job, attempt, reason });
                    return;
                }
                Submitted::Unavailable(reason) if known.id.is_none() => {
                    let _ = tx.send(Msg::RemoteUnavailable { job, attempt, provider: spec.provider.clone(), reason });
                    return;
                }
                // Submitted before a restart: it is followed, however long the provider is away.
                Submitted::Unavailable(reason) => {
                    tracing::warn!(job = %job, provider = %spec.provider, error = %reason, "following a remote job");
                    JobResult { provider_job_id: known.id.clone().unwrap_or_default(), state: JobState::Unknown, message: reason, exit_code: None, started_ms: None, ended_ms: None, log_path: known.log_path.clone() }
                }
            };
            let id = result.provider_job_id.clone();
            let log_path = result.log_path.clone().or(known.log_path.clone());
            let price = match (&known.cost, priced) {
                (Some(_), _) => None,
                (None, Some(priced)) => Some(priced),
                // Submitted before a restart that came before its price was kept.
                (None, None) if known.id.is_some() => price(&providers, &spec.provider, config).await,
                (None, None) => None,
            };
            let price = price.map(|(currency, per_hour)| RemoteCost { currency, per_hour, running_since_ms: result.started_ms, total: 0.0 });
            let _ = tx.send(Msg::RemoteSubmitted { job, attempt, id: id.clone(), log_path: log_path.clone(), state: result.message.clone(), price });
            let outcome = follow(&providers, &spec, &id, log_path, result, job, attempt, &tx).await;
            let _ = tx.send(Msg::Ended { job, attempt, outcome });
        });
    }

    /// Asks the provider to cancel; the attempt ends when its status says so.
    pub fn cancel(&self, provider: String, id: String) {
        let providers = self.providers.clone();
        self.runtime.spawn(async move {
            match providers.call(&provider, ProviderCall::Cancel(id.clone())).await {
                Ok(ProviderReply::Job(Err(e))) => tracing::warn!(provider = %provider, job = %id, error = %describe(&e), "cancelling a remote job"),
                Err(e) => tracing::warn!(provider = %provider, job = %id, error = %e, "cancelling a remote job"),
                Ok(_) => {}
            }
        });
    }
}

/// The name the job runs as on the provider's side.
async fn user_of(uid: Option<u32>) -> Result<String, String> {
    let uid = uid.unwrap_or_else(crate::unix::euid);
    tokio::task::spawn_blocking(move || crate::unix::Account::by_uid(uid).map(|a| a.name).map_err(|e| format!("the job's user (uid {uid}): {e}")))
        .await
        .map_err(|e| e.to_string())?
}

fn job_config(spec: &RemoteSpec, user: String) -> JobConfig {
    JobConfig {
        name: spec.name.clone(),
        key: spec.key.clone(),
        user,
        working_dir: spec.cwd.as_ref().map(|d| d.display().to_string()).unwrap_or_default(),
        image: spec.image.clone().unwrap_or_default(),
        command: spec.commands.clone(),
        gpu: GpuSpec { gpu_type: spec.gpu_type.clone().unwrap_or_default(), count: spec.gpus, memory_gib: u32::try_from(spec.memory_mib.div_ceil(1024)).unwrap_or(u32::MAX) },
        cpus: spec.cpus.unwrap_or(0),
        ram_gib: spec.ram_gib.unwrap_or(0),
        env: spec.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        timeout_s: spec.time_limit_s,
        region: None,
    }
}

/// What the provider charges for each hour of the job, if it has a price: a currency of 1 to 16
/// letters and a finite amount of at least 0. Asked once, when the job is submitted.
async fn price(providers: &Providers, provider: &str, config: JobConfig) -> Option<(String, f64)> {
    match providers.call(provider, ProviderCall::EstimateCost(config)).await {
        Ok(ProviderReply::Cost(Ok(estimate))) => {
            let currency_ok = (1..=16).contains(&estimate.currency.len()) && estimate.currency.chars().all(|c| c.is_ascii_alphabetic());
            (currency_ok && estimate.per_hour.is_finite() && estimate.per_hour >= 0.0).then_some((estimate.currency, estimate.per_hour))
        }
        Ok(ProviderReply::Cost(Err(e))) => {
            tracing::debug!(provider = %provider, error = %describe(&e), "no price for a remote job");
            None
        }
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(provider = %provider, error = %e, "asking a provider for a job's price");
            None
        }
    }
}

async fn submit(providers: &Providers, spec: &RemoteSpec, config: JobConfig) -> Submitted {
    match providers.call(&spec.provider, ProviderCall::Submit(config)).await {
        Ok(ProviderReply::Job(Ok(result))) if result.provider_job_id.is_empty() => Submitted::Refused(format!("provider {}: it answered no job id", spec.provider)),
        Ok(ProviderReply::Job(Ok(result))) => Submitted::Yes(plausible(result, spec.started_ms)),
        Ok(ProviderReply::Job(Err(e @ ProviderError::Transport(_)))) => Submitted::Unavailable(format!("provider {}: {}", spec.provider, describe(&e))),
        Ok(ProviderReply::Job(Err(e))) => Submitted::Refused(format!("provider {} refused it: {}", spec.provider, describe(&e))),
        Ok(_) => Submitted::Unavailable(format!("provider {}: answered submit with something else", spec.provider)),
        Err(e) => Submitted::Unavailable(e.to_string()),
    }
}

async fn status(providers: &Providers, spec: &RemoteSpec, id: &str) -> Result<JobResult, String> {
    match providers.call(&spec.provider, ProviderCall::Status(id.to_string())).await {
        Ok(ProviderReply::Job(Ok(result))) => Ok(JobResult { provider_job_id: id.to_string(), ..plausible(result, spec.started_ms) }),
        Ok(ProviderReply::Job(Err(ProviderError::NotFound(m)))) => Err(format!("not found: {m}")),
        Ok(ProviderReply::Job(Err(e))) => Err(describe(&e)),
        Ok(_) => Err("answered status with something else".into()),
        Err(e @ CallError::Unknown(_)) => Err(format!("{e} (its configuration went away)")),
        Err(e) => Err(e.to_string()),
    }
}

/// How far a provider's clock may be ahead of this server's, or its start times behind the
/// attempt's (Slurm's are whole seconds).
const CLOCK_SKEW_MS: u64 = 60_000;

/// A provider's answer with what can't be true left out: times before the attempt was made or
/// after now (beyond [`CLOCK_SKEW_MS`]) or an end before the start, and a log path that is not
/// absolute (it would be read relative to the daemon's directory). The path is read later with
/// the job's user's rights, never the daemon's, so a plugin gains nothing by naming a file the
/// job could not read itself.
fn plausible(mut result: JobResult, attempt_started_ms: u64) -> JobResult {
    let now = crate::model::now_ms();
    let range = attempt_started_ms.saturating_sub(CLOCK_SKEW_MS)..=now.saturating_add(CLOCK_SKEW_MS);
    result.started_ms = result.started_ms.filter(|t| range.contains(t)).map(|t| t.min(now));
    result.ended_ms = result.ended_ms.filter(|t| range.contains(t)).map(|t| t.min(now)).filter(|&t| result.started_ms.is_none_or(|s| s <= t));
    result.log_path = result.log_path.filter(|p| Path::new(p).is_absolute() && p.len() <= 4096 && !p.contains('\0'));
    result
}

fn is_final(state: JobState) -> bool {
    matches!(state, JobState::Succeeded | JobState::Failed | JobState::Cancelled)
}

/// Polls until the job is over; what it ended as, for the engine.
#[allow(clippy::too_many_arguments)]
async fn follow(providers: &Providers, spec: &RemoteSpec, id: &str, log_path: Option<String>, first: JobResult, job: JobId, attempt: u32, tx: &Sender<Msg>) -> Result<Adoption, String> {
    let (poll_min, poll_max) = providers.poll(&spec.provider);
    let mut copier = LogCopier::new(spec, log_path);
    let mut last = first;
    let mut said = last.message.clone();
    let mut wait = poll_min;
    let mut missing = 0;
    while !is_final(last.state) {
        tokio::time::sleep(wait).await;
        copier = copier.copy().await;
        copier = copier.copy_served(providers, &spec.provider, id).await;
        match status(providers, spec, id).await {
            Ok(result) => {
                missing = 0;
                if result.message != said || result.state != last.state {
                    wait = poll_min;
                    said = result.message.clone();
                    let _ = tx.send(Msg::RemoteState { job, attempt, state: said.clone(), started_ms: result.started_ms });
                } else {
                    wait = (wait * 2).min(poll_max);
                }
                if copier.path.is_none() {
                    copier.path = result.log_path.clone();
                }
                last = result;
            }
            // A provider that forgot the job (Slurm purges finished jobs after MinJobAge) after
            // three asks in a row: it is lost, and retried as any lost attempt is.
            Err(e) if e.starts_with("not found") => {
                missing += 1;
                if missing >= 3 {
                    copier.copy().await;
                    return Ok(Adoption::Lost { ran: true, reason: format!("provider {} no longer knows job {id}: {e}", spec.provider) });
                }
                wait = poll_min;
            }
            Err(e) => {
                tracing::warn!(job = %job, provider = %spec.provider, error = %e, "asking about a remote job; asking again later");
                wait = (wait * 2).min(poll_max);
            }
        }
    }
    copier.copy().await.copy_served(providers, &spec.provider, id).await;
    release(providers, &spec.provider, id).await;
    let now = crate::model::now_ms();
    let record = |exit_code| ExitRecord { exit_code: Some(exit_code), signal: None, started_ms: last.started_ms.unwrap_or(spec.started_ms), ended_ms: last.ended_ms.unwrap_or(now), peak_rss_kib: 0 };
    Ok(match (last.state, last.exit_code) {
        (JobState::Succeeded, code) => Adoption::Finished(record(code.unwrap_or(0))),
        (_, Some(code)) if code != 0 => Adoption::Finished(record(code)),
        (state, _) => Adoption::Lost { ran: true, reason: format!("provider {}: job {id} {}: {}", spec.provider, if state == JobState::Cancelled { "was cancelled there" } else { "failed" }, last.message) },
    })
}

/// Tells the provider the job is over and its output copied, so it can delete what it still
/// bills for. A failure is logged, not retried: what is left costs the user money but takes no
/// job's result with it, and the warning names it.
async fn release(providers: &Providers, provider: &str, id: &str) {
    match providers.call(provider, ProviderCall::Release(id.to_string())).await {
        Ok(ProviderReply::Released(Ok(()))) => {}
        Ok(ProviderReply::Released(Err(e))) => tracing::warn!(provider = %provider, job = %id, error = %describe(&e), "releasing a finished remote job: it may still be billed there"),
        Ok(_) => tracing::warn!(provider = %provider, job = %id, "answered release with something else"),
        Err(e) => tracing::warn!(provider = %provider, job = %id, error = %e, "releasing a finished remote job: it may still be billed there"),
    }
}

/// How much of the provider's output file is in the attempt's log, beside it.
const OFFSET_FILE: &str = "remote-log-offset";

/// Copies what a provider's output file gained into the attempt's log. Blocking work, on a
/// blocking thread; the copier travels there and back.
struct LogCopier {
    path: Option<String>,
    dir: PathBuf,
    run_as: Option<u32>,
    max_bytes: u64,
    keep: u32,
    offset: u64,
    log: Option<RotatingLog>,
    warned: bool,
    /// No more asking the provider for its log: it serves none, or the log outgrew what one
    /// answer holds.
    served_done: bool,
}

impl LogCopier {
    /// Resumes where an earlier daemon's copier stopped: a restart appends what is new, not
    /// the whole output again.
    fn new(spec: &RemoteSpec, path: Option<String>) -> Self {
        let offset = std::fs::read_to_string(spec.dir.join(OFFSET_FILE)).ok().and_then(|t| t.trim().parse().ok()).unwrap_or(0);
        LogCopier { path, dir: spec.dir.clone(), run_as: spec.run_as, max_bytes: spec.log_max_bytes, keep: spec.log_keep, offset, log: None, warned: false, served_done: false }
    }

    async fn copy(self) -> Self {
        self.on_blocking_thread(Self::copy_now).await
    }

    /// Copies what the provider's log API (`logs`) gained, for a job whose output is in no file
    /// here (Kubernetes: the pod's log). Each answer is the whole log, of which the host keeps
    /// the last [`PROVIDER_LOG_BYTES`]; past that size an answer no longer starts where the log
    /// does, so copying stops there, and the log says so.
    async fn copy_served(mut self, providers: &Providers, provider: &str, id: &str) -> Self {
        if self.path.is_some() || self.served_done {
            return self;
        }
        match providers.call(provider, ProviderCall::Logs { id: id.to_string(), tail_lines: 0 }).await {
            Ok(ProviderReply::Logs(Ok(text))) => self.on_blocking_thread(move |copier| copier.append_served(text.as_bytes())).await,
            // It serves none: its output is where `log_path` would have said.
            Ok(ProviderReply::Logs(Err(ProviderError::InvalidConfig(_)))) => {
                self.served_done = true;
                self
            }
            // No log yet (no pod), or the provider is away: asked again at the next poll.
            Ok(ProviderReply::Logs(Err(_))) | Err(_) => self,
            Ok(_) => {
                self.served_done = true;
                self
            }
        }
    }

    fn append_served(&mut self, text: &[u8]) -> Result<(), String> {
        if text.len() >= crate::plugin::PROVIDER_LOG_BYTES {
            self.served_done = true;
            let note = format!("\n[gantry: the provider's log passed {} MiB; the rest is at the provider]\n", crate::plugin::PROVIDER_LOG_BYTES >> 20);
            return self.open_log()?.write(note.as_bytes()).map_err(|e| e.to_string());
        }
        let Some(new) = usize::try_from(self.offset).ok().and_then(|offset| text.get(offset..)).filter(|new| !new.is_empty()) else { return Ok(()) };
        self.open_log()?.write(new).map_err(|e| e.to_string())?;
        self.offset = text.len() as u64;
        self.save_offset()
    }

    async fn on_blocking_thread(mut self, work: impl FnOnce(&mut Self) -> Result<(), String> + Send + 'static) -> Self {
        match tokio::task::spawn_blocking(move || {
            if let Err(e) = work(&mut self) {
                if !self.warned {
                    tracing::warn!(dir = %self.dir.display(), error = %e, "copying a remote job's output");
                }
                self.warned = true;
            }
            self
        })
        .await
        {
            Ok(copier) => copier,
            Err(e) => panic!("the log copier's thread panicked: {e}"),
        }
    }

    /// The job's owner, if the daemon is someone else.
    fn account(&self) -> Result<Option<crate::unix::Account>, String> {
        match self.run_as {
            Some(uid) if uid != crate::unix::euid() => crate::unix::Account::by_uid(uid).map(Some).map_err(|e| e.to_string()),
            _ => Ok(None),
        }
    }

    /// The attempt's log, opened (and given to the job's owner) on first use.
    fn open_log(&mut self) -> Result<&mut RotatingLog, String> {
        if self.log.is_none() {
            std::fs::create_dir_all(&self.dir).map_err(|e| format!("{}: {e}", self.dir.display()))?;
            let mut log = RotatingLog::open(&crate::executor::log_path(&self.dir), self.max_bytes, self.keep).map_err(|e| e.to_string())?;
            if let Some(account) = self.account()? {
                log.give_to(account.uid, account.gid).map_err(|e| e.to_string())?;
            }
            self.log = Some(log);
        }
        self.log.as_mut().ok_or_else(|| "the attempt's log".to_string())
    }

    fn save_offset(&self) -> Result<(), String> {
        let offset_file = self.dir.join(OFFSET_FILE);
        std::fs::write(&offset_file, self.offset.to_string()).map_err(|e| format!("{}: {e}", offset_file.display()))
    }

    fn copy_now(&mut self) -> Result<(), String> {
        let account = self.account()?;
        // The attempt's log exists from its first poll, as a local attempt's does from its start.
        self.open_log()?;
        let Some(path) = self.path.clone() else { return Ok(()) };
        let source = Path::new(&path);
        let (mut file, meta) = match crate::unix::open_as(source, account.as_ref(), crate::unix::ReadLimit { max_bytes: None, single_link: true }) {
            Ok(opened) => opened,
            // Not written yet: the job has not started.
            Err(crate::unix::OpenError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e.to_string()),
        };
        if meta.len() <= self.offset {
            return Ok(());
        }
        file.seek(SeekFrom::Start(self.offset)).map_err(|e| e.to_string())?;
        let mut bytes = Vec::new();
        file.take(COPY_BYTES).read_to_end(&mut bytes).map_err(|e| e.to_string())?;
        self.open_log()?.write(&bytes).map_err(|e| e.to_string())?;
        self.offset += bytes.len() as u64;
        self.save_offset()
    }
}

/// The retry delay of a provider that could not be reached: doubling from a second to a minute.
pub fn unavailable_backoff(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.min(6)).min(Duration::from_secs(60))
}

#[cfg(test)]
mod tests {
    use super::{plausible, too_dear, BudgetLeft, JobResult, JobState, CLOCK_SKEW_MS};

    #[test]
    fn a_bursting_job_passes_over_a_provider_dearer_than_the_rule() {
        let max = (3.0, "USD".to_string());
        assert_eq!(too_dear(&max, "USD", 2.5), None);
        assert_eq!(too_dear(&max, "EUR", 0.0), None, "free is never too dear");
        assert_eq!(too_dear(&max, "USD", 3.78).as_deref(), Some("it charges 3.78 USD an hour, more than [scheduler] burst_max_price_per_hour = 3.00"));
        assert!(too_dear(&max, "CNY", 12.4).is_some_and(|m| m.contains("charges in CNY")));
    }

    fn answered(started_ms: Option<u64>, ended_ms: Option<u64>, log_path: Option<&str>) -> JobResult {
        JobResult { provider_job_id: "7".into(), state: JobState::Succeeded, message: String::new(), exit_code: Some(0), started_ms, ended_ms, log_path: log_path.map(String::from) }
    }

    #[test]
    fn a_budget_refuses_a_price_once_spent_or_too_dear_for_the_time_limit() {
        let budget = BudgetLeft { whose: "alice".into(), limit: 10.0, spent: 8.5, currency: "USD".into() };
        assert_eq!(budget.refuses("USD", 0.0, Some(3600)), None, "free is always allowed");
        assert_eq!(budget.refuses("USD", 1.0, Some(3600)), None, "1.00 of the 1.50 left");
        assert_eq!(budget.refuses("USD", 1.0, None), None, "no limit: allowed while something is left");
        assert_eq!(budget.refuses("USD", 2.0, Some(3600)).as_deref(), Some("it may cost 2.00 USD by its time limit, and alice has 1.50 of 10.00 USD left this month ([quotas] monthly_budget)"));
        assert!(budget.refuses("EUR", 1.0, None).is_some_and(|m| m.contains("charges in EUR")));
        let spent = BudgetLeft { spent: 10.2, ..budget };
        assert_eq!(spent.refuses("USD", 0.5, None).as_deref(), Some("alice's monthly budget is spent: 10.20 of 10.00 USD this month ([quotas] monthly_budget)"));
    }

    #[test]
    fn a_providers_impossible_times_and_relative_log_paths_are_left_out() {
        let now = crate::model::now_ms();
        let attempt = now - 10_000;
        let kept = plausible(answered(Some(attempt - 500), Some(now - 1), Some("/shared/out/7.log")), attempt);
        assert_eq!((kept.started_ms, kept.ended_ms, kept.log_path.as_deref()), (Some(attempt - 500), Some(now - 1), Some("/shared/out/7.log")), "a start in the same second as the attempt, Slurm's rounding");
        let future = plausible(answered(Some(u64::MAX), Some(now + CLOCK_SKEW_MS / 2), Some("../../etc/passwd")), attempt);
        assert_eq!(future.started_ms, None);
        assert!(future.ended_ms.is_some_and(|t| t <= crate::model::now_ms()), "a little ahead is skew, taken as now");
        assert_eq!(future.log_path, None, "relative to the daemon's directory, it would name a file of the daemon's choosing");
        let backwards = plausible(answered(Some(now - 2_000), Some(now - 5_000), None), attempt);
        assert_eq!((backwards.started_ms, backwards.ended_ms), (Some(now - 2_000), None), "an end before the start");
        assert_eq!(plausible(answered(Some(1), Some(1), None), attempt).started_ms, None, "long before the attempt was made");
    }
}
