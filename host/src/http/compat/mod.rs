//! The documented endpoints of the systems gantry replaces, as thin adapters over the same
//! services as `/api/v1`: each reshapes an answer into the seed document's fields, nothing more.
//!
//! - `diffusion_pipe`: seed 000's GPU API (`/api/v1/gpu/...`, `{code, message, data}` envelope);
//! - `gpu_manager`: seed 001/004's GPU monitoring (`/api/gpu…`);
//! - `compete`: seed 001/004's rules, command files, schedulers, log bindings and settings;
//! - `flowline`: seed 003's agent (`/api/info`, `/api/health`).

mod compete;
mod diffusion_pipe;
mod flowline;
mod gpu_manager;

use super::routes::Routes;
use crate::service::Service;
use std::sync::Arc;

pub fn routes(service: Arc<Service>) -> Routes {
    diffusion_pipe::routes(service.clone()).merge(gpu_manager::routes(service.clone())).merge(compete::routes(service.clone())).merge(flowline::routes(service))
}

