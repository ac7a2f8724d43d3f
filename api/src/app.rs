//! Building and running the HTTP application. Lives in the library so tests and benchmarks
//! start exactly what `plinth serve` starts.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::DefaultBodyLimit;
use axum::http::{header, StatusCode};
use axum::response::Response;
use axum::Router;
use tokio::net::TcpListener;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;

use plinth_commands::{CommandBus, EventStore};

use crate::auth::verify::KeyPolicy;
use crate::auth::{Auth, KnownUsers, Verifier};
use crate::error::problem;
use crate::request_context;
use crate::routes;
use crate::settings::Settings;
use crate::state::{AppParts, AppState};

/// Request bodies above this are refused with 413.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// Connects, migrates and assembles the state. Fails fast if PostgreSQL is unreachable.
pub async fn build_state(settings: Settings) -> anyhow::Result<AppState> {
    // Installed before anything records a metric: earlier recordings would go nowhere.
    crate::telemetry::prometheus();
    let url = settings
        .database_url
        .clone()
        .context("DATABASE_URL is not set")?;
    let pool = plinth_commands::pool(&url, settings.db_pool_size)?;
    let applied = plinth_commands::migrate::run(&pool).await?;
    if applied > 0 {
        tracing::info!(applied, "applied migrations");
    }
    let verifier = verifier(&settings)?;
    let settings = Arc::new(settings);
    let store = EventStore::new(pool.clone());
    let replicas = crate::replicas::Replicas::start(
        &settings
            .read_database_urls
            .iter()
            .map(|u| u.trim().to_owned())
            .filter(|u| !u.is_empty())
            .collect::<Vec<_>>(),
        settings.db_pool_size,
        pool.clone(),
        Duration::from_millis(settings.read_replica_max_lag_ms),
        Duration::from_millis(settings.read_replica_wait_ms),
    )?;
    Ok(AppState::new(AppParts {
        bus: CommandBus::start_with(pool.clone(), settings.writers, settings.write_cache_states),
        auth: Auth {
            verifier,
            known_users: KnownUsers::default(),
            store: store.clone(),
            settings: settings.clone(),
            limits: crate::limits::RateLimits::new(settings.rate_limit),
        },
        store,
        settings,
        read_progress: plinth_projections::read::ReadProgress::start(pool.clone()),
        replicas,
        pool,
    }))
}

/// The token verifier of `settings`: the development secret, the JWKS file and the OpenID
/// issuers, whose keys start being fetched now (an issuer that does not answer does not stop
/// the server).
fn verifier(settings: &Settings) -> anyhow::Result<Verifier> {
    let issuers = crate::auth::issuers::configured(settings)
        .map_err(|errors| anyhow::anyhow!(errors.join("; ")))?;
    // A fetch ends well within the request that may wait for it.
    let fetch_timeout =
        Duration::from_secs(5).min(Duration::from_secs(settings.request_timeout_secs) / 2);
    Verifier::new(
        settings.jwt_secret.as_deref(),
        settings.jwks_file.as_deref(),
        issuers,
        Some(KeyPolicy {
            refresh: Duration::from_secs(settings.oidc_refresh_secs),
            fetch_timeout,
        }),
    )
}

/// Every route, each with its OpenAPI operation (`#[utoipa::path]` on the handler): `routes!`
/// adds the route to the router and the operation to the document at once, so that
/// [`router`] and `/openapi.json` are built from this one list.
pub(crate) fn documented_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(routes::openapi::ApiDoc::openapi())
        .routes(utoipa_axum::routes!(routes::commands::submit))
        .routes(utoipa_axum::routes!(routes::me::me))
        .merge(routes::queries::router())
        .routes(utoipa_axum::routes!(routes::ops::healthz))
        .routes(utoipa_axum::routes!(routes::ops::readyz))
        .routes(utoipa_axum::routes!(routes::ops::metrics))
        .routes(utoipa_axum::routes!(routes::openapi::openapi))
}

/// The router with every route and layer.
pub fn router(state: AppState) -> Router {
    let timeout = Duration::from_secs(state.settings.request_timeout_secs);
    let (routes, _document) = documented_routes().split_for_parts();
    routes
        .route_layer(axum::middleware::from_fn(
            routes::query_names::reject_unknown,
        ))
        // Outermost of the route layers: a read refused by the query-name check records no
        // replica, so it is answered as it is.
        .route_layer(axum::middleware::from_fn(crate::replicas::route::fail_over))
        // After the route layer: the console's pages are not API operations (routes/console.rs).
        .merge(routes::console::router())
        .fallback(|| async { problem(StatusCode::NOT_FOUND, "not-found", "no such route") })
        .layer(axum::middleware::map_response(problem_for_plain_errors))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        // Outside the timeout and the problem mapping: counts the status the client got.
        .layer(axum::middleware::from_fn(request_context::count_request))
        // The last layer added is the outermost: a request gets its id (the client's sane
        // `x-request-id`, or a new UUID) before its span opens, and the answer carries it back.
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http().make_span_with(request_context::request_span))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(axum::middleware::from_fn(
            request_context::drop_insane_request_id,
        ))
        .with_state(state)
}

/// Errors produced by axum itself (413 from the body limit, 405, 408 from the timeout) come
/// as plain text; clients get problem+json for every error.
async fn problem_for_plain_errors(response: Response) -> Response {
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response;
    }
    let detail = match axum::body::to_bytes(response.into_body(), 4096).await {
        Ok(bytes) if !bytes.is_empty() => String::from_utf8_lossy(&bytes).into_owned(),
        _ => status.canonical_reason().unwrap_or("error").to_owned(),
    };
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "too-large",
        StatusCode::METHOD_NOT_ALLOWED => "method-not-allowed",
        StatusCode::REQUEST_TIMEOUT => "timeout",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported-media-type",
        _ if status.is_server_error() => "internal",
        _ => "bad-request",
    };
    problem(status, code, &detail)
}

/// A running server (for tests and benchmarks).
#[derive(Debug)]
pub struct RunningApp {
    pub address: std::net::SocketAddr,
    pub state: AppState,
    pub handle: tokio::task::JoinHandle<()>,
}

/// Binds `settings.listen` (port 0 picks a free one) and serves in the background.
pub async fn spawn(settings: Settings) -> anyhow::Result<RunningApp> {
    settings.validate()?;
    let listen = settings.listen;
    let state = build_state(settings).await?;
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("failed to bind {listen}"))?;
    let address = listener.local_addr()?;
    let app = router(state.clone());
    let limits = connection_limits(&state.settings);
    let handle = tokio::spawn(crate::serve::serve(
        listener,
        app,
        limits,
        std::future::pending(),
    ));
    Ok(RunningApp {
        address,
        state,
        handle,
    })
}

/// Serves until `shutdown` resolves, then drains in-flight requests.
pub async fn serve_with_shutdown(
    state: AppState,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let limits = connection_limits(&state.settings);
    crate::serve::serve(listener, router(state), limits, shutdown).await;
    Ok(())
}

fn connection_limits(settings: &Settings) -> crate::serve::ConnectionLimits {
    crate::serve::ConnectionLimits {
        header_read_timeout: Duration::from_secs(settings.header_read_timeout_secs),
        max_connections: settings.max_connections,
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}
