//! gantry's own routes: `/api/v1` and the logins and accounts of seeds 001 and 002.
//!
//! - `node`: health, metrics, the machine, events, plugins, the daemon's life;
//! - `jobs`: jobs, their logs, queues, runs, status;
//! - `job_config`: seed 002's `JobConfig` as a job;
//! - `files`: command files, rules, settings;
//! - `accounts`: logins, tokens, accounts;
//! - `nodes`: the federation's nodes, as their master;
//! - `paging`: `?offset=&limit=` of the lists.

mod accounts;
pub mod files;
mod job_config;
mod jobs;
mod node;
mod nodes;
mod paging;

use super::routes::Routes;
use crate::service::Service;
use std::sync::Arc;

pub fn routes(service: Arc<Service>) -> Routes {
    node::routes(service.clone()).merge(jobs::routes(service.clone())).merge(files::routes(service.clone())).merge(accounts::routes(service.clone())).merge(nodes::routes(service))
}
