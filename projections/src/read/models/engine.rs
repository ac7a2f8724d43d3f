//! The write engine every read model shares: changes folded per key in memory, then written
//! set-wise, a handful of statements per table however many events a batch holds.
//!
//! A table is either an *entity* table (one row per stream, created once and then patched:
//! renamed, deleted, …; see [`Entities`] and [`Row`]) or a *keyed* table (one row per (a, b)
//! pair, upserted or deleted, last write wins; see [`Keyed`] and [`KeyedTable`]). New entities
//! go in with binary `COPY`, patches with one `UPDATE .. FROM unnest(..)` per table, keyed rows
//! with one `INSERT .. ON CONFLICT` and one `DELETE .. USING unnest(..)` per table. A rebuild
//! instead appends everything but new entities to staging tables and folds them in once at the
//! end ([`Table::resolve_sql`]).
//!
//! The SQL lives here, derived from each table's descriptor, so that a read model's file says
//! only what its tables hold and which event changes what; the write strategy (and so the
//! number of statements per batch) is the same for every table by construction.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use futures::pin_mut;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Transaction;

use plinth_domain::{AggregateKind, Event};

use super::Envelope;

/// Later changes to an existing entity row. `None` fields are left as they are.
#[derive(Debug, Default, Clone)]
pub(super) struct Patch {
    pub(super) rename: Option<(String, Option<String>)>,
    pub(super) lifecycle: Option<&'static str>,
    pub(super) deletion_requested_at: Option<DateTime<Utc>>,
    /// (updated_at, last_position)
    pub(super) touched: Option<(DateTime<Utc>, i64)>,
}

impl Patch {
    fn merge(&mut self, later: Patch) {
        if later.rename.is_some() {
            self.rename = later.rename;
        }
        if later.lifecycle.is_some() {
            self.lifecycle = later.lifecycle;
        }
        if later.deletion_requested_at.is_some() {
            self.deletion_requested_at = later.deletion_requested_at;
        }
        if later.touched.is_some() {
            self.touched = later.touched;
        }
    }

    pub(super) fn touched(e: &Envelope<'_>) -> Self {
        Self {
            touched: Some((e.recorded_at, e.position)),
            ..Self::default()
        }
    }
}

/// A new lifecycle, touching the row.
pub(super) fn lifecycle_patch(e: &Envelope<'_>, lifecycle: &'static str) -> Patch {
    Patch {
        lifecycle: Some(lifecycle),
        ..Patch::touched(e)
    }
}

/// `DeletionRequested` of a stream of `kind`?
pub(super) fn deleting(e: &Envelope<'_>, event: &Event, kind: AggregateKind) -> bool {
    matches!(event, Event::DeletionRequested { .. })
        && AggregateKind::of_stream(e.stream_id) == Some(kind)
}

pub(super) fn opt(s: &Option<impl ToString>) -> Option<String> {
    s.as_ref().map(|v| v.to_string())
}

/// Which fields of a [`Patch`] an entity table takes: what its `UPDATE`, its staged patches'
/// fold and its in-memory patch agree on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Patched {
    /// Name, description, lifecycle, updated_at and last_position.
    Named,
    /// Lifecycle, updated_at and last_position (never renamed).
    Lifecycle,
    /// Lifecycle and deletion_requested_at (nothing per event: see `resources`).
    Deletion,
    /// Created once, never changed.
    Never,
}

impl Patched {
    /// The `SET` of an `UPDATE {table} as t .. from (patches) p`, where `p` has the columns of
    /// the staging table (`renamed`, `name`, …, `requested`): one text for the incremental
    /// `UPDATE` and a rebuild's fold, so that the two cannot drift apart.
    fn set_sql(self) -> Option<&'static str> {
        Some(match self {
            Self::Named => {
                "name = case when p.renamed then p.name else t.name end,
                 description = case when p.renamed then p.description else t.description end,
                 lifecycle = coalesce(p.lifecycle, t.lifecycle),
                 updated_at = coalesce(p.updated_at, t.updated_at),
                 last_position = coalesce(p.last_position, t.last_position)"
            }
            Self::Lifecycle => {
                "lifecycle = coalesce(p.lifecycle, t.lifecycle),
                 updated_at = coalesce(p.updated_at, t.updated_at),
                 last_position = coalesce(p.last_position, t.last_position)"
            }
            Self::Deletion => {
                "lifecycle = coalesce(p.lifecycle, t.lifecycle),
                 deletion_requested_at = coalesce(p.requested, t.deletion_requested_at)"
            }
            Self::Never => return None,
        })
    }
}

/// A row of an entity table, as `COPY` writes it.
pub(super) trait Row {
    const TABLE: &'static str;
    const COLUMNS: &'static str;
    const PATCHED: Patched;
    fn types() -> Vec<Type>;
    fn id(&self) -> &str;
    fn patch(&mut self, p: &Patch);
    fn values(&self) -> Vec<&(dyn ToSql + Sync)>;
}

/// Applies the fields every entity with a name shares ([`Patched::Named`]).
macro_rules! named_patch {
    ($self:ident, $p:ident) => {
        if let Some((name, description)) = &$p.rename {
            $self.name = name.clone();
            $self.description = description.clone();
        }
        if let Some(l) = $p.lifecycle {
            $self.lifecycle = l;
        }
        if let Some((at, position)) = $p.touched {
            $self.updated_at = at;
            $self.last_position = position;
        }
    };
}
pub(super) use named_patch;

/// Rows created in this batch, and patches to rows created before it.
#[derive(Debug)]
pub(super) struct Entities<R> {
    created: Vec<R>,
    index: HashMap<String, usize>,
    patches: HashMap<String, Patch>,
}

impl<R> Default for Entities<R> {
    fn default() -> Self {
        Self {
            created: Vec::new(),
            index: HashMap::new(),
            patches: HashMap::new(),
        }
    }
}

impl<R: Row> Entities<R> {
    pub(super) fn create(&mut self, row: R) {
        self.index.insert(row.id().to_owned(), self.created.len());
        self.created.push(row);
    }

    pub(super) fn patch(&mut self, id: &str, patch: Patch) {
        match self.index.get(id) {
            Some(&i) => self.created[i].patch(&patch),
            None => self.patches.entry(id.to_owned()).or_default().merge(patch),
        }
    }

    /// Writes the batch to `schema`'s table: new rows by `COPY`, patches by one `UPDATE`.
    pub(super) async fn flush(&self, tx: &Transaction<'_>, schema: &str) -> anyhow::Result<()> {
        self.copy_created(tx, schema).await?;
        match R::PATCHED {
            Patched::Named => named_updates(tx, schema, R::TABLE, &self.patches).await,
            Patched::Lifecycle => lifecycle_updates(tx, schema, R::TABLE, &self.patches).await,
            Patched::Deletion => deletion_updates(tx, schema, R::TABLE, &self.patches).await,
            Patched::Never => Ok(()),
        }
    }

    /// A rebuild's batch: new rows by `COPY`, patches appended to the staging table.
    pub(super) async fn stage(
        &self,
        tx: &Transaction<'_>,
        schema: &str,
        seq: i64,
    ) -> anyhow::Result<()> {
        self.copy_created(tx, schema).await?;
        if R::PATCHED == Patched::Never {
            return Ok(());
        }
        stage_patches(tx, schema, R::TABLE, seq, &self.patches).await
    }

    async fn copy_created(&self, tx: &Transaction<'_>, schema: &str) -> anyhow::Result<()> {
        if self.created.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "copy {schema}.{} ({}) from stdin binary",
            R::TABLE,
            R::COLUMNS
        );
        let sink = tx.copy_in(&sql).await?;
        let writer = BinaryCopyInWriter::new(sink, &R::types());
        pin_mut!(writer);
        for row in &self.created {
            writer.as_mut().write(&row.values()).await?;
        }
        writer.finish().await?;
        Ok(())
    }
}

/// (a, b, value) of the keys a batch upserts.
pub(super) type Upserts<'a, V> = Vec<(&'a str, &'a str, &'a V)>;

/// Upserts (`Some`) and deletes (`None`) by (a, b) key, last write wins.
#[derive(Debug)]
pub(super) struct Keyed<V> {
    map: HashMap<(String, String), Option<V>>,
}

impl<V> Default for Keyed<V> {
    fn default() -> Self {
        Self {
            map: HashMap::new(),
        }
    }
}

impl<V> Keyed<V> {
    pub(super) fn put(&mut self, a: &str, b: &str, v: V) {
        self.map.insert((a.to_owned(), b.to_owned()), Some(v));
    }

    pub(super) fn remove(&mut self, a: &str, b: &str) {
        self.map.insert((a.to_owned(), b.to_owned()), None);
    }

    /// (deleted a, deleted b), (upserted a, upserted b, value)
    fn split(&self) -> (Vec<&str>, Vec<&str>, Upserts<'_, V>) {
        let (mut da, mut db, mut up) = (Vec::new(), Vec::new(), Vec::new());
        for ((a, b), v) in &self.map {
            match v {
                None => {
                    da.push(a.as_str());
                    db.push(b.as_str());
                }
                Some(v) => up.push((a.as_str(), b.as_str(), v)),
            }
        }
        (da, db, up)
    }

    /// Deletes this batch's deleted keys (one statement) and returns the upserts, which the
    /// read model turns into columns for [`KeyedTable::upsert`].
    pub(super) async fn delete(
        &self,
        tx: &Transaction<'_>,
        schema: &str,
        table: &KeyedTable,
    ) -> anyhow::Result<Upserts<'_, V>> {
        let (da, db, up) = self.split();
        if !da.is_empty() {
            tx.execute(&table.delete_sql(schema), &[&da, &db]).await?;
        }
        Ok(up)
    }

    /// Appends this batch's last change per key to the table's staging table, with `COPY`.
    pub(super) async fn stage<'a>(
        &'a self,
        tx: &Transaction<'_>,
        schema: &str,
        table: &KeyedTable,
        seq: i64,
        columns: impl Fn(&'a V) -> Staged<'a>,
    ) -> anyhow::Result<()> {
        if self.map.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "copy {schema}.{}__ops (seq, a, b, present, flag, txt, arr, num) from stdin binary",
            table.name
        );
        let sink = tx.copy_in(&sql).await?;
        let types = [
            Type::INT8,
            Type::TEXT,
            Type::TEXT,
            Type::BOOL,
            Type::BOOL,
            Type::TEXT,
            Type::TEXT_ARRAY,
            Type::INT2,
        ];
        let writer = BinaryCopyInWriter::new(sink, &types);
        pin_mut!(writer);
        for ((a, b), v) in &self.map {
            let staged = v.as_ref().map(&columns).unwrap_or_default();
            writer
                .as_mut()
                .write(&[
                    &seq,
                    a,
                    b,
                    &v.is_some(),
                    &staged.flag,
                    &staged.txt,
                    &staged.arr,
                    &staged.num,
                ])
                .await?;
        }
        writer.finish().await?;
        Ok(())
    }
}

/// The columns a staged keyed change carries besides its key: one generic staging shape for
/// every keyed table, so a rebuild needs no per-table staging code ([`Keyed::stage`]).
#[derive(Debug, Default)]
pub(super) struct Staged<'a> {
    pub(super) flag: Option<bool>,
    pub(super) txt: Option<&'a str>,
    pub(super) arr: Option<Vec<&'a str>>,
    pub(super) num: Option<i16>,
}

/// A keyed table: its (a, b) key columns and its value columns.
#[derive(Debug)]
pub(super) struct KeyedTable {
    pub(super) name: &'static str,
    pub(super) key: (&'static str, &'static str),
    pub(super) values: &'static [Value],
}

/// A value column of a keyed table, and how each write path fills it.
#[derive(Debug)]
pub(super) struct Value {
    pub(super) column: &'static str,
    /// The array type its upsert parameter is bound as.
    pub(super) param: &'static str,
    /// Its value from that parameter, unnested as `u.<column>`.
    pub(super) upsert: &'static str,
    /// Its value from a staged change (one of `flag`, `txt`, `arr`, `num`, maybe cast).
    pub(super) staged: &'static str,
}

impl KeyedTable {
    fn delete_sql(&self, schema: &str) -> String {
        format!(
            "delete from {schema}.{} as t using unnest($1::text[], $2::text[]) as d(a, b)
             where t.{} = d.a and t.{} = d.b",
            self.name, self.key.0, self.key.1
        )
    }

    fn columns(&self) -> String {
        let mut columns = format!("{}, {}", self.key.0, self.key.1);
        for v in self.values {
            columns.push_str(", ");
            columns.push_str(v.column);
        }
        columns
    }

    /// Upserts one batch: `params` are the key columns' arrays, then one per value column.
    pub(super) async fn upsert(
        &self,
        tx: &Transaction<'_>,
        schema: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> anyhow::Result<()> {
        debug_assert_eq!(params.len(), 2 + self.values.len());
        tx.execute(&self.upsert_sql(schema), params).await?;
        Ok(())
    }

    fn upsert_sql(&self, schema: &str) -> String {
        let (mut types, mut names, mut select, mut set) = (
            "$1::text[], $2::text[]".to_owned(),
            "a, b".to_owned(),
            "u.a, u.b".to_owned(),
            Vec::new(),
        );
        for (i, v) in self.values.iter().enumerate() {
            types.push_str(&format!(", ${}::{}", i + 3, v.param));
            names.push_str(&format!(", {}", v.column));
            select.push_str(&format!(", {}", v.upsert));
            set.push(format!("{0} = excluded.{0}", v.column));
        }
        let conflict = if set.is_empty() {
            "do nothing".to_owned()
        } else {
            format!(
                "({}, {}) do update set {}",
                self.key.0,
                self.key.1,
                set.join(", ")
            )
        };
        format!(
            "insert into {schema}.{} ({}) select {select} from unnest({types}) as u({names})
             on conflict {conflict}",
            self.name,
            self.columns()
        )
    }
}

/// A read-model table as a rebuild sees it: how its changes are staged and folded in.
#[derive(Debug)]
pub(crate) enum Table {
    Entity {
        name: &'static str,
        patched: Patched,
    },
    Keyed(&'static KeyedTable),
}

impl Table {
    pub(super) const fn entity<R: Row>() -> Self {
        Self::Entity {
            name: R::TABLE,
            patched: R::PATCHED,
        }
    }

    pub(super) fn name(&self) -> &'static str {
        match self {
            Self::Entity { name, .. } => name,
            Self::Keyed(k) => k.name,
        }
    }

    /// The staging table a staged rebuild appends this table's changes to.
    pub(crate) fn staging_table(&self, schema: &str) -> String {
        match self {
            Self::Entity { name, .. } => format!("{schema}.{name}__patches"),
            Self::Keyed(k) => format!("{schema}.{}__ops", k.name),
        }
    }

    pub(crate) fn staging_ddl(&self, schema: &str) -> String {
        let staging = self.staging_table(schema);
        match self {
            Self::Keyed(_) => format!(
                "create unlogged table {staging} (seq bigint not null, a text not null,
                     b text not null, present boolean not null, flag boolean, txt text, arr text[],
                     num smallint);"
            ),
            Self::Entity { .. } => format!(
                "create unlogged table {staging} (seq bigint not null, id text not null,
                     renamed boolean not null, name text, description text, lifecycle text,
                     updated_at timestamptz, last_position bigint, requested timestamptz);"
            ),
        }
    }

    /// Folds the staging table into the table: for keyed tables the last change per key (tables
    /// start empty, so a last change that is a delete leaves nothing); for entity tables, per row
    /// and per field, the last patch that set the field. One sort, whatever the number of
    /// batches.
    pub(crate) fn resolve_sql(&self, schema: &str) -> String {
        let staging = self.staging_table(schema);
        let (table, patched) = match self {
            Self::Keyed(k) => {
                let mut select = "a, b".to_owned();
                for v in k.values {
                    select.push_str(", ");
                    select.push_str(v.staged);
                }
                return format!(
                    "insert into {schema}.{} ({})
                     select {select} from (select distinct on (a, b) * from {staging}
                                           order by a, b, seq desc) o
                     where o.present",
                    k.name,
                    k.columns()
                );
            }
            Self::Entity { name, patched } => (name, patched),
        };
        let last = |col: &str, cond: &str| {
            format!("(array_agg({col} order by seq desc) filter (where {cond}))[1] as {col}")
        };
        let patches = format!(
            "(select id, bool_or(renamed) as renamed, {}, {}, {}, {}, {}, {}
              from {staging} group by id) p",
            last("name", "renamed"),
            last("description", "renamed"),
            last("lifecycle", "lifecycle is not null"),
            last("updated_at", "updated_at is not null"),
            last("last_position", "last_position is not null"),
            last("requested", "requested is not null"),
        );
        // Users are never patched: nothing to fold.
        let Some(set) = patched.set_sql() else {
            return "select 1".to_owned();
        };
        format!("update {schema}.{table} as t set {set} from {patches} where t.id = p.id")
    }
}

pub(super) fn unzip4<A, B, C, D>(
    it: impl Iterator<Item = (A, B, C, D)>,
) -> (Vec<A>, Vec<B>, Vec<C>, Vec<D>) {
    let (mut a, mut b, mut c, mut d) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (w, x, y, z) in it {
        a.push(w);
        b.push(x);
        c.push(y);
        d.push(z);
    }
    (a, b, c, d)
}

/// Appends patches of rows created in earlier batches to `{table}__patches`, with `COPY`.
async fn stage_patches(
    tx: &Transaction<'_>,
    schema: &str,
    table: &str,
    seq: i64,
    patches: &HashMap<String, Patch>,
) -> anyhow::Result<()> {
    if patches.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "copy {schema}.{table}__patches (seq, id, renamed, name, description, lifecycle, updated_at,
                                         last_position, requested) from stdin binary"
    );
    let sink = tx.copy_in(&sql).await?;
    let types = [
        Type::INT8,
        Type::TEXT,
        Type::BOOL,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TIMESTAMPTZ,
        Type::INT8,
        Type::TIMESTAMPTZ,
    ];
    let writer = BinaryCopyInWriter::new(sink, &types);
    pin_mut!(writer);
    for (id, p) in patches {
        let name = p.rename.as_ref().map(|r| r.0.as_str());
        let description = p.rename.as_ref().and_then(|r| r.1.as_deref());
        writer
            .as_mut()
            .write(&[
                &seq,
                id,
                &p.rename.is_some(),
                &name,
                &description,
                &p.lifecycle,
                &p.touched.map(|t| t.0),
                &p.touched.map(|t| t.1),
                &p.deletion_requested_at,
            ])
            .await?;
    }
    writer.finish().await?;
    Ok(())
}

/// Patches of [`Patched::Named`] tables: name, description, lifecycle.
async fn named_updates(
    tx: &Transaction<'_>,
    schema: &str,
    table: &str,
    patches: &HashMap<String, Patch>,
) -> anyhow::Result<()> {
    if patches.is_empty() {
        return Ok(());
    }
    let mut ids = Vec::new();
    let mut renamed = Vec::new();
    let mut names: Vec<Option<&str>> = Vec::new();
    let mut descriptions: Vec<Option<&str>> = Vec::new();
    let mut lifecycles: Vec<Option<&str>> = Vec::new();
    let mut updated: Vec<Option<DateTime<Utc>>> = Vec::new();
    let mut positions: Vec<Option<i64>> = Vec::new();
    for (id, p) in patches {
        ids.push(id.as_str());
        renamed.push(p.rename.is_some());
        names.push(p.rename.as_ref().map(|r| r.0.as_str()));
        descriptions.push(p.rename.as_ref().and_then(|r| r.1.as_deref()));
        lifecycles.push(p.lifecycle);
        updated.push(p.touched.map(|t| t.0));
        positions.push(p.touched.map(|t| t.1));
    }
    let sql = format!(
        "update {schema}.{table} as t set {}
         from unnest($1::text[], $2::bool[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::int8[])
              as p(id, renamed, name, description, lifecycle, updated_at, last_position)
         where t.id = p.id",
        Patched::Named.set_sql().expect("named tables are patched")
    );
    tx.execute(
        &sql,
        &[
            &ids,
            &renamed,
            &names,
            &descriptions,
            &lifecycles,
            &updated,
            &positions,
        ],
    )
    .await?;
    Ok(())
}

/// Patches of [`Patched::Lifecycle`] tables.
async fn lifecycle_updates(
    tx: &Transaction<'_>,
    schema: &str,
    table: &str,
    patches: &HashMap<String, Patch>,
) -> anyhow::Result<()> {
    if patches.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = patches.keys().map(String::as_str).collect();
    let lifecycles: Vec<Option<&str>> = patches.values().map(|p| p.lifecycle).collect();
    let updated: Vec<Option<DateTime<Utc>>> =
        patches.values().map(|p| p.touched.map(|t| t.0)).collect();
    let positions: Vec<Option<i64>> = patches.values().map(|p| p.touched.map(|t| t.1)).collect();
    let sql = format!(
        "update {schema}.{table} as t set {}
         from unnest($1::text[], $2::text[], $3::timestamptz[], $4::int8[])
              as p(id, lifecycle, updated_at, last_position)
         where t.id = p.id",
        Patched::Lifecycle
            .set_sql()
            .expect("lifecycle tables are patched")
    );
    tx.execute(&sql, &[&ids, &lifecycles, &updated, &positions])
        .await?;
    Ok(())
}

/// Patches of [`Patched::Deletion`] tables.
async fn deletion_updates(
    tx: &Transaction<'_>,
    schema: &str,
    table: &str,
    patches: &HashMap<String, Patch>,
) -> anyhow::Result<()> {
    if patches.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = patches.keys().map(String::as_str).collect();
    let lifecycles: Vec<Option<&str>> = patches.values().map(|p| p.lifecycle).collect();
    let requested: Vec<Option<DateTime<Utc>>> =
        patches.values().map(|p| p.deletion_requested_at).collect();
    let sql = format!(
        "update {schema}.{table} as t set {}
         from unnest($1::text[], $2::text[], $3::timestamptz[]) as p(id, lifecycle, requested)
         where t.id = p.id",
        Patched::Deletion
            .set_sql()
            .expect("deletion tables are patched")
    );
    tx.execute(&sql, &[&ids, &lifecycles, &requested]).await?;
    Ok(())
}
