//! Jobs handed to a Tencent Cloud TKE cluster through the bundled `provider-tencent-tke`. The
//! cluster is this suite's Kubernetes stand-in (`k8s::Cluster`, over HTTPS with a CA of its
//! own); the TKE API is one here that follows its documented `DescribeClusterEndpoints`: a JSON
//! POST to `/` with `X-TC-Action`, `X-TC-Version`, `X-TC-Timestamp` and `X-TC-Region`, answered
//! HTTP 200 with `Response`, errors included (`Response.Error`), and every request's
//! TC3-HMAC-SHA256 signature checked with the key, recomputed from what arrived. The adapter has
//! not been run against Tencent Cloud.

use super::k8s::Cluster;
use super::lab_ca::LabCa;
use super::stub_api::{self, Answer, Request};
use super::Gantry;
use gantry_provider::sign::tc3;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const SECRET_ID: &str = "AKIDgantrytest";
const SECRET_KEY: &str = "tke-test-key-5b1e";
const REGION: &str = "ap-shanghai";

fn error(code: &str, message: &str) -> Answer {
    Answer::json(200, &json!({ "Response": { "Error": { "Code": code, "Message": message }, "RequestId": "req-test" } }))
}

/// The TKE API: its clusters' `DescribeClusterEndpoints` answers by id, and the ids it was
/// asked about.
fn tke_api(clusters: Value) -> (String, Arc<Mutex<Vec<String>>>) {
    let asked: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = asked.clone();
    let url = stub_api::serve(
        None,
        Arc::new(move |r: &Request| {
            if (r.method.as_str(), r.path.as_str()) != ("POST", "/") {
                return Answer::json(404, &json!({ "error": "the API answers POST / alone" }));
            }
            let header = |name: &str| r.header(name).unwrap_or_default();
            if (header("x-tc-action"), header("x-tc-version"), header("x-tc-region")) != ("DescribeClusterEndpoints", "2018-05-25", REGION) {
                return error("InvalidParameter", "unexpected action, version or region");
            }
            let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
            let Some(timestamp) = header("x-tc-timestamp").parse::<u64>().ok().filter(|t| t.abs_diff(now) <= 300) else {
                return error("AuthFailure.SignatureExpire", "the timestamp is not within 5 minutes of the server's");
            };
            let expected = tc3::sign(&tc3::Request { host: header("host"), service: "tke", content_type: header("content-type"), headers: &[], payload: &r.body, timestamp }, SECRET_ID, SECRET_KEY);
            if header("authorization") != expected.authorization {
                return error("AuthFailure.SignatureFailure", "the request signature does not match");
            }
            let body: Value = serde_json::from_slice(&r.body).unwrap_or_default();
            let id = body["ClusterId"].as_str().unwrap_or_default().to_string();
            seen.lock().expect("asked").push(id.clone());
            match clusters.get(&id) {
                Some(endpoints) => {
                    let mut answer = endpoints.clone();
                    answer["RequestId"] = json!("req-test");
                    Answer::json(200, &json!({ "Response": answer }))
                }
                None => error("ResourceNotFound.ClusterNotFound", &format!("cluster {id} not found")),
            }
        }),
    );
    (url, asked)
}

/// `[providers.NAME]` for the TKE cluster `cluster_id`, its API server `cluster`, signing with
/// `key`.
fn instance(g: &Gantry, name: &str, cluster: &Cluster, ca: &std::path::Path, api: &str, cluster_id: &str, key: &str) -> String {
    let token = g.token_file(&format!("{name}.token"), cluster.token());
    let secret = g.token_file(&format!("{name}.key"), key);
    format!(
        "[providers.{name}]\nplugin = \"provider-tencent-tke\"\nbase_url = \"{}\"\ntoken_file = \"{}\"\nca_file = \"{}\"\napi_url = \"{api}\"\nsecret_file = \"{}\"\npoll_ms = 200\npoll_max_ms = 1000\n[providers.{name}.options]\nsecret_id = \"{SECRET_ID}\"\nregion = \"{REGION}\"\ncluster_id = \"{cluster_id}\"\nnamespace = \"ml\"\nimage = \"busybox:1.36\"\nprice_per_gpu_hour = 2.5\ncurrency = \"CNY\"\n",
        cluster.url(),
        token.display(),
        ca.display(),
        secret.display()
    )
}

#[test]
fn a_job_runs_on_the_tke_cluster_the_tke_api_names_and_a_wrong_address_or_key_is_refused() {
    let lab = LabCa::new();
    let cluster = Cluster::start_tls(&lab);
    let ca = std::fs::read_to_string(&lab.ca).expect("ca");
    let (api, asked) = tke_api(json!({
        "cls-gantry1": { "CertificationAuthority": ca, "ClusterExternalEndpoint": "", "ClusterIntranetEndpoint": "127.0.0.1", "ClusterDomain": "cls-gantry1.ccs.tencent-cloud.com" },
        "cls-other": { "CertificationAuthority": ca, "ClusterExternalEndpoint": "203.0.113.9", "ClusterIntranetEndpoint": "10.0.0.9", "ClusterDomain": "cls-other.ccs.tencent-cloud.com" },
    }));
    let g = Gantry::new();
    let config = [
        instance(&g, "tke", &cluster, &lab.ca, &api, "cls-gantry1", SECRET_KEY),
        instance(&g, "elsewhere", &cluster, &lab.ca, &api, "cls-other", SECRET_KEY),
        instance(&g, "gone", &cluster, &lab.ca, &api, "cls-nowhere", SECRET_KEY),
        instance(&g, "badkey", &cluster, &lab.ca, &api, "cls-gantry1", "not-the-key"),
        // Nothing listens there: the TKE API is away, and the cluster is used unchecked.
        instance(&g, "apidown", &cluster, &lab.ca, "http://127.0.0.1:9", "cls-gantry1", SECRET_KEY),
    ]
    .concat();
    let d = g.serve(&config, &[]);

    let id = d.submit(json!({ "commands": ["echo on tke"], "provider": "tke" }))[0];
    let job = d.finished(id);
    assert_eq!(job["state"], "succeeded", "{job:#}");
    assert_eq!(d.log(id), "on tke\n");
    assert_eq!(asked.lock().expect("asked").as_slice(), ["cls-gantry1"], "the TKE API was asked about the cluster before the Job was made");
    let remote = &job["attempts"][0]["remote"];
    assert!(remote["id"].as_str().is_some_and(|name| name.starts_with("gantry-")), "{job:#}");
    assert_eq!((remote["cost"]["currency"].as_str(), remote["cost"]["per_hour"].as_f64()), (Some("CNY"), Some(2.5)), "the site's rate, counted while it ran: {job:#}");

    let long = d.submit(json!({ "commands": ["sleep 300"], "provider": "tke" }))[0];
    d.wait_job(long, Duration::from_secs(30), |j| j["attempts"][0]["remote"]["state"] == "Running");
    d.request("POST", &format!("/api/v1/jobs/{long}/cancel"), None);
    assert_eq!(d.finished(long)["state"], "cancelled");

    // The cluster's addresses are elsewhere: refused, saying where, and nothing was made.
    let elsewhere = d.finished(d.submit(json!({ "commands": ["true"], "provider": "elsewhere" }))[0]);
    let said = elsewhere.to_string();
    assert_eq!(elsewhere["state"], "failed", "{elsewhere:#}");
    assert!(said.contains("is not the API server of TKE cluster cls-other: its public address is 203.0.113.9, its private one 10.0.0.9, cls-other.ccs.tencent-cloud.com"), "{elsewhere:#}");
    let gone = d.finished(d.submit(json!({ "commands": ["true"], "provider": "gone" }))[0]);
    assert!(gone["state"] == "failed" && gone.to_string().contains("options.cluster_id: TKE has no cluster cls-nowhere in ap-shanghai"), "{gone:#}");

    let unchecked = d.finished(d.submit(json!({ "commands": ["echo unchecked"], "provider": "apidown" }))[0]);
    assert_eq!(unchecked["state"], "succeeded", "a TKE API that is away does not stop the cluster's jobs: {unchecked:#}");

    // A wrong key is the instance's fault, not the job's: it waits, and says why.
    let waiting = d.submit(json!({ "commands": ["true"], "provider": "badkey" }))[0];
    let job = d.wait_job(waiting, Duration::from_secs(30), |j| j["reason"].as_str().is_some_and(|r| r.contains("AuthFailure.SignatureFailure")));
    assert!(job["reason"].as_str().is_some_and(|r| r.contains("options.secret_id")), "{job:#}");
    assert_eq!(job["state"], "waiting", "{job:#}");
    assert_eq!(cluster.creates(), 3, "only the jobs of the right cluster reached it");
    cluster.validate();
}
