//! The API under test, in this process but on its own tokio runtime whose threads are named
//! [`SERVER_THREADS`]: their CPU time is the server's alone, apart from the benchmark's HTTP
//! client (which runs on the caller's runtime).

use std::net::SocketAddr;

use anyhow::Context as _;
use tokio::runtime::Runtime;
use tokio::sync::oneshot;

use crate::app;
use crate::settings::Settings;

/// The name (and /proc comm) of every thread of the server's runtime.
pub(crate) const SERVER_THREADS: &str = "plinth-srv";

#[derive(Debug)]
pub(crate) struct Server {
    pub(crate) address: SocketAddr,
    runtime: Option<Runtime>,
    stop_projectors: Option<oneshot::Sender<()>>,
}

impl Server {
    /// Starts the API (with the projectors too when `projectors`, as `plinth serve` runs them)
    /// against `settings`' database.
    pub(crate) async fn start(settings: Settings, projectors: bool) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .thread_name(SERVER_THREADS)
            .enable_all()
            .build()?;
        let url = settings.database_url.clone().context("no database URL")?;
        // Everything the server spawns (writers, connections, projectors) runs on its runtime.
        let running = runtime.spawn(app::spawn(settings)).await??;
        let mut stop_projectors = None;
        if projectors {
            let (stop, stopped) = oneshot::channel::<()>();
            let config = plinth_projections::read::RunnerConfig {
                listen: Some(url.parse().context("invalid database URL")?),
                ..Default::default()
            };
            let pool = running.state.pool.clone();
            runtime.spawn(async move {
                let shutdown = async move {
                    let _ = stopped.await;
                };
                if let Err(e) =
                    plinth_projections::read::run_projectors_with(pool, config, shutdown).await
                {
                    tracing::error!(error = %e, "projectors stopped");
                }
            });
            stop_projectors = Some(stop);
        }
        Ok(Self {
            address: running.address,
            runtime: Some(runtime),
            stop_projectors,
        })
    }

    pub(crate) fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop_projectors.take() {
            let _ = stop.send(());
        }
        // Dropping a runtime blocks, which is not allowed inside the caller's runtime.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
