//! Locations and resource providers as their owners and their consumers read them.
//!
//! A tenant to which a location or resource provider is available (directly, or through an
//! ancestor with `include_subtenants`) may read it: a consumer needs its name, description,
//! owner and how it reaches them. It sees only the availability entries that concern tenants it
//! can see or that cover them — never the owner's grants to other tenants. A resource provider
//! is also readable where it holds access (an authorization with include_subtenants reaches
//! further than the availability it was given under).

use deadpool_postgres::GenericClient;
use serde::Serialize;

use super::locations::{load_location, LocationView};
use super::resource_providers::{available_at_sql, load_resource_provider, ResourceProviderView};
use super::resources::{metadata_of, MetadataView};
use super::tenants::can_view_tenant;
use super::Viewer;

/// One availability entry: the tenant it was given to, and whether its sub-tenants share it.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct AvailabilityView {
    pub tenant_id: String,
    pub include_subtenants: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct LocationDetail {
    #[serde(flatten)]
    pub location: LocationView,
    /// The availability entries the viewer may know of.
    pub available_to: Vec<AvailabilityView>,
    pub metadata: MetadataView,
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct ResourceProviderDetail {
    #[serde(flatten)]
    pub resource_provider: ResourceProviderView,
    /// The availability entries the viewer may know of.
    pub available_to: Vec<AvailabilityView>,
    /// The (issuer, subject) pairs whose tokens act as it, in that order: shown to readers of
    /// its owner tenant, empty for the tenants it serves.
    pub identities: Vec<IdentityView>,
    pub metadata: MetadataView,
}

/// An identity bound to a resource provider.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct IdentityView {
    pub issuer: String,
    pub subject: String,
}

/// The identities bound to resource provider `id`, by issuer and subject.
async fn identities(client: &impl GenericClient, id: &str) -> anyhow::Result<Vec<IdentityView>> {
    let statement = client
        .prepare_cached(
            "select issuer, subject from read.rp_identities where rp_id = $1
             order by issuer, subject",
        )
        .await?;
    let rows = client.query(&statement, &[&id]).await?;
    Ok(rows
        .iter()
        .map(|r| IdentityView {
            issuer: r.get(0),
            subject: r.get(1),
        })
        .collect())
}

/// Which availability table a query reads.
#[derive(Debug, Clone, Copy)]
pub(super) enum Shared {
    Location,
    ResourceProvider,
}

impl Shared {
    fn table_and_column(self) -> (&'static str, &'static str) {
        match self {
            Self::Location => ("location_availability", "location_id"),
            Self::ResourceProvider => ("rp_availability", "rp_id"),
        }
    }
}

/// The entries of `id`'s availability the viewer may know of: those given to a tenant in the
/// viewer's subtrees, and those that cover a tenant the viewer holds a grant on (given to it, or
/// to an ancestor with include_subtenants). Platform administrators (`user` null) see all.
/// One probe of the viewer's grants per entry.
pub(super) async fn visible_availability(
    client: &impl GenericClient,
    viewer: &Viewer,
    shared: Shared,
    id: &str,
) -> anyhow::Result<Vec<AvailabilityView>> {
    let (table, column) = shared.table_and_column();
    let sql = format!(
        "select av.tenant_id, av.include_subtenants
         from read.{table} av join read.tenants at on at.id = av.tenant_id
         where av.{column} = $1 and at.lifecycle <> 'deleted'
           and ($2::text is null or exists (
                select 1 from read.grants g join read.tenants gt on gt.id = g.tenant_id
                where g.user_id = $2 and gt.lifecycle <> 'deleted'
                  and (g.tenant_id = any(at.ancestors || at.id)
                       or (av.include_subtenants and av.tenant_id = any(gt.ancestors)))))
         order by at.path"
    );
    let statement = client.prepare_cached(&sql).await?;
    let rows = client.query(&statement, &[&id, &viewer.user()]).await?;
    Ok(rows
        .iter()
        .map(|r| AvailabilityView {
            tenant_id: r.get(0),
            include_subtenants: r.get(1),
        })
        .collect())
}

/// Whether resource provider `id` holds access (a live authorization, still available where it
/// was given) in a tenant the viewer holds a grant on or can see. An authorization with
/// include_subtenants reaches sub-tenants that its availability alone does not, and those
/// tenants must be able to read who acts on them.
async fn authorized_for_viewer(
    client: &impl GenericClient,
    viewer: &Viewer,
    id: &str,
) -> anyhow::Result<bool> {
    let Viewer::User(user) = viewer else {
        return Ok(true);
    };
    let sql = format!(
        "select exists (
             select 1 from read.rp_authorizations a join read.tenants at on at.id = a.tenant_id
             where a.rp_id = $1 and at.lifecycle <> 'deleted' and {}
               and exists (
                   select 1 from read.grants g join read.tenants gt on gt.id = g.tenant_id
                   where g.user_id = $2 and gt.lifecycle <> 'deleted'
                     and (g.tenant_id = any(at.ancestors || at.id)
                          or (a.include_subtenants and a.tenant_id = any(gt.ancestors)))))",
        available_at_sql("a.rp_id", "at")
    );
    let statement = client.prepare_cached(&sql).await?;
    Ok(client.query_one(&statement, &[&id, user]).await?.get(0))
}

/// The availability the viewer may know of, if it may read the shared resource owned by
/// `owner` at all: as a reader of the owner, as a consumer with at least one entry, or (a
/// resource provider) as a tenant where it holds access.
pub(super) async fn reach(
    client: &impl GenericClient,
    viewer: &Viewer,
    shared: Shared,
    id: &str,
    owner: &str,
) -> anyhow::Result<Option<Vec<AvailabilityView>>> {
    let entries = visible_availability(client, viewer, shared, id).await?;
    let readable = !entries.is_empty()
        || can_view_tenant(client, viewer, owner).await?
        || (matches!(shared, Shared::ResourceProvider)
            && authorized_for_viewer(client, viewer, id).await?);
    Ok(readable.then_some(entries))
}

pub async fn location(
    client: &impl GenericClient,
    viewer: &Viewer,
    id: &str,
) -> anyhow::Result<Option<LocationDetail>> {
    let Some(location) = load_location(client, id).await? else {
        return Ok(None);
    };
    let Some(available_to) =
        reach(client, viewer, Shared::Location, id, &location.tenant_id).await?
    else {
        return Ok(None);
    };
    Ok(Some(LocationDetail {
        location,
        available_to,
        metadata: metadata_of(client, id).await?,
    }))
}

pub async fn resource_provider(
    client: &impl GenericClient,
    viewer: &Viewer,
    id: &str,
) -> anyhow::Result<Option<ResourceProviderDetail>> {
    let Some(resource_provider) = load_resource_provider(client, id).await? else {
        return Ok(None);
    };
    let owner = resource_provider.tenant_id.clone();
    let Some(available_to) = reach(client, viewer, Shared::ResourceProvider, id, &owner).await?
    else {
        return Ok(None);
    };
    let identities = if can_view_tenant(client, viewer, &owner).await? {
        identities(client, id).await?
    } else {
        Vec::new()
    };
    Ok(Some(ResourceProviderDetail {
        resource_provider,
        available_to,
        identities,
        metadata: metadata_of(client, id).await?,
    }))
}
