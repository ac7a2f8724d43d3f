//! Issuers that misbehave: a tiny HTTP server of the test's own plays the issuer (discovery and
//! JWKS), in the mode the test sets. Whatever it does, a token of it gets a 401 or 503 problem,
//! never a 5xx and never an answer past the request timeout, and Plinth fetches nothing but
//! the configured issuer's discovery document and the JWKS on the issuer's origin.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

use super::{spawn_trusting_file, tokens::issuers_file, AUDIENCE};
use crate::ops::{sample, Plinth};
use crate::support::{test_db, Reply};

/// What the fake issuer does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Discovery and the fixtures' JWKS, as a provider should.
    Good,
    /// 503 to everything.
    Unavailable,
    /// The JWKS never finishes answering.
    Slow,
    /// The JWKS is megabytes of JSON, streamed without a length.
    Huge,
    /// The JWKS is not JSON.
    Garbage,
    /// The JWKS is a JSON object without keys.
    NoKeys,
    /// The JWKS answers with a redirect to another server.
    Redirect,
    /// Discovery names a `jwks_uri` on another origin.
    ForeignJwksUri,
    /// Discovery names another issuer.
    WrongIssuer,
}

/// A local issuer whose behaviour the test sets, counting what it is asked.
pub struct FakeIssuer {
    pub url: String,
    state: Arc<FakeState>,
}

struct FakeState {
    url: String,
    mode: Mutex<Mode>,
    discovery_fetches: AtomicUsize,
    jwks_fetches: AtomicUsize,
    /// Where redirects and foreign `jwks_uri`s point: a server that must never be asked.
    elsewhere: String,
}

impl FakeIssuer {
    /// Serves on a free port of loopback.
    pub async fn start(mode: Mode, elsewhere: &Elsewhere) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener, mode, elsewhere)
    }

    /// Serves on `listener` (a port chosen before Plinth started).
    pub fn serve(listener: tokio::net::TcpListener, mode: Mode, elsewhere: &Elsewhere) -> Self {
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(FakeState {
            url: url.clone(),
            mode: Mutex::new(mode),
            discovery_fetches: AtomicUsize::new(0),
            jwks_fetches: AtomicUsize::new(0),
            elsewhere: elsewhere.url.clone(),
        });
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, state }
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.state.mode.lock().unwrap() = mode;
    }

    pub fn discovery_fetches(&self) -> usize {
        self.state.discovery_fetches.load(Ordering::SeqCst)
    }

    pub fn jwks_fetches(&self) -> usize {
        self.state.jwks_fetches.load(Ordering::SeqCst)
    }

    /// A token of this issuer for Plinth, signed with the fixtures' ES256 key (`test-es256`,
    /// the one its JWKS publishes in the good mode), naming key `kid`.
    pub fn token(&self, kid: &str) -> String {
        let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
        let pem = std::fs::read(fixtures.join("es256-private.pem")).unwrap();
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(kid.into());
        let claims = super::claims_for(&self.url, "fake-subject");
        let key = jsonwebtoken::EncodingKey::from_ec_pem(&pem).unwrap();
        jsonwebtoken::encode(&header, &claims, &key).unwrap()
    }
}

fn mode(state: &FakeState) -> Mode {
    *state.mode.lock().unwrap()
}

async fn discovery(State(state): State<Arc<FakeState>>) -> Response {
    state.discovery_fetches.fetch_add(1, Ordering::SeqCst);
    let url = &state.url;
    match mode(&state) {
        Mode::Unavailable => StatusCode::SERVICE_UNAVAILABLE.into_response(),
        Mode::ForeignJwksUri => {
            axum::Json(json!({"issuer": url, "jwks_uri": format!("{}/jwks", state.elsewhere)}))
                .into_response()
        }
        Mode::WrongIssuer => axum::Json(
            json!({"issuer": "https://someone-else.test", "jwks_uri": format!("{url}/jwks")}),
        )
        .into_response(),
        _ => axum::Json(json!({"issuer": url, "jwks_uri": format!("{url}/jwks")})).into_response(),
    }
}

async fn jwks(State(state): State<Arc<FakeState>>) -> Response {
    state.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    match mode(&state) {
        Mode::Good | Mode::ForeignJwksUri | Mode::WrongIssuer => {
            let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/jwks.json");
            let text = std::fs::read_to_string(fixture).unwrap();
            ([(header::CONTENT_TYPE, "application/json")], text).into_response()
        }
        Mode::Unavailable => StatusCode::SERVICE_UNAVAILABLE.into_response(),
        Mode::Slow => {
            tokio::time::sleep(Duration::from_secs(600)).await;
            StatusCode::OK.into_response()
        }
        Mode::Huge => {
            // A valid key set (the good key, then 4 MiB of a key no one uses) in 64 KiB chunks
            // without a Content-Length: only counting the bytes stops it.
            let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/jwks.json");
            let good: Value =
                serde_json::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap();
            let head = format!(
                "{{\"keys\": [{}, {{\"kty\": \"pad\", \"x\": \"",
                good["keys"][0]
            );
            let pieces = std::iter::once(head)
                .chain((0..64).map(|_| "a".repeat(64 * 1024)))
                .chain(std::iter::once("\"}]}".to_owned()));
            let stream = futures::stream::iter(pieces.map(Ok::<_, std::io::Error>));
            axum::body::Body::from_stream(stream).into_response()
        }
        Mode::Garbage => "<html>this is not a key set</html>".into_response(),
        Mode::NoKeys => axum::Json(json!({"keys": []})).into_response(),
        Mode::Redirect => (
            StatusCode::FOUND,
            [(header::LOCATION, format!("{}/jwks", state.elsewhere))],
        )
            .into_response(),
    }
}

/// A server nobody configured: it counts every request it gets, which must stay at zero.
pub struct Elsewhere {
    pub url: String,
    hits: Arc<AtomicUsize>,
}

impl Elsewhere {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = hits.clone();
        let app = Router::new().fallback(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            async { axum::Json(json!({"keys": []})) }
        });
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, hits }
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// An issuers-file entry trusting `url` for [`AUDIENCE`].
fn entry(url: &str) -> String {
    format!("[[issuers]]\nissuer = \"{url}\"\naudiences = [\"{AUDIENCE}\"]\nalgorithms = [\"ES256\"]\n\n")
}

fn assert_unavailable(reply: &Reply, case: &str) {
    assert_eq!(reply.status, 503, "{case}: {reply:?}");
    assert_eq!(reply.content_type, "application/problem+json", "{case}");
    assert_eq!(
        reply.body["type"], "urn:plinth:problem:unavailable",
        "{case}"
    );
}

#[tokio::test]
async fn an_issuer_whose_keys_cannot_be_had_gets_a_503_problem_and_no_other_url_is_fetched() {
    let elsewhere = Elsewhere::start().await;
    let good = FakeIssuer::start(Mode::Good, &elsewhere).await;
    let mut bad = Vec::new();
    for mode in [
        Mode::Unavailable,
        Mode::Slow,
        Mode::Huge,
        Mode::Garbage,
        Mode::NoKeys,
        Mode::Redirect,
        Mode::ForeignJwksUri,
        Mode::WrongIssuer,
    ] {
        bad.push((mode, FakeIssuer::start(mode, &elsewhere).await));
    }
    let mut file = entry(&good.url);
    for (_, issuer) in &bad {
        file.push_str(&entry(&issuer.url));
    }
    let file = issuers_file(&file);
    // A fetch may take half the request timeout: a slow issuer's token is answered 503, well
    // before the server's own 408.
    let app = spawn_trusting_file(&file, |s| {
        s.request_timeout_secs = 6;
    })
    .await;
    let accepted = app.get(&good.token("test-es256"), "/v1/me").await;
    assert_eq!(
        accepted.status, 200,
        "the well-behaved issuer: {accepted:?}"
    );
    let answers = futures::future::join_all(bad.iter().map(|(mode, issuer)| {
        let api = app.api();
        async move { (*mode, api.get(&issuer.token("test-es256"), "/v1/me").await) }
    }))
    .await;
    for (mode, reply) in &answers {
        assert_unavailable(reply, &format!("{mode:?}"));
        assert!(
            reply.body["detail"]
                .as_str()
                .unwrap()
                .contains("could not be fetched yet"),
            "{mode:?}: {reply:?}"
        );
    }
    assert_eq!(elsewhere.hits(), 0, "a URL nobody configured was fetched");
    let _ = std::fs::remove_file(file);
}

#[tokio::test]
async fn a_jwks_uri_named_in_the_issuers_file_replaces_discovery() {
    let elsewhere = Elsewhere::start().await;
    // The issuer answers nothing useful; its keys are on a server of another origin.
    let issuer = FakeIssuer::start(Mode::Unavailable, &elsewhere).await;
    let keys = FakeIssuer::start(Mode::Good, &elsewhere).await;
    let file = issuers_file(&format!(
        "{}\njwks_uri = \"{}/jwks\"\n",
        entry(&issuer.url).trim_end(),
        keys.url
    ));
    let app = spawn_trusting_file(&file, |_| {}).await;
    let reply = app.get(&issuer.token("test-es256"), "/v1/me").await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body["issuer"], issuer.url);
    assert_eq!(
        issuer.discovery_fetches(),
        0,
        "the file named the keys: no discovery"
    );
    assert!(keys.jwks_fetches() >= 1);
    assert_eq!(elsewhere.hits(), 0);
    let _ = std::fs::remove_file(file);
}

#[tokio::test]
async fn keys_once_fetched_outlive_a_broken_jwks_and_an_unknown_key_is_then_a_401() {
    let elsewhere = Elsewhere::start().await;
    let issuer = FakeIssuer::start(Mode::Good, &elsewhere).await;
    let file = issuers_file(&entry(&issuer.url));
    let app = spawn_trusting_file(&file, |s| {
        s.oidc_refresh_secs = 1;
    })
    .await;
    let token = issuer.token("test-es256");
    assert_eq!(app.get(&token, "/v1/me").await.status, 200);
    for broken in [Mode::Garbage, Mode::Unavailable, Mode::NoKeys] {
        issuer.set_mode(broken);
        // Two more refreshes (each starts with discovery): at least one whole refresh got the
        // broken answer.
        let seen = issuer.discovery_fetches();
        wait_until(|| issuer.discovery_fetches() >= seen + 2).await;
        let reply = app.get(&token, "/v1/me").await;
        assert_eq!(reply.status, 200, "{broken:?}: {reply:?}");
        let unknown = app.get(&issuer.token("never-published"), "/v1/me").await;
        super::assert_unauthenticated(&unknown, &format!("{broken:?}"));
    }
    let _ = std::fs::remove_file(file);
}

#[tokio::test]
async fn forged_key_ids_cost_the_issuer_at_most_one_fetch_per_interval() {
    let elsewhere = Elsewhere::start().await;
    let issuer = FakeIssuer::start(Mode::Good, &elsewhere).await;
    let file = issuers_file(&entry(&issuer.url));
    // The schedule (300 s) stays out of the way: only unknown key ids cause fetches.
    let app = spawn_trusting_file(&file, |_| {}).await;
    assert_eq!(
        app.get(&issuer.token("test-es256"), "/v1/me").await.status,
        200
    );
    let before = issuer.jwks_fetches();
    let replies = futures::future::join_all((0..40).map(|n| {
        let api = app.api();
        let token = issuer.token(&format!("forged-{n}"));
        async move { api.get(&token, "/v1/me").await }
    }))
    .await;
    for reply in &replies {
        super::assert_unauthenticated(reply, "forged kid");
    }
    let caused = issuer.jwks_fetches() - before;
    assert!(caused <= 1, "40 forged key ids caused {caused} fetches");
    assert_nothing_written_but_one_user(&app).await;
    let _ = std::fs::remove_file(file);
}

async fn assert_nothing_written_but_one_user(app: &crate::support::TestApp) {
    assert_eq!(crate::support::committed_events(&app.db.pool).await, 1);
}

#[tokio::test]
async fn plinth_serve_starts_without_its_issuer_and_accepts_its_tokens_once_its_keys_arrive() {
    let elsewhere = Elsewhere::start().await;
    // The issuer's port is chosen, and left closed, before Plinth starts.
    let port = crate::crash::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let db = test_db().await;
    let server = Plinth::start(
        &db,
        "unused-secret",
        &[
            ("PLINTH_OIDC_ISSUER", url.as_str()),
            ("PLINTH_OIDC_AUDIENCE", AUDIENCE),
            ("PLINTH_OIDC_REFRESH_SECS", "2"),
        ],
    )
    .await;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let issuer = FakeIssuer::serve(listener, Mode::Unavailable, &elsewhere);
    let token = issuer.token("test-es256");
    let http = reqwest::Client::new();
    let me = || async {
        let response = http
            .get(format!("{}/v1/me", server.base))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let retry_after = response.headers().get("retry-after").cloned();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        (status, retry_after, body)
    };
    let (status, retry_after, body) = me().await;
    assert_eq!(status, 503, "{body}");
    assert!(retry_after.is_some(), "a 503 says when to come back");
    assert_eq!(body["type"], "urn:plinth:problem:unavailable");
    issuer.set_mode(Mode::Good);
    let mut last = (0, Value::Null);
    for _ in 0..300 {
        let (status, _, body) = me().await;
        last = (status, body);
        if status == 200 {
            break;
        }
        assert_eq!(
            status, 503,
            "only 503 while the keys are on their way: {:?}",
            last.1
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(last.0, 200, "the keys never arrived: {:?}", last.1);
    let (_, metrics) = server.get("/metrics").await;
    assert_eq!(
        sample(&metrics, "plinth_oidc_keys", &[("issuer", &url)]),
        Some(1.0),
        "{metrics}"
    );
    assert!(
        sample(
            &metrics,
            "plinth_oidc_key_fetches_total",
            &[("issuer", &url), ("outcome", "failed")]
        )
        .unwrap_or(0.0)
            >= 1.0
    );
    server.stop().await;
    assert_eq!(elsewhere.hits(), 0);
}

/// Waits (up to a minute) until `ready` holds.
async fn wait_until(ready: impl Fn() -> bool) {
    for _ in 0..600 {
        if ready() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("waited a minute in vain");
}
