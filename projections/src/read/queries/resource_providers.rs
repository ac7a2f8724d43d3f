//! Resource providers and the access they hold: the access check itself, the resource
//! providers a tenant may use, and the tenants where one holds scopes. (A resource provider's
//! own view, with its availability, is in `shared`.)

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;

use plinth_domain::Scope;

use super::locations::TenantUse;
use super::tenants::{can_view_tenant, visible_tenant};
use super::{Page, PageRequest, Viewer};

/// SQL: is resource provider `{rp}` available at tenant row `{u}` (owner, direct, or via an
/// ancestor with include_subtenants)?
pub(super) fn available_at_sql(rp: &str, u: &str) -> String {
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
pub(super) async fn load_resource_provider(
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

/// The resource provider if the viewer may read its owner (see `locations::owned_location`).
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
