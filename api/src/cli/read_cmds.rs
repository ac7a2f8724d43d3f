//! CLI glue for the read side (`plinth replay`).

use anyhow::Context as _;

use plinth_projections::read::{self, Projection, ProjectionSet};

use super::progress;

#[derive(Debug, clap::Args)]
pub(crate) struct ReplayArgs {
    #[arg(long, env = "DATABASE_URL")]
    pub(crate) database_url: String,
    /// Rebuild every projection.
    #[arg(long, conflicts_with = "projection")]
    pub(crate) all: bool,
    /// Rebuild one projection by name (tenants, locations, resource_providers, resources).
    #[arg(long)]
    pub(crate) projection: Option<String>,
    /// Time travel: rebuild every read model as it stood right after this log position, into
    /// the schema named by --into; the live read models stay as they are.
    #[arg(long, requires = "into", conflicts_with_all = ["all", "projection", "until_time"])]
    pub(crate) until_position: Option<i64>,
    /// Time travel to the last event recorded at or before this time (RFC 3339).
    #[arg(long, requires = "into", conflicts_with_all = ["all", "projection"])]
    pub(crate) until_time: Option<chrono::DateTime<chrono::Utc>>,
    /// The new schema a time-travel rebuild fills (it must not exist).
    #[arg(long)]
    pub(crate) into: Option<String>,
}

/// `plinth replay --all | --projection NAME`: rebuild into fresh tables, swap atomically.
/// `plinth replay --until-position N | --until-time T --into SCHEMA`: time travel.
pub(crate) async fn replay(args: ReplayArgs) -> anyhow::Result<()> {
    if let Some(schema) = &args.into {
        return replay_as_of(&args, schema).await;
    }
    let set = match (&args.projection, args.all) {
        (Some(name), _) => {
            let p = Projection::parse(name).with_context(|| {
                format!(
                    "unknown projection `{name}`; known: {}",
                    ProjectionSet::all().names().join(", ")
                )
            })?;
            ProjectionSet::only(p)
        }
        (None, true) => ProjectionSet::all(),
        (None, false) => anyhow::bail!("say which: --all or --projection NAME"),
    };
    let pool = plinth_commands::pool(&args.database_url, 4)?;
    plinth_commands::migrate::run(&pool).await?;
    let bar = progress::rebuild_bar();
    let report = read::rebuild(&pool, set, progress::on_rebuild(&bar)).await?;
    bar.finish_and_clear();
    println!(
        "rebuilt {} from {} events in {:.1}s ({:.0} events/s); checkpoint tx {} position {}",
        report.projections.join(", "),
        report.events,
        report.elapsed.as_secs_f64(),
        report.events_per_second(),
        report.checkpoint.tx,
        report.checkpoint.position,
    );
    Ok(())
}

async fn replay_as_of(args: &ReplayArgs, schema: &str) -> anyhow::Result<()> {
    let pool = plinth_commands::pool(&args.database_url, 4)?;
    plinth_commands::migrate::run(&pool).await?;
    let position = match (args.until_position, args.until_time) {
        (Some(position), _) => position,
        (None, Some(at)) => plinth_commands::log::last_position_recorded_by(&pool.get().await?, at)
            .await?
            .with_context(|| format!("no event was recorded at or before {at}"))?,
        (None, None) => anyhow::bail!("--into needs --until-position N or --until-time T"),
    };
    let bar = progress::rebuild_bar();
    let report = read::rebuild_as_of(&pool, schema, position, progress::on_rebuild(&bar)).await?;
    bar.finish_and_clear();
    println!(
        "read models as of position {position} are in schema {schema} \
         ({} events read in {:.1}s); the live read models are untouched",
        report.events,
        report.elapsed.as_secs_f64(),
    );
    Ok(())
}
