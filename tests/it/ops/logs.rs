//! `PLINTH_LOG_FORMAT=json`: every line is a JSON object, every line of a request carries its
//! request id and trace id, each command has one line with its type and outcome, and no token,
//! secret or password reaches the log.

use serde_json::{json, Value};

use super::Plinth;
use crate::support::{test_db, ADMIN};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// The value of `key` in the line's request span (the current span, or any in its list).
fn span_field<'a>(line: &'a Value, key: &str) -> Option<&'a str> {
    line["span"][key].as_str().or_else(|| {
        line["spans"]
            .as_array()?
            .iter()
            .find_map(|s| s[key].as_str())
    })
}

fn in_request(line: &Value) -> bool {
    line["spans"]
        .as_array()
        .is_some_and(|spans| spans.iter().any(|s| s["name"] == "request"))
}

#[tokio::test]
async fn json_logs_tie_each_line_to_its_request_and_never_show_a_secret() {
    let db = test_db().await;
    let secret = format!("logs-secret-{}", uuid::Uuid::new_v4().simple());
    let password = format!("pw{}", uuid::Uuid::new_v4().simple());
    // Trust authentication ignores the password: it is there to be looked for in the log.
    let url = db
        .url
        .replacen("postgres@", &format!("postgres:{password}@"), 1);
    assert_ne!(url, db.url, "the test URL names the postgres user");
    let server = Plinth::start_with_url(
        &url,
        &secret,
        &[
            ("PLINTH_LOG_FORMAT", "json"),
            // tower-http's per-request lines too: more lines that must carry the ids.
            ("RUST_LOG", "info,tower_http=debug"),
        ],
    )
    .await;
    let token = plinth_api::auth::mint_dev_token(&secret, ADMIN, 3600).unwrap();
    let http = reqwest::Client::new();
    let post = |body: Value, request_id: &'static str, traceparent: Option<&'static str>| {
        let mut request = http
            .post(format!("{}/v1/commands", server.base))
            .bearer_auth(&token)
            .header("x-request-id", request_id)
            .json(&body);
        if let Some(tp) = traceparent {
            request = request.header("traceparent", tp);
        }
        request.send()
    };

    let accepted = post(
        json!({"type": "CreateTenant", "data": {"name": "Logged Corp"}}),
        "logs-accepted-1",
        Some(TRACEPARENT),
    )
    .await
    .unwrap();
    assert_eq!(accepted.status(), 201);
    assert_eq!(accepted.headers()["x-request-id"], "logs-accepted-1");

    let rejected = post(
        json!({"type": "UpdateTenant", "data": {"tenant_id": "tnntten-AAAAAAAAAAAAAAAAAAAAA", "name": "X"}}),
        "logs-rejected-1",
        None,
    )
    .await
    .unwrap();
    assert_eq!(rejected.status(), 404);

    // An id a client could forge lines with is replaced by a fresh one, echoed back.
    let odd = post(
        json!({"type": "CreateTenant", "data": {"name": "Odd Corp"}}),
        "has space",
        None,
    )
    .await
    .unwrap();
    assert_eq!(odd.status(), 201);
    let fresh_id = odd.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_ne!(fresh_id, "has space");
    assert!(uuid::Uuid::parse_str(&fresh_id).is_ok(), "{fresh_id}");

    // A bad token is refused; it must not be logged either.
    let bad_token = format!("{token}x");
    let refused = http
        .get(format!("{}/v1/me", server.base))
        .bearer_auth(&bad_token)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);

    let log = server.stop().await;
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();

    // Every line written while handling a request names the request and a 32-hex trace id.
    let request_lines: Vec<&Value> = lines.iter().filter(|l| in_request(l)).collect();
    assert!(request_lines.len() >= 8, "{log}");
    for line in &request_lines {
        assert!(
            !span_field(line, "request_id").unwrap_or("").is_empty(),
            "{line}"
        );
        let trace = span_field(line, "trace_id").unwrap_or("");
        assert!(
            trace.len() == 32 && trace.bytes().all(|b| b.is_ascii_hexdigit()),
            "{line}"
        );
    }
    let of_request = |id: &str| -> Vec<&Value> {
        request_lines
            .iter()
            .copied()
            .filter(|l| span_field(l, "request_id") == Some(id))
            .collect()
    };

    // The accepted command: its lines carry the caller's trace id; one line says what it was.
    let lines_of_accepted = of_request("logs-accepted-1");
    assert!(lines_of_accepted.len() >= 2, "{log}");
    for line in &lines_of_accepted {
        assert_eq!(span_field(line, "trace_id"), Some(TRACE_ID), "{line}");
        assert_eq!(span_field(line, "route"), Some("/v1/commands"), "{line}");
    }
    let command_lines = |lines: &[&Value]| -> Vec<Value> {
        lines
            .iter()
            .filter(|l| l["fields"]["message"] == "command")
            .map(|l| l["fields"].clone())
            .collect()
    };
    let accepted_line = command_lines(&lines_of_accepted);
    assert_eq!(accepted_line.len(), 1, "{log}");
    assert_eq!(accepted_line[0]["command"], "CreateTenant");
    assert_eq!(accepted_line[0]["outcome"], "accepted");

    // The rejected one: its own generated trace id, its outcome and problem type.
    let lines_of_rejected = of_request("logs-rejected-1");
    let rejected_line = command_lines(&lines_of_rejected);
    assert_eq!(rejected_line.len(), 1, "{log}");
    assert_eq!(rejected_line[0]["command"], "UpdateTenant");
    assert_eq!(rejected_line[0]["outcome"], "rejected");
    assert_eq!(rejected_line[0]["problem"], "not-found");
    let generated = span_field(lines_of_rejected[0], "trace_id").unwrap();
    assert_ne!(generated, TRACE_ID);
    assert!(lines_of_rejected
        .iter()
        .all(|l| span_field(l, "trace_id") == Some(generated)));

    assert_eq!(command_lines(&of_request(&fresh_id)).len(), 1, "{log}");
    assert!(
        !log.contains("has space"),
        "a refused request id was logged"
    );

    for (what, needle) in [
        ("the token", token.as_str()),
        ("the refused token", bad_token.as_str()),
        ("the token's signature", token.rsplit('.').next().unwrap()),
        ("the JWT secret", secret.as_str()),
        ("the database password", password.as_str()),
    ] {
        assert!(!log.contains(needle), "{what} was logged:\n{log}");
    }
}

#[tokio::test]
async fn text_logs_name_the_request_too() {
    let db = test_db().await;
    let secret = "text-logs-secret";
    let server = Plinth::start(&db, secret, &[("PLINTH_LOG_FORMAT", "text")]).await;
    let token = plinth_api::auth::mint_dev_token(secret, ADMIN, 3600).unwrap();
    let reply = reqwest::Client::new()
        .post(format!("{}/v1/commands", server.base))
        .bearer_auth(&token)
        .header("x-request-id", "text-logs-1")
        .header("traceparent", TRACEPARENT)
        .json(&json!({"type": "CreateTenant", "data": {"name": "Text Corp"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 201);
    let log = server.stop().await;
    let line = log
        .lines()
        .find(|l| l.contains("request_id=\"text-logs-1\""))
        .unwrap_or_else(|| panic!("no line of the request:\n{log}"));
    for field in [
        format!("trace_id=\"{TRACE_ID}\""),
        "route=\"/v1/commands\"".to_owned(),
        "command=\"CreateTenant\"".to_owned(),
        "outcome=\"accepted\"".to_owned(),
    ] {
        assert!(line.contains(&field), "{field} not in {line}");
    }
    assert!(!log.contains('\u{1b}'), "colour codes in a log file");
    assert!(!log.contains(&token) && !log.contains(secret));
}
