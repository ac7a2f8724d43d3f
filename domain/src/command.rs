//! Commands: requests to change something, as clients submit them (`{"type", "data"}`).
//! Every payload rejects unknown fields, and every field is a validated type, so a command that
//! parses is well-formed; whether it is allowed is decided by [`crate::decide`].

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::id::{
    AggregateKind, LocationId, ProviderId, ResourceId, ResourceProviderId, TenantId, UserId,
};
use crate::values::{
    AnnotationValue, Description, IdentityPart, Name, QualifiedName, Role, Scope, StatusData,
};

macro_rules! payload {
    ($(#[$doc:meta])* $name:ident { $($(#[$fdoc:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(deny_unknown_fields)]
        pub struct $name { $($(#[$fdoc])* pub $field: $ty),* }
    };
}

payload!(CreateTenant { name: Name, #[serde(default)] description: Option<Description>, #[serde(default)] parent_id: Option<TenantId> });
payload!(UpdateTenant { tenant_id: TenantId, #[serde(default)] name: Option<Name>, #[serde(default)] description: Option<Description> });
payload!(DeleteTenant {
    tenant_id: TenantId
});
payload!(GrantTenantAccess {
    tenant_id: TenantId,
    user_id: UserId,
    role: Role
});
payload!(RevokeTenantAccess {
    tenant_id: TenantId,
    user_id: UserId
});
payload!(CreateLocation { tenant_id: TenantId, name: Name, #[serde(default)] description: Option<Description> });
payload!(UpdateLocation { location_id: LocationId, #[serde(default)] name: Option<Name>, #[serde(default)] description: Option<Description> });
payload!(DeleteLocation {
    location_id: LocationId
});
payload!(MakeLocationAvailable {
    location_id: LocationId,
    tenant_id: TenantId,
    #[serde(default)]
    include_subtenants: bool
});
payload!(RevokeLocationAvailability {
    location_id: LocationId,
    tenant_id: TenantId
});
payload!(CreateResourceProvider { tenant_id: TenantId, name: Name, #[serde(default)] description: Option<Description>, scopes: BTreeSet<Scope> });
payload!(UpdateResourceProvider { resource_provider_id: ResourceProviderId, #[serde(default)] name: Option<Name>, #[serde(default)] description: Option<Description> });
payload!(DeleteResourceProvider {
    resource_provider_id: ResourceProviderId
});
payload!(MakeResourceProviderAvailable {
    resource_provider_id: ResourceProviderId,
    tenant_id: TenantId,
    #[serde(default)]
    include_subtenants: bool
});
payload!(RevokeResourceProviderAvailability {
    resource_provider_id: ResourceProviderId,
    tenant_id: TenantId
});
payload!(AddResourceProviderLocation {
    resource_provider_id: ResourceProviderId,
    location_id: LocationId
});
payload!(RemoveResourceProviderLocation {
    resource_provider_id: ResourceProviderId,
    location_id: LocationId
});
payload!(AuthorizeResourceProvider {
    resource_provider_id: ResourceProviderId,
    tenant_id: TenantId,
    #[serde(default)] include_subtenants: bool,
    /// Defaults to every scope the resource provider requests.
    #[serde(default)] scopes: Option<BTreeSet<Scope>>,
});
payload!(RevokeResourceProviderAuthorization {
    resource_provider_id: ResourceProviderId,
    tenant_id: TenantId
});
payload!(
    /// Lets the tokens of (issuer, subject) act as the resource provider (docs/security.md).
    BindResourceProviderIdentity {
    resource_provider_id: ResourceProviderId,
    issuer: IdentityPart,
    subject: IdentityPart
});
payload!(UnbindResourceProviderIdentity {
    resource_provider_id: ResourceProviderId,
    issuer: IdentityPart,
    subject: IdentityPart
});
payload!(RegisterProvider {
    tenant_id: TenantId,
    resource_provider_id: ResourceProviderId,
    name: Name
});
payload!(UnregisterProvider {
    provider_id: ProviderId
});
payload!(SetAnnotation {
    resource_id: ResourceId,
    key: QualifiedName,
    value: AnnotationValue
});
payload!(RemoveAnnotation {
    resource_id: ResourceId,
    key: QualifiedName
});
payload!(SetStatus {
    resource_id: ResourceId,
    source: QualifiedName,
    data: StatusData
});
payload!(RemoveStatus {
    resource_id: ResourceId,
    source: QualifiedName
});
payload!(AddFinalizer {
    resource_id: ResourceId,
    finalizer: QualifiedName
});
payload!(RemoveFinalizer {
    resource_id: ResourceId,
    finalizer: QualifiedName
});

/// Every command a client may submit.
#[derive(
    Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema, strum::EnumDiscriminants,
)]
#[strum_discriminants(
    name(CommandType),
    derive(strum::EnumIter, Hash, PartialOrd, Ord),
    doc = "The kind of a [`Command`], without its payload: one variant per command, derived \
           from the enum, so that code which must treat every command (the read side's \
           property test draws each of them) fails to compile when a command is added."
)]
#[serde(tag = "type", content = "data", deny_unknown_fields)]
pub enum Command {
    CreateTenant(CreateTenant),
    UpdateTenant(UpdateTenant),
    DeleteTenant(DeleteTenant),
    GrantTenantAccess(GrantTenantAccess),
    RevokeTenantAccess(RevokeTenantAccess),
    CreateLocation(CreateLocation),
    UpdateLocation(UpdateLocation),
    DeleteLocation(DeleteLocation),
    MakeLocationAvailable(MakeLocationAvailable),
    RevokeLocationAvailability(RevokeLocationAvailability),
    CreateResourceProvider(CreateResourceProvider),
    UpdateResourceProvider(UpdateResourceProvider),
    DeleteResourceProvider(DeleteResourceProvider),
    MakeResourceProviderAvailable(MakeResourceProviderAvailable),
    RevokeResourceProviderAvailability(RevokeResourceProviderAvailability),
    AddResourceProviderLocation(AddResourceProviderLocation),
    RemoveResourceProviderLocation(RemoveResourceProviderLocation),
    AuthorizeResourceProvider(AuthorizeResourceProvider),
    RevokeResourceProviderAuthorization(RevokeResourceProviderAuthorization),
    BindResourceProviderIdentity(BindResourceProviderIdentity),
    UnbindResourceProviderIdentity(UnbindResourceProviderIdentity),
    RegisterProvider(RegisterProvider),
    UnregisterProvider(UnregisterProvider),
    SetAnnotation(SetAnnotation),
    RemoveAnnotation(RemoveAnnotation),
    SetStatus(SetStatus),
    RemoveStatus(RemoveStatus),
    AddFinalizer(AddFinalizer),
    RemoveFinalizer(RemoveFinalizer),
}

impl CommandType {
    /// Every kind of command, in declaration order.
    pub fn all() -> impl Iterator<Item = CommandType> {
        <Self as strum::IntoEnumIterator>::iter()
    }
}

/// The stream a command writes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A new stream of this kind; the write side picks its id.
    New(AggregateKind),
    /// An existing stream.
    Existing(String),
}

impl Command {
    /// Parses a client's `{"type", "data"}` pair.
    pub fn parse(command_type: &str, data: serde_json::Value) -> Result<Self, serde_json::Error> {
        serde_json::from_value(serde_json::json!({ "type": command_type, "data": data }))
    }

    /// The command's type name, as clients send it.
    pub fn command_type(&self) -> &'static str {
        macro_rules! names {
            ($($v:ident),*) => { match self { $(Self::$v(_) => stringify!($v)),* } };
        }
        names!(
            CreateTenant,
            UpdateTenant,
            DeleteTenant,
            GrantTenantAccess,
            RevokeTenantAccess,
            CreateLocation,
            UpdateLocation,
            DeleteLocation,
            MakeLocationAvailable,
            RevokeLocationAvailability,
            CreateResourceProvider,
            UpdateResourceProvider,
            DeleteResourceProvider,
            MakeResourceProviderAvailable,
            RevokeResourceProviderAvailability,
            AddResourceProviderLocation,
            RemoveResourceProviderLocation,
            AuthorizeResourceProvider,
            RevokeResourceProviderAuthorization,
            BindResourceProviderIdentity,
            UnbindResourceProviderIdentity,
            RegisterProvider,
            UnregisterProvider,
            SetAnnotation,
            RemoveAnnotation,
            SetStatus,
            RemoveStatus,
            AddFinalizer,
            RemoveFinalizer
        )
    }

    /// The stream this command appends to.
    pub fn target(&self) -> Target {
        use Command as C;
        let existing = |id: &str| Target::Existing(id.to_owned());
        match self {
            C::CreateTenant(_) => Target::New(AggregateKind::Tenant),
            C::CreateLocation(_) => Target::New(AggregateKind::Location),
            C::CreateResourceProvider(_) => Target::New(AggregateKind::ResourceProvider),
            C::RegisterProvider(_) => Target::New(AggregateKind::Provider),
            C::UpdateTenant(c) => existing(c.tenant_id.as_str()),
            C::DeleteTenant(c) => existing(c.tenant_id.as_str()),
            C::GrantTenantAccess(c) => existing(c.tenant_id.as_str()),
            C::RevokeTenantAccess(c) => existing(c.tenant_id.as_str()),
            C::UpdateLocation(c) => existing(c.location_id.as_str()),
            C::DeleteLocation(c) => existing(c.location_id.as_str()),
            C::MakeLocationAvailable(c) => existing(c.location_id.as_str()),
            C::RevokeLocationAvailability(c) => existing(c.location_id.as_str()),
            C::UpdateResourceProvider(c) => existing(c.resource_provider_id.as_str()),
            C::DeleteResourceProvider(c) => existing(c.resource_provider_id.as_str()),
            C::MakeResourceProviderAvailable(c) => existing(c.resource_provider_id.as_str()),
            C::RevokeResourceProviderAvailability(c) => existing(c.resource_provider_id.as_str()),
            C::AddResourceProviderLocation(c) => existing(c.resource_provider_id.as_str()),
            C::RemoveResourceProviderLocation(c) => existing(c.resource_provider_id.as_str()),
            C::AuthorizeResourceProvider(c) => existing(c.resource_provider_id.as_str()),
            C::RevokeResourceProviderAuthorization(c) => existing(c.resource_provider_id.as_str()),
            C::BindResourceProviderIdentity(c) => existing(c.resource_provider_id.as_str()),
            C::UnbindResourceProviderIdentity(c) => existing(c.resource_provider_id.as_str()),
            C::UnregisterProvider(c) => existing(c.provider_id.as_str()),
            C::SetAnnotation(c) => existing(c.resource_id.as_str()),
            C::RemoveAnnotation(c) => existing(c.resource_id.as_str()),
            C::SetStatus(c) => existing(c.resource_id.as_str()),
            C::RemoveStatus(c) => existing(c.resource_id.as_str()),
            C::AddFinalizer(c) => existing(c.resource_id.as_str()),
            C::RemoveFinalizer(c) => existing(c.resource_id.as_str()),
        }
    }

    /// Other streams the decision reads (besides the target and the tenant chains, which the
    /// write side loads for every stream it loads). The write side locks them for share so
    /// that what the decision saw still holds when it commits.
    pub fn references(&self) -> Vec<String> {
        use Command as C;
        if let C::BindResourceProviderIdentity(c) = self {
            // The identity's user streams (both derivations, ADR 0014): a bound identity is
            // never also a person, and the user's first request locks the same streams.
            let (user, legacy) = c.user_ids();
            return vec![user.to_string(), legacy.to_string()];
        }
        let ids: Vec<&str> = match self {
            C::CreateTenant(c) => c.parent_id.iter().map(|p| p.as_str()).collect(),
            C::CreateLocation(c) => vec![c.tenant_id.as_str()],
            C::CreateResourceProvider(c) => vec![c.tenant_id.as_str()],
            C::RegisterProvider(c) => vec![c.tenant_id.as_str(), c.resource_provider_id.as_str()],
            C::GrantTenantAccess(c) => vec![c.user_id.as_str()],
            C::MakeLocationAvailable(c) => vec![c.tenant_id.as_str()],
            C::MakeResourceProviderAvailable(c) => vec![c.tenant_id.as_str()],
            C::AddResourceProviderLocation(c) => vec![c.location_id.as_str()],
            C::AuthorizeResourceProvider(c) => vec![c.tenant_id.as_str()],
            C::RevokeResourceProviderAuthorization(c) => vec![c.tenant_id.as_str()],
            _ => vec![],
        };
        ids.into_iter().map(str::to_owned).collect()
    }

    /// Whether the decision needs to know if the target still has live dependents (sub-tenants,
    /// owned resources, registered providers, resource providers serving a location).
    pub fn checks_dependents(&self) -> bool {
        matches!(
            self,
            Command::DeleteTenant(_)
                | Command::DeleteResourceProvider(_)
                | Command::DeleteLocation(_)
        )
    }
}

impl BindResourceProviderIdentity {
    /// The ids a person signing in with this identity would be recorded under: identity-api's
    /// and Plinth's legacy one (docs/adr/0014).
    pub fn user_ids(&self) -> (UserId, UserId) {
        let (issuer, subject) = (self.issuer.as_str(), self.subject.as_str());
        (
            UserId::for_identity(issuer, subject),
            UserId::legacy_for_identity(issuer, subject),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_fields_are_rejected() {
        let err =
            Command::parse("CreateTenant", json!({"name": "a", "colour": "red"})).unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
    }

    #[test]
    fn unknown_command_types_are_rejected() {
        assert!(Command::parse("DropDatabase", json!({})).is_err());
    }

    #[test]
    fn malformed_ids_are_rejected_at_parse() {
        let err = Command::parse(
            "DeleteTenant",
            json!({"tenant_id": "lctnloc-xxxxxxxxxxxxxxxxxxxxx"}),
        )
        .unwrap_err();
        assert!(err.to_string().contains("tnntten"), "{err}");
    }

    #[test]
    fn command_type_matches_the_wire_name() {
        let cmd = Command::parse("CreateTenant", json!({"name": "Sarah Corp"})).unwrap();
        assert_eq!(cmd.command_type(), "CreateTenant");
        assert_eq!(cmd.target(), Target::New(AggregateKind::Tenant));
    }

    mod hostile_input {
        use proptest::prelude::*;
        use serde_json::Value;

        use super::*;

        /// Field names the commands use, so that generated objects reach past the
        /// unknown-field check into the value parsers; plus a few that no command has.
        const FIELDS: &[&str] = &[
            "tenant_id",
            "parent_id",
            "name",
            "description",
            "location_id",
            "user_id",
            "role",
            "resource_provider_id",
            "provider_id",
            "resource_id",
            "include_subtenants",
            "scopes",
            "key",
            "value",
            "source",
            "data",
            "finalizer",
            "issuer",
            "subject",
            "colour",
            "",
        ];

        /// Strings that are almost valid: ids of every prefix (and wrong ones), scopes, names
        /// with control characters, very long text.
        fn text() -> impl Strategy<Value = String> {
            prop_oneof![
                "\\PC{0,30}",
                "(tnntten|lctnloc|resopro|resoprv|idntusr|xxxxxxx)-[A-Za-z0-9_-]{19,23}",
                "[a-z]{0,6}:[a-z*]{0,6}",
                "[a-z.]{0,10}/[a-z]{0,10}",
                "[\\x00-\\x1f ]{0,4}[a-zA-Z ]{0,8}",
                (0usize..3).prop_map(|n| "x".repeat(200 * (n + 1))),
            ]
        }

        fn json() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(Value::from),
                any::<u64>().prop_map(Value::from),
                any::<f64>().prop_map(Value::from),
                text().prop_map(Value::String),
            ];
            leaf.prop_recursive(4, 48, 6, |inner| {
                prop_oneof![
                    proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                    proptest::collection::btree_map(
                        proptest::sample::select(FIELDS).prop_map(str::to_owned),
                        inner,
                        0..6
                    )
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        const TYPES: &[&str] = &[
            "CreateTenant",
            "UpdateTenant",
            "GrantTenantAccess",
            "CreateResourceProvider",
            "AuthorizeResourceProvider",
            "MakeLocationAvailable",
            "SetAnnotation",
            "SetStatus",
            "AddFinalizer",
            "RegisterProvider",
            "BindResourceProviderIdentity",
            "DropTables",
            "",
        ];

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2_000))]

            /// Whatever a client sends, parsing answers Ok or Err (a 400), never panics, and a
            /// command that parses has a target and references the write side can lock.
            #[test]
            fn parsing_any_json_as_any_command_never_panics(
                command_type in proptest::sample::select(TYPES),
                data in json(),
            ) {
                if let Ok(command) = Command::parse(command_type, data) {
                    prop_assert_eq!(command.command_type(), command_type);
                    let _ = command.target();
                    for id in command.references() {
                        prop_assert!(!id.is_empty());
                    }
                }
            }
        }
    }
}
