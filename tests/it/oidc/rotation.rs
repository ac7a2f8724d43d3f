//! Keys rotated at the provider, as it publishes them in its JWKS, seen by a running Plinth:
//! a new key works without a restart, a retired one stops within the refresh period. Each
//! test rotates an issuer of its own.

use std::time::{Duration, Instant};

use super::{spawn_trusting, Provider, TestIssuer, AUDIENCE};
use crate::support::TestApp;

async fn trusting(issuer: &TestIssuer, refresh_secs: u64) -> TestApp {
    let issuer = issuer.issuer.clone();
    spawn_trusting(move |s| {
        s.oidc_issuer = Some(issuer);
        s.oidc_refresh_secs = refresh_secs;
    })
    .await
}

async fn status(app: &TestApp, token: &str) -> u16 {
    app.get(token, "/v1/me").await.status
}

/// Asks until `token` gets `expected` (up to `patience`), and returns how long it took.
async fn until_status(app: &TestApp, token: &str, expected: u16, patience: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let got = status(app, token).await;
        if got == expected {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < patience,
            "still {got}, not {expected}, after {patience:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_key_rotated_in_works_without_a_restart_through_the_unknown_key_id() {
    let provider = Provider::shared();
    let issuer = provider.new_issuer().await;
    // A refresh period far longer than the test: only the unknown key id can bring the new key.
    let app = trusting(&issuer, 3600).await;
    let before = provider
        .service_token(&issuer.issuer, "plinth-service", AUDIENCE)
        .await;
    assert_eq!(status(&app, &before).await, 200);
    let rotated = provider.rotate(&issuer.name).await;
    let after = provider
        .service_token(&issuer.issuer, "plinth-service", AUDIENCE)
        .await;
    let header = jsonwebtoken::decode_header(&after).unwrap();
    assert_eq!(
        header.kid.as_deref(),
        rotated["rsa_kid"].as_str(),
        "signed with the new key"
    );
    // At most one fetch per ten seconds for unknown key ids: the first fetch was at start.
    until_status(&app, &after, 200, Duration::from_secs(60)).await;
    assert_eq!(
        status(&app, &before).await,
        200,
        "the old key is still published"
    );
}

#[tokio::test]
async fn a_retired_key_stops_working_within_the_refresh_period() {
    let provider = Provider::shared();
    let issuer = provider.new_issuer().await;
    let app = trusting(&issuer, 2).await;
    let old = provider
        .service_token(&issuer.issuer, "plinth-service", AUDIENCE)
        .await;
    assert_eq!(status(&app, &old).await, 200);
    provider.rotate(&issuer.name).await;
    let retired = provider.retire(&issuer.name).await;
    let old_kid = jsonwebtoken::decode_header(&old).unwrap().kid.unwrap();
    assert!(
        !retired["kids"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k == &old_kid),
        "{retired}"
    );
    // Two refresh periods and slack for a loaded machine; it must not keep working.
    let took = until_status(&app, &old, 401, Duration::from_secs(30)).await;
    eprintln!("the retired key was refused after {took:?}");
    let new = provider
        .service_token(&issuer.issuer, "plinth-service", AUDIENCE)
        .await;
    assert_eq!(status(&app, &new).await, 200);
}
