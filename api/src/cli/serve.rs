//! `plinth serve`: migrations, then the API (and, beside it, the projectors and the relay).

use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::app;
use crate::settings::Settings;

pub(crate) async fn serve(mut settings: Settings, dev: bool) -> anyhow::Result<()> {
    if dev {
        super::dev::prepare(&mut settings).await?;
    }
    tracing::info!(settings = ?settings, "starting");
    let listen = settings.listen;
    let state = app::build_state(settings.clone()).await?;
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("failed to bind {listen}"))?;
    if dev {
        print_dev_banner(&settings, listener.local_addr()?)?;
    }
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(async move { ("api", app::serve_until_shutdown(state, listener).await) });
    // Whichever task ends first ends the process; say which and why.
    if let Some(ended) = tasks.join_next().await {
        let (name, result) = ended?;
        match &result {
            Ok(()) => tracing::info!(task = name, "stopped"),
            Err(e) => tracing::error!(task = name, error = %e, "failed"),
        }
        return result;
    }
    Ok(())
}

fn print_dev_banner(settings: &Settings, address: std::net::SocketAddr) -> anyhow::Result<()> {
    let secret = settings
        .jwt_secret
        .as_deref()
        .context("dev mode sets a secret")?;
    let token = crate::auth::mint_dev_token(secret, super::dev::DEV_ADMIN, 7 * 24 * 3600)?;
    println!(
        "\nPlinth is running on http://{address} (development mode).\n\
         Platform administrator `{admin}`; a token valid for 7 days:\n\n  export TOKEN={token}\n\n\
         Try:\n  curl -s -H \"Authorization: Bearer $TOKEN\" http://{address}/v1/me\n  \
         curl -s -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' \\\n    \
         -d '{{\"type\":\"CreateTenant\",\"data\":{{\"name\":\"Sarah Corp\"}}}}' http://{address}/v1/commands\n\n\
         More tokens: PLINTH_JWT_SECRET=$(cat .plinth/dev-secret) plinth token --subject alice\n",
        admin = super::dev::DEV_ADMIN,
    );
    Ok(())
}
