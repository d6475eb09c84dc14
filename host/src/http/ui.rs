//! The dashboard (`/ui/`): HTML, CSS and ES modules written here (`host/ui/`), embedded in the
//! binary. Each asset is named in the others with its content's hash (`app.js?v=…`), so a
//! browser keeps it for a year and still never runs a stale one; the page itself is always
//! checked. The page holds no data: it calls the API like any client, with the session cookie a
//! login sets.

use super::gate::Access::Public;
use super::routes::Routes;
use crate::service::Service;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use schemars::JsonSchema;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;

/// The files, each after those it names (its references carry their hashes).
const FILES: [(&str, &str, &[u8]); 4] = [
    ("charts.js", "text/javascript; charset=utf-8", include_bytes!("../../ui/charts.js")),
    ("app.js", "text/javascript; charset=utf-8", include_bytes!("../../ui/app.js")),
    ("app.css", "text/css; charset=utf-8", include_bytes!("../../ui/app.css")),
    ("index.html", "text/html; charset=utf-8", include_bytes!("../../ui/index.html")),
];

/// Scripts and styles from this server only, no frames around the page (clickjacking), calls to
/// this server only. Inline style attributes stay allowed for the bars' widths.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

struct Asset {
    media: &'static str,
    body: bytes::Bytes,
    hash: String,
}

pub struct Assets {
    files: HashMap<&'static str, Asset>,
}

impl Assets {
    fn new() -> Assets {
        let mut files: HashMap<&'static str, Asset> = HashMap::new();
        for (name, media, bytes) in FILES {
            let mut text = String::from_utf8_lossy(bytes).into_owned();
            for (earlier, asset) in &files {
                text = text.replace(&format!("\"./{earlier}\""), &format!("\"./{earlier}?v={}\"", asset.hash));
            }
            let hash: String = Sha256::digest(text.as_bytes()).iter().take(8).map(|b| format!("{b:02x}")).collect();
            files.insert(name, Asset { media, body: bytes::Bytes::from(text), hash });
        }
        Assets { files }
    }

    /// `name` with its caching: a request naming the current hash may keep it for good.
    fn answer(&self, name: &str, version: Option<&str>, headers: &HeaderMap) -> Response {
        let Some(asset) = self.files.get(name) else {
            return super::error::ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("the dashboard has no file {name}")).into_response();
        };
        let etag = format!("\"{}\"", asset.hash);
        let cache = if version == Some(asset.hash.as_str()) { "public, max-age=31536000, immutable" } else { "no-cache" };
        let mut response = if headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            ([(header::CONTENT_TYPE, asset.media)], asset.body.clone()).into_response()
        };
        let set = response.headers_mut();
        set.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
        if let Ok(etag) = HeaderValue::from_str(&etag) {
            set.insert(header::ETAG, etag);
        }
        set.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
        set.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        response
    }
}

pub fn routes(service: Arc<Service>) -> Routes {
    Routes::new(service, "dashboard")
        .get("/", Public, "The dashboard's address: redirects to /ui/", root)
        .answers_raw(308, None)
        .get("/ui/", Public, "The dashboard", index)
        .answers_raw(200, Some("text/html"))
        .answers_raw(304, None)
        .get("/ui/{file}", Public, "A file of the dashboard (`?v=` its content hash, to keep it cached), or one of its pages (seed 001's `/ui/gpu`, `/ui/command`, `/ui/state`, `/ui/rule`, `/ui/setting`)", file)
        .path::<String>()
        .query::<Version>()
        .answers_raw(200, Some("text/javascript"))
        .answers_raw(200, Some("text/css"))
        .answers_raw(200, Some("text/html"))
        .answers_raw(304, None)
        .fails(&[404])
        .with_state(Arc::new(Assets::new()))
}

async fn root() -> Redirect {
    Redirect::permanent("/ui/")
}

async fn index(State(assets): State<Arc<Assets>>, headers: HeaderMap) -> Response {
    assets.answer("index.html", None, &headers)
}

#[derive(Deserialize, JsonSchema)]
struct Version {
    /// The file's content hash, as the page names it.
    v: Option<String>,
}

/// A file, or (a name without an extension: seed 001's `/ui/gpu`, `/ui/command`, …) the page,
/// which shows the page of that name.
async fn file(State(assets): State<Arc<Assets>>, Path(name): Path<String>, Query(version): Query<Version>, headers: HeaderMap) -> Response {
    if !name.contains('.') {
        return assets.answer("index.html", None, &headers);
    }
    assets.answer(&name, version.v.as_deref(), &headers)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_file_is_named_with_the_hash_of_what_it_names() {
        let assets = super::Assets::new();
        let index = String::from_utf8_lossy(&assets.files["index.html"].body).into_owned();
        let app = String::from_utf8_lossy(&assets.files["app.js"].body).into_owned();
        assert!(index.contains(&format!("\"./app.js?v={}\"", assets.files["app.js"].hash)), "{index}");
        assert!(index.contains(&format!("\"./app.css?v={}\"", assets.files["app.css"].hash)), "{index}");
        assert!(app.contains(&format!("\"./charts.js?v={}\"", assets.files["charts.js"].hash)));
    }
}
