//! Which database answers a read, and the failover of a read that failed on a replica.
//!
//! [`fail_over`] wraps every GET: it leaves a [`ServedBy`] slot in the request, which
//! [`read_connection`] fills when it hands out a replica's connection. If the answer is then a
//! 5xx (the replica died mid-query, or cancelled it for a conflict with recovery), the replica
//! leaves rotation and the same request runs again on the primary: a replica's failure is never
//! the client's 5xx. A GET has no body and changes nothing, so running it twice is harmless.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use tokio::time::Instant;

use super::Replica;
use crate::error::ApiError;
use crate::state::AppState;

/// The response header naming the database that answered a read: `primary` or `replica-N`
/// (N as in `PLINTH_READ_DATABASE_URLS`, from 1), for operators and tests to see the routing.
pub(crate) const READ_FROM: &str = "plinth-read-from";

/// The database a read took its connection from.
#[derive(Debug, Clone)]
enum Target {
    Primary,
    Replica(Arc<Replica>),
}

/// Which database served the request, once a read took a connection; `primary_only` on the
/// failover's second run.
#[derive(Debug, Clone, Default)]
pub(crate) struct ServedBy {
    target: Arc<Mutex<Option<Target>>>,
    primary_only: bool,
}

impl ServedBy {
    fn record(&self, target: Target) {
        *self.target.lock().expect("not poisoned") = Some(target);
    }

    fn target(&self) -> Option<Target> {
        self.target.lock().expect("not poisoned").clone()
    }
}

/// Names the database that answered, when a read took a connection.
fn mark(mut response: Response, target: Option<Target>) -> Response {
    let value = match target {
        None => return response,
        Some(Target::Primary) => HeaderValue::from_static("primary"),
        Some(Target::Replica(r)) => {
            HeaderValue::from_str(&format!("replica-{}", r.number)).expect("ASCII digits")
        }
    };
    response.headers_mut().insert(READ_FROM, value);
    response
}

/// Runs a GET again on the primary when it failed with a 5xx on a replica.
pub(crate) async fn fail_over(request: Request, next: Next) -> Response {
    if request.method() != Method::GET {
        return next.run(request).await;
    }
    let served_by = ServedBy::default();
    let (mut parts, body) = request.into_parts();
    parts.extensions.insert(served_by.clone());
    let again = parts.clone();
    let response = next.clone().run(Request::from_parts(parts, body)).await;
    let target = served_by.target();
    let replica = match &target {
        Some(Target::Replica(replica)) if response.status().is_server_error() => replica.clone(),
        _ => return mark(response, target),
    };
    replica.suspend("a read failed on it");
    metrics::counter!(
        "plinth_read_replica_fallbacks_total",
        "replica" => replica.number.to_string(),
        "reason" => "failed"
    )
    .increment(1);
    let primary = ServedBy {
        target: Arc::default(),
        primary_only: true,
    };
    let mut again = Request::from_parts(again, Body::empty());
    again.extensions_mut().insert(primary.clone());
    let response = next.run(again).await;
    mark(response, primary.target())
}

/// A connection for a read, once the database it comes from covers `min_position`: a replica
/// in rotation that covers it within the replicas' wait, else the primary within the rest of
/// `wait`. Only requests that passed [`fail_over`] go to replicas (others could not fail over).
pub(crate) async fn read_connection(
    state: &AppState,
    parts: &Parts,
    min_position: Option<i64>,
    wait: Duration,
) -> Result<deadpool_postgres::Client, ApiError> {
    let deadline = Instant::now() + wait;
    let served_by = parts
        .extensions
        .get::<ServedBy>()
        .filter(|s| !s.primary_only);
    if let Some((served_by, replica)) = served_by.zip(state.replicas.pick()) {
        let label = replica.number.to_string();
        let covered = match min_position {
            None => true,
            Some(position) => replica
                .progress
                .wait_for(position, state.replicas.wait.min(wait))
                .await
                .is_ok(),
        };
        if covered {
            match replica.pool.get().await {
                Ok(client) => {
                    served_by.record(Target::Replica(replica.clone()));
                    metrics::counter!("plinth_read_database_total", "database" => format!("replica-{label}"))
                        .increment(1);
                    return Ok(client);
                }
                Err(e) => {
                    tracing::debug!(error = %e, "no connection to the replica");
                    replica.suspend("no connection");
                    metrics::counter!("plinth_read_replica_fallbacks_total", "replica" => label, "reason" => "failed")
                        .increment(1);
                }
            }
        } else {
            metrics::counter!("plinth_read_replica_fallbacks_total", "replica" => label, "reason" => "behind")
                .increment(1);
        }
    }
    if let Some(position) = min_position {
        let left = deadline.saturating_duration_since(Instant::now());
        state
            .read_progress
            .wait_for(position, left)
            .await
            .map_err(|e| ApiError::Unavailable {
                detail: format!("{e}; retry shortly"),
                retry_after_secs: 1,
            })?;
    }
    let client = state.pool.get().await.map_err(|e| ApiError::Unavailable {
        detail: format!("the database is unavailable: {e}"),
        retry_after_secs: 1,
    })?;
    if let Some(served_by) = parts.extensions.get::<ServedBy>() {
        served_by.record(Target::Primary);
    }
    metrics::counter!("plinth_read_database_total", "database" => "primary").increment(1);
    Ok(client)
}
