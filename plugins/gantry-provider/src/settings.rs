//! A provider instance's settings, as the host grants them: `BASE_URL`, `TOKEN` (from the
//! instance's `token_file` or `token_env`), and each of `[providers.NAME.options]` under its name
//! in upper case. Errors name the key of `gantry.toml` to set.

use crate::ProviderError;

/// Reads settings through `var` (the process environment in a plugin; a map in tests).
pub struct Settings<F: Fn(&str) -> Option<String>> {
    var: F,
}

impl Settings<fn(&str) -> Option<String>> {
    /// The settings the host granted this plugin.
    pub fn from_host() -> Self {
        Settings { var: |name| std::env::var(name).ok() }
    }
}

impl<F: Fn(&str) -> Option<String>> Settings<F> {
    pub fn new(var: F) -> Self {
        Settings { var }
    }

    /// The key of `gantry.toml` that sets `name`.
    fn key(name: &str) -> String {
        match name {
            "BASE_URL" => "base_url".into(),
            "TOKEN" => "token_file (or token_env)".into(),
            option => format!("options.{}", option.to_ascii_lowercase()),
        }
    }

    /// `name`'s value, if it is set and not empty.
    pub fn get(&self, name: &str) -> Option<String> {
        (self.var)(name).filter(|v| !v.is_empty())
    }

    pub fn need(&self, name: &str) -> Result<String, ProviderError> {
        self.get(name).ok_or_else(|| ProviderError::InvalidConfig(format!("{}: not set for this provider instance ([providers.NAME] in gantry.toml)", Self::key(name))))
    }

    /// `name` as a number, if set; `what` says what it counts (`minutes`).
    pub fn number<T: std::str::FromStr>(&self, name: &str, what: &str) -> Result<Option<T>, ProviderError> {
        match self.get(name) {
            Some(v) => v.parse().map(Some).map_err(|_| ProviderError::InvalidConfig(format!("{}: '{v}' is not a number of {what}", Self::key(name)))),
            None => Ok(None),
        }
    }

    /// The base URL, without a trailing `/`.
    pub fn base_url(&self) -> Result<String, ProviderError> {
        Ok(self.need("BASE_URL")?.trim_end_matches('/').to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::Settings;
    use crate::ProviderError;

    #[test]
    fn a_missing_or_wrong_setting_names_its_key() {
        let settings = Settings::new(|name| match name {
            "BASE_URL" => Some("http://head:6820/".into()),
            "TIME_LIMIT_MIN" => Some("soon".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        });
        assert_eq!(settings.base_url(), Ok("http://head:6820".into()));
        assert_eq!(settings.get("EMPTY"), None);
        assert_eq!(settings.need("TOKEN"), Err(ProviderError::InvalidConfig("token_file (or token_env): not set for this provider instance ([providers.NAME] in gantry.toml)".into())));
        assert_eq!(settings.need("NAMESPACE"), Err(ProviderError::InvalidConfig("options.namespace: not set for this provider instance ([providers.NAME] in gantry.toml)".into())));
        assert_eq!(settings.number::<u64>("TIME_LIMIT_MIN", "minutes"), Err(ProviderError::InvalidConfig("options.time_limit_min: 'soon' is not a number of minutes".into())));
        assert_eq!(settings.number::<u64>("ABSENT", "minutes"), Ok(None));
    }
}
