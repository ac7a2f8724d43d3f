//! A batch of events turned into row changes, coalesced per key, then written set-wise.
//!
//! Every read-model table is either an *entity* table (one row per stream, created once and
//! then patched: renamed, deleted, …) or a *keyed* table (one row per (a, b) pair, upserted or
//! deleted, last write wins). Within a batch, changes to the same key are folded in memory, so
//! a batch becomes a handful of statements however many events it holds: new entities go in
//! with binary `COPY`, patches with one `UPDATE .. FROM unnest(..)` per table, keyed rows with
//! one `INSERT .. ON CONFLICT` and one `DELETE .. USING unnest(..)` per table. The incremental
//! projector and the rebuild run exactly this code; they differ only in batch size and target
//! schema.

use std::collections::HashMap;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use futures::pin_mut;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Transaction;

use plinth_commands::StoredEvent;
use plinth_domain::{AggregateKind, Event, Role};

use super::projection::{Projection, ProjectionSet};

/// Where an event sits in the log: what the read models record besides the event itself.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Envelope<'a> {
    pub(crate) stream_id: &'a str,
    pub(crate) position: i64,
    pub(crate) recorded_at: DateTime<Utc>,
}

/// Later changes to an existing entity row. `None` fields are left as they are.
#[derive(Debug, Default, Clone)]
struct Patch {
    rename: Option<(String, Option<String>)>,
    lifecycle: Option<&'static str>,
    deletion_requested_at: Option<DateTime<Utc>>,
    /// (updated_at, last_position)
    touched: Option<(DateTime<Utc>, i64)>,
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

    fn touched(e: &Envelope<'_>) -> Self {
        Self {
            touched: Some((e.recorded_at, e.position)),
            ..Self::default()
        }
    }
}

trait Row {
    const TABLE: &'static str;
    const COLUMNS: &'static str;
    fn types() -> Vec<Type>;
    fn id(&self) -> &str;
    fn patch(&mut self, p: &Patch);
    fn values(&self) -> Vec<&(dyn ToSql + Sync)>;
}

/// Rows created in this batch, and patches to rows created before it.
#[derive(Debug)]
struct Entities<R> {
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
    fn create(&mut self, row: R) {
        self.index.insert(row.id().to_owned(), self.created.len());
        self.created.push(row);
    }

    fn patch(&mut self, id: &str, patch: Patch) {
        match self.index.get(id) {
            Some(&i) => self.created[i].patch(&patch),
            None => self.patches.entry(id.to_owned()).or_default().merge(patch),
        }
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
type Upserts<'a, V> = Vec<(&'a str, &'a str, &'a V)>;

/// Upserts (`Some`) and deletes (`None`) by (a, b) key, last write wins.
#[derive(Debug)]
struct Keyed<V> {
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
    fn put(&mut self, a: &str, b: &str, v: V) {
        self.map.insert((a.to_owned(), b.to_owned()), Some(v));
    }

    fn remove(&mut self, a: &str, b: &str) {
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

    async fn delete(
        &self,
        tx: &Transaction<'_>,
        schema: &str,
        table: &str,
        cols: (&str, &str),
    ) -> anyhow::Result<Upserts<'_, V>> {
        let (da, db, up) = self.split();
        if !da.is_empty() {
            let sql = format!(
                "delete from {schema}.{table} as t using unnest($1::text[], $2::text[]) as d(a, b)
                 where t.{} = d.a and t.{} = d.b",
                cols.0, cols.1
            );
            tx.execute(&sql, &[&da, &db]).await?;
        }
        Ok(up)
    }
}

/// The columns a staged keyed change carries besides its key (see [`Changes::stage`]).
#[derive(Debug, Default)]
struct Staged<'a> {
    flag: Option<bool>,
    txt: Option<&'a str>,
    arr: Option<Vec<&'a str>>,
    num: Option<i16>,
}

impl<V> Keyed<V> {
    /// Appends this batch's last change per key to `{table}__ops`, with `COPY`.
    async fn stage<'a>(
        &'a self,
        tx: &Transaction<'_>,
        schema: &str,
        table: &str,
        seq: i64,
        columns: impl Fn(&'a V) -> Staged<'a>,
    ) -> anyhow::Result<()> {
        if self.map.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "copy {schema}.{table}__ops (seq, a, b, present, flag, txt, arr, num) from stdin binary"
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

/// Tables of (a, b)-keyed rows; the others are entity tables (one row per stream).
pub(crate) const KEYED_TABLES: [&str; 8] = [
    "grants",
    "location_availability",
    "rp_availability",
    "rp_authorizations",
    "rp_locations",
    "annotations",
    "statuses",
    "finalizers",
];

/// The staging table a staged rebuild appends `table`'s changes to.
pub(crate) fn staging_ddl(schema: &str, table: &str) -> String {
    if KEYED_TABLES.contains(&table) {
        format!(
            "create unlogged table {schema}.{table}__ops (seq bigint not null, a text not null,
                 b text not null, present boolean not null, flag boolean, txt text, arr text[],
                 num smallint);"
        )
    } else {
        format!(
            "create unlogged table {schema}.{table}__patches (seq bigint not null, id text not null,
                 renamed boolean not null, name text, description text, lifecycle text,
                 updated_at timestamptz, last_position bigint, requested timestamptz);"
        )
    }
}

/// Folds a staging table into `table`: for keyed tables the last change per key (tables start
/// empty, so a last change that is a delete leaves nothing); for entity tables, per row and per
/// field, the last patch that set the field. One sort, whatever the number of batches.
pub(crate) fn resolve_sql(schema: &str, table: &str) -> String {
    let last_ops = format!(
        "(select distinct on (a, b) * from {schema}.{table}__ops order by a, b, seq desc) o
         where o.present"
    );
    let last = |col: &str, cond: &str| {
        format!("(array_agg({col} order by seq desc) filter (where {cond}))[1] as {col}")
    };
    let patches = format!(
        "(select id, bool_or(renamed) as renamed, {}, {}, {}, {}, {}, {}
          from {schema}.{table}__patches group by id) p",
        last("name", "renamed"),
        last("description", "renamed"),
        last("lifecycle", "lifecycle is not null"),
        last("updated_at", "updated_at is not null"),
        last("last_position", "last_position is not null"),
        last("requested", "requested is not null"),
    );
    let named = "name = case when p.renamed then p.name else t.name end,
                 description = case when p.renamed then p.description else t.description end,
                 lifecycle = coalesce(p.lifecycle, t.lifecycle),
                 updated_at = coalesce(p.updated_at, t.updated_at),
                 last_position = coalesce(p.last_position, t.last_position)";
    let set = match table {
        "grants" => {
            return format!(
                "insert into {schema}.grants (user_id, tenant_id, role, rank)
                 select a, b, txt, num from {last_ops}"
            )
        }
        "location_availability" => {
            return format!(
                "insert into {schema}.location_availability (location_id, tenant_id, include_subtenants)
                 select a, b, flag from {last_ops}"
            )
        }
        "rp_availability" => {
            return format!(
                "insert into {schema}.rp_availability (rp_id, tenant_id, include_subtenants)
                 select a, b, flag from {last_ops}"
            )
        }
        "rp_authorizations" => {
            return format!(
                "insert into {schema}.rp_authorizations (rp_id, tenant_id, include_subtenants, scopes)
                 select a, b, flag, arr from {last_ops}"
            )
        }
        "rp_locations" => {
            return format!(
                "insert into {schema}.rp_locations (rp_id, location_id) select a, b from {last_ops}"
            )
        }
        "annotations" => {
            return format!(
                "insert into {schema}.annotations (resource_id, key, value) select a, b, txt from {last_ops}"
            )
        }
        "statuses" => {
            return format!(
                "insert into {schema}.statuses (resource_id, source, data) select a, b, txt::jsonb from {last_ops}"
            )
        }
        "finalizers" => {
            return format!(
                "insert into {schema}.finalizers (resource_id, finalizer) select a, b from {last_ops}"
            )
        }
        "tenants" | "locations" | "resource_providers" => named.to_owned(),
        "providers" => "lifecycle = coalesce(p.lifecycle, t.lifecycle),
                        updated_at = coalesce(p.updated_at, t.updated_at),
                        last_position = coalesce(p.last_position, t.last_position)"
            .to_owned(),
        "resources" => "lifecycle = coalesce(p.lifecycle, t.lifecycle),
                        deletion_requested_at = coalesce(p.requested, t.deletion_requested_at)"
            .to_owned(),
        // Users are never patched.
        _ => return "select 1".to_owned(),
    };
    format!("update {schema}.{table} as t set {set} from {patches} where t.id = p.id")
}

/// What `read.tenants` holds.
#[derive(Debug)]
struct TenantRow {
    id: String,
    parent_id: Option<String>,
    name: String,
    description: Option<String>,
    lifecycle: &'static str,
    depth: i32,
    path: String,
    ancestors: Vec<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    created_position: i64,
    last_position: i64,
}

/// Applies the fields every entity with a name shares.
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

impl Row for TenantRow {
    const TABLE: &'static str = "tenants";
    const COLUMNS: &'static str =
        "id, parent_id, name, description, lifecycle, depth, path, ancestors, \
                                   created_at, updated_at, created_position, last_position";
    fn types() -> Vec<Type> {
        vec![
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::INT4,
            Type::TEXT,
            Type::TEXT_ARRAY,
            Type::TIMESTAMPTZ,
            Type::TIMESTAMPTZ,
            Type::INT8,
            Type::INT8,
        ]
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn patch(&mut self, p: &Patch) {
        named_patch!(self, p);
    }
    fn values(&self) -> Vec<&(dyn ToSql + Sync)> {
        vec![
            &self.id,
            &self.parent_id,
            &self.name,
            &self.description,
            &self.lifecycle,
            &self.depth,
            &self.path,
            &self.ancestors,
            &self.created_at,
            &self.updated_at,
            &self.created_position,
            &self.last_position,
        ]
    }
}

/// What `read.locations` holds.
#[derive(Debug)]
struct LocationRow {
    id: String,
    tenant_id: String,
    name: String,
    description: Option<String>,
    lifecycle: &'static str,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    created_position: i64,
    last_position: i64,
}

impl Row for LocationRow {
    const TABLE: &'static str = "locations";
    const COLUMNS: &'static str =
        "id, tenant_id, name, description, lifecycle, created_at, updated_at, \
                                   created_position, last_position";
    fn types() -> Vec<Type> {
        vec![
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TIMESTAMPTZ,
            Type::TIMESTAMPTZ,
            Type::INT8,
            Type::INT8,
        ]
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn patch(&mut self, p: &Patch) {
        named_patch!(self, p);
    }
    fn values(&self) -> Vec<&(dyn ToSql + Sync)> {
        vec![
            &self.id,
            &self.tenant_id,
            &self.name,
            &self.description,
            &self.lifecycle,
            &self.created_at,
            &self.updated_at,
            &self.created_position,
            &self.last_position,
        ]
    }
}

/// What `read.resource_providers` holds.
#[derive(Debug)]
struct RpRow {
    id: String,
    tenant_id: String,
    name: String,
    description: Option<String>,
    scopes: Vec<String>,
    lifecycle: &'static str,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    created_position: i64,
    last_position: i64,
}

impl Row for RpRow {
    const TABLE: &'static str = "resource_providers";
    const COLUMNS: &'static str =
        "id, tenant_id, name, description, scopes, lifecycle, created_at, \
                                   updated_at, created_position, last_position";
    fn types() -> Vec<Type> {
        vec![
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT_ARRAY,
            Type::TEXT,
            Type::TIMESTAMPTZ,
            Type::TIMESTAMPTZ,
            Type::INT8,
            Type::INT8,
        ]
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn patch(&mut self, p: &Patch) {
        named_patch!(self, p);
    }
    fn values(&self) -> Vec<&(dyn ToSql + Sync)> {
        vec![
            &self.id,
            &self.tenant_id,
            &self.name,
            &self.description,
            &self.scopes,
            &self.lifecycle,
            &self.created_at,
            &self.updated_at,
            &self.created_position,
            &self.last_position,
        ]
    }
}

/// What `read.providers` holds.
#[derive(Debug)]
struct ProviderRow {
    id: String,
    tenant_id: String,
    rp_id: String,
    name: String,
    lifecycle: &'static str,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    created_position: i64,
    last_position: i64,
}

impl Row for ProviderRow {
    const TABLE: &'static str = "providers";
    const COLUMNS: &'static str = "id, tenant_id, rp_id, name, lifecycle, created_at, updated_at, \
                                   created_position, last_position";
    fn types() -> Vec<Type> {
        vec![
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TIMESTAMPTZ,
            Type::TIMESTAMPTZ,
            Type::INT8,
            Type::INT8,
        ]
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn patch(&mut self, p: &Patch) {
        if let Some(l) = p.lifecycle {
            self.lifecycle = l;
        }
        if let Some((at, position)) = p.touched {
            self.updated_at = at;
            self.last_position = position;
        }
    }
    fn values(&self) -> Vec<&(dyn ToSql + Sync)> {
        vec![
            &self.id,
            &self.tenant_id,
            &self.rp_id,
            &self.name,
            &self.lifecycle,
            &self.created_at,
            &self.updated_at,
            &self.created_position,
            &self.last_position,
        ]
    }
}

/// What `read.resources` holds. Deliberately nothing that changes with every event of the
/// stream (a version, an updated-at): metadata events are most of a busy log, and each would
/// then rewrite this row.
#[derive(Debug)]
struct ResourceRow {
    id: String,
    kind: &'static str,
    tenant_id: Option<String>,
    lifecycle: &'static str,
    deletion_requested_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    created_position: i64,
}

impl Row for ResourceRow {
    const TABLE: &'static str = "resources";
    const COLUMNS: &'static str =
        "id, kind, tenant_id, lifecycle, deletion_requested_at, created_at, created_position";
    fn types() -> Vec<Type> {
        vec![
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TIMESTAMPTZ,
            Type::TIMESTAMPTZ,
            Type::INT8,
        ]
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn patch(&mut self, p: &Patch) {
        if let Some(l) = p.lifecycle {
            self.lifecycle = l;
        }
        if p.deletion_requested_at.is_some() {
            self.deletion_requested_at = p.deletion_requested_at;
        }
    }
    fn values(&self) -> Vec<&(dyn ToSql + Sync)> {
        vec![
            &self.id,
            &self.kind,
            &self.tenant_id,
            &self.lifecycle,
            &self.deletion_requested_at,
            &self.created_at,
            &self.created_position,
        ]
    }
}

/// What `read.users` holds.
#[derive(Debug)]
struct UserRow {
    id: String,
    issuer: String,
    subject: String,
    created_at: DateTime<Utc>,
}

impl Row for UserRow {
    const TABLE: &'static str = "users";
    const COLUMNS: &'static str = "id, issuer, subject, created_at";
    fn types() -> Vec<Type> {
        vec![Type::TEXT, Type::TEXT, Type::TEXT, Type::TIMESTAMPTZ]
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn patch(&mut self, _: &Patch) {}
    fn values(&self) -> Vec<&(dyn ToSql + Sync)> {
        vec![&self.id, &self.issuer, &self.subject, &self.created_at]
    }
}

/// The rank stored beside a role, so that `max()` gives the effective role.
pub(crate) fn role_rank(role: Role) -> i16 {
    match role {
        Role::Viewer => 1,
        Role::Editor => 2,
        Role::Admin => 3,
    }
}

fn opt(s: &Option<impl ToString>) -> Option<String> {
    s.as_ref().map(|v| v.to_string())
}

/// Everything one batch changes, for the projections in `set`.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    set: ProjectionSet,
    events: usize,
    tenants: Entities<TenantRow>,
    users: Entities<UserRow>,
    grants: Keyed<(&'static str, i16)>,
    locations: Entities<LocationRow>,
    location_availability: Keyed<bool>,
    rps: Entities<RpRow>,
    rp_availability: Keyed<bool>,
    rp_authorizations: Keyed<(bool, String)>,
    rp_locations: Keyed<()>,
    providers: Entities<ProviderRow>,
    resources: Entities<ResourceRow>,
    annotations: Keyed<String>,
    statuses: Keyed<String>,
    finalizers: Keyed<()>,
}

impl Changes {
    pub(crate) fn new(set: ProjectionSet) -> Self {
        Self {
            set,
            ..Self::default()
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.events
    }

    /// Decodes and folds one stored event.
    pub(crate) fn add(&mut self, stored: &StoredEvent) -> anyhow::Result<()> {
        let envelope = Envelope {
            stream_id: &stored.stream_id,
            position: stored.position,
            recorded_at: stored.recorded_at,
        };
        let event = stored.decode().with_context(|| {
            format!(
                "event at position {} ({}) cannot be decoded",
                stored.position, stored.event_type
            )
        })?;
        self.add_decoded(&envelope, &event);
        Ok(())
    }

    pub(crate) fn add_decoded(&mut self, e: &Envelope<'_>, event: &Event) {
        self.events += 1;
        if self.set.contains(Projection::Tenants) {
            self.tenants_projection(e, event);
        }
        if self.set.contains(Projection::Locations) {
            self.locations_projection(e, event);
        }
        if self.set.contains(Projection::ResourceProviders) {
            self.rp_projection(e, event);
        }
        if self.set.contains(Projection::Resources) {
            self.resources_projection(e, event);
        }
    }

    fn lifecycle_patch(e: &Envelope<'_>, lifecycle: &'static str) -> Patch {
        Patch {
            lifecycle: Some(lifecycle),
            ..Patch::touched(e)
        }
    }

    /// `DeletionRequested` of a stream of `kind`?
    fn deleting(e: &Envelope<'_>, event: &Event, kind: AggregateKind) -> bool {
        matches!(event, Event::DeletionRequested { .. })
            && AggregateKind::of_stream(e.stream_id) == Some(kind)
    }

    fn tenants_projection(&mut self, e: &Envelope<'_>, event: &Event) {
        use Event as E;
        match event {
            E::TenantCreated {
                tenant_id,
                name,
                description,
                parent_id,
                path,
                depth,
            } => {
                let ancestors: Vec<String> = path.iter().map(|t| t.to_string()).collect();
                let mut full = ancestors.join("/");
                if !full.is_empty() {
                    full.push('/');
                }
                full.push_str(tenant_id.as_str());
                self.tenants.create(TenantRow {
                    id: tenant_id.to_string(),
                    parent_id: opt(parent_id),
                    name: name.to_string(),
                    description: opt(description),
                    lifecycle: "live",
                    depth: *depth as i32,
                    path: full,
                    ancestors,
                    created_at: e.recorded_at,
                    updated_at: e.recorded_at,
                    created_position: e.position,
                    last_position: e.position,
                });
            }
            E::TenantUpdated {
                tenant_id,
                name,
                description,
            } => self.tenants.patch(
                tenant_id.as_str(),
                Patch {
                    rename: Some((name.to_string(), opt(description))),
                    ..Patch::touched(e)
                },
            ),
            E::TenantDeleted { tenant_id } => self
                .tenants
                .patch(tenant_id.as_str(), Self::lifecycle_patch(e, "deleted")),
            E::DeletionRequested { .. } if Self::deleting(e, event, AggregateKind::Tenant) => self
                .tenants
                .patch(e.stream_id, Self::lifecycle_patch(e, "deleting")),
            E::UserCreated {
                user_id,
                issuer,
                subject,
            } => self.users.create(UserRow {
                id: user_id.to_string(),
                issuer: issuer.clone(),
                subject: subject.clone(),
                created_at: e.recorded_at,
            }),
            E::TenantAccessGranted {
                tenant_id,
                user_id,
                role,
            } => self.grants.put(
                user_id.as_str(),
                tenant_id.as_str(),
                (role.as_str(), role_rank(*role)),
            ),
            E::TenantAccessRevoked { tenant_id, user_id } => {
                self.grants.remove(user_id.as_str(), tenant_id.as_str())
            }
            _ => {}
        }
    }

    fn locations_projection(&mut self, e: &Envelope<'_>, event: &Event) {
        use Event as E;
        match event {
            E::LocationCreated {
                location_id,
                tenant_id,
                name,
                description,
            } => self.locations.create(LocationRow {
                id: location_id.to_string(),
                tenant_id: tenant_id.to_string(),
                name: name.to_string(),
                description: opt(description),
                lifecycle: "live",
                created_at: e.recorded_at,
                updated_at: e.recorded_at,
                created_position: e.position,
                last_position: e.position,
            }),
            E::LocationUpdated {
                location_id,
                name,
                description,
            } => self.locations.patch(
                location_id.as_str(),
                Patch {
                    rename: Some((name.to_string(), opt(description))),
                    ..Patch::touched(e)
                },
            ),
            E::LocationDeleted { location_id } => self
                .locations
                .patch(location_id.as_str(), Self::lifecycle_patch(e, "deleted")),
            E::DeletionRequested { .. } if Self::deleting(e, event, AggregateKind::Location) => {
                self.locations
                    .patch(e.stream_id, Self::lifecycle_patch(e, "deleting"))
            }
            E::LocationMadeAvailable {
                location_id,
                tenant_id,
                include_subtenants,
            } => self.location_availability.put(
                location_id.as_str(),
                tenant_id.as_str(),
                *include_subtenants,
            ),
            E::LocationAvailabilityRevoked {
                location_id,
                tenant_id,
            } => self
                .location_availability
                .remove(location_id.as_str(), tenant_id.as_str()),
            _ => {}
        }
    }

    fn rp_projection(&mut self, e: &Envelope<'_>, event: &Event) {
        use Event as E;
        match event {
            E::ResourceProviderCreated {
                resource_provider_id,
                tenant_id,
                name,
                description,
                scopes,
            } => self.rps.create(RpRow {
                id: resource_provider_id.to_string(),
                tenant_id: tenant_id.to_string(),
                name: name.to_string(),
                description: opt(description),
                scopes: scopes.iter().map(|s| s.to_string()).collect(),
                lifecycle: "live",
                created_at: e.recorded_at,
                updated_at: e.recorded_at,
                created_position: e.position,
                last_position: e.position,
            }),
            E::ResourceProviderUpdated {
                resource_provider_id,
                name,
                description,
            } => self.rps.patch(
                resource_provider_id.as_str(),
                Patch {
                    rename: Some((name.to_string(), opt(description))),
                    ..Patch::touched(e)
                },
            ),
            E::ResourceProviderDeleted {
                resource_provider_id,
            } => self.rps.patch(
                resource_provider_id.as_str(),
                Self::lifecycle_patch(e, "deleted"),
            ),
            E::DeletionRequested { .. }
                if Self::deleting(e, event, AggregateKind::ResourceProvider) =>
            {
                self.rps
                    .patch(e.stream_id, Self::lifecycle_patch(e, "deleting"))
            }
            E::DeletionRequested { .. } if Self::deleting(e, event, AggregateKind::Provider) => {
                self.providers
                    .patch(e.stream_id, Self::lifecycle_patch(e, "deleting"))
            }
            E::ResourceProviderMadeAvailable {
                resource_provider_id,
                tenant_id,
                include_subtenants,
            } => self.rp_availability.put(
                resource_provider_id.as_str(),
                tenant_id.as_str(),
                *include_subtenants,
            ),
            E::ResourceProviderAvailabilityRevoked {
                resource_provider_id,
                tenant_id,
            } => self
                .rp_availability
                .remove(resource_provider_id.as_str(), tenant_id.as_str()),
            E::ResourceProviderLocationAdded {
                resource_provider_id,
                location_id,
            } => self
                .rp_locations
                .put(resource_provider_id.as_str(), location_id.as_str(), ()),
            E::ResourceProviderLocationRemoved {
                resource_provider_id,
                location_id,
            } => self
                .rp_locations
                .remove(resource_provider_id.as_str(), location_id.as_str()),
            E::ProviderAuthorized {
                resource_provider_id,
                tenant_id,
                include_subtenants,
                scopes,
            } => {
                let scopes: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
                self.rp_authorizations.put(
                    resource_provider_id.as_str(),
                    tenant_id.as_str(),
                    (*include_subtenants, scopes.join(",")),
                )
            }
            E::ProviderAuthorizationRevoked {
                resource_provider_id,
                tenant_id,
            } => self
                .rp_authorizations
                .remove(resource_provider_id.as_str(), tenant_id.as_str()),
            E::ProviderRegistered {
                provider_id,
                tenant_id,
                resource_provider_id,
                name,
            } => self.providers.create(ProviderRow {
                id: provider_id.to_string(),
                tenant_id: tenant_id.to_string(),
                rp_id: resource_provider_id.to_string(),
                name: name.to_string(),
                lifecycle: "live",
                created_at: e.recorded_at,
                updated_at: e.recorded_at,
                created_position: e.position,
                last_position: e.position,
            }),
            E::ProviderUnregistered { provider_id } => self
                .providers
                .patch(provider_id.as_str(), Self::lifecycle_patch(e, "deleted")),
            _ => {}
        }
    }

    fn resources_projection(&mut self, e: &Envelope<'_>, event: &Event) {
        use Event as E;
        let created = |kind: AggregateKind, tenant_id: Option<String>| ResourceRow {
            id: e.stream_id.to_owned(),
            kind: kind.as_str(),
            tenant_id,
            lifecycle: "live",
            deletion_requested_at: None,
            created_at: e.recorded_at,
            created_position: e.position,
        };
        let row = match event {
            E::TenantCreated { tenant_id, .. } => {
                Some(created(AggregateKind::Tenant, Some(tenant_id.to_string())))
            }
            E::UserCreated { .. } => Some(created(AggregateKind::User, None)),
            E::LocationCreated { tenant_id, .. } => Some(created(
                AggregateKind::Location,
                Some(tenant_id.to_string()),
            )),
            E::ResourceProviderCreated { tenant_id, .. } => Some(created(
                AggregateKind::ResourceProvider,
                Some(tenant_id.to_string()),
            )),
            E::ProviderRegistered { tenant_id, .. } => Some(created(
                AggregateKind::Provider,
                Some(tenant_id.to_string()),
            )),
            _ => None,
        };
        if let Some(row) = row {
            self.resources.create(row);
            return;
        }
        match event {
            E::TenantDeleted { .. }
            | E::LocationDeleted { .. }
            | E::ResourceProviderDeleted { .. }
            | E::ProviderUnregistered { .. } => self.resources.patch(
                e.stream_id,
                Patch {
                    lifecycle: Some("deleted"),
                    ..Patch::default()
                },
            ),
            E::DeletionRequested { requested_at, .. } => self.resources.patch(
                e.stream_id,
                Patch {
                    lifecycle: Some("deleting"),
                    deletion_requested_at: Some(*requested_at),
                    ..Patch::default()
                },
            ),
            E::AnnotationSet {
                resource_id,
                key,
                value,
            } => self
                .annotations
                .put(resource_id.as_str(), key.as_str(), value.to_string()),
            E::AnnotationRemoved { resource_id, key } => {
                self.annotations.remove(resource_id.as_str(), key.as_str())
            }
            E::StatusSet {
                resource_id,
                source,
                data,
            } => self.statuses.put(
                resource_id.as_str(),
                source.as_str(),
                serde_json::Value::from(data.clone()).to_string(),
            ),
            E::StatusRemoved {
                resource_id,
                source,
            } => self.statuses.remove(resource_id.as_str(), source.as_str()),
            E::FinalizerAdded {
                resource_id,
                finalizer,
            } => self
                .finalizers
                .put(resource_id.as_str(), finalizer.as_str(), ()),
            E::FinalizerRemoved {
                resource_id,
                finalizer,
            } => self
                .finalizers
                .remove(resource_id.as_str(), finalizer.as_str()),
            _ => {}
        }
    }

    /// A rebuild's fast path: new entities are copied into their tables as usual, but every
    /// other change is appended (with `COPY`, to unindexed, unlogged staging tables, tagged
    /// with the batch number `seq`) instead of being applied; [`resolve_sql`] folds them in
    /// once at the end. Appending costs the same whatever was written before, where upserts
    /// and updates pay for an index probe and a new row version each.
    pub(crate) async fn stage(
        &self,
        tx: &Transaction<'_>,
        schema: &str,
        seq: i64,
    ) -> anyhow::Result<()> {
        let flag = |v: &bool| Staged {
            flag: Some(*v),
            ..Staged::default()
        };
        let unit = |_: &()| Staged::default();
        if self.set.contains(Projection::Tenants) {
            self.tenants.copy_created(tx, schema).await?;
            stage_patches(tx, schema, "tenants", seq, &self.tenants.patches).await?;
            self.users.copy_created(tx, schema).await?;
            self.grants
                .stage(tx, schema, "grants", seq, |v| Staged {
                    txt: Some(v.0),
                    num: Some(v.1),
                    ..Staged::default()
                })
                .await?;
        }
        if self.set.contains(Projection::Locations) {
            self.locations.copy_created(tx, schema).await?;
            stage_patches(tx, schema, "locations", seq, &self.locations.patches).await?;
            self.location_availability
                .stage(tx, schema, "location_availability", seq, flag)
                .await?;
        }
        if self.set.contains(Projection::ResourceProviders) {
            self.rps.copy_created(tx, schema).await?;
            stage_patches(tx, schema, "resource_providers", seq, &self.rps.patches).await?;
            self.rp_availability
                .stage(tx, schema, "rp_availability", seq, flag)
                .await?;
            self.rp_authorizations
                .stage(tx, schema, "rp_authorizations", seq, |v| Staged {
                    flag: Some(v.0),
                    arr: Some(v.1.split(',').collect()),
                    ..Staged::default()
                })
                .await?;
            self.rp_locations
                .stage(tx, schema, "rp_locations", seq, unit)
                .await?;
            self.providers.copy_created(tx, schema).await?;
            stage_patches(tx, schema, "providers", seq, &self.providers.patches).await?;
        }
        if self.set.contains(Projection::Resources) {
            self.resources.copy_created(tx, schema).await?;
            stage_patches(tx, schema, "resources", seq, &self.resources.patches).await?;
            self.annotations
                .stage(tx, schema, "annotations", seq, |v| Staged {
                    txt: Some(v.as_str()),
                    ..Staged::default()
                })
                .await?;
            self.statuses
                .stage(tx, schema, "statuses", seq, |v| Staged {
                    txt: Some(v.as_str()),
                    ..Staged::default()
                })
                .await?;
            self.finalizers
                .stage(tx, schema, "finalizers", seq, unit)
                .await?;
        }
        Ok(())
    }

    /// Writes everything to the tables of `schema` (`read`, or a rebuild's schema).
    pub(crate) async fn flush(&self, tx: &Transaction<'_>, schema: &str) -> anyhow::Result<()> {
        if self.set.contains(Projection::Tenants) {
            self.tenants.copy_created(tx, schema).await?;
            named_updates(tx, schema, "tenants", &self.tenants.patches).await?;
            self.users.copy_created(tx, schema).await?;
            let up = self
                .grants
                .delete(tx, schema, "grants", ("user_id", "tenant_id"))
                .await?;
            if !up.is_empty() {
                let (a, b, role, rank) = unzip4(up.iter().map(|(a, b, v)| (*a, *b, v.0, v.1)));
                let sql = format!(
                    "insert into {schema}.grants (user_id, tenant_id, role, rank)
                     select * from unnest($1::text[], $2::text[], $3::text[], $4::int2[])
                     on conflict (user_id, tenant_id) do update
                     set role = excluded.role, rank = excluded.rank"
                );
                tx.execute(&sql, &[&a, &b, &role, &rank]).await?;
            }
        }
        if self.set.contains(Projection::Locations) {
            self.locations.copy_created(tx, schema).await?;
            named_updates(tx, schema, "locations", &self.locations.patches).await?;
            availability(
                tx,
                schema,
                "location_availability",
                "location_id",
                &self.location_availability,
            )
            .await?;
        }
        if self.set.contains(Projection::ResourceProviders) {
            self.rps.copy_created(tx, schema).await?;
            named_updates(tx, schema, "resource_providers", &self.rps.patches).await?;
            availability(
                tx,
                schema,
                "rp_availability",
                "rp_id",
                &self.rp_availability,
            )
            .await?;
            let up = self
                .rp_authorizations
                .delete(tx, schema, "rp_authorizations", ("rp_id", "tenant_id"))
                .await?;
            if !up.is_empty() {
                let (a, b, inc, scopes) =
                    unzip4(up.iter().map(|(a, b, v)| (*a, *b, v.0, v.1.as_str())));
                let sql = format!(
                    "insert into {schema}.rp_authorizations (rp_id, tenant_id, include_subtenants, scopes)
                     select a, b, inc, string_to_array(s, ',')
                     from unnest($1::text[], $2::text[], $3::bool[], $4::text[]) as u(a, b, inc, s)
                     on conflict (rp_id, tenant_id) do update
                     set include_subtenants = excluded.include_subtenants, scopes = excluded.scopes"
                );
                tx.execute(&sql, &[&a, &b, &inc, &scopes]).await?;
            }
            let up = self
                .rp_locations
                .delete(tx, schema, "rp_locations", ("rp_id", "location_id"))
                .await?;
            pairs(tx, schema, "rp_locations", ("rp_id", "location_id"), &up).await?;
            self.providers.copy_created(tx, schema).await?;
            lifecycle_updates(tx, schema, "providers", &self.providers.patches).await?;
        }
        if self.set.contains(Projection::Resources) {
            self.resources.copy_created(tx, schema).await?;
            resource_updates(tx, schema, &self.resources.patches).await?;
            let up = self
                .annotations
                .delete(tx, schema, "annotations", ("resource_id", "key"))
                .await?;
            if !up.is_empty() {
                let (a, b, v, _) = unzip4(up.iter().map(|(a, b, v)| (*a, *b, v.as_str(), ())));
                let sql = format!(
                    "insert into {schema}.annotations (resource_id, key, value)
                     select * from unnest($1::text[], $2::text[], $3::text[])
                     on conflict (resource_id, key) do update set value = excluded.value"
                );
                tx.execute(&sql, &[&a, &b, &v]).await?;
            }
            let up = self
                .statuses
                .delete(tx, schema, "statuses", ("resource_id", "source"))
                .await?;
            if !up.is_empty() {
                let (a, b, v, _) = unzip4(up.iter().map(|(a, b, v)| (*a, *b, v.as_str(), ())));
                let sql = format!(
                    "insert into {schema}.statuses (resource_id, source, data)
                     select a, b, d::jsonb from unnest($1::text[], $2::text[], $3::text[]) as u(a, b, d)
                     on conflict (resource_id, source) do update set data = excluded.data"
                );
                tx.execute(&sql, &[&a, &b, &v]).await?;
            }
            let up = self
                .finalizers
                .delete(tx, schema, "finalizers", ("resource_id", "finalizer"))
                .await?;
            pairs(tx, schema, "finalizers", ("resource_id", "finalizer"), &up).await?;
        }
        Ok(())
    }
}

fn unzip4<A, B, C, D>(it: impl Iterator<Item = (A, B, C, D)>) -> (Vec<A>, Vec<B>, Vec<C>, Vec<D>) {
    let (mut a, mut b, mut c, mut d) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (w, x, y, z) in it {
        a.push(w);
        b.push(x);
        c.push(y);
        d.push(z);
    }
    (a, b, c, d)
}

async fn availability(
    tx: &Transaction<'_>,
    schema: &str,
    table: &str,
    id_col: &str,
    keyed: &Keyed<bool>,
) -> anyhow::Result<()> {
    let up = keyed
        .delete(tx, schema, table, (id_col, "tenant_id"))
        .await?;
    if up.is_empty() {
        return Ok(());
    }
    let (a, b, inc, _) = unzip4(up.iter().map(|(a, b, v)| (*a, *b, **v, ())));
    let sql = format!(
        "insert into {schema}.{table} ({id_col}, tenant_id, include_subtenants)
         select * from unnest($1::text[], $2::text[], $3::bool[])
         on conflict ({id_col}, tenant_id) do update set include_subtenants = excluded.include_subtenants"
    );
    tx.execute(&sql, &[&a, &b, &inc]).await?;
    Ok(())
}

async fn pairs(
    tx: &Transaction<'_>,
    schema: &str,
    table: &str,
    cols: (&str, &str),
    up: &[(&str, &str, &())],
) -> anyhow::Result<()> {
    if up.is_empty() {
        return Ok(());
    }
    let (a, b, _, _) = unzip4(up.iter().map(|(a, b, _)| (*a, *b, (), ())));
    let sql = format!(
        "insert into {schema}.{table} ({}, {}) select * from unnest($1::text[], $2::text[])
         on conflict do nothing",
        cols.0, cols.1
    );
    tx.execute(&sql, &[&a, &b]).await?;
    Ok(())
}

/// Patches of tenants, locations, resource providers: name, description, lifecycle.
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
        "update {schema}.{table} as t set
             name = case when p.renamed then p.name else t.name end,
             description = case when p.renamed then p.description else t.description end,
             lifecycle = coalesce(p.lifecycle, t.lifecycle),
             updated_at = coalesce(p.updated_at, t.updated_at),
             last_position = coalesce(p.last_position, t.last_position)
         from unnest($1::text[], $2::bool[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::int8[])
              as p(id, renamed, name, description, lifecycle, updated_at, last_position)
         where t.id = p.id"
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

/// Patches of providers: lifecycle only (they are never renamed).
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
        "update {schema}.{table} as t set
             lifecycle = coalesce(p.lifecycle, t.lifecycle),
             updated_at = coalesce(p.updated_at, t.updated_at),
             last_position = coalesce(p.last_position, t.last_position)
         from unnest($1::text[], $2::text[], $3::timestamptz[], $4::int8[])
              as p(id, lifecycle, updated_at, last_position)
         where t.id = p.id"
    );
    tx.execute(&sql, &[&ids, &lifecycles, &updated, &positions])
        .await?;
    Ok(())
}

async fn resource_updates(
    tx: &Transaction<'_>,
    schema: &str,
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
        "update {schema}.resources as t set
             lifecycle = coalesce(p.lifecycle, t.lifecycle),
             deletion_requested_at = coalesce(p.requested, t.deletion_requested_at)
         from unnest($1::text[], $2::text[], $3::timestamptz[]) as p(id, lifecycle, requested)
         where t.id = p.id"
    );
    tx.execute(&sql, &[&ids, &lifecycles, &requested]).await?;
    Ok(())
}
