//! Any stream as a resource: who may read it (from its governing tenant), and its metadata.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;

use super::tenants::can_view_tenant;
use super::Viewer;

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
pub(super) async fn metadata_of(
    client: &impl GenericClient,
    id: &str,
) -> anyhow::Result<MetadataView> {
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
