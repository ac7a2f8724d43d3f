//! Tokens from real OpenID issuers: the provider `scripts/oidc up` runs (npm oidc-provider,
//! shared by every test; URL from `PLINTH_TEST_OIDC_URL`, else the `.oidc/url` file the script
//! writes), and tiny issuers of the test's own making that misbehave on purpose.
//!
//! - `tokens`: what the provider issues gets in, as the right identity.
//! - `hostile`: what must not get in, and is refused with a 401 problem.
//! - `bad_issuer`: an issuer's endpoints down, slow, huge or garbage: 401 or 503, never a 5xx,
//!   never a fetch of a URL nobody configured; `plinth serve` starts without its issuer.
//! - `rotation`: keys rotated at the provider, seen without a restart.
//!
//! Tests that rotate keys do it on an issuer of their own (`Provider::new_issuer`): the shared
//! issuer's keys never change while other tests use them.

mod bad_issuer;
mod hostile;
mod principals;
mod rotation;
mod tokens;

use serde_json::{json, Value};

use crate::support::{committed_events, spawn_app_on, test_db, Reply, TestApp};

/// The audience Plinth's tokens are issued for in these tests (a resource indicator).
pub const AUDIENCE: &str = "https://plinth.test";
/// Another service's audience, at the same provider.
pub const OTHER_AUDIENCE: &str = "https://other-service.test";
/// The shared issuer's name on the provider's test routes.
pub const MAIN: &str = "main";

/// The provider's URL, which is also its shared issuer.
pub fn provider_url() -> String {
    if let Ok(url) = std::env::var("PLINTH_TEST_OIDC_URL") {
        return url;
    }
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../.oidc/url");
    std::fs::read_to_string(file)
        .map(|url| url.trim().to_owned())
        .unwrap_or_else(|_| {
            panic!("no OpenID provider: run `scripts/oidc up` (or set PLINTH_TEST_OIDC_URL)")
        })
}

/// The provider `scripts/oidc` runs, over HTTP.
#[derive(Clone)]
pub struct Provider {
    pub url: String,
    http: reqwest::Client,
}

/// An issuer of a test's own at the provider.
#[derive(Debug, Clone)]
pub struct TestIssuer {
    pub name: String,
    pub issuer: String,
}

impl Provider {
    pub fn shared() -> Self {
        Self {
            url: provider_url(),
            http: reqwest::Client::new(),
        }
    }

    /// A new issuer with keys of its own (`/issuers/<name>`).
    pub async fn new_issuer(&self) -> TestIssuer {
        let body = self.test_route("POST", "/__test/issuers", None).await;
        TestIssuer {
            name: body["name"].as_str().unwrap().to_owned(),
            issuer: body["issuer"].as_str().unwrap().to_owned(),
        }
    }

    /// A token from `issuer`'s token endpoint: client credentials of `client` for `resource`.
    pub async fn service_token(&self, issuer: &str, client: &str, resource: &str) -> String {
        self.token(
            issuer,
            client,
            &[("grant_type", "client_credentials"), ("resource", resource)],
        )
        .await
    }

    /// A person's token from `issuer`'s token endpoint (the password grant, client `plinth-cli`).
    pub async fn person_token(&self, issuer: &str, username: &str, resource: &str) -> String {
        let password = format!("{username}-password");
        self.token(
            issuer,
            "plinth-cli",
            &[
                ("grant_type", "password"),
                ("username", username),
                ("password", &password),
                ("resource", resource),
            ],
        )
        .await
    }

    async fn token(&self, issuer: &str, client: &str, form: &[(&str, &str)]) -> String {
        let response = self
            .http
            .post(format!("{issuer}/token"))
            .basic_auth(client, Some("secret"))
            .form(form)
            .send()
            .await
            .expect("the provider answers");
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, 200, "token endpoint of {issuer}: {body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// The key ids `issuer` publishes now, newest first.
    pub async fn kids(&self, name: &str) -> Vec<String> {
        let body = self
            .test_route("GET", &format!("/__test/issuers/{name}/keys"), None)
            .await;
        serde_json::from_value(body["kids"].clone()).unwrap()
    }

    /// A new signing key first; the old ones stay published.
    pub async fn rotate(&self, name: &str) -> Value {
        self.test_route("POST", &format!("/__test/issuers/{name}/rotate"), None)
            .await
    }

    /// Only the newest keys stay published.
    pub async fn retire(&self, name: &str) -> Value {
        self.test_route("POST", &format!("/__test/issuers/{name}/retire"), None)
            .await
    }

    /// `claims` signed with `name`'s newest `key` ("rsa" or "ec"), header fields added.
    pub async fn sign(&self, name: &str, key: &str, header: Value, claims: Value) -> String {
        let body = json!({"key": key, "header": header, "claims": claims});
        let answer = self
            .test_route("POST", &format!("/__test/issuers/{name}/sign"), Some(body))
            .await;
        answer["token"].as_str().unwrap().to_owned()
    }

    /// `name`'s newest RSA public key, PEM.
    pub async fn rsa_public_pem(&self, name: &str) -> String {
        let url = format!("{}/__test/issuers/{name}/rsa-public-key.pem", self.url);
        self.http
            .get(url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    async fn test_route(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.url);
        let request = match method {
            "POST" => self.http.post(url).json(&body.unwrap_or(json!({}))),
            _ => self.http.get(url),
        };
        let response = request.send().await.expect("the provider answers");
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert!(status.is_success(), "{method} {path}: {status} {body}");
        body
    }
}

/// Claims as the shared issuer's tokens for Plinth have them, valid for ten minutes.
pub fn claims_for(issuer: &str, subject: &str) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({"iss": issuer, "sub": subject, "aud": AUDIENCE, "iat": now, "exp": now + 600})
}

/// A running Plinth that trusts the shared issuer for [`AUDIENCE`] (no development secret,
/// no JWKS file), changed by `configure`.
pub async fn spawn_trusting(
    configure: impl FnOnce(&mut plinth_api::settings::Settings),
) -> TestApp {
    let db = test_db().await;
    let mut settings = plinth_api::settings::Settings::for_database(&db.url, "unused", &[]);
    settings.jwt_secret = None;
    settings.oidc_issuer = Some(provider_url());
    settings.oidc_audience = vec![AUDIENCE.to_owned()];
    configure(&mut settings);
    spawn_app_on(db, settings).await
}

/// A running Plinth that trusts the issuers of `file` (and nothing else), changed by
/// `configure`.
pub async fn spawn_trusting_file(
    file: &std::path::Path,
    configure: impl FnOnce(&mut plinth_api::settings::Settings),
) -> TestApp {
    spawn_trusting(|s| {
        s.oidc_issuer = None;
        s.oidc_audience = Vec::new();
        s.oidc_issuers_file = Some(file.to_owned());
        configure(s);
    })
    .await
}

/// A 401 problem.
pub fn assert_unauthenticated(reply: &Reply, case: &str) {
    assert_eq!(reply.status, 401, "{case}: {reply:?}");
    assert_eq!(reply.content_type, "application/problem+json", "{case}");
    assert_eq!(
        reply.body["type"], "urn:plinth:problem:unauthenticated",
        "{case}: {reply:?}"
    );
}

/// No user recorded, nothing else written.
pub async fn assert_nothing_written(app: &TestApp) {
    assert_eq!(committed_events(&app.db.pool).await, 0);
}
