//! Lists that page: `?offset=&limit=`, at most [`MAX_PAGE`] items an answer, so no list can
//! grow an answer (and the daemon's memory while it is written) without bound. Plain arrays
//! stay the arrays older clients read, with `X-Total-Count` saying how many matched before the
//! page was cut.

use crate::http::error::{ApiError, ApiResult};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

/// The most items one page holds, and what a request without `limit` gets.
pub const MAX_PAGE: usize = 1000;

/// How many matched, and the page `offset..offset + limit` of them.
pub fn window<T>(items: Vec<T>, offset: usize, limit: Option<usize>) -> ApiResult<(usize, Vec<T>)> {
    let limit = limit.unwrap_or(MAX_PAGE);
    if limit > MAX_PAGE {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "query", format!("limit: at most {MAX_PAGE} items a page; page on with offset")));
    }
    let total = items.len();
    Ok((total, items.into_iter().skip(offset).take(limit).collect()))
}

pub fn page<T: serde::Serialize>(items: Vec<T>, offset: usize, limit: Option<usize>) -> ApiResult<Response> {
    let (total, page) = window(items, offset, limit)?;
    Ok(([("x-total-count", total.to_string())], Json(page)).into_response())
}
