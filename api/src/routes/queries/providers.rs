//! Providers: one, a tenant's usable ones, and those using a resource provider.

use plinth_domain::{ProviderId, ResourceProviderId, TenantId};
use plinth_projections::read::queries::{self, ProviderDetail, ProviderView, UsableProvider};

use super::accepts::{Paged, Wait};
use super::extract::{Id, Read, Reply};
use super::PageBody;
use crate::routes::openapi::ReadProblems;

#[utoipa::path(
    get,
    path = "/v1/providers/{id}",
    tag = "providers",
    summary = "A provider with its metadata (readable by its resource provider's consumers too)",
    params(Id<ProviderId>, Wait),
    responses((status = 200, description = "OK", body = ProviderDetail), ReadProblems),
    security(("bearer" = [])),
)]
pub(crate) async fn provider(id: Id<ProviderId>, read: Read) -> Reply<ProviderDetail> {
    id.found(queries::provider(&read.client, &read.viewer, id.as_str()).await?)
}

#[utoipa::path(
    get,
    path = "/v1/tenants/{id}/providers",
    tag = "providers",
    summary = "Providers the tenant may use (owned or through an available resource provider)",
    params(Id<TenantId>, Paged, Wait),
    responses((status = 200, description = "OK", body = PageBody<UsableProvider>), ReadProblems),
    security(("bearer" = [])),
)]
pub(crate) async fn tenant_providers(
    id: Id<TenantId>,
    read: Read,
) -> Reply<PageBody<UsableProvider>> {
    id.found_page(
        queries::tenant_providers(&read.client, &read.viewer, id.as_str(), &read.page).await?,
    )
}

#[utoipa::path(
    get,
    path = "/v1/resource-providers/{id}/providers",
    tag = "providers",
    summary = "Providers using the resource provider",
    params(Id<ResourceProviderId>, Paged, Wait),
    responses((status = 200, description = "OK", body = PageBody<ProviderView>), ReadProblems),
    security(("bearer" = [])),
)]
pub(crate) async fn resource_provider_providers(
    id: Id<ResourceProviderId>,
    read: Read,
) -> Reply<PageBody<ProviderView>> {
    id.found_page(
        queries::resource_provider_providers(&read.client, &read.viewer, id.as_str(), &read.page)
            .await?,
    )
}
