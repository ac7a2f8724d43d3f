//! What the provider issues for Plinth gets in, as the identity the issuer's mapping names.

use serde_json::json;

use super::{provider_url, spawn_trusting, spawn_trusting_file, Provider, AUDIENCE};
use crate::support::committed_events;

#[tokio::test]
async fn a_service_token_from_the_provider_gets_in_as_its_client() {
    let provider = Provider::shared();
    let app = spawn_trusting(|_| {}).await;
    for client in ["plinth-service", "plinth-service-es256"] {
        let token = provider
            .service_token(&provider.url, client, AUDIENCE)
            .await;
        let me = app.get(&token, "/v1/me").await;
        assert_eq!(me.status, 200, "{client}: {me:?}");
        assert_eq!(me.body["issuer"], provider_url());
        assert_eq!(me.body["subject"], client);
    }
}

#[tokio::test]
async fn a_person_signed_in_at_the_provider_is_recorded_once_under_identity_apis_id() {
    let provider = Provider::shared();
    let app = spawn_trusting(|_| {}).await;
    let token = provider
        .person_token(&provider.url, "alice", AUDIENCE)
        .await;
    let first = app.get(&token, "/v1/me").await;
    let again = app.get(&token, "/v1/me").await;
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(first.body["subject"], "alice");
    assert_eq!(
        first.body["id"],
        plinth_domain::UserId::for_identity(&provider.url, "alice").to_string()
    );
    assert_eq!(again.body["id"], first.body["id"]);
    assert_eq!(committed_events(&app.db.pool).await, 1, "one UserCreated");
}

#[tokio::test]
async fn a_platform_admin_named_by_issuer_and_subject_creates_a_root_tenant() {
    let provider = Provider::shared();
    let admin = format!("{}|plinth-service", provider.url);
    let app = spawn_trusting(|s| s.platform_admins = vec![admin]).await;
    let token = provider
        .service_token(&provider.url, "plinth-service", AUDIENCE)
        .await;
    let created = app
        .command(&token, "CreateTenant", json!({"name": "Sarah Corp"}))
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    // The same subject from another issuer is someone else.
    let elsewhere = provider.new_issuer().await;
    let file = issuers_file(&format!(
        "[[issuers]]\nissuer = \"{}\"\naudiences = [\"{AUDIENCE}\"]\n\n\
         [[issuers]]\nissuer = \"{}\"\naudiences = [\"{AUDIENCE}\"]\n",
        provider.url, elsewhere.issuer
    ));
    let admin = format!("{}|plinth-service", provider.url);
    let both = spawn_trusting_file(&file, |s| {
        s.platform_admins = vec![admin];
    })
    .await;
    let other_token = provider
        .service_token(&elsewhere.issuer, "plinth-service", AUDIENCE)
        .await;
    let refused = both
        .command(&other_token, "CreateTenant", json!({"name": "Not Sarah"}))
        .await;
    assert_eq!(refused.status, 403, "{refused:?}");
    let _ = std::fs::remove_file(file);
}

#[tokio::test]
async fn an_issuers_file_trusts_each_issuer_with_its_own_claims_and_algorithms() {
    let provider = Provider::shared();
    let second = provider.new_issuer().await;
    let file = issuers_file(&format!(
        "[[issuers]]\n\
         issuer = \"{main}\"\n\
         audiences = [\"https://unused.test\", \"{AUDIENCE}\"]\n\
         [issuers.claims]\n\
         subject = \"email\"\n\
         \n\
         [[issuers]]\n\
         issuer = \"{second}\"\n\
         audiences = [\"{AUDIENCE}\"]\n\
         algorithms = [\"ES256\"]\n",
        main = provider.url,
        second = second.issuer,
    ));
    let app = spawn_trusting_file(&file, |_| {}).await;
    let alice = provider
        .person_token(&provider.url, "alice", AUDIENCE)
        .await;
    let me = app.get(&alice, "/v1/me").await;
    assert_eq!(me.status, 200, "{me:?}");
    assert_eq!(me.body["subject"], "alice@example.com", "mapped subject");
    assert_eq!(me.body["issuer"], provider.url);
    let es256 = provider
        .service_token(&second.issuer, "plinth-service-es256", AUDIENCE)
        .await;
    let me = app.get(&es256, "/v1/me").await;
    assert_eq!(me.status, 200, "{me:?}");
    assert_eq!(me.body["issuer"], second.issuer);
    assert_eq!(
        me.body["subject"], "plinth-service-es256",
        "the default mapping"
    );
    // The second issuer allows ES256 only: its RS256 tokens are refused.
    let rs256 = provider
        .service_token(&second.issuer, "plinth-service", AUDIENCE)
        .await;
    super::assert_unauthenticated(&app.get(&rs256, "/v1/me").await, "RS256 not allowed");
    let _ = std::fs::remove_file(file);
}

/// A TOML issuers file in the temporary directory.
pub fn issuers_file(text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("plinth-issuers-{}.toml", uuid::Uuid::new_v4()));
    std::fs::write(&path, text).unwrap();
    path
}
