//! Queries over the read models. Each answers in a bounded number of indexed lookups: subtrees
//! are path ranges, "T or an ancestor of T" is `= any(ancestors)`, and nothing walks the tree.
//!
//! Authorization of reads is decided here too, from the `tenants` projection's grants: a
//! platform administrator sees everything; anyone else sees the subtrees below their grants
//! (any role may read). A query about something the viewer may not see answers `None`,
//! exactly as if it did not exist, so callers cannot tell the two apart (the API's 404).

use serde::Serialize;

use plinth_domain::Actor;

// One file per read model, beside the one that writes it in `models/` (users and their grants
// are read in `permissions`), so that a new column touches one file on each side. Besides
// them: the search by annotation across kinds (`annotated`), the log itself (`audit`), and the
// detail views of locations and resource providers, which share their availability logic
// (`shared`). Callers use this module's re-exports, so the split is not part of the API.
mod allow;
mod annotated;
mod audit;
mod locations;
mod permissions;
mod providers;
mod resource_providers;
mod resources;
mod shared;
mod tenants;

pub use allow::allowed;
pub use annotated::{annotated_resources, AnnotatedResource};
pub use audit::{audit, audit_cursor, stream_events, AuditFilter, AuditItem, AuditRefusal};
pub use locations::{location_tenants, tenant_locations, LocationView, TenantUse, UsableLocation};
pub use permissions::{tenant_grants, user_roles, GrantView, GrantsRefusal, RoleView};
pub use providers::{
    provider, resource_provider_providers, tenant_providers, ProviderDetail, ProviderView,
    UsableProvider,
};
pub use resource_providers::{
    access_check, resource_provider_tenants, tenant_resource_providers, ResourceProviderView,
    TenantResourceProvider,
};
pub use resources::{metadata, visible_resource, MetadataView, ResourceRef};
pub use shared::{
    location, resource_provider, AvailabilityView, IdentityView, LocationDetail,
    ResourceProviderDetail,
};
pub use tenants::{
    ancestors, can_view_tenant, children, descendants, roots, tenant, DescendantView, TenantDetail,
    TenantView,
};

/// Who is reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Viewer {
    /// A platform administrator: sees everything.
    Platform,
    /// A user: sees the subtrees below its grants.
    User(String),
}

impl Viewer {
    pub fn of(actor: &Actor) -> Self {
        if actor.platform_admin {
            Self::Platform
        } else {
            // A resource provider holds no grants, so through roles it sees nothing.
            Self::User(actor.id().to_owned())
        }
    }

    fn user(&self) -> Option<&str> {
        match self {
            Self::Platform => None,
            Self::User(u) => Some(u),
        }
    }
}

/// One page of a list: `next` is the sort key of the last item when more may follow.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows fetched in order.
    fn from_rows(mut items: Vec<T>, limit: i64, key: impl Fn(&T) -> String) -> Self {
        let more = items.len() as i64 > limit;
        items.truncate(limit.max(0) as usize);
        let next = if more { items.last().map(key) } else { None };
        Self { items, next }
    }
}

/// Where to start and how much to return.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    /// The `next` of the previous page.
    pub after: Option<String>,
    pub limit: i64,
}

impl PageRequest {
    fn after(&self) -> &str {
        self.after.as_deref().unwrap_or("")
    }

    fn fetch(&self) -> i64 {
        self.limit + 1
    }
}
