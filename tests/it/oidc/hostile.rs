//! Tokens that must not get in: each a 401 problem, nothing recorded. The target trusts the
//! shared issuer and also holds a development secret, so that a token of the issuer never
//! falls back to the secret.

use base64::Engine as _;
use serde_json::{json, Value};

use super::bad_issuer::Elsewhere;
use super::{
    assert_nothing_written, assert_unauthenticated, claims_for, spawn_trusting, Provider, AUDIENCE,
    MAIN, OTHER_AUDIENCE,
};
use crate::support::{TestApp, SECRET};

async fn target() -> TestApp {
    spawn_trusting(|s| s.jwt_secret = Some(SECRET.to_owned())).await
}

fn b64(value: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}

fn without(mut claims: Value, name: &str) -> Value {
    claims.as_object_mut().unwrap().remove(name);
    claims
}

fn with(mut claims: Value, name: &str, value: Value) -> Value {
    claims[name] = value;
    claims
}

/// The shared issuer's newest RSA key, as its JWKS publishes it.
async fn published_rsa_jwk(provider: &Provider) -> Value {
    let jwks: Value = reqwest::get(format!("{}/jwks", provider.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kids = provider.kids(MAIN).await;
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kids[0])
        .cloned()
        .unwrap()
}

#[tokio::test]
async fn tokens_for_another_audience_or_issuer_are_refused() {
    let provider = Provider::shared();
    let app = target().await;
    let other_issuer = provider.new_issuer().await;
    let claims = claims_for(&provider.url, "mallory");
    let cases = [
        (
            "aud of another service",
            provider
                .service_token(&provider.url, "plinth-service", OTHER_AUDIENCE)
                .await,
        ),
        (
            "no aud",
            provider
                .sign(MAIN, "rsa", json!({}), without(claims.clone(), "aud"))
                .await,
        ),
        (
            "a trusted issuer's token from an issuer Plinth does not trust",
            provider
                .service_token(&other_issuer.issuer, "plinth-service", AUDIENCE)
                .await,
        ),
        (
            "iss with a trailing slash (not exact)",
            provider
                .sign(
                    MAIN,
                    "rsa",
                    json!({}),
                    with(claims.clone(), "iss", json!(format!("{}/", provider.url))),
                )
                .await,
        ),
        (
            "no iss",
            provider
                .sign(MAIN, "rsa", json!({}), without(claims.clone(), "iss"))
                .await,
        ),
        (
            "signed by another issuer's key, naming the trusted one",
            provider
                .sign(&other_issuer.name, "rsa", json!({}), claims.clone())
                .await,
        ),
    ];
    for (case, token) in cases {
        assert_unauthenticated(&app.get(&token, "/v1/me").await, case);
    }
    assert_nothing_written(&app).await;
}

#[tokio::test]
async fn forged_algorithms_and_keys_are_refused() {
    let provider = Provider::shared();
    let app = target().await;
    let claims = claims_for(&provider.url, "mallory");
    let kids = provider.kids(MAIN).await;
    let rsa_kid = kids.iter().find(|k| k.starts_with("rsa-")).unwrap().clone();
    let alg_none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&claims)
    );
    // The issuer's public key is public: as an HMAC secret it would let anyone sign.
    let pem = provider.rsa_public_pem(MAIN).await;
    let hs256 = |secret: &[u8]| {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some(rsa_kid.clone());
        let key = jsonwebtoken::EncodingKey::from_secret(secret);
        jsonwebtoken::encode(&header, &claims, &key).unwrap()
    };
    let cases = [
        ("alg none", alg_none),
        (
            "HS256 signed with the issuer's public key",
            hs256(pem.as_bytes()),
        ),
        (
            "HS256 signed with the development secret",
            hs256(SECRET.as_bytes()),
        ),
        (
            "a key id the issuer does not publish",
            provider
                .sign(MAIN, "rsa", json!({"kid": "not-published"}), claims.clone())
                .await,
        ),
        (
            "an ES256 signature under the RSA key's id",
            provider
                .sign(MAIN, "ec", json!({"kid": rsa_kid}), claims.clone())
                .await,
        ),
    ];
    for (case, token) in cases {
        assert_unauthenticated(&app.get(&token, "/v1/me").await, case);
    }
    assert_nothing_written(&app).await;
}

#[tokio::test]
async fn a_token_naming_its_own_key_is_refused_and_nothing_it_names_is_fetched() {
    let provider = Provider::shared();
    let app = target().await;
    let elsewhere = Elsewhere::start().await;
    let claims = claims_for(&provider.url, "mallory");
    let jwk = published_rsa_jwk(&provider).await;
    let headers = [
        ("jku", json!({"jku": format!("{}/jwks", elsewhere.url)})),
        ("x5u", json!({"x5u": format!("{}/cert.pem", elsewhere.url)})),
        ("embedded jwk", json!({"jwk": jwk})),
        ("x5c", json!({"x5c": ["MIIBszCCAVmgAwIBAgIUJ"]})),
    ];
    for (case, header) in headers {
        // Signed by the issuer's real key: only the header's extra field is wrong.
        let token = provider.sign(MAIN, "rsa", header, claims.clone()).await;
        assert_unauthenticated(&app.get(&token, "/v1/me").await, case);
    }
    assert_eq!(elsewhere.hits(), 0);
    assert_nothing_written(&app).await;
}

#[tokio::test]
async fn lifetimes_are_checked_within_a_small_leeway() {
    let provider = Provider::shared();
    let app = target().await;
    let now = chrono::Utc::now().timestamp();
    let claims = claims_for(&provider.url, "leeway-user");
    let sign = |claims: Value| provider.sign(MAIN, "rsa", json!({}), claims);
    let cases = [
        (
            "expired two minutes ago",
            sign(with(claims.clone(), "exp", json!(now - 120))).await,
        ),
        (
            "valid only in two minutes",
            sign(with(claims.clone(), "nbf", json!(now + 120))).await,
        ),
        ("no exp", sign(without(claims.clone(), "exp")).await),
        (
            "exp not a number",
            sign(with(claims.clone(), "exp", json!("tomorrow"))).await,
        ),
    ];
    for (case, token) in cases {
        assert_unauthenticated(&app.get(&token, "/v1/me").await, case);
    }
    assert_nothing_written(&app).await;
    // A few seconds of clock skew either way are tolerated.
    let skewed = with(with(claims, "exp", json!(now - 5)), "nbf", json!(now + 5));
    let reply = app.get(&sign(skewed).await, "/v1/me").await;
    assert_eq!(reply.status, 200, "{reply:?}");
}

#[tokio::test]
async fn oversized_malformed_and_subjectless_tokens_are_refused() {
    let provider = Provider::shared();
    let app = target().await;
    let claims = claims_for(&provider.url, "mallory");
    let oversized = provider
        .sign(
            MAIN,
            "rsa",
            json!({}),
            with(claims.clone(), "padding", json!("x".repeat(20_000))),
        )
        .await;
    let header = b64(&json!({"alg": "RS256", "kid": "k"}));
    let cases = [
        ("oversized (20 KB, validly signed)", oversized),
        (
            "no sub",
            provider
                .sign(MAIN, "rsa", json!({}), without(claims.clone(), "sub"))
                .await,
        ),
        (
            "blank sub",
            provider
                .sign(
                    MAIN,
                    "rsa",
                    json!({}),
                    with(claims.clone(), "sub", json!(" ")),
                )
                .await,
        ),
        (
            "sub not a string",
            provider
                .sign(
                    MAIN,
                    "rsa",
                    json!({}),
                    with(claims.clone(), "sub", json!(7)),
                )
                .await,
        ),
        ("not a JWT", "not-a-jwt".to_owned()),
        ("empty", String::new()),
        ("header without alg", format!("e30.{}.c2ln", b64(&claims))),
        (
            "header not JSON",
            format!("bm90IGpzb24.{}.c2ln", b64(&claims)),
        ),
        ("payload not base64url", format!("{header}.!!!.c2ln")),
        (
            "payload not an object",
            format!("{header}.{}.c2ln", b64(&json!([1, 2]))),
        ),
        (
            "iss not a string",
            format!(
                "{header}.{}.c2ln",
                b64(&with(claims.clone(), "iss", json!(42)))
            ),
        ),
        ("four parts", format!("{header}.{}.c2ln.c2ln", b64(&claims))),
        (
            "a signature that is not one",
            format!("{header}.{}.c2ln", b64(&claims)),
        ),
    ];
    for (case, token) in cases {
        assert_unauthenticated(&app.get(&token, "/v1/me").await, case);
    }
    assert_nothing_written(&app).await;
}
