//! The master's side: which nodes may report (a token each, kept as its SHA-256 in
//! `<state>/nodes.json`, 0600), which slaves it pulls (from its configuration), and the latest
//! report of each. A pushed report must carry a sequence number above the last one accepted, so
//! a captured report can't be replayed to make a node look alive; an agent's sequence is the time
//! it sent the report in microseconds, so a restarted agent goes on above its old numbers. A
//! pulled slave can't push: it has no token.

use crate::model::{now_ms, Counts, RunningJob};
use super::{Node, Slave};
use serde::{Deserialize, Serialize};
use crate::auth::users::digest;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

const TOKEN_PREFIX: &str = "gtn_";

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("`name`: {0}")]
    Name(String),
    #[error("node {0} exists already; revoke it first to issue a new token")]
    Exists(String),
    #[error("no node {0}")]
    Unknown(String),
    #[error("node {0}: not the token issued for it (or it was revoked)")]
    BadToken(String),
    #[error("node {node}: report {seq} is not newer than the last one accepted ({last}); a replay is refused")]
    Replayed { node: String, seq: u64, last: u64 },
    #[error("node {0} is both issued (it pushes its reports) and in [[federation.slaves]] (this master pulls it); revoke it or rename the slave")]
    Both(String),
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("node {0} does not let its master act on it: set `federation.accept_from_master = true` on it")]
    Closed(String),
    #[error("node {0} is offline: its master can't reach it")]
    Offline(String),
    #[error("node {0} has not said where it serves")]
    NoUrl(String),
}

/// How a node's reports reach this master.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// The agent sends them with the token this master issued.
    Push,
    /// This master fetches the slave's `/api/info` (seed 003's master); no job counts come.
    Pull,
}

/// What an agent sends.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// Increasing with every report of this node (the agent sends its clock in microseconds).
    pub seq: u64,
    /// How often the agent reports; its freshness is judged by it.
    pub interval_ms: u64,
    /// Where the agent serves its own API, as it knows it.
    pub url: Option<String>,
    pub node: Node,
    pub jobs: Counts,
    /// The jobs running there, without their commands (another server's users see that a job
    /// runs, whose it is and on which GPUs, as `squeue` shows them, not what it runs).
    #[serde(default)]
    pub running: Vec<RunningJob>,
    /// The key with which the master may act on this node for its callers, if the node lets it
    /// (see [`super::forward`]). Kept apart when the report is accepted: no view shows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_key: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NodeStatus {
    /// Heard from within two report intervals.
    Online,
    /// Not heard from for two intervals, not yet for `offline_after`.
    Stale,
    /// Not heard from for `offline_after`, or never.
    Offline,
}

/// A node as the master sees it.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NodeView {
    pub name: String,
    pub status: NodeStatus,
    pub via: Via,
    /// The address its last report came from; a pulled slave's, as configured.
    pub address: Option<String>,
    pub last_seen_ms: Option<u64>,
    /// When a node not heard from is `offline` (so a view can tell between reads).
    pub offline_after_ms: u64,
    pub report: Option<Report>,
    /// Why the last pull of a slave failed, until one succeeds.
    pub error: Option<String>,
    /// Whether this master may act on the node for its callers (submit, cancel, read logs).
    pub accepts_actions: bool,
}

struct Seen {
    address: String,
    at_ms: u64,
    report: Report,
    master_key: Option<String>,
}

struct Pulled {
    address: String,
    error: Option<String>,
}

pub struct Registry {
    path: PathBuf,
    offline_after: Duration,
    /// Node name → SHA-256 of its token, as saved.
    tokens: parking_lot::Mutex<BTreeMap<String, String>>,
    seen: parking_lot::Mutex<BTreeMap<String, Seen>>,
    /// The slaves pulled, by name; fixed at start.
    pulled: parking_lot::Mutex<BTreeMap<String, Pulled>>,
    /// The name of each node whose report was just accepted, for live views.
    reported: tokio::sync::broadcast::Sender<String>,
}

impl Registry {
    /// The nodes issued so far, from `<state_dir>/nodes.json`, and the slaves pulled. Blocks
    /// (reads a file).
    pub fn open(state_dir: &Path, offline_after: Duration, slaves: &[Slave]) -> Result<Registry, RegistryError> {
        let path = state_dir.join("nodes.json");
        let tokens = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| RegistryError::File { path: path.clone(), message: e.to_string() })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(RegistryError::File { path, message: e.to_string() }),
        };
        let tokens: BTreeMap<String, String> = tokens;
        if let Some(both) = slaves.iter().find(|s| tokens.contains_key(&s.name)) {
            return Err(RegistryError::Both(both.name.clone()));
        }
        let pulled = slaves.iter().map(|s| (s.name.clone(), Pulled { address: s.address.clone(), error: None })).collect();
        Ok(Registry {
            path,
            offline_after,
            tokens: parking_lot::Mutex::new(tokens),
            seen: parking_lot::Mutex::new(BTreeMap::new()),
            pulled: parking_lot::Mutex::new(pulled),
            reported: tokio::sync::broadcast::channel(256).0,
        })
    }

    fn save(&self, tokens: &BTreeMap<String, String>) -> Result<(), RegistryError> {
        let err = |e: std::io::Error| RegistryError::File { path: self.path.clone(), message: e.to_string() };
        let text = serde_json::to_vec_pretty(tokens).map_err(|e| RegistryError::File { path: self.path.clone(), message: e.to_string() })?;
        let temp = self.path.with_extension("json.new");
        std::fs::write(&temp, text).map_err(err)?;
        std::fs::rename(&temp, &self.path).map_err(err)
    }

    /// Issues a node and its token (shown once). Blocks (writes a file).
    pub fn add(&self, name: &str) -> Result<String, RegistryError> {
        if name.is_empty() || name.len() > 64 || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            return Err(RegistryError::Name(format!("'{name}' is not a node name (letters, digits, - _ . ; at most 64)")));
        }
        if name == super::forward::ANY {
            return Err(RegistryError::Name(format!("'{name}' stands for any node (`gantry submit --node any`); choose another name")));
        }
        if self.pulled.lock().contains_key(name) {
            return Err(RegistryError::Both(name.into()));
        }
        let mut tokens = self.tokens.lock();
        if tokens.contains_key(name) {
            return Err(RegistryError::Exists(name.into()));
        }
        let token = format!("{TOKEN_PREFIX}{}", crate::auth::users::random_hex(24));
        let mut next = tokens.clone();
        next.insert(name.to_string(), digest(&token));
        self.save(&next)?;
        *tokens = next;
        Ok(token)
    }

    /// Revokes a node's token; its reports are refused from now on. Blocks (writes a file).
    pub fn revoke(&self, name: &str) -> Result<(), RegistryError> {
        let mut tokens = self.tokens.lock();
        let mut next = tokens.clone();
        next.remove(name).ok_or_else(|| RegistryError::Unknown(name.into()))?;
        self.save(&next)?;
        *tokens = next;
        self.seen.lock().remove(name);
        Ok(())
    }

    /// Takes a node's report if its token is the one issued and it is newer than the last.
    pub fn accept(&self, name: &str, token: &str, address: IpAddr, report: Report) -> Result<(), RegistryError> {
        let known = self.tokens.lock().get(name).cloned();
        let matches = known.is_some_and(|d| subtle::ConstantTimeEq::ct_eq(d.as_bytes(), digest(token).as_bytes()).into());
        if !matches {
            return Err(RegistryError::BadToken(name.into()));
        }
        let mut seen = self.seen.lock();
        if let Some(last) = seen.get(name)
            && report.seq <= last.report.seq
        {
            return Err(RegistryError::Replayed { node: name.into(), seq: report.seq, last: last.report.seq });
        }
        let mut report = report;
        let master_key = report.master_key.take();
        seen.insert(name.to_string(), Seen { address: address.to_string(), at_ms: now_ms(), report, master_key });
        drop(seen);
        let _ = self.reported.send(name.to_string());
        Ok(())
    }

    /// What a pull of a slave brought: its report, or why there is none (the last good report
    /// stays, and ages). Live views hear of a report, and of an error when it changes (a slave
    /// that stays down is not news every interval). A name not pulled is ignored.
    pub fn pulled(&self, name: &str, result: Result<Report, String>) {
        let mut pulled = self.pulled.lock();
        let Some(slave) = pulled.get_mut(name) else { return };
        let news = match result {
            Ok(report) => {
                slave.error = None;
                let address = slave.address.clone();
                self.seen.lock().insert(name.to_string(), Seen { address, at_ms: now_ms(), report, master_key: None });
                true
            }
            Err(error) => slave.error.replace(error.clone()).is_none_or(|before| before != error),
        };
        drop(pulled);
        if news {
            let _ = self.reported.send(name.to_string());
        }
    }

    /// Names of nodes as their reports are accepted.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.reported.subscribe()
    }

    fn status(&self, seen: Option<&Seen>, now: u64) -> NodeStatus {
        let Some(seen) = seen else { return NodeStatus::Offline };
        let age = now.saturating_sub(seen.at_ms);
        let offline_ms = u64::try_from(self.offline_after.as_millis()).unwrap_or(u64::MAX);
        if age <= 2 * seen.report.interval_ms.max(1) && age < offline_ms {
            NodeStatus::Online
        } else if age < offline_ms {
            NodeStatus::Stale
        } else {
            NodeStatus::Offline
        }
    }

    /// Every node issued or pulled, with its latest report and how fresh it is.
    pub fn nodes(&self) -> Vec<NodeView> {
        let now = now_ms();
        let mut names: Vec<(String, Via, Option<String>, Option<String>)> = self.tokens.lock().keys().map(|name| (name.clone(), Via::Push, None, None)).collect();
        names.extend(self.pulled.lock().iter().map(|(name, slave)| (name.clone(), Via::Pull, Some(slave.address.clone()), slave.error.clone())));
        let seen = self.seen.lock();
        names
            .into_iter()
            .map(|(name, via, configured, error)| {
                let node = seen.get(&name);
                NodeView {
                    status: self.status(node, now),
                    via,
                    address: node.map(|s| s.address.clone()).or(configured),
                    last_seen_ms: node.map(|s| s.at_ms),
                    offline_after_ms: u64::try_from(self.offline_after.as_millis()).unwrap_or(u64::MAX),
                    report: node.map(|s| s.report.clone()),
                    error,
                    accepts_actions: node.is_some_and(|s| s.master_key.is_some()),
                    name,
                }
            })
            .collect()
    }

    /// A node by name, or by the address its reports come from (seed 003 names slaves by IP).
    pub fn node(&self, key: &str) -> Result<NodeView, RegistryError> {
        self.nodes().into_iter().find(|n| n.name == key || n.address.as_deref() == Some(key)).ok_or_else(|| RegistryError::Unknown(key.into()))
    }

    /// Where and with which key this master acts on a node for a caller: the URL the node
    /// reported (its listening address if it listens on all of them, as seen from here), while
    /// it is not offline.
    pub fn target(&self, name: &str) -> Result<super::forward::Target, RegistryError> {
        let seen = self.seen.lock();
        let node = seen.get(name).ok_or_else(|| if self.tokens.lock().contains_key(name) { RegistryError::Offline(name.into()) } else { RegistryError::Unknown(name.into()) })?;
        let key = node.master_key.clone().ok_or_else(|| RegistryError::Closed(name.into()))?;
        if self.status(Some(node), now_ms()) == NodeStatus::Offline {
            return Err(RegistryError::Offline(name.into()));
        }
        let mut url = node.report.url.as_deref().and_then(|u| crate::model::BaseUrl::parse(u).ok()).ok_or_else(|| RegistryError::NoUrl(name.into()))?;
        let heard_from: IpAddr = node.address.parse().map_err(|_| RegistryError::NoUrl(name.into()))?;
        if url.host.parse::<IpAddr>().is_ok_and(|ip| ip.is_unspecified()) {
            url.host.clone_from(&node.address);
        }
        Ok(super::forward::Target { node: name.to_string(), url: url.url(), key, heard_from })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(seq: u64) -> Report {
        let node: Node = serde_json::from_value(serde_json::json!({
            "simulated": true, "versions": { "gantry": "0", "wit": "0" }, "driver": {},
            "host": { "hostname": "a", "os": null, "kernel": null, "cpu_model": null, "cpu_cores": 1, "cpu_percent": 0.0, "load_average": [0.0, 0.0, 0.0],
                      "memory_total_mib": 1, "memory_used_mib": 0, "memory_percent": 0.0, "swap_total_mib": 0, "swap_used_mib": 0, "swap_percent": 0.0, "uptime_s": 1 },
            "sampled_at_ms": 1, "gpus": [],
        }))
        .expect("a node");
        Report { seq, interval_ms: 1000, url: None, node, jobs: Counts::default(), running: Vec::new(), master_key: None }
    }

    #[test]
    fn only_an_issued_token_reports_and_a_replay_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let registry = Registry::open(dir.path(), Duration::from_secs(15), &[]).expect("open");
        let token = registry.add("gpu1").expect("issued");
        assert!(matches!(registry.add("gpu1"), Err(RegistryError::Exists(_))));
        assert!(matches!(registry.add("no spaces"), Err(RegistryError::Name(_))));
        assert!(matches!(registry.add("any"), Err(RegistryError::Name(_))), "reserved for --node any");
        let here: IpAddr = "127.0.0.1".parse().expect("ip");
        assert_eq!(registry.node("gpu1").expect("listed").status, NodeStatus::Offline, "never heard from");
        assert!(matches!(registry.accept("gpu1", "gtn_wrong", here, report(1)), Err(RegistryError::BadToken(_))));
        assert!(matches!(registry.accept("gpu2", &token, here, report(1)), Err(RegistryError::BadToken(_))));
        registry.accept("gpu1", &token, here, report(5)).expect("accepted");
        assert!(matches!(registry.accept("gpu1", &token, here, report(5)), Err(RegistryError::Replayed { seq: 5, last: 5, .. })));
        assert_eq!(registry.node("127.0.0.1").expect("by address").status, NodeStatus::Online);
        // The tokens survive a restart; a revoked one is refused.
        let again = Registry::open(dir.path(), Duration::from_secs(15), &[]).expect("reopen");
        again.accept("gpu1", &token, here, report(6)).expect("still issued");
        again.revoke("gpu1").expect("revoked");
        assert!(matches!(again.accept("gpu1", &token, here, report(7)), Err(RegistryError::BadToken(_))));
    }

    #[test]
    fn the_key_to_act_on_a_node_is_kept_out_of_every_view_and_its_url_is_where_it_was_heard_from() {
        let dir = tempfile::tempdir().expect("tempdir");
        let registry = Registry::open(dir.path(), Duration::from_secs(15), &[]).expect("open");
        let token = registry.add("gpu1").expect("issued");
        assert!(matches!(registry.target("gpu1"), Err(RegistryError::Offline(_))), "never heard from");
        assert!(matches!(registry.target("gpu7"), Err(RegistryError::Unknown(_))));
        let from: IpAddr = "10.0.0.5".parse().expect("ip");
        registry.accept("gpu1", &token, from, Report { url: Some("http://0.0.0.0:7070".into()), ..report(1) }).expect("accepted");
        assert!(matches!(registry.target("gpu1"), Err(RegistryError::Closed(_))), "the node did not opt in");
        let key = "gtm_0123";
        registry.accept("gpu1", &token, from, Report { url: Some("http://0.0.0.0:7070".into()), master_key: Some(key.into()), ..report(2) }).expect("accepted");
        let target = registry.target("gpu1").expect("a target");
        assert_eq!((target.url.as_str(), target.key.as_str()), ("http://10.0.0.5:7070", key));
        let view = registry.node("gpu1").expect("listed");
        assert!(view.accepts_actions);
        let shown = serde_json::to_string(&registry.nodes()).expect("json");
        assert!(!shown.contains(key), "the key is in a view: {shown}");
    }

    #[test]
    fn a_pulled_slave_keeps_its_last_report_with_the_error_of_the_last_pull_and_cannot_push() {
        let dir = tempfile::tempdir().expect("tempdir");
        let slave = Slave { name: "GPU server 1".into(), address: "10.1.2.3".into(), url: "http://10.1.2.3:5001".into(), token: None };
        let registry = Registry::open(dir.path(), Duration::from_secs(15), std::slice::from_ref(&slave)).expect("open");
        let listed = registry.node("10.1.2.3").expect("by its configured address");
        assert_eq!((listed.via, listed.status, listed.report.is_none()), (Via::Pull, NodeStatus::Offline, true));
        let mut heard = registry.subscribe();
        registry.pulled("GPU server 1", Ok(report(1)));
        registry.pulled("GPU server 1", Err("connection refused".into()));
        registry.pulled("GPU server 1", Err("connection refused".into()));
        let news: Vec<String> = std::iter::from_fn(|| heard.try_recv().ok()).collect();
        assert_eq!(news.len(), 2, "a report and the first error, not the same error again: {news:?}");
        let seen = registry.node("GPU server 1").expect("by name");
        assert_eq!((seen.status, seen.report.map(|r| r.seq), seen.error.as_deref()), (NodeStatus::Online, Some(1), Some("connection refused")));
        registry.pulled("GPU server 1", Ok(report(2)));
        assert_eq!(registry.node("GPU server 1").expect("listed").error, None, "a good pull clears the error");
        // A pulled name is not issued: it can't push, and can't be issued while it is pulled.
        assert!(matches!(registry.accept("GPU server 1", "gtn_any", "10.1.2.3".parse().expect("ip"), report(3)), Err(RegistryError::BadToken(_))));
        registry.add("gpu9").expect("issued");
        drop(registry);
        let renamed = Slave { name: "gpu9".into(), ..slave };
        assert!(matches!(Registry::open(dir.path(), Duration::from_secs(15), &[renamed]), Err(RegistryError::Both(_))), "one name, issued and pulled");
    }
}
