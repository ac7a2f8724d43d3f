//! User ids compatible with Infratographer's identity-api (docs/adr/0014): new users get
//! `idntusr-` + base64url(sha256(issuer + subject)), users recorded before keep their legacy id,
//! and every route that takes a user id accepts both shapes and nothing else.

use serde_json::{json, Value};

use plinth_commands::EventStore;
use plinth_domain::UserId;

use crate::read_side::{app, read_ok, run};
use crate::support::{all_events, Api, Reply, TestApp, ADMIN, SECRET};

/// identity-api's id for (`https://example.com`, `foo@example.com`), computed outside Plinth:
/// `printf %s 'https://example.comfoo@example.com' | openssl dgst -sha256 -binary |
/// basenc --base64url`, without the trailing `=`.
const EXAMPLE_ID: &str = "idntusr-G9KRgCBGlE6lYkoLKCdKufqP_TO04_qhq87Gs5Y75Gg";

/// A token from `issuer` for `subject`, signed with the test secret.
fn token_from(issuer: &str, subject: &str) -> String {
    let claims = json!({"sub": subject, "iss": issuer, "exp": 4_000_000_000u64});
    let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes());
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap()
}

fn assert_problem(reply: &Reply, status: u16, what: &str) {
    assert_eq!(reply.status, status, "{what}: {reply:?}");
    assert_eq!(
        reply.content_type, "application/problem+json",
        "{what}: {reply:?}"
    );
    assert_eq!(reply.body["status"], status, "{what}: {reply:?}");
}

/// The `UserCreated` events of the log for `subject`.
async fn users_created(app: &TestApp, subject: &str) -> Vec<Value> {
    all_events(&app.db.pool)
        .await
        .into_iter()
        .filter(|e| e.event_type == "UserCreated")
        .map(|e| serde_json::from_str::<Value>(&e.data).unwrap())
        .filter(|data| data["subject"] == subject)
        .collect()
}

async fn stream_exists(app: &TestApp, id: &str) -> bool {
    app.db
        .pool
        .get()
        .await
        .unwrap()
        .query_opt("select 1 from streams where stream_id = $1", &[&id])
        .await
        .unwrap()
        .is_some()
}

/// A second server on the same database: its own cache of known users, as after a restart or
/// beside the first behind a load balancer.
async fn second_server(app: &TestApp) -> (Api, plinth_api::app::RunningApp) {
    let settings = plinth_api::settings::Settings::for_database(&app.db.url, SECRET, &[ADMIN]);
    let running = plinth_api::app::spawn(settings).await.unwrap();
    let api = Api {
        base: format!("http://{}", running.address),
        http: reqwest::Client::new(),
    };
    (api, running)
}

#[tokio::test]
async fn a_new_identity_gets_identity_apis_id() {
    let app = app().await;
    let token = token_from("https://example.com", "foo@example.com");
    let me = app.get(&token, "/v1/me").await;
    assert_eq!(me.status, 200, "{me:?}");
    assert_eq!(me.body["id"], EXAMPLE_ID);
    let created = users_created(&app, "foo@example.com").await;
    assert_eq!(
        created,
        [
            json!({"user_id": EXAMPLE_ID, "issuer": "https://example.com", "subject": "foo@example.com"})
        ]
    );
    // The event's actor is the user itself, under the same id.
    let audit = app
        .get(&app.admin(), &format!("/v1/audit?actor={EXAMPLE_ID}"))
        .await;
    assert_eq!(audit.status, 200, "{audit:?}");
    assert_eq!(audit.body["items"][0]["event_type"], "UserCreated");
    assert_eq!(audit.body["items"][0]["actor"], EXAMPLE_ID);
    assert!(
        !stream_exists(
            &app,
            UserId::legacy_for_identity("https://example.com", "foo@example.com").as_str()
        )
        .await
    );
}

#[tokio::test]
async fn a_user_recorded_with_the_legacy_id_keeps_it_and_its_grants() {
    let app = app().await;
    let admin = app.admin();
    // What a server before ADR 0014 wrote on this identity's first request.
    let legacy = UserId::legacy_for_identity("plinth-dev", "veteran");
    assert_eq!(legacy.as_str().len(), 8 + 21);
    let store = EventStore::new(app.db.pool.clone());
    assert!(store
        .record_user_with_id(&legacy, "plinth-dev", "veteran")
        .await
        .unwrap());
    // … and a grant given then, naming that id.
    let (tenant, _) = run(&app, &admin, "CreateTenant", json!({"name": "Old Corp"})).await;
    let (_, at) = run(
        &app,
        &admin,
        "GrantTenantAccess",
        json!({"tenant_id": tenant, "user_id": legacy, "role": "admin"}),
    )
    .await;

    // After the change: the same identity is the same user.
    let token = app.token("veteran");
    for _ in 0..2 {
        let me = app.get(&token, "/v1/me").await;
        assert_eq!(me.status, 200, "{me:?}");
        assert_eq!(me.body["id"], legacy.as_str());
    }
    let new_style = UserId::for_identity("plinth-dev", "veteran");
    assert!(!stream_exists(&app, new_style.as_str()).await);
    // Its grant applies: it reads and edits the tenant, and its events name the legacy id.
    let read = read_ok(&app, &token, &format!("/v1/tenants/{tenant}"), at).await;
    assert_eq!(read["name"], "Old Corp");
    let (_, at) = run(
        &app,
        &token,
        "UpdateTenant",
        json!({"tenant_id": tenant, "name": "Old Corp, renamed"}),
    )
    .await;
    let roles = read_ok(&app, &token, &format!("/v1/users/{legacy}/roles"), at).await;
    assert_eq!(roles["items"][0]["tenant_id"], tenant.as_str());
    assert_eq!(roles["items"][0]["effective_role"], "admin");
    let audit = app
        .get(
            &admin,
            &format!("/v1/audit?actor={legacy}&event_type=TenantUpdated"),
        )
        .await;
    assert_eq!(audit.status, 200, "{audit:?}");
    assert_eq!(
        audit.body["items"].as_array().unwrap().len(),
        1,
        "{audit:?}"
    );

    // A server with an empty cache (a restart, another replica) resolves it the same way, even
    // under 16 concurrent first requests.
    let (other, _running) = second_server(&app).await;
    let replies = futures::future::join_all((0..16).map(|_| {
        let other = other.clone();
        let token = token.clone();
        async move { other.get(&token, "/v1/me").await }
    }))
    .await;
    for me in replies {
        assert_eq!(me.status, 200, "{me:?}");
        assert_eq!(me.body["id"], legacy.as_str());
    }
    assert_eq!(users_created(&app, "veteran").await.len(), 1);
    assert!(!stream_exists(&app, new_style.as_str()).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_requests_on_two_servers_record_one_user() {
    let app = app().await;
    let (other, _running) = second_server(&app).await;
    let token = token_from("https://example.com", "foo@example.com");
    let servers = [app.api(), other];
    let replies = futures::future::join_all((0..16).map(|i| {
        let api = servers[i % 2].clone();
        let token = token.clone();
        async move { api.get(&token, "/v1/me").await }
    }))
    .await;
    for me in replies {
        assert_eq!(me.status, 200, "{me:?}");
        assert_eq!(me.body["id"], EXAMPLE_ID);
    }
    assert_eq!(users_created(&app, "foo@example.com").await.len(), 1);
}

#[tokio::test]
async fn grants_to_identity_api_ids_apply() {
    let app = app().await;
    let admin = app.admin();
    let bob = app.user("bob").await;
    assert_eq!(bob.len(), 8 + 43, "{bob}");
    let (tenant, _) = run(&app, &admin, "CreateTenant", json!({"name": "New Corp"})).await;
    let (_, at) = run(
        &app,
        &admin,
        "GrantTenantAccess",
        json!({"tenant_id": tenant, "user_id": bob, "role": "viewer"}),
    )
    .await;
    let token = app.token("bob");
    let read = read_ok(&app, &token, &format!("/v1/tenants/{tenant}"), at).await;
    assert_eq!(read["name"], "New Corp");
    let roles = read_ok(&app, &token, &format!("/v1/users/{bob}/roles"), at).await;
    assert_eq!(roles["items"][0]["role"], "viewer");
    let grants = read_ok(&app, &admin, &format!("/v1/tenants/{tenant}/grants"), at).await;
    assert!(
        grants["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["user_id"] == bob.as_str()),
        "{grants}"
    );
    let (_, at) = run(
        &app,
        &admin,
        "RevokeTenantAccess",
        json!({"tenant_id": tenant, "user_id": bob}),
    )
    .await;
    let gone = app
        .get(&token, &format!("/v1/tenants/{tenant}?min_position={at}"))
        .await;
    assert_problem(&gone, 404, "after the revoke");

    // A well-formed id of nobody recorded is the domain's 404, not a parse error.
    let nobody = UserId::for_identity("https://example.com", "nobody@example.com");
    let reply = app
        .command(
            &admin,
            "GrantTenantAccess",
            json!({"tenant_id": tenant, "user_id": nobody, "role": "viewer"}),
        )
        .await;
    assert_problem(&reply, 404, "a grant to an unrecorded user");
}

#[tokio::test]
async fn malformed_user_ids_are_400_problems_everywhere_a_user_id_is_taken() {
    let app = app().await;
    let admin = app.admin();
    let (tenant, _) = run(&app, &admin, "CreateTenant", json!({"name": "Corp"})).await;
    let long = &EXAMPLE_ID[8..];
    let malformed = [
        format!("idntusr-{long}A"),          // 44 characters
        format!("idntusr-{}", &long[..42]),  // 42
        format!("idntusr-{}.", &long[..42]), // 43, one not url-safe
        format!("idntusr-{}!", &long[..20]), // 21, one not url-safe
        format!("idntusr-{}", &long[..22]),  // 22
        format!("tnntten-{long}"),           // 43, another kind's prefix
        format!("idntusr-{long}="),          // padded
    ];
    for bad in &malformed {
        let grant = app
            .command(
                &admin,
                "GrantTenantAccess",
                json!({"tenant_id": tenant, "user_id": bad, "role": "viewer"}),
            )
            .await;
        assert_problem(&grant, 400, &format!("grant to {bad}"));
        let revoke = app
            .command(
                &admin,
                "RevokeTenantAccess",
                json!({"tenant_id": tenant, "user_id": bad}),
            )
            .await;
        assert_problem(&revoke, 400, &format!("revoke of {bad}"));
        let roles = app.get(&admin, &format!("/v1/users/{bad}/roles")).await;
        assert_problem(&roles, 400, &format!("roles of {bad}"));
        let audit = app
            .get(
                &admin,
                &format!("/v1/audit?actor={}", bad.replace('=', "%3D")),
            )
            .await;
        assert_problem(&audit, 400, &format!("audit by {bad}"));
    }
    // Other kinds keep their 21 characters.
    let tenant_43 = app
        .get(&admin, &format!("/v1/tenants/tnntten-{long}"))
        .await;
    assert_problem(&tenant_43, 400, "a 43-character tenant id");
    // Both user shapes parse there (nobody is recorded under these: 404, not 400).
    for good in [EXAMPLE_ID, "idntusr-Y5eCcKq9aOOHpj0AhzxiT"] {
        let roles = app.get(&admin, &format!("/v1/users/{good}/roles")).await;
        assert_problem(&roles, 404, &format!("roles of {good}"));
        let audit = app.get(&admin, &format!("/v1/audit?actor={good}")).await;
        assert_eq!(audit.status, 200, "{audit:?}");
    }
}

#[tokio::test]
async fn the_openapi_document_describes_both_user_id_shapes() {
    let app = crate::support::spawn_app().await;
    let doc = app.get(&app.admin(), "/openapi.json").await.body;
    let user_id = &doc["components"]["schemas"]["UserId"];
    let description = user_id["description"].as_str().unwrap_or_default();
    assert!(
        description.contains("43") && description.contains("21"),
        "{user_id}"
    );
    let actor = doc["paths"]["/v1/audit"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "actor")
        .unwrap();
    let description = actor["description"].as_str().unwrap_or_default();
    assert!(
        description.contains("43") && description.contains("21"),
        "{actor}"
    );
}
