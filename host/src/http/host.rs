//! DNS rebinding: a page of `attacker.example` whose name is made to resolve to 127.0.0.1 reaches
//! the daemon as a same-origin page of its own, cookies and CORS notwithstanding. What gives it
//! away is the `Host` it sends, so a request over TCP must name this server: an IP address
//! (rebinding needs a name), `localhost`, this machine's host name, or one of
//! `server.allowed_hosts` (`*`: any). Callers on the Unix socket are not browsers.

use super::error::ApiError;
use super::peer::Peer;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// The names a request may use for this server.
pub struct Hosts {
    names: Vec<String>,
    any: bool,
}

impl Hosts {
    pub fn new(configured: &[String]) -> Hosts {
        let mut names: Vec<String> = configured.to_vec();
        names.push("localhost".into());
        if let Some(own) = host_name() {
            names.push(own);
        }
        Hosts { any: configured.iter().any(|h| h == "*"), names }
    }

    /// Whether `host` (a `Host` header: name or address, with or without a port) is this server.
    pub fn allows(&self, host: &str) -> bool {
        if self.any {
            return true;
        }
        let name = match host.strip_prefix('[') {
            Some(rest) => return rest.split_once(']').is_some_and(|(address, _)| address.parse::<std::net::Ipv6Addr>().is_ok()),
            None => host.rsplit_once(':').filter(|(_, port)| port.parse::<u16>().is_ok()).map_or(host, |(name, _)| name),
        };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        name.parse::<std::net::IpAddr>().is_ok() || self.names.contains(&name) || name.ends_with(".localhost")
    }
}

/// This machine's host name, lowercased, as `gethostname` gives it.
fn host_name() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into our buffer.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    std::str::from_utf8(&buf[..end]).ok().map(str::to_ascii_lowercase).filter(|n| !n.is_empty())
}

/// Refuses a TCP request whose `Host` is not one of this server's names (421: the request was
/// meant for another server). A request without one is not a browser's.
pub async fn check(State(hosts): State<Arc<Hosts>>, request: Request, next: Next) -> Response {
    let over_socket = matches!(request.extensions().get::<ConnectInfo<Peer>>(), Some(ConnectInfo(Peer::Unix { .. })));
    let named = request.headers().get(header::HOST).map(|v| v.to_str().unwrap_or_default().to_string());
    if let (false, Some(host)) = (over_socket, named)
        && !hosts.allows(&host)
    {
        let detail = format!("Host '{}' is not a name of this server; add it to server.allowed_hosts if it is", host.chars().take(100).collect::<String>());
        return ApiError::new(StatusCode::MISDIRECTED_REQUEST, "host", detail).into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::Hosts;

    #[test]
    fn addresses_local_names_and_configured_names_pass_other_names_do_not() {
        let hosts = Hosts::new(&["gpu1.lab.example".into()]);
        for ok in ["127.0.0.1:7070", "127.0.0.1", "10.1.2.3:80", "[::1]:7070", "localhost:7070", "LOCALHOST", "app.localhost", "gpu1.lab.example:7070", "gpu1.lab.example."] {
            assert!(hosts.allows(ok), "{ok}");
        }
        for refused in ["attacker.example:7070", "attacker.example", "127.0.0.1.attacker.example", "", "[evil]:80", "gpu1.lab.example.attacker.example"] {
            assert!(!hosts.allows(refused), "{refused}");
        }
        assert!(Hosts::new(&["*".into()]).allows("anything.example"));
    }
}
