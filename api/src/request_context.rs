//! What ties a log line to a request: its request id and its trace id, both in the span every
//! line of the request is written in, and the count of requests by route and status.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;

/// The longest request id taken from a client.
const MAX_REQUEST_ID: usize = 128;

/// Drops a client's `x-request-id` unless it is 1 to 128 characters of `[A-Za-z0-9._:-]`, so
/// that the id layer makes a fresh one: the id is written into every log line of the request,
/// and a client must not be able to forge lines (newlines, quotes) or flood them.
pub(crate) async fn drop_insane_request_id(mut request: Request, next: Next) -> Response {
    let sane = request
        .headers()
        .get_all("x-request-id")
        .iter()
        .map(is_sane_request_id)
        .collect::<Vec<_>>();
    if sane != [true] && !sane.is_empty() {
        request.headers_mut().remove("x-request-id");
    }
    next.run(request).await
}

fn is_sane_request_id(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    (1..=MAX_REQUEST_ID).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// The trace id of a W3C `traceparent` (`00-<32 hex trace id>-<16 hex parent id>-<2 hex
/// flags>`), if the header is there and well-formed; an all-zero id is invalid by the spec.
pub(crate) fn trace_id_of(traceparent: Option<&HeaderValue>) -> Option<String> {
    let text = traceparent?.to_str().ok()?;
    let mut parts = text.split('-');
    let (version, trace, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let nonzero = |s: &str| s.bytes().any(|b| b != b'0');
    // Version ff is forbidden; a later version may append fields, version 00 may not.
    let well_formed = hex(version, 2)
        && version != "ff"
        && (parts.next().is_none() || version != "00")
        && hex(trace, 32)
        && nonzero(trace)
        && hex(parent, 16)
        && nonzero(parent)
        && hex(flags, 2);
    well_formed.then(|| trace.to_owned())
}

/// The span every log line of a request is written in: its method, the route it matched (the
/// template, not the path: ids stay out of it), its request id (set by the id layer before
/// this runs) and its trace id: the caller's, from `traceparent`, or a fresh one so that lines
/// of one request can still be found together.
pub(crate) fn request_span<B>(request: &axum::http::Request<B>) -> tracing::Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let trace_id = trace_id_of(request.headers().get("traceparent"))
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    tracing::info_span!("request", method = %request.method(), route, request_id, trace_id)
}

/// Counts every answer in `plinth_http_requests_total{method, route, status}` and times it in
/// `plinth_http_request_duration_seconds{method, route}`. The route is the matched template
/// (`/v1/tenants/{id}`), `unmatched` for the fallback: a raw path would make a series per id.
pub(crate) async fn count_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    // Only the methods the API serves, so a client cannot mint label values.
    let method: &'static str = match *request.method() {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    };
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("plinth_http_requests_total",
        "method" => method, "route" => route.clone(), "status" => status)
    .increment(1);
    metrics::histogram!("plinth_http_request_duration_seconds",
        "method" => method, "route" => route)
    .record(started.elapsed().as_secs_f64());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(s: &str) -> HeaderValue {
        HeaderValue::from_str(s).unwrap()
    }

    #[test]
    fn a_w3c_traceparent_gives_its_trace_id() {
        let tp = header("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        assert_eq!(
            trace_id_of(Some(&tp)).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
    }

    #[test]
    fn malformed_traceparents_give_none() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e47-00f067aa0ba902b7-01",
        ] {
            assert_eq!(trace_id_of(Some(&header(bad))), None, "{bad}");
        }
        assert_eq!(trace_id_of(None), None);
    }

    #[test]
    fn request_ids_are_short_and_plain() {
        assert!(is_sane_request_id(&header("trace-me-42")));
        assert!(is_sane_request_id(&header("a.b:c_d")));
        assert!(!is_sane_request_id(&header("")));
        assert!(!is_sane_request_id(&header("has space")));
        assert!(!is_sane_request_id(&header("quote\"")));
        assert!(!is_sane_request_id(&header(&"x".repeat(129))));
    }
}
