//! A command that changes something appends its event; the same command again changes nothing
//! and appends nothing (idempotent by state). Each case here was a mutant of `decide.rs` that
//! the rules' tests let through (issue 26; `docs/testing.md`).

use serde_json::{json, Value};

use super::{event_types, seed, Seed, World};
use crate::DomainError;

/// The event types `command` appends, as the platform admin.
fn appends(w: &mut World, command: &str, data: Value) -> Vec<&'static str> {
    let platform = w.platform.clone();
    let events = w
        .when(&platform, command, data)
        .unwrap_or_else(|e| panic!("{command}: {e}"));
    event_types(&events)
}

/// Each field of an update changes the resource alone; repeating an update changes nothing.
#[test]
fn updates_append_only_what_changes() {
    let Seed {
        mut w, t100, rp, ..
    } = seed();
    let ny = w.given(
        "CreateLocation",
        json!({"tenant_id": t100, "name": "Location-NY"}),
    );
    let cases = [
        ("UpdateTenant", "tenant_id", &t100, "TenantUpdated"),
        ("UpdateLocation", "location_id", &ny, "LocationUpdated"),
        (
            "UpdateResourceProvider",
            "resource_provider_id",
            &rp,
            "ResourceProviderUpdated",
        ),
    ];
    for (command, field, id, event) in cases {
        let describe = json!({field: id, "description": "new"});
        assert_eq!(
            appends(&mut w, command, describe.clone()),
            [event],
            "{command}: description"
        );
        assert!(
            appends(&mut w, command, describe).is_empty(),
            "{command}: again"
        );
        let rename = json!({field: id, "name": "Renamed"});
        assert_eq!(
            appends(&mut w, command, rename.clone()),
            [event],
            "{command}: name"
        );
        assert!(
            appends(&mut w, command, rename).is_empty(),
            "{command}: again"
        );
    }
}

#[test]
fn revokes_append_only_what_was_given() {
    let Seed {
        mut w,
        t100,
        t200,
        rp,
        ..
    } = seed();
    let ny = w.given(
        "CreateLocation",
        json!({"tenant_id": t100, "name": "Location-NY"}),
    );
    let location = json!({"location_id": ny, "tenant_id": t200});
    assert!(appends(&mut w, "RevokeLocationAvailability", location.clone()).is_empty());
    w.given("MakeLocationAvailable", location.clone());
    assert_eq!(
        appends(&mut w, "RevokeLocationAvailability", location),
        ["LocationAvailabilityRevoked"]
    );
    let authorization = json!({"resource_provider_id": rp, "tenant_id": t100});
    assert!(appends(
        &mut w,
        "RevokeResourceProviderAuthorization",
        authorization.clone()
    )
    .is_empty());
    w.given("AuthorizeResourceProvider", authorization.clone());
    assert_eq!(
        appends(&mut w, "RevokeResourceProviderAuthorization", authorization),
        ["ProviderAuthorizationRevoked"]
    );
}

/// Authorizing again as before changes nothing; with other sub-tenants or scopes it does.
#[test]
fn reauthorizing_appends_only_a_change() {
    let Seed {
        mut w, t100, rp, ..
    } = seed();
    let authorize = |inc: bool, scopes: &[&str]| {
        json!({"resource_provider_id": rp, "tenant_id": t100, "include_subtenants": inc,
               "scopes": scopes})
    };
    let given = ["network:read"];
    let authorized = ["ProviderAuthorized"];
    assert_eq!(
        appends(
            &mut w,
            "AuthorizeResourceProvider",
            authorize(false, &given)
        ),
        authorized
    );
    assert!(appends(
        &mut w,
        "AuthorizeResourceProvider",
        authorize(false, &given)
    )
    .is_empty());
    assert_eq!(
        appends(&mut w, "AuthorizeResourceProvider", authorize(true, &given)),
        authorized
    );
    let more = ["network:read", "instance:read"];
    assert_eq!(
        appends(&mut w, "AuthorizeResourceProvider", authorize(true, &more)),
        authorized
    );
    assert!(appends(&mut w, "AuthorizeResourceProvider", authorize(true, &more)).is_empty());
}

#[test]
fn metadata_commands_append_only_changes() {
    let mut w = World::new();
    let root = w.tenant("Root", None);
    let set =
        |value: &str| json!({"resource_id": root, "key": "example.com/owner", "value": value});
    assert_eq!(
        appends(&mut w, "SetAnnotation", set("a")),
        ["AnnotationSet"]
    );
    assert!(appends(&mut w, "SetAnnotation", set("a")).is_empty());
    assert_eq!(
        appends(&mut w, "SetAnnotation", set("b")),
        ["AnnotationSet"]
    );
    let status = json!({"resource_id": root, "source": "lb.example.com"});
    assert!(appends(&mut w, "RemoveStatus", status.clone()).is_empty());
    w.given(
        "SetStatus",
        json!({"resource_id": root, "source": "lb.example.com", "data": {"ready": true}}),
    );
    assert_eq!(
        appends(&mut w, "RemoveStatus", status.clone()),
        ["StatusRemoved"]
    );
    assert!(
        appends(&mut w, "RemoveStatus", status).is_empty(),
        "removed"
    );
}

/// The problem `type` suffixes clients match on (`api/src/error.rs`).
#[test]
fn domain_errors_have_stable_codes() {
    let id = || "x".to_owned();
    let codes = [
        (DomainError::NotFound { id: id() }, "not-found"),
        (DomainError::Deleting { id: id() }, "deleting"),
        (DomainError::HasDependents { id: id() }, "has-dependents"),
        (DomainError::NameTaken { name: id() }, "name-taken"),
        (
            DomainError::ScopesNotRequested { scopes: vec![] },
            "scopes-not-requested",
        ),
        (DomainError::NoScopes, "no-scopes"),
    ];
    for (error, code) in codes {
        assert_eq!(error.code(), code, "{error:?}");
    }
}
