//! Locations as their owners list them: the locations a tenant may use, and the tenants that
//! may use a location. (A location's own view, with its availability, is in `shared`.)

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;
use tokio_postgres::Row;

use super::tenants::{can_view_tenant, visible_tenant};
use super::{Page, PageRequest, Viewer};

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

/// A location that is not deleted, whoever asks.
pub(super) async fn load_location(
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
    pub(super) path: String,
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
