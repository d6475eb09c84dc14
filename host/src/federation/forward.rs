//! The master acting on a node for its callers (`gantry submit --node`, `gantry cancel NODE:ID`,
//! `gantry logs NODE:ID`, the dashboard's actions on another server's jobs).
//!
//! The master calls the node's own API with the key the node sent in its reports and the
//! caller's Unix login name; the node takes that name as its own Unix user of that name, and
//! as a user at most: never an admin, never root on a system daemon, and on a daemon of one user
//! only that user (whose jobs all run as them anyway). So the
//! master vouches for who is calling, as slurmctld does for slurmd, and it is not a superuser:
//! the node checks the caller's rights on its jobs and files as for a local call. A node trusts
//! its master so only when it opts in (`federation.accept_from_master`, which needs the reports
//! to travel over HTTPS or loopback); its key is new at every start and never shown by a view.

use super::NodeView;
use crate::gpu::GpuSummary;
use crate::model::{JobId, Role};
use placement::{GpuState, PendingJob};
use std::collections::HashSet;

/// The prefix of a node's key: the node tells it from its other credentials by it.
pub const KEY_PREFIX: &str = "gtm_";
/// The caller's Unix login name, as the master knows it.
pub const USER_HEADER: &str = "x-gantry-user";
/// `viewer` or `user`: what the caller may do on the master, and so at most on the node.
pub const ROLE_HEADER: &str = "x-gantry-role";
/// The node name that asks the master to choose (`gantry submit --node any`); no node has it.
pub const ANY: &str = "any";

/// A larger answer from a node is refused (a log is read in pages far below this).
const MAX_ANSWER: u64 = 8 << 20;

/// A node's key for this start.
pub fn new_key() -> String {
    format!("{KEY_PREFIX}{}", crate::auth::users::random_hex(32))
}

/// A node the master may act on: where it serves, and its key.
#[derive(Clone, Debug)]
pub struct Target {
    pub node: String,
    pub url: String,
    pub key: String,
    /// Where the node's reports come from: the only address the master acts at.
    pub heard_from: std::net::IpAddr,
}

/// Whether `url` is served at `heard_from`: its host is that address, or a name that resolves to
/// it. A node names the URL it serves at itself; without this a node's token would let it point
/// its master's requests, and their answers, at any other server the master can reach. Blocks
/// (resolves names).
fn served_where_heard(url: &str, heard_from: std::net::IpAddr) -> Result<(), String> {
    let base = crate::model::BaseUrl::parse(url)?;
    let port = base.port.unwrap_or(if base.secure { 443 } else { 80 });
    let same = |ip: std::net::IpAddr| ip.to_canonical() == heard_from.to_canonical();
    let found = match base.host.parse::<std::net::IpAddr>() {
        Ok(ip) => same(ip),
        Err(_) => std::net::ToSocketAddrs::to_socket_addrs(&(base.host.as_str(), port)).map_err(|e| format!("{}: {e}", base.host))?.any(|addr| same(addr.ip())),
    };
    if found {
        Ok(())
    } else {
        Err(format!("it says it serves at {url}, which is not where its reports come from ({heard_from}); its master acts on it only there"))
    }
}

/// Whom the master acts for: a Unix login name and a role no higher than `user`.
#[derive(Clone, Debug, PartialEq)]
pub struct OnBehalf {
    pub user: String,
    pub role: Role,
}

impl OnBehalf {
    pub fn new(user: impl Into<String>, role: Role) -> OnBehalf {
        OnBehalf { user: user.into(), role: role.min(Role::User) }
    }
}

/// A node's answer, passed on as it came.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl Answer {
    /// The node took the request (2xx).
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The error the node gave, for a message naming it.
    pub fn reason(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let detail = serde_json::from_str::<serde_json::Value>(&text).ok().and_then(|v| v.get("detail").or_else(|| v.get("error")).and_then(|d| d.as_str()).map(str::to_string));
        format!("{} {}", self.status, detail.unwrap_or_else(|| text.chars().take(200).collect()))
    }
}

#[derive(Debug, thiserror::Error)]
#[error("node {node}: {message}")]
pub struct Unreachable {
    pub node: String,
    pub message: String,
}

/// `method path` on the node for `who`, with `body` as JSON if given. Blocks (HTTP).
pub fn call(agent: &ureq::Agent, target: &Target, who: &OnBehalf, method: &str, path: &str, body: Option<&serde_json::Value>) -> Result<Answer, Unreachable> {
    let failed = |message: String| Unreachable { node: target.node.clone(), message };
    served_where_heard(&target.url, target.heard_from).map_err(failed)?;
    let request = agent
        .request(method, &format!("{}{path}", target.url))
        .set("Authorization", &format!("Bearer {}", target.key))
        .set(USER_HEADER, &who.user)
        .set(ROLE_HEADER, who.role.as_str());
    let sent = match body {
        Some(body) => request.send_json(body),
        None => request.call(),
    };
    let response = match sent {
        Ok(response) | Err(ureq::Error::Status(_, response)) => response,
        Err(ureq::Error::Transport(t)) => return Err(failed(t.to_string())),
    };
    let (status, content_type) = (response.status(), response.content_type().to_string());
    let body = super::read_bounded(response, MAX_ANSWER).map_err(failed)?;
    Ok(Answer { status, content_type, body })
}

/// The nodes to offer `job` to, best first: the online nodes that take actions and whose last
/// report shows GPUs `places` puts the job on now, least loaded first (fewest running jobs,
/// then most free memory); then those whose GPUs could hold it once free, fewest waiting jobs
/// first. A node that holds it nowhere is not offered it.
pub fn candidates(nodes: &[NodeView], job: &PendingJob, places: impl Fn(&[GpuState]) -> bool) -> Vec<String> {
    let mut now: Vec<(usize, std::cmp::Reverse<u64>, String)> = Vec::new();
    let mut later: Vec<(usize, String)> = Vec::new();
    for node in nodes.iter().filter(|n| n.accepts_actions && n.status == super::NodeStatus::Online) {
        let Some(report) = &node.report else { continue };
        let states = gpu_states(&report.node.gpus, &report.running);
        let free: u64 = states.iter().map(|g| g.memory_total_mib.saturating_sub(g.memory_used_mib + g.memory_reserved_mib)).sum();
        if places(&states) {
            now.push((report.jobs.running, std::cmp::Reverse(free), node.name.clone()));
        } else if could_hold(&states, job) {
            later.push((report.jobs.waiting, node.name.clone()));
        }
    }
    now.sort();
    later.sort();
    now.into_iter().map(|(_, _, name)| name).chain(later.into_iter().map(|(_, name)| name)).collect()
}

/// What the policy is told of a node's GPUs, from its report: each running job books the memory
/// it was promised on its GPUs, as on the node itself.
fn gpu_states(gpus: &[GpuSummary], running: &[crate::model::RunningJob]) -> Vec<GpuState> {
    let ids: HashSet<JobId> = running.iter().map(|j| j.id).collect();
    let observed = crate::scheduler::gpus::Observation::of(gpus, &|job| ids.contains(&job));
    let bookings: Vec<crate::scheduler::gpus::Booking<'_>> = running.iter().map(|j| crate::scheduler::gpus::Booking { job: j.id, gpus: &j.gpus, need_mib: j.memory_mib }).collect();
    crate::scheduler::gpus::gpu_states(gpus, &|_| true, &bookings, &observed)
}

/// Whether enough of the GPUs would hold the job with nothing else on them.
fn could_hold(states: &[GpuState], job: &PendingJob) -> bool {
    let roomy = states.iter().filter(|g| g.memory_total_mib >= job.memory_mib).count();
    u32::try_from(roomy).unwrap_or(u32::MAX) >= job.min_gpus.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::federation::{NodeStatus, Report, Via};

    fn node(name: &str, free_mib: &[u64], running: usize, waiting: usize) -> NodeView {
        let gpus: Vec<serde_json::Value> = free_mib
            .iter()
            .enumerate()
            .map(|(index, free)| {
                serde_json::json!({
                    "reading": { "status": "available", "index": index, "uuid": format!("GPU-{name}-{index}"), "name": "Sim", "memory_total_mib": 24_000,
                        "memory_used_mib": 24_000 - free, "memory_free_mib": free, "processes": [] },
                    "memory_peak_mib": 24_000 - free, "foreign_peak_mib": 24_000 - free, "utilization_mean": 0,
                })
            })
            .collect();
        let report: Report = serde_json::from_value(serde_json::json!({
            "seq": 1, "interval_ms": 1000, "url": "http://127.0.0.1:1", "master_key": null,
            "node": { "simulated": true, "versions": { "gantry": "0", "wit": "0" }, "driver": {},
                "host": { "hostname": name, "os": null, "kernel": null, "cpu_model": null, "cpu_cores": 1, "cpu_percent": 0.0, "load_average": [0.0, 0.0, 0.0],
                          "memory_total_mib": 1, "memory_used_mib": 0, "memory_percent": 0.0, "swap_total_mib": 0, "swap_used_mib": 0, "swap_percent": 0.0, "uptime_s": 1 },
                "sampled_at_ms": 1, "gpus": gpus },
            "jobs": { "total": running + waiting, "waiting": waiting, "held": 0, "running": running, "succeeded": 0, "failed": 0, "cancelled": 0 },
            "running": [],
        }))
        .expect("a report");
        NodeView { name: name.into(), status: NodeStatus::Online, via: Via::Push, address: None, last_seen_ms: None, offline_after_ms: 15_000, report: Some(report), error: None, accepts_actions: true }
    }

    fn job(memory_mib: u64) -> PendingJob {
        PendingJob { id: 1, queue: 0, min_gpus: 1, max_gpus: 1, memory_mib, priority: 0, attempts: 0, submitted_ms: 0, labels: None, owner: None, owner_usage: 0.0 }
    }

    fn best_fit(job: &PendingJob) -> impl Fn(&[GpuState]) -> bool + '_ {
        let rules = crate::policy::rules_for(&crate::model::SchedulingRules::default());
        move |gpus| !crate::policy::native(std::slice::from_ref(job), gpus, &rules).is_empty()
    }

    #[test]
    fn the_master_acts_on_a_node_only_at_the_address_its_reports_come_from() {
        let here: std::net::IpAddr = "127.0.0.1".parse().expect("ip");
        assert!(served_where_heard("http://127.0.0.1:7070", here).is_ok());
        assert!(served_where_heard("https://localhost:7070", here).is_ok(), "a name that resolves to it");
        assert!(served_where_heard("http://127.0.0.1:7070", "::ffff:127.0.0.1".parse().expect("mapped")).is_ok());
        let elsewhere = served_where_heard("http://10.1.2.3:80", here).expect_err("another server");
        assert!(elsewhere.contains("10.1.2.3") && elsewhere.contains("127.0.0.1"), "{elsewhere}");
    }

    #[test]
    fn nodes_with_room_now_come_first_least_loaded_then_those_that_could_hold_it_and_never_one_too_small() {
        let full = node("a", &[0, 0], 2, 5);
        let busy = node("b", &[20_000], 3, 0);
        let idle = node("c", &[20_000, 20_000], 0, 0);
        let mut closed = node("d", &[24_000], 0, 0);
        closed.accepts_actions = false;
        let mut stale = node("e", &[24_000], 0, 0);
        stale.status = NodeStatus::Stale;
        let nodes = [full, busy, idle, closed, stale];
        let want = job(10_000);
        assert_eq!(candidates(&nodes, &want, best_fit(&want)), ["c", "b", "a"]);
        let huge = job(30_000);
        assert!(candidates(&nodes, &huge, best_fit(&huge)).is_empty(), "no GPU holds 30 GB");
    }
}
