//! The check every route passes: who is calling (from the bearer token or the session cookie the
//! request carries), and whether their role reaches the route's access level. The caller reaches
//! handlers as an `Extension<Principal>`.

use super::error::ApiError;
use super::peer::Peer;
use axum::extract::ConnectInfo;
use crate::model::{Principal, Role};
use crate::service::{Credential, Service};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::sync::Arc;

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Anyone: health, login, the API description.
    Public,
    /// Any authenticated caller, viewers included.
    Read,
    /// Users and admins: submitting and changing one's own jobs and runs.
    Operate,
    /// Admins: configuration, plugins, other users' work, the daemon itself.
    Admin,
}

impl Access {
    fn allows(self, role: Role) -> bool {
        match self {
            Access::Public | Access::Read => true,
            Access::Operate => role >= Role::User,
            Access::Admin => role == Role::Admin,
        }
    }
}

/// The session cookie a login sets (HttpOnly, SameSite=Strict).
pub const COOKIE: &str = "gantry_session";
const CSRF_HEADER: &str = "x-csrf-token";

/// A route's gate: the service that knows the callers, and the route's access level.
#[derive(Clone)]
pub struct Gate {
    pub service: Arc<Service>,
    pub access: Access,
}

pub fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find_map(|(k, v)| (k == name).then_some(v))
}

/// An `Origin` naming this server's own host: the request came from one of its pages.
fn same_origin(headers: &HeaderMap) -> bool {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    match (host, origin) {
        (Some(host), Some(origin)) => origin.split_once("://").is_some_and(|(_, authority)| authority == host),
        _ => false,
    }
}

/// What the request presents: a bearer token first, else the session cookie.
pub(super) fn credential(headers: &HeaderMap) -> Credential {
    let bearer = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")).map(str::trim);
    if let Some(key) = bearer.filter(|t| t.starts_with(crate::federation::forward::KEY_PREFIX)) {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        return Credential::Master { key: key.to_string(), user: header(crate::federation::forward::USER_HEADER), role: header(crate::federation::forward::ROLE_HEADER) };
    }
    if let Some(token) = bearer {
        return Credential::Bearer(token.to_string());
    }
    match cookie_value(headers, COOKIE) {
        Some(token) => Credential::Cookie {
            token: token.to_string(),
            csrf_header: headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).map(str::to_string),
            same_origin: same_origin(headers),
        },
        None => Credential::None,
    }
}

/// Every route's check: authenticates the caller (by the kernel's word on a Unix socket, by
/// what the request carries on TCP), refuses a role below the route's access level, and hands
/// the [`Principal`] to the handler.
pub async fn gate(State(gate): State<Gate>, mut request: Request, next: Next) -> Response {
    if gate.access == Access::Public {
        return next.run(request).await;
    }
    let peer = request.extensions().get::<ConnectInfo<Peer>>().map(|info| info.0);
    let found = match peer {
        Some(Peer::Unix { uid }) => gate.service.unix_caller(uid).await,
        Some(Peer::Tcp(_)) | None => {
            let changes = !matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
            gate.service.authenticate(credential(request.headers()), changes).await
        }
    };
    let principal: Principal = match found {
        Ok(p) => p,
        Err(e) => {
            let mut response = ApiError::from(e).into_response();
            if response.status() == StatusCode::UNAUTHORIZED {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
            }
            return response;
        }
    };
    if !gate.access.allows(principal.role) {
        let detail = format!("{} has the role {}; this needs {:?}", principal.name, principal.role.as_str(), gate.access).to_lowercase();
        return ApiError::new(StatusCode::FORBIDDEN, "forbidden", detail).into_response();
    }
    request.extensions_mut().insert(principal);
    next.run(request).await
}
