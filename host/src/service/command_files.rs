//! Seed 004's numbered command files, read and written through the parser plugin: a file is
//! written only if it parses, and a rendered configuration only if it parses back to itself.
//! File work and plugin calls run off the async threads.

use super::{off_thread, Service, ServiceError};
use crate::command_files::Entry;
use crate::model::{FieldError, RunMode};
use crate::plugin::{JobFile, JobSpec as Block, ParseMode};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Seed 004's command configuration: queues, each a list of processes run one after another.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandConfig {
    pub queues: Vec<QueueBlock>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueBlock {
    pub id: u32,
    pub processes: Vec<Process>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Process {
    /// Position in its queue, from 1; given back, ignored on the way in.
    #[serde(default)]
    pub id: u32,
    pub commands: Vec<String>,
    #[serde(default = "one")]
    pub gpu_count: u32,
    /// GB per GPU.
    pub memory: f64,
    /// gantry's extension: the configured provider it runs on (`#gantry provider` in the file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// gantry's extension: waits here, then goes to a provider (`#gantry burst`); whole seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<crate::model::Burst>,
}

fn one() -> u32 {
    1
}

/// A command file as the native API returns it.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct CommandFileView {
    pub mode: RunMode,
    pub index: u32,
    pub path: PathBuf,
    pub text: String,
    #[serde(flatten)]
    pub data: CommandConfig,
}

pub fn parse_mode(mode: RunMode) -> ParseMode {
    match mode {
        RunMode::Single => ParseMode::Single,
        RunMode::Multi => ParseMode::Multi,
    }
}

impl CommandConfig {
    /// Blocks grouped by queue in the order queues first appear.
    pub fn from_file(file: &JobFile) -> CommandConfig {
        let mut queues: Vec<QueueBlock> = Vec::new();
        for block in &file.jobs {
            let position = match queues.iter().position(|q| q.id == block.queue) {
                Some(p) => p,
                None => {
                    queues.push(QueueBlock { id: block.queue, processes: Vec::new() });
                    queues.len() - 1
                }
            };
            let processes = &mut queues[position].processes;
            processes.push(Process {
                id: processes.len() as u32 + 1,
                commands: block.commands.clone(),
                gpu_count: block.gpu_count,
                memory: block.memory_gb,
                provider: block.provider.clone(),
                burst: block.burst.as_ref().map(crate::plugin::burst_from_file),
            });
        }
        CommandConfig { queues }
    }

    /// The job file, after the checks the parser would make of the text (naming the field).
    pub fn to_file(&self, mode: RunMode) -> Result<JobFile, ServiceError> {
        let mut jobs = Vec::new();
        for (q, queue) in self.queues.iter().enumerate() {
            for (p, process) in queue.processes.iter().enumerate() {
                let at = |field: &str| format!("queues[{q}].processes[{p}].{field}");
                if process.commands.is_empty() || process.commands.iter().any(|c| c.trim().is_empty() || c.contains('\n')) {
                    return Err(FieldError::new(at("commands"), "needs one or more non-empty single-line commands").into());
                }
                if !process.memory.is_finite() || process.memory < 0.0 {
                    return Err(FieldError::new(at("memory"), format!("must be GB >= 0, got {}", process.memory)).into());
                }
                if process.gpu_count == 0 || (mode == RunMode::Single && process.gpu_count != 1) {
                    return Err(FieldError::new(at("gpu_count"), "single mode runs each process on one GPU; multi mode needs at least 1").into());
                }
                if process.provider.is_some() && process.burst.is_some() {
                    return Err(FieldError::new(at("burst"), "a process runs on a provider or bursts to one, not both").into());
                }
                let burst = match &process.burst {
                    Some(burst) => Some(crate::plugin::burst_to_file(burst).ok_or_else(|| FieldError::new(at("burst.max_wait_ms"), "a command file keeps whole seconds"))?),
                    None => None,
                };
                jobs.push(Block { queue: queue.id, commands: process.commands.clone(), gpu_count: process.gpu_count, memory_gb: process.memory, line: 0, provider: process.provider.clone(), burst });
            }
        }
        Ok(JobFile { mode: parse_mode(mode), jobs })
    }
}

/// What a new or replaced command file holds: the queues, rendered by the parser plugin, or the
/// text itself.
#[derive(Clone, Debug)]
pub enum Content {
    Empty,
    Config(CommandConfig),
    Text(String),
}

/// A numbered command file in a listing, with its queues or why they could not be read.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct CommandFileSummary {
    #[serde(flatten)]
    pub entry: Entry,
    pub data: Option<CommandConfig>,
    pub error: Option<String>,
}

impl Service {
    fn command_files(&self) -> crate::config::CommandFiles {
        self.config.read().command_files.clone()
    }

    pub async fn list_command_files(&self, mode: RunMode) -> Result<Vec<Entry>, ServiceError> {
        let files = self.command_files();
        off_thread(move || Ok::<_, ServiceError>(files.list(mode))).await
    }

    /// The command files of both modes: single, then multi.
    pub async fn all_command_file_entries(&self) -> Result<(Vec<Entry>, Vec<Entry>), ServiceError> {
        let files = self.command_files();
        off_thread(move || Ok::<_, ServiceError>((files.list(RunMode::Single), files.list(RunMode::Multi)))).await
    }

    /// Every command file of a mode with its queues, or why they could not be read.
    pub async fn all_command_files(&self, mode: RunMode) -> Result<Vec<CommandFileSummary>, ServiceError> {
        let mut out = Vec::new();
        for entry in self.list_command_files(mode).await? {
            let (data, error) = match entry.exists {
                true => match self.command_file(mode, entry.index).await {
                    Ok(view) => (Some(view.data), None),
                    Err(e) => (None, Some(e.detail_lines().join("\n"))),
                },
                false => (None, None),
            };
            out.push(CommandFileSummary { entry, data, error });
        }
        Ok(out)
    }

    pub async fn command_file(&self, mode: RunMode, index: u32) -> Result<CommandFileView, ServiceError> {
        let files = self.command_files();
        let path = files.path(mode, index);
        let text = off_thread(move || files.read(mode, index)).await?;
        let file = self.parse(&path, Some(parse_mode(mode)), text.clone()).await?;
        Ok(CommandFileView { mode, index, path, text, data: CommandConfig::from_file(&file) })
    }

    /// Replaces a command file with `content`, if it passes the parser (see [`Service::checked_text`]).
    pub async fn put_command_file(&self, mode: RunMode, index: u32, content: Content) -> Result<CommandFileView, ServiceError> {
        let files = self.command_files();
        let text = self.checked_text(mode, &files.path(mode, index), content).await?;
        off_thread(move || files.write(mode, index, &text)).await?;
        self.command_file(mode, index).await
    }

    /// A new command file after the last, holding `content` if it passes the parser: its entry in
    /// the listing, and the file as read back.
    pub async fn new_command_file(&self, mode: RunMode, content: Content) -> Result<(Entry, CommandFileView), ServiceError> {
        let files = self.command_files();
        let index = off_thread({
            let files = files.clone();
            move || files.next_index(mode)
        })
        .await?;
        // Written where it was checked, under the name its mode and index give.
        let text = self.checked_text(mode, &files.path(mode, index), content).await?;
        let entries = off_thread(move || {
            files.write(mode, index, &text)?;
            Ok::<_, ServiceError>(files.list(mode))
        })
        .await?;
        let entry = entries.into_iter().find(|e| e.index == index).ok_or_else(|| ServiceError::Internal(format!("{} configuration {index} vanished as it was made", mode.as_str())))?;
        Ok((entry, self.command_file(mode, index).await?))
    }

    pub async fn delete_command_file(&self, mode: RunMode, index: u32) -> Result<(), ServiceError> {
        let files = self.command_files();
        off_thread(move || files.delete(mode, index)).await
    }

    pub async fn reset_command_file(&self, mode: RunMode, index: u32) -> Result<CommandFileView, ServiceError> {
        let files = self.command_files();
        off_thread(move || files.reset(mode, index)).await?;
        self.command_file(mode, index).await
    }

    /// The text to write for `content`. Text is kept as given (its comments are the user's) if it
    /// parses; queues are rendered by the parser plugin and kept only if the text parses back to
    /// the same jobs, so a parser can't write what it would not read.
    async fn checked_text(&self, mode: RunMode, path: &std::path::Path, content: Content) -> Result<String, ServiceError> {
        match content {
            Content::Empty => Ok(String::new()),
            Content::Text(text) => {
                self.parse(path, Some(parse_mode(mode)), text.clone()).await?;
                Ok(text)
            }
            Content::Config(data) => {
                let file = data.to_file(mode)?;
                let (name, parser) = self.parser()?;
                let rendered = file.clone();
                let text = off_thread(move || parser.render(&rendered)).await?;
                let parsed = self.parse(path, Some(parse_mode(mode)), text.clone()).await.map_err(|_| ServiceError::RenderMismatch { parser: name.clone() })?;
                if crate::plugin::unlined(parsed) != crate::plugin::unlined(file.clone()) {
                    return Err(ServiceError::RenderMismatch { parser: name });
                }
                Ok(text)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_shape_round_trips_and_names_bad_fields() {
        let file = JobFile {
            mode: ParseMode::Multi,
            jobs: vec![
                Block { queue: 2, commands: vec!["a".into()], gpu_count: 2, memory_gb: 20.0, line: 1, provider: None, burst: None },
                Block { queue: 1, commands: vec!["b".into(), "c".into()], gpu_count: 1, memory_gb: 0.5, line: 5, provider: Some("slurm".into()), burst: None },
                Block { queue: 2, commands: vec!["d".into()], gpu_count: 1, memory_gb: 4.0, line: 9, provider: None, burst: None },
            ],
        };
        let data = CommandConfig::from_file(&file);
        assert_eq!(data.queues.iter().map(|q| (q.id, q.processes.len())).collect::<Vec<_>>(), [(2, 2), (1, 1)]);
        assert_eq!(data.queues[0].processes[1].id, 2);
        // Grouped by queue, the order within each queue kept.
        let back = data.to_file(RunMode::Multi).expect("valid");
        assert_eq!(back.jobs.iter().map(|j| j.commands[0].as_str()).collect::<Vec<_>>(), ["a", "d", "b"]);
        assert_eq!(back.jobs[2].provider.as_deref(), Some("slurm"), "where it runs is kept");
        let err = data.to_file(RunMode::Single).expect_err("2 GPUs in single mode");
        assert!(err.to_string().contains("queues[0].processes[0].gpu_count"), "{err}");
        let mut odd = data.clone();
        odd.queues[1].processes[0].provider = None;
        odd.queues[1].processes[0].burst = Some(crate::model::Burst { max_wait_ms: Some(1500), providers: Vec::new() });
        let err = odd.to_file(RunMode::Multi).expect_err("not whole seconds");
        assert!(err.to_string().contains("queues[1].processes[0].burst.max_wait_ms"), "{err}");
    }
}
