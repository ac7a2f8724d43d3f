//! Access grants of a tenant and roles of a user.

use axum::Json;

use plinth_domain::{TenantId, UserId};
use plinth_projections::read::queries::{self, GrantView, GrantsRefusal, RoleView};

use super::extract::{Id, Read, Reply};
use super::PageBody;
use crate::error::ApiError;

/// `GET /v1/tenants/{id}/grants`: for the tenant's administrators (403 for its other readers).
pub(crate) async fn tenant_grants(id: Id<TenantId>, read: Read) -> Reply<PageBody<GrantView>> {
    match queries::tenant_grants(&read.client, &read.viewer, id.as_str(), &read.page).await? {
        Ok(page) => Ok(Json(page.into())),
        Err(GrantsRefusal::NotVisible) => Err(id.missing()),
        Err(GrantsRefusal::NotAdmin) => Err(ApiError::Forbidden(format!(
            "only administrators of {} may list its grants",
            id.as_str()
        ))),
    }
}

/// `GET /v1/users/{id}/roles`: for the user itself and platform administrators.
pub(crate) async fn user_roles(id: Id<UserId>, read: Read) -> Reply<PageBody<RoleView>> {
    id.found_page(queries::user_roles(&read.client, &read.viewer, id.as_str(), &read.page).await?)
}
