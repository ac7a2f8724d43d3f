//! `plinth serve`: migrations, then the API, the projectors and (when configured) the Kafka and
//! NATS relays, side by side in one process. Each can also run alone (`plinth project`,
//! `plinth relay`, `serve --without-projectors --without-relay`) to scale out.

use std::future::Future;

use anyhow::Context as _;
use deadpool_postgres::Pool;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::app;
use crate::settings::Settings;

/// Which of the long-running parts this process runs besides the API.
#[derive(Debug, Clone, Copy, clap::Args)]
pub(crate) struct Parts {
    /// Do not run the projectors here (another process does).
    #[arg(long)]
    pub(crate) without_projectors: bool,
    /// Do not run the Kafka relay here (another process does).
    #[arg(long)]
    pub(crate) without_relay: bool,
    /// Do not run the NATS relay here (another process does).
    #[arg(long)]
    pub(crate) without_nats_relay: bool,
}

pub(crate) async fn serve(mut settings: Settings, dev: bool, parts: Parts) -> anyhow::Result<()> {
    if dev {
        super::dev::prepare(&mut settings).await?;
    }
    settings.validate()?;
    tracing::info!(settings = ?settings, "starting");
    // Bound before connecting: an address in use is a setting to fix, said at once.
    let listen = settings.listen;
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("invalid setting: PLINTH_LISTEN {listen} cannot be bound"))?;
    let state = app::build_state(settings.clone()).await?;
    if dev {
        print_dev_banner(&settings, listener.local_addr()?)?;
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    let pool = state.pool.clone();
    let api_stop = stop_rx.clone();
    tasks.spawn(async move {
        let shutdown = async move {
            tokio::select! {
                () = app::shutdown_signal() => {},
                () = stopped(api_stop) => {},
            }
        };
        (
            "api",
            app::serve_with_shutdown(state, listener, shutdown).await,
        )
    });
    if !parts.without_projectors {
        let (pool, stop) = (pool.clone(), stop_rx.clone());
        let url = settings.database_url.clone().unwrap_or_default();
        tasks.spawn(async move {
            (
                "projectors",
                run_projectors(pool, &url, stopped(stop)).await,
            )
        });
    }
    match (&settings.kafka_brokers, parts.without_relay) {
        (Some(brokers), false) => {
            let mut config = plinth_projections::kafka::RelayConfig::new(
                brokers.clone(),
                settings.kafka_topic_prefix.clone(),
            );
            // Its LISTEN and lock connections with the URL's credentials (settings derived
            // from the pool carry no password).
            config.database_url = settings.database_url.clone();
            let (pool, stop) = (pool.clone(), stop_rx.clone());
            tasks.spawn(async move {
                (
                    "kafka relay",
                    plinth_projections::kafka::run(pool, config, stopped(stop)).await,
                )
            });
        }
        (None, false) => tracing::info!("PLINTH_KAFKA_BROKERS is unset: events are not published"),
        (_, true) => {}
    }
    if let (Some(url), false) = (&settings.nats_url, parts.without_nats_relay) {
        let config = plinth_projections::nats::NatsConfig {
            message: plinth_projections::nats::MessageConfig {
                prefix: settings.nats_prefix.clone(),
                source: settings.nats_source.clone(),
            },
            ordering: settings
                .nats_ordering()
                .context("invalid setting: PLINTH_NATS_ORDERING")?,
            database_url: settings.database_url.clone(),
            ..plinth_projections::nats::NatsConfig::new(url.clone())
        };
        let (pool, stop) = (pool.clone(), stop_rx.clone());
        tasks.spawn(async move {
            (
                "nats relay",
                plinth_projections::nats::run(pool, config, stopped(stop)).await,
            )
        });
    }
    // The first part to end, for whatever reason, ends the process: say which and why, then
    // stop the others and let them finish what they are doing.
    let mut first: Option<anyhow::Result<()>> = None;
    while let Some(ended) = tasks.join_next().await {
        let (name, result) = ended.context("a task panicked")?;
        match &result {
            Ok(()) => tracing::info!(task = name, "stopped"),
            Err(e) => tracing::error!(task = name, error = format!("{e:#}"), "failed"),
        }
        stop_tx.send_replace(true);
        first.get_or_insert(result);
    }
    first.unwrap_or(Ok(()))
}

/// The projectors, woken by LISTEN on a connection made from `database_url` (with its
/// credentials; without it the runner would fall back to polling under password auth).
async fn run_projectors(
    pool: Pool,
    database_url: &str,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let config = plinth_projections::read::RunnerConfig {
        listen: Some(database_url.parse().context("invalid DATABASE_URL")?),
        ..Default::default()
    };
    plinth_projections::read::run_projectors_with(pool, config, shutdown).await
}

/// `plinth project`: only the projectors.
pub(crate) async fn project(database_url: &str) -> anyhow::Result<()> {
    let pool = plinth_commands::pool(database_url, 8)?;
    plinth_commands::migrate::run(&pool).await?;
    run_projectors(pool, database_url, app::shutdown_signal()).await
}

async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

fn print_dev_banner(settings: &Settings, address: std::net::SocketAddr) -> anyhow::Result<()> {
    let secret = settings
        .jwt_secret
        .as_deref()
        .context("dev mode sets a secret")?;
    let token = crate::auth::mint_dev_token(secret, super::dev::DEV_ADMIN, 7 * 24 * 3600)?;
    println!(
        "\nPlinth is running on http://{address} (development mode).\n\n\
         Console, signed in as `{admin}` (the token after # never leaves the browser):\n\n  \
         http://{address}/#token={token}\n\n\
         Platform administrator `{admin}`; a token valid for 7 days:\n\n  export TOKEN={token}\n\n\
         Try:\n  curl -s -H \"Authorization: Bearer $TOKEN\" http://{address}/v1/me\n  \
         curl -s -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' \\\n    \
         -d '{{\"type\":\"CreateTenant\",\"data\":{{\"name\":\"Sarah Corp\"}}}}' http://{address}/v1/commands\n  \
         curl -s -H \"Authorization: Bearer $TOKEN\" http://{address}/v1/tenants\n\n\
         More tokens: PLINTH_JWT_SECRET=$(cat .plinth/dev-secret) cargo run --release -- token --subject alice\n",
        admin = super::dev::DEV_ADMIN,
    );
    Ok(())
}
