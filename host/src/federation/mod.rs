//! Federation of a few GPU servers (seed 003): every daemon can report to a master, any daemon
//! can be one. An agent pushes its node snapshot (host, GPUs, job counts) every report interval
//! and at once when a job starts or ends; the master keeps the latest snapshot of each node it
//! issued a token to, and tells how fresh it is. The master is never on the path of a local job.
//!
//! A master can also pull the slaves it is configured with, as seed 003's master does.
//!
//! - `registry`: the master's side: node tokens (kept as digests in `<state>/nodes.json`), the
//!   slaves it pulls, and the latest report of each node, with its freshness (`online`,
//!   `stale`, `offline`);
//! - `reporter`: the agent's side: the loop that sends reports;
//! - `puller`: the master's pulls of its configured slaves;
//! - `flowline`: seed 003's `/api/info`, answered and read;
//! - `forward`: the master acting on a node for its callers, as their own Unix user there.

pub mod flowline;
pub mod forward;
pub mod puller;
pub mod registry;
pub mod reporter;

pub use puller::Puller;
pub use registry::{NodeStatus, NodeView, Registry, RegistryError, Report, Via};

use crate::gpu::{DriverInfo, GpuSummary};
use crate::host_info::HostInfo;
use serde::{Deserialize, Serialize};

/// This machine at a glance: what an agent will report to a federation master.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Node {
    pub simulated: bool,
    pub versions: Versions,
    pub driver: DriverInfo,
    pub host: HostInfo,
    pub sampled_at_ms: u64,
    pub gpus: Vec<GpuSummary>,
}

#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Versions {
    pub gantry: String,
    /// The `gantry:plugin` WIT package plugins must target.
    pub wit: String,
}


/// What configures federation (`[federation]` in `gantry.toml`).
#[derive(Clone, Debug, PartialEq)]
pub struct FederationConfig {
    /// This daemon reports to this master (`http://host:port` or `https://…`), if set.
    pub master: Option<String>,
    /// The name this node reports under (default: the host name).
    pub node_name: String,
    /// The token the master issued for this node (`gantry node add NAME` on the master).
    pub token: Option<String>,
    pub report_interval: std::time::Duration,
    /// A node not heard from for this long is `offline` (`stale` after two report intervals).
    pub offline_after: std::time::Duration,
    /// The slaves this daemon pulls as their master (seed 003's `slaves`), every
    /// `refresh_interval`.
    pub slaves: Vec<Slave>,
    pub refresh_interval: std::time::Duration,
    /// A CA whose certificates this daemon trusts, beyond the public ones, when it reaches its
    /// master or a slave over HTTPS.
    pub ca_cert: Option<std::path::PathBuf>,
    /// Whether the master may act on this node for its callers (submit, cancel, read logs), each
    /// as their own Unix user here and never as more than a user: see [`forward`].
    pub accept_from_master: bool,
}

/// A slave a master pulls: its `/api/info` at `url`, with `token` as a bearer credential if set
/// (a gantry daemon asks for one over TCP; FlowLine's slave does not).
#[derive(Clone, Debug, PartialEq)]
pub struct Slave {
    pub name: String,
    /// As configured (seed 003's `ip`); `/api/slaves/<ip>` finds the slave by it.
    pub address: String,
    /// `http://address:port`, or the `url` configured.
    pub url: String,
    pub token: Option<String>,
}

impl Default for FederationConfig {
    fn default() -> Self {
        FederationConfig {
            master: None,
            node_name: crate::host_info::host_name(),
            token: None,
            report_interval: std::time::Duration::from_secs(3),
            offline_after: std::time::Duration::from_secs(15),
            slaves: Vec::new(),
            refresh_interval: std::time::Duration::from_secs(5),
            ca_cert: None,
            accept_from_master: false,
        }
    }
}

/// A report or a pull that has not been answered within this has failed (gpustat-web waits 30 s
/// for its SSH fan-out; an HTTP answer of a few KiB needs far less).
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The HTTP client of an agent's reports and a master's pulls, trusting `ca_cert` too. Blocks
/// (reads the CA file).
pub fn client(config: &FederationConfig) -> Result<ureq::Agent, crate::tls::TlsError> {
    crate::tls::agent(config.ca_cert.as_deref(), REQUEST_TIMEOUT)
}

/// A federation loop (reports, pulls) running on the daemon's runtime; dropping it stops it.
pub struct Running {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An answer's body, refused beyond `max` bytes. Blocks (reads the socket).
fn read_bounded(response: ureq::Response, max: u64) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let url = response.get_url().to_string();
    let mut body = Vec::new();
    response.into_reader().take(max + 1).read_to_end(&mut body).map_err(|e| format!("{url}: {e}"))?;
    if body.len() as u64 > max {
        return Err(format!("{url} answered more than {max} bytes"));
    }
    Ok(body)
}
