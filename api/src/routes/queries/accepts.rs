//! What the read routes take in their query string, declared for the OpenAPI document
//! (`params(...)` of each `#[utoipa::path]`). The document is also what the server accepts:
//! a name no operation declares is a 400 (`routes::query_names`).
//!
//! These types are never built: the values are read by [`super::Params`], which gives each
//! malformed one its own 400. Their fields exist only to be described.
#![allow(dead_code)]

use utoipa::IntoParams;

/// `?min_position=`, taken by every read.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct Wait {
    /// Read your writes: wait (at most 3 s, then 503) until every projection has applied this
    /// log position (the `position` a command returned).
    #[param(minimum = 0)]
    min_position: Option<i64>,
}

/// `?after=&limit=`, taken by every list.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct Paged {
    /// The `next` cursor of the previous page (opaque).
    after: Option<String>,
    /// Page size. (`MAX_LIMIT` and `DEFAULT_LIMIT`: the macro takes only literals; a test
    /// compares them.)
    #[param(minimum = 1, maximum = 1000, default = 100)]
    limit: Option<i64>,
}

/// `?as_of_position=` / `?as_of_time=`: a temporal read, the resource folded from its stream up
/// to that point (one or the other, not both).
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AsOf {
    /// The resource as it was after this log position.
    #[param(minimum = 0)]
    as_of_position: Option<i64>,
    /// The resource as it was at this time (RFC 3339).
    as_of_time: Option<chrono::DateTime<chrono::Utc>>,
}

/// What `/v1/tenants/{id}/descendants` takes besides a page.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct Descendants {
    /// Only descendants at most this many levels below.
    #[param(minimum = 1)]
    max_depth: Option<i32>,
    /// Not supported (400): the tree is only read as it is now.
    as_of_position: Option<i64>,
    /// Not supported (400): the tree is only read as it is now.
    as_of_time: Option<String>,
}

/// `?annotation=key=value`.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct Annotation {
    /// `key=value`: resources carrying annotation `key` with this value.
    #[param(example = "example.com/owner=team-a")]
    annotation: String,
}

/// The access check's question.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AccessQuestion {
    /// The resource provider (`resopro-…`).
    resource_provider_id: String,
    /// The tenant (`tnntten-…`).
    tenant_id: String,
    /// The scope, `<resource>:<action>` (`network:read`).
    scope: String,
}

/// `/api/v1/allow`'s question, as permissions-api takes it.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AllowQuestion {
    /// The resource's id (`tnntten-…`, `lctnloc-…`, `resopro-…`, `resoprv-…`).
    resource: String,
    /// `<resource>_<verb>` (`loadbalancer_create`, `tenant_get`).
    action: String,
}

/// The audit log's filters; all optional, combined with "and".
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditFilters {
    /// The tenant's subtree (required unless the caller is a platform administrator).
    tenant_id: Option<String>,
    /// One stream.
    stream_id: Option<String>,
    /// The acting principal: a user (`idntusr-` and 43 url-safe characters, or 21 for a user
    /// recorded before Plinth adopted identity-api's ids) or a resource provider (`resopro-…`).
    actor: Option<String>,
    /// Events of commands with this correlation id.
    correlation_id: Option<uuid::Uuid>,
    /// One event type (`TenantCreated`).
    event_type: Option<String>,
    /// Recorded at or after (RFC 3339).
    since: Option<chrono::DateTime<chrono::Utc>>,
    /// Recorded before (RFC 3339).
    until: Option<chrono::DateTime<chrono::Utc>>,
}
