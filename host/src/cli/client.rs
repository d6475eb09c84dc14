//! The CLI's side of the daemon's HTTP API, over the daemon's Unix socket (where the kernel
//! tells the daemon who is calling, so no token is needed) or over TCP.
//!
//! Which daemon: `--server URL` (TCP or TLS, with `--token`), else `--socket PATH`, else your
//! own daemon (its `daemon.json` in your state directory names its socket), else the system
//! daemon's socket.

use anyhow::{anyhow, Context};
use bytes::Bytes;
use gantry::config::Config;
use gantry::daemon::{DaemonInfo, INFO_FILE};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the system daemon listens (`gantry serve --system`).
const SYSTEM_SOCKET: &str = super::serve::SYSTEM_SOCKET;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A request (not a stream) that takes longer has failed.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

enum Target {
    /// `host:port`, over TLS when the URL is `https://`.
    Tcp { authority: String, tls: Option<Tls> },
    Unix(PathBuf),
}

struct Tls {
    connector: tokio_rustls::TlsConnector,
    /// The name the daemon's certificate must carry.
    name: rustls::pki_types::ServerName<'static>,
}

pub struct Client {
    target: Target,
    /// `Authorization` for daemons that need a login.
    authorization: Option<String>,
    runtime: tokio::runtime::Runtime,
}

impl Client {
    /// A client of the daemon at `server`, else `socket`, else your own or the system's; `ca`
    /// is trusted for an `https://` server.
    pub fn connect(config: &Config, server: Option<&str>, socket: Option<&Path>, token: Option<String>, ca: Option<&Path>) -> anyhow::Result<Client> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the client's runtime")?;
        let (target, token) = match (server, socket) {
            (Some(url), _) => (tcp(url, ca)?, token),
            (None, Some(path)) => (Target::Unix(path.to_path_buf()), token),
            (None, None) => own_or_system(config, token, ca)?,
        };
        Ok(Client { target, authorization: token.map(|t| format!("Bearer {t}")), runtime })
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

    async fn send(&self, method: &str, path: &str, body: Option<Vec<u8>>) -> anyhow::Result<hyper::Response<Incoming>> {
        let mut request = hyper::Request::builder().method(method).uri(path);
        request = match &self.target {
            Target::Tcp { authority, .. } => request.header(hyper::header::HOST, authority.as_str()),
            Target::Unix(_) => request.header(hyper::header::HOST, "localhost"),
        };
        if let Some(value) = &self.authorization {
            request = request.header(hyper::header::AUTHORIZATION, value);
        }
        if body.is_some() {
            request = request.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let request = request.body(Full::new(Bytes::from(body.unwrap_or_default()))).context("making the request")?;
        let mut sender = match &self.target {
            Target::Tcp { authority, tls: None } => handshake(connected(tokio::net::TcpStream::connect(authority.as_str())).await?).await?,
            Target::Tcp { authority, tls: Some(tls) } => {
                let stream = connected(tokio::net::TcpStream::connect(authority.as_str())).await?;
                handshake(connected(tls.connector.connect(tls.name.clone(), stream)).await?).await?
            }
            Target::Unix(path) => handshake(connected(tokio::net::UnixStream::connect(path)).await?).await?,
        };
        Ok(sender.send_request(request).await?)
    }

    /// The status and body of one request, whatever the status.
    pub fn raw(&self, method: &str, path: &str, body: Option<Vec<u8>>) -> anyhow::Result<(u16, Bytes)> {
        let answered = self.runtime.block_on(async {
            tokio::time::timeout(ANSWER_TIMEOUT, async {
                let response = self.send(method, path, body).await?;
                let status = response.status();
                let bytes = response.into_body().collect().await?.to_bytes();
                Ok::<_, anyhow::Error>((status, bytes))
            })
            .await
        });
        match answered {
            Ok(Ok((status, bytes))) => Ok((status.as_u16(), bytes)),
            Ok(Err(e)) => Err(anyhow!("cannot reach the gantry daemon at {}: {e:#}", self.describe())),
            Err(_) => Err(anyhow!("the gantry daemon at {} did not answer within {} s", self.describe(), ANSWER_TIMEOUT.as_secs())),
        }
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

    /// A response body read as it arrives (server-sent events), with no overall deadline.
    pub fn stream(&self, path: &str) -> anyhow::Result<impl std::io::Read + use<'_>> {
        let response = self.runtime.block_on(self.send("GET", path, None)).map_err(|e| anyhow!("cannot reach the gantry daemon at {}: {e:#}", self.describe()))?;
        let status = response.status();
        if !status.is_success() {
            let bytes = self.runtime.block_on(response.into_body().collect()).map(|c| c.to_bytes()).unwrap_or_default();
            return Err(refusal(status.as_u16(), &bytes));
        }
        Ok(BodyReader { runtime: &self.runtime, body: response.into_body(), pending: Bytes::new() })
    }
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
    Ok(Target::Tcp { authority, tls: Some(Tls { connector: tokio_rustls::TlsConnector::from(config), name }) })
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

/// A connection (or a TLS handshake) made within the connect timeout.
async fn connected<S>(connecting: impl std::future::Future<Output = std::io::Result<S>>) -> anyhow::Result<S> {
    Ok(tokio::time::timeout(CONNECT_TIMEOUT, connecting).await.map_err(|_| anyhow!("no connection within {} s", CONNECT_TIMEOUT.as_secs()))??)
}

async fn handshake<S>(stream: S) -> anyhow::Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
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

/// A streamed body as `Read`, pulling frames on the client's runtime as they are asked for.
struct BodyReader<'a> {
    runtime: &'a tokio::runtime::Runtime,
    body: Incoming,
    pending: Bytes,
}

impl std::io::Read for BodyReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pending.is_empty() {
            match self.runtime.block_on(self.body.frame()) {
                None => return Ok(0),
                Some(Err(e)) => return Err(std::io::Error::other(e)),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.pending = data;
                    }
                }
            }
        }
        let n = buf.len().min(self.pending.len());
        buf[..n].copy_from_slice(&self.pending[..n]);
        self.pending = self.pending.slice(n..);
        Ok(n)
    }
}
