//! Tencent Cloud's TKE API (version `2018-05-25`, every call a JSON POST to `/` signed with
//! TC3-HMAC-SHA256): the call that says where a cluster's API server is, and what its answers
//! mean. No I/O here, so all of it is tested natively.

use gantry_provider::sign::tc3;
use gantry_provider::ProviderError;
use serde_json::{json, Value};

pub const SERVICE: &str = "tke";
pub const VERSION: &str = "2018-05-25";
pub const CONTENT_TYPE: &str = "application/json; charset=utf-8";

/// What an instance configures for the TKE API, beside its cluster's (`k8s_jobs::Settings`).
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// `https://tke.tencentcloudapi.com`, or a regional or international endpoint of it.
    pub api_url: String,
    pub secret_id: String,
    pub secret_key: String,
    pub region: String,
    pub cluster_id: String,
    /// The cluster's API server as the host reaches it.
    pub base_url: String,
}

impl Settings {
    pub fn read<F: Fn(&str) -> Option<String>>(instance: &gantry_provider::Settings<F>) -> Result<Settings, ProviderError> {
        let cluster_id = instance.need("CLUSTER_ID")?;
        let plain = cluster_id.starts_with("cls-") && cluster_id.len() <= 32 && cluster_id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !plain {
            return Err(ProviderError::InvalidConfig(format!("options.cluster_id: '{cluster_id}' is not a TKE cluster id (cls-…)")));
        }
        Ok(Settings {
            api_url: instance.need("API_URL")?.trim_end_matches('/').to_string(),
            secret_id: instance.need("SECRET_ID")?,
            secret_key: instance.need("SECRET")?,
            region: instance.need("REGION")?,
            cluster_id,
            base_url: instance.base_url()?,
        })
    }

    /// The API's host (and port, if it names one), which the signature covers.
    fn api_host(&self) -> &str {
        host_of(&self.api_url)
    }
}

/// `https://host:port/path` → `host:port`.
fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.split(['/', '?']).next().unwrap_or(rest)
}

/// `host:port` → `host`, for an IPv6 literal too.
fn without_port(host: &str) -> &str {
    match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => host.rsplit_once(':').filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit())).map_or(host, |(name, _)| name),
    }
}

/// A signed call: the headers to send with `body` to the API's `/`.
#[derive(Debug)]
pub struct Call {
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// `action` with `payload`, signed at `timestamp` (Unix seconds): the content type and the host
/// signed, as the published example signs them.
pub fn call(settings: &Settings, action: &str, payload: &Value, timestamp: u64) -> Call {
    let body = payload.to_string();
    let signed = tc3::sign(
        &tc3::Request { host: settings.api_host(), service: SERVICE, content_type: CONTENT_TYPE, headers: &[], payload: body.as_bytes(), timestamp },
        &settings.secret_id,
        &settings.secret_key,
    );
    let headers = [
        ("Authorization", signed.authorization),
        ("Content-Type", CONTENT_TYPE.to_string()),
        ("X-TC-Action", action.to_string()),
        ("X-TC-Version", VERSION.to_string()),
        ("X-TC-Timestamp", timestamp.to_string()),
        ("X-TC-Region", settings.region.clone()),
    ];
    Call { headers: headers.into_iter().map(|(n, v)| (n.to_string(), v)).collect(), body }
}

pub fn describe_endpoints(settings: &Settings, timestamp: u64) -> Call {
    call(settings, "DescribeClusterEndpoints", &json!({ "ClusterId": settings.cluster_id }), timestamp)
}

/// Why a call to the TKE API gave no answer.
#[derive(Debug, PartialEq)]
pub enum Failure {
    /// The API is away, throttles or failed inside: nothing is known about the instance.
    Outage(String),
    /// The API answered, and what it said is the instance's fault or the job's.
    Said(ProviderError),
}

/// An answer's `Response`, or the error it carries: the API answers its errors with HTTP 200
/// and `Response.Error`.
pub fn response(status: u16, body: &[u8], settings: &Settings) -> Result<Value, Failure> {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let Some(mut answer) = parsed.and_then(|mut v| v.get_mut("Response").map(Value::take)) else {
        let text = format!("the TKE API answered HTTP {status}: {}", String::from_utf8_lossy(&body[..body.len().min(512)]).trim());
        return Err(if status >= 500 || status == 429 { Failure::Outage(text) } else { Failure::Said(ProviderError::Remote(text)) });
    };
    let Some(error) = answer.get_mut("Error").map(Value::take) else { return Ok(answer) };
    let code = error["Code"].as_str().unwrap_or("?");
    let text = format!("the TKE API answered {code}: {} (RequestId {})", error["Message"].as_str().unwrap_or_default(), answer["RequestId"].as_str().unwrap_or("?"));
    Err(match code {
        // The instance's key or the daemon's clock is wrong: the job is not at fault, so it
        // waits, and the provider is asked again later.
        c if c.starts_with("AuthFailure") => Failure::Said(ProviderError::Transport(format!("{text}; check options.secret_id and secret_file (or secret_env) of this instance, and this machine's clock"))),
        c if c.starts_with("RequestLimitExceeded") || c.starts_with("InternalError") || c.starts_with("ResourceUnavailable") => Failure::Outage(text),
        c if c.contains("ClusterNotFound") || c.starts_with("ResourceNotFound") => {
            Failure::Said(ProviderError::InvalidConfig(format!("options.cluster_id: TKE has no cluster {} in {} ({text})", settings.cluster_id, settings.region)))
        }
        _ => Failure::Said(ProviderError::Remote(text)),
    })
}

/// Where DescribeClusterEndpoints says the cluster's API server answers.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Endpoints {
    pub public: Vec<String>,
    pub private: Vec<String>,
}

impl Endpoints {
    pub fn of(answer: &Value) -> Endpoints {
        let names = |keys: &[&str]| -> Vec<String> {
            keys.iter().filter_map(|k| answer[*k].as_str()).map(|v| without_port(host_of(v.trim())).to_ascii_lowercase()).filter(|v| !v.is_empty()).collect()
        };
        Endpoints { public: names(&["ClusterExternalEndpoint", "ClusterExternalDomain"]), private: names(&["ClusterIntranetEndpoint", "ClusterIntranetDomain", "ClusterDomain"]) }
    }

    /// Whether `base_url` is one of the cluster's addresses; if not, what to set instead. The
    /// host reaches only the configured `base_url` and checks it with its `ca_file`, so the
    /// adapter can't go where the API says on its own: it says where, once, clearly.
    pub fn check(&self, settings: &Settings) -> Result<(), ProviderError> {
        let host = without_port(host_of(&settings.base_url)).to_ascii_lowercase();
        if self.public.iter().chain(&self.private).any(|e| *e == host) {
            return Ok(());
        }
        let list = |names: &[String]| if names.is_empty() { "none".to_string() } else { names.join(", ") };
        let public = if self.public.is_empty() { " (enable it with CreateClusterEndpoint, IsExtranet true, or reach the cluster privately)" } else { "" };
        Err(ProviderError::InvalidConfig(format!(
            "base_url: {} is not the API server of TKE cluster {}: its public address is {}{public}, its private one {}; set base_url to one of them (https://ADDRESS), and ca_file to its CertificationAuthority",
            settings.base_url,
            settings.cluster_id,
            list(&self.public),
            list(&self.private)
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            api_url: "https://tke.tencentcloudapi.com".into(),
            secret_id: "AKIDEXAMPLE".into(),
            secret_key: "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE".into(),
            region: "ap-shanghai".into(),
            cluster_id: "cls-65r1c5nu".into(),
            base_url: "https://cls-65r1c5nu.ccs.tencent-cloud.com".into(),
        }
    }

    #[test]
    fn the_settings_name_what_is_missing_or_wrong() {
        let given = |cluster: &'static str, secret: bool| {
            gantry_provider::Settings::new(move |name| match name {
                "BASE_URL" => Some("https://10.0.0.1/".into()),
                "API_URL" => Some("https://tke.tencentcloudapi.com/".into()),
                "SECRET_ID" => Some("AKID".into()),
                "SECRET" if secret => Some("key".into()),
                "REGION" => Some("ap-shanghai".into()),
                "CLUSTER_ID" => Some(cluster.into()),
                _ => None,
            })
        };
        let read = Settings::read(&given("cls-abc", true)).expect("valid");
        assert_eq!((read.api_url.as_str(), read.base_url.as_str(), read.api_host()), ("https://tke.tencentcloudapi.com", "https://10.0.0.1", "tke.tencentcloudapi.com"));
        assert_eq!(Settings::read(&given("cls-abc", false)), Err(ProviderError::InvalidConfig("secret_file (or secret_env): not set for this provider instance ([providers.NAME] in gantry.toml)".into())));
        assert!(matches!(Settings::read(&given("../x", true)), Err(ProviderError::InvalidConfig(m)) if m.starts_with("options.cluster_id: '../x'")));
    }

    /// The call is Tencent's TC3 over exactly the bytes sent: recomputed from what a server
    /// receives, the signature matches.
    #[test]
    fn a_call_is_signed_over_its_body_and_host() {
        let call = describe_endpoints(&settings(), 1_551_113_065);
        assert_eq!(call.body, r#"{"ClusterId":"cls-65r1c5nu"}"#);
        let header = |name: &str| call.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()).unwrap_or_default();
        assert_eq!((header("X-TC-Action").as_str(), header("X-TC-Version").as_str(), header("X-TC-Region").as_str()), ("DescribeClusterEndpoints", VERSION, "ap-shanghai"));
        let again = tc3::sign(&tc3::Request { host: "tke.tencentcloudapi.com", service: "tke", content_type: CONTENT_TYPE, headers: &[], payload: call.body.as_bytes(), timestamp: 1_551_113_065 }, "AKIDEXAMPLE", "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE");
        assert_eq!(header("Authorization"), again.authorization);
        assert!(again.authorization.starts_with("TC3-HMAC-SHA256 Credential=AKIDEXAMPLE/2019-02-25/tke/tc3_request, SignedHeaders=content-type;host, "), "{}", again.authorization);
    }

    #[test]
    fn errors_arrive_as_http_200_and_are_named() {
        let answer = |code: &str| format!(r#"{{"Response": {{"Error": {{"Code": "{code}", "Message": "m"}}, "RequestId": "r-1"}}}}"#).into_bytes();
        assert!(matches!(response(200, &answer("AuthFailure.SignatureFailure"), &settings()), Err(Failure::Said(ProviderError::Transport(m))) if m.contains("options.secret_id") && m.contains("RequestId r-1")));
        assert!(matches!(response(200, &answer("ResourceNotFound.ClusterNotFound"), &settings()), Err(Failure::Said(ProviderError::InvalidConfig(m))) if m.starts_with("options.cluster_id: TKE has no cluster cls-65r1c5nu in ap-shanghai")));
        assert!(matches!(response(200, &answer("RequestLimitExceeded"), &settings()), Err(Failure::Outage(_))));
        assert!(matches!(response(200, &answer("InvalidParameter"), &settings()), Err(Failure::Said(ProviderError::Remote(_)))));
        assert!(matches!(response(502, b"<html>bad gateway</html>", &settings()), Err(Failure::Outage(m)) if m.contains("HTTP 502")));
        let ok = response(200, br#"{"Response": {"ClusterIntranetEndpoint": "10.0.0.1", "RequestId": "r"}}"#, &settings()).expect("an answer");
        assert_eq!(ok["ClusterIntranetEndpoint"], "10.0.0.1");
    }

    #[test]
    fn the_base_url_must_be_one_of_the_clusters_addresses() {
        let answer = json!({ "ClusterExternalEndpoint": "", "ClusterIntranetEndpoint": "10.0.0.1", "ClusterDomain": "cls-65r1c5nu.ccs.tencent-cloud.com", "ClusterExternalDomain": null });
        let endpoints = Endpoints::of(&answer);
        assert_eq!(endpoints, Endpoints { public: vec![], private: vec!["10.0.0.1".into(), "cls-65r1c5nu.ccs.tencent-cloud.com".into()] });
        assert_eq!(endpoints.check(&settings()), Ok(()));
        assert_eq!(endpoints.check(&Settings { base_url: "https://10.0.0.1:443".into(), ..settings() }), Ok(()));
        let wrong = endpoints.check(&Settings { base_url: "https://203.0.113.7".into(), ..settings() });
        assert!(matches!(&wrong, Err(ProviderError::InvalidConfig(m)) if m.contains("its public address is none (enable it with CreateClusterEndpoint") && m.contains("its private one 10.0.0.1, cls-65r1c5nu")), "{wrong:?}");
        assert_eq!(without_port("[::1]:6443"), "::1");
    }
}
