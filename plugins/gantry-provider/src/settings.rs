//! A provider instance's settings, as the host grants them: `BASE_URL`, `TOKEN` (from the
//! instance's `token_file` or `token_env`), where it has them `API_URL` and `SECRET` (a second URL
//! and a second credential, from `api_url` and `secret_file` or `secret_env`), and each of
//! `[providers.NAME.options]` under its name in upper case. Errors name the key of `gantry.toml`
//! to set.

use crate::{CostEstimate, GpuSpec, JobConfig, Offer, ProviderError};

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
            "API_URL" => "api_url".into(),
            "SECRET" => "secret_file (or secret_env)".into(),
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

    /// The price of `job` at the instance's own rate: `options.price_per_gpu_hour` for each of
    /// its GPUs, in `options.currency` (default `USD`); the total for its time limit, if it has
    /// one. Without a rate there is no price (`invalid-config`).
    pub fn site_rate(&self, job: &JobConfig) -> Result<CostEstimate, ProviderError> {
        let (rate, currency) = self.rate()?.ok_or_else(|| ProviderError::InvalidConfig(format!("{}: not set, so this provider has no prices", Self::key("PRICE_PER_GPU_HOUR"))))?;
        let per_hour = rate * f64::from(job.gpu.count.max(1));
        let total = job.timeout_s.map_or(0.0, |s| per_hour * s as f64 / 3600.0);
        let detail = format!("{rate} {currency} per GPU-hour (the site's rate), {} GPU(s)", job.gpu.count.max(1));
        Ok(CostEstimate { currency, per_hour, total, detail })
    }

    /// The site's rate as the one offer of a cluster: any GPUs it has, at the rate, whether free
    /// now or not (a cluster queues). None without a rate.
    pub fn site_offers(&self, gpu: &GpuSpec) -> Result<Vec<Offer>, ProviderError> {
        Ok(self.rate()?.map(|(rate, currency)| Offer { gpu: gpu.clone(), region: String::new(), price_per_hour: rate * f64::from(gpu.count.max(1)), currency, available: true }).into_iter().collect())
    }

    /// `options.price_per_gpu_hour` and `options.currency` (default `USD`), if a rate is set.
    fn rate(&self) -> Result<Option<(f64, String)>, ProviderError> {
        let Some(rate) = self.number::<f64>("PRICE_PER_GPU_HOUR", "currency units per GPU-hour")? else { return Ok(None) };
        if !rate.is_finite() || rate < 0.0 {
            return Err(ProviderError::InvalidConfig(format!("{}: {rate} is not a price", Self::key("PRICE_PER_GPU_HOUR"))));
        }
        Ok(Some((rate, self.get("CURRENCY").unwrap_or_else(|| "USD".into()))))
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
        assert_eq!(settings.need("SECRET"), Err(ProviderError::InvalidConfig("secret_file (or secret_env): not set for this provider instance ([providers.NAME] in gantry.toml)".into())));
        assert_eq!(settings.need("NAMESPACE"), Err(ProviderError::InvalidConfig("options.namespace: not set for this provider instance ([providers.NAME] in gantry.toml)".into())));
        assert_eq!(settings.number::<u64>("TIME_LIMIT_MIN", "minutes"), Err(ProviderError::InvalidConfig("options.time_limit_min: 'soon' is not a number of minutes".into())));
        assert_eq!(settings.number::<u64>("ABSENT", "minutes"), Ok(None));
    }

    #[test]
    fn a_site_rate_prices_each_gpu_hour() {
        let mut job = crate::testing::job();
        job.gpu.count = 4;
        job.timeout_s = Some(1800);
        let priced = Settings::new(|name| (name == "PRICE_PER_GPU_HOUR").then(|| "0.5".to_string())).site_rate(&job).expect("priced");
        assert_eq!((priced.currency.as_str(), priced.per_hour, priced.total), ("USD", 2.0, 1.0));
        let none = Settings::new(|_| None).site_rate(&job).expect_err("no rate");
        assert!(matches!(&none, ProviderError::InvalidConfig(m) if m.starts_with("options.price_per_gpu_hour")), "{none:?}");
        let wrong = Settings::new(|name| (name == "PRICE_PER_GPU_HOUR").then(|| "-1".to_string()));
        assert!(wrong.site_rate(&job).is_err() && wrong.site_offers(&job.gpu).is_err());
        let offers = Settings::new(|name| (name == "PRICE_PER_GPU_HOUR").then(|| "0.5".to_string())).site_offers(&job.gpu).expect("offers");
        assert_eq!(offers.iter().map(|o| (o.price_per_hour, o.currency.as_str(), o.gpu.count)).collect::<Vec<_>>(), vec![(2.0, "USD", 4)]);
        assert_eq!(Settings::new(|_| None).site_offers(&job.gpu), Ok(Vec::new()), "no rate, no offer");
    }
}
