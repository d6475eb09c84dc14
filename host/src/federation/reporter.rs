//! The agent's side: a report to the master every interval, and at once (within a tenth of a
//! second, so that a burst of changes is one report) when a job changes, so the master's view is
//! fresh within a second of a change rather than a period. A master that is away only costs a
//! failed request per interval: the agent keeps scheduling on its own.

use super::{FederationConfig, Node, Report, Running};
use crate::model::{Counts, Event, RunningJob};
use futures_util::future::BoxFuture;
use std::sync::Arc;
use std::time::Duration;

/// Changes within this of the first are sent together.
const BATCH: Duration = Duration::from_millis(100);

/// What the daemon reads for a report: the node, its jobs' counts and its running jobs.
pub type Snapshot = Arc<dyn Fn() -> BoxFuture<'static, (Node, Counts, Vec<RunningJob>)> + Send + Sync>;

/// What the master is told of this daemon besides its snapshot: where it serves, and the key
/// with which the master may act on it for its callers, if it may.
pub struct Contact {
    pub url: Option<String>,
    pub master_key: Option<String>,
}

/// Starts reporting to `config.master` with `agent`, if a master is configured with a token.
/// `changes` wakes a report early.
pub fn start(config: &FederationConfig, agent: ureq::Agent, contact: Contact, snapshot: Snapshot, mut changes: tokio::sync::broadcast::Receiver<Event>) -> Option<Running> {
    let (master, token) = (config.master.clone()?, config.token.clone()?);
    if crate::model::BaseUrl::parse(&master).is_ok_and(|url| !url.secure && !url.is_loopback()) {
        tracing::warn!(master = %master, "reports and this node's token go to the federation master unencrypted; serve the master over HTTPS (server.tls_cert) and name it https://");
    }
    let target = format!("{}/api/v1/nodes/{}/report", master.trim_end_matches('/'), config.node_name);
    let interval = config.report_interval;
    let task = tokio::spawn(async move {
        let (mut last_seq, mut failing) = (0u64, false);
        loop {
            let (node, jobs, running) = snapshot().await;
            let now_us = u64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_micros()).unwrap_or(u64::MAX);
            last_seq = now_us.max(last_seq + 1);
            let report = Report {
                seq: last_seq,
                interval_ms: u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
                url: contact.url.clone(),
                node,
                jobs,
                running,
                master_key: contact.master_key.clone(),
            };
            let (agent, target, token) = (agent.clone(), target.clone(), token.clone());
            let sent = tokio::task::spawn_blocking(move || agent.post(&target).set("Authorization", &format!("Bearer {token}")).send_json(&report).map(drop).map_err(|e| e.to_string())).await;
            match sent {
                Ok(Ok(())) if failing => {
                    failing = false;
                    tracing::warn!(master = %master, "reports reach the federation master again");
                }
                Ok(Err(e)) if !failing => {
                    failing = true;
                    tracing::warn!(master = %master, error = %e, "a report to the federation master failed; this node keeps scheduling on its own and tries again every interval");
                }
                _ => {}
            }
            // The next report: at the interval, or soon after a job changes.
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                changed = changes.recv() => {
                    if matches!(changed, Err(tokio::sync::broadcast::error::RecvError::Closed)) {
                        return;
                    }
                    tokio::time::sleep(BATCH).await;
                    while changes.try_recv().is_ok() {}
                }
            }
        }
    });
    Some(Running { task })
}
