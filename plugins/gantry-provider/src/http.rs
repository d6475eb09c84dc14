//! The requests an adapter sends, through the host's `wasi:http`, which lets them reach only the
//! instance's base URL (a request elsewhere fails as [`ProviderError::Transport`], with the
//! host's reason added). Answers are bounded: one longer than [`MAX_BODY`] is an error, not
//! buffered.

use crate::ProviderError;
use wasi::http::outgoing_handler;
use wasi::clocks::monotonic_clock;
use wasi::http::types::{ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, Scheme};
use wasi::io::poll;

pub const MAX_BODY: usize = 16 << 20;

#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    pub status: u16,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The body as JSON; an answer that is not is the system's fault, named with its status.
    pub fn json(&self) -> Result<serde_json::Value, ProviderError> {
        serde_json::from_slice(&self.body).map_err(|e| ProviderError::Remote(format!("HTTP {}: not JSON ({e}): {}", self.status, self.text(200))))
    }

    /// At most `max` bytes of the body, as text.
    pub fn text(&self, max: usize) -> String {
        String::from_utf8_lossy(&self.body[..self.body.len().min(max)]).into_owned()
    }

    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The seconds a 429 or 503 asks the caller to wait (`Retry-After` as delta-seconds; a date
    /// is not read).
    pub fn retry_after_s(&self) -> Option<u64> {
        self.header("retry-after").and_then(|v| v.trim().parse().ok())
    }
}

/// One system's API: its base URL and the headers every request carries (its credentials).
#[derive(Clone, Debug)]
pub struct Api {
    base_url: String,
    headers: Vec<(String, String)>,
}

impl Api {
    pub fn new(base_url: &str) -> Api {
        Api { base_url: base_url.trim_end_matches('/').to_string(), headers: Vec::new() }
    }

    pub fn header(mut self, name: &str, value: &str) -> Api {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// `Authorization: Bearer TOKEN`.
    pub fn bearer(self, token: &str) -> Api {
        self.header("Authorization", &format!("Bearer {token}"))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub fn get(&self, path: &str) -> Result<Response, ProviderError> {
        self.request("GET", path, &[], None)
    }

    pub fn delete(&self, path: &str) -> Result<Response, ProviderError> {
        self.request("DELETE", path, &[], None)
    }

    /// `body` as JSON, by `method`.
    pub fn send_json(&self, method: &str, path: &str, body: &serde_json::Value) -> Result<Response, ProviderError> {
        let bytes = body.to_string().into_bytes();
        self.request(method, path, &[("Content-Type", "application/json")], Some(&bytes))
    }

    /// `method` to the base URL and `path`, with this API's headers and `extra`.
    pub fn request(&self, method: &str, path: &str, extra: &[(&str, &str)], body: Option<&[u8]>) -> Result<Response, ProviderError> {
        self.request_until_idle(method, path, extra, body, None)
    }

    /// As [`Api::request`], but an answer that stops sending for `idle` (a log stream that stays
    /// open to follow) ends there, with what came.
    pub fn request_until_idle(&self, method: &str, path: &str, extra: &[(&str, &str)], body: Option<&[u8]>, idle: Option<std::time::Duration>) -> Result<Response, ProviderError> {
        let own = self.headers.iter().map(|(n, v)| (n.as_str(), v.as_str()));
        let headers: Vec<(&str, &str)> = own.chain(extra.iter().copied()).collect();
        send_with(method, &self.url(path), &headers, body, idle)
    }
}

fn transport(what: &str) -> ProviderError {
    ProviderError::Transport(what.to_string())
}

/// `method` to `url` (`http[s]://host[:port]/path?query`) with `headers` and an optional body.
pub fn send(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Result<Response, ProviderError> {
    send_with(method, url, headers, body, None)
}

/// [`send`], the answer's body read until it ends or, with `idle`, until nothing came for that
/// long.
pub fn send_with(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&[u8]>, idle: Option<std::time::Duration>) -> Result<Response, ProviderError> {
    let (scheme, rest) = match url.split_once("://") {
        Some(("http", rest)) => (Scheme::Http, rest),
        Some(("https", rest)) => (Scheme::Https, rest),
        _ => return Err(ProviderError::InvalidConfig(format!("base_url: '{url}' is not http(s)://host[:port]/path"))),
    };
    let (authority, path) = rest.split_once('/').map(|(a, p)| (a, format!("/{p}"))).unwrap_or((rest, "/".into()));
    let fields = Fields::new();
    // Without a length the body goes chunked, a bodiless DELETE's too, which some servers
    // (slurmrestd) refuse by closing the connection mid-request.
    let length = body.map_or(0, <[u8]>::len).to_string();
    for (name, value) in headers.iter().copied().chain([("content-length", length.as_str())]) {
        fields.append(name, value.as_bytes()).map_err(|e| transport(&format!("header {name}: {e:?}")))?;
    }
    let request = OutgoingRequest::new(fields);
    let verb = match method {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "PATCH" => Method::Patch,
        "DELETE" => Method::Delete,
        other => Method::Other(other.to_string()),
    };
    request.set_method(&verb).map_err(|()| transport("method"))?;
    request.set_scheme(Some(&scheme)).map_err(|()| transport("scheme"))?;
    request.set_authority(Some(authority)).map_err(|()| ProviderError::InvalidConfig(format!("base_url: bad host '{authority}'")))?;
    request.set_path_with_query(Some(&path)).map_err(|()| ProviderError::InvalidConfig(format!("bad path '{path}'")))?;
    let outgoing = request.body().map_err(|()| transport("request body"))?;
    let failed = |e: ErrorCode| transport(&format!("{method} {url}: {e:?}"));
    let pending = outgoing_handler::handle(request, None).map_err(failed)?;
    {
        let stream = outgoing.write().map_err(|()| transport("request stream"))?;
        for chunk in body.unwrap_or_default().chunks(4096) {
            stream.blocking_write_and_flush(chunk).map_err(|e| transport(&format!("sending the body: {e:?}")))?;
        }
    }
    OutgoingBody::finish(outgoing, None).map_err(|e| transport(&format!("{e:?}")))?;
    pending.subscribe().block();
    let response = pending.get().ok_or_else(|| transport("no response"))?.map_err(|()| transport("response taken twice"))?.map_err(failed)?;
    let status = response.status();
    let headers = response.headers().entries().into_iter().map(|(n, v)| (n.to_ascii_lowercase(), String::from_utf8_lossy(&v).into_owned())).collect();
    let incoming = response.consume().map_err(|()| transport("response body"))?;
    let stream = incoming.stream().map_err(|()| transport("response stream"))?;
    let mut bytes = Vec::new();
    loop {
        if let Some(idle) = idle {
            let (ready, timer) = (stream.subscribe(), monotonic_clock::subscribe_duration(u64::try_from(idle.as_nanos()).unwrap_or(u64::MAX)));
            if !poll::poll(&[&ready, &timer]).contains(&0) {
                break;
            }
        }
        let Ok(chunk) = stream.blocking_read(65536) else { break };
        bytes.extend(chunk);
        if bytes.len() > MAX_BODY {
            return Err(ProviderError::Remote(format!("HTTP {status}: an answer of more than {MAX_BODY} bytes")));
        }
    }
    Ok(Response { status, headers, body: bytes })
}
