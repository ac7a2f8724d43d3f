//! The OpenAPI document and the router agree, checked against a running server: every path the
//! router serves is documented and every documented path is served, and on each of them exactly
//! the documented methods are routed.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::Value;

use crate::support::spawn_app;

/// The path templates an axum router serves. axum has no API that lists routes, so this reads
/// its `Debug` output (`path_router: PathRouter { …, node: Node { paths: {RouteId(0): "/v1/…",
/// …} } }, fallback_router: …`); the test checks that it found plenty, so that a change of that
/// format fails instead of passing vacuously.
fn served_paths(router: &axum::Router) -> BTreeSet<String> {
    let debug = format!("{router:?}");
    let node = debug
        .split_once("path_router: ")
        .and_then(|(_, rest)| rest.split_once(", fallback_router: "))
        .and_then(|(table, _)| table.split_once("node: Node"))
        .expect("axum's Router Debug output names path_router, its node and fallback_router")
        .1;
    node.split("RouteId(")
        .skip(1)
        .filter_map(|entry| entry.split('"').nth(1))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn the_document_and_the_router_agree_on_every_method_of_every_path() {
    let app = spawn_app().await;
    let admin = app.admin();
    let doc = app.get(&admin, "/openapi.json").await.body;
    let documented: BTreeSet<String> = doc["paths"].as_object().unwrap().keys().cloned().collect();
    let mut served = served_paths(&plinth_api::app::router(app.app.state.clone()));
    // The console's page and assets (routes/console.rs) are HTML for people, not operations of
    // the JSON API: served, and on purpose not documented. Named here so that any other
    // undocumented route still fails.
    for console in ["/", "/console/app.js", "/console/style.css"] {
        assert!(served.remove(console), "the console serves {console}");
    }
    assert!(served.len() >= 25, "read too few routes: {served:?}");
    assert_eq!(served, documented);

    for path in &served {
        // Well-formed (a tenant's) so that routes answer from their handlers: 400 for another
        // kind's route, 404 for a tenant nobody created, never "no such route".
        let concrete = path.replace("{id}", "tnntten-AAAAAAAAAAAAAAAAAAAAA");
        for method in [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ] {
            let response = app
                .http
                .request(method.clone(), format!("{}{concrete}", app.base))
                .bearer_auth(&admin)
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            let routed = status != 405 && body["detail"] != "no such route";
            let in_doc = doc["paths"][path][method.as_str().to_ascii_lowercase()].is_object();
            assert_eq!(routed, in_doc, "{method} {path}: {status} {body}");
        }
    }
}
