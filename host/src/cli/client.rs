//! The CLI's side of the daemon's HTTP API.

use anyhow::{anyhow, Context};
use gantry::config::Config;
use gantry::daemon::{DaemonInfo, INFO_FILE};
use serde::de::DeserializeOwned;
use std::time::Duration;

pub struct Client {
    base: String,
    agent: ureq::Agent,
    /// `Authorization` for daemons that need a login.
    authorization: Option<String>,
}

impl Client {
    /// The daemon at `server`, else the one serving this state directory (its `daemon.json`).
    pub fn connect(config: &Config, server: Option<&str>, token: Option<String>) -> anyhow::Result<Client> {
        let base = match server {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => {
                let path = config.state_dir.join(INFO_FILE);
                let text = std::fs::read_to_string(&path).map_err(|_| {
                    anyhow!("no gantry daemon is serving {} (start one with `gantry serve`, or name one with --server URL)", config.state_dir.display())
                })?;
                let info: DaemonInfo = serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
                info.url
            }
        };
        let agent = ureq::AgentBuilder::new().timeout_connect(Duration::from_secs(5)).timeout(Duration::from_secs(60)).build();
        Ok(Client { base, agent, authorization: token.map(|t| format!("Bearer {t}")) })
    }

    fn request(&self, agent: &ureq::Agent, method: &str, path: &str) -> ureq::Request {
        let request = agent.request(method, &format!("{}{path}", self.base));
        match &self.authorization {
            Some(value) => request.set("Authorization", value),
            None => request,
        }
    }

    pub fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.answer(self.request(&self.agent, "GET", path).call())
    }

    /// A response body read as it arrives (server-sent events), with no overall deadline.
    pub fn stream(&self, path: &str) -> anyhow::Result<impl std::io::Read + use<>> {
        let agent = ureq::AgentBuilder::new().timeout_connect(Duration::from_secs(5)).build();
        match self.request(&agent, "GET", path).call() {
            Ok(response) => Ok(response.into_reader()),
            Err(e) => self.answer::<serde_json::Value>(Err(e)).and_then(|_| Err(anyhow!("the daemon answered without a stream"))),
        }
    }

    pub fn post<T: DeserializeOwned>(&self, path: &str, body: &serde_json::Value) -> anyhow::Result<T> {
        self.answer(self.request(&self.agent, "POST", path).send_json(body))
    }

    fn answer<T: DeserializeOwned>(&self, result: Result<ureq::Response, ureq::Error>) -> anyhow::Result<T> {
        match result {
            Ok(response) => response.into_json().context("reading the daemon's answer"),
            Err(ureq::Error::Status(code, response)) => {
                let body: serde_json::Value = response.into_json().unwrap_or_default();
                let detail = match &body["detail"] {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Array(lines) => lines.iter().filter_map(|l| l.as_str()).collect::<Vec<_>>().join("\n"),
                    other if !other.is_null() => other.to_string(),
                    _ => format!("HTTP {code}"),
                };
                if code == 401 {
                    return Err(anyhow!("{detail} (this daemon needs a login: pass --token or set GANTRY_TOKEN)"));
                }
                Err(anyhow!("{detail}"))
            }
            Err(e) => Err(anyhow!("cannot reach the gantry daemon at {}: {e}", self.base)),
        }
    }
}
