//! Loading stream rows (snapshot + lock) and turning decided events into rows to insert.

use std::collections::HashMap;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use uuid::Uuid;

use plinth_domain::{apply, Aggregate, Body, Event, Facts};

use crate::hash::{self, Hashed};
use crate::model::{EventMetadata, StoredEvent};

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
    pub(crate) agg: Option<Aggregate>,
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
        self.streams.get(id)?.agg.as_ref()
    }

    fn has_live_dependents(&self, id: &str) -> bool {
        self.dependents.get(id).copied().unwrap_or(0) > 0
    }
}

const LOAD_COLUMNS: &str =
    "stream_id, version, last_hash, last_position, scope_path, snapshot, snapshot_version";

/// Loads (and locks, `lock` being `update` or `share`) the rows of `ids` into `world`,
/// skipping ids already loaded. Rows are locked in id order, so two transactions lock shared
/// rows in the same order.
pub(crate) async fn load(
    client: &impl GenericClient,
    world: &mut World,
    ids: impl IntoIterator<Item = String>,
    lock: &str,
) -> anyhow::Result<Vec<String>> {
    let mut wanted: Vec<String> = ids
        .into_iter()
        .filter(|id| !world.streams.contains_key(id))
        .collect();
    wanted.sort();
    wanted.dedup();
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "select {LOAD_COLUMNS} from streams where stream_id = any($1) order by stream_id for {lock}"
    );
    let statement = client.prepare_cached(&sql).await?;
    let rows = client
        .query(&statement, &[&wanted])
        .await
        .context("failed to load streams")?;
    let mut loaded = Vec::with_capacity(rows.len());
    for row in rows {
        let (id, entry) = entry_from_row(client, &row).await?;
        loaded.push(id.clone());
        world.streams.insert(id, entry);
    }
    Ok(loaded)
}

async fn entry_from_row(client: &impl GenericClient, row: &Row) -> anyhow::Result<(String, Entry)> {
    let id: String = row.get("stream_id");
    let snapshot_version: i32 = row.get("snapshot_version");
    let agg = if snapshot_version == SNAPSHOT_VERSION {
        let snapshot: serde_json::Value = row.get("snapshot");
        serde_json::from_value(snapshot).with_context(|| format!("bad snapshot of {id}"))?
    } else {
        refold(client, &id).await?
    };
    let entry = Entry {
        version: row.get("version"),
        last_hash: row.get("last_hash"),
        last_position: row.get("last_position"),
        agg: Some(agg),
        scope_path: row.get("scope_path"),
        last_row: None,
        changed: false,
    };
    Ok((id, entry))
}

/// Folds a stream from its events, upcasting old ones: the path for stale snapshots.
pub(crate) async fn refold(
    client: &impl GenericClient,
    stream_id: &str,
) -> anyhow::Result<Aggregate> {
    let rows = client
        .query(
            "select event_type, schema_version, data::text as data from events
             where stream_id = $1 order by stream_version",
            &[&stream_id],
        )
        .await?;
    let mut agg = None;
    for row in rows {
        let data: String = row.get("data");
        let event = Event::decode(
            row.get("event_type"),
            row.get("schema_version"),
            serde_json::from_str(&data)?,
        )?;
        agg = apply(agg, &event);
    }
    agg.with_context(|| format!("stream {stream_id} has no creation event"))
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
        entry.agg = apply(entry.agg.take(), event);
        entry.last_row = Some(rows.len() - 1);
        entry.changed = true;
    }
    Ok(())
}

/// Inserts event rows in one statement; returns each row's global position, in row order.
pub(crate) async fn insert_events(
    client: &impl GenericClient,
    rows: &[EventRow],
) -> anyhow::Result<Vec<i64>> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.event_id).collect();
    let streams: Vec<&str> = rows.iter().map(|r| r.stream_id.as_str()).collect();
    let versions: Vec<i64> = rows.iter().map(|r| r.stream_version).collect();
    let types: Vec<&str> = rows.iter().map(|r| r.event_type).collect();
    let schema_versions: Vec<i32> = rows.iter().map(|r| r.schema_version).collect();
    let data: Vec<&str> = rows.iter().map(|r| r.data.as_str()).collect();
    let metadata: Vec<&str> = rows.iter().map(|r| r.metadata.as_str()).collect();
    let recorded: Vec<DateTime<Utc>> = rows.iter().map(|r| r.recorded_at).collect();
    let hashes: Vec<&[u8]> = rows.iter().map(|r| r.hash.as_slice()).collect();
    let statement = client
        .prepare_cached(
            "insert into events (event_id, stream_id, stream_version, event_type, schema_version,
                                 data, metadata, recorded_at, hash)
             select e.event_id, e.stream_id, e.stream_version, e.event_type, e.schema_version,
                    e.data::json, e.metadata::json, e.recorded_at, e.hash
             from unnest($1::uuid[], $2::text[], $3::int8[], $4::text[], $5::int4[], $6::text[],
                         $7::text[], $8::timestamptz[], $9::bytea[])
                  as e(event_id, stream_id, stream_version, event_type, schema_version, data,
                       metadata, recorded_at, hash)
             returning event_id, position",
        )
        .await?;
    let returned = client
        .query(
            &statement,
            &[
                &ids,
                &streams,
                &versions,
                &types,
                &schema_versions,
                &data,
                &metadata,
                &recorded,
                &hashes,
            ],
        )
        .await?;
    let by_id: HashMap<Uuid, i64> = returned.iter().map(|r| (r.get(0), r.get(1))).collect();
    Ok(ids.iter().map(|id| by_id[id]).collect())
}

/// Writes the stream rows of every changed entry: version, chain head, snapshot and the
/// columns the cross-aggregate checks use.
pub(crate) async fn upsert_streams(
    client: &impl GenericClient,
    world: &World,
    positions: &[i64],
) -> anyhow::Result<()> {
    let mut cols = StreamColumns::default();
    for (id, entry) in world.streams.iter().filter(|(_, e)| e.changed) {
        let Some(agg) = &entry.agg else { continue };
        cols.push(
            id,
            entry,
            agg,
            entry.last_row.map_or(entry.last_position, |r| positions[r]),
        )?;
    }
    if cols.ids.is_empty() {
        return Ok(());
    }
    let statement = client
        .prepare_cached(
            "insert into streams (stream_id, kind, version, last_hash, last_position, owner_id,
                                  uses_id, lifecycle, name_key, scope_path, snapshot, snapshot_version)
             select s.stream_id, s.kind, s.version, s.last_hash, s.last_position, s.owner_id,
                    s.uses_id, s.lifecycle, s.name_key, string_to_array(s.scope_path, ','),
                    s.snapshot::jsonb, $11
             from unnest($1::text[], $2::text[], $3::int8[], $4::bytea[], $5::int8[], $6::text[],
                         $7::text[], $8::text[], $9::text[], $10::text[], $12::text[])
                  as s(stream_id, kind, version, last_hash, last_position, owner_id, uses_id,
                       lifecycle, name_key, scope_path, snapshot)
             on conflict (stream_id) do update set
                 version = excluded.version, last_hash = excluded.last_hash,
                 last_position = excluded.last_position, lifecycle = excluded.lifecycle,
                 name_key = excluded.name_key, snapshot = excluded.snapshot,
                 snapshot_version = excluded.snapshot_version",
        )
        .await?;
    client
        .execute(
            &statement,
            &[
                &cols.ids,
                &cols.kinds,
                &cols.versions,
                &cols.hashes,
                &cols.positions,
                &cols.owners,
                &cols.uses,
                &cols.lifecycles,
                &cols.name_keys,
                &cols.paths,
                &SNAPSHOT_VERSION,
                &cols.snapshots,
            ],
        )
        .await?;
    Ok(())
}

#[derive(Default)]
struct StreamColumns {
    ids: Vec<String>,
    kinds: Vec<&'static str>,
    versions: Vec<i64>,
    hashes: Vec<Vec<u8>>,
    positions: Vec<i64>,
    owners: Vec<Option<String>>,
    uses: Vec<Option<String>>,
    lifecycles: Vec<&'static str>,
    name_keys: Vec<Option<String>>,
    paths: Vec<String>,
    snapshots: Vec<String>,
}

impl StreamColumns {
    fn push(
        &mut self,
        id: &str,
        entry: &Entry,
        agg: &Aggregate,
        position: i64,
    ) -> anyhow::Result<()> {
        self.ids.push(id.to_owned());
        self.kinds.push(agg.kind().as_str());
        self.versions.push(entry.version);
        self.hashes.push(entry.last_hash.clone());
        self.positions.push(position);
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

/// Reads `StoredEvent`s from rows selected with [`STORED_COLUMNS`].
pub(crate) fn stored_event(row: &Row) -> anyhow::Result<StoredEvent> {
    let metadata: String = row.get("metadata");
    Ok(StoredEvent {
        position: row.get("position"),
        tx: row.get("tx"),
        event_id: row.get("event_id"),
        stream_id: row.get("stream_id"),
        stream_version: row.get("stream_version"),
        event_type: row.get("event_type"),
        schema_version: row.get("schema_version"),
        data: row.get("data"),
        metadata: serde_json::from_str(&metadata).context("bad event metadata")?,
        recorded_at: row.get("recorded_at"),
        hash: row.get("hash"),
    })
}

/// The columns [`stored_event`] reads.
pub(crate) const STORED_COLUMNS: &str =
    "position, tx, event_id, stream_id, stream_version, event_type, \
     schema_version, data::text as data, metadata::text as metadata, recorded_at, hash";
