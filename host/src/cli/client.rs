//! The CLI's side of the daemon's HTTP API, over the daemon's Unix socket (where the kernel
//! tells the daemon who is calling, so no token is needed) or over TCP.
//!
//! Which daemon: `--server URL` (TCP or TLS, with `--token`), else `--socket PATH`, else your
//! own daemon (its `daemon.json` in your state directory names its socket), else the system
//! daemon's socket.
//!
//! One blocking request per connection, HTTP/1.1 with `Connection: close`: a command makes one
//! or two calls, and an async runtime and a pooled client would cost more to start than the
//! call itself ([`super::http1`] reads the answer).

use super::http1;
use anyhow::{anyhow, Context};
use gantry::config::Config;
use gantry::daemon::{DaemonInfo, INFO_FILE};
use serde::de::DeserializeOwned;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Where the system daemon listens (`gantry serve --system`).
const SYSTEM_SOCKET: &str = super::local::SYSTEM_SOCKET;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A daemon silent for this long, within a request (not a stream), has failed.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

enum Target {
    /// `host:port`, over TLS when the URL is `https://`.
    Tcp { authority: String, tls: Option<Tls> },
    Unix(PathBuf),
}

struct Tls {
    config: Arc<rustls::ClientConfig>,
    /// The name the daemon's certificate must carry.
    name: rustls::pki_types::ServerName<'static>,
}

/// A connection to the daemon, whatever carries it.
trait Connection: Read + Write {}
impl<T: Read + Write> Connection for T {}

pub struct Client {
    target: Target,
    /// `Authorization` for daemons that need a login.
    authorization: Option<String>,
}

impl Client {
    /// A client of the daemon at `server`, else `socket`, else your own or the system's; `ca`
    /// is trusted for an `https://` server.
    pub fn connect(config: &Config, server: Option<&str>, socket: Option<&Path>, token: Option<String>, ca: Option<&Path>) -> anyhow::Result<Client> {
        let (target, token) = match (server, socket) {
            (Some(url), _) => (tcp(url, ca)?, token),
            (None, Some(path)) => (Target::Unix(path.to_path_buf()), token),
            (None, None) => own_or_system(config, token, ca)?,
        };
        // A token is sent as a header line: one with a line break in it would add headers.
        if token.as_deref().is_some_and(|t| t.chars().any(char::is_control)) {
            return Err(anyhow!("the token (--token or GANTRY_TOKEN) has a control character in it"));
        }
        Ok(Client { target, authorization: token.map(|t| format!("Bearer {t}")) })
    }

    /// The daemon's URL when the client talks to it over TCP.
    pub fn base_url(&self) -> Option<String> {
        match &self.target {
            Target::Tcp { authority, tls } => Some(format!("{}://{authority}", if tls.is_some() { "https" } else { "http" })),
            Target::Unix(_) => None,
        }
    }

    /// A `DELETE` whose answer has no body.
    pub fn delete(&self, path: &str) -> anyhow::Result<()> {
        let (status, bytes) = self.raw("DELETE", path, None)?;
        if (200..300).contains(&status) {
            return Ok(());
        }
        Err(refusal(status, &bytes))
    }

    fn describe(&self) -> String {
        match &self.target {
            Target::Tcp { .. } => self.base_url().unwrap_or_default(),
            Target::Unix(path) => path.display().to_string(),
        }
    }

    fn open(&self, timeout: Option<Duration>) -> anyhow::Result<Box<dyn Connection>> {
        match &self.target {
            Target::Unix(path) => {
                let stream = UnixStream::connect(path)?;
                stream.set_read_timeout(timeout)?;
                stream.set_write_timeout(timeout)?;
                Ok(Box::new(stream))
            }
            Target::Tcp { authority, tls } => {
                let stream = tcp_connect(authority)?;
                stream.set_read_timeout(timeout)?;
                stream.set_write_timeout(timeout)?;
                stream.set_nodelay(true)?;
                match tls {
                    None => Ok(Box::new(stream)),
                    Some(tls) => {
                        let session = rustls::ClientConnection::new(tls.config.clone(), tls.name.clone()).context("starting TLS")?;
                        Ok(Box::new(rustls::StreamOwned::new(session, stream)))
                    }
                }
            }
        }
    }

    /// Sends one request and reads the answer's head; the body is left to read.
    fn send(&self, method: &str, path: &str, body: Option<&[u8]>, timeout: Option<Duration>) -> anyhow::Result<http1::Answer<Box<dyn Connection>>> {
        let host = match &self.target {
            Target::Tcp { authority, .. } => authority.as_str(),
            Target::Unix(_) => "localhost",
        };
        let request = http1::request(method, path, host, self.authorization.as_deref(), body)?;
        let mut connection = self.open(timeout)?;
        connection.write_all(&request)?;
        connection.flush()?;
        Ok(http1::Answer::read(connection)?)
    }

    /// The status and body of one request, whatever the status.
    pub fn raw(&self, method: &str, path: &str, body: Option<Vec<u8>>) -> anyhow::Result<(u16, Vec<u8>)> {
        let answered = self.send(method, path, body.as_deref(), Some(ANSWER_TIMEOUT)).and_then(|answer| {
            let status = answer.status;
            let mut bytes = Vec::new();
            answer.into_body().read_to_end(&mut bytes)?;
            Ok((status, bytes))
        });
        answered.map_err(|e| match e.downcast_ref::<std::io::Error>().map(std::io::Error::kind) {
            Some(std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                anyhow!("the gantry daemon at {} did not answer within {} s", self.describe(), ANSWER_TIMEOUT.as_secs())
            }
            _ => anyhow!("cannot reach the gantry daemon at {}: {e:#}", self.describe()),
        })
    }

    fn call<T: DeserializeOwned>(&self, method: &str, path: &str, body: Option<Vec<u8>>) -> anyhow::Result<T> {
        let (status, bytes) = self.raw(method, path, body)?;
        if (200..300).contains(&status) {
            return serde_json::from_slice(&bytes).context("reading the daemon's answer");
        }
        Err(refusal(status, &bytes))
    }

    pub fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.call("GET", path, None)
    }

    pub fn post<T: DeserializeOwned>(&self, path: &str, body: &serde_json::Value) -> anyhow::Result<T> {
        self.call("POST", path, Some(serde_json::to_vec(body)?))
    }

    pub fn patch<T: DeserializeOwned>(&self, path: &str, body: &serde_json::Value) -> anyhow::Result<T> {
        self.call("PATCH", path, Some(serde_json::to_vec(body)?))
    }

    /// A response body read as it arrives (server-sent events), with no deadline: a followed
    /// log may be quiet for hours.
    pub fn stream(&self, path: &str) -> anyhow::Result<impl Read + use<>> {
        let answer = self.send("GET", path, None, None).map_err(|e| anyhow!("cannot reach the gantry daemon at {}: {e:#}", self.describe()))?;
        if !(200..300).contains(&answer.status) {
            let status = answer.status;
            let mut bytes = Vec::new();
            let _ = answer.into_body().read_to_end(&mut bytes);
            return Err(refusal(status, &bytes));
        }
        Ok(answer.into_body())
    }
}

/// The first of `authority`'s addresses that takes a connection within the connect timeout.
fn tcp_connect(authority: &str) -> anyhow::Result<TcpStream> {
    let mut last = None;
    for addr in authority.to_socket_addrs().with_context(|| format!("resolving {authority}"))? {
        match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) if e.kind() == std::io::ErrorKind::TimedOut => anyhow!("no connection within {} s", CONNECT_TIMEOUT.as_secs()),
        Some(e) => e.into(),
        None => anyhow!("{authority} has no address"),
    })
}

/// The daemon at an `http://` or `https://` URL; `ca` is trusted for the second. Blocks (reads
/// the CA file).
fn tcp(url: &str, ca: Option<&Path>) -> anyhow::Result<Target> {
    let url = gantry::model::BaseUrl::parse(url).map_err(|e| anyhow!("--server: {e}"))?;
    let authority = url.authority();
    if !url.secure {
        return Ok(Target::Tcp { authority, tls: None });
    }
    let config = gantry::tls::client_config(ca)?;
    let name = rustls::pki_types::ServerName::try_from(url.host.clone()).map_err(|e| anyhow!("--server: {}: {e}", url.host))?;
    Ok(Target::Tcp { authority, tls: Some(Tls { config, name }) })
}

/// Your own daemon (by the `daemon.json` in your state directory), else the system daemon.
fn own_or_system(config: &Config, token: Option<String>, ca: Option<&Path>) -> anyhow::Result<(Target, Option<String>)> {
    let info_path = config.state_dir.join(INFO_FILE);
    if let Ok(text) = std::fs::read_to_string(&info_path) {
        let info: DaemonInfo = serde_json::from_str(&text).with_context(|| format!("reading {}", info_path.display()))?;
        if let Some(socket) = info.socket.filter(|s| s.exists()) {
            return Ok((Target::Unix(socket), token));
        }
        // Over TCP, your own daemon knows you by the token only you can read.
        let local = std::fs::read_to_string(config.state_dir.join(gantry::auth::LOCAL_TOKEN_FILE)).ok().map(|t| t.trim().to_string());
        return Ok((tcp(&info.url, ca)?, token.or(local)));
    }
    if Path::new(SYSTEM_SOCKET).exists() {
        return Ok((Target::Unix(PathBuf::from(SYSTEM_SOCKET)), token));
    }
    Err(anyhow!(
        "no gantry daemon is serving {} and there is no system daemon ({SYSTEM_SOCKET}): start one with `gantry serve`, or name one with --socket PATH or --server URL",
        config.state_dir.display()
    ))
}

/// The daemon's refusal as one message: its `detail`, with a hint where a login is missing.
fn refusal(code: u16, bytes: &[u8]) -> anyhow::Error {
    let body: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
    let detail = match &body["detail"] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(lines) => lines.iter().filter_map(|l| l.as_str()).collect::<Vec<_>>().join("\n"),
        other if !other.is_null() => other.to_string(),
        _ => format!("HTTP {code}"),
    };
    if code == 401 {
        return anyhow!("{detail} (this daemon needs a login: pass --token or set GANTRY_TOKEN)");
    }
    anyhow!("{detail}")
}
