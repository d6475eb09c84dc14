//! The few HTTP requests an adapter sends, through the host's `wasi:http` (which lets them reach
//! only the provider's configured base URL). Bodies are bounded: a provider that answers with
//! more than [`MAX_BODY`] is refused, not buffered.

use crate::bindings::exports::gantry::plugin::provider::ProviderError;
use wasi::http::outgoing_handler;
use wasi::http::types::{Fields, Method, OutgoingBody, OutgoingRequest, Scheme};

const MAX_BODY: usize = 16 << 20;

pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

fn transport(what: &str) -> ProviderError {
    ProviderError::Transport(what.to_string())
}

/// `method` to `url` (`http[s]://host[:port]/path?query`) with `headers` and an optional body.
pub fn send(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Result<Response, ProviderError> {
    let (scheme, rest) = match url.split_once("://") {
        Some(("http", rest)) => (Scheme::Http, rest),
        Some(("https", rest)) => (Scheme::Https, rest),
        _ => return Err(ProviderError::InvalidConfig(format!("base URL: '{url}' is not http(s)://host[:port]/path"))),
    };
    let (authority, path) = rest.split_once('/').map(|(a, p)| (a, format!("/{p}"))).unwrap_or((rest, "/".into()));
    let fields = Fields::new();
    // Without a length the body goes chunked (for a bodiless DELETE too), which slurmrestd's
    // parser refuses by closing the connection mid-request.
    let length = body.map_or(0, <[u8]>::len).to_string();
    for (name, value) in headers.iter().copied().chain([("content-length", length.as_str())]) {
        fields.append(name, value.as_bytes()).map_err(|e| transport(&format!("header {name}: {e:?}")))?;
    }
    let request = OutgoingRequest::new(fields);
    let verb = match method {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "DELETE" => Method::Delete,
        other => Method::Other(other.to_string()),
    };
    request.set_method(&verb).map_err(|()| transport("method"))?;
    request.set_scheme(Some(&scheme)).map_err(|()| transport("scheme"))?;
    request.set_authority(Some(authority)).map_err(|()| ProviderError::InvalidConfig(format!("base URL: bad host '{authority}'")))?;
    request.set_path_with_query(Some(&path)).map_err(|()| ProviderError::InvalidConfig(format!("bad path '{path}'")))?;
    let outgoing = request.body().map_err(|()| transport("request body"))?;
    let failed = |e: wasi::http::types::ErrorCode| transport(&format!("{method} {url}: {e:?}"));
    let pending = outgoing_handler::handle(request, None).map_err(failed)?;
    {
        let stream = outgoing.write().map_err(|()| transport("request stream"))?;
        for chunk in body.unwrap_or_default().chunks(4096) {
            stream.blocking_write_and_flush(chunk).map_err(|e| transport(&format!("sending the body: {e:?}")))?;
        }
    }
    OutgoingBody::finish(outgoing, None).map_err(|e| transport(&format!("{e:?}")))?;
    pending.subscribe().block();
    let response = pending
        .get()
        .ok_or_else(|| transport("no response"))?
        .map_err(|()| transport("response taken twice"))?
        .map_err(failed)?;
    let status = response.status();
    let incoming = response.consume().map_err(|()| transport("response body"))?;
    let stream = incoming.stream().map_err(|()| transport("response stream"))?;
    let mut bytes = Vec::new();
    while let Ok(chunk) = stream.blocking_read(65536) {
        bytes.extend(chunk);
        if bytes.len() > MAX_BODY {
            return Err(ProviderError::Remote(format!("HTTP {status}: an answer of more than {MAX_BODY} bytes")));
        }
    }
    Ok(Response { status, body: bytes })
}
