//! The tenant tree as readers see it, and the authorization every other query starts from: a
//! viewer's rank on a tenant is the highest of its grants on the tenant and its ancestors
//! (`= any(ancestors)`, one index probe), and subtrees are ranges of the materialized path.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;
use tokio_postgres::Row;

use super::resources::{metadata_of, MetadataView};
use super::{Page, PageRequest, Viewer};

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
pub(super) struct TenantRef {
    pub(super) path: String,
    pub(super) depth: i32,
    pub(super) ancestors: Vec<String>,
    /// The viewer's effective rank here (3 for platform administrators), if any.
    pub(super) rank: Option<i16>,
}

/// The tenant (not deleted) and the viewer's rank on it.
pub(super) async fn tenant_ref(
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
pub(super) async fn visible_tenant(
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
