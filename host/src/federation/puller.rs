//! The master's pulls (seed 003's master): every `refresh_interval` it fetches the `/api/info`
//! of each slave in `[[federation.slaves]]` — a gantry daemon or FlowLine's own slave — and
//! records it as that node's report. `POST /api/refresh` and `/api/slaves/<ip>/refresh` pull at
//! once; refreshes that arrive while a pull of the same slave is under way share its answer, so
//! a flood of refreshes is never more than one request per slave at a time.

use super::flowline::node_of_info;
use super::{FederationConfig, Registry, Report, Running, Slave};
use crate::model::Counts;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A larger answer is refused: an 8-GPU node's is about 6 KiB.
const MAX_ANSWER: u64 = 4 << 20;

pub struct Puller {
    registry: Arc<Registry>,
    slaves: Vec<Target>,
    agent: ureq::Agent,
    interval: Duration,
    /// Pulled reports are numbered like pushed ones, in the order they arrive.
    seq: AtomicU64,
}

struct Target {
    slave: Slave,
    /// When the last pull finished: a refresh asked before then (it waited for that pull) takes
    /// its answer instead of pulling again.
    last_finished: tokio::sync::Mutex<Option<Instant>>,
}

impl Puller {
    /// Pulls `config.slaves` with `agent` into `registry`.
    pub fn new(config: &FederationConfig, agent: ureq::Agent, registry: Arc<Registry>) -> Puller {
        let slaves = config.slaves.iter().map(|slave| Target { slave: slave.clone(), last_finished: tokio::sync::Mutex::new(None) }).collect();
        Puller { registry, slaves, agent, interval: config.refresh_interval, seq: AtomicU64::new(0) }
    }

    /// Pulls every slave every interval, if there are any to pull.
    pub fn start(self: &Arc<Self>) -> Option<Running> {
        if self.slaves.is_empty() {
            return None;
        }
        let puller = self.clone();
        let task = tokio::spawn(async move {
            loop {
                puller.pull_all().await;
                tokio::time::sleep(puller.interval).await;
            }
        });
        Some(Running { task })
    }

    /// Whether `name` is a slave this master pulls.
    pub fn pulls(&self, name: &str) -> bool {
        self.slaves.iter().any(|t| t.slave.name == name)
    }

    /// Pulls every slave at once, and returns when each has answered or failed.
    pub async fn pull_all(&self) {
        futures_util::future::join_all(self.slaves.iter().map(|target| self.pull_target(target))).await;
    }

    /// Pulls one slave by name (nothing if it is not one).
    pub async fn pull(&self, name: &str) {
        if let Some(target) = self.slaves.iter().find(|t| t.slave.name == name) {
            self.pull_target(target).await;
        }
    }

    async fn pull_target(&self, target: &Target) {
        let asked = Instant::now();
        let mut last_finished = target.last_finished.lock().await;
        if last_finished.is_some_and(|finished| finished >= asked) {
            return;
        }
        let (agent, slave) = (self.agent.clone(), target.slave.clone());
        let fetched = tokio::task::spawn_blocking(move || fetch(&agent, &slave)).await.unwrap_or_else(|e| Err(format!("the pull did not finish: {e}")));
        let result = fetched.map(|node| Report {
            seq: self.seq.fetch_add(1, Ordering::Relaxed) + 1,
            interval_ms: u64::try_from(self.interval.as_millis()).unwrap_or(u64::MAX),
            url: Some(target.slave.url.clone()),
            node,
            jobs: Counts::default(),
            running: Vec::new(),
            master_key: None,
        });
        if let Err(error) = &result {
            tracing::debug!(slave = %target.slave.name, %error, "a pull of a federation slave failed");
        }
        self.registry.pulled(&target.slave.name, result);
        *last_finished = Some(Instant::now());
    }
}

/// A slave's `/api/info`, read as a node. Blocks (HTTP).
fn fetch(agent: &ureq::Agent, slave: &Slave) -> Result<super::Node, String> {
    let url = format!("{}/api/info", slave.url);
    let mut request = agent.get(&url);
    if let Some(token) = &slave.token {
        request = request.set("Authorization", &format!("Bearer {token}"));
    }
    let response = request.call().map_err(|e| match e {
        ureq::Error::Status(code @ (401 | 403), _) => format!("{url} answered {code}: set this slave's `token` to a credential it takes (a gantry daemon's local token, secret or API token)"),
        ureq::Error::Status(code, _) => format!("{url} answered {code}"),
        // Its message starts with the URL.
        ureq::Error::Transport(t) => t.to_string(),
    })?;
    let body = super::read_bounded(response, MAX_ANSWER)?;
    let info: serde_json::Value = serde_json::from_slice(&body).map_err(|e| format!("{url} did not answer JSON: {e}"))?;
    node_of_info(&info).map_err(|e| format!("{url} is not seed 003's /api/info: {e}"))
}
