//! `plinth seed`: a realistic platform (several roots, deep and wide trees, users with grants,
//! shared locations and resource providers, providers, metadata, updates and deletions) written
//! through the real command path, for benchmarks and for trying Plinth by hand. The platform
//! is drawn by `crate::seed`; this module guards the database, shows progress, brings the read
//! models up to date and reports.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use deadpool_postgres::Pool;

use plinth_commands::{CommandBus, EventStore};
use plinth_projections::read::{self, ProjectionSet, RunnerConfig};

use super::progress;

use crate::seed::blueprint::{self, Blueprint, Shape};
use crate::seed::run::{Seeder, Written};

#[derive(Debug, clap::Args)]
pub(crate) struct SeedArgs {
    #[arg(long, env = "DATABASE_URL")]
    pub(crate) database_url: String,
    /// Tenants in the platform.
    #[arg(long, default_value_t = 1_000)]
    pub(crate) tenants: usize,
    /// Events to append, at least (the structure alone takes about two per tenant; metadata
    /// and updates make up the rest).
    #[arg(long, default_value_t = 100_000)]
    pub(crate) events: u64,
    /// The same seed draws the same platform (names, tree, grants, sharing); ids and times
    /// differ, as the write side picks them.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// Seed into a database that already holds events: the new roots go beside the existing
    /// ones.
    #[arg(long)]
    pub(crate) append: bool,
    /// Group-commit writer tasks, as `plinth serve`'s.
    #[arg(long, env = "PLINTH_WRITERS", default_value_t = 2)]
    pub(crate) writers: usize,
}

/// A refusal that is the caller's to fix (exit code 2, like a usage error), not a failure.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Refused(pub(crate) String);

pub(crate) async fn seed(args: SeedArgs) -> anyhow::Result<()> {
    let pool = plinth_commands::pool(&args.database_url, 16)?;
    let holds_events = holds_events(&pool).await?;
    if holds_events && !args.append {
        return Err(Refused(
            "the database already holds events; `plinth seed` writes into an empty database \
             (pass --append to add a seeded platform beside what is there)"
                .into(),
        )
        .into());
    }
    plinth_commands::migrate::run(&pool).await?;
    let shape = Shape {
        tenants: args.tenants.max(1),
        events: args.events,
        seed: args.seed,
        root_suffix: if holds_events {
            format!(" #{}", existing_roots(&pool).await? + 1)
        } else {
            String::new()
        },
    };
    let blueprint = blueprint::draw(&shape);
    let needed = blueprint.structural_events();
    if needed > shape.events {
        return Err(Refused(format!(
            "--events {} is too few for --tenants {}: the platform's structure alone appends \
             {needed} events; ask for at least that many",
            shape.events, shape.tenants
        ))
        .into());
    }

    let bar = progress::on_terminal(
        Some(shape.events),
        "{spinner} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} events ({per_sec}, eta {eta})",
    );
    let started = Instant::now();
    let seeder = Seeder::new(
        CommandBus::start(pool.clone(), args.writers),
        EventStore::new(pool.clone()),
        &blueprint,
        &shape,
        |events| bar.set_position(events),
    );
    let written = seeder.run().await?;
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    print_summary(&blueprint, &written, elapsed);

    let caught_up = Instant::now();
    let how = bring_read_models_up_to(&pool, &args.database_url, written.last_position).await?;
    println!(
        "read models current ({how}) in {:.1}s",
        caught_up.elapsed().as_secs_f64()
    );
    if let Some((root, subject)) = written.root_admins.first() {
        println!(
            "try it: `plinth token --subject {subject}` is the admin of root \"{root}\" \
             (every root has one: {})",
            written
                .root_admins
                .iter()
                .map(|(_, s)| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

/// Whether the database has an event log with events in it (a fresh database has neither).
async fn holds_events(pool: &Pool) -> anyhow::Result<bool> {
    let client = pool
        .get()
        .await
        .context("failed to connect to the database")?;
    let has_log: bool = client
        .query_one("select to_regclass('events') is not null", &[])
        .await?
        .get(0);
    if !has_log {
        return Ok(false);
    }
    Ok(client
        .query_one("select exists (select 1 from events)", &[])
        .await?
        .get(0))
}

async fn existing_roots(pool: &Pool) -> anyhow::Result<i64> {
    Ok(pool
        .get()
        .await?
        .query_one(
            "select count(*) from streams where kind = 'tenant' and owner_id is null",
            &[],
        )
        .await?
        .get(0))
}

fn print_summary(b: &Blueprint, written: &Written, elapsed: Duration) {
    let r = &b.removals;
    let seconds = elapsed.as_secs_f64();
    println!(
        "seeded {} events ({} commands) in {seconds:.1}s: {:.0} events/s through the command path",
        written.events,
        written.commands,
        written.events as f64 / seconds.max(1e-9),
    );
    println!(
        "tenants {} ({} roots, depth up to {}, widest fan-out {}), users {}, grants {}",
        b.tenants.len(),
        b.roots(),
        b.max_depth(),
        b.widest_fan_out(),
        b.users.len(),
        b.grants.len(),
    );
    println!(
        "locations {} (made available {} times), resource providers {} (authorized {} times), \
         providers {}",
        b.locations.len(),
        b.locations
            .iter()
            .map(|l| l.available_to.len())
            .sum::<usize>(),
        b.resource_providers.len(),
        b.resource_providers
            .iter()
            .map(|r| r.authorizations.len())
            .sum::<usize>(),
        b.providers.len(),
    );
    println!(
        "then deleted {} tenants ({} through a finalizer), {} locations, {} providers; revoked \
         {} grants, {} location availabilities, {} authorizations",
        r.tenants.len() + r.finalized_tenants.len(),
        r.finalized_tenants.len(),
        r.locations.len(),
        r.providers.len(),
        r.grants.len(),
        r.location_availability.len(),
        r.authorizations.len(),
    );
}

/// Makes every read model cover `last`. If projectors run elsewhere (`plinth serve`) and kept
/// up, nothing is left to do; otherwise a rebuild (the fastest way through a large log, and
/// safe beside a live projector: it swaps its tables in atomically). A rebuild reads only what
/// the gap-safe tail shows, which a transaction held open elsewhere in the cluster can hold
/// back; then the projectors themselves run here until they reach `last`.
async fn bring_read_models_up_to(
    pool: &Pool,
    database_url: &str,
    last: i64,
) -> anyhow::Result<String> {
    if read::has_reached(pool, last).await? {
        return Ok("the running projectors kept up".into());
    }
    let bar = progress::rebuild_bar();
    let report = read::rebuild(pool, ProjectionSet::all(), progress::on_rebuild(&bar))
        .await
        .context("failed to rebuild the read models")?;
    bar.finish_and_clear();
    let rebuilt = format!(
        "rebuilt from {} events at {:.0} events/s",
        report.events,
        report.events_per_second()
    );
    if read::has_reached(pool, last).await? {
        return Ok(rebuilt);
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = RunnerConfig {
        listen: Some(database_url.parse().context("invalid database URL")?),
        ..Default::default()
    };
    let projectors = tokio::spawn(read::run_projectors_with(pool.clone(), config, async {
        let _ = stopped.await;
    }));
    let reached = read::ReadProgress::start(pool.clone())
        .wait_for(last, Duration::from_secs(300))
        .await;
    let _ = stop.send(());
    projectors.await.context("the projectors panicked")??;
    reached.context("the read models did not catch up within 5 minutes")?;
    Ok(format!("{rebuilt}, then projected the rest"))
}
