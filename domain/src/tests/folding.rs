//! What `apply` folds into state, and what the state then answers (`holds_scope`, `name`,
//! `is_live`): each case here was a mutant of `aggregate.rs` that the rules' tests let through
//! (issue 26; `docs/testing.md`).

use serde_json::json;

use super::{holds, seed, Seed};
use crate::aggregate::Lifecycle;
use crate::DomainError;

#[test]
fn an_authorization_without_subtenants_holds_where_given_and_not_below() {
    let Seed {
        mut w,
        t200,
        t300,
        rp,
        ..
    } = seed();
    w.given(
        "MakeResourceProviderAvailable",
        json!({"resource_provider_id": rp, "tenant_id": t200, "include_subtenants": true}),
    );
    w.given(
        "AuthorizeResourceProvider",
        json!({"resource_provider_id": rp, "tenant_id": t200}),
    );
    assert!(holds(&w, &rp, &t200, "network:read"));
    assert!(!holds(&w, &rp, &t300, "network:read"));
}

/// Availability given at Tenant-200 with sub-tenants, an authorization at Tenant-300: whether
/// the provider is available where it was authorized is asked with that tenant's own ancestors.
#[test]
fn availability_where_authorized_is_judged_from_that_tenants_ancestors() {
    let Seed {
        mut w,
        t200,
        t300,
        rp,
        ..
    } = seed();
    let t400 = w.tenant("Tenant-400", Some(&t300));
    w.given(
        "MakeResourceProviderAvailable",
        json!({"resource_provider_id": rp, "tenant_id": t200, "include_subtenants": true}),
    );
    w.given(
        "AuthorizeResourceProvider",
        json!({"resource_provider_id": rp, "tenant_id": t300, "include_subtenants": true}),
    );
    assert!(holds(&w, &rp, &t300, "network:read"), "where authorized");
    assert!(holds(&w, &rp, &t400, "network:read"), "below it");
    assert!(!holds(&w, &rp, &t200, "network:read"), "not above it");
}

#[test]
fn revoking_an_authorization_takes_its_scopes_away() {
    let Seed {
        mut w, t100, rp, ..
    } = seed();
    w.given(
        "AuthorizeResourceProvider",
        json!({"resource_provider_id": rp, "tenant_id": t100}),
    );
    assert!(holds(&w, &rp, &t100, "network:read"));
    w.given(
        "RevokeResourceProviderAuthorization",
        json!({"resource_provider_id": rp, "tenant_id": t100}),
    );
    assert!(!holds(&w, &rp, &t100, "network:read"));
    let r = w.store.streams[&rp].as_resource_provider().unwrap();
    assert!(r.authorizations.is_empty(), "{:?}", r.authorizations);
}

#[test]
fn revoking_a_locations_availability_removes_it() {
    let Seed {
        mut w, t100, t200, ..
    } = seed();
    let ny = w.given(
        "CreateLocation",
        json!({"tenant_id": t100, "name": "Location-NY"}),
    );
    w.given(
        "MakeLocationAvailable",
        json!({"location_id": ny, "tenant_id": t200}),
    );
    w.given(
        "RevokeLocationAvailability",
        json!({"location_id": ny, "tenant_id": t200}),
    );
    let location = w.store.streams[&ny].as_location().unwrap();
    assert!(
        location.available_to.is_empty(),
        "{:?}",
        location.available_to
    );
}

#[test]
fn updates_rename_locations_and_resource_providers() {
    let Seed {
        mut w, t100, rp, ..
    } = seed();
    let ny = w.given(
        "CreateLocation",
        json!({"tenant_id": t100, "name": "Location-NY"}),
    );
    w.given(
        "UpdateLocation",
        json!({"location_id": ny, "name": "Location-NYC", "description": "east"}),
    );
    w.given(
        "UpdateResourceProvider",
        json!({"resource_provider_id": rp, "name": "LB", "description": "balancers"}),
    );
    let l = w.store.streams[&ny].as_location().unwrap();
    assert_eq!(
        (l.name.as_str(), l.description.as_ref().map(|d| d.as_str())),
        ("Location-NYC", Some("east"))
    );
    let r = w.store.streams[&rp].as_resource_provider().unwrap();
    assert_eq!(
        (r.name.as_str(), r.description.as_ref().map(|d| d.as_str())),
        ("LB", Some("balancers"))
    );
    assert_eq!(w.store.streams[&rp].name().map(|n| n.as_str()), Some("LB"));
    assert_eq!(
        w.store.streams[&ny].name().map(|n| n.as_str()),
        Some("Location-NYC")
    );
    assert_eq!(
        w.store.streams[w.platform.user_id().unwrap().as_str()].name(),
        None
    );
}

#[test]
fn a_deleting_location_cannot_be_served() {
    let Seed {
        mut w, t100, rp, ..
    } = seed();
    let ny = w.given(
        "CreateLocation",
        json!({"tenant_id": t100, "name": "Location-NY"}),
    );
    w.given(
        "AddFinalizer",
        json!({"resource_id": ny, "finalizer": "ops/drain"}),
    );
    w.given("DeleteLocation", json!({"location_id": ny}));
    assert_eq!(w.lifecycle(&ny), Lifecycle::Deleting);
    assert!(!w.store.streams[&ny].is_live());
    let platform = w.platform.clone();
    assert!(matches!(
        w.when(
            &platform,
            "AddResourceProviderLocation",
            json!({"resource_provider_id": rp, "location_id": ny})
        ),
        Err(DomainError::LocationNotUsable { .. })
    ));
}

/// The names the write side stores in `streams.lifecycle` and the read models show.
#[test]
fn lifecycles_are_named_as_serialized() {
    for l in [Lifecycle::Live, Lifecycle::Deleting, Lifecycle::Deleted] {
        assert_eq!(serde_json::to_value(l).unwrap(), json!(l.as_str()));
    }
    assert_eq!(Lifecycle::Deleting.as_str(), "deleting");
}
