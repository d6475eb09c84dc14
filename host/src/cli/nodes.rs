//! `gantry node add|remove` and `gantry nodes`: a federation master's nodes. Issuing a node is an
//! admin's act, done over the master's socket by its owner; the token printed goes into the
//! agent's `gantry.toml`.

use super::client::Client;
use clap::Subcommand;
use gantry::federation::{NodeView, Via};
use serde_json::json;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum NodeCommand {
    /// Issue a node and print its token and the `[federation]` section for its gantry.toml.
    Add { name: String },
    /// Revoke a node's token: its reports are refused from now on.
    Remove { name: String },
}

pub fn run(client: &Client, command: NodeCommand) -> anyhow::Result<ExitCode> {
    match command {
        NodeCommand::Add { name } => {
            let issued: serde_json::Value = client.post("/api/v1/nodes", &json!({ "name": name }))?;
            let token = issued["token"].as_str().unwrap_or_default();
            println!("node {name} issued; its token is shown this once. In that machine's gantry.toml:\n");
            println!("[federation]\nmaster = \"{}\"\nnode_name = \"{name}\"\ntoken = \"{token}\"\n# accept_from_master = true   # lets this master submit, cancel and read logs there for its users, as themselves", client.base_url().unwrap_or_else(|| "http://THIS-MASTER:PORT (the address gantry serve printed)".into()));
        }
        NodeCommand::Remove { name } => {
            client.delete(&format!("/api/v1/nodes/{name}"))?;
            println!("node {name} revoked");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Every node and its GPUs with who is on them, as gpustat shows one machine.
pub fn list(client: &Client, json: bool) -> anyhow::Result<ExitCode> {
    let nodes: Vec<NodeView> = client.get("/api/v1/nodes")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&nodes)?);
        return Ok(ExitCode::SUCCESS);
    }
    if nodes.is_empty() {
        println!("no nodes: issue one with `gantry node add NAME`");
    }
    let now = gantry::model::now_ms();
    for node in &nodes {
        let seen = node.last_seen_ms.map_or_else(|| "never reported".to_string(), |ms| format!("{:.1} s ago", now.saturating_sub(ms) as f64 / 1000.0));
        let status = serde_json::to_value(node.status).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        let failed = node.error.as_deref().map(|e| format!("; last pull failed: {e}")).unwrap_or_default();
        let Some(report) = &node.report else {
            println!("{:<16} {:<8} {:<16} {seen}{failed}", node.name, status, node.address.as_deref().unwrap_or("-"));
            continue;
        };
        let jobs = match node.via {
            Via::Push if node.accepts_actions => format!("jobs: {} running, {} waiting; takes --node and NODE:ID from here", report.jobs.running, report.jobs.waiting + report.jobs.held),
            Via::Push => format!("jobs: {} running, {} waiting", report.jobs.running, report.jobs.waiting + report.jobs.held),
            Via::Pull => "pulled: no job counts".to_string(),
        };
        println!("{:<16} {:<8} {:<16} {seen}; {jobs}{failed}", node.name, status, node.address.as_deref().unwrap_or("-"));
        for gpu in report.node.gpus.iter().filter_map(|g| g.reading.snapshot()) {
            let users: Vec<String> = gpu.processes.iter().map(|p| format!("{}({}M)", p.user.as_deref().unwrap_or("?"), p.used_memory_mib.unwrap_or(0))).collect();
            println!(
                "  [{}] {:<24} {:>3} % | {:>6} / {:>6} MB | {}",
                gpu.index,
                gpu.name,
                gpu.utilization_gpu.map_or_else(|| "?".into(), |u| u.to_string()),
                gpu.memory_used_mib,
                gpu.memory_total_mib,
                users.join(" ")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

