//! Providers (`RegisterProvider`): concrete services, such as a load balancer provider, that act
//! through a resource provider's grants. A provider is readable by whoever may read its owner,
//! and by the consumers of its resource provider (the tenants it is available to), who need to
//! know which providers may act on their behalf.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;
use tokio_postgres::Row;

use super::resource_providers::load_resource_provider;
use super::resources::{metadata_of, MetadataView};
use super::shared::{reach, Shared};
use super::tenants::{can_view_tenant, visible_tenant};
use super::{Page, PageRequest, Viewer};

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct ProviderView {
    pub id: String,
    pub tenant_id: String,
    pub resource_provider_id: String,
    pub name: String,
    pub lifecycle: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn provider_view(row: &Row) -> ProviderView {
    ProviderView {
        id: row.get("id"),
        tenant_id: row.get("tenant_id"),
        resource_provider_id: row.get("rp_id"),
        name: row.get("name"),
        lifecycle: row.get("lifecycle"),
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct ProviderDetail {
    #[serde(flatten)]
    pub provider: ProviderView,
    pub metadata: MetadataView,
}

/// A provider a tenant may use, and why: `owned`, or `available` (its resource provider is).
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct UsableProvider {
    #[serde(flatten)]
    pub provider: ProviderView,
    pub via: String,
}

/// Whether the viewer may read resource provider `rp_id` (as its owner's reader or a consumer).
async fn can_read_resource_provider(
    client: &impl GenericClient,
    viewer: &Viewer,
    rp_id: &str,
) -> anyhow::Result<bool> {
    let Some(rp) = load_resource_provider(client, rp_id).await? else {
        return Ok(false);
    };
    Ok(reach(
        client,
        viewer,
        Shared::ResourceProvider,
        rp_id,
        &rp.tenant_id,
    )
    .await?
    .is_some())
}

pub async fn provider(
    client: &impl GenericClient,
    viewer: &Viewer,
    id: &str,
) -> anyhow::Result<Option<ProviderDetail>> {
    let Some(row) = client
        .query_opt(
            "select * from read.providers where id = $1 and lifecycle <> 'deleted'",
            &[&id],
        )
        .await?
    else {
        return Ok(None);
    };
    let provider = provider_view(&row);
    let readable = can_view_tenant(client, viewer, &provider.tenant_id).await?
        || can_read_resource_provider(client, viewer, &provider.resource_provider_id).await?;
    if !readable {
        return Ok(None);
    }
    Ok(Some(ProviderDetail {
        metadata: metadata_of(client, id).await?,
        provider,
    }))
}

/// The providers tenant `id` may use: its own, and those of the live resource providers
/// available to it (owned, given to it, or to an ancestor with include_subtenants).
pub async fn tenant_providers(
    client: &impl GenericClient,
    viewer: &Viewer,
    id: &str,
    page: &PageRequest,
) -> anyhow::Result<Option<Page<UsableProvider>>> {
    let Some(t) = visible_tenant(client, viewer, id).await? else {
        return Ok(None);
    };
    let rows = client
        .query(
            "with rps as (
                 select r.id from read.resource_providers r where r.tenant_id = $1
                 union
                 select v.rp_id from read.rp_availability v
                 where v.tenant_id = $1 or (v.include_subtenants and v.tenant_id = any($2::text[]))
             ),
             usable as (
                 select p.id from read.providers p where p.tenant_id = $1
                 union
                 select p.id from rps
                     join read.resource_providers r on r.id = rps.id and r.lifecycle <> 'deleted'
                     join read.providers p on p.rp_id = r.id
             )
             select p.*, case when p.tenant_id = $1 then 'owned' else 'available' end as via
             from read.providers p join usable u on u.id = p.id
             where p.lifecycle <> 'deleted' and p.id > $3
             order by p.id limit $4",
            &[&id, &t.ancestors, &page.after(), &page.fetch()],
        )
        .await?;
    let items = rows
        .iter()
        .map(|r| UsableProvider {
            provider: provider_view(r),
            via: r.get("via"),
        })
        .collect();
    Ok(Some(Page::from_rows(
        items,
        page.limit,
        |p: &UsableProvider| p.provider.id.clone(),
    )))
}

/// The live providers using resource provider `id`, for whoever may read it.
pub async fn resource_provider_providers(
    client: &impl GenericClient,
    viewer: &Viewer,
    id: &str,
    page: &PageRequest,
) -> anyhow::Result<Option<Page<ProviderView>>> {
    if !can_read_resource_provider(client, viewer, id).await? {
        return Ok(None);
    }
    let rows = client
        .query(
            "select * from read.providers
             where rp_id = $1 and lifecycle <> 'deleted' and id > $2
             order by id limit $3",
            &[&id, &page.after(), &page.fetch()],
        )
        .await?;
    let items = rows.iter().map(provider_view).collect();
    Ok(Some(Page::from_rows(
        items,
        page.limit,
        |p: &ProviderView| p.id.clone(),
    )))
}
