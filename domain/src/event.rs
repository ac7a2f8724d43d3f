//! Events: immutable facts, named in the past tense. Each variant's `data` is what consumers
//! receive on Kafka and what the event store keeps; `event_type()` and `schema_version()` are
//! stable names stored beside it so that old events can be upcast when a shape changes.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::id::{LocationId, ProviderId, ResourceId, ResourceProviderId, TenantId, UserId};
use crate::upcast;
use crate::values::{
    AnnotationValue, Description, IdentityPart, Name, QualifiedName, Role, Scope, StatusData,
};

/// Every event Plinth records. Serialized adjacently tagged: `{"event_type": …, "data": {…}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "event_type", content = "data")]
pub enum Event {
    TenantCreated {
        tenant_id: TenantId,
        name: Name,
        description: Option<Description>,
        /// `null` for a root tenant. Never changes.
        parent_id: Option<TenantId>,
        /// Ancestors, root first (ends with the parent; empty for a root). Never changes.
        path: Vec<TenantId>,
        /// How many ancestors it has: 0 for a root. Since schema version 2 (upcast from
        /// version 1 as the length of `path`).
        depth: u32,
    },
    TenantUpdated {
        tenant_id: TenantId,
        /// The name after the update.
        name: Name,
        /// The description after the update.
        description: Option<Description>,
    },
    TenantDeleted {
        tenant_id: TenantId,
    },
    UserCreated {
        user_id: UserId,
        issuer: String,
        subject: String,
    },
    TenantAccessGranted {
        tenant_id: TenantId,
        user_id: UserId,
        role: Role,
    },
    TenantAccessRevoked {
        tenant_id: TenantId,
        user_id: UserId,
    },
    LocationCreated {
        location_id: LocationId,
        tenant_id: TenantId,
        name: Name,
        description: Option<Description>,
    },
    LocationUpdated {
        location_id: LocationId,
        name: Name,
        description: Option<Description>,
    },
    LocationDeleted {
        location_id: LocationId,
    },
    LocationMadeAvailable {
        location_id: LocationId,
        tenant_id: TenantId,
        include_subtenants: bool,
    },
    LocationAvailabilityRevoked {
        location_id: LocationId,
        tenant_id: TenantId,
    },
    ResourceProviderCreated {
        resource_provider_id: ResourceProviderId,
        tenant_id: TenantId,
        name: Name,
        description: Option<Description>,
        /// The scopes it will request.
        scopes: BTreeSet<Scope>,
    },
    ResourceProviderUpdated {
        resource_provider_id: ResourceProviderId,
        name: Name,
        description: Option<Description>,
    },
    ResourceProviderDeleted {
        resource_provider_id: ResourceProviderId,
    },
    ResourceProviderMadeAvailable {
        resource_provider_id: ResourceProviderId,
        tenant_id: TenantId,
        include_subtenants: bool,
    },
    ResourceProviderAvailabilityRevoked {
        resource_provider_id: ResourceProviderId,
        tenant_id: TenantId,
    },
    ResourceProviderLocationAdded {
        resource_provider_id: ResourceProviderId,
        location_id: LocationId,
    },
    ResourceProviderLocationRemoved {
        resource_provider_id: ResourceProviderId,
        location_id: LocationId,
    },
    ProviderAuthorized {
        resource_provider_id: ResourceProviderId,
        tenant_id: TenantId,
        include_subtenants: bool,
        /// The scopes granted: a subset of those the resource provider requests.
        scopes: BTreeSet<Scope>,
    },
    ProviderAuthorizationRevoked {
        resource_provider_id: ResourceProviderId,
        tenant_id: TenantId,
    },
    /// Tokens of (issuer, subject) act as the resource provider from now on.
    ResourceProviderIdentityBound {
        resource_provider_id: ResourceProviderId,
        issuer: IdentityPart,
        subject: IdentityPart,
    },
    ResourceProviderIdentityUnbound {
        resource_provider_id: ResourceProviderId,
        issuer: IdentityPart,
        subject: IdentityPart,
    },
    ProviderRegistered {
        provider_id: ProviderId,
        tenant_id: TenantId,
        resource_provider_id: ResourceProviderId,
        name: Name,
    },
    ProviderUnregistered {
        provider_id: ProviderId,
    },
    AnnotationSet {
        resource_id: ResourceId,
        key: QualifiedName,
        value: AnnotationValue,
    },
    AnnotationRemoved {
        resource_id: ResourceId,
        key: QualifiedName,
    },
    StatusSet {
        resource_id: ResourceId,
        source: QualifiedName,
        data: StatusData,
    },
    StatusRemoved {
        resource_id: ResourceId,
        source: QualifiedName,
    },
    FinalizerAdded {
        resource_id: ResourceId,
        finalizer: QualifiedName,
    },
    FinalizerRemoved {
        resource_id: ResourceId,
        finalizer: QualifiedName,
    },
    /// A delete of a resource that still had finalizers: it stays visible as deleting until the
    /// last finalizer is removed, which completes the deletion.
    DeletionRequested {
        resource_id: ResourceId,
        requested_at: DateTime<Utc>,
        /// The finalizers that must still be removed.
        finalizers: BTreeSet<QualifiedName>,
    },
}

/// Why stored event data could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown event type `{0}`")]
    UnknownType(String),
    #[error(
        "event type `{event_type}` has no schema version {version} (a newer Plinth wrote it, \
         or it was tampered with)"
    )]
    UnknownVersion { event_type: String, version: i32 },
    #[error("event `{event_type}` data of schema version {from} cannot be upcast: {reason}")]
    Upcast {
        event_type: String,
        from: i32,
        reason: String,
    },
    #[error("event `{event_type}` data does not match its schema: {source}")]
    Data {
        event_type: String,
        source: serde_json::Error,
    },
}

impl Event {
    /// Every event type name, in catalogue order.
    pub const TYPES: [&'static str; 31] = [
        "TenantCreated",
        "TenantUpdated",
        "TenantDeleted",
        "UserCreated",
        "TenantAccessGranted",
        "TenantAccessRevoked",
        "LocationCreated",
        "LocationUpdated",
        "LocationDeleted",
        "LocationMadeAvailable",
        "LocationAvailabilityRevoked",
        "ResourceProviderCreated",
        "ResourceProviderUpdated",
        "ResourceProviderDeleted",
        "ResourceProviderMadeAvailable",
        "ResourceProviderAvailabilityRevoked",
        "ResourceProviderLocationAdded",
        "ResourceProviderLocationRemoved",
        "ProviderAuthorized",
        "ProviderAuthorizationRevoked",
        "ProviderRegistered",
        "ProviderUnregistered",
        "AnnotationSet",
        "AnnotationRemoved",
        "StatusSet",
        "StatusRemoved",
        "FinalizerAdded",
        "FinalizerRemoved",
        "DeletionRequested",
        "ResourceProviderIdentityBound",
        "ResourceProviderIdentityUnbound",
    ];

    /// The stable type name stored with the event.
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::TenantCreated { .. } => "TenantCreated",
            Self::TenantUpdated { .. } => "TenantUpdated",
            Self::TenantDeleted { .. } => "TenantDeleted",
            Self::UserCreated { .. } => "UserCreated",
            Self::TenantAccessGranted { .. } => "TenantAccessGranted",
            Self::TenantAccessRevoked { .. } => "TenantAccessRevoked",
            Self::LocationCreated { .. } => "LocationCreated",
            Self::LocationUpdated { .. } => "LocationUpdated",
            Self::LocationDeleted { .. } => "LocationDeleted",
            Self::LocationMadeAvailable { .. } => "LocationMadeAvailable",
            Self::LocationAvailabilityRevoked { .. } => "LocationAvailabilityRevoked",
            Self::ResourceProviderCreated { .. } => "ResourceProviderCreated",
            Self::ResourceProviderUpdated { .. } => "ResourceProviderUpdated",
            Self::ResourceProviderDeleted { .. } => "ResourceProviderDeleted",
            Self::ResourceProviderMadeAvailable { .. } => "ResourceProviderMadeAvailable",
            Self::ResourceProviderAvailabilityRevoked { .. } => {
                "ResourceProviderAvailabilityRevoked"
            }
            Self::ResourceProviderLocationAdded { .. } => "ResourceProviderLocationAdded",
            Self::ResourceProviderLocationRemoved { .. } => "ResourceProviderLocationRemoved",
            Self::ProviderAuthorized { .. } => "ProviderAuthorized",
            Self::ProviderAuthorizationRevoked { .. } => "ProviderAuthorizationRevoked",
            Self::ProviderRegistered { .. } => "ProviderRegistered",
            Self::ProviderUnregistered { .. } => "ProviderUnregistered",
            Self::AnnotationSet { .. } => "AnnotationSet",
            Self::AnnotationRemoved { .. } => "AnnotationRemoved",
            Self::StatusSet { .. } => "StatusSet",
            Self::StatusRemoved { .. } => "StatusRemoved",
            Self::FinalizerAdded { .. } => "FinalizerAdded",
            Self::FinalizerRemoved { .. } => "FinalizerRemoved",
            Self::DeletionRequested { .. } => "DeletionRequested",
            Self::ResourceProviderIdentityBound { .. } => "ResourceProviderIdentityBound",
            Self::ResourceProviderIdentityUnbound { .. } => "ResourceProviderIdentityUnbound",
        }
    }

    /// The schema version written with new events of this type (see [`crate::upcast`]).
    pub fn schema_version(&self) -> i32 {
        upcast::current_version(self.event_type())
    }

    /// The `data` object stored and published for this event.
    pub fn data(&self) -> serde_json::Value {
        match serde_json::to_value(self).expect("events always serialize") {
            serde_json::Value::Object(mut map) => map.remove("data").unwrap_or_default(),
            _ => unreachable!("adjacently tagged enums serialize to objects"),
        }
    }

    /// Reads a stored event back, upcasting older schema versions to the current shape.
    pub fn decode(
        event_type: &str,
        schema_version: i32,
        data: serde_json::Value,
    ) -> Result<Self, DecodeError> {
        if !Self::TYPES.contains(&event_type) {
            return Err(DecodeError::UnknownType(event_type.to_owned()));
        }
        let data = upcast::upcast(event_type, schema_version, data)?;
        let tagged = serde_json::json!({ "event_type": event_type, "data": data });
        serde_json::from_value(tagged).map_err(|source| DecodeError::Data {
            event_type: event_type.to_owned(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_and_decode_round_trip() {
        let event = Event::TenantCreated {
            tenant_id: TenantId::generate(),
            name: Name::parse("Sarah Corp").unwrap(),
            description: None,
            parent_id: None,
            path: vec![],
            depth: 0,
        };
        let data = event.data();
        assert!(data.get("tenant_id").is_some());
        let back = Event::decode(event.event_type(), event.schema_version(), data).unwrap();
        assert_eq!(back, event);
    }

    #[test]
    fn unknown_types_and_versions_are_reported_not_guessed() {
        assert!(matches!(
            Event::decode("TenantExploded", 1, serde_json::json!({})),
            Err(DecodeError::UnknownType(_))
        ));
        assert!(matches!(
            Event::decode("TenantDeleted", 7, serde_json::json!({})),
            Err(DecodeError::UnknownVersion { .. })
        ));
    }

    #[test]
    fn the_type_list_names_every_variant() {
        let unique: BTreeSet<_> = Event::TYPES.iter().collect();
        assert_eq!(unique.len(), Event::TYPES.len());
    }
}
