//! Aggregate state and `apply`: folds events into state. `apply` never fails and holds no
//! rules; it only records what the events say. Rules live in [`crate::decide`].

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::event::Event;
use crate::id::{AggregateKind, LocationId, ResourceProviderId, TenantId, UserId};
use crate::values::{
    scopes_cover, AnnotationValue, Description, IdentityPart, Name, QualifiedName, Role, Scope,
    StatusData,
};

/// Where a resource is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    Live,
    /// A delete was requested while finalizers remained; still visible.
    Deleting,
    Deleted,
}

impl Lifecycle {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Live => "live",
            Self::Deleting => "deleting",
            Self::Deleted => "deleted",
        }
    }
}

/// Kubernetes-style metadata carried by every resource.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    pub annotations: BTreeMap<QualifiedName, AnnotationValue>,
    pub statuses: BTreeMap<QualifiedName, StatusData>,
    pub finalizers: BTreeSet<QualifiedName>,
    pub deletion_requested_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tenant {
    pub name: Name,
    pub description: Option<Description>,
    pub parent_id: Option<TenantId>,
    /// Ancestors, root first; empty for a root. Fixed at creation, since the parent never changes.
    pub path: Vec<TenantId>,
    pub grants: BTreeMap<UserId, Role>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub issuer: String,
    pub subject: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Location {
    pub tenant_id: TenantId,
    pub name: Name,
    pub description: Option<Description>,
    /// Tenants it was made available to, with `include_subtenants`.
    pub available_to: BTreeMap<TenantId, bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Authorization {
    pub include_subtenants: bool,
    pub scopes: BTreeSet<Scope>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceProvider {
    pub tenant_id: TenantId,
    pub name: Name,
    pub description: Option<Description>,
    pub scopes: BTreeSet<Scope>,
    pub available_to: BTreeMap<TenantId, bool>,
    pub locations: BTreeSet<LocationId>,
    pub authorizations: BTreeMap<TenantId, Authorization>,
    /// The (issuer, subject) pairs whose tokens act as it. Absent from snapshots written
    /// before identities could be bound.
    #[serde(default)]
    pub identities: BTreeSet<BoundIdentity>,
    /// Identities bound once and unbound since: their tokens are refused, never taken for a
    /// person's (docs/security.md).
    #[serde(default)]
    pub unbound_identities: BTreeSet<BoundIdentity>,
}

/// An (issuer, subject) bound to a resource provider.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BoundIdentity {
    pub issuer: IdentityPart,
    pub subject: IdentityPart,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provider {
    pub tenant_id: TenantId,
    pub resource_provider_id: ResourceProviderId,
    pub name: Name,
}

/// What distinguishes each kind of aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Body {
    Tenant(Tenant),
    User(User),
    Location(Location),
    ResourceProvider(ResourceProvider),
    Provider(Provider),
}

/// The state of one stream, folded from its events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Aggregate {
    pub id: String,
    pub lifecycle: Lifecycle,
    pub metadata: Metadata,
    pub body: Body,
}

/// Is `resource` (made available per `available_to`, owned by `owner`) usable by `tenant`,
/// whose ancestors are `tenant_path`? Owner, direct, or an ancestor with include_subtenants.
pub fn available_to(
    owner: &TenantId,
    available_to: &BTreeMap<TenantId, bool>,
    tenant: &TenantId,
    tenant_path: &[TenantId],
) -> bool {
    owner == tenant
        || available_to.contains_key(tenant)
        || tenant_path
            .iter()
            .any(|ancestor| available_to.get(ancestor) == Some(&true))
}

impl Aggregate {
    pub fn kind(&self) -> AggregateKind {
        match self.body {
            Body::Tenant(_) => AggregateKind::Tenant,
            Body::User(_) => AggregateKind::User,
            Body::Location(_) => AggregateKind::Location,
            Body::ResourceProvider(_) => AggregateKind::ResourceProvider,
            Body::Provider(_) => AggregateKind::Provider,
        }
    }

    /// The tenant whose roles govern this resource: a tenant itself, else its owner.
    pub fn governing_tenant(&self) -> Option<TenantId> {
        match &self.body {
            Body::Tenant(_) => TenantId::parse(&self.id).ok(),
            Body::User(_) => None,
            Body::Location(l) => Some(l.tenant_id.clone()),
            Body::ResourceProvider(r) => Some(r.tenant_id.clone()),
            Body::Provider(p) => Some(p.tenant_id.clone()),
        }
    }

    /// The owning tenant (a tenant's parent), used for dependents and sibling names.
    pub fn owner_id(&self) -> Option<String> {
        match &self.body {
            Body::Tenant(t) => t.parent_id.as_ref().map(|p| p.to_string()),
            Body::User(_) => None,
            Body::Location(l) => Some(l.tenant_id.to_string()),
            Body::ResourceProvider(r) => Some(r.tenant_id.to_string()),
            Body::Provider(p) => Some(p.tenant_id.to_string()),
        }
    }

    pub fn name(&self) -> Option<&Name> {
        match &self.body {
            Body::Tenant(t) => Some(&t.name),
            Body::User(_) => None,
            Body::Location(l) => Some(&l.name),
            Body::ResourceProvider(r) => Some(&r.name),
            Body::Provider(p) => Some(&p.name),
        }
    }

    pub fn is_live(&self) -> bool {
        self.lifecycle == Lifecycle::Live
    }

    pub fn as_tenant(&self) -> Option<&Tenant> {
        match &self.body {
            Body::Tenant(t) => Some(t),
            _ => None,
        }
    }

    pub fn as_location(&self) -> Option<&Location> {
        match &self.body {
            Body::Location(l) => Some(l),
            _ => None,
        }
    }

    pub fn as_resource_provider(&self) -> Option<&ResourceProvider> {
        match &self.body {
            Body::ResourceProvider(r) => Some(r),
            _ => None,
        }
    }
}

impl ResourceProvider {
    /// Does an authorization at `tenant` (with `tenant_path` its ancestors) grant `scope`,
    /// counting only authorizations where the provider is still available?
    pub fn holds_scope(&self, tenant: &TenantId, tenant_path: &[TenantId], scope: &Scope) -> bool {
        std::iter::once(tenant).chain(tenant_path.iter()).any(|at| {
            match self.authorizations.get(at) {
                Some(auth) => {
                    (at == tenant || auth.include_subtenants)
                        && scopes_cover(&auth.scopes, scope)
                        && self.is_available_at(at, tenant_path_of(at, tenant, tenant_path))
                }
                None => false,
            }
        })
    }

    /// Whether tokens of (issuer, subject) act as this resource provider.
    pub fn is_bound(&self, issuer: &str, subject: &str) -> bool {
        self.identities
            .iter()
            .any(|i| i.issuer.as_str() == issuer && i.subject.as_str() == subject)
    }

    pub fn is_available_at(&self, tenant: &TenantId, tenant_path: &[TenantId]) -> bool {
        available_to(&self.tenant_id, &self.available_to, tenant, tenant_path)
    }
}

/// The ancestors of `at`, given that `at` is `tenant` or one of `tenant_path` (root first).
fn tenant_path_of<'a>(
    at: &TenantId,
    tenant: &TenantId,
    tenant_path: &'a [TenantId],
) -> &'a [TenantId] {
    if at == tenant {
        tenant_path
    } else {
        let index = tenant_path.iter().position(|t| t == at).unwrap_or(0);
        &tenant_path[..index]
    }
}

/// Folds one event into a stream's state. Never fails: an event that does not fit the state
/// (which `decide` never produces) leaves the state as it was.
pub fn apply(state: Option<Aggregate>, event: &Event) -> Option<Aggregate> {
    use Event as E;
    let created = |id: String, body: Body| {
        Some(Aggregate {
            id,
            lifecycle: Lifecycle::Live,
            metadata: Metadata::default(),
            body,
        })
    };
    match (state, event) {
        (
            None,
            E::TenantCreated {
                tenant_id,
                name,
                description,
                parent_id,
                path,
                ..
            },
        ) => created(
            tenant_id.to_string(),
            Body::Tenant(Tenant {
                name: name.clone(),
                description: description.clone(),
                parent_id: parent_id.clone(),
                path: path.clone(),
                grants: BTreeMap::new(),
            }),
        ),
        (
            None,
            E::UserCreated {
                user_id,
                issuer,
                subject,
            },
        ) => created(
            user_id.to_string(),
            Body::User(User {
                issuer: issuer.clone(),
                subject: subject.clone(),
            }),
        ),
        (
            None,
            E::LocationCreated {
                location_id,
                tenant_id,
                name,
                description,
            },
        ) => created(
            location_id.to_string(),
            Body::Location(Location {
                tenant_id: tenant_id.clone(),
                name: name.clone(),
                description: description.clone(),
                available_to: BTreeMap::new(),
            }),
        ),
        (
            None,
            E::ResourceProviderCreated {
                resource_provider_id,
                tenant_id,
                name,
                description,
                scopes,
            },
        ) => created(
            resource_provider_id.to_string(),
            Body::ResourceProvider(ResourceProvider {
                tenant_id: tenant_id.clone(),
                name: name.clone(),
                description: description.clone(),
                scopes: scopes.clone(),
                available_to: BTreeMap::new(),
                locations: BTreeSet::new(),
                authorizations: BTreeMap::new(),
                identities: BTreeSet::new(),
                unbound_identities: BTreeSet::new(),
            }),
        ),
        (
            None,
            E::ProviderRegistered {
                provider_id,
                tenant_id,
                resource_provider_id,
                name,
            },
        ) => created(
            provider_id.to_string(),
            Body::Provider(Provider {
                tenant_id: tenant_id.clone(),
                resource_provider_id: resource_provider_id.clone(),
                name: name.clone(),
            }),
        ),
        (None, _) => None,
        (Some(mut agg), event) => {
            apply_to_existing(&mut agg, event);
            Some(agg)
        }
    }
}

fn apply_to_existing(agg: &mut Aggregate, event: &Event) {
    use Event as E;
    match (&mut agg.body, event) {
        (
            Body::Tenant(t),
            E::TenantUpdated {
                name, description, ..
            },
        ) => {
            t.name = name.clone();
            t.description = description.clone();
        }
        (Body::Tenant(t), E::TenantAccessGranted { user_id, role, .. }) => {
            t.grants.insert(user_id.clone(), *role);
        }
        (Body::Tenant(t), E::TenantAccessRevoked { user_id, .. }) => {
            t.grants.remove(user_id);
        }
        (
            Body::Location(l),
            E::LocationUpdated {
                name, description, ..
            },
        ) => {
            l.name = name.clone();
            l.description = description.clone();
        }
        (
            Body::Location(l),
            E::LocationMadeAvailable {
                tenant_id,
                include_subtenants,
                ..
            },
        ) => {
            l.available_to
                .insert(tenant_id.clone(), *include_subtenants);
        }
        (Body::Location(l), E::LocationAvailabilityRevoked { tenant_id, .. }) => {
            l.available_to.remove(tenant_id);
        }
        (
            Body::ResourceProvider(r),
            E::ResourceProviderUpdated {
                name, description, ..
            },
        ) => {
            r.name = name.clone();
            r.description = description.clone();
        }
        (
            Body::ResourceProvider(r),
            E::ResourceProviderMadeAvailable {
                tenant_id,
                include_subtenants,
                ..
            },
        ) => {
            r.available_to
                .insert(tenant_id.clone(), *include_subtenants);
        }
        (Body::ResourceProvider(r), E::ResourceProviderAvailabilityRevoked { tenant_id, .. }) => {
            r.available_to.remove(tenant_id);
        }
        (Body::ResourceProvider(r), E::ResourceProviderLocationAdded { location_id, .. }) => {
            r.locations.insert(location_id.clone());
        }
        (Body::ResourceProvider(r), E::ResourceProviderLocationRemoved { location_id, .. }) => {
            r.locations.remove(location_id);
        }
        (
            Body::ResourceProvider(r),
            E::ProviderAuthorized {
                tenant_id,
                include_subtenants,
                scopes,
                ..
            },
        ) => {
            r.authorizations.insert(
                tenant_id.clone(),
                Authorization {
                    include_subtenants: *include_subtenants,
                    scopes: scopes.clone(),
                },
            );
        }
        (Body::ResourceProvider(r), E::ProviderAuthorizationRevoked { tenant_id, .. }) => {
            r.authorizations.remove(tenant_id);
        }
        (
            Body::ResourceProvider(r),
            E::ResourceProviderIdentityBound {
                issuer, subject, ..
            },
        ) => {
            let identity = BoundIdentity {
                issuer: issuer.clone(),
                subject: subject.clone(),
            };
            r.unbound_identities.remove(&identity);
            r.identities.insert(identity);
        }
        (
            Body::ResourceProvider(r),
            E::ResourceProviderIdentityUnbound {
                issuer, subject, ..
            },
        ) => {
            let identity = BoundIdentity {
                issuer: issuer.clone(),
                subject: subject.clone(),
            };
            r.identities.remove(&identity);
            r.unbound_identities.insert(identity);
        }
        (_, E::TenantDeleted { .. })
        | (_, E::LocationDeleted { .. })
        | (_, E::ResourceProviderDeleted { .. })
        | (_, E::ProviderUnregistered { .. }) => agg.lifecycle = Lifecycle::Deleted,
        (_, E::DeletionRequested { requested_at, .. }) => {
            agg.lifecycle = Lifecycle::Deleting;
            agg.metadata.deletion_requested_at = Some(*requested_at);
        }
        (_, E::AnnotationSet { key, value, .. }) => {
            agg.metadata.annotations.insert(key.clone(), value.clone());
        }
        (_, E::AnnotationRemoved { key, .. }) => {
            agg.metadata.annotations.remove(key);
        }
        (_, E::StatusSet { source, data, .. }) => {
            agg.metadata.statuses.insert(source.clone(), data.clone());
        }
        (_, E::StatusRemoved { source, .. }) => {
            agg.metadata.statuses.remove(source);
        }
        (_, E::FinalizerAdded { finalizer, .. }) => {
            agg.metadata.finalizers.insert(finalizer.clone());
        }
        (_, E::FinalizerRemoved { finalizer, .. }) => {
            agg.metadata.finalizers.remove(finalizer);
        }
        _ => {}
    }
}
