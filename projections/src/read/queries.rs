//! Queries over the read models. Each answers in a bounded number of indexed lookups: subtrees
//! are path ranges, "T or an ancestor of T" is `= any(ancestors)`, and nothing walks the tree.
//!
//! Authorization of reads is decided here too, from the `tenants` projection's grants: a
//! platform administrator sees everything; anyone else sees the subtrees below their grants
//! (any role may read). A query about something the viewer may not see answers `None`,
//! exactly as if it did not exist, so callers cannot tell the two apart (the API's 404).

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;
use tokio_postgres::Row;

use plinth_commands::{log, Checkpoint, StoredEvent};
use plinth_domain::{Actor, Scope};

mod annotated;
mod permissions;
mod providers;
mod shared;

pub use annotated::{annotated_resources, AnnotatedResource};
pub use permissions::{tenant_grants, user_roles, GrantView, GrantsRefusal, RoleView};
pub use providers::{
    provider, resource_provider_providers, tenant_providers, ProviderDetail, ProviderView,
    UsableProvider,
};
pub use shared::{
    location, resource_provider, AvailabilityView, LocationDetail, ResourceProviderDetail,
};

/// Who is reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Viewer {
    /// A platform administrator: sees everything.
    Platform,
    /// A user: sees the subtrees below its grants.
    User(String),
}

impl Viewer {
    pub fn of(actor: &Actor) -> Self {
        if actor.platform_admin {
            Self::Platform
        } else {
            Self::User(actor.user_id.to_string())
        }
    }

    fn user(&self) -> Option<&str> {
        match self {
            Self::Platform => None,
            Self::User(u) => Some(u),
        }
    }
}

/// One page of a list: `next` is the sort key of the last item when more may follow.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows fetched in order.
    fn from_rows(mut items: Vec<T>, limit: i64, key: impl Fn(&T) -> String) -> Self {
        let more = items.len() as i64 > limit;
        items.truncate(limit.max(0) as usize);
        let next = if more { items.last().map(key) } else { None };
        Self { items, next }
    }
}

/// Where to start and how much to return.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    /// The `next` of the previous page.
    pub after: Option<String>,
    pub limit: i64,
}

impl PageRequest {
    fn after(&self) -> &str {
        self.after.as_deref().unwrap_or("")
    }

    fn fetch(&self) -> i64 {
        self.limit + 1
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct TenantView {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub parent_id: Option<String>,
    /// 0 for a root.
    pub depth: i32,
    pub lifecycle: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const TENANT_COLUMNS: &str =
    "t.id, t.name, t.description, t.parent_id, t.depth, t.lifecycle, t.created_at, t.updated_at, t.path";

fn tenant_view(row: &Row) -> TenantView {
    TenantView {
        id: row.get("id"),
        name: row.get("name"),
        description: row.get("description"),
        parent_id: row.get("parent_id"),
        depth: row.get("depth"),
        lifecycle: row.get("lifecycle"),
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
    }
}

/// A descendant, with its depth below the tenant asked about (children are 1).
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct DescendantView {
    #[serde(flatten)]
    pub tenant: TenantView,
    pub relative_depth: i32,
    #[serde(skip)]
    path: String,
}

/// A tenant's row as the authorization of reads needs it.
#[derive(Debug, Clone)]
struct TenantRef {
    path: String,
    depth: i32,
    ancestors: Vec<String>,
    /// The viewer's effective rank here (3 for platform administrators), if any.
    rank: Option<i16>,
}

/// The tenant (not deleted) and the viewer's rank on it.
async fn tenant_ref(
    client: &impl GenericClient,
    viewer: &Viewer,
    tenant_id: &str,
    include_deleted: bool,
) -> anyhow::Result<Option<TenantRef>> {
    let statement = client
        .prepare_cached(
            "select t.path, t.depth, t.ancestors, t.lifecycle,
                    (select max(g.rank) from read.grants g
                     where g.user_id = $2 and g.tenant_id = any(t.ancestors || t.id)) as rank
             from read.tenants t where t.id = $1",
        )
        .await?;
    let Some(row) = client
        .query_opt(&statement, &[&tenant_id, &viewer.user().unwrap_or("")])
        .await?
    else {
        return Ok(None);
    };
    if !include_deleted && row.get::<_, &str>("lifecycle") == "deleted" {
        return Ok(None);
    }
    let rank = match viewer {
        Viewer::Platform => Some(3),
        Viewer::User(_) => row.get("rank"),
    };
    Ok(Some(TenantRef {
        path: row.get("path"),
        depth: row.get("depth"),
        ancestors: row.get("ancestors"),
        rank,
    }))
}

/// The tenant if it exists and the viewer may see it.
async fn visible_tenant(
    client: &impl GenericClient,
    viewer: &Viewer,
    tenant_id: &str,
) -> anyhow::Result<Option<TenantRef>> {
    Ok(tenant_ref(client, viewer, tenant_id, false)
        .await?
        .filter(|t| t.rank.is_some()))
}

/// Whether the viewer may read what tenant `tenant_id` governs (even if it is deleted now:
/// history stays readable to those who could read the tenant).
pub async fn can_view_tenant(
    client: &impl GenericClient,
    viewer: &Viewer,
    tenant_id: &str,
) -> anyhow::Result<bool> {
    Ok(tenant_ref(client, viewer, tenant_id, true)
        .await?
        .is_some_and(|t| t.rank.is_some()))
}

/// A tenant as its GET answers it: with its metadata.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct TenantDetail {
    #[serde(flatten)]
    pub tenant: TenantView,
    pub metadata: MetadataView,
}

pub async fn tenant(
    client: &impl GenericClient,
    viewer: &Viewer,
    id: &str,
) -> anyhow::Result<Option<TenantDetail>> {
    if visible_tenant(client, viewer, id).await?.is_none() {
        return Ok(None);
    }
    let row = client
        .query_opt(
            &format!("select {TENANT_COLUMNS} from read.tenants t where t.id = $1"),
            &[&id],
        )
        .await?;
    let Some(tenant) = row.as_ref().map(tenant_view) else {
        return Ok(None);
    };
    Ok(Some(TenantDetail {
        tenant,
        metadata: metadata_of(client, id).await?,
    }))
}

/// The roots the viewer may see: real roots for platform administrators; for others, the
/// topmost tenants they hold a grant on (a grant on an ancestor hides the ones below it).
pub async fn roots(
    client: &impl GenericClient,
    viewer: &Viewer,
    page: &PageRequest,
) -> anyhow::Result<Page<TenantView>> {
    let rows = match viewer {
        Viewer::Platform => {
            client
                .query(
                    &format!(
                        "select {TENANT_COLUMNS} from read.tenants t
                         where t.parent_id is null and t.lifecycle <> 'deleted' and t.id > $1
                         order by t.id limit $2"
                    ),
                    &[&page.after(), &page.fetch()],
                )
                .await?
        }
        Viewer::User(user) => {
            client
                .query(
                    &format!(
                        "select {TENANT_COLUMNS} from read.grants g join read.tenants t on t.id = g.tenant_id
                         where g.user_id = $3 and t.lifecycle <> 'deleted' and t.id > $1
                           and not exists (select 1 from read.grants g2
                                           where g2.user_id = $3 and g2.tenant_id = any(t.ancestors))
                         order by t.id limit $2"
                    ),
                    &[&page.after(), &page.fetch(), user],
                )
                .await?
        }
    };
    let items = rows.iter().map(tenant_view).collect();
    Ok(Page::from_rows(items, page.limit, |t: &TenantView| {
        t.id.clone()
    }))
}

pub async fn children(
    client: &impl GenericClient,
    viewer: &Viewer,
    id: &str,
    page: &PageRequest,
) -> anyhow::Result<Option<Page<TenantView>>> {
    if visible_tenant(client, viewer, id).await?.is_none() {
        return Ok(None);
    }
    let rows = client
        .query(
            &format!(
                "select {TENANT_COLUMNS} from read.tenants t
                 where t.parent_id = $1 and t.lifecycle <> 'deleted' and t.id > $2
                 order by t.id limit $3"
            ),
            &[&id, &page.after(), &page.fetch()],
        )
        .await?;
    let items = rows.iter().map(tenant_view).collect();
    Ok(Some(Page::from_rows(
        items,
        page.limit,
        |t: &TenantView| t.id.clone(),
    )))
}

/// Ancestors, parent first, as far up as the viewer may see.
pub async fn ancestors(
    client: &impl GenericClient,
    viewer: &Viewer,
    id: &str,
    page: &PageRequest,
) -> anyhow::Result<Option<Page<TenantView>>> {
    let Some(t) = visible_tenant(client, viewer, id).await? else {
        return Ok(None);
    };
    let rows = client
        .query(
            &format!(
                "select {TENANT_COLUMNS},
                        (select max(g.rank) from read.grants g
                         where g.user_id = $2 and g.tenant_id = any(t.ancestors || t.id)) as rank
                 from read.tenants t where t.id = any($1::text[]) order by t.depth desc"
            ),
            &[&t.ancestors, &viewer.user().unwrap_or("")],
        )
        .await?;
    let mut items: Vec<TenantView> = rows
        .iter()
        .take_while(|r| *viewer == Viewer::Platform || r.get::<_, Option<i16>>("rank").is_some())
        .map(tenant_view)
        .collect();
    if let Some(after) = &page.after {
        match items.iter().position(|t| &t.id == after) {
            Some(i) => {
                items.drain(..=i);
            }
            None => items.clear(),
        }
    }
    items.truncate(page.fetch() as usize);
    Ok(Some(Page::from_rows(
        items,
        page.limit,
        |t: &TenantView| t.id.clone(),
    )))
}

/// Descendants in depth-first order (a range scan of the path index), down to `max_depth`
/// levels below the tenant.
pub async fn descendants(
    client: &impl GenericClient,
    viewer: &Viewer,
    id: &str,
    max_depth: Option<i32>,
    page: &PageRequest,
) -> anyhow::Result<Option<Page<DescendantView>>> {
    let Some(t) = visible_tenant(client, viewer, id).await? else {
        return Ok(None);
    };
    let lower = format!("{}/", t.path);
    let start = if page.after() > lower.as_str() {
        page.after().to_owned()
    } else {
        lower
    };
    let upper = format!("{}0", t.path);
    let max_depth = max_depth.map_or(i32::MAX, |d| t.depth.saturating_add(d));
    let rows = client
        .query(
            &format!(
                "select {TENANT_COLUMNS} from read.tenants t
                 where t.path > $1 and t.path < $2 and t.depth <= $3 and t.lifecycle <> 'deleted'
                 order by t.path limit $4"
            ),
            &[&start, &upper, &max_depth, &page.fetch()],
        )
        .await?;
    let items = rows
        .iter()
        .map(|r| {
            let tenant = tenant_view(r);
            DescendantView {
                relative_depth: tenant.depth - t.depth,
                tenant,
                path: r.get("path"),
            }
        })
        .collect();
    Ok(Some(Page::from_rows(
        items,
        page.limit,
        |d: &DescendantView| d.path.clone(),
    )))
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct LocationView {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub description: Option<String>,
    pub lifecycle: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn location_view(row: &Row) -> LocationView {
    LocationView {
        id: row.get("id"),
        tenant_id: row.get("tenant_id"),
        name: row.get("name"),
        description: row.get("description"),
        lifecycle: row.get("lifecycle"),
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
    }
}

/// A location a tenant may use, and why.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct UsableLocation {
    #[serde(flatten)]
    pub location: LocationView,
    /// `owned` or `available`.
    pub via: String,
}

/// The locations tenant `id` may use: owned, or made available to it or (with
/// include_subtenants) to an ancestor — including to ancestors before it was created.
pub async fn tenant_locations(
    client: &impl GenericClient,
    viewer: &Viewer,
    id: &str,
    page: &PageRequest,
) -> anyhow::Result<Option<Page<UsableLocation>>> {
    let Some(t) = visible_tenant(client, viewer, id).await? else {
        return Ok(None);
    };
    let rows = client
        .query(
            "with usable as (
                 select l.id from read.locations l where l.tenant_id = $1
                 union
                 select a.location_id from read.location_availability a
                 where a.tenant_id = $1 or (a.include_subtenants and a.tenant_id = any($2::text[]))
             )
             select l.*, case when l.tenant_id = $1 then 'owned' else 'available' end as via
             from read.locations l join usable u on u.id = l.id
             where l.lifecycle <> 'deleted' and l.id > $3
             order by l.id limit $4",
            &[&id, &t.ancestors, &page.after(), &page.fetch()],
        )
        .await?;
    let items = rows
        .iter()
        .map(|r| UsableLocation {
            location: location_view(r),
            via: r.get("via"),
        })
        .collect();
    Ok(Some(Page::from_rows(
        items,
        page.limit,
        |l: &UsableLocation| l.location.id.clone(),
    )))
}

/// The governing tenant of a resource row (`read.resources`), if the viewer may read it.
/// Deleted resources count as missing unless `include_deleted`.
pub async fn visible_resource(
    client: &impl GenericClient,
    viewer: &Viewer,
    id: &str,
    include_deleted: bool,
) -> anyhow::Result<Option<ResourceRef>> {
    let statement = client
        .prepare_cached("select kind, tenant_id, lifecycle from read.resources where id = $1")
        .await?;
    let Some(row) = client.query_opt(&statement, &[&id]).await? else {
        return Ok(None);
    };
    let resource = ResourceRef {
        kind: row.get(0),
        tenant_id: row.get(1),
        lifecycle: row.get(2),
    };
    if !include_deleted && resource.lifecycle == "deleted" {
        return Ok(None);
    }
    let visible = match (&resource.tenant_id, viewer) {
        (_, Viewer::Platform) => true,
        (Some(t), _) => can_view_tenant(client, viewer, t).await?,
        // Users' own streams: only the user (and platform administrators).
        (None, Viewer::User(u)) => u == id,
    };
    Ok(visible.then_some(resource))
}

/// What authorizes reads of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceRef {
    pub kind: String,
    pub tenant_id: Option<String>,
    pub lifecycle: String,
}

/// A location that is not deleted, whoever asks.
async fn load_location(
    client: &impl GenericClient,
    id: &str,
) -> anyhow::Result<Option<LocationView>> {
    let row = client
        .query_opt(
            "select * from read.locations where id = $1 and lifecycle <> 'deleted'",
            &[&id],
        )
        .await?;
    Ok(row.as_ref().map(location_view))
}

/// The location if the viewer may read its owner: what the owner's own lists need (a consumer
/// reads the location itself, never who else may use it).
async fn owned_location(
    client: &impl GenericClient,
    viewer: &Viewer,
    id: &str,
) -> anyhow::Result<Option<LocationView>> {
    let Some(view) = load_location(client, id).await? else {
        return Ok(None);
    };
    Ok(can_view_tenant(client, viewer, &view.tenant_id)
        .await?
        .then_some(view))
}

/// A tenant that may use a location (or where a resource provider holds scopes).
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct TenantUse {
    pub tenant_id: String,
    pub name: String,
    /// `owned` or `available` (locations); absent for resource providers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// The scopes held there (resource providers); absent for locations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    #[serde(skip)]
    path: String,
}

/// The tenants that may use a location, in depth-first order.
pub async fn location_tenants(
    client: &impl GenericClient,
    viewer: &Viewer,
    id: &str,
    page: &PageRequest,
) -> anyhow::Result<Option<Page<TenantUse>>> {
    let Some(l) = owned_location(client, viewer, id).await? else {
        return Ok(None);
    };
    let rows = client
        .query(
            "with a as (
                 select t.id, t.path, av.include_subtenants
                 from read.location_availability av join read.tenants t on t.id = av.tenant_id
                 where av.location_id = $1
             ),
             hits as (
                 select t.id, t.name, t.path, t.lifecycle from read.tenants t where t.id = $2
                 union
                 select t.id, t.name, t.path, t.lifecycle from a join read.tenants t on t.id = a.id
                 union
                 select t.id, t.name, t.path, t.lifecycle from a join read.tenants t
                     on a.include_subtenants and t.path > a.path || '/' and t.path < a.path || '0'
                     and t.path > $3
             )
             select id, name, path, case when id = $2 then 'owned' else 'available' end as via
             from hits where lifecycle <> 'deleted' and path > $3
             order by path limit $4",
            &[&id, &l.tenant_id, &page.after(), &page.fetch()],
        )
        .await?;
    let items = rows
        .iter()
        .map(|r| TenantUse {
            tenant_id: r.get("id"),
            name: r.get("name"),
            via: Some(r.get("via")),
            scopes: None,
            path: r.get("path"),
        })
        .collect();
    Ok(Some(Page::from_rows(items, page.limit, |t: &TenantUse| {
        t.path.clone()
    })))
}

/// SQL: is resource provider `{rp}` available at tenant row `{u}` (owner, direct, or via an
/// ancestor with include_subtenants)?
fn available_at_sql(rp: &str, u: &str) -> String {
    format!(
        "(exists (select 1 from read.resource_providers ro where ro.id = {rp} and ro.tenant_id = {u}.id)
          or exists (select 1 from read.rp_availability v where v.rp_id = {rp}
                     and (v.tenant_id = {u}.id
                          or (v.include_subtenants and v.tenant_id = any({u}.ancestors)))))"
    )
}

/// Does resource provider `rp_id` hold `scope` in tenant `tenant_id`? One statement of
/// primary-key probes: the authorizations at the tenant and its ancestors, and for each, the
/// availability at the tenant it was given at.
pub async fn access_check(
    client: &impl GenericClient,
    rp_id: &str,
    tenant_id: &str,
    scope: &Scope,
) -> anyhow::Result<bool> {
    let sql = format!(
        "select exists (
             select 1
             from read.tenants t
             join read.rp_authorizations a on a.rp_id = $1 and a.tenant_id = any(t.ancestors || t.id)
             join read.tenants u on u.id = a.tenant_id
             join read.resource_providers r on r.id = $1 and r.lifecycle <> 'deleted'
             where t.id = $2 and t.lifecycle <> 'deleted'
               and (a.tenant_id = t.id or a.include_subtenants)
               and a.scopes && array[$3::text, $4::text]
               and {}
         )",
        available_at_sql("$1", "u")
    );
    let statement = client.prepare_cached(&sql).await?;
    let wildcard = format!("{}:*", scope.resource());
    let row = client
        .query_one(
            &statement,
            &[&rp_id, &tenant_id, &scope.as_str(), &wildcard],
        )
        .await?;
    Ok(row.get(0))
}

/// A resource provider as seen from a tenant.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct TenantResourceProvider {
    pub id: String,
    pub name: String,
    pub tenant_id: String,
    pub lifecycle: String,
    /// May be used (and authorized) here.
    pub available: bool,
    /// Holds at least one scope here.
    pub authorized: bool,
    /// The scopes it holds here.
    pub scopes: Vec<String>,
    /// The scopes it requests.
    pub requested_scopes: Vec<String>,
}

/// The resource providers available in tenant `id`, or holding scopes there.
pub async fn tenant_resource_providers(
    client: &impl GenericClient,
    viewer: &Viewer,
    id: &str,
    page: &PageRequest,
) -> anyhow::Result<Option<Page<TenantResourceProvider>>> {
    if visible_tenant(client, viewer, id).await?.is_none() {
        return Ok(None);
    }
    let sql = format!(
        "with t as (select id, ancestors from read.tenants where id = $1),
         avail as (
             select r.id as rp_id from read.resource_providers r where r.tenant_id = $1
             union
             select v.rp_id from read.rp_availability v, t
             where v.tenant_id = t.id or (v.include_subtenants and v.tenant_id = any(t.ancestors))
         ),
         auth as (
             select a.rp_id, a.scopes
             from t, read.rp_authorizations a join read.tenants u on u.id = a.tenant_id
             where a.tenant_id = any(t.ancestors || t.id)
               and (a.tenant_id = t.id or a.include_subtenants)
               and {}
         )
         select r.id, r.name, r.tenant_id, r.lifecycle, r.scopes as requested,
                r.id in (select rp_id from avail) as available,
                r.id in (select rp_id from auth) as authorized,
                array(select distinct s from auth, unnest(auth.scopes) s
                      where auth.rp_id = r.id order by s) as held
         from read.resource_providers r
         where r.id in (select rp_id from avail union select rp_id from auth)
           and r.lifecycle <> 'deleted' and r.id > $2
         order by r.id limit $3",
        available_at_sql("a.rp_id", "u")
    );
    let rows = client
        .query(&sql, &[&id, &page.after(), &page.fetch()])
        .await?;
    let items = rows
        .iter()
        .map(|r| TenantResourceProvider {
            id: r.get("id"),
            name: r.get("name"),
            tenant_id: r.get("tenant_id"),
            lifecycle: r.get("lifecycle"),
            available: r.get("available"),
            authorized: r.get("authorized"),
            scopes: r.get("held"),
            requested_scopes: r.get("requested"),
        })
        .collect();
    Ok(Some(Page::from_rows(
        items,
        page.limit,
        |p: &TenantResourceProvider| p.id.clone(),
    )))
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct ResourceProviderView {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub description: Option<String>,
    /// The scopes it requests.
    pub scopes: Vec<String>,
    pub locations: Vec<String>,
    pub lifecycle: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A resource provider that is not deleted, whoever asks. Its locations are the live ones:
/// a deleted location is never listed as served.
async fn load_resource_provider(
    client: &impl GenericClient,
    id: &str,
) -> anyhow::Result<Option<ResourceProviderView>> {
    let Some(row) = client
        .query_opt(
            "select r.*, array(select l.location_id
                               from read.rp_locations l join read.locations loc on loc.id = l.location_id
                               where l.rp_id = r.id and loc.lifecycle <> 'deleted'
                               order by l.location_id) as locations
             from read.resource_providers r where r.id = $1 and r.lifecycle <> 'deleted'",
            &[&id],
        )
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(ResourceProviderView {
        id: row.get("id"),
        tenant_id: row.get("tenant_id"),
        name: row.get("name"),
        description: row.get("description"),
        scopes: row.get("scopes"),
        locations: row.get("locations"),
        lifecycle: row.get("lifecycle"),
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
    }))
}

/// The resource provider if the viewer may read its owner (see [`owned_location`]).
async fn owned_resource_provider(
    client: &impl GenericClient,
    viewer: &Viewer,
    id: &str,
) -> anyhow::Result<Option<ResourceProviderView>> {
    let Some(view) = load_resource_provider(client, id).await? else {
        return Ok(None);
    };
    Ok(can_view_tenant(client, viewer, &view.tenant_id)
        .await?
        .then_some(view))
}

/// The tenants where a resource provider holds scopes, with those scopes, depth-first: how a
/// provider lists the tenants it serves.
pub async fn resource_provider_tenants(
    client: &impl GenericClient,
    viewer: &Viewer,
    id: &str,
    page: &PageRequest,
) -> anyhow::Result<Option<Page<TenantUse>>> {
    if owned_resource_provider(client, viewer, id).await?.is_none() {
        return Ok(None);
    }
    let sql = format!(
        "with auth as (
             select a.tenant_id, a.include_subtenants, a.scopes, u.path
             from read.rp_authorizations a join read.tenants u on u.id = a.tenant_id
             where a.rp_id = $1 and u.lifecycle <> 'deleted' and {}
         ),
         hits as (
             select t.id, t.name, t.path, t.lifecycle, auth.scopes
             from auth join read.tenants t on t.id = auth.tenant_id
             union all
             select t.id, t.name, t.path, t.lifecycle, auth.scopes
             from auth join read.tenants t
                 on auth.include_subtenants and t.path > auth.path || '/' and t.path < auth.path || '0'
                 and t.path > $2
         )
         select h.id, h.name, h.path, array_agg(distinct s order by s) as scopes
         from hits h, unnest(h.scopes) s
         where h.lifecycle <> 'deleted' and h.path > $2
         group by h.id, h.name, h.path
         order by h.path limit $3",
        available_at_sql("$1", "u")
    );
    let rows = client
        .query(&sql, &[&id, &page.after(), &page.fetch()])
        .await?;
    let items = rows
        .iter()
        .map(|r| TenantUse {
            tenant_id: r.get("id"),
            name: r.get("name"),
            via: None,
            scopes: Some(r.get("scopes")),
            path: r.get("path"),
        })
        .collect();
    Ok(Some(Page::from_rows(items, page.limit, |t: &TenantUse| {
        t.path.clone()
    })))
}

/// The metadata view of a resource.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct MetadataView {
    pub annotations: serde_json::Map<String, serde_json::Value>,
    pub statuses: serde_json::Map<String, serde_json::Value>,
    pub finalizers: Vec<String>,
    pub deletion_requested_at: Option<DateTime<Utc>>,
}

pub async fn metadata(
    client: &impl GenericClient,
    viewer: &Viewer,
    id: &str,
) -> anyhow::Result<Option<MetadataView>> {
    if visible_resource(client, viewer, id, false).await?.is_none() {
        return Ok(None);
    }
    metadata_of(client, id).await.map(Some)
}

/// A resource's metadata, unchecked: for views that authorized the resource already.
async fn metadata_of(client: &impl GenericClient, id: &str) -> anyhow::Result<MetadataView> {
    let row = client
        .query_one(
            "select r.deletion_requested_at,
                    coalesce((select jsonb_object_agg(a.key, a.value) from read.annotations a
                              where a.resource_id = r.id), '{}')::text as annotations,
                    coalesce((select jsonb_object_agg(s.source, s.data) from read.statuses s
                              where s.resource_id = r.id), '{}')::text as statuses,
                    array(select f.finalizer from read.finalizers f where f.resource_id = r.id
                          order by f.finalizer) as finalizers
             from read.resources r where r.id = $1",
            &[&id],
        )
        .await?;
    let object = |column: &str| -> anyhow::Result<serde_json::Map<String, serde_json::Value>> {
        Ok(serde_json::from_str(row.get(column))?)
    };
    Ok(MetadataView {
        annotations: object("annotations")?,
        statuses: object("statuses")?,
        finalizers: row.get("finalizers"),
        deletion_requested_at: row.get("deletion_requested_at"),
    })
}

/// An event as the audit log and stream history show it.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct AuditItem {
    pub event_id: uuid::Uuid,
    pub event_type: String,
    pub stream_id: String,
    pub stream_version: i64,
    pub position: i64,
    pub recorded_at: DateTime<Utc>,
    pub actor: Option<String>,
    pub command_id: Option<String>,
    pub correlation_id: Option<String>,
    pub causation_id: Option<String>,
    /// The schema version `data` is in: the current one of its type (older events are shown
    /// upcast, as every reader sees them).
    pub schema_version: i32,
    pub data: serde_json::Value,
}

impl AuditItem {
    fn of(event: &StoredEvent) -> anyhow::Result<Self> {
        let metadata = &event.metadata;
        let (schema_version, data) = event
            .current_data()
            .with_context(|| format!("event at position {} cannot be shown", event.position))?;
        Ok(Self {
            event_id: event.event_id,
            event_type: event.event_type.clone(),
            stream_id: event.stream_id.clone(),
            stream_version: event.stream_version,
            position: event.position,
            recorded_at: event.recorded_at,
            actor: metadata.actor.as_ref().map(ToString::to_string),
            command_id: Some(metadata.command_id.to_string()),
            correlation_id: Some(metadata.correlation_id.to_string()),
            causation_id: Some(metadata.causation_id.to_string()),
            schema_version,
            data: serde_json::from_str(&data)?,
        })
    }
}

fn audit_items(events: &[StoredEvent]) -> anyhow::Result<Vec<AuditItem>> {
    events.iter().map(AuditItem::of).collect()
}

/// A stream's events, oldest first, paginated by stream version.
pub async fn stream_events(
    client: &impl GenericClient,
    viewer: &Viewer,
    stream_id: &str,
    page: &PageRequest,
) -> anyhow::Result<Option<Page<AuditItem>>> {
    if visible_resource(client, viewer, stream_id, true)
        .await?
        .is_none()
    {
        return Ok(None);
    }
    let after: i64 = page.after().parse().unwrap_or(0);
    let events = log::read_stream(client, stream_id, after + 1, page.fetch()).await?;
    Ok(Some(Page::from_rows(
        audit_items(&events)?,
        page.limit,
        |e: &AuditItem| e.stream_version.to_string(),
    )))
}

/// Filters of the audit log; all optional.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// That tenant's whole subtree (the streams its tenants govern).
    pub tenant_id: Option<String>,
    /// One stream's events.
    pub stream_id: Option<String>,
    pub actor: Option<String>,
    /// Everything done for one originating request.
    pub correlation_id: Option<uuid::Uuid>,
    pub event_type: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

/// Why an audit query was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditRefusal {
    /// The tenant does not exist or the viewer may not see it.
    TenantNotVisible,
    /// Only platform administrators may read the audit log without a tenant filter.
    NeedsTenant,
}

/// The audit log's cursor: the place in the log of the page's last event, `tx.position`.
/// `None` if `after` is not one.
pub fn audit_cursor(after: &str) -> Option<Checkpoint> {
    let (tx, position) = after.split_once('.')?;
    Some(Checkpoint {
        tx: tx.parse().ok()?,
        position: position.parse().ok()?,
    })
}

/// The audit log in the log's own order (`plinth_commands::log::audit`): a page never skips
/// an event that commits after it was read.
pub async fn audit(
    client: &impl GenericClient,
    viewer: &Viewer,
    filter: &AuditFilter,
    page: &PageRequest,
) -> anyhow::Result<Result<Page<AuditItem>, AuditRefusal>> {
    let tenant_path: Option<String> = match &filter.tenant_id {
        Some(t) => match tenant_ref(client, viewer, t, true).await? {
            Some(r) if r.rank.is_some() => Some(r.path),
            _ => return Ok(Err(AuditRefusal::TenantNotVisible)),
        },
        None if *viewer == Viewer::Platform => None,
        None => return Ok(Err(AuditRefusal::NeedsTenant)),
    };
    let after = audit_cursor(page.after()).unwrap_or_default();
    let log_filter = log::AuditFilter {
        tenant_path,
        stream_id: filter.stream_id.clone(),
        actor: filter.actor.clone(),
        correlation_id: filter.correlation_id,
        event_type: filter.event_type.clone(),
        since: filter.since,
        until: filter.until,
    };
    let events = log::audit(client, &log_filter, after, page.fetch()).await?;
    let Page { items, next } = Page::from_rows(events, page.limit, |e: &StoredEvent| {
        let Checkpoint { tx, position } = e.checkpoint();
        format!("{tx}.{position}")
    });
    Ok(Ok(Page {
        items: audit_items(&items)?,
        next,
    }))
}
