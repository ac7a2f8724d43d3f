//! Read routes: the query API over the read models (`plinth_projections::read`).
//!
//! Conventions shared by every route here:
//! - **Authorization.** Every read is checked against the caller's grants as the `tenants`
//!   projection has them. Something the caller may not see answers **404**, exactly like
//!   something that does not exist, so that ids cannot be probed; the audit log without a
//!   tenant filter, which only platform administrators may read, is the one 403.
//! - **Read-your-writes.** `?min_position=N` (the `position` a command returned) waits until
//!   every projection has applied that event, for at most [`MIN_POSITION_WAIT`]; then 503 with
//!   `Retry-After`.
//! - **Pagination.** Lists answer `{"items": [...], "next": cursor|null}`; pass `next` back as
//!   `?after=`. `?limit=` is 1 to 1000 (default 100). Cursors are opaque.
//! - **Malformed ids** (wrong shape or prefix), limits, cursors, scopes or times are 400.

mod accepts;
mod allow;
mod extract;
mod log;
mod permissions;
mod providers;
mod resources;
mod tenants;

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine as _;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use plinth_projections::read::queries::{Page, PageRequest};

use crate::error::ApiError;
use crate::state::AppState;

/// How long `?min_position=` may hold a request before answering 503.
pub(crate) const MIN_POSITION_WAIT: Duration = Duration::from_secs(3);
/// Page size when `limit` is not given.
pub(crate) const DEFAULT_LIMIT: i64 = 100;
/// The largest `limit`.
pub(crate) const MAX_LIMIT: i64 = 1000;

/// The read routes, each with its OpenAPI operation; mounted beside the command routes.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(tenants::roots))
        .routes(routes!(tenants::tenant))
        .routes(routes!(tenants::children))
        .routes(routes!(tenants::ancestors))
        .routes(routes!(tenants::descendants))
        .routes(routes!(resources::tenant_locations))
        .routes(routes!(resources::tenant_resource_providers))
        .routes(routes!(resources::location))
        .routes(routes!(resources::location_tenants))
        .routes(routes!(resources::resource_provider))
        .routes(routes!(resources::resource_provider_tenants))
        .routes(routes!(providers::resource_provider_providers))
        .routes(routes!(providers::provider))
        .routes(routes!(providers::tenant_providers))
        .routes(routes!(permissions::tenant_grants))
        .routes(routes!(resources::annotated_resources))
        .routes(routes!(permissions::user_roles))
        .routes(routes!(resources::access_check))
        .routes(routes!(resources::metadata))
        .routes(routes!(log::stream_events))
        .routes(routes!(log::audit))
        .routes(routes!(allow::allow, allow::allow_all))
        .routes(routes!(allow::allow_bulk))
}

/// The query string, parsed on demand so that every malformed value is a clear 400.
#[derive(Debug, Default)]
pub(crate) struct Params(HashMap<String, String>);

impl Params {
    pub(crate) fn new(map: HashMap<String, String>) -> Self {
        Self(map)
    }

    pub(crate) fn text(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    pub(crate) fn required(&self, name: &str) -> Result<&str, ApiError> {
        self.text(name)
            .ok_or_else(|| ApiError::BadRequest(format!("query parameter `{name}` is required")))
    }

    pub(crate) fn int(&self, name: &str) -> Result<Option<i64>, ApiError> {
        self.text(name)
            .map(|s| {
                s.parse::<i64>()
                    .map_err(|_| ApiError::BadRequest(format!("`{name}` must be an integer")))
            })
            .transpose()
    }

    pub(crate) fn time(
        &self,
        name: &str,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>, ApiError> {
        self.text(name)
            .map(|s| {
                chrono::DateTime::parse_from_rfc3339(s)
                    .map(|t| t.with_timezone(&chrono::Utc))
                    .map_err(|_| ApiError::BadRequest(format!("`{name}` must be an RFC 3339 time")))
            })
            .transpose()
    }

    /// `?after=&limit=`.
    pub(crate) fn page(&self) -> Result<PageRequest, ApiError> {
        let limit = self.int("limit")?.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::BadRequest(format!(
                "`limit` must be between 1 and {MAX_LIMIT}"
            )));
        }
        let after = self
            .text("after")
            .map(|c| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(c)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| {
                        ApiError::BadRequest("`after` is not a cursor from `next`".into())
                    })
            })
            .transpose()?;
        Ok(PageRequest { after, limit })
    }
}

/// A page as JSON, with its cursor made opaque.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct PageBody<T> {
    items: Vec<T>,
    /// The cursor of the next page (pass it as `?after=`); null on the last page.
    next: Option<String>,
}

impl<T> From<Page<T>> for PageBody<T> {
    fn from(page: Page<T>) -> Self {
        Self {
            items: page.items,
            next: page
                .next
                .map(|k| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(k)),
        }
    }
}

pub(crate) fn not_found(what: &str, id: &str) -> ApiError {
    ApiError::NotFound(format!(
        "{what} {id} does not exist or is not visible to you"
    ))
}
