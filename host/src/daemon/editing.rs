//! What the API edits on disk: command files (through the parser plugin, so only what parses
//! is written), and the rules and settings in `gantry.toml`. File work and plugin calls run off
//! the async threads.

use super::service::{off_thread, Service, ServiceError};
use crate::command_files::Entry;
use crate::config::edit::SettingsChange;
use crate::plugin::{JobFile, JobSpec as Block, ParseMode};
use crate::scheduler::RunMode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::path::PathBuf;

/// Seed 004's command configuration: queues, each a list of processes run one after another.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandConfig {
    pub queues: Vec<QueueBlock>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueBlock {
    pub id: u32,
    pub processes: Vec<Process>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
}

fn one() -> u32 {
    1
}

/// A command file as the native API returns it.
#[derive(Debug, Serialize)]
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
            processes.push(Process { id: processes.len() as u32 + 1, commands: block.commands.clone(), gpu_count: block.gpu_count, memory: block.memory_gb });
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
                    return Err(ServiceError::Invalid { field: at("commands"), message: "needs one or more non-empty single-line commands".into() });
                }
                if !process.memory.is_finite() || process.memory < 0.0 {
                    return Err(ServiceError::Invalid { field: at("memory"), message: format!("must be GB >= 0, got {}", process.memory) });
                }
                if process.gpu_count == 0 || (mode == RunMode::Single && process.gpu_count != 1) {
                    return Err(ServiceError::Invalid { field: at("gpu_count"), message: "single mode runs each process on one GPU; multi mode needs at least 1".into() });
                }
                jobs.push(Block { queue: queue.id, commands: process.commands.clone(), gpu_count: process.gpu_count, memory_gb: process.memory });
            }
        }
        Ok(JobFile { mode: parse_mode(mode), jobs })
    }
}

impl Service {
    fn command_files(&self) -> crate::config::CommandFiles {
        self.config.read().command_files.clone()
    }

    pub async fn list_command_files(&self, mode: RunMode) -> Result<Vec<Entry>, ServiceError> {
        let files = self.command_files();
        off_thread(move || Ok::<_, ServiceError>(files.list(mode))).await
    }

    pub async fn command_file(&self, mode: RunMode, index: u32) -> Result<CommandFileView, ServiceError> {
        let files = self.command_files();
        let path = files.path(mode, index);
        let text = off_thread(move || files.read(mode, index)).await?;
        let file = self.parse(&path, Some(parse_mode(mode)), &text).await?;
        Ok(CommandFileView { mode, index, path, text, data: CommandConfig::from_file(&file) })
    }

    /// Writes the configuration through the parser's `render`, after checking that the text
    /// rendered parses back to the same jobs.
    pub async fn put_command_config(&self, mode: RunMode, index: u32, data: &CommandConfig) -> Result<PathBuf, ServiceError> {
        let file = data.to_file(mode)?;
        let text = self.render(&file).await?;
        self.put_command_text(mode, index, text, Some(file)).await
    }

    /// Writes text that parses (as-is: its comments are the user's).
    pub async fn put_command_text(&self, mode: RunMode, index: u32, text: String, expected: Option<JobFile>) -> Result<PathBuf, ServiceError> {
        let files = self.command_files();
        let path = files.path(mode, index);
        let parsed = self.parse(&path, Some(parse_mode(mode)), &text).await?;
        if expected.is_some_and(|e| e != parsed) {
            return Err(ServiceError::Plugin(format!("parser plugin {}: its render of this configuration does not parse back to it", self.parser)));
        }
        off_thread(move || files.write(mode, index, &text)).await
    }

    pub async fn new_command_file(&self, mode: RunMode, data: Option<&CommandConfig>) -> Result<u32, ServiceError> {
        let text = match data {
            Some(data) => self.render(&data.to_file(mode)?).await?,
            None => String::new(),
        };
        let files = self.command_files();
        off_thread(move || files.create(mode, &text)).await
    }

    pub async fn delete_command_file(&self, mode: RunMode, index: u32) -> Result<(), ServiceError> {
        let files = self.command_files();
        off_thread(move || files.delete(mode, index)).await
    }

    pub async fn reset_command_file(&self, mode: RunMode, index: u32) -> Result<(), ServiceError> {
        let files = self.command_files();
        off_thread(move || files.reset(mode, index)).await
    }

    pub async fn render(&self, file: &JobFile) -> Result<String, ServiceError> {
        let parser = self.plugins.get(&self.parser).ok_or_else(|| ServiceError::NoParser(self.parser.clone()))?;
        let file = file.clone();
        off_thread(move || parser.render(&file).map_err(|e| ServiceError::Plugin(e.to_string()))).await
    }

    /// Seed 004's rules as the file says them now.
    pub async fn rules(&self) -> Result<Value, ServiceError> {
        let config = self.load_config().await?;
        Ok(crate::config::edit::rules_json(&config))
    }

    /// Writes the rules and applies them to the next scheduling pass.
    pub async fn put_rules(&self, changes: Map<String, Value>) -> Result<Value, ServiceError> {
        let file = self.config_file.clone();
        let config = off_thread(move || file.put_rules(&changes)).await?;
        self.scheduler.set_rules(config.scheduler.clone())?;
        let rules = crate::config::edit::rules_json(&config);
        // Only the hot part: settings saved in the file wait for the next start.
        let mut current = self.config.write();
        current.scheduler = config.scheduler;
        current.work_dir = config.work_dir;
        current.check_time_s = config.check_time_s;
        current.command_files = config.command_files;
        Ok(rules)
    }

    pub async fn settings(&self) -> Result<Value, ServiceError> {
        Ok(crate::config::edit::settings_json(&self.load_config().await?))
    }

    pub async fn put_settings(&self, changes: Map<String, Value>) -> Result<SettingsChange, ServiceError> {
        let current = self.load_config().await?;
        let file = self.config_file.clone();
        let (_, change) = off_thread(move || file.put_settings(&changes, &current)).await?;
        Ok(change)
    }

    /// The log a run's job changes are written to.
    pub fn run_log_path(&self, run: crate::scheduler::RunId) -> PathBuf {
        super::run_log::path(&self.config.read().server.log_dir, run)
    }

    pub async fn bind_log(&self, binding: crate::log_access::Binding) -> Result<crate::log_access::Binding, ServiceError> {
        let logs = self.logs.clone();
        off_thread(move || logs.bind(binding)).await
    }

    pub async fn unbind_log(&self, key: String) -> Result<(), ServiceError> {
        let logs = self.logs.clone();
        off_thread(move || logs.unbind(&key)).await
    }

    /// The last `lines` lines of a log file the caller may read (see [`crate::log_access`]).
    pub async fn read_log_file(&self, path: PathBuf, lines: usize) -> Result<String, ServiceError> {
        let logs = self.logs.clone();
        off_thread(move || logs.tail(&path, lines)).await
    }

    async fn load_config(&self) -> Result<crate::config::Config, ServiceError> {
        let (file, fallback) = (self.config_file.clone(), self.config.read().clone());
        off_thread(move || file.load(&fallback)).await
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
                Block { queue: 2, commands: vec!["a".into()], gpu_count: 2, memory_gb: 20.0 },
                Block { queue: 1, commands: vec!["b".into(), "c".into()], gpu_count: 1, memory_gb: 0.5 },
                Block { queue: 2, commands: vec!["d".into()], gpu_count: 1, memory_gb: 4.0 },
            ],
        };
        let data = CommandConfig::from_file(&file);
        assert_eq!(data.queues.iter().map(|q| (q.id, q.processes.len())).collect::<Vec<_>>(), [(2, 2), (1, 1)]);
        assert_eq!(data.queues[0].processes[1].id, 2);
        // Grouped by queue, the order within each queue kept.
        let back = data.to_file(RunMode::Multi).expect("valid");
        assert_eq!(back.jobs.iter().map(|j| j.commands[0].as_str()).collect::<Vec<_>>(), ["a", "d", "b"]);
        let err = data.to_file(RunMode::Single).expect_err("2 GPUs in single mode");
        assert!(err.to_string().contains("queues[0].processes[0].gpu_count"), "{err}");
    }
}
