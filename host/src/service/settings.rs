//! The rules and settings in `gantry.toml`, as the API reads and changes them: rules apply to the
//! next scheduling pass, settings at the next start. File work runs off the async threads.

use super::{off_thread, Service, ServiceError};
use crate::config::edit::SettingsChange;
use serde_json::{Map, Value};

impl Service {
    /// Seed 004's rules as the file says them now.
    pub async fn rules(&self) -> Result<Value, ServiceError> {
        let config = self.load_config().await?;
        Ok(crate::config::edit::rules_json(&config))
    }

    /// Writes the rules and applies them to the next scheduling pass.
    pub async fn put_rules(&self, changes: Map<String, Value>) -> Result<Value, ServiceError> {
        let file = self.config_file.clone();
        let config = off_thread(move || file.put_rules(&changes)).await?;
        let rules = crate::config::edit::rules_json(&config);
        self.apply_hot(config)?;
        Ok(rules)
    }

    /// `gantry.toml` as read again, after an edit through the API or of the file: its hot part
    /// (the rules, the policy, the run defaults) applies to the next pass, here and in the
    /// scheduler alike; the other settings saved there wait for the next start.
    pub fn apply_hot(&self, config: crate::config::Config) -> Result<(), ServiceError> {
        self.scheduler.set_rules(config.scheduler.clone())?;
        self.scheduler.set_policy(config.plugins.policy.clone())?;
        let mut current = self.config.write();
        current.scheduler = config.scheduler;
        current.work_dir = config.work_dir;
        current.check_time_s = config.check_time_s;
        current.command_files = config.command_files;
        current.plugins.policy = config.plugins.policy;
        Ok(())
    }

    pub async fn settings(&self) -> Result<Value, ServiceError> {
        Ok(crate::config::edit::settings_json(&self.load_config().await?))
    }

    pub async fn put_settings(&self, changes: Map<String, Value>) -> Result<SettingsChange, ServiceError> {
        let current = self.load_config().await?;
        let file = self.config_file.clone();
        let applies_policy = changes.contains_key("policy");
        let (config, change) = off_thread(move || file.put_settings(&changes, &current)).await?;
        if applies_policy {
            self.apply_hot(config)?;
        }
        Ok(change)
    }

    async fn load_config(&self) -> Result<crate::config::Config, ServiceError> {
        let (file, fallback) = (self.config_file.clone(), self.config.read().clone());
        off_thread(move || file.load(&fallback)).await
    }
}
