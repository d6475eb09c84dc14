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
use super::service::Service;
use std::sync::Arc;

pub fn routes(service: Arc<Service>) -> Routes {
    diffusion_pipe::routes(service.clone()).merge(gpu_manager::routes(service.clone())).merge(compete::routes(service.clone())).merge(flowline::routes(service))
}

/// MiB as the seeds' GB: GiB, to one decimal.
fn gb(mib: u64) -> f64 {
    (mib as f64 / 1024.0 * 10.0).round() / 10.0
}

/// Seed 001's timestamps: ISO 8601 in UTC without a zone (`2025-12-03T02:14:39`).
pub fn iso_time(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}", rest / 3600, rest % 3600 / 60, rest % 60)
}
