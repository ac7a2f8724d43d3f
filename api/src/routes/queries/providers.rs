//! Providers: one, a tenant's usable ones, and those using a resource provider.

use plinth_domain::{ProviderId, ResourceProviderId, TenantId};
use plinth_projections::read::queries::{self, ProviderDetail, ProviderView, UsableProvider};

use super::extract::{Id, Read, Reply};
use super::PageBody;

pub(crate) async fn provider(id: Id<ProviderId>, read: Read) -> Reply<ProviderDetail> {
    id.found(queries::provider(&read.client, &read.viewer, id.as_str()).await?)
}

pub(crate) async fn tenant_providers(
    id: Id<TenantId>,
    read: Read,
) -> Reply<PageBody<UsableProvider>> {
    id.found_page(
        queries::tenant_providers(&read.client, &read.viewer, id.as_str(), &read.page).await?,
    )
}

pub(crate) async fn resource_provider_providers(
    id: Id<ResourceProviderId>,
    read: Read,
) -> Reply<PageBody<ProviderView>> {
    id.found_page(
        queries::resource_provider_providers(&read.client, &read.viewer, id.as_str(), &read.page)
            .await?,
    )
}
