//! Provider plugins reach Slurm, Kubernetes and cloud APIs through `wasi:http`. The host sends
//! their requests, and only to the base URLs configured for that provider instance: a provider
//! plugin holding a cloud token cannot post it anywhere else.
//!
//! `https` is checked against the public roots, or, under the base URL of an instance given a
//! `ca_file` (a Kubernetes cluster's own CA, as a kubeconfig's `certificate-authority` names it),
//! against that CA alone: wasmtime's own sender knows only the public roots, so those requests are
//! sent here. The CA is the cluster's, not the cloud's: an instance's second URL (a cloud API
//! beside its cluster) is still checked against the public roots.

use http::Uri;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

/// The TLS client configuration an instance's `https` requests under `base_url` are checked
/// with. Compared by identity: two instances given the same file still hold two configurations.
#[derive(Clone)]
pub struct HttpsTrust {
    pub ca: Arc<rustls::ClientConfig>,
    pub base_url: String,
}

impl PartialEq for HttpsTrust {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.ca, &other.ca) && self.base_url == other.base_url
    }
}

impl std::fmt::Debug for HttpsTrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HttpsTrust(own CA)")
    }
}

/// The `wasi:http` hooks of one plugin store: requests outside `base_urls` are denied.
pub struct AllowListHooks {
    plugin: String,
    base_urls: Vec<Uri>,
    /// The CA, and the base URL it is for.
    trust: Option<(Arc<rustls::ClientConfig>, Uri)>,
    /// The last request denied since [`AllowListHooks::take_denial`]: the guest only sees
    /// `HttpRequestDenied`, and its answer is told which grant would have allowed it.
    denied: Option<String>,
}

impl AllowListHooks {
    /// Base URLs that do not parse are dropped here; configuration validation reports them.
    pub fn new(plugin: &str, base_urls: Vec<String>, trust: Option<HttpsTrust>) -> Self {
        let trust = trust.and_then(|t| Some((t.ca, t.base_url.parse().ok()?)));
        AllowListHooks { plugin: plugin.to_string(), base_urls: base_urls.iter().filter_map(|u| u.parse().ok()).collect(), trust, denied: None }
    }

    /// What the last denied request was, and the grant that would allow it, once.
    pub fn take_denial(&mut self) -> Option<String> {
        self.denied.take().map(|uri| {
            let uri = super::text::shown(&uri, 512);
            format!("the host refused its request to {uri}: it is not under [plugins.settings.{}] http_base_urls", self.plugin)
        })
    }

    /// Same scheme, host and port, and a path under the base's path on a segment boundary, so
    /// `https://api.example/v1` allows `/v1/jobs` but not `/v10` or `/v1/../admin`.
    pub fn allows(&self, uri: &Uri) -> bool {
        self.base_urls.iter().any(|base| under(base, uri))
    }

    /// The CA to check `uri` with, where it is under the base URL a CA was given for.
    fn ca_for(&self, uri: &Uri) -> Option<Arc<rustls::ClientConfig>> {
        self.trust.as_ref().filter(|(_, base)| uri.scheme() == Some(&http::uri::Scheme::HTTPS) && under(base, uri)).map(|(ca, _)| ca.clone())
    }
}

fn under(base: &Uri, uri: &Uri) -> bool {
    let path = uri.path();
    if path.split('/').any(|segment| segment == ".." || segment == ".") {
        return false;
    }
    let base_path = base.path().trim_end_matches('/');
    base.scheme() == uri.scheme()
        && base.host().map(str::to_ascii_lowercase) == uri.host().map(str::to_ascii_lowercase)
        && base.port_u16() == uri.port_u16()
        && path.strip_prefix(base_path).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

type SendResult = Result<(http::Response<WasiBody>, Box<dyn Future<Output = Result<(), HttpError>> + Send>), HttpError>;

impl WasiHttpHooks for AllowListHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        drop(fut);
        if !self.allows(request.uri()) {
            tracing::warn!(plugin = %self.plugin, uri = %request.uri(), "provider plugin request denied: not under its [plugins.settings.NAME] http_base_urls");
            self.denied = Some(request.uri().to_string());
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        }
        if let Some(ca) = self.ca_for(request.uri()) {
            return Box::new(send_trusting(request, options, ca));
        }
        Box::new(async move {
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = Result<(), HttpError>> + Send>,
            ))
        })
    }
}

/// One request over its own HTTP/1.1 connection, checked with `trust`. The guest's connect and
/// first-byte timeouts hold; the call's deadline bounds the rest, as it bounds the whole call.
async fn send_trusting(mut request: http::Request<WasiBody>, options: Option<RequestOptions>, ca: Arc<rustls::ClientConfig>) -> SendResult {
    let uri = request.uri().clone();
    let host = uri.host().ok_or(HttpError::HttpRequestUriInvalid)?;
    let port = uri.port_u16().unwrap_or(443);
    let connect_timeout = options.and_then(|o| o.connect_timeout).unwrap_or(Duration::from_secs(600));
    let first_byte_timeout = options.and_then(|o| o.first_byte_timeout).unwrap_or(Duration::from_secs(600));
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let name = rustls::pki_types::ServerName::try_from(bare.to_string()).map_err(|_| HttpError::HttpRequestUriInvalid)?;
    let connect = async {
        let tcp = tokio::net::TcpStream::connect((bare, port)).await.map_err(HttpError::Connect)?;
        let tls = tokio_rustls::TlsConnector::from(ca).connect(name, tcp).await.map_err(HttpError::Tls)?;
        hyper::client::conn::http1::handshake::<_, WasiBody>(TokioIo::new(tls)).await.map_err(HttpError::from)
    };
    let (mut sender, connection) = tokio::time::timeout(connect_timeout, connect).await.map_err(|_| HttpError::ConnectionTimeout)??;
    let connection = tokio::spawn(connection);
    // The request line carries the path only: scheme and authority are for proxies.
    *request.uri_mut() = uri.path_and_query().map_or_else(|| Uri::from_static("/"), |p| Uri::from(p.clone()));
    let response = tokio::time::timeout(first_byte_timeout, sender.send_request(request)).await.map_err(|_| HttpError::ConnectionReadTimeout)??;
    let io = async move {
        match connection.await {
            Ok(result) => result.map_err(HttpError::from),
            Err(_) => Err(HttpError::ConnectionTerminated),
        }
    };
    Ok((response.map(|body| body.map_err(HttpError::from).boxed_unsync()), Box::new(io) as Box<dyn Future<Output = Result<(), HttpError>> + Send>))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hooks(urls: &[&str]) -> AllowListHooks {
        AllowListHooks::new("p", urls.iter().map(|s| s.to_string()).collect(), None)
    }

    fn allows(h: &AllowListHooks, uri: &str) -> bool {
        h.allows(&uri.parse().expect("test uri"))
    }

    #[test]
    fn only_configured_bases_are_reachable() {
        let h = hooks(&["https://api.runpod.io/v2", "http://127.0.0.1:6820/slurm/"]);
        assert!(allows(&h, "https://api.runpod.io/v2"));
        assert!(allows(&h, "https://api.runpod.io/v2/pods?x=1"));
        assert!(allows(&h, "https://API.runpod.io/v2/pods"));
        assert!(allows(&h, "http://127.0.0.1:6820/slurm/v0.0.40/jobs"));
        assert!(!allows(&h, "https://api.runpod.io/v20"));
        assert!(!allows(&h, "https://api.runpod.io/v2/../admin"));
        assert!(!allows(&h, "http://api.runpod.io/v2/pods"));
        assert!(!allows(&h, "https://api.runpod.io:8443/v2/pods"));
        assert!(!allows(&h, "https://evil.example/v2"));
        assert!(!allows(&h, "http://127.0.0.1:6821/slurm/jobs"));
    }

    /// A cluster's CA is for the cluster: the cloud API beside it is checked against the public
    /// roots, and so is plain `http` (which has no certificate to check).
    #[test]
    fn the_ca_is_used_under_its_base_url_alone() {
        let ca = crate::tls::client_config(None).expect("public roots");
        let trust = HttpsTrust { ca, base_url: "https://cls-a.example:6443".into() };
        let h = AllowListHooks::new("p", vec!["https://cls-a.example:6443".into(), "https://tke.example".into()], Some(trust));
        let ca_for = |uri: &str| h.ca_for(&uri.parse().expect("test uri")).is_some();
        assert!(ca_for("https://cls-a.example:6443/apis/batch/v1/namespaces/ml/jobs"));
        assert!(!ca_for("https://tke.example/"));
        assert!(!ca_for("https://cls-a.example/apis"));
        assert!(!ca_for("http://cls-a.example:6443/apis"));
    }

    #[test]
    fn no_base_urls_means_no_network() {
        assert!(!allows(&hooks(&[]), "https://anything.example/"));
    }
}
