//! Loading stream rows (snapshot + lock) and turning decided events into rows to insert.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::types::{Json, ToSql};
use tokio_postgres::Row;
use uuid::Uuid;

use plinth_domain::{apply, Aggregate, Body, Event, Facts};

use crate::hash::{self, Hashed};
use crate::log;
use crate::model::EventMetadata;
use crate::snapshots::{Held, Snapshots};

/// Bump when `Aggregate`'s serialized shape changes: older snapshots are then refolded from
/// their events instead of being deserialized.
pub(crate) const SNAPSHOT_VERSION: i32 = 1;

/// A stream as the write side knows it during one transaction.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) version: i64,
    pub(crate) last_hash: Vec<u8>,
    /// Position of the last event committed before this transaction.
    pub(crate) last_position: i64,
    /// Shared with the writers' cache; copied only when the batch appends to the stream.
    pub(crate) agg: Option<Arc<Aggregate>>,
    pub(crate) scope_path: Vec<String>,
    /// Index (into the transaction's event rows) of its last event appended in this transaction.
    pub(crate) last_row: Option<usize>,
    pub(crate) changed: bool,
}

impl Entry {
    pub(crate) fn new_stream() -> Self {
        Self {
            version: 0,
            last_hash: hash::GENESIS.to_vec(),
            last_position: 0,
            agg: None,
            scope_path: Vec::new(),
            last_row: None,
            changed: false,
        }
    }
}

/// Everything loaded in one transaction, keyed by stream id.
#[derive(Debug, Default)]
pub(crate) struct World {
    pub(crate) streams: HashMap<String, Entry>,
    /// Live dependents of the streams whose deletes are being decided.
    pub(crate) dependents: HashMap<String, i64>,
}

impl Facts for World {
    fn get(&self, id: &str) -> Option<&Aggregate> {
        self.streams.get(id)?.agg.as_deref()
    }

    fn has_live_dependents(&self, id: &str) -> bool {
        self.dependents.get(id).copied().unwrap_or(0) > 0
    }
}

/// Loads the streams a batch reads (`$1`: its targets, the streams it names and every tenant in
/// their chains, whose grants authorize the commands). `$2` holds the version of each whose
/// state the writer has cached ([`crate::snapshots`], 0 for none): for those, and for
/// snapshots of an older shape than `$3` (refolded from their events), no snapshot is sent.
/// Run only after [`crate::locks::LOCK_SQL`] returned, so that it reads under the locks.
/// One primary-key lookup per id: the `limit 1` keeps the planner from flattening the
/// lateral subquery into a join, whose generic plan, cached while `streams` was small, scanned
/// the whole table on every batch (measured with pg_stat_statements: 1.7 ms a call instead of
/// 0.1 ms, as the table grew).
pub(crate) const LOAD_SQL: &str = "select s.stream_id, s.version, s.last_hash, s.last_position,
            s.scope_path, s.snapshot_version,
            case when s.version = wanted.cached or s.snapshot_version <> $3 then null
                 else s.snapshot end as snapshot
     from unnest($1::text[], $2::int8[]) as wanted(id, cached)
     join lateral (select * from streams where stream_id = wanted.id limit 1) s on true";

/// Adds loaded rows to `world`, from the states the batch `held` where the row sent no snapshot,
/// refolding any stale snapshot from its events; newly decoded states are remembered in
/// `snapshots`.
pub(crate) async fn add_rows(
    client: &impl GenericClient,
    world: &mut World,
    rows: Vec<Row>,
    held: &Held,
    snapshots: &Snapshots,
) -> anyhow::Result<()> {
    let mut decoded = Vec::new();
    for row in rows {
        let (id, entry, fresh) = entry_from_row(client, &row, held).await?;
        if let Some(state) = fresh {
            decoded.push((id.clone(), entry.version, state));
        }
        world.streams.insert(id, entry);
    }
    // Read under the locks from committed rows: safe to remember whatever this batch does.
    snapshots.remember(
        decoded
            .iter()
            .map(|(id, version, state)| (id, *version, state)),
    );
    Ok(())
}

/// A loaded stream, and its state again when it was decoded rather than found in the cache.
async fn entry_from_row(
    client: &impl GenericClient,
    row: &Row,
    held: &Held,
) -> anyhow::Result<(String, Entry, Option<Arc<Aggregate>>)> {
    let id: String = row.get("stream_id");
    let version: i64 = row.get("version");
    let snapshot_version: i32 = row.get("snapshot_version");
    // Decoded straight from the jsonb bytes into the aggregate, with no `Value` in between.
    let snapshot: Option<Json<Aggregate>> = row
        .try_get("snapshot")
        .with_context(|| format!("bad snapshot of {id}"))?;
    let (agg, fresh) = match snapshot {
        Some(Json(agg)) => (Arc::new(agg), true),
        None => match held.get(&id, version) {
            Some(agg) => (agg, false),
            None if snapshot_version != SNAPSHOT_VERSION => {
                (Arc::new(refold(client, &id).await?), true)
            }
            None => anyhow::bail!("{id} at version {version} was neither sent nor cached"),
        },
    };
    let entry = Entry {
        version,
        last_hash: row.get("last_hash"),
        last_position: row.get("last_position"),
        agg: Some(agg.clone()),
        scope_path: row.get("scope_path"),
        last_row: None,
        changed: false,
    };
    Ok((id, entry, fresh.then_some(agg)))
}

/// Folds a stream from its events, upcasting old ones: the path for stale snapshots.
pub(crate) async fn refold(
    client: &impl GenericClient,
    stream_id: &str,
) -> anyhow::Result<Aggregate> {
    log::fold_stream(client, stream_id, i64::MAX)
        .await?
        .with_context(|| format!("stream {stream_id} has no creation event"))
}

/// One event row to insert.
#[derive(Debug, Clone)]
pub(crate) struct EventRow {
    pub(crate) event_id: Uuid,
    pub(crate) stream_id: String,
    pub(crate) stream_version: i64,
    pub(crate) event_type: &'static str,
    pub(crate) schema_version: i32,
    pub(crate) data: String,
    pub(crate) metadata: String,
    pub(crate) recorded_at: DateTime<Utc>,
    pub(crate) hash: Vec<u8>,
}

/// Timestamps as PostgreSQL stores them (microseconds), so the hash covers what is stored.
pub(crate) fn now_micros() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).expect("in range")
}

/// Appends `events` to `entry` in memory: versions, hash chain and folded state.
pub(crate) fn append_in_memory(
    entry: &mut Entry,
    stream_id: &str,
    events: &[Event],
    metadata: &EventMetadata,
    recorded_at: DateTime<Utc>,
    rows: &mut Vec<EventRow>,
) -> anyhow::Result<()> {
    let metadata = serde_json::to_string(metadata)?;
    for event in events {
        let data = serde_json::to_string(&event.data())?;
        let version = entry.version + 1;
        let event_id = Uuid::now_v7();
        let hash = hash::chain(
            &entry.last_hash,
            &Hashed {
                event_id,
                stream_id,
                stream_version: version,
                event_type: event.event_type(),
                schema_version: event.schema_version(),
                data: &data,
                metadata: &metadata,
                recorded_at,
            },
        );
        rows.push(EventRow {
            event_id,
            stream_id: stream_id.to_owned(),
            stream_version: version,
            event_type: event.event_type(),
            schema_version: event.schema_version(),
            data,
            metadata: metadata.clone(),
            recorded_at,
            hash: hash.to_vec(),
        });
        entry.version = version;
        entry.last_hash = hash.to_vec();
        entry.agg = apply(entry.agg.take().map(Arc::unwrap_or_clone), event).map(Arc::new);
        entry.last_row = Some(rows.len() - 1);
        entry.changed = true;
    }
    Ok(())
}

/// Writes a transaction's event rows and the stream rows of every changed entry (version,
/// chain head, snapshot, the columns cross-aggregate checks use) in one statement, so a batch
/// costs one round trip however many commands it holds. Data-modifying CTEs: the stream rows
/// take their last position from the events inserted by the same statement. Returns each event
/// row's `(event_id, position)`.
///
/// The guard (`$21` ids, `$22` versions; empty for a batch that loaded what it read) serves a
/// batch decided on cached states before anything was read under its locks (`batch.rs`,
/// ADR 0015): the statement starts after the locks are held, so it sees every commit they
/// waited for, and it writes nothing, returning no rows, unless each stream read is still at
/// the version decided on.
pub(crate) const WRITE_SQL: &str = "with guard as materialized (
         select not exists (
             select 1 from unnest($21::text[], $22::int8[]) as w(id, version)
             where w.version is distinct from
                   (select s.version from streams s where s.stream_id = w.id)
         ) as ok
     ), inserted as (
         insert into events (event_id, stream_id, stream_version, event_type, schema_version,
                             data, metadata, recorded_at, hash)
         select e.event_id, e.stream_id, e.stream_version, e.event_type, e.schema_version,
                e.data::json, e.metadata::json, e.recorded_at, e.hash
         from unnest($1::uuid[], $2::text[], $3::int8[], $4::text[], $5::int4[], $6::text[],
                     $7::text[], $8::timestamptz[], $9::bytea[])
              as e(event_id, stream_id, stream_version, event_type, schema_version, data,
                   metadata, recorded_at, hash)
         where (select ok from guard)
         returning event_id, stream_id, position
     ), written as (
         insert into streams (stream_id, kind, version, last_hash, last_position, owner_id,
                              uses_id, lifecycle, name_key, scope_path, snapshot, snapshot_version)
         select s.stream_id, s.kind, s.version, s.last_hash,
                (select max(i.position) from inserted i where i.stream_id = s.stream_id),
                s.owner_id, s.uses_id, s.lifecycle, s.name_key,
                string_to_array(s.scope_path, ','), s.snapshot::jsonb, $10
         from unnest($11::text[], $12::text[], $13::int8[], $14::bytea[], $15::text[],
                     $16::text[], $17::text[], $18::text[], $19::text[], $20::text[])
              as s(stream_id, kind, version, last_hash, owner_id, uses_id, lifecycle,
                   name_key, scope_path, snapshot)
         where (select ok from guard)
         on conflict (stream_id) do update set
             version = excluded.version, last_hash = excluded.last_hash,
             last_position = excluded.last_position, lifecycle = excluded.lifecycle,
             name_key = excluded.name_key, snapshot = excluded.snapshot,
             snapshot_version = excluded.snapshot_version
         returning 1
     )
     -- The count forces the stream rows to be written; the notify (once per statement, and
     -- PostgreSQL folds repeats within a transaction) wakes projectors and the relay, which
     -- re-read the log: the payload carries nothing.
     select event_id, position, (select count(*) from written),
            (select pg_notify('plinth_events', ''))
     from inserted";

/// The parameters of [`WRITE_SQL`], built before anything is sent so that the statement can
/// go out in the same pipeline as the commit.
#[derive(Default)]
pub(crate) struct WriteParams {
    ids: Vec<Uuid>,
    streams: Vec<String>,
    versions: Vec<i64>,
    types: Vec<&'static str>,
    schema_versions: Vec<i32>,
    data: Vec<String>,
    metadata: Vec<String>,
    recorded: Vec<DateTime<Utc>>,
    hashes: Vec<Vec<u8>>,
    cols: StreamColumns,
    guard_ids: Vec<String>,
    guard_versions: Vec<i64>,
}

impl WriteParams {
    pub(crate) fn new(rows: &[EventRow], world: &World) -> anyhow::Result<Self> {
        let mut cols = StreamColumns::default();
        for (id, entry) in world.streams.iter().filter(|(_, e)| e.changed) {
            if let Some(agg) = &entry.agg {
                cols.push(id, entry, agg)?;
            }
        }
        Ok(Self {
            ids: rows.iter().map(|r| r.event_id).collect(),
            streams: rows.iter().map(|r| r.stream_id.clone()).collect(),
            versions: rows.iter().map(|r| r.stream_version).collect(),
            types: rows.iter().map(|r| r.event_type).collect(),
            schema_versions: rows.iter().map(|r| r.schema_version).collect(),
            data: rows.iter().map(|r| r.data.clone()).collect(),
            metadata: rows.iter().map(|r| r.metadata.clone()).collect(),
            recorded: rows.iter().map(|r| r.recorded_at).collect(),
            hashes: rows.iter().map(|r| r.hash.clone()).collect(),
            cols,
            guard_ids: Vec::new(),
            guard_versions: Vec::new(),
        })
    }

    /// Writes only if each of `ids` is still at its version in `versions` (0: absent).
    pub(crate) fn guarded(mut self, ids: &[String], versions: &[i64]) -> Self {
        self.guard_ids = ids.to_vec();
        self.guard_versions = versions.to_vec();
        self
    }

    pub(crate) fn params(&self) -> [&(dyn ToSql + Sync); 22] {
        let c = &self.cols;
        [
            &self.ids,
            &self.streams,
            &self.versions,
            &self.types,
            &self.schema_versions,
            &self.data,
            &self.metadata,
            &self.recorded,
            &self.hashes,
            &SNAPSHOT_VERSION,
            &c.ids,
            &c.kinds,
            &c.versions,
            &c.hashes,
            &c.owners,
            &c.uses,
            &c.lifecycles,
            &c.name_keys,
            &c.paths,
            &c.snapshots,
            &self.guard_ids,
            &self.guard_versions,
        ]
    }

    /// Each event row's position, in row order, from the statement's result; `None` when the
    /// guard held the write back (nothing was written).
    pub(crate) fn positions(&self, returned: &[Row]) -> Option<Vec<i64>> {
        let by_id: HashMap<Uuid, i64> = returned.iter().map(|r| (r.get(0), r.get(1))).collect();
        self.ids.iter().map(|id| by_id.get(id).copied()).collect()
    }
}

/// Prepares and runs [`WRITE_SQL`] on its own (outside a pipeline).
pub(crate) async fn write(
    client: &impl GenericClient,
    rows: &[EventRow],
    world: &World,
) -> anyhow::Result<Vec<i64>> {
    let statement = client.prepare_cached(WRITE_SQL).await?;
    let params = WriteParams::new(rows, world)?;
    let returned = client.query(&statement, &params.params()).await?;
    params
        .positions(&returned)
        .context("an unguarded write returned no position for an event")
}

#[derive(Default)]
struct StreamColumns {
    ids: Vec<String>,
    kinds: Vec<&'static str>,
    versions: Vec<i64>,
    hashes: Vec<Vec<u8>>,
    owners: Vec<Option<String>>,
    uses: Vec<Option<String>>,
    lifecycles: Vec<&'static str>,
    name_keys: Vec<Option<String>>,
    paths: Vec<String>,
    snapshots: Vec<String>,
}

impl StreamColumns {
    fn push(&mut self, id: &str, entry: &Entry, agg: &Aggregate) -> anyhow::Result<()> {
        self.ids.push(id.to_owned());
        self.kinds.push(agg.kind().as_str());
        self.versions.push(entry.version);
        self.hashes.push(entry.last_hash.clone());
        self.owners.push(agg.owner_id());
        self.uses.push(match &agg.body {
            Body::Provider(p) => Some(p.resource_provider_id.to_string()),
            _ => None,
        });
        self.lifecycles.push(agg.lifecycle.as_str());
        self.name_keys
            .push(agg.as_tenant().map(|t| t.name.uniqueness_key()));
        self.paths.push(entry.scope_path.join(","));
        self.snapshots.push(serde_json::to_string(agg)?);
        Ok(())
    }
}
