//! Command files as runs: read, parsed by the parser plugin, checked like any submission, and
//! handed to the scheduler; and seed 001's "schedulers", which are runs of its numbered command
//! files (a scheduler's `pid` is the run's id).

use super::command_files::parse_mode;
use super::{off_thread, Service, ServiceError};
use crate::model::{Batch, FieldError, GpuCount, JobSpec, Principal, RunId, RunMode, RunProgress, RunState, RunStatus};
use crate::plugin::{Diagnostic, JobFile, ParseMode};
use crate::scheduler::RunRequest;
use serde::Serialize;
use std::path::{Path, PathBuf};

use crate::model::limits::COMMAND_FILE_BYTES as MAX_FILE_BYTES;

/// A run started from one of the numbered command files.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct StartedRun {
    pub status: RunStatus,
    /// Where its jobs' changes are written (seed 001's scheduler log).
    pub log_file: PathBuf,
    pub config_file: PathBuf,
}

/// A numbered command file and the run of it still going, if any.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct CommandFileRun {
    pub mode: RunMode,
    pub index: u32,
    pub run: Option<RunId>,
}

/// Seed 004 gives memory in GB (decimal fractions allowed); jobs need MiB. 1 GB in those files
/// means what `nvidia-smi` calls 1 GiB, 1024 MiB.
fn gb_to_mib(gb: f64) -> u64 {
    (gb.max(0.0) * 1024.0).ceil() as u64
}

/// A fault of job `jobs[i]` of `file` as a finding at the line its block starts on.
fn at_block(file: &Path, lines: &[u32], error: FieldError) -> ServiceError {
    let job = error.field.strip_prefix("jobs[").and_then(|rest| rest.split_once("].")).and_then(|(i, field)| Some((i.parse::<usize>().ok()?, field)));
    match job.and_then(|(i, field)| Some((*lines.get(i).filter(|l| **l > 0)?, field))) {
        Some((line, field)) => ServiceError::Parse { path: file.to_path_buf(), diagnostics: vec![Diagnostic { line, column: 1, message: format!("{field}: {}", error.message) }] },
        None => error.into(),
    }
}

/// The latest run of `file` still going.
fn running_of<'a>(runs: &'a [RunStatus], file: &Path) -> Option<&'a RunStatus> {
    runs.iter().rev().find(|r| r.run.file == file && r.run.state == RunState::Running)
}

impl Service {
    /// Loads a command file as a run; its queue ids become queues of the run.
    /// The file is read with the caller's rights: gantry reads for no one what they could not
    /// read themselves.
    pub async fn start_run(&self, who: &Principal, file: PathBuf, mode: Option<RunMode>) -> Result<RunStatus, ServiceError> {
        let text = self.read_as(who, file.clone(), MAX_FILE_BYTES).await?;
        self.start_file(who, file, text, mode, false).await
    }

    /// The checks every submission gets, and the scheduler's, name the block's line for a fault
    /// of one of its jobs.
    async fn start_file(&self, who: &Principal, file: PathBuf, text: String, mode: Option<RunMode>, exclusive: bool) -> Result<RunStatus, ServiceError> {
        let job_file = self.parse(&file, mode.map(parse_mode), text).await?;
        let lines: Vec<u32> = job_file.jobs.iter().map(|j| j.line).collect();
        let at_block = |e: FieldError| at_block(&file, &lines, e);
        let request = self.run_request(who, file.clone(), job_file, exclusive).await.map_err(|e| match e {
            ServiceError::Invalid(e) => at_block(e),
            other => other,
        })?;
        self.scheduler.start_run(request).await.map_err(|e| match e {
            crate::scheduler::SchedulerError::Invalid(e) => at_block(e),
            other => other.into(),
        })
    }

    async fn run_request(&self, who: &Principal, file: PathBuf, job_file: JobFile, exclusive: bool) -> Result<RunRequest, ServiceError> {
        let mode = match job_file.mode {
            ParseMode::Single => RunMode::Single,
            ParseMode::Multi => RunMode::Multi,
        };
        let cwd = file.parent().filter(|p| !p.as_os_str().is_empty()).map(Path::to_path_buf);
        let specs = job_file
            .jobs
            .into_iter()
            .map(|block| JobSpec {
                commands: block.commands,
                queue: Some(block.queue.to_string()),
                gpus: Some(GpuCount { min: block.gpu_count.max(1), max: block.gpu_count.max(1) }),
                memory_mib: gb_to_mib(block.memory_gb),
                cwd: cwd.clone(),
                provider: block.provider,
                burst: block.burst.as_ref().map(crate::plugin::burst_from_file),
                ..JobSpec::default()
            })
            .collect();
        let mut batch = Batch::new(specs)?;
        self.claim(who, &mut batch).await?;
        Ok(RunRequest { file, mode, batch, exclusive })
    }

    /// A command file's text as jobs, by the parser plugin (off the async threads); its
    /// findings come back with line and column.
    pub(super) async fn parse(&self, file: &Path, mode: Option<ParseMode>, text: String) -> Result<JobFile, ServiceError> {
        let (_, parser) = self.parser()?;
        let file_name = file.to_string_lossy().into_owned();
        let parsed = off_thread(move || parser.parse(&file_name, mode, &text)).await?;
        parsed.map_err(|diagnostics| ServiceError::Parse { path: file.to_path_buf(), diagnostics })
    }

    /// The configured parser plugin, by name, as loaded now.
    pub(super) fn parser(&self) -> Result<(String, std::sync::Arc<crate::plugin::LoadedPlugin>), ServiceError> {
        let name = self.config.read().plugins.parser.clone();
        let parser = self.plugins.get(&name).ok_or_else(|| ServiceError::NoParser(name.clone()))?;
        Ok((name, parser))
    }

    /// Stops a run, if every job of it is the caller's to cancel.
    pub async fn stop_run(&self, who: &Principal, id: RunId) -> Result<RunStatus, ServiceError> {
        Ok(self.scheduler.stop_run(id, who.scope()).await?)
    }

    pub async fn runs(&self) -> Result<Vec<RunStatus>, ServiceError> {
        Ok(self.scheduler.runs().await?)
    }

    pub async fn run(&self, id: RunId) -> Result<RunStatus, ServiceError> {
        let runs = self.scheduler.runs().await?;
        runs.into_iter().find(|r| r.run.id == id).ok_or(crate::scheduler::SchedulerError::NoSuchRun(id).into())
    }

    /// Starts numbered command file `index` of `mode`, unless a run of it is still going: the
    /// check and the start are one step of the scheduler, so two starts can't both pass it.
    pub async fn start_command_file(&self, who: &Principal, mode: RunMode, index: u32) -> Result<StartedRun, ServiceError> {
        let file = self.config.read().command_files.path(mode, index);
        // The daemon's own configured files, which admins write through the API.
        let text = read_as(None, file.clone(), MAX_FILE_BYTES).await?;
        let status = self.start_file(who, file.clone(), text, Some(mode), true).await?;
        Ok(StartedRun { log_file: self.run_log_path(status.run.id), config_file: file, status })
    }

    /// Stops the run of numbered command file `index` of `mode`.
    pub async fn stop_command_file(&self, who: &Principal, mode: RunMode, index: u32) -> Result<RunId, ServiceError> {
        let run = self.command_file_run(mode, index).await?.ok_or_else(|| ServiceError::NotFound(format!("{} configuration {index} is not running", mode.as_str())))?;
        self.scheduler.stop_run(run, who.scope()).await?;
        Ok(run)
    }

    /// The run of numbered command file `index` of `mode` still going, if any.
    pub async fn command_file_run(&self, mode: RunMode, index: u32) -> Result<Option<RunId>, ServiceError> {
        let file = self.config.read().command_files.path(mode, index);
        Ok(running_of(&self.scheduler.runs().await?, &file).map(|r| r.run.id))
    }

    /// Every numbered command file of both modes, with its run still going.
    pub async fn command_file_runs(&self) -> Result<Vec<CommandFileRun>, ServiceError> {
        let files = self.config.read().command_files.clone();
        let runs = self.scheduler.runs().await?;
        let listing = files.clone();
        let entries = off_thread(move || Ok::<_, ServiceError>([RunMode::Single, RunMode::Multi].map(|mode| (mode, listing.list(mode))))).await?;
        Ok(entries
            .into_iter()
            .flat_map(|(mode, list)| list.into_iter().map(move |entry| (mode, entry.index)))
            .map(|(mode, index)| CommandFileRun { mode, index, run: running_of(&runs, &files.path(mode, index)).map(|r| r.run.id) })
            .collect())
    }

    /// Each running run with its queues' progress, and which numbered command file it runs.
    pub async fn run_progress(&self, who: &Principal) -> Result<Vec<(RunProgress, Option<(RunMode, u32)>)>, ServiceError> {
        let files = self.config.read().command_files.clone();
        let mut progress = self.scheduler.progress().await?;
        let sees = self.sees(who);
        for current in progress.iter_mut().flat_map(|p| p.queues.iter_mut()).filter_map(|q| q.current.as_mut()).filter(|c| !sees.allows(c.owner.as_deref())) {
            current.first_command.clear();
        }
        off_thread(move || Ok::<_, ServiceError>(progress.into_iter().map(|p| {
            let located = files.locate(&p.status.run.file);
            (p, located)
        }).collect()))
        .await
    }
}

/// A text file's content, opened as `reader` (`None`: with the daemon's rights): a regular file
/// of at most `max_bytes`.
pub(super) async fn read_as(reader: Option<crate::unix::Account>, file: PathBuf, max_bytes: u64) -> Result<String, ServiceError> {
    off_thread(move || crate::unix::read_text(&file, reader.as_ref(), max_bytes)).await
}

#[cfg(test)]
mod tests {
    #[test]
    fn gigabytes_of_command_files() {
        assert_eq!(super::gb_to_mib(4.0), 4096);
        assert_eq!(super::gb_to_mib(0.5), 512);
        assert_eq!(super::gb_to_mib(0.3), 308);
    }
}
