//! gantry's Tencent Cloud TKE adapter. A TKE cluster is a Kubernetes cluster: an attempt becomes
//! a batch/v1 Job as `provider-k8s` makes it (the shared `k8s-jobs` crate), with whole GPUs as
//! `nvidia.com/gpu` or TKE's qGPU shares (`options.gpu_resource = "qgpu"`). Before each
//! submission the adapter asks the TKE API (`DescribeClusterEndpoints`, TC3-signed) where the
//! cluster's API server is, and refuses, saying where, when the instance's `base_url` is not one
//! of its addresses: the host reaches only configured URLs, so the adapter checks rather than
//! follows. The check is the TKE API's word on the configuration: while that API is away or
//! throttles, jobs still go to the cluster, unchecked.
//!
//! Configured through the environment the host gives a provider instance: `BASE_URL` (the
//! cluster's API server), `TOKEN` (a ServiceAccount's bearer token: `wasi:http` can't present a
//! kubeconfig's client certificate), `API_URL` (the TKE API), `SECRET` (the SecretKey), the
//! options `SECRET_ID`, `REGION`, `CLUSTER_ID`, and those of `provider-k8s`.

pub mod tke;

use gantry_provider::http::Api;
use gantry_provider::{JobConfig, JobResult, Provider, ProviderError};
use k8s_jobs::Cluster;

struct Tke;

fn now_s() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Asks the TKE API where the cluster's API server is, and checks the instance's `base_url`;
/// an API that can't be asked now checks nothing.
fn check_cluster() -> Result<(), ProviderError> {
    let settings = tke::Settings::read(&gantry_provider::Settings::from_host())?;
    let call = tke::describe_endpoints(&settings, now_s());
    let headers: Vec<(&str, &str)> = call.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let answer = match Api::new(&settings.api_url).request("POST", "/", &headers, Some(call.body.as_bytes())) {
        Ok(answer) => answer,
        Err(ProviderError::Transport(_)) => return Ok(()),
        Err(e) => return Err(e),
    };
    match tke::response(answer.status, &answer.body, &settings) {
        Ok(endpoints) => tke::Endpoints::of(&endpoints).check(&settings),
        Err(tke::Failure::Outage(_)) => Ok(()),
        Err(tke::Failure::Said(e)) => Err(e),
    }
}

impl Provider for Tke {
    fn submit(job: &JobConfig) -> Result<JobResult, ProviderError> {
        let cluster = Cluster::from_host()?;
        check_cluster()?;
        cluster.submit(job)
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

gantry_provider::export_provider!(Tke);
