//! Every statement that reads the `events` table, so that the log's read order is written
//! down once.
//!
//! **The order rule.** Positions come from a sequence, so a transaction can commit an event
//! with a lower position after a reader has already seen higher ones. A tail reader therefore
//! orders by `(tx, position)` and reads only events whose transaction is older than the oldest
//! transaction still running that can write to this database (the horizon of `log_horizon`,
//! migration V50: the reading snapshot's running ids, less those held by backends of other
//! databases): everything before the returned events is final, so no later commit can land
//! behind a checkpoint, and a transaction that rolls back simply never appears, so it blocks
//! nobody. Transactions in other databases of the same cluster cannot write this log, so they
//! hold nobody back (docs/adr/0023-log-horizon-per-database.md). `AFTER`, `SETTLED` and
//! `ORDER` below are that rule; every reader that pages through the global log (projectors,
//! relays, rebuild, audit) builds its statement from them.
//!
//! That order is also each stream's version order and causal order (every event after the
//! events its command read) only because writers take their transaction id after their stream
//! locks (`locks.rs`, docs/adr/0004-log-order.md): the rule here and the locking there belong
//! together.
//!
//! Reads of one stream (by version) and point lookups need no such rule and live here only so
//! that a change to the table is made in one place. The write side's own append stays with it
//! (`rows.rs`).

use std::sync::LazyLock;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use plinth_domain::{apply, Aggregate, Event};

use crate::model::{Checkpoint, EventMetadata, StoredEvent};

/// Events after the checkpoint `($1, $2)` in log order.
const AFTER: &str = "(tx, position) > ($1, $2)";
/// Events no running transaction of this database can still precede: see the module comment.
/// A scalar subquery, so that the (volatile) horizon is computed once per statement, from the
/// statement's own snapshot, and bounds the (tx, position) index scan.
const SETTLED: &str = "tx < (select log_horizon(pg_current_snapshot()))";
/// The log's order, for `order by`.
const ORDER: &str = "tx, position";

/// The columns [`stored_event`] reads, at the indexes in `col`.
pub(crate) const STORED_COLUMNS: &str =
    "position, tx, event_id, stream_id, stream_version, event_type, \
     schema_version, data::text as data, metadata::text as metadata, recorded_at, hash";

/// The gap-safe tail: up to `$3` settled events after `($1, $2)`.
static TAIL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "select {STORED_COLUMNS} from events where {AFTER} and {SETTLED} order by {ORDER} limit $3"
    )
});

/// Where [`stored_event`] finds each of [`STORED_COLUMNS`]: by index, not by name, since a
/// name is found by comparing it with each column's, which was a visible share of the relay's
/// CPU at 100,000 rows a second. The unit test below ties each index to its column's name.
mod col {
    pub(super) const POSITION: usize = 0;
    pub(super) const TX: usize = 1;
    pub(super) const EVENT_ID: usize = 2;
    pub(super) const STREAM_ID: usize = 3;
    pub(super) const STREAM_VERSION: usize = 4;
    pub(super) const EVENT_TYPE: usize = 5;
    pub(super) const SCHEMA_VERSION: usize = 6;
    pub(super) const DATA: usize = 7;
    pub(super) const METADATA: usize = 8;
    pub(super) const RECORDED_AT: usize = 9;
    pub(super) const HASH: usize = 10;
}

/// Reads `StoredEvent`s from rows selected with [`STORED_COLUMNS`].
pub(crate) fn stored_event(row: &Row) -> anyhow::Result<StoredEvent> {
    let metadata: EventMetadata =
        serde_json::from_str(row.get::<_, &str>(col::METADATA)).context("bad event metadata")?;
    Ok(StoredEvent {
        position: row.get(col::POSITION),
        tx: row.get(col::TX),
        event_id: row.get(col::EVENT_ID),
        stream_id: row.get(col::STREAM_ID),
        stream_version: row.get(col::STREAM_VERSION),
        event_type: row.get(col::EVENT_TYPE),
        schema_version: row.get(col::SCHEMA_VERSION),
        data: row.get(col::DATA),
        metadata,
        recorded_at: row.get(col::RECORDED_AT),
        hash: row.get(col::HASH),
    })
}

fn stored_events(rows: &[Row]) -> anyhow::Result<Vec<StoredEvent>> {
    rows.iter().map(stored_event).collect()
}

/// Up to `limit` events after `after`, in log order, never skipping one (the module comment
/// says why). On a given connection: projectors read inside their own transaction.
pub async fn read_after(
    client: &impl GenericClient,
    after: Checkpoint,
    limit: i64,
) -> anyhow::Result<Vec<StoredEvent>> {
    // Not a cached statement: a fresh plan per read sees the actual checkpoint.
    let rows = client
        .query(TAIL.as_str(), &[&after.tx, &after.position, &limit])
        .await?;
    stored_events(&rows)
}

/// The gap-safe tail with only the columns the read models use: a rebuild reads the whole log,
/// and skipping the metadata and hash columns (and parsing them) is a third of its reading
/// cost. Parameters and order as [`read_after`]; columns: tx, position, stream_id, event_type,
/// schema_version, data (text), recorded_at.
pub fn narrow_tail_sql() -> String {
    format!(
        "select tx, position, stream_id, event_type, schema_version, data::text, recorded_at
         from events where {AFTER} and {SETTLED} order by {ORDER} limit $3"
    )
}

/// A stream's events from `from_version` (inclusive), oldest first.
pub async fn read_stream(
    client: &impl GenericClient,
    stream_id: &str,
    from_version: i64,
    limit: i64,
) -> anyhow::Result<Vec<StoredEvent>> {
    let rows = client
        .query(
            &format!(
                "select {STORED_COLUMNS} from events where stream_id = $1 and stream_version >= $2
                 order by stream_version limit $3"
            ),
            &[&stream_id, &from_version, &limit],
        )
        .await?;
    stored_events(&rows)
}

/// Events with `from <= position <= to`, in position order, for re-sending a range. Per
/// stream that is version order: the write side appends version n+1 only after version n
/// committed (the stream is locked), or later in the same statement.
pub async fn read_positions(
    client: &impl GenericClient,
    from: i64,
    to: i64,
    limit: i64,
) -> anyhow::Result<Vec<StoredEvent>> {
    let statement = client
        .prepare_cached(&format!(
            "select {STORED_COLUMNS} from events where position >= $1 and position <= $2
             order by position limit $3"
        ))
        .await?;
    let rows = client.query(&statement, &[&from, &to, &limit]).await?;
    stored_events(&rows)
}

/// The checkpoint of the event at `position`, if it exists (for read-your-writes).
pub async fn checkpoint_of(
    client: &impl GenericClient,
    position: i64,
) -> anyhow::Result<Option<Checkpoint>> {
    let row = client
        .query_opt("select tx from events where position = $1", &[&position])
        .await?;
    Ok(row.map(|r| Checkpoint {
        tx: r.get(0),
        position,
    }))
}

/// The highest position written so far (0 for an empty log), committed, settled or not.
pub async fn head_position(client: &impl GenericClient) -> anyhow::Result<i64> {
    let row = client
        .query_one("select coalesce(max(position), 0) from events", &[])
        .await?;
    Ok(row.get(0))
}

/// How many events the log holds (a full count: for progress reports, not hot paths).
pub async fn count(client: &impl GenericClient) -> anyhow::Result<i64> {
    let row = client.query_one("select count(*) from events", &[]).await?;
    Ok(row.get(0))
}

/// A stream folded from its events up to `max_position` (`i64::MAX`: all of them), upcasting
/// old ones. `None` if it has no event there.
pub async fn fold_stream(
    client: &impl GenericClient,
    stream_id: &str,
    max_position: i64,
) -> anyhow::Result<Option<Aggregate>> {
    let rows = client
        .query(
            "select event_type, schema_version, data::text as data, position from events
             where stream_id = $1 and position <= $2 order by stream_version",
            &[&stream_id, &max_position],
        )
        .await?;
    let mut agg = None;
    for row in rows {
        let data: String = row.get("data");
        let (event_type, position): (&str, i64) = (row.get("event_type"), row.get("position"));
        let event = Event::decode(
            event_type,
            row.get("schema_version"),
            serde_json::from_str(&data)?,
        )
        .with_context(|| {
            format!("event at position {position} ({event_type}) cannot be decoded")
        })?;
        agg = apply(agg, &event);
    }
    Ok(agg)
}

/// The last position at or before `at` in a stream (for `as_of_time` reads).
pub async fn stream_position_at(
    client: &impl GenericClient,
    stream_id: &str,
    at: DateTime<Utc>,
) -> anyhow::Result<Option<i64>> {
    let row = client
        .query_one(
            "select max(position) from events where stream_id = $1 and recorded_at <= $2",
            &[&stream_id, &at],
        )
        .await?;
    Ok(row.get(0))
}

/// What lies after a checkpoint, settled or not (a reader's lag).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backlog {
    /// Events after the checkpoint, counted up to the limit given.
    pub counted: i64,
    /// Age in seconds of the first of them, if any.
    pub oldest_seconds: Option<f64>,
    /// [`head_position`].
    pub head: i64,
}

/// The [`Backlog`] after `after`, counting at most `count_limit` events. It walks the
/// `(tx, position)` index from the checkpoint like a tail reader, but also sees events still
/// hidden behind a running transaction: they are lag all the same.
pub async fn backlog(
    client: &impl GenericClient,
    after: Checkpoint,
    count_limit: i64,
) -> anyhow::Result<Backlog> {
    let row = client
        .query_one(
            &format!(
                "select
                     (select count(*) from (select 1 from events where {AFTER} limit $3) t),
                     (select extract(epoch from now() - recorded_at)::float8 from events
                       where {AFTER} order by {ORDER} limit 1),
                     (select coalesce(max(position), 0) from events)"
            ),
            &[&after.tx, &after.position, &count_limit],
        )
        .await?;
    Ok(Backlog {
        counted: row.get(0),
        oldest_seconds: row.get(1),
        head: row.get(2),
    })
}

/// The transaction of the event at `position` (None while there is none): its place in the log
/// is `(tx, position)`.
pub async fn tx_of(client: &impl GenericClient, position: i64) -> anyhow::Result<Option<i64>> {
    let statement = client
        .prepare_cached("select tx from events where position = $1")
        .await?;
    let row = client.query_opt(&statement, &[&position]).await?;
    Ok(row.map(|r| r.get(0)))
}

/// Whether every projection named in `projections` has a checkpoint in the read side's
/// `read.checkpoints` at or past the event at `position` (false while the event is unknown).
/// The one statement here that joins a read-side table: comparing checkpoints with an event's
/// place in the log is the order rule, so it belongs with it.
pub async fn projections_reached(
    client: &impl GenericClient,
    projections: &[&str],
    position: i64,
) -> anyhow::Result<bool> {
    let row = client
        .query_one(
            "select count(*) = cardinality($2::text[])
                and coalesce(bool_and((c.tx, c.position) >= (e.tx, e.position)), false)
             from events e, read.checkpoints c
             where e.position = $1 and c.projection = any($2::text[])",
            &[&position, &projections],
        )
        .await?;
    Ok(row.get(0))
}

/// Filters of [`audit`]; all optional.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// The materialized path of a tenant (`read.tenants.path`): its whole subtree.
    pub tenant_path: Option<String>,
    pub stream_id: Option<String>,
    pub actor: Option<String>,
    pub correlation_id: Option<uuid::Uuid>,
    pub event_type: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

/// Up to `limit` settled events after `after` that pass `filter`, in log order: a page of the
/// audit log. Paging by the tail's rule means an event that commits late (a lower position,
/// committed after a page was read) is never skipped by a cursor already handed out.
///
/// The tenant filter reads the read models `read.tenants` and `read.resources` (which streams
/// a subtree governs): the audit log depends on the read side for that one filter.
pub async fn audit(
    client: &impl GenericClient,
    filter: &AuditFilter,
    after: Checkpoint,
    limit: i64,
) -> anyhow::Result<Vec<StoredEvent>> {
    let query = AuditQuery::new(filter, after, limit, shape(client, filter).await?);
    let rows = client.query(&query.sql, &query.params()).await?;
    stored_events(&rows)
}

/// The plan PostgreSQL chooses for [`audit`] with these arguments (`EXPLAIN`, one line per
/// node), for tests to check that every filter's page is an index walk in log order.
pub async fn explain_audit(
    client: &impl GenericClient,
    filter: &AuditFilter,
    after: Checkpoint,
    limit: i64,
) -> anyhow::Result<String> {
    let query = AuditQuery::new(filter, after, limit, shape(client, filter).await?);
    let rows = client
        .query(&format!("explain {}", query.sql), &query.params())
        .await?;
    Ok(rows
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n"))
}

/// The statement of [`audit`] and its parameters. Only the filters given are in the `where`
/// clause, so that every plan (custom or generic) can use the index of the selective one: an
/// `$n is null or ...` condition would hide it from a generic plan.
struct AuditQuery<'a> {
    sql: String,
    after: Checkpoint,
    limit: i64,
    /// `$4` onwards, in order.
    values: Vec<&'a (dyn ToSql + Sync)>,
}

impl<'a> AuditQuery<'a> {
    fn new(filter: &'a AuditFilter, after: Checkpoint, limit: i64, shape: Subtree) -> Self {
        let mut values: Vec<&'a (dyn ToSql + Sync)> = Vec::new();
        let mut conditions = vec![AFTER.to_owned(), SETTLED.to_owned()];
        let mut add = |condition: &str, value: &'a (dyn ToSql + Sync)| {
            values.push(value);
            conditions.push(condition.replace('?', &format!("${}", values.len() + 3)));
        };
        if let Some(stream_id) = &filter.stream_id {
            add("stream_id = ?", stream_id);
        }
        // The same expressions as the indexes of V31 and V33, or they would not be used.
        if let Some(actor) = &filter.actor {
            add("metadata->>'actor' = ?", actor);
        }
        if let Some(correlation_id) = &filter.correlation_id {
            add("(metadata->>'correlation_id')::uuid = ?", correlation_id);
        }
        if let Some(event_type) = &filter.event_type {
            add("event_type = ?", event_type);
        }
        if let Some(since) = &filter.since {
            add("recorded_at >= ?", since);
        }
        if let Some(until) = &filter.until {
            add("recorded_at < ?", until);
        }
        let conditions = conditions.join(" and ");
        let sql = match &filter.tenant_path {
            None => format!(
                "select {STORED_COLUMNS} from events where {conditions} order by {ORDER} limit $3"
            ),
            Some(path) => {
                values.push(path);
                let path = values.len() + 3;
                match shape {
                    Subtree::Merge => merged_subtree_sql(&conditions, path),
                    Subtree::Walk => walked_subtree_sql(&conditions, path),
                }
            }
        };
        Self {
            sql,
            after,
            limit,
            values,
        }
    }

    fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        let mut params: Vec<&(dyn ToSql + Sync)> =
            vec![&self.after.tx, &self.after.position, &self.limit];
        params.extend(self.values.iter().copied());
        params
    }
}

/// How a tenant subtree's page is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Subtree {
    /// Merge the log-order walks of each of its streams ([`merged_subtree_sql`]).
    Merge,
    /// Walk the whole log in order, keeping its streams' events ([`walked_subtree_sql`]).
    Walk,
}

/// Subtrees governing more streams than this are walked, not merged. A merged page reads up
/// to a page per stream of the subtree, a walked one a page divided by the subtree's share of
/// the log: a subtree of a thousand streams or more is most of a platform's log or a large
/// share of it, and walking it reads a few pages' worth where merging would read a thousand.
const MERGE_STREAMS: i64 = 1000;

/// The streams of the subtree at path `$n`: its tenants (a range of the `path` index, see
/// `read.tenants`) joined to the streams they govern.
fn subtree_streams(n: usize) -> String {
    format!(
        "select r.id from read.tenants t join read.resources r on r.tenant_id = t.id
         where t.path = ${n}::text or (t.path > ${n}::text || '/' and t.path < ${n}::text || '0')"
    )
}

/// How to read `filter`'s subtree (by counting its streams up to [`MERGE_STREAMS`]); without
/// a tenant filter the answer is unused.
async fn shape(client: &impl GenericClient, filter: &AuditFilter) -> anyhow::Result<Subtree> {
    let Some(path) = &filter.tenant_path else {
        return Ok(Subtree::Merge);
    };
    let row = client
        .query_one(
            &format!("select count(*) from ({} limit $2) s", subtree_streams(1)),
            &[path, &(MERGE_STREAMS + 1)],
        )
        .await?;
    Ok(if row.get::<_, i64>(0) > MERGE_STREAMS {
        Subtree::Walk
    } else {
        Subtree::Merge
    })
}

/// A page of a tenant subtree (its path is `$path`): for each stream the subtree governs, its
/// first `$3` events after the cursor that pass `conditions` (a short walk of the (stream_id,
/// tx, position) index each), merged into log order and cut to `$3`. A page thus reads at most
/// `$3` index entries per stream of the subtree, however long the log.
///
/// The page is a subquery in `from`, not a `with`: `SETTLED` calls a volatile function, and
/// PostgreSQL never inlines a CTE that does, so the page would be materialized and its order
/// lost to the outer query (a second sort).
fn merged_subtree_sql(conditions: &str, path: usize) -> String {
    let streams = subtree_streams(path);
    format!(
        "select {STORED_COLUMNS}
         from (
             select x.tx, x.position
             from ({streams}) s
             cross join lateral (
                 select tx, position from events
                 where stream_id = s.id and {conditions}
                 order by {ORDER} limit $3
             ) x
             order by x.tx, x.position limit $3
         ) page
         join events using (tx, position) order by {ORDER}"
    )
}

/// A page of a large subtree: the log walked in order (the (tx, position) index), keeping the
/// events of the subtree's streams (a hashed set of them, read once).
fn walked_subtree_sql(conditions: &str, path: usize) -> String {
    let streams = subtree_streams(path);
    format!(
        "select {STORED_COLUMNS} from events
         where {conditions} and stream_id in ({streams})
         order by {ORDER} limit $3"
    )
}

/// Up to `limit` events after `(stream_id, stream_version)` in stream order (rows of
/// [`STORED_COLUMNS`]): `plinth audit verify` walks every chain this way.
pub(crate) async fn by_stream_after(
    client: &impl GenericClient,
    after: &(String, i64),
    limit: i64,
) -> anyhow::Result<Vec<Row>> {
    let sql = format!(
        "select {STORED_COLUMNS} from events where (stream_id, stream_version) > ($1, $2)
         order by stream_id, stream_version limit $3"
    );
    Ok(client.query(&sql, &[&after.0, &after.1, &limit]).await?)
}

/// The first stream (by id) whose head in `streams` (version, last hash) does not match its
/// last event, or that has events but no head: (stream id, head version, last event version).
pub(crate) async fn first_head_mismatch(
    client: &impl GenericClient,
) -> anyhow::Result<Option<(String, Option<i64>, Option<i64>)>> {
    let row = client
        .query_opt(
            "select s.stream_id, s.version, e.stream_version
             from streams s
             left join lateral (
                 select stream_version, hash from events
                 where stream_id = s.stream_id order by stream_version desc limit 1
             ) e on true
             where e.stream_version is distinct from s.version
                or e.hash is distinct from s.last_hash
             union all
             select e.stream_id, null, max(e.stream_version)
             from events e
             where not exists (select 1 from streams s where s.stream_id = e.stream_id)
             group by e.stream_id
             order by 1
             limit 1",
            &[],
        )
        .await?;
    Ok(row.map(|r| (r.get(0), r.get(1), r.get(2))))
}

/// When the event at the highest position at or below `position` was recorded.
pub async fn recorded_at_or_before(
    client: &impl GenericClient,
    position: i64,
) -> anyhow::Result<Option<DateTime<Utc>>> {
    let row = client
        .query_opt(
            "select recorded_at from events where position <= $1 order by position desc limit 1",
            &[&position],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// The highest position of an event recorded at or before `at` (for "as of a time" rebuilds).
/// A full range scan of the time index: for tools, not hot paths.
pub async fn last_position_recorded_by(
    client: &impl GenericClient,
    at: DateTime<Utc>,
) -> anyhow::Result<Option<i64>> {
    let row = client
        .query_one(
            "select max(position) from events where recorded_at <= $1",
            &[&at],
        )
        .await?;
    Ok(row.get(0))
}

#[cfg(test)]
mod tests {
    use super::{col, STORED_COLUMNS};

    /// [`super::stored_event`] reads by index: each index must name the column it expects.
    #[test]
    fn each_stored_column_index_names_its_column() {
        let names: Vec<&str> = STORED_COLUMNS
            .split(',')
            .map(|c| c.split_whitespace().last().expect("a column"))
            .collect();
        let expected = [
            (col::POSITION, "position"),
            (col::TX, "tx"),
            (col::EVENT_ID, "event_id"),
            (col::STREAM_ID, "stream_id"),
            (col::STREAM_VERSION, "stream_version"),
            (col::EVENT_TYPE, "event_type"),
            (col::SCHEMA_VERSION, "schema_version"),
            (col::DATA, "data"),
            (col::METADATA, "metadata"),
            (col::RECORDED_AT, "recorded_at"),
            (col::HASH, "hash"),
        ];
        assert_eq!(names.len(), expected.len());
        for (index, name) in expected {
            assert_eq!(names[index], name, "column {index}");
        }
    }
}
