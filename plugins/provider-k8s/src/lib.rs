//! gantry's Kubernetes adapter: an attempt becomes a batch/v1 Job with `nvidia.com/gpu` limits
//! (the shared `k8s-jobs` crate says how), on the API server at the instance's `base_url`.
//!
//! Configured through the environment the host gives a provider instance: `BASE_URL` (the API
//! server), `TOKEN` (a bearer token; none through `kubectl proxy`), and the options `NAMESPACE`,
//! `IMAGE`, `GPU_RESOURCE`, `QGPU_CORE`, `TIME_LIMIT_MIN`, `TTL_S`, `PRICE_PER_GPU_HOUR`,
//! `CURRENCY`.

use gantry_provider::{JobConfig, JobResult, Provider, ProviderError};
use k8s_jobs::Cluster;

struct Kubernetes;

impl Provider for Kubernetes {
    fn submit(job: &JobConfig) -> Result<JobResult, ProviderError> {
        Cluster::from_host()?.submit(job)
    }

    fn status(id: &str) -> Result<JobResult, ProviderError> {
        Cluster::from_host()?.status(id)
    }

    fn logs(id: &str, tail_lines: u32) -> Result<String, ProviderError> {
        Cluster::from_host()?.logs(id, tail_lines)
    }

    fn cancel(id: &str) -> Result<JobResult, ProviderError> {
        Cluster::from_host()?.cancel(id)
    }
}

gantry_provider::export_provider!(Kubernetes);
