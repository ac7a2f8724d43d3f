//! Hostile input over HTTP, against the real `plinth serve`: thousands of generated requests
//! (every documented route with broken ids, query strings, tokens, headers and bodies; bodies
//! mutated from valid commands, truncated, deeply nested, oversized, not UTF-8). Every answer
//! must be a 2xx or a 4xx, never a 5xx or a dropped connection; nothing a rejected request
//! carried may reach the log; and the server's memory stays flat across the run.
//!
//! The generator is seeded (`PLINTH_FUZZ_SEED`, default fixed, printed on failure) so that a
//! failure replays exactly; `PLINTH_FUZZ_REQUESTS` sets the run's length.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::crash::{create_tenants, free_port, Server};
use crate::relay::unique;
use crate::support::{committed_events, test_db, ADMIN, HORIZON, SECRET};

/// What the generator knows of the running platform.
struct Known {
    routes: Vec<(String, String)>,
    tenant: String,
    admin_token: String,
    user_token: String,
}

fn pick<'a>(rng: &mut StdRng, from: &[&'a str]) -> &'a str {
    from.choose(rng).copied().unwrap_or_default()
}

/// A path id: the real tenant, a well-formed unknown one, or garbage.
fn hostile_id(rng: &mut StdRng, known: &Known) -> String {
    match rng.gen_range(0..10) {
        0..=2 => known.tenant.clone(),
        3 => "tnntten-AAAAAAAAAAAAAAAAAAAAA".to_owned(),
        4 => "lctnloc-AAAAAAAAAAAAAAAAAAAAA".to_owned(),
        5 => "x".repeat(rng.gen_range(1..20_000)),
        6 => pick(
            rng,
            &[
                "%00",
                "%ff%fe",
                "..%2f..%2fetc",
                "%2e%2e",
                "%zz",
                "%F0%9F%92%A3",
            ],
        )
        .to_owned(),
        7 => known.tenant[..rng.gen_range(0..known.tenant.len())].to_owned(),
        8 => format!(
            "{}{}",
            known.tenant,
            pick(rng, &["'", "\"", ";drop table events", "%0a"])
        ),
        _ => "0".to_owned(),
    }
}

fn hostile_query(rng: &mut StdRng) -> String {
    let parts = [
        "limit=-1",
        "limit=0",
        "limit=99999999999999999999999",
        "limit=abc",
        "after=%00",
        "after=tnntten-AAAAAAAAAAAAAAAAAAAAA",
        "min_position=abc",
        "min_position=-5",
        "as_of_position=-1",
        "as_of_position=1",
        "as_of_time=yesterday",
        "as_of_time=1970-01-01T00:00:00Z",
        "max_depth=-3",
        "max_depth=4294967296",
        "annotation=",
        "annotation==",
        "annotation=a=b=c",
        "stream_id=",
        "tenant_id=x",
        "actor=%ff",
        "since=notatime",
        "unknown=1",
        "%zz=1",
        "a&&&b",
        "limit=1&limit=2",
    ];
    let n = if rng.gen_bool(0.5) {
        0
    } else {
        rng.gen_range(1..4)
    };
    let mut q: Vec<String> = (0..n).map(|_| pick(rng, &parts).to_owned()).collect();
    if rng.gen_bool(0.05) {
        q.push(format!("after={}", "y".repeat(10_000)));
    }
    q.join("&")
}

fn hostile_token(rng: &mut StdRng, known: &Known) -> Option<String> {
    Some(match rng.gen_range(0..10) {
        0..=3 => known.admin_token.clone(),
        4..=5 => known.user_token.clone(),
        6 => return None,
        7 => "garbage".to_owned(),
        8 => "e".repeat(rng.gen_range(1..20_000)),
        _ => {
            // Signed with another secret, or with an empty subject, or expired long ago.
            let mut t = plinth_api::auth::mint_dev_token("not-the-secret", ADMIN, 60).unwrap();
            if rng.gen_bool(0.5) {
                t = plinth_api::auth::mint_dev_token(SECRET, " ", 60).unwrap();
            }
            t
        }
    })
}

/// A body: a valid command, mutated or not, or something that is no command at all.
fn hostile_body(rng: &mut StdRng, known: &Known) -> Vec<u8> {
    let valid = match rng.gen_range(0..3) {
        0 => json!({"type": "SetAnnotation",
                    "data": {"resource_id": known.tenant, "key": "example.com/k", "value": "v"}}),
        1 => json!({"type": "UpdateTenant",
                    "data": {"tenant_id": known.tenant, "description": "d"}}),
        _ => json!({"type": "CreateLocation",
                    "data": {"tenant_id": known.tenant, "name": "loc"}}),
    };
    let mut bytes = valid.to_string().into_bytes();
    match rng.gen_range(0..12) {
        0 => bytes,
        1..=3 => {
            for _ in 0..rng.gen_range(1..4) {
                let i = rng.gen_range(0..bytes.len());
                bytes[i] = rng.gen();
            }
            bytes
        }
        4 => {
            bytes.truncate(rng.gen_range(0..bytes.len()));
            bytes
        }
        5 => {
            let depth = rng.gen_range(100..100_000);
            let mut b = "[".repeat(depth).into_bytes();
            b.extend("]".repeat(depth).into_bytes());
            b
        }
        6 => json!({"type": "SetAnnotation",
                    "data": {"resource_id": known.tenant, "key": "example.com/k",
                             "value": "v".repeat(rng.gen_range(1_000..3_000_000))}})
        .to_string()
        .into_bytes(),
        7 => {
            let mut v = valid.clone();
            v["data"]["extra"] = json!(1e308);
            v["expected_version"] = json!(pick(rng, &["-1", "1e400", "x"]));
            v.to_string().into_bytes()
        }
        8 => pick(
            rng,
            &[
                "null",
                "{}",
                "[]",
                "\"\"",
                "{\"type\": null}",
                "{\"type\": \"CreateTenant\", \"data\": {\"name\": \"\\u0000\"}}",
                "{\"type\": \"CreateTenant\", \"data\": {\"name\": \"a\", \"name\": \"b\"}}",
                "{\"type\": \"CreateTenant\", \"data\": {\"name\": \"\\ud800\"}}",
                "{\"type\": \"GrantTenantAccess\", \"data\": {\"tenant_id\": 1, \"user_id\": [], \"role\": {}}}",
                "{\"type\": \"CreateTenant\", \"data\": {\"name\": 99999999999999999999999999}}",
            ],
        )
        .as_bytes()
        .to_vec(),
        9 => (0..rng.gen_range(0..2_000)).map(|_| rng.gen()).collect(),
        10 => vec![0xff, 0xfe, b'{', 0x80, b'}'],
        _ => Vec::new(),
    }
}

/// Sends one generated request: its description, and its status (0 for a large body refused
/// while it was being sent) with the command id of a 201, or the client's error.
async fn one_request(
    rng: &mut StdRng,
    http: &reqwest::Client,
    base: &str,
    known: &Known,
) -> (String, Result<(u16, Option<String>), String>) {
    let (method, template) = known.routes.choose(rng).unwrap().clone();
    let method = if rng.gen_bool(0.1) {
        pick(
            rng,
            &["PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "POST", "GET"],
        )
        .to_owned()
    } else {
        method.to_uppercase()
    };
    let mut body_len = 0;
    let mut path = template.clone();
    while let Some(start) = path.find('{') {
        let end = start + path[start..].find('}').unwrap();
        path.replace_range(start..=end, &hostile_id(rng, known));
    }
    let query = hostile_query(rng);
    let url = if query.is_empty() {
        format!("{base}{path}")
    } else {
        format!("{base}{path}?{query}")
    };
    let mut request = http
        .request(method.parse().unwrap(), &url)
        .timeout(Duration::from_secs(30))
        // A connection per request: a server may close a connection after answering a request
        // whose body it did not read (a 401 before the body); reusing it would fail the next
        // request for the client's reasons, not the server's.
        .header("connection", "close");
    if let Some(token) = hostile_token(rng, known) {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    if method == "POST" || rng.gen_bool(0.1) {
        let content_type = pick(
            rng,
            &[
                "application/json",
                "application/json",
                "text/plain",
                "application/x-www-form-urlencoded",
                "",
            ],
        );
        if !content_type.is_empty() {
            request = request.header("content-type", content_type);
        }
        let body = hostile_body(rng, known);
        body_len = body.len();
        request = request.body(body);
    }
    if rng.gen_bool(0.3) {
        // Header values may hold any visible byte, UTF-8 or not (`obs-text`).
        let key: Vec<u8> = match rng.gen_range(0..4) {
            0 => Vec::new(),
            1 => "k".repeat(rng.gen_range(1..10_000)).into_bytes(),
            2 => "é\u{fffd}"
                .as_bytes()
                .iter()
                .copied()
                .chain([0xff, 0x80])
                .collect(),
            _ => uuid::Uuid::now_v7().to_string().into_bytes(),
        };
        let key = reqwest::header::HeaderValue::from_bytes(&key).expect("a valid header value");
        request = request.header("idempotency-key", key);
    }
    if rng.gen_bool(0.05) {
        request = request.header("x-request-id", "r".repeat(rng.gen_range(1..5_000)));
    }
    let what = format!("{method} {} ({request:?})", &url[..url.len().min(200)]);
    match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            if status == 201 {
                let body: Value = response.json().await.unwrap_or_default();
                let command = body["command_id"].as_str().unwrap_or_default().to_owned();
                return (what, Ok((status, Some(command))));
            }
            (what, Ok((status, None)))
        }
        // The server may refuse a large body before reading it (the query or the token is
        // already wrong, or the length is over the limit) and close: the client then fails to
        // write the rest. Not a failure of the server; nothing of that body was accepted.
        Err(e) if body_len > 64 * 1024 && format!("{e:?}").contains("BodyWrite") => {
            (what, Ok((0, None)))
        }
        Err(e) => (what, Err(format!("{e:?}"))),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_requests_get_4xx_write_nothing_and_leave_memory_flat() {
    // A few thousand requests of load: apart from the tests that bound read latency.
    let _horizon = HORIZON.write().await;
    let seed: u64 = std::env::var("PLINTH_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261201);
    let requests: usize = std::env::var("PLINTH_FUZZ_REQUESTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3_000);
    let db = test_db().await;
    let server = Server::start(&db, free_port(), &unique("fuzz")).await;
    let admin_token = plinth_api::auth::mint_dev_token(SECRET, ADMIN, 3600).unwrap();
    let user_token = plinth_api::auth::mint_dev_token(SECRET, "fuzz-user", 3600).unwrap();
    let tenant = create_tenants(&server.base, &admin_token, 1)
        .await
        .remove(0);
    let http = reqwest::Client::new();
    // Users are recorded on their first authenticated request: both exist before counting.
    for token in [&admin_token, &user_token] {
        let me = http
            .get(format!("{}/v1/me", server.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(me.status(), 200);
    }
    let document: Value = http
        .get(format!("{}/openapi.json", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut routes = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            routes.push((method.clone(), path.clone()));
        }
    }
    assert!(
        routes.len() > 20,
        "the document lists the routes: {routes:?}"
    );
    let known = Known {
        routes,
        tenant,
        admin_token,
        user_token,
    };

    let before = committed_events(&db.pool).await as usize;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut accepted: std::collections::HashSet<String> = Default::default();
    let mut rss_after_warmup = 0;
    let mut statuses: std::collections::BTreeMap<u16, usize> = Default::default();
    let mut last = String::new();
    for i in 0..requests {
        if i == requests / 5 {
            rss_after_warmup = server.rss_kib();
        }
        let (what, answer) = one_request(&mut rng, &http, &server.base, &known).await;
        let (status, command) = answer
            .unwrap_or_else(|e| panic!("seed {seed}, request {i}: {what}: {e}\nbefore: {last}"));
        assert!(status < 500, "seed {seed}, request {i}: {what}: {status}");
        *statuses.entry(status).or_default() += 1;
        accepted.extend(command);
        last = what;
    }
    let rss_after = server.rss_kib();

    // Only accepted commands wrote: every event since is one of theirs.
    let written = db
        .pool
        .get()
        .await
        .unwrap()
        .query(
            "select metadata->>'command_id', event_type from events order by position offset $1",
            &[&(before as i64)],
        )
        .await
        .unwrap();
    for row in &written {
        let (command, event_type): (String, String) = (row.get(0), row.get(1));
        assert!(
            accepted.contains(&command),
            "seed {seed}: {event_type} of command {command}, which got no 201"
        );
    }
    let growth_mib = rss_after.saturating_sub(rss_after_warmup) / 1024;
    assert!(
        growth_mib < 64,
        "seed {seed}: memory grew {growth_mib} MiB over {} requests ({rss_after_warmup} KiB -> {rss_after} KiB)",
        requests - requests / 5
    );
    let status = server.terminate().await;
    assert!(status.success(), "{status}");
    eprintln!(
        "{requests} hostile requests (seed {seed}): statuses {statuses:?}; memory {} -> {} MiB",
        rss_after_warmup / 1024,
        rss_after / 1024
    );
}

/// U+0000 in any text a command carries (PostgreSQL refuses it in `text` and `jsonb`) is a 400
/// naming the field, and nothing is written. The fuzz above found it as a 500.
#[tokio::test]
async fn text_postgresql_cannot_store_is_a_400_that_writes_nothing() {
    let app = crate::support::spawn_app().await;
    let admin = app.admin();
    let tenant = app
        .ok(&admin, "CreateTenant", json!({"name": "nul test"}))
        .await;
    let before = committed_events(&app.db.pool).await;
    let bad = [
        ("CreateTenant", json!({"name": "a\u{0}b"})),
        (
            "UpdateTenant",
            json!({"tenant_id": tenant, "description": "x\u{0}"}),
        ),
        (
            "SetAnnotation",
            json!({"resource_id": tenant, "key": "example.com/k", "value": "\u{0}"}),
        ),
        (
            "SetStatus",
            json!({"resource_id": tenant, "source": "example.com/probe",
                   "data": {"nested": ["\u{0}"]}}),
        ),
    ];
    for (command, data) in bad {
        let reply = app.command(&admin, command, data.clone()).await;
        assert_eq!(reply.status, 400, "{command} {data}: {reply:?}");
        assert_eq!(reply.content_type, "application/problem+json");
    }
    assert_eq!(committed_events(&app.db.pool).await, before);
}
