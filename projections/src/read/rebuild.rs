//! Rebuilding projections from the log into fresh tables, then swapping them in atomically
//! while queries keep being served from the old ones.
//!
//! 1. The new tables are created in schema `read_rebuild` (`like read.x including all`: same
//!    columns, constraints and indexes).
//! 2. The log is streamed in batches: one task reads and folds batch n+1 while another writes
//!    batch n, each batch in its own short transaction (a long one would hold back the
//!    snapshot horizon that every log reader in the cluster waits on). Memory holds a couple
//!    of batches, however long the log.
//! 3. The swap is one transaction: lock the projections' checkpoint rows (the live projector
//!    waits on them), apply the last events, drop the old tables, move the new ones into
//!    `read` and set the checkpoints. Readers block only for that instant; they never see a
//!    half-built table. The live projector then goes on from the rebuilt checkpoint.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use deadpool_postgres::Pool;

use plinth_commands::{log, read_after, Checkpoint};

use super::models::{resolve_sql, staging_ddl, staging_table, Changes, Envelope};
use super::projection::ProjectionSet;

/// Where a rebuild builds its tables.
pub const REBUILD_SCHEMA: &str = "read_rebuild";

/// One rebuild at a time, across processes.
const REBUILD_LOCK: i64 = 0x706c_6e72_6562_6c64; // "plnrebld"

/// One row of `plinth_commands::log::narrow_tail_sql`.
#[derive(Debug)]
struct LogRow {
    tx: i64,
    position: i64,
    stream_id: String,
    event_type: String,
    schema_version: i32,
    data: String,
    recorded_at: chrono::DateTime<chrono::Utc>,
}

impl LogRow {
    fn from_row(row: &tokio_postgres::Row) -> Self {
        Self {
            tx: row.get(0),
            position: row.get(1),
            stream_id: row.get(2),
            event_type: row.get(3),
            schema_version: row.get(4),
            data: row.get(5),
            recorded_at: row.get(6),
        }
    }

    fn fold_into(&self, changes: &mut Changes) -> anyhow::Result<()> {
        let data = serde_json::from_str(&self.data)
            .with_context(|| format!("event at position {} is not JSON", self.position))?;
        let event = plinth_domain::Event::decode(&self.event_type, self.schema_version, data)
            .with_context(|| format!("event at position {} cannot be decoded", self.position))?;
        changes.add_decoded(
            &Envelope {
                stream_id: &self.stream_id,
                position: self.position,
                recorded_at: self.recorded_at,
            },
            &event,
        );
        Ok(())
    }
}

/// Reported after each batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RebuildProgress {
    pub events: u64,
    /// Events in the log when the rebuild started.
    pub total: u64,
}

/// What a rebuild did.
#[derive(Debug, Clone)]
pub struct RebuildReport {
    pub projections: Vec<&'static str>,
    pub events: u64,
    pub elapsed: Duration,
    /// Where the swapped-in projections stand.
    pub checkpoint: Checkpoint,
}

impl RebuildReport {
    pub fn events_per_second(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Events per batch.
pub const REBUILD_BATCH: i64 = 25_000;

/// Where a rebuild leaves its tables.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// Swapped into `read`, caught up with the log.
    Live,
    /// Left in `schema`, as the read models stood once every event at or below
    /// `until_position` was applied (and none after).
    AsOf { schema: String, until_position: i64 },
}

impl Target {
    fn schema(&self) -> &str {
        match self {
            Self::Live => REBUILD_SCHEMA,
            Self::AsOf { schema, .. } => schema,
        }
    }

    fn applies(&self, position: i64) -> bool {
        match self {
            Self::Live => true,
            Self::AsOf { until_position, .. } => position <= *until_position,
        }
    }
}

/// Rebuilds `set` from the whole log and swaps it in. Fails if another rebuild is running.
pub async fn rebuild(
    pool: &Pool,
    set: ProjectionSet,
    on_progress: impl FnMut(RebuildProgress) + Send,
) -> anyhow::Result<RebuildReport> {
    rebuild_in_batches(pool, set, REBUILD_BATCH, on_progress).await
}

/// [`rebuild`], reading the log `batch` events at a time.
pub async fn rebuild_in_batches(
    pool: &Pool,
    set: ProjectionSet,
    batch: i64,
    on_progress: impl FnMut(RebuildProgress) + Send,
) -> anyhow::Result<RebuildReport> {
    rebuild_into(pool, set, batch, Target::Live, on_progress).await
}

/// Time travel: rebuilds every read model as it stood right after the event at
/// `until_position` (every event at or below it, none above: per stream a prefix of its
/// versions, and causally complete, since an event's position is above those of the events its
/// command read) into the new schema `schema`, leaving the live read models untouched. The
/// schema gets the same tables as `read` plus `as_of` (the position and its time); query it
/// with SQL, drop it when done.
pub async fn rebuild_as_of(
    pool: &Pool,
    schema: &str,
    until_position: i64,
    on_progress: impl FnMut(RebuildProgress) + Send,
) -> anyhow::Result<RebuildReport> {
    check_new_schema(pool, schema).await?;
    let head = log::head_position(&pool.get().await?).await?;
    anyhow::ensure!(
        (0..=head).contains(&until_position),
        "position {until_position} is not in the log (its head is {head})"
    );
    let target = Target::AsOf {
        schema: schema.to_owned(),
        until_position,
    };
    rebuild_into(
        pool,
        ProjectionSet::all(),
        REBUILD_BATCH,
        target,
        on_progress,
    )
    .await
}

/// A schema name `rebuild_as_of` may create: a plain lowercase identifier, none of the
/// project's own schemas, and not one that exists (it would be mixed with what is there).
async fn check_new_schema(pool: &Pool, schema: &str) -> anyhow::Result<()> {
    let plain = schema.len() <= 63
        && schema.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && schema
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    anyhow::ensure!(
        plain && !schema.starts_with("pg_"),
        "`{schema}` is not a plain schema name (lowercase letters, digits, _)"
    );
    anyhow::ensure!(
        !["read", REBUILD_SCHEMA, "public", "information_schema"].contains(&schema),
        "`{schema}` is one of Plinth's own schemas; choose another"
    );
    let exists: bool = pool
        .get()
        .await?
        .query_one(
            "select exists (select 1 from pg_namespace where nspname = $1)",
            &[&schema],
        )
        .await?
        .get(0);
    anyhow::ensure!(
        !exists,
        "schema `{schema}` exists already; drop it or choose another"
    );
    Ok(())
}

async fn rebuild_into(
    pool: &Pool,
    set: ProjectionSet,
    batch: i64,
    target: Target,
    mut on_progress: impl FnMut(RebuildProgress) + Send,
) -> anyhow::Result<RebuildReport> {
    anyhow::ensure!(!set.is_empty(), "nothing to rebuild");
    let started = Instant::now();
    let mut writer = pool.get().await.context("failed to connect")?;
    let locked: bool = writer
        .query_one("select pg_try_advisory_lock($1)", &[&REBUILD_LOCK])
        .await?
        .get(0);
    anyhow::ensure!(locked, "another rebuild is running");
    let result = rebuild_locked(
        pool,
        &mut writer,
        set,
        batch.max(1),
        &target,
        &mut on_progress,
    )
    .await;
    // Whatever happened, leave no half-built schema and no lock behind: a live rebuild's
    // schema is empty once swapped, a time-travel one is kept only when it is complete.
    if target == Target::Live || result.is_err() {
        let _ = writer
            .batch_execute(&format!(
                "drop schema if exists {} cascade",
                target.schema()
            ))
            .await;
    }
    let _ = writer
        .execute("select pg_advisory_unlock($1)", &[&REBUILD_LOCK])
        .await;
    let (events, checkpoint) = result?;
    Ok(RebuildReport {
        projections: set.names(),
        events,
        elapsed: started.elapsed(),
        checkpoint,
    })
}

async fn rebuild_locked(
    pool: &Pool,
    writer: &mut deadpool_postgres::Client,
    set: ProjectionSet,
    batch: i64,
    target: &Target,
    on_progress: &mut (impl FnMut(RebuildProgress) + Send),
) -> anyhow::Result<(u64, Checkpoint)> {
    let schema = target.schema();
    let mut ddl = format!("drop schema if exists {schema} cascade; create schema {schema};");
    for p in set.iter() {
        for table in p.tables() {
            ddl.push_str(&format!(
                "create unlogged table {schema}.{table} (like read.{table} including all);"
            ));
            ddl.push_str(&staging_ddl(schema, table));
        }
    }
    writer
        .batch_execute(&ddl)
        .await
        .context("failed to create the rebuild tables")?;
    let total = log::count(&*writer).await? as u64;

    // Three stages, each on its own task, so that reading batch n+2, folding batch n+1 and
    // writing batch n overlap; bounded channels keep at most a few batches in memory.
    let (rows_tx, mut rows_rx) = tokio::sync::mpsc::channel::<anyhow::Result<Vec<LogRow>>>(2);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<anyhow::Result<(Changes, Checkpoint)>>(2);
    let reader_pool = pool.clone();
    let reader = tokio::spawn(async move {
        let result = async {
            let client = reader_pool.get().await?;
            let statement = client.prepare(&log::narrow_tail_sql()).await?;
            let mut cp = Checkpoint::default();
            let mut reading = Duration::ZERO;
            loop {
                let began = Instant::now();
                let rows = client
                    .query(&statement, &[&cp.tx, &cp.position, &batch])
                    .await?;
                let rows: Vec<LogRow> = rows.iter().map(LogRow::from_row).collect();
                reading += began.elapsed();
                let Some(last) = rows.last() else {
                    tracing::info!(?reading, "rebuild reader done");
                    return anyhow::Ok(());
                };
                cp = Checkpoint {
                    tx: last.tx,
                    position: last.position,
                };
                let short = (rows.len() as i64) < batch;
                if rows_tx.send(Ok(rows)).await.is_err() || short {
                    tracing::info!(?reading, "rebuild reader done");
                    return Ok(());
                }
            }
        }
        .await;
        if let Err(e) = result {
            let _ = rows_tx.send(Err(e)).await;
        }
    });
    let folded_target = target.clone();
    let folder = tokio::spawn(async move {
        let mut folding = Duration::ZERO;
        while let Some(rows) = rows_rx.recv().await {
            let began = Instant::now();
            let folded = rows.and_then(|rows| {
                let mut changes = Changes::new(set);
                for row in rows.iter().filter(|r| folded_target.applies(r.position)) {
                    row.fold_into(&mut changes)?;
                }
                let last = rows.last().map(|r| Checkpoint {
                    tx: r.tx,
                    position: r.position,
                });
                Ok((changes, last.unwrap_or_default()))
            });
            folding += began.elapsed();
            let failed = folded.is_err();
            if tx.send(folded).await.is_err() || failed {
                break;
            }
        }
        tracing::info!(?folding, "rebuild folder done");
    });

    let mut done = 0u64;
    let mut cp = Checkpoint::default();
    let mut writing = Duration::ZERO;
    let mut seq = 0i64;
    while let Some(batch) = rx.recv().await {
        seq += 1;
        let (changes, last) = batch?;
        let began = Instant::now();
        let t = writer.transaction().await?;
        // Nothing is lost if a crash loses this batch: the rebuild starts over anyway.
        t.batch_execute("set local synchronous_commit = off")
            .await?;
        changes.stage(&t, schema, seq).await?;
        t.commit().await?;
        writing += began.elapsed();
        done += changes.len() as u64;
        cp = last;
        on_progress(RebuildProgress {
            events: done,
            total: total.max(done),
        });
    }
    reader.await.context("the log reader panicked")?;
    folder.await.context("the folder panicked")?;
    tracing::info!(?writing, "rebuild writer done");

    // Fold the staged changes in, set-wise, and drop the staging tables: two connections,
    // each taking the next table, since each fold is one statement on one core.
    let began = Instant::now();
    let tables: Vec<&'static str> = set
        .iter()
        .flat_map(|p| p.tables().iter().copied())
        .collect();
    let queue = std::sync::Arc::new(std::sync::Mutex::new(tables));
    let mut folds = Vec::new();
    for _ in 0..2 {
        let (pool, queue, schema) = (pool.clone(), queue.clone(), schema.to_owned());
        folds.push(tokio::spawn(async move {
            let mut client = pool.get().await?;
            loop {
                let Some(table) = queue.lock().expect("not poisoned").pop() else {
                    return anyhow::Ok(());
                };
                let t = client.transaction().await?;
                t.batch_execute("set local synchronous_commit = off; set local work_mem = '256MB'")
                    .await?;
                t.execute(&resolve_sql(&schema, table), &[])
                    .await
                    .with_context(|| format!("failed to fold the staged changes of {table}"))?;
                t.batch_execute(&format!("drop table {}", staging_table(&schema, table)))
                    .await?;
                t.commit().await?;
            }
        }));
    }
    for fold in folds {
        fold.await.context("a fold panicked")??;
    }
    tracing::info!(resolving = ?began.elapsed(), "rebuild staged changes folded in");
    // Built unlogged (no WAL per batch); made durable once, in bulk, before going live.
    let began = Instant::now();
    let mut ddl = String::new();
    for p in set.iter() {
        for table in p.tables() {
            ddl.push_str(&format!(
                "alter table {schema}.{table} set logged; analyze {schema}.{table};"
            ));
        }
    }
    writer.batch_execute(&ddl).await?;
    tracing::info!(logging = ?began.elapsed(), "rebuilt tables made durable");
    if let Target::AsOf { until_position, .. } = target {
        let recorded_at = log::recorded_at_or_before(&*writer, *until_position).await?;
        writer
            .execute(
                &format!(
                    "create table {schema}.as_of as
                     select $1::int8 as position, $2::timestamptz as recorded_at"
                ),
                &[until_position, &recorded_at],
            )
            .await?;
        return Ok((done, cp));
    }
    let names = set.names();
    writer
        .execute(
            "insert into read.checkpoints (projection) select unnest($1::text[]) on conflict do nothing",
            &[&names],
        )
        .await?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        match swap(writer, set, cp).await {
            Ok((extra, final_cp)) => {
                done += extra;
                on_progress(RebuildProgress {
                    events: done,
                    total: total.max(done),
                });
                return Ok((done, final_cp));
            }
            Err(e) if attempt < 5 => {
                tracing::warn!(error = format!("{e:#}"), attempt, "swap failed; retrying");
                tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
            }
            Err(e) => return Err(e.context("failed to swap the rebuilt tables in")),
        }
    }
}

/// Catches up and swaps in one transaction. Returns the events applied meanwhile and the
/// final checkpoint.
async fn swap(
    writer: &mut deadpool_postgres::Client,
    set: ProjectionSet,
    mut cp: Checkpoint,
) -> anyhow::Result<(u64, Checkpoint)> {
    let names = set.names();
    let tx = writer.transaction().await?;
    // Readers queue behind the table swap; never let them queue for long.
    tx.batch_execute("set local lock_timeout = '5s'").await?;
    tx.query(
        "select 1 from read.checkpoints where projection = any($1::text[]) order by projection for update",
        &[&names],
    )
    .await?;
    let mut extra = 0u64;
    loop {
        let events = read_after(&tx, cp, REBUILD_BATCH).await?;
        let Some(last) = events.last().map(|e| e.checkpoint()) else {
            break;
        };
        let mut changes = Changes::new(set);
        for e in &events {
            changes.add(e)?;
        }
        changes.flush(&tx, REBUILD_SCHEMA).await?;
        extra += events.len() as u64;
        cp = last;
    }
    let mut ddl = String::new();
    for p in set.iter() {
        for table in p.tables() {
            ddl.push_str(&format!(
                "drop table read.{table}; alter table {REBUILD_SCHEMA}.{table} set schema read;"
            ));
        }
    }
    tx.batch_execute(&ddl).await?;
    tx.execute(
        "update read.checkpoints set tx = $2, position = $3, updated_at = now()
         where projection = any($1::text[])",
        &[&names, &cp.tx, &cp.position],
    )
    .await?;
    tx.commit().await?;
    Ok((extra, cp))
}
