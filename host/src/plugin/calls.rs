//! The calls into a loaded plugin, and the bounds on what each may return. A result is checked
//! before anything logs, stores or shows it: one over a bound is a failure of the plugin (counted,
//! quarantined), not a success; texts are escaped and cut.

use super::bindings::{parser, provider};
use super::loaded::{Instance, LoadedPlugin, Prepared};
use super::sandbox::classify;
use super::text::{shown, MAX_DIAGNOSTICS, MESSAGE_BYTES};
use super::{convert, PluginError, PluginKind};
use std::sync::atomic::Ordering;
use std::time::Instant;

pub use parser::exports::gantry::plugin::parser::{Diagnostic, JobFile, JobSpec, Mode as ParseMode};
pub use provider::exports::gantry::plugin::provider::{CostEstimate, GpuSpec, JobConfig, JobResult, JobState, Offer, ProviderError};

/// `file` but for where its blocks start, which a rendering does not keep: what
/// `parse(render(f)) == f` compares.
pub fn unlined(mut file: JobFile) -> JobFile {
    for job in &mut file.jobs {
        job.line = 0;
    }
    file
}

/// Most text a provider's `logs` may return; the end is kept.
pub const LOG_BYTES: usize = 1 << 20;

/// Most offers one provider call may return.
const MAX_OFFERS: usize = 10_000;

/// Most bytes of an offer's GPU type, region or currency.
const NAME_BYTES: usize = 128;

/// Most bytes of a rendered command file: what the service would read back.
pub const RENDER_BYTES: usize = 16 << 20;

/// A request to a provider plugin: seed 002's adapter interface.
#[derive(Clone, Debug)]
pub enum ProviderCall {
    Submit(JobConfig),
    Status(String),
    Logs { id: String, tail_lines: u32 },
    Cancel(String),
    EstimateCost(JobConfig),
    Offers(GpuSpec),
    Release(String),
}

/// A provider's answer; its own errors (`ProviderError`) are answers too, not plugin failures.
#[derive(Clone, Debug)]
pub enum ProviderReply {
    Job(Result<JobResult, ProviderError>),
    Logs(Result<String, ProviderError>),
    Cost(Result<CostEstimate, ProviderError>),
    Offers(Result<Vec<Offer>, ProviderError>),
    Released(Result<(), ProviderError>),
}

impl LoadedPlugin {
    fn oversized(&self, what: String) -> PluginError {
        self.failed(PluginError::Oversized { plugin: self.info.name.clone(), what })
    }

    /// Asks the policy for placements. An `err` result is a failure too: either way the caller
    /// falls back for this pass. At most one placement per pending job, each on at most as many
    /// GPUs as there are.
    pub fn place(&self, pending: &[placement::PendingJob], gpus: &[placement::GpuState], rules: &placement::Rules) -> Result<Vec<placement::Placement>, PluginError> {
        if !matches!(self.prepared, Prepared::Policy(_)) {
            return Err(self.wrong_kind(PluginKind::Policy));
        }
        let wit_pending: Vec<_> = pending.iter().map(convert::pending_job).collect();
        let wit_gpus: Vec<_> = gpus.iter().map(convert::gpu_state).collect();
        let wit_rules = convert::rules(rules);
        let answer = self.run(async |store, instance| match instance {
            Instance::Policy(b) => b.gantry_plugin_policy().call_place(store, &wit_pending, &wit_gpus, &wit_rules).await,
            _ => unreachable!("a policy's instances are policies"),
        })?;
        let placements = match answer {
            Ok(placements) => placements,
            Err(message) => return Err(self.failed(PluginError::Returned { plugin: self.info.name.clone(), message: shown(&message, MESSAGE_BYTES) })),
        };
        if placements.len() > pending.len() {
            return Err(self.oversized(format!("{} placements for {} pending jobs", placements.len(), pending.len())));
        }
        if let Some(p) = placements.iter().find(|p| p.gpus.len() > gpus.len()) {
            return Err(self.oversized(format!("job {} placed on {} GPUs of {}", p.job, p.gpus.len(), gpus.len())));
        }
        self.succeeded();
        Ok(placements.into_iter().map(convert::placement).collect())
    }

    /// Parses a command file. Its findings (an `err`) are an answer, kept to the first
    /// [`MAX_DIAGNOSTICS`], each escaped and cut; jobs beyond the plugin's `max_jobs`, or a job
    /// whose commands are longer than a submission may be, make the call a failure.
    pub fn parse(&self, file_name: &str, mode: Option<ParseMode>, text: &str) -> Result<Result<JobFile, Vec<Diagnostic>>, PluginError> {
        if !matches!(self.prepared, Prepared::Parser(_)) {
            return Err(self.wrong_kind(PluginKind::Parser));
        }
        let answer = self.run(async |store, instance| match instance {
            Instance::Parser(b) => b.gantry_plugin_parser().call_parse(store, file_name, mode, text).await,
            _ => unreachable!("a parser's instances are parsers"),
        })?;
        match answer {
            Ok(file) => {
                let max = self.settings.limits.max_jobs;
                if file.jobs.len() > max {
                    return Err(self.oversized(format!("{} jobs from one file; at most {max}", file.jobs.len())));
                }
                let longest = file.jobs.iter().map(|j| j.commands.iter().map(|c| c.len() + 1).sum::<usize>()).max().unwrap_or(0);
                if longest > crate::model::limits::COMMAND_BYTES {
                    return Err(self.oversized(format!("a job of {longest} bytes of commands; at most {}", crate::model::limits::COMMAND_BYTES)));
                }
                self.succeeded();
                Ok(Ok(file))
            }
            Err(mut diagnostics) => {
                self.succeeded();
                let more = diagnostics.len().saturating_sub(MAX_DIAGNOSTICS);
                diagnostics.truncate(MAX_DIAGNOSTICS);
                for d in &mut diagnostics {
                    d.message = shown(&d.message, MESSAGE_BYTES);
                }
                if more > 0 {
                    diagnostics.push(Diagnostic { line: 0, column: 0, message: format!("… and {more} more") });
                }
                Ok(Err(diagnostics))
            }
        }
    }

    /// Writes a job file in its format; no longer than a command file the service would read.
    pub fn render(&self, file: &JobFile) -> Result<String, PluginError> {
        if !matches!(self.prepared, Prepared::Parser(_)) {
            return Err(self.wrong_kind(PluginKind::Parser));
        }
        let text = self.run(async |store, instance| match instance {
            Instance::Parser(b) => b.gantry_plugin_parser().call_render(store, file).await,
            _ => unreachable!("a parser's instances are parsers"),
        })?;
        if text.len() > RENDER_BYTES {
            return Err(self.oversized(format!("{} bytes of rendered text; at most {RENDER_BYTES}", text.len())));
        }
        self.succeeded();
        Ok(text)
    }

    /// One provider call under the plugin's own settings.
    pub async fn provider(&self, call: ProviderCall) -> Result<ProviderReply, PluginError> {
        self.provider_with(call, &self.settings).await
    }

    /// One provider call. Providers wait on the network, so the call is async; it is bounded by the
    /// deadline of `settings` both inside the guest (epochs) and around host I/O (a timer).
    /// `settings` are those of one provider instance (`[providers.NAME]`): several instances of
    /// one plugin each reach their own URL with their own credential.
    pub async fn provider_with(&self, call: ProviderCall, settings: &super::PluginSettings) -> Result<ProviderReply, PluginError> {
        if !matches!(self.prepared, Prepared::Provider(_)) {
            return Err(self.wrong_kind(PluginKind::Provider));
        }
        self.stats().calls.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let mut store = self.call_store(settings)?;
        let ticking = super::engine::Ticking::start();
        let limit = settings.limits.timeout;
        let result = tokio::time::timeout(limit, async {
            let Instance::Provider(bindings) = self.instantiate(&mut store).await? else { unreachable!("a provider's instances are providers") };
            let p = bindings.gantry_plugin_provider();
            Ok(match &call {
                ProviderCall::Submit(job) => ProviderReply::Job(p.call_submit(&mut store, job).await?),
                ProviderCall::Status(id) => ProviderReply::Job(p.call_status(&mut store, id).await?),
                ProviderCall::Cancel(id) => ProviderReply::Job(p.call_cancel(&mut store, id).await?),
                ProviderCall::Logs { id, tail_lines } => ProviderReply::Logs(p.call_logs(&mut store, id, *tail_lines).await?),
                ProviderCall::EstimateCost(job) => ProviderReply::Cost(p.call_estimate_cost(&mut store, job).await?),
                ProviderCall::Offers(gpu) => ProviderReply::Offers(p.call_offers(&mut store, gpu).await?),
                ProviderCall::Release(id) => ProviderReply::Released(p.call_release(&mut store, id).await?),
            })
        })
        .await;
        drop(ticking);
        self.stats().record_duration(started.elapsed());
        match result {
            Ok(Ok(reply)) => {
                if let ProviderReply::Offers(Ok(offers)) = &reply
                    && offers.len() > MAX_OFFERS
                {
                    return Err(self.oversized(format!("{} offers; at most {MAX_OFFERS}", offers.len())));
                }
                self.succeeded();
                let reply = bounded(reply);
                Ok(match store.data_mut().hooks.take_denial() {
                    Some(denial) => with_denial(reply, &denial),
                    None => reply,
                })
            }
            Ok(Err(e)) => Err(self.failed(classify(&self.info.name, &settings.limits, &store, e))),
            Err(_) => Err(self.failed(PluginError::Timeout { plugin: self.info.name.clone(), limit })),
        }
    }
}

/// A provider's error as people read it: what kind of fault, and the provider's words.
pub fn describe(e: &ProviderError) -> String {
    match e {
        ProviderError::InvalidConfig(m) => format!("invalid: {m}"),
        ProviderError::NotFound(m) => format!("not found: {m}"),
        ProviderError::Remote(m) => m.clone(),
        ProviderError::Transport(m) => format!("unreachable: {m}"),
    }
}

/// The message of a provider's own error, changed by `f`, whichever kind it is.
fn map_message(e: ProviderError, f: impl FnOnce(String) -> String) -> ProviderError {
    match e {
        ProviderError::InvalidConfig(m) => ProviderError::InvalidConfig(f(m)),
        ProviderError::NotFound(m) => ProviderError::NotFound(f(m)),
        ProviderError::Remote(m) => ProviderError::Remote(f(m)),
        ProviderError::Transport(m) => ProviderError::Transport(f(m)),
    }
}

/// A provider's error, with what the host refused it: the plugin only learned "denied".
fn with_denial(reply: ProviderReply, denial: &str) -> ProviderReply {
    let note = |e| map_message(e, |m: String| if m.is_empty() { denial.to_string() } else { format!("{m} ({denial})") });
    match reply {
        ProviderReply::Job(r) => ProviderReply::Job(r.map_err(note)),
        ProviderReply::Logs(r) => ProviderReply::Logs(r.map_err(note)),
        ProviderReply::Cost(r) => ProviderReply::Cost(r.map_err(note)),
        ProviderReply::Offers(r) => ProviderReply::Offers(r.map_err(note)),
        ProviderReply::Released(r) => ProviderReply::Released(r.map_err(note)),
    }
}

/// A provider's texts escaped and cut: messages to [`MESSAGE_BYTES`], logs to their last
/// [`LOG_BYTES`] (where a job's log says why it ended).
fn bounded(reply: ProviderReply) -> ProviderReply {
    let error = |e| map_message(e, |m| shown(&m, MESSAGE_BYTES));
    match reply {
        ProviderReply::Job(r) => ProviderReply::Job(r.and_then(job_result).map_err(error)),
        ProviderReply::Logs(r) => ProviderReply::Logs(
            r.map(|text| {
                let mut start = text.len().saturating_sub(LOG_BYTES);
                while !text.is_char_boundary(start) {
                    start += 1;
                }
                text[start..].to_string()
            })
            .map_err(error),
        ),
        ProviderReply::Cost(r) => ProviderReply::Cost(r.map(|c| CostEstimate { detail: shown(&c.detail, MESSAGE_BYTES), ..c }).map_err(error)),
        ProviderReply::Offers(r) => ProviderReply::Offers(
            r.map(|offers| {
                let named = |text: &str| shown(text, NAME_BYTES);
                offers.into_iter().map(|o| Offer { gpu: GpuSpec { gpu_type: named(&o.gpu.gpu_type), ..o.gpu }, region: named(&o.region), currency: named(&o.currency), ..o }).collect()
            })
            .map_err(error),
        ),
        ProviderReply::Released(r) => ProviderReply::Released(r.map_err(error)),
    }
}

/// Longest provider job id the host keeps.
const ID_BYTES: usize = 256;

/// A job result as the host records it: its message escaped and cut. Its id is kept exactly, as
/// later calls name the job by it, so one that is not short printable text is an error.
fn job_result(j: JobResult) -> Result<JobResult, ProviderError> {
    let id = &j.provider_job_id;
    if id.len() > ID_BYTES || id.chars().any(char::is_control) {
        return Err(ProviderError::Remote(format!("it answered a job id that is not printable text of at most {ID_BYTES} bytes ({} bytes: {})", id.len(), shown(id, 32))));
    }
    Ok(JobResult { message: shown(&j.message, MESSAGE_BYTES), ..j })
}

impl LoadedPlugin {
    /// The call a freshly loaded plugin must answer: empty input, empty output.
    pub(super) fn smoke_check(&self) -> Result<(), PluginError> {
        let failed = |message: String| PluginError::FailedCheck { plugin: self.info.name.clone(), message };
        match self.info.kind {
            PluginKind::Policy => {
                let rules = placement::Rules { gpu_left: 0, min_gpu: 1, max_gpu: 1, memory_margin_mib: 0, allow_sharing: false, memory_save_mode: false, params: vec![] };
                // Nothing pending: any placement is already over the bound and fails the call.
                self.place(&[], &[], &rules).map_err(|e| failed(e.to_string()))?;
            }
            PluginKind::Parser => match self.parse("command_gpu.txt", None, "").map_err(|e| failed(e.to_string()))? {
                Ok(file) if file.jobs.is_empty() => {}
                Ok(file) => return Err(failed(format!("found {} job(s) in an empty file", file.jobs.len()))),
                Err(d) => return Err(failed(format!("rejected an empty file: {}", d.first().map_or(String::new(), |d| d.message.clone())))),
            },
            // A provider's calls reach the network; `info()` is its check.
            PluginKind::Provider => {}
        }
        Ok(())
    }
}
