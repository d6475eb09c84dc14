//! Lists that page: `?offset=&limit=`, the answer staying the plain array older clients read, with
//! `X-Total-Count` saying how many matched before the page was cut.

use axum::response::{IntoResponse, Response};
use axum::Json;

pub fn page<T: serde::Serialize>(items: Vec<T>, offset: usize, limit: Option<usize>) -> Response {
    let total = items.len();
    let page: Vec<T> = items.into_iter().skip(offset).take(limit.unwrap_or(usize::MAX)).collect();
    ([("x-total-count", total.to_string())], Json(page)).into_response()
}
