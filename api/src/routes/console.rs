//! `GET /`: the console, a web page for people to browse and change the platform through the
//! JSON API (docs/adr/0011-console.md).
//!
//! Three static files compiled into the binary (`api/console/`): nothing is built, fetched or
//! read from disk at run time, so the console is exactly as current as the server serving it.
//! The page holds no secret: the token stays in the browser (pasted, or passed in the URL
//! fragment, which browsers never send) and goes out only as the `Authorization` header of
//! the API calls the page makes.
//!
//! These routes are HTML and assets for a browser, not operations of the JSON API, so they are
//! kept out of the OpenAPI document (and out of its unknown-query-parameter check): they are
//! merged into the router beside the documented routes, not among them.

use axum::http::{header, HeaderName, HeaderValue};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::state::AppState;

const INDEX_HTML: &str = include_str!("../../console/index.html");
const APP_JS: &str = include_str!("../../console/app.js");
const STYLE_CSS: &str = include_str!("../../console/style.css");

/// Every path the console serves (the OpenAPI agreement test leaves exactly these out).
pub(crate) const PATHS: [&str; 3] = ["/", "/console/app.js", "/console/style.css"];

/// Only this origin's own script, style and API: no inline script (the page has none), so an
/// injected `<script>` or `onclick=` in a rendered name could not run even if escaping failed.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(
            PATHS[0],
            get(|| asset("text/html; charset=utf-8", INDEX_HTML)),
        )
        .route(
            PATHS[1],
            get(|| asset("text/javascript; charset=utf-8", APP_JS)),
        )
        .route(
            PATHS[2],
            get(|| asset("text/css; charset=utf-8", STYLE_CSS)),
        )
}

async fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CONTENT_SECURITY_POLICY),
            ),
            // Revalidate every time: the files change with the binary, and they are small.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
            (
                HeaderName::from_static("x-frame-options"),
                HeaderValue::from_static("DENY"),
            ),
        ],
        body,
    )
}
