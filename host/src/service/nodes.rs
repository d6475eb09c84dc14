//! The federation as a master sees it: issuing and revoking node tokens, taking reports, pulling
//! the configured slaves, and the nodes with their latest reports and freshness.

use super::{off_thread, Service, ServiceError};
use crate::federation::{NodeView, Report};
use std::net::IpAddr;

impl Service {
    /// How long this daemon has been serving.
    pub fn uptime(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    pub fn federation_config(&self) -> crate::federation::FederationConfig {
        self.config.read().federation.clone()
    }

    /// The counts of every job here and the running ones without their commands, for a report
    /// (nothing if the scheduler has stopped).
    pub async fn job_summary(&self) -> (crate::model::Counts, Vec<crate::model::RunningJob>) {
        let Ok(status) = self.scheduler.status().await else { return Default::default() };
        let running = status.running.into_iter().map(|job| crate::model::RunningJob { commands: Vec::new(), ..job }).collect();
        (status.counts, running)
    }

    /// The scheduler's job and run changes, which make an agent report early.
    pub fn job_events(&self) -> tokio::sync::broadcast::Receiver<crate::model::Event> {
        self.scheduler.subscribe()
    }

    /// A new node and its token, shown once.
    pub async fn add_node(&self, name: String) -> Result<String, ServiceError> {
        let nodes = self.nodes.clone();
        off_thread(move || nodes.add(&name)).await
    }

    pub async fn revoke_node(&self, name: String) -> Result<(), ServiceError> {
        let nodes = self.nodes.clone();
        off_thread(move || nodes.revoke(&name)).await
    }

    /// A node's report, if `token` is the one issued for it.
    pub fn node_report(&self, name: &str, token: &str, from: IpAddr, report: Report) -> Result<(), ServiceError> {
        Ok(self.nodes.accept(name, token, from, report)?)
    }

    pub fn nodes(&self) -> Vec<NodeView> {
        self.nodes.nodes()
    }

    /// A node by name or by the address it reports from.
    pub fn federation_node(&self, key: &str) -> Result<NodeView, ServiceError> {
        Ok(self.nodes.node(key)?)
    }

    /// A node now: a slave this master pulls is pulled first; a node that pushes is as last heard.
    pub async fn refresh_node(&self, key: &str) -> Result<NodeView, ServiceError> {
        let node = self.nodes.node(key)?;
        if self.puller.pulls(&node.name) {
            self.puller.pull(&node.name).await;
            return Ok(self.nodes.node(&node.name)?);
        }
        Ok(node)
    }

    /// Every node now, pulling every configured slave first.
    pub async fn refresh_nodes(&self) -> Vec<NodeView> {
        self.puller.pull_all().await;
        self.nodes.nodes()
    }
}
