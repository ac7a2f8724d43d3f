//! A subtree's resources of every kind that carry one annotation.

use deadpool_postgres::GenericClient;
use serde::Serialize;

use super::tenants::visible_tenant;
use super::{Page, PageRequest, Viewer};

/// A resource found by annotation.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct AnnotatedResource {
    pub id: String,
    /// `tenant`, `location`, `resource_provider` or `provider`.
    pub kind: String,
    /// The governing tenant (a tenant's own id).
    pub tenant_id: String,
    pub name: String,
    pub lifecycle: String,
}

/// The live resources of tenant `id`'s subtree (tenants included) annotated `key` = `value`,
/// by id. The annotation index `(key, value, resource_id)` yields the candidates already in
/// page order; each is kept if its governing tenant's path lies in the subtree. That is cheap
/// while an annotation is rare outside the subtree, which is what a search by `key=value` is
/// for; walking the subtree instead would cost its size for every page.
pub async fn annotated_resources(
    client: &impl GenericClient,
    viewer: &Viewer,
    id: &str,
    key: &str,
    value: &str,
    page: &PageRequest,
) -> anyhow::Result<Option<Page<AnnotatedResource>>> {
    let Some(t) = visible_tenant(client, viewer, id).await? else {
        return Ok(None);
    };
    let rows = client
        .query(
            "select r.id, r.kind, r.tenant_id, r.lifecycle,
                    coalesce(tn.name, l.name, rp.name, p.name, '') as name
             from read.annotations a
                 join read.resources r on r.id = a.resource_id
                 join read.tenants t on t.id = r.tenant_id
                 left join read.tenants tn on r.kind = 'tenant' and tn.id = r.id
                 left join read.locations l on r.kind = 'location' and l.id = r.id
                 left join read.resource_providers rp on r.kind = 'resource_provider' and rp.id = r.id
                 left join read.providers p on r.kind = 'provider' and p.id = r.id
             where a.key = $1 and a.value = $2 and a.resource_id > $3
               and r.lifecycle <> 'deleted'
               and (t.path = $4 or (t.path > $4 || '/' and t.path < $4 || '0'))
             order by a.resource_id limit $5",
            &[&key, &value, &page.after(), &t.path, &page.fetch()],
        )
        .await?;
    let items = rows
        .iter()
        .map(|r| AnnotatedResource {
            id: r.get("id"),
            kind: r.get("kind"),
            tenant_id: r.get("tenant_id"),
            name: r.get("name"),
            lifecycle: r.get("lifecycle"),
        })
        .collect();
    Ok(Some(Page::from_rows(
        items,
        page.limit,
        |r: &AnnotatedResource| r.id.clone(),
    )))
}
