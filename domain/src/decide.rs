//! `decide`: every business rule and every authorization check. Given the state the write side
//! loaded (and locked), a command either yields the events to append or a [`DomainError`].

use chrono::{DateTime, Utc};

use crate::aggregate::{available_to, Aggregate, Body, Lifecycle};
use crate::command::{self as cmd, Command};
use crate::event::Event;
use crate::id::{LocationId, ProviderId, ResourceId, ResourceProviderId, TenantId, UserId};
use crate::values::{QualifiedName, Role, Scope};

/// Who is acting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub principal: Principal,
    /// Configured platform administrators may do everything, including creating roots.
    pub platform_admin: bool,
}

/// The kinds of principal besides platform administrators (docs/security.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A person: may do what its roles on tenants allow.
    User(UserId),
    /// A resource provider, signed in with an identity bound to it. Whether the identity is
    /// still bound is decided again when the command commits, like a person's roles.
    ResourceProvider {
        id: ResourceProviderId,
        issuer: String,
        subject: String,
    },
}

impl Actor {
    /// A person.
    pub fn user(user_id: UserId, platform_admin: bool) -> Self {
        Self {
            principal: Principal::User(user_id),
            platform_admin,
        }
    }

    /// A resource provider acting through the bound (issuer, subject). Never a platform
    /// administrator.
    pub fn resource_provider(id: ResourceProviderId, issuer: String, subject: String) -> Self {
        Self {
            principal: Principal::ResourceProvider {
                id,
                issuer,
                subject,
            },
            platform_admin: false,
        }
    }

    /// The id events record as their actor: the user's or the resource provider's.
    pub fn id(&self) -> &str {
        match &self.principal {
            Principal::User(u) => u.as_str(),
            Principal::ResourceProvider { id, .. } => id.as_str(),
        }
    }

    /// The person acting, if a person is.
    pub fn user_id(&self) -> Option<&UserId> {
        match &self.principal {
            Principal::User(u) => Some(u),
            Principal::ResourceProvider { .. } => None,
        }
    }

    /// The resource provider acting, if one is.
    pub fn resource_provider_id(&self) -> Option<&ResourceProviderId> {
        match &self.principal {
            Principal::User(_) => None,
            Principal::ResourceProvider { id, .. } => Some(id),
        }
    }

    /// Streams a decision for this actor reads besides the command's: a resource provider's
    /// own stream, whose bound identities (and authorizations) are checked at commit.
    pub fn references(&self) -> Vec<String> {
        self.resource_provider_id()
            .map(|id| vec![id.to_string()])
            .unwrap_or_default()
    }
}

/// What the write side loaded for a decision: the target, the command's references, and the
/// tenant chain (ancestors) of each of them.
pub trait Facts {
    /// A stream's state, or `None` if it does not exist (or was not loaded).
    fn get(&self, id: &str) -> Option<&Aggregate>;
    /// Whether `id` still has live sub-tenants, owned resources or registered providers.
    /// Asked only for commands whose `checks_dependents()` is true.
    fn has_live_dependents(&self, id: &str) -> bool;
}

/// Why a command was refused. The API maps each kind to an HTTP status (`api/src/error.rs`);
/// the domain speaks no HTTP.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// The resource does not exist (or was deleted).
    #[error("{id} does not exist")]
    NotFound { id: String },
    /// The actor lacks the role.
    #[error("requires role `{}` on {}", needed.as_str(), on.as_ref().map_or("the platform (platform administrator)".to_owned(), |t| t.to_string()))]
    Forbidden { needed: Role, on: Option<TenantId> },
    /// The resource is being deleted and takes no new finalizers, children or availability.
    #[error("{id} is being deleted")]
    Deleting { id: String },
    /// A delete while sub-tenants, owned resources or providers remain.
    #[error("{id} still has live sub-tenants, resources or providers")]
    HasDependents { id: String },
    /// A live sibling already has this name (case-insensitive).
    #[error("a sibling named `{name}` already exists")]
    NameTaken { name: String },
    /// Availability may only be given to strict descendants of the owner.
    #[error("{tenant_id} is not a strict descendant of the owner {owner_id}")]
    NotStrictDescendant {
        tenant_id: TenantId,
        owner_id: TenantId,
    },
    /// The resource provider is not available to that tenant.
    #[error("{resource_provider_id} is not available to {tenant_id}")]
    NotAvailable {
        resource_provider_id: ResourceProviderId,
        tenant_id: TenantId,
    },
    /// The location is not usable by the resource provider's owner.
    #[error("{location_id} is not usable by {tenant_id}")]
    LocationNotUsable {
        location_id: LocationId,
        tenant_id: TenantId,
    },
    /// Authorized scopes must be requested by the resource provider.
    #[error("scopes not requested by the resource provider: {}", scopes.join(", "))]
    ScopesNotRequested { scopes: Vec<String> },
    /// A resource provider must request at least one scope.
    #[error("at least one scope is required")]
    NoScopes,
    /// The identity already signed in as a person; a person is never a resource provider.
    #[error("({issuer}, {subject}) is recorded as a person ({user_id}) and cannot act as a resource provider")]
    IdentityIsAPerson {
        issuer: String,
        subject: String,
        user_id: String,
    },
    /// A resource provider acting without a live authorization for the scope in the tenant
    /// that governs the resource.
    #[error("{resource_provider_id} does not hold `{scope}` in {tenant_id}")]
    ScopeNotHeld {
        resource_provider_id: ResourceProviderId,
        scope: String,
        tenant_id: TenantId,
    },
    /// A resource provider may write only statuses and finalizers named after itself.
    #[error("`{name}` is not {resource_provider_id}'s: its name part must be the provider's id, or start with the id and a dot")]
    NotOwnName {
        resource_provider_id: ResourceProviderId,
        name: String,
    },
    /// The caller's identity is no longer bound to the resource provider it signed in as (or
    /// the provider was deleted) by the time the command commits.
    #[error("the caller's identity is no longer bound to {resource_provider_id}")]
    IdentityNotBound {
        resource_provider_id: ResourceProviderId,
    },
}

impl DomainError {
    /// A stable, machine-readable name (the problem `type` suffix).
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "not-found",
            Self::Forbidden { .. } => "forbidden",
            Self::Deleting { .. } => "deleting",
            Self::HasDependents { .. } => "has-dependents",
            Self::NameTaken { .. } => "name-taken",
            Self::NotStrictDescendant { .. } => "not-strict-descendant",
            Self::NotAvailable { .. } => "not-available",
            Self::LocationNotUsable { .. } => "location-not-usable",
            Self::ScopesNotRequested { .. } => "scopes-not-requested",
            Self::NoScopes => "no-scopes",
            Self::IdentityIsAPerson { .. } => "identity-is-a-person",
            Self::IdentityNotBound { .. } => "identity-not-bound",
            Self::ScopeNotHeld { .. } => "scope-not-held",
            Self::NotOwnName { .. } => "not-own-name",
        }
    }
}

type Decided = Result<Vec<Event>, DomainError>;

/// Decides `command` against the loaded state. `target_id` is the stream it writes: for a
/// create, the id the write side picked for the new stream.
pub fn decide(
    command: &Command,
    actor: &Actor,
    target_id: &str,
    facts: &dyn Facts,
    now: DateTime<Utc>,
) -> Decided {
    let ctx = Ctx { actor, facts, now };
    ctx.check_principal()?;
    use Command as C;
    match command {
        C::CreateTenant(c) => ctx.create_tenant(c, target_id),
        C::UpdateTenant(c) => ctx.update_tenant(c),
        C::DeleteTenant(c) => ctx.delete_tenant(c),
        C::GrantTenantAccess(c) => ctx.grant(c),
        C::RevokeTenantAccess(c) => ctx.revoke(c),
        C::CreateLocation(c) => ctx.create_location(c, target_id),
        C::UpdateLocation(c) => ctx.update_location(c),
        C::DeleteLocation(c) => ctx.delete_resource(&c.location_id.clone().into()),
        C::MakeLocationAvailable(c) => ctx.make_location_available(c),
        C::RevokeLocationAvailability(c) => ctx.revoke_location_availability(c),
        C::CreateResourceProvider(c) => ctx.create_resource_provider(c, target_id),
        C::UpdateResourceProvider(c) => ctx.update_resource_provider(c),
        C::DeleteResourceProvider(c) => ctx.delete_resource(&c.resource_provider_id.clone().into()),
        C::MakeResourceProviderAvailable(c) => ctx.make_rp_available(c),
        C::RevokeResourceProviderAvailability(c) => ctx.revoke_rp_availability(c),
        C::AddResourceProviderLocation(c) => ctx.add_rp_location(c),
        C::RemoveResourceProviderLocation(c) => ctx.remove_rp_location(c),
        C::AuthorizeResourceProvider(c) => ctx.authorize_rp(c),
        C::RevokeResourceProviderAuthorization(c) => ctx.revoke_rp_authorization(c),
        C::BindResourceProviderIdentity(c) => ctx.bind_identity(c),
        C::UnbindResourceProviderIdentity(c) => ctx.unbind_identity(c),
        C::RegisterProvider(c) => ctx.register_provider(c, target_id),
        C::UnregisterProvider(c) => ctx.delete_resource(&c.provider_id.clone().into()),
        C::SetAnnotation(c) => ctx.set_annotation(c),
        C::RemoveAnnotation(c) => ctx.remove_annotation(c),
        C::SetStatus(c) => ctx.set_status(c),
        C::RemoveStatus(c) => ctx.remove_status(c),
        C::AddFinalizer(c) => ctx.add_finalizer(c),
        C::RemoveFinalizer(c) => ctx.remove_finalizer(c),
    }
}

/// The effective role of `user` on `tenant`: the highest grant on the tenant or an ancestor.
pub fn effective_role(facts: &dyn Facts, user: &UserId, tenant: &TenantId) -> Option<Role> {
    let t = facts.get(tenant.as_str())?.as_tenant()?;
    t.path
        .iter()
        .chain(std::iter::once(tenant))
        .filter_map(|id| {
            facts
                .get(id.as_str())?
                .as_tenant()?
                .grants
                .get(user)
                .copied()
        })
        .max()
}

struct Ctx<'a> {
    actor: &'a Actor,
    facts: &'a dyn Facts,
    now: DateTime<Utc>,
}

fn not_found(id: &str) -> DomainError {
    DomainError::NotFound { id: id.to_owned() }
}

/// Nothing changed: no events, and the command still succeeds (idempotent by state).
fn unchanged() -> Decided {
    Ok(Vec::new())
}

impl<'a> Ctx<'a> {
    /// The stream's state if it exists and is not deleted.
    fn existing(&self, id: &str) -> Result<&'a Aggregate, DomainError> {
        match self.facts.get(id) {
            Some(agg) if agg.lifecycle != Lifecycle::Deleted => Ok(agg),
            _ => Err(not_found(id)),
        }
    }

    /// Exists and is not being deleted.
    fn live(&self, id: &str) -> Result<&'a Aggregate, DomainError> {
        let agg = self.existing(id)?;
        if agg.lifecycle == Lifecycle::Deleting {
            return Err(DomainError::Deleting { id: id.to_owned() });
        }
        Ok(agg)
    }

    fn tenant(&self, id: &TenantId) -> Result<&'a crate::aggregate::Tenant, DomainError> {
        self.existing(id.as_str())?
            .as_tenant()
            .ok_or_else(|| not_found(id.as_str()))
    }

    /// A resource provider acts only while the identity it signed in with is bound to it and
    /// it is not deleted: checked against the state locked for this commit, so unbinding
    /// stops the next command whatever the caller's token says.
    fn check_principal(&self) -> Result<(), DomainError> {
        let Principal::ResourceProvider {
            id,
            issuer,
            subject,
        } = &self.actor.principal
        else {
            return Ok(());
        };
        let bound = self
            .facts
            .get(id.as_str())
            .filter(|agg| agg.lifecycle != Lifecycle::Deleted)
            .and_then(Aggregate::as_resource_provider)
            .is_some_and(|rp| rp.is_bound(issuer, subject));
        if bound {
            Ok(())
        } else {
            Err(DomainError::IdentityNotBound {
                resource_provider_id: id.clone(),
            })
        }
    }

    fn require(&self, needed: Role, on: &TenantId) -> Result<(), DomainError> {
        let role = self
            .actor
            .user_id()
            .and_then(|user| effective_role(self.facts, user, on));
        if self.actor.platform_admin || role.is_some_and(|r| r >= needed) {
            Ok(())
        } else {
            Err(DomainError::Forbidden {
                needed,
                on: Some(on.clone()),
            })
        }
    }

    fn require_platform_admin(&self) -> Result<(), DomainError> {
        if self.actor.platform_admin {
            Ok(())
        } else {
            Err(DomainError::Forbidden {
                needed: Role::Admin,
                on: None,
            })
        }
    }

    /// Requires `needed` on the tenant that governs `agg`.
    fn require_on(&self, needed: Role, agg: &Aggregate) -> Result<(), DomainError> {
        match agg.governing_tenant() {
            Some(t) => self.require(needed, &t),
            None => self.require_platform_admin(),
        }
    }

    fn create_tenant(&self, c: &cmd::CreateTenant, new_id: &str) -> Decided {
        let tenant_id = TenantId::parse(new_id).expect("write side passes a tenant id");
        let path = match &c.parent_id {
            None => {
                self.require_platform_admin()?;
                Vec::new()
            }
            Some(parent_id) => {
                self.live(parent_id.as_str())?;
                let parent = self.tenant(parent_id)?;
                self.require(Role::Admin, parent_id)?;
                let mut path = parent.path.clone();
                path.push(parent_id.clone());
                path
            }
        };
        Ok(vec![Event::TenantCreated {
            tenant_id,
            name: c.name.clone(),
            description: c.description.clone(),
            parent_id: c.parent_id.clone(),
            depth: path.len() as u32,
            path,
        }])
    }

    fn update_tenant(&self, c: &cmd::UpdateTenant) -> Decided {
        let tenant = self.tenant(&c.tenant_id)?;
        self.require(Role::Admin, &c.tenant_id)?;
        let name = c.name.clone().unwrap_or_else(|| tenant.name.clone());
        let description = c.description.clone().or_else(|| tenant.description.clone());
        if name == tenant.name && description == tenant.description {
            return unchanged();
        }
        Ok(vec![Event::TenantUpdated {
            tenant_id: c.tenant_id.clone(),
            name,
            description,
        }])
    }

    fn delete_tenant(&self, c: &cmd::DeleteTenant) -> Decided {
        let tenant = self.tenant(&c.tenant_id)?;
        // Managing sub-tenants is the parent's admins' business; roots belong to the platform.
        match &tenant.parent_id {
            Some(parent) => self.require(Role::Admin, parent)?,
            None => self.require_platform_admin()?,
        }
        self.delete_checked(&c.tenant_id.clone().into())
    }

    /// Deletes a location, resource provider or provider after the editor check.
    fn delete_resource(&self, id: &ResourceId) -> Decided {
        let agg = self.existing(id.as_str())?;
        self.require_on(Role::Editor, agg)?;
        self.delete_checked(id)
    }

    /// The common delete: refused while dependents live; with finalizers, only requested.
    fn delete_checked(&self, id: &ResourceId) -> Decided {
        let agg = self.existing(id.as_str())?;
        if agg.lifecycle == Lifecycle::Deleting {
            return unchanged();
        }
        if self.facts.has_live_dependents(id.as_str()) {
            return Err(DomainError::HasDependents { id: id.to_string() });
        }
        if !agg.metadata.finalizers.is_empty() {
            return Ok(vec![Event::DeletionRequested {
                resource_id: id.clone(),
                requested_at: self.now,
                finalizers: agg.metadata.finalizers.clone(),
            }]);
        }
        Ok(vec![deleted_event(agg)])
    }

    fn grant(&self, c: &cmd::GrantTenantAccess) -> Decided {
        let tenant = self.tenant(&c.tenant_id)?;
        self.require(Role::Admin, &c.tenant_id)?;
        self.existing(c.user_id.as_str())?;
        if tenant.grants.get(&c.user_id) == Some(&c.role) {
            return unchanged();
        }
        Ok(vec![Event::TenantAccessGranted {
            tenant_id: c.tenant_id.clone(),
            user_id: c.user_id.clone(),
            role: c.role,
        }])
    }

    fn revoke(&self, c: &cmd::RevokeTenantAccess) -> Decided {
        let tenant = self.tenant(&c.tenant_id)?;
        self.require(Role::Admin, &c.tenant_id)?;
        if !tenant.grants.contains_key(&c.user_id) {
            return unchanged();
        }
        Ok(vec![Event::TenantAccessRevoked {
            tenant_id: c.tenant_id.clone(),
            user_id: c.user_id.clone(),
        }])
    }

    /// The owner of a new resource must be a live tenant where the actor is an editor.
    fn owner_for_new_resource(&self, tenant_id: &TenantId) -> Result<(), DomainError> {
        self.live(tenant_id.as_str())?;
        self.tenant(tenant_id)?;
        self.require(Role::Editor, tenant_id)
    }

    fn create_location(&self, c: &cmd::CreateLocation, new_id: &str) -> Decided {
        self.owner_for_new_resource(&c.tenant_id)?;
        Ok(vec![Event::LocationCreated {
            location_id: LocationId::parse(new_id).expect("write side passes a location id"),
            tenant_id: c.tenant_id.clone(),
            name: c.name.clone(),
            description: c.description.clone(),
        }])
    }

    fn location(
        &self,
        id: &LocationId,
    ) -> Result<(&'a Aggregate, &'a crate::aggregate::Location), DomainError> {
        let agg = self.existing(id.as_str())?;
        let location = agg.as_location().ok_or_else(|| not_found(id.as_str()))?;
        Ok((agg, location))
    }

    fn update_location(&self, c: &cmd::UpdateLocation) -> Decided {
        let (agg, location) = self.location(&c.location_id)?;
        self.require_on(Role::Editor, agg)?;
        let name = c.name.clone().unwrap_or_else(|| location.name.clone());
        let description = c
            .description
            .clone()
            .or_else(|| location.description.clone());
        if name == location.name && description == location.description {
            return unchanged();
        }
        Ok(vec![Event::LocationUpdated {
            location_id: c.location_id.clone(),
            name,
            description,
        }])
    }

    /// Availability goes to live strict descendants of the owner, from a live resource.
    fn check_availability_target(
        &self,
        resource: &str,
        owner: &TenantId,
        tenant_id: &TenantId,
    ) -> Result<(), DomainError> {
        self.live(resource)?;
        self.live(tenant_id.as_str())?;
        let tenant = self.tenant(tenant_id)?;
        if !tenant.path.contains(owner) {
            return Err(DomainError::NotStrictDescendant {
                tenant_id: tenant_id.clone(),
                owner_id: owner.clone(),
            });
        }
        Ok(())
    }

    fn make_location_available(&self, c: &cmd::MakeLocationAvailable) -> Decided {
        let (agg, location) = self.location(&c.location_id)?;
        self.require_on(Role::Editor, agg)?;
        self.check_availability_target(c.location_id.as_str(), &location.tenant_id, &c.tenant_id)?;
        if location.available_to.get(&c.tenant_id) == Some(&c.include_subtenants) {
            return unchanged();
        }
        Ok(vec![Event::LocationMadeAvailable {
            location_id: c.location_id.clone(),
            tenant_id: c.tenant_id.clone(),
            include_subtenants: c.include_subtenants,
        }])
    }

    fn revoke_location_availability(&self, c: &cmd::RevokeLocationAvailability) -> Decided {
        let (agg, location) = self.location(&c.location_id)?;
        self.require_on(Role::Editor, agg)?;
        if !location.available_to.contains_key(&c.tenant_id) {
            return unchanged();
        }
        Ok(vec![Event::LocationAvailabilityRevoked {
            location_id: c.location_id.clone(),
            tenant_id: c.tenant_id.clone(),
        }])
    }

    fn create_resource_provider(&self, c: &cmd::CreateResourceProvider, new_id: &str) -> Decided {
        self.owner_for_new_resource(&c.tenant_id)?;
        if c.scopes.is_empty() {
            return Err(DomainError::NoScopes);
        }
        Ok(vec![Event::ResourceProviderCreated {
            resource_provider_id: ResourceProviderId::parse(new_id)
                .expect("write side passes a resource provider id"),
            tenant_id: c.tenant_id.clone(),
            name: c.name.clone(),
            description: c.description.clone(),
            scopes: c.scopes.clone(),
        }])
    }

    fn resource_provider(
        &self,
        id: &ResourceProviderId,
    ) -> Result<(&'a Aggregate, &'a crate::aggregate::ResourceProvider), DomainError> {
        let agg = self.existing(id.as_str())?;
        let rp = agg
            .as_resource_provider()
            .ok_or_else(|| not_found(id.as_str()))?;
        Ok((agg, rp))
    }

    fn update_resource_provider(&self, c: &cmd::UpdateResourceProvider) -> Decided {
        let (agg, rp) = self.resource_provider(&c.resource_provider_id)?;
        self.require_on(Role::Editor, agg)?;
        let name = c.name.clone().unwrap_or_else(|| rp.name.clone());
        let description = c.description.clone().or_else(|| rp.description.clone());
        if name == rp.name && description == rp.description {
            return unchanged();
        }
        Ok(vec![Event::ResourceProviderUpdated {
            resource_provider_id: c.resource_provider_id.clone(),
            name,
            description,
        }])
    }

    fn make_rp_available(&self, c: &cmd::MakeResourceProviderAvailable) -> Decided {
        let (agg, rp) = self.resource_provider(&c.resource_provider_id)?;
        self.require_on(Role::Editor, agg)?;
        self.check_availability_target(
            c.resource_provider_id.as_str(),
            &rp.tenant_id,
            &c.tenant_id,
        )?;
        if rp.available_to.get(&c.tenant_id) == Some(&c.include_subtenants) {
            return unchanged();
        }
        Ok(vec![Event::ResourceProviderMadeAvailable {
            resource_provider_id: c.resource_provider_id.clone(),
            tenant_id: c.tenant_id.clone(),
            include_subtenants: c.include_subtenants,
        }])
    }

    fn revoke_rp_availability(&self, c: &cmd::RevokeResourceProviderAvailability) -> Decided {
        let (agg, rp) = self.resource_provider(&c.resource_provider_id)?;
        self.require_on(Role::Editor, agg)?;
        if !rp.available_to.contains_key(&c.tenant_id) {
            return unchanged();
        }
        Ok(vec![Event::ResourceProviderAvailabilityRevoked {
            resource_provider_id: c.resource_provider_id.clone(),
            tenant_id: c.tenant_id.clone(),
        }])
    }

    fn add_rp_location(&self, c: &cmd::AddResourceProviderLocation) -> Decided {
        let (agg, rp) = self.resource_provider(&c.resource_provider_id)?;
        self.require_on(Role::Editor, agg)?;
        self.live(c.resource_provider_id.as_str())?;
        let (location_agg, location) = self.location(&c.location_id)?;
        let owner = self.tenant(&rp.tenant_id)?;
        if !location_agg.is_live()
            || !available_to(
                &location.tenant_id,
                &location.available_to,
                &rp.tenant_id,
                &owner.path,
            )
        {
            return Err(DomainError::LocationNotUsable {
                location_id: c.location_id.clone(),
                tenant_id: rp.tenant_id.clone(),
            });
        }
        if rp.locations.contains(&c.location_id) {
            return unchanged();
        }
        Ok(vec![Event::ResourceProviderLocationAdded {
            resource_provider_id: c.resource_provider_id.clone(),
            location_id: c.location_id.clone(),
        }])
    }

    fn remove_rp_location(&self, c: &cmd::RemoveResourceProviderLocation) -> Decided {
        let (agg, rp) = self.resource_provider(&c.resource_provider_id)?;
        self.require_on(Role::Editor, agg)?;
        if !rp.locations.contains(&c.location_id) {
            return unchanged();
        }
        Ok(vec![Event::ResourceProviderLocationRemoved {
            resource_provider_id: c.resource_provider_id.clone(),
            location_id: c.location_id.clone(),
        }])
    }

    fn authorize_rp(&self, c: &cmd::AuthorizeResourceProvider) -> Decided {
        let (_, rp) = self.resource_provider(&c.resource_provider_id)?;
        let tenant = self.tenant(&c.tenant_id)?;
        self.require(Role::Admin, &c.tenant_id)?;
        self.live(c.resource_provider_id.as_str())?;
        self.live(c.tenant_id.as_str())?;
        if !rp.is_available_at(&c.tenant_id, &tenant.path) {
            return Err(DomainError::NotAvailable {
                resource_provider_id: c.resource_provider_id.clone(),
                tenant_id: c.tenant_id.clone(),
            });
        }
        let scopes = c.scopes.clone().unwrap_or_else(|| rp.scopes.clone());
        let not_requested: Vec<String> = scopes
            .difference(&rp.scopes)
            .map(|s| s.to_string())
            .collect();
        if !not_requested.is_empty() {
            return Err(DomainError::ScopesNotRequested {
                scopes: not_requested,
            });
        }
        if scopes.is_empty() {
            return Err(DomainError::NoScopes);
        }
        let current = rp.authorizations.get(&c.tenant_id);
        if current
            .is_some_and(|a| a.include_subtenants == c.include_subtenants && a.scopes == scopes)
        {
            return unchanged();
        }
        Ok(vec![Event::ProviderAuthorized {
            resource_provider_id: c.resource_provider_id.clone(),
            tenant_id: c.tenant_id.clone(),
            include_subtenants: c.include_subtenants,
            scopes,
        }])
    }

    fn revoke_rp_authorization(&self, c: &cmd::RevokeResourceProviderAuthorization) -> Decided {
        let (_, rp) = self.resource_provider(&c.resource_provider_id)?;
        self.tenant(&c.tenant_id)?;
        self.require(Role::Admin, &c.tenant_id)?;
        if !rp.authorizations.contains_key(&c.tenant_id) {
            return unchanged();
        }
        Ok(vec![Event::ProviderAuthorizationRevoked {
            resource_provider_id: c.resource_provider_id.clone(),
            tenant_id: c.tenant_id.clone(),
        }])
    }

    /// Admins of the owner bind identities to a live resource provider; an identity recorded
    /// as a person cannot be bound (its user streams are locked and loaded for this).
    fn bind_identity(&self, c: &cmd::BindResourceProviderIdentity) -> Decided {
        let (agg, rp) = self.resource_provider(&c.resource_provider_id)?;
        self.require_on(Role::Admin, agg)?;
        self.live(c.resource_provider_id.as_str())?;
        let (user, legacy) = c.user_ids();
        if let Some(person) = [user, legacy]
            .iter()
            .find(|id| self.facts.get(id.as_str()).is_some())
        {
            return Err(DomainError::IdentityIsAPerson {
                issuer: c.issuer.to_string(),
                subject: c.subject.to_string(),
                user_id: person.to_string(),
            });
        }
        if rp.is_bound(c.issuer.as_str(), c.subject.as_str()) {
            return unchanged();
        }
        Ok(vec![Event::ResourceProviderIdentityBound {
            resource_provider_id: c.resource_provider_id.clone(),
            issuer: c.issuer.clone(),
            subject: c.subject.clone(),
        }])
    }

    /// Admins of the owner unbind, and so may the resource provider itself (retiring a
    /// credential it has replaced).
    fn unbind_identity(&self, c: &cmd::UnbindResourceProviderIdentity) -> Decided {
        let (agg, rp) = self.resource_provider(&c.resource_provider_id)?;
        if self.actor.resource_provider_id() != Some(&c.resource_provider_id) {
            self.require_on(Role::Admin, agg)?;
        }
        if !rp.is_bound(c.issuer.as_str(), c.subject.as_str()) {
            return unchanged();
        }
        Ok(vec![Event::ResourceProviderIdentityUnbound {
            resource_provider_id: c.resource_provider_id.clone(),
            issuer: c.issuer.clone(),
            subject: c.subject.clone(),
        }])
    }

    fn register_provider(&self, c: &cmd::RegisterProvider, new_id: &str) -> Decided {
        self.owner_for_new_resource(&c.tenant_id)?;
        let tenant = self.tenant(&c.tenant_id)?;
        let (_, rp) = self.resource_provider(&c.resource_provider_id)?;
        self.live(c.resource_provider_id.as_str())?;
        if !rp.is_available_at(&c.tenant_id, &tenant.path) {
            return Err(DomainError::NotAvailable {
                resource_provider_id: c.resource_provider_id.clone(),
                tenant_id: c.tenant_id.clone(),
            });
        }
        Ok(vec![Event::ProviderRegistered {
            provider_id: ProviderId::parse(new_id).expect("write side passes a provider id"),
            tenant_id: c.tenant_id.clone(),
            resource_provider_id: c.resource_provider_id.clone(),
            name: c.name.clone(),
        }])
    }

    /// Metadata changes need editor on the governing tenant (admin for a tenant's own).
    fn metadata_target(&self, id: &ResourceId) -> Result<&'a Aggregate, DomainError> {
        let agg = self.existing(id.as_str())?;
        self.require_on(Role::Editor, agg)?;
        Ok(agg)
    }

    fn set_annotation(&self, c: &cmd::SetAnnotation) -> Decided {
        let agg = self.metadata_target(&c.resource_id)?;
        if agg.metadata.annotations.get(&c.key) == Some(&c.value) {
            return unchanged();
        }
        Ok(vec![Event::AnnotationSet {
            resource_id: c.resource_id.clone(),
            key: c.key.clone(),
            value: c.value.clone(),
        }])
    }

    fn remove_annotation(&self, c: &cmd::RemoveAnnotation) -> Decided {
        let agg = self.metadata_target(&c.resource_id)?;
        if !agg.metadata.annotations.contains_key(&c.key) {
            return unchanged();
        }
        Ok(vec![Event::AnnotationRemoved {
            resource_id: c.resource_id.clone(),
            key: c.key.clone(),
        }])
    }

    /// Statuses and finalizers: people by role, as other metadata; a resource provider by
    /// scope (`status:write`, `finalizer:write`, or `…:*`) in the tenant that governs the
    /// resource, and only under its own name (docs/security.md, "Scopes Plinth interprets").
    fn provider_metadata_target(
        &self,
        id: &ResourceId,
        name: &QualifiedName,
        scope: &str,
    ) -> Result<&'a Aggregate, DomainError> {
        let Some(rp_id) = self.actor.resource_provider_id() else {
            return self.metadata_target(id);
        };
        let agg = self.existing(id.as_str())?;
        if !is_own_name(name, rp_id) {
            return Err(DomainError::NotOwnName {
                resource_provider_id: rp_id.clone(),
                name: name.to_string(),
            });
        }
        let scope = Scope::parse(scope).expect("a valid scope");
        // A user's stream is governed by no tenant: nothing a provider may touch.
        let tenant_id = agg.governing_tenant().ok_or(DomainError::Forbidden {
            needed: Role::Editor,
            on: None,
        })?;
        let path = self
            .facts
            .get(tenant_id.as_str())
            .and_then(Aggregate::as_tenant)
            .map(|t| t.path.as_slice());
        let rp = self
            .facts
            .get(rp_id.as_str())
            .and_then(Aggregate::as_resource_provider);
        let held = match (path, rp) {
            (Some(path), Some(rp)) => rp.holds_scope(&tenant_id, path, &scope),
            _ => false,
        };
        if !held {
            return Err(DomainError::ScopeNotHeld {
                resource_provider_id: rp_id.clone(),
                scope: scope.to_string(),
                tenant_id,
            });
        }
        Ok(agg)
    }

    fn set_status(&self, c: &cmd::SetStatus) -> Decided {
        let agg = self.provider_metadata_target(&c.resource_id, &c.source, STATUS_SCOPE)?;
        if agg.metadata.statuses.get(&c.source) == Some(&c.data) {
            return unchanged();
        }
        Ok(vec![Event::StatusSet {
            resource_id: c.resource_id.clone(),
            source: c.source.clone(),
            data: c.data.clone(),
        }])
    }

    fn remove_status(&self, c: &cmd::RemoveStatus) -> Decided {
        let agg = self.provider_metadata_target(&c.resource_id, &c.source, STATUS_SCOPE)?;
        if !agg.metadata.statuses.contains_key(&c.source) {
            return unchanged();
        }
        Ok(vec![Event::StatusRemoved {
            resource_id: c.resource_id.clone(),
            source: c.source.clone(),
        }])
    }

    fn add_finalizer(&self, c: &cmd::AddFinalizer) -> Decided {
        let agg = self.provider_metadata_target(&c.resource_id, &c.finalizer, FINALIZER_SCOPE)?;
        self.live(c.resource_id.as_str())?;
        if agg.metadata.finalizers.contains(&c.finalizer) {
            return unchanged();
        }
        Ok(vec![Event::FinalizerAdded {
            resource_id: c.resource_id.clone(),
            finalizer: c.finalizer.clone(),
        }])
    }

    fn remove_finalizer(&self, c: &cmd::RemoveFinalizer) -> Decided {
        let agg = self.provider_metadata_target(&c.resource_id, &c.finalizer, FINALIZER_SCOPE)?;
        if !agg.metadata.finalizers.contains(&c.finalizer) {
            return unchanged();
        }
        let mut events = vec![Event::FinalizerRemoved {
            resource_id: c.resource_id.clone(),
            finalizer: c.finalizer.clone(),
        }];
        // Removing the last finalizer of a deleting resource completes its deletion.
        if agg.lifecycle == Lifecycle::Deleting && agg.metadata.finalizers.len() == 1 {
            events.push(deleted_event(agg));
        }
        Ok(events)
    }
}

/// The scope a resource provider needs to set and remove its statuses.
pub const STATUS_SCOPE: &str = "status:write";
/// The scope a resource provider needs to add and remove its finalizers.
pub const FINALIZER_SCOPE: &str = "finalizer:write";

/// Whether a status source or finalizer is resource provider `rp`'s own: its name part (after
/// the optional `prefix/`) is the provider's id, or starts with the id and a dot
/// (`example.com/resopro-1abc….health`): ids may end in `-` or `_`, which a name may not.
pub fn is_own_name(name: &QualifiedName, rp: &ResourceProviderId) -> bool {
    let part = name
        .as_str()
        .rsplit_once('/')
        .map_or(name.as_str(), |(_, part)| part);
    part == rp.as_str()
        || part
            .strip_prefix(rp.as_str())
            .is_some_and(|rest| rest.starts_with('.'))
}

/// The `<Resource>Deleted` event for a resource.
fn deleted_event(agg: &Aggregate) -> Event {
    let id = agg.id.clone();
    match &agg.body {
        Body::Tenant(_) => Event::TenantDeleted {
            tenant_id: TenantId::parse(&id).expect("tenant id"),
        },
        Body::Location(_) => Event::LocationDeleted {
            location_id: LocationId::parse(&id).expect("location id"),
        },
        Body::ResourceProvider(_) => Event::ResourceProviderDeleted {
            resource_provider_id: ResourceProviderId::parse(&id).expect("resource provider id"),
        },
        Body::Provider(_) => Event::ProviderUnregistered {
            provider_id: ProviderId::parse(&id).expect("provider id"),
        },
        Body::User(_) => unreachable!("users are never deleted"),
    }
}
