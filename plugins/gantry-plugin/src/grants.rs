//! What a plugin may read beyond its input: the environment variables and directories the host
//! grants it (`env` and `read_only_dirs` under `[plugins.settings.NAME]` in `gantry.toml`).
//! Inside the sandbox anything else is simply absent, so an error from these says which grant
//! would allow the read, as the host does for a provider's request outside its base URLs.
//!
//! ```no_run
//! let token = gantry_plugin::grants::env("my-policy", "LAB_QUOTA_TOKEN")?;
//! let table = gantry_plugin::grants::read_to_string("my-policy", "/etc/gantry/weights.csv")?;
//! # Ok::<(), String>(())
//! ```

/// The value of `name`, if the host grants it to `plugin` (the name its `info()` reports).
pub fn env(plugin: &str, name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| {
        format!("{plugin} reads the environment variable {name}, which the host does not grant it: give it a value in env = {{ {name} = \"...\" }} under [plugins.settings.{plugin}] in gantry.toml")
    })
}

/// The text of the file at `path`, if it lies under a directory the host grants `plugin`.
pub fn read_to_string(plugin: &str, path: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| {
        format!("{plugin} cannot read {path} ({e}): a plugin reads only under the directories granted as read_only_dirs under [plugins.settings.{plugin}] in gantry.toml")
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_missing_grant_is_named() {
        let error = super::env("cool-gpus", "GANTRY_SDK_TEST_NEVER_SET").expect_err("not set");
        assert!(error.contains("env = { GANTRY_SDK_TEST_NEVER_SET = \"...\" } under [plugins.settings.cool-gpus]"), "{error}");
        let error = super::read_to_string("cool-gpus", "/nonexistent/weights.csv").expect_err("absent");
        assert!(error.contains("read_only_dirs under [plugins.settings.cool-gpus]"), "{error}");
    }
}
