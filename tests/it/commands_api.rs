//! `POST /v1/commands` and `GET /v1/me` through real HTTP.

use serde_json::json;

use crate::support::{committed_events, spawn_app, test_db, TestApp};

async fn event_count(app: &TestApp) -> i64 {
    committed_events(&app.db.pool).await
}

fn assert_problem(reply: &crate::support::Reply, status: u16) {
    assert_eq!(reply.status, status, "{reply:?}");
    assert_eq!(reply.content_type, "application/problem+json", "{reply:?}");
    assert_eq!(reply.body["status"], status);
    assert!(reply.body["type"]
        .as_str()
        .unwrap()
        .starts_with("urn:plinth:problem:"));
    assert!(reply.body["detail"].is_string());
}

#[tokio::test]
async fn me_records_the_user_once_with_a_deterministic_id() {
    let app = spawn_app().await;
    let token = app.token("alice");
    let first = app.get(&token, "/v1/me").await;
    let second = app.get(&token, "/v1/me").await;
    assert_eq!(first.status, 200);
    assert_eq!(first.body["id"], second.body["id"]);
    assert_eq!(first.body["subject"], "alice");
    assert_eq!(first.body["issuer"], "plinth-dev");
    assert_eq!(
        first.body["id"],
        plinth_domain::UserId::for_identity("plinth-dev", "alice").to_string()
    );
    assert_eq!(event_count(&app).await, 1, "exactly one UserCreated");
}

#[tokio::test]
async fn requests_without_a_valid_token_are_401() {
    let app = spawn_app().await;
    let none = app
        .http
        .get(format!("{}/v1/me", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), 401);
    assert_eq!(none.headers()["content-type"], "application/problem+json");
    assert_problem(&app.get("not-a-jwt", "/v1/me").await, 401);
    let forged = plinth_api::auth::mint_dev_token("another-secret", "mallory", 60).unwrap();
    assert_problem(&app.get(&forged, "/v1/me").await, 401);
    let expired = {
        let claims = json!({"sub": "alice", "iss": "plinth-dev", "exp": 1_000});
        let key = jsonwebtoken::EncodingKey::from_secret(crate::support::SECRET.as_bytes());
        jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap()
    };
    assert_problem(&app.get(&expired, "/v1/me").await, 401);
    assert_eq!(
        event_count(&app).await,
        0,
        "no user recorded for failed authentication"
    );
}

#[tokio::test]
async fn es256_tokens_verify_against_the_jwks_file() {
    let db = test_db().await;
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut settings = plinth_api::settings::Settings::for_database(&db.url, "unused", &[]);
    settings.jwt_secret = None;
    settings.jwks_file = Some(fixtures.join("jwks.json"));
    let running = plinth_api::app::spawn(settings).await.unwrap();
    let pem = std::fs::read(fixtures.join("es256-private.pem")).unwrap();
    let claims = json!({"sub": "svc-lb", "iss": "https://idp.example", "exp": chrono::Utc::now().timestamp() + 600});
    let signed_es256 = |kid: &str| {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(kid.into());
        let key = jsonwebtoken::EncodingKey::from_ec_pem(&pem).unwrap();
        jsonwebtoken::encode(&header, &claims, &key).unwrap()
    };
    let http = reqwest::Client::new();
    let me = |token: String| {
        http.get(format!("http://{}/v1/me", running.address))
            .bearer_auth(token)
            .send()
    };
    let accepted = me(signed_es256("test-es256")).await.unwrap();
    assert_eq!(accepted.status(), 200);
    let body: serde_json::Value = accepted.json().await.unwrap();
    assert_eq!(body["issuer"], "https://idp.example");
    // A key id the JWKS does not hold names no key, even with a good signature.
    let unknown_kid = me(signed_es256("not-in-the-jwks")).await.unwrap();
    assert_eq!(unknown_kid.status(), 401);
    // HS256 is off when only a JWKS is configured.
    let dev = plinth_api::auth::mint_dev_token("unused", "x", 60).unwrap();
    assert_eq!(me(dev).await.unwrap().status(), 401);
}

#[tokio::test]
async fn a_command_returns_its_events_and_positions() {
    let app = spawn_app().await;
    let reply = app
        .command(&app.admin(), "CreateTenant", json!({"name": "Sarah Corp"}))
        .await;
    assert_eq!(reply.status, 201, "{reply:?}");
    let body = &reply.body;
    assert!(body["stream_id"].as_str().unwrap().starts_with("tnntten-"));
    assert_eq!(body["aggregate_id"], body["stream_id"]);
    assert_eq!(body["version"], 1);
    assert_eq!(body["events"][0]["event_type"], "TenantCreated");
    assert_eq!(body["events"][0]["stream_version"], 1);
    assert_eq!(body["events"][0]["position"], body["position"]);
    assert!(uuid::Uuid::parse_str(body["command_id"].as_str().unwrap()).is_ok());
}

#[tokio::test]
async fn malformed_input_is_a_400_problem_and_writes_nothing() {
    let app = spawn_app().await;
    let admin = app.admin();
    app.user(crate::support::ADMIN).await;
    let before = event_count(&app).await;
    let cases = [
        "not json".to_owned(),
        json!({"type": "CreateTenant"}).to_string().replace('}', ""),
        json!({"type": "CreateTenant", "data": {"name": "x"}, "colour": "red"}).to_string(),
        json!({"type": "CreateTenant", "data": {"name": "x", "colour": "red"}}).to_string(),
        json!({"type": "DropEverything", "data": {}}).to_string(),
        json!({"type": "CreateTenant", "data": {"name": "   "}}).to_string(),
        json!({"type": "CreateTenant", "data": {"name": "x", "parent_id": "tnntten-short"}}).to_string(),
        json!({"type": "DeleteTenant", "data": {"tenant_id": "lctnloc-AAAAAAAAAAAAAAAAAAAAA"}}).to_string(),
        json!({"type": "CreateResourceProvider", "data": {"tenant_id": "tnntten-AAAAAAAAAAAAAAAAAAAAA", "name": "x", "scopes": ["Not A Scope"]}}).to_string(),
        json!({"type": "SetStatus", "data": {"resource_id": "tnntten-AAAAAAAAAAAAAAAAAAAAA", "source": "s", "data": [1, 2]}}).to_string(),
    ];
    for body in cases {
        let reply = app.post_raw(&admin, body.clone(), &[]).await;
        assert_problem(&reply, 400);
        assert!(!reply.body["detail"].as_str().unwrap().is_empty(), "{body}");
    }
    assert_eq!(event_count(&app).await, before);
}

#[tokio::test]
async fn bodies_over_one_mebibyte_are_413() {
    let app = spawn_app().await;
    let huge = json!({"type": "CreateTenant", "data": {"name": "x", "description": "d".repeat(1_100_000)}}).to_string();
    assert_problem(&app.post_raw(&app.admin(), huge, &[]).await, 413);
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems_too() {
    let app = spawn_app().await;
    assert_problem(&app.get(&app.admin(), "/v1/nothing-here").await, 404);
    assert_problem(&app.get(&app.admin(), "/v1/commands").await, 405);
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_result_and_appends_nothing() {
    let app = spawn_app().await;
    let admin = app.admin();
    let body = json!({"type": "CreateTenant", "data": {"name": "Nicole Corp"}}).to_string();
    let first = app
        .post_raw(&admin, body.clone(), &[("Idempotency-Key", "k-1")])
        .await;
    assert_eq!(first.status, 201);
    let events = event_count(&app).await;
    let again = app
        .post_raw(&admin, body.clone(), &[("Idempotency-Key", "k-1")])
        .await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body, first.body);
    assert_eq!(event_count(&app).await, events);
    // Same key, different request: refused.
    let other = json!({"type": "CreateTenant", "data": {"name": "Freckle Corp"}}).to_string();
    assert_problem(
        &app.post_raw(&admin, other, &[("Idempotency-Key", "k-1")])
            .await,
        422,
    );
    // Keys are per user: another user may use the same key.
    let other_user = app
        .command(&app.token("bob"), "CreateTenant", json!({"name": "x"}))
        .await;
    assert_eq!(other_user.status, 403);
}

#[tokio::test]
async fn concurrent_retries_with_one_key_create_exactly_one_tenant() {
    let app = spawn_app().await;
    let admin = app.admin();
    app.user(crate::support::ADMIN).await;
    let body = json!({"type": "CreateTenant", "data": {"name": "Once"}}).to_string();
    let replies = futures::future::join_all(
        (0..12).map(|_| app.post_raw(&admin, body.clone(), &[("Idempotency-Key", "retry")])),
    )
    .await;
    assert_eq!(
        replies.iter().filter(|r| r.status == 201).count(),
        1,
        "{replies:?}"
    );
    assert!(
        replies.iter().all(|r| r.status == 200 || r.status == 201),
        "{:?}",
        replies
            .iter()
            .map(|r| (r.status, r.body.clone()))
            .collect::<Vec<_>>()
    );
    assert!(replies
        .iter()
        .all(|r| r.body["stream_id"] == replies[0].body["stream_id"]));
    let client = app.db.pool.get().await.unwrap();
    let created: i64 = client
        .query_one(
            "select count(*) from events where event_type = 'TenantCreated'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(created, 1);
}

#[tokio::test]
async fn a_stale_expected_version_is_409() {
    let app = spawn_app().await;
    let admin = app.admin();
    let tenant = app.ok(&admin, "CreateTenant", json!({"name": "a"})).await;
    let update = |name: &str| {
        json!({"type": "UpdateTenant", "data": {"tenant_id": tenant, "name": name}, "expected_version": 1}).to_string()
    };
    assert_eq!(app.post_raw(&admin, update("b"), &[]).await.status, 201);
    assert_problem(&app.post_raw(&admin, update("c"), &[]).await, 409);
}

#[tokio::test]
async fn rules_map_to_403_404_409_and_422() {
    let app = spawn_app().await;
    let admin = app.admin();
    let bob = app.token("bob");
    let bob_id = app.user("bob").await;
    let root = app
        .ok(&admin, "CreateTenant", json!({"name": "root"}))
        .await;
    let child = app
        .ok(
            &admin,
            "CreateTenant",
            json!({"name": "child", "parent_id": root}),
        )
        .await;

    assert_problem(
        &app.command(&bob, "CreateTenant", json!({"name": "mine"}))
            .await,
        403,
    );
    app.ok(
        &admin,
        "GrantTenantAccess",
        json!({"tenant_id": root, "user_id": bob_id, "role": "viewer"}),
    )
    .await;
    assert_problem(
        &app.command(
            &bob,
            "CreateLocation",
            json!({"tenant_id": child, "name": "NY"}),
        )
        .await,
        403,
    );
    app.ok(
        &admin,
        "GrantTenantAccess",
        json!({"tenant_id": root, "user_id": bob_id, "role": "editor"}),
    )
    .await;
    let location = app
        .ok(
            &bob,
            "CreateLocation",
            json!({"tenant_id": child, "name": "NY"}),
        )
        .await;

    assert_problem(
        &app.command(&admin, "DeleteTenant", json!({"tenant_id": root}))
            .await,
        409,
    );
    assert_problem(
        &app.command(
            &admin,
            "CreateTenant",
            json!({"name": "CHILD", "parent_id": root}),
        )
        .await,
        409,
    );
    assert_problem(
        &app.command(
            &admin,
            "MakeLocationAvailable",
            json!({"location_id": location, "tenant_id": root}),
        )
        .await,
        422,
    );
    let missing = plinth_domain::TenantId::generate();
    assert_problem(
        &app.command(&admin, "DeleteTenant", json!({"tenant_id": missing}))
            .await,
        404,
    );

    app.ok(
        &admin,
        "RevokeTenantAccess",
        json!({"tenant_id": root, "user_id": bob_id}),
    )
    .await;
    assert_problem(
        &app.command(&bob, "DeleteLocation", json!({"location_id": location}))
            .await,
        403,
    );
}

#[tokio::test]
async fn the_seed_example_runs_through_the_command_api() {
    let app = spawn_app().await;
    let admin = app.admin();
    let t100 = app
        .ok(&admin, "CreateTenant", json!({"name": "Tenant-100"}))
        .await;
    let t200 = app
        .ok(
            &admin,
            "CreateTenant",
            json!({"name": "Tenant-200", "parent_id": t100}),
        )
        .await;
    let ny = app
        .ok(
            &admin,
            "CreateLocation",
            json!({"tenant_id": t100, "name": "Location-NY"}),
        )
        .await;
    app.ok(
        &admin,
        "CreateLocation",
        json!({"tenant_id": t100, "name": "Location-LA"}),
    )
    .await;
    let rp = app
        .ok(
            &admin,
            "CreateResourceProvider",
            json!({"tenant_id": t100, "name": "Resource-Provider-LoadBalancers",
            "scopes": ["loadbalancer:*", "network:read", "instance:read"]}),
        )
        .await;
    for name in ["LB-Provider-Foo", "LB-Provider-Bar"] {
        app.ok(
            &admin,
            "RegisterProvider",
            json!({"tenant_id": t100, "resource_provider_id": rp, "name": name}),
        )
        .await;
    }
    app.ok(
        &admin,
        "MakeLocationAvailable",
        json!({"location_id": ny, "tenant_id": t200}),
    )
    .await;
    app.ok(
        &admin,
        "MakeResourceProviderAvailable",
        json!({"resource_provider_id": rp, "tenant_id": t200}),
    )
    .await;
    app.ok(
        &admin,
        "AddResourceProviderLocation",
        json!({"resource_provider_id": rp, "location_id": ny}),
    )
    .await;
    let authorized = app
        .command(
            &admin,
            "AuthorizeResourceProvider",
            json!({"resource_provider_id": rp, "tenant_id": t200}),
        )
        .await;
    assert_eq!(authorized.status, 201);
    assert_eq!(
        authorized.body["events"][0]["event_type"],
        "ProviderAuthorized"
    );
}

#[tokio::test]
async fn the_openapi_document_describes_the_routes() {
    let app = spawn_app().await;
    let doc = app
        .http
        .get(format!("{}/openapi.json", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(doc.status(), 200);
    let doc: serde_json::Value = doc.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/v1/commands",
        "/v1/me",
        "/v1/tenants/{id}/descendants",
        "/v1/access/check",
        "/v1/audit",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
    // Every documented GET route answers something other than "no such route".
    let admin = app.admin();
    for path in doc["paths"].as_object().unwrap().keys() {
        let concrete = path.replace("{id}", "tnntten-AAAAAAAAAAAAAAAAAAAAA");
        if doc["paths"][path]["get"].is_object() {
            let reply = app.get(&admin, &concrete).await;
            assert_ne!(reply.body["detail"], "no such route", "{path}");
        }
    }
}

#[tokio::test]
async fn health_readiness_and_metrics_answer() {
    let app = spawn_app().await;
    for path in ["/healthz", "/readyz", "/metrics"] {
        let response = app
            .http
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
}

/// Every answer carries the request's id: the client's `x-request-id` when it sent one (so it
/// can find its request in the server's log), a fresh UUID otherwise, on errors too.
#[tokio::test]
async fn every_answer_carries_the_request_id() {
    let app = spawn_app().await;
    let response = app
        .http
        .get(format!("{}/v1/me", app.base))
        .bearer_auth(app.admin())
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "trace-me-42");
    let mut seen = std::collections::HashSet::new();
    for path in ["/healthz", "/v1/me", "/no/such/route"] {
        let response = app
            .http
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        let id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        uuid::Uuid::parse_str(&id).unwrap_or_else(|_| panic!("{path}: {id} is not a UUID"));
        assert!(seen.insert(id), "{path}: a request id was reused");
    }
}
