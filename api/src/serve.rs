//! The accept loop: axum's router served by hyper with what `axum::serve` does not offer, a
//! header read timeout and a cap on open connections, so that clients trickling their headers
//! (or opening connections and sending nothing) can neither hold the server's memory and file
//! descriptors forever nor take every slot from ordinary clients.
//!
//! A connection must send its first byte, and each request its headers, within the header
//! read timeout. An idle keep-alive connection between requests is bounded by the cap only.
//!
//! Each connection is one task. HTTP/1.1 only: hyper's header read timeout applies to HTTP/1,
//! and HTTP/2 without TLS (prior knowledge) is not something Plinth's clients speak.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

/// How connections are bounded.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// A request's headers must arrive within this, else the connection is closed.
    pub header_read_timeout: Duration,
    /// Connections open at once; past it a new connection is closed at once.
    pub max_connections: usize,
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets the requests in flight
/// finish (connections close after their current request) and returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    // Each connection holds a receiver: the sender's `closed()` says when the last has ended.
    let (stop, stopping) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was accepted:
                    // pause instead of spinning, and go on.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            metrics::counter!("plinth_http_connections_refused_total").increment(1);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let mut stopping = stopping.clone();
        tokio::spawn(async move {
            // hyper's header read timeout starts with the first byte: a connection that sends
            // nothing would hold its slot forever. Nothing to serve: the slot is given back.
            let mut first = [0u8; 1];
            tokio::select! {
                sent = tokio::time::timeout(limits.header_read_timeout, stream.peek(&mut first)) => {
                    if !matches!(sent, Ok(Ok(n)) if n > 0) {
                        return;
                    }
                }
                _ = stopping.changed() => return,
            }
            let mut builder = Builder::new(TokioExecutor::new()).http1_only();
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout);
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            tokio::pin!(connection);
            let mut draining = false;
            loop {
                tokio::select! {
                    served = connection.as_mut() => {
                        if let Err(e) = served {
                            tracing::debug!(error = %e, "connection ended");
                        }
                        break;
                    }
                    changed = stopping.changed(), if !draining => {
                        draining = true;
                        if changed.is_ok() {
                            connection.as_mut().graceful_shutdown();
                        }
                    }
                }
            }
            drop(slot);
            drop(stopping);
        });
    }
    drop(stopping);
    let _ = stop.send(true);
    stop.closed().await;
}
