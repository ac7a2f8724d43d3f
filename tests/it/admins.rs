//! Who is a platform administrator: `PLINTH_PLATFORM_ADMINS` entries by subject or
//! `issuer|subject`, and a blank subject is nobody at all.

use serde_json::json;

use crate::support::{committed_events, spawn_app_with_admins, TestApp, ADMIN, SECRET};

/// A token from `issuer` for `subject`, signed with the test secret.
fn token_from(issuer: &str, subject: &str) -> String {
    let claims = json!({"sub": subject, "iss": issuer, "exp": 4_000_000_000u64});
    let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes());
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap()
}

async fn creates_a_root(app: &TestApp, token: &str, name: &str) -> u16 {
    app.command(token, "CreateTenant", json!({"name": name}))
        .await
        .status
}

/// A subject PostgreSQL could not store (U+0000) or that no one could read back (control
/// characters) is nobody: 401, and no user recorded (the hostile-input fuzz found the 500).
#[tokio::test]
async fn a_subject_with_control_characters_is_401_and_records_nothing() {
    let app = spawn_app_with_admins(&[ADMIN]).await;
    for subject in ["nul\u{0}inside", "bell\u{7}", "line\nbreak"] {
        let token = app.token(subject);
        let me = app.get(&token, "/v1/me").await;
        assert_eq!(me.status, 401, "subject {subject:?}: {me:?}");
    }
    assert_eq!(committed_events(&app.db.pool).await, 0);
}

#[tokio::test]
async fn a_blank_subject_is_401_even_when_the_admin_list_is_unset() {
    // `PLINTH_PLATFORM_ADMINS` unset parses as one empty entry.
    let app = spawn_app_with_admins(&[""]).await;
    for subject in ["", " ", "\t"] {
        let token = app.token(subject);
        let me = app.get(&token, "/v1/me").await;
        assert_eq!(me.status, 401, "subject {subject:?}: {me:?}");
        assert_eq!(me.content_type, "application/problem+json");
        assert_eq!(creates_a_root(&app, &token, "Evil Corp").await, 401);
        assert_eq!(app.get(&token, "/v1/tenants").await.status, 401);
    }
    let events = committed_events(&app.db.pool).await;
    assert_eq!(events, 0, "no user was recorded for a blank subject");
    // And a real user is not an administrator because of the empty entry.
    let alice = app.token("alice");
    assert_eq!(
        app.get(&alice, "/v1/me").await.body["platform_admin"],
        false
    );
    assert_eq!(creates_a_root(&app, &alice, "Alice Corp").await, 403);
}

#[tokio::test]
async fn administrators_are_named_by_subject_or_by_issuer_and_subject() {
    let app = spawn_app_with_admins(&["plinth-dev|boss", "https://idp.example|eve", "root"]).await;
    let boss = app.token("boss");
    assert_eq!(app.get(&boss, "/v1/me").await.body["platform_admin"], true);
    assert_eq!(creates_a_root(&app, &boss, "Boss Corp").await, 201);

    // `eve` is an administrator only when her token comes from her issuer.
    let eve_here = app.token("eve");
    assert_eq!(
        app.get(&eve_here, "/v1/me").await.body["platform_admin"],
        false
    );
    assert_eq!(creates_a_root(&app, &eve_here, "Eve Dev Corp").await, 403);
    let eve = token_from("https://idp.example", "eve");
    assert_eq!(app.get(&eve, "/v1/me").await.body["platform_admin"], true);
    assert_eq!(creates_a_root(&app, &eve, "Eve Corp").await, 201);

    // A bare subject matches whatever the issuer.
    let root = token_from("https://other.example", "root");
    assert_eq!(creates_a_root(&app, &root, "Root Corp").await, 201);
    // `boss` from another issuer is someone else.
    let other_boss = token_from("https://other.example", "boss");
    assert_eq!(
        creates_a_root(&app, &other_boss, "Other Boss Corp").await,
        403
    );
}
