//! Resource providers as principals: binding identities, and acting as the provider.

use serde_json::json;

use super::{event_types, World};
use crate::{Actor, DomainError, ResourceProviderId};

/// A root tenant owning a resource provider, and its admin.
fn provider(w: &mut World) -> (String, String, Actor) {
    let owner = w.tenant("Owner", None);
    let admin = w.user("owner-admin");
    w.grant(&owner, admin.user_id().unwrap(), "admin");
    let rp = w.given(
        "CreateResourceProvider",
        json!({"tenant_id": owner, "name": "LB", "scopes": ["loadbalancer:*"]}),
    );
    (owner, rp, admin)
}

fn bind(subject: &str, rp: &str) -> serde_json::Value {
    json!({"resource_provider_id": rp, "issuer": "https://idp", "subject": subject})
}

fn acting_as(rp: &str, subject: &str) -> Actor {
    Actor::resource_provider(
        ResourceProviderId::parse(rp).unwrap(),
        "https://idp".to_owned(),
        subject.to_owned(),
    )
}

#[test]
fn admins_of_the_owner_bind_several_identities_and_editors_cannot() {
    let mut w = World::new();
    let (owner, rp, admin) = provider(&mut w);
    let editor = w.user("editor");
    w.grant(&owner, editor.user_id().unwrap(), "editor");
    let err = w
        .when(&editor, "BindResourceProviderIdentity", bind("svc-a", &rp))
        .unwrap_err();
    assert!(matches!(err, DomainError::Forbidden { .. }), "{err:?}");
    for subject in ["svc-a", "svc-b"] {
        let events = w
            .when(&admin, "BindResourceProviderIdentity", bind(subject, &rp))
            .unwrap();
        assert_eq!(event_types(&events), ["ResourceProviderIdentityBound"]);
    }
    let state = w.store.streams[&rp].as_resource_provider().unwrap();
    assert!(state.is_bound("https://idp", "svc-a") && state.is_bound("https://idp", "svc-b"));
    // Binding again changes nothing; unbinding removes only that identity.
    let again = w.when(&admin, "BindResourceProviderIdentity", bind("svc-a", &rp));
    assert_eq!(again.unwrap(), []);
    let events = w
        .when(&admin, "UnbindResourceProviderIdentity", bind("svc-a", &rp))
        .unwrap();
    assert_eq!(event_types(&events), ["ResourceProviderIdentityUnbound"]);
    let state = w.store.streams[&rp].as_resource_provider().unwrap();
    assert!(!state.is_bound("https://idp", "svc-a") && state.is_bound("https://idp", "svc-b"));
    let again = w.when(&admin, "UnbindResourceProviderIdentity", bind("svc-a", &rp));
    assert_eq!(again.unwrap(), []);
}

#[test]
fn an_identity_recorded_as_a_person_is_never_bound() {
    let mut w = World::new();
    let (_, rp, admin) = provider(&mut w);
    w.store.create_user("https://idp", "alice");
    let err = w
        .when(&admin, "BindResourceProviderIdentity", bind("alice", &rp))
        .unwrap_err();
    assert!(
        matches!(err, DomainError::IdentityIsAPerson { .. }),
        "{err:?}"
    );
    assert_eq!(err.code(), "identity-is-a-person");
}

#[test]
fn a_deleted_or_deleting_provider_takes_no_new_identity() {
    let mut w = World::new();
    let (_, rp, admin) = provider(&mut w);
    w.given(
        "AddFinalizer",
        json!({"resource_id": rp, "finalizer": "example.com/f"}),
    );
    w.given(
        "DeleteResourceProvider",
        json!({"resource_provider_id": rp}),
    );
    let err = w
        .when(&admin, "BindResourceProviderIdentity", bind("svc", &rp))
        .unwrap_err();
    assert!(matches!(err, DomainError::Deleting { .. }), "{err:?}");
}

#[test]
fn a_provider_acts_only_while_its_identity_is_bound_and_records_itself_as_actor() {
    let mut w = World::new();
    let (_, rp, admin) = provider(&mut w);
    w.when(&admin, "BindResourceProviderIdentity", bind("old", &rp))
        .unwrap();
    w.when(&admin, "BindResourceProviderIdentity", bind("new", &rp))
        .unwrap();
    let new = acting_as(&rp, "new");
    assert_eq!(new.id(), rp);
    assert_eq!(new.user_id(), None);
    // The provider retires its old credential itself (after rotating to the new one).
    let events = w
        .when(&new, "UnbindResourceProviderIdentity", bind("old", &rp))
        .unwrap();
    assert_eq!(event_types(&events), ["ResourceProviderIdentityUnbound"]);
    // The old credential's token no longer acts, whatever the command.
    let old = acting_as(&rp, "old");
    let err = w
        .when(&old, "UnbindResourceProviderIdentity", bind("new", &rp))
        .unwrap_err();
    assert!(
        matches!(err, DomainError::IdentityNotBound { .. }),
        "{err:?}"
    );
    assert_eq!(err.code(), "identity-not-bound");
    // Bound, it still holds no role: binding identities is the owner's admins' business.
    let err = w
        .when(&new, "BindResourceProviderIdentity", bind("third", &rp))
        .unwrap_err();
    assert!(matches!(err, DomainError::Forbidden { .. }), "{err:?}");
    // Another provider's identities are not its to unbind.
    let (_, other, other_admin) = {
        let owner = w.tenant("Other", None);
        let admin = w.user("other-admin");
        w.grant(&owner, admin.user_id().unwrap(), "admin");
        let rp = w.given(
            "CreateResourceProvider",
            json!({"tenant_id": owner, "name": "DNS", "scopes": ["dns:*"]}),
        );
        (owner, rp, admin)
    };
    w.when(
        &other_admin,
        "BindResourceProviderIdentity",
        bind("dns", &other),
    )
    .unwrap();
    let err = w
        .when(&new, "UnbindResourceProviderIdentity", bind("dns", &other))
        .unwrap_err();
    assert!(matches!(err, DomainError::Forbidden { .. }), "{err:?}");
}

#[test]
fn a_deleted_provider_acts_no_more() {
    let mut w = World::new();
    let (_, rp, admin) = provider(&mut w);
    w.when(&admin, "BindResourceProviderIdentity", bind("svc", &rp))
        .unwrap();
    w.given(
        "DeleteResourceProvider",
        json!({"resource_provider_id": rp}),
    );
    let err = w
        .when(
            &acting_as(&rp, "svc"),
            "UnbindResourceProviderIdentity",
            bind("svc", &rp),
        )
        .unwrap_err();
    assert!(
        matches!(err, DomainError::IdentityNotBound { .. }),
        "{err:?}"
    );
}

/// A provider owned by R, available to its child T and authorized there for `scopes`, its
/// identity bound; a location owned by T. Returns (T, provider, location, acting provider).
fn serving(w: &mut World, scopes: &[&str]) -> (String, String, String, Actor) {
    let root = w.tenant("Root", None);
    let tenant = w.tenant("T", Some(&root));
    let rp = w.given(
        "CreateResourceProvider",
        json!({"tenant_id": root, "name": "LB", "scopes": ["status:write", "finalizer:*", "loadbalancer:*"]}),
    );
    w.given(
        "MakeResourceProviderAvailable",
        json!({"resource_provider_id": rp, "tenant_id": tenant}),
    );
    w.given(
        "AuthorizeResourceProvider",
        json!({"resource_provider_id": rp, "tenant_id": tenant, "scopes": scopes}),
    );
    w.given("BindResourceProviderIdentity", bind("svc", &rp));
    let location = w.given("CreateLocation", json!({"tenant_id": tenant, "name": "L"}));
    let acting = acting_as(&rp, "svc");
    (tenant, rp, location, acting)
}

#[test]
fn a_provider_writes_its_own_statuses_where_it_holds_status_write_and_nothing_else() {
    let mut w = World::new();
    let (tenant, rp, location, lb) = serving(&mut w, &["status:write"]);
    let own = format!("example.com/{rp}.health");
    let set =
        |source: &str| json!({"resource_id": location, "source": source, "data": {"ok": true}});
    let events = w.when(&lb, "SetStatus", set(&own)).unwrap();
    assert_eq!(event_types(&events), ["StatusSet"]);
    assert!(w.when(&lb, "SetStatus", set(&rp)).is_ok(), "its bare id");
    for other in [
        "example.com/health",
        "example.com/resopro-someone-else.health",
    ] {
        let err = w.when(&lb, "SetStatus", set(other)).unwrap_err();
        assert_eq!(err.code(), "not-own-name", "{other}: {err:?}");
    }
    // `status:write` is not `finalizer:write`, nor any other write.
    let err = w
        .when(
            &lb,
            "AddFinalizer",
            json!({"resource_id": location, "finalizer": own}),
        )
        .unwrap_err();
    assert_eq!(err.code(), "scope-not-held", "{err:?}");
    let err = w
        .when(
            &lb,
            "SetAnnotation",
            json!({"resource_id": location, "key": "example.com/k", "value": "v"}),
        )
        .unwrap_err();
    assert!(matches!(err, DomainError::Forbidden { .. }), "{err:?}");
    // Revoked, the next command is refused; removing its status too.
    w.given(
        "RevokeResourceProviderAuthorization",
        json!({"resource_provider_id": rp, "tenant_id": tenant}),
    );
    let err = w
        .when(
            &lb,
            "RemoveStatus",
            json!({"resource_id": location, "source": own}),
        )
        .unwrap_err();
    assert_eq!(err.code(), "scope-not-held", "{err:?}");
}

#[test]
fn a_provider_holds_a_finalizer_of_its_own_until_its_availability_is_revoked() {
    let mut w = World::new();
    let (tenant, rp, location, lb) = serving(&mut w, &["finalizer:*"]);
    let own = json!({"resource_id": location, "finalizer": format!("example.com/{rp}.cleanup")});
    w.when(&lb, "AddFinalizer", own.clone()).unwrap();
    // Deleting waits on the provider; the provider's removal completes the deletion.
    w.given("DeleteLocation", json!({"location_id": location}));
    let events = w.when(&lb, "RemoveFinalizer", own.clone()).unwrap();
    assert_eq!(
        event_types(&events),
        ["FinalizerRemoved", "LocationDeleted"]
    );
    // Elsewhere in T, after the availability is revoked: refused.
    let other = w.given("CreateLocation", json!({"tenant_id": tenant, "name": "M"}));
    let own = json!({"resource_id": other, "finalizer": format!("example.com/{rp}.cleanup")});
    w.given(
        "RevokeResourceProviderAvailability",
        json!({"resource_provider_id": rp, "tenant_id": tenant}),
    );
    let err = w.when(&lb, "AddFinalizer", own).unwrap_err();
    assert_eq!(err.code(), "scope-not-held", "{err:?}");
}

#[test]
fn own_names_are_the_providers_id_or_the_id_and_a_dot() {
    use crate::decide::is_own_name;
    use crate::values::QualifiedName;
    let rp = ResourceProviderId::parse("resopro-1abcdefghijklmnopqrst").unwrap();
    let own = |s: &str| is_own_name(&QualifiedName::parse(s).unwrap(), &rp);
    assert!(own("resopro-1abcdefghijklmnopqrst"));
    assert!(own("example.com/resopro-1abcdefghijklmnopqrst"));
    assert!(own("example.com/resopro-1abcdefghijklmnopqrst.health"));
    assert!(!own("example.com/resopro-1abcdefghijklmnopqrstu"));
    assert!(!own("resopro-1abcdefghijklmnopqrst.example.com/health"));
    assert!(!own("example.com/x.resopro-1abcdefghijklmnopqrst"));
}
