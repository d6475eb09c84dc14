//! The federation as a master sees it: issuing and revoking node tokens, taking reports, pulling
//! the configured slaves, and the nodes with their latest reports and freshness.

use super::{off_thread, Service, ServiceError};
use crate::federation::forward::{self, Answer, OnBehalf};
use crate::federation::{NodeView, Report};
use crate::model::{Batch, Principal};
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

    /// The key this daemon's master acts on it with, if it lets it.
    pub fn master_key(&self) -> Option<&str> {
        self.master_key.as_deref()
    }

    /// Whom this master acts for on a node: the caller's Unix login here, as a user at most. A
    /// login with no Unix identity (a secret, an unbound account) has none to act as elsewhere.
    async fn on_behalf(&self, who: &Principal) -> Result<OnBehalf, ServiceError> {
        let uid = who.uid.ok_or_else(|| ServiceError::Forbidden(format!("{} is not bound to a Unix user, so this master can't act for it on another node", who.name)))?;
        let role = who.role;
        off_thread(move || {
            crate::unix::Account::by_uid(uid).map(|account| OnBehalf::new(account.name, role)).map_err(|e| ServiceError::Forbidden(format!("uid {uid} has no login name to act as on another node: {e}")))
        })
        .await
    }

    /// `method path` on node `name` for `who`, answered as the node answered: the node decides
    /// what the caller may do there.
    pub async fn on_node(&self, who: &Principal, name: &str, method: &'static str, path: String, body: Option<serde_json::Value>) -> Result<Answer, ServiceError> {
        let target = self.nodes.target(name)?;
        let as_whom = self.on_behalf(who).await?;
        let fleet = self.fleet.clone();
        off_thread(move || forward::call(&fleet, &target, &as_whom, method, &path, body.as_ref())).await
    }

    /// `batch` (as `body` says it) submitted on node `name`, or with `name` [`forward::ANY`] on
    /// the first node of [`forward::candidates`] that takes it. The answer names the node.
    pub async fn submit_on(&self, who: &Principal, name: &str, batch: &Batch, body: serde_json::Value) -> Result<(String, Answer), ServiceError> {
        if name != forward::ANY {
            let answer = self.on_node(who, name, "POST", "/api/v1/jobs".into(), Some(body)).await?;
            return Ok((name.to_string(), answer));
        }
        let candidates = self.candidates(who, batch).await?;
        if candidates.is_empty() {
            return Err(ServiceError::NoNode("no online node that takes actions from this master has GPUs that could hold it".into()));
        }
        let mut refusals = Vec::new();
        for node in candidates {
            match self.on_node(who, &node, "POST", "/api/v1/jobs".into(), Some(body.clone())).await {
                Ok(answer) if answer.ok() => return Ok((node, answer)),
                // A body one node finds wrong, every node does.
                Ok(answer) if matches!(answer.status, 400 | 413 | 422) => return Ok((node, answer)),
                Ok(answer) => refusals.push(format!("{node}: {}", answer.reason())),
                Err(e) => refusals.push(e.to_string()),
            }
        }
        Err(ServiceError::NoNode(refusals.join("; ")))
    }

    /// The nodes to offer `batch` to, best first, by the active policy fed with each node's GPUs
    /// as its last report has them, judging the batch's largest job.
    async fn candidates(&self, who: &Principal, batch: &Batch) -> Result<Vec<String>, ServiceError> {
        let Some(largest) = batch.jobs().iter().map(|j| &j.spec).max_by_key(|spec| (spec.gpus.unwrap_or_default().min, spec.memory_mib)) else { return Ok(Vec::new()) };
        let gpus = largest.gpus.unwrap_or_default();
        let job = placement::PendingJob {
            id: 0,
            queue: 0,
            min_gpus: gpus.min,
            max_gpus: gpus.max,
            memory_mib: largest.memory_mib,
            priority: largest.priority,
            attempts: 0,
            submitted_ms: crate::model::now_ms(),
            labels: None,
            owner: Some(who.name.clone()),
            owner_usage: 0.0,
        };
        let (active, rules) = {
            let config = self.config.read();
            (config.plugins.policy.clone(), crate::policy::rules_for(&config.scheduler))
        };
        let (plugins, nodes) = (self.plugins.clone(), self.nodes.nodes());
        off_thread(move || {
            let policy = crate::policy::PolicyService::new(plugins, active);
            Ok::<_, ServiceError>(forward::candidates(&nodes, &job, |gpus| !policy.place(std::slice::from_ref(&job), gpus, &rules).placements.is_empty()))
        })
        .await
    }
}
