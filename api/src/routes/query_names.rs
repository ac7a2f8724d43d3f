//! Unknown query parameters are a 400, on every route, by one mechanism: the names a route
//! takes are the `in: query` parameters of its operation in the OpenAPI document
//! ([`super::openapi::query_names`]). A misspelt or unsupported filter (`?stream_id=` where there
//! is none) would otherwise be dropped silently and answer as if unfiltered. Taking the accepted
//! names from the document means it cannot list a parameter the server refuses, or miss one it
//! takes.

use axum::extract::{MatchedPath, Query, Request};
use axum::middleware::Next;
use axum::response::Response;

use super::openapi::query_names;
use crate::error::ApiError;

/// The query parameter names route (`method`, `path`) takes; none for an operation the document
/// lacks (the OpenAPI tests check that it has every route).
fn accepted(method: &str, path: &str) -> &'static [String] {
    query_names(method, path).unwrap_or_default()
}

/// Middleware (a route layer, so the matched path is known): refuses the request before any
/// handler runs when its query string names a parameter the route does not take.
pub(crate) async fn reject_unknown(
    matched: MatchedPath,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(request.uri())
        .map_err(|e| ApiError::BadRequest(format!("malformed query string: {e}")))?;
    let allowed = accepted(request.method().as_str(), matched.as_str());
    let mut unknown: Vec<&str> = pairs
        .iter()
        .map(|(name, _)| name.as_str())
        .filter(|name| !allowed.iter().any(|a| a == name))
        .collect();
    if !unknown.is_empty() {
        unknown.sort_unstable();
        unknown.dedup();
        let names = |list: &[&str]| {
            list.iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(ApiError::BadRequest(format!(
            "unknown query parameter(s) {}; {} takes {}",
            names(&unknown),
            matched.as_str(),
            if allowed.is_empty() {
                "none".to_owned()
            } else {
                names(&allowed.iter().map(String::as_str).collect::<Vec<_>>())
            }
        )));
    }
    Ok(next.run(request).await)
}
