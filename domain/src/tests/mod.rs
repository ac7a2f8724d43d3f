//! Given/when/then tests of every rule, on the in-memory reference model.

use serde_json::{json, Value};

use crate::aggregate::{apply, Lifecycle};
use crate::memory::MemoryStore;
use crate::{Actor, Command, DomainError, Event, Role, Scope, TenantId, UserId};

struct World {
    store: MemoryStore,
    platform: Actor,
}

fn command(command_type: &str, data: Value) -> Command {
    Command::parse(command_type, data).unwrap_or_else(|e| panic!("{command_type}: {e}"))
}

impl World {
    fn new() -> Self {
        let mut store = MemoryStore::default();
        let user_id = store.create_user("test", "root");
        Self {
            store,
            platform: Actor::user(user_id, true),
        }
    }

    fn user(&mut self, subject: &str) -> Actor {
        Actor::user(self.store.create_user("test", subject), false)
    }

    fn when(
        &mut self,
        actor: &Actor,
        command_type: &str,
        data: Value,
    ) -> Result<Vec<Event>, DomainError> {
        self.store
            .execute(actor, &command(command_type, data))
            .map(|(_, events)| events)
    }

    /// Runs a command that must succeed and returns the stream it wrote.
    fn given(&mut self, command_type: &str, data: Value) -> String {
        let platform = self.platform.clone();
        self.store
            .execute(&platform, &command(command_type, data))
            .unwrap_or_else(|e| panic!("{command_type}: {e}"))
            .0
    }

    fn tenant(&mut self, name: &str, parent: Option<&str>) -> String {
        self.given("CreateTenant", json!({"name": name, "parent_id": parent}))
    }

    fn grant(&mut self, tenant: &str, user: &UserId, role: &str) {
        self.given(
            "GrantTenantAccess",
            json!({"tenant_id": tenant, "user_id": user, "role": role}),
        );
    }

    fn lifecycle(&self, id: &str) -> Lifecycle {
        self.store.streams[id].lifecycle
    }
}

fn event_types(events: &[Event]) -> Vec<&'static str> {
    events.iter().map(Event::event_type).collect()
}

#[test]
fn only_platform_admins_create_root_tenants() {
    let mut w = World::new();
    let alice = w.user("alice");
    let err = w
        .when(&alice, "CreateTenant", json!({"name": "Sarah Corp"}))
        .unwrap_err();
    assert!(matches!(err, DomainError::Forbidden { on: None, .. }));
    let events = w
        .when(
            &w.platform.clone(),
            "CreateTenant",
            json!({"name": "Sarah Corp"}),
        )
        .unwrap();
    assert_eq!(event_types(&events), ["TenantCreated"]);
}

#[test]
fn sub_tenants_record_their_ancestry() {
    let mut w = World::new();
    let freckle = w.tenant("Freckle Corp", None);
    let infra = w.tenant("Infrastructure", Some(&freckle));
    let internal = w.tenant("Internal", Some(&infra));
    let path: Vec<String> = w.store.streams[&internal]
        .as_tenant()
        .unwrap()
        .path
        .iter()
        .map(|t| t.to_string())
        .collect();
    assert_eq!(path, [freckle, infra]);
}

#[test]
fn sibling_names_are_unique_case_insensitively_among_live_siblings() {
    let mut w = World::new();
    let sarah = w.tenant("Sarah Corp", None);
    w.tenant("Production", Some(&sarah));
    let platform = w.platform.clone();
    let err = w
        .when(
            &platform,
            "CreateTenant",
            json!({"name": " production ", "parent_id": sarah}),
        )
        .unwrap_err();
    assert_eq!(
        err,
        DomainError::NameTaken {
            name: "production".into()
        }
    );
    // Roots are siblings of each other.
    assert!(w
        .when(&platform, "CreateTenant", json!({"name": "SARAH CORP"}))
        .is_err());
    // The same name under another parent is fine.
    let nicole = w.tenant("Nicole Corp", None);
    w.tenant("Production", Some(&nicole));
}

#[test]
fn renaming_onto_a_siblings_name_is_refused() {
    let mut w = World::new();
    let root = w.tenant("Root", None);
    w.tenant("A", Some(&root));
    let b = w.tenant("B", Some(&root));
    let platform = w.platform.clone();
    let err = w
        .when(
            &platform,
            "UpdateTenant",
            json!({"tenant_id": b, "name": "a"}),
        )
        .unwrap_err();
    assert!(matches!(err, DomainError::NameTaken { .. }));
}

#[test]
fn a_deleted_siblings_name_can_be_reused() {
    let mut w = World::new();
    let root = w.tenant("Root", None);
    let dev = w.tenant("Development", Some(&root));
    w.given("DeleteTenant", json!({"tenant_id": dev}));
    w.tenant("Development", Some(&root));
}

#[test]
fn no_sub_tenant_under_a_deleted_or_deleting_parent() {
    let mut w = World::new();
    let root = w.tenant("Root", None);
    let gone = w.tenant("Gone", Some(&root));
    w.given("DeleteTenant", json!({"tenant_id": gone}));
    let platform = w.platform.clone();
    let err = w
        .when(
            &platform,
            "CreateTenant",
            json!({"name": "x", "parent_id": gone}),
        )
        .unwrap_err();
    assert!(matches!(err, DomainError::NotFound { .. }));

    let closing = w.tenant("Closing", Some(&root));
    w.given(
        "AddFinalizer",
        json!({"resource_id": closing, "finalizer": "example.com/cleanup"}),
    );
    w.given("DeleteTenant", json!({"tenant_id": closing}));
    let err = w
        .when(
            &platform,
            "CreateTenant",
            json!({"name": "x", "parent_id": closing}),
        )
        .unwrap_err();
    assert!(matches!(err, DomainError::Deleting { .. }));
}

#[test]
fn deleting_a_tenant_with_live_dependents_is_refused() {
    let mut w = World::new();
    let root = w.tenant("Root", None);
    let child = w.tenant("Child", Some(&root));
    let platform = w.platform.clone();
    assert!(matches!(
        w.when(&platform, "DeleteTenant", json!({"tenant_id": root})),
        Err(DomainError::HasDependents { .. })
    ));
    let location = w.given("CreateLocation", json!({"tenant_id": child, "name": "NY"}));
    assert!(matches!(
        w.when(&platform, "DeleteTenant", json!({"tenant_id": child})),
        Err(DomainError::HasDependents { .. })
    ));
    w.given("DeleteLocation", json!({"location_id": location}));
    let rp = w.given(
        "CreateResourceProvider",
        json!({"tenant_id": child, "name": "LB", "scopes": ["loadbalancer:*"]}),
    );
    let provider = w.given(
        "RegisterProvider",
        json!({"tenant_id": child, "resource_provider_id": rp, "name": "Foo"}),
    );
    assert!(matches!(
        w.when(
            &platform,
            "DeleteResourceProvider",
            json!({"resource_provider_id": rp})
        ),
        Err(DomainError::HasDependents { .. })
    ));
    w.given("UnregisterProvider", json!({"provider_id": provider}));
    w.given(
        "DeleteResourceProvider",
        json!({"resource_provider_id": rp}),
    );
    w.given("DeleteTenant", json!({"tenant_id": child}));
    w.given("DeleteTenant", json!({"tenant_id": root}));
    assert_eq!(w.lifecycle(&root), Lifecycle::Deleted);
}

#[test]
fn a_location_served_by_a_resource_provider_is_not_deleted() {
    let mut w = World::new();
    let root = w.tenant("Root", None);
    let location = w.given("CreateLocation", json!({"tenant_id": root, "name": "NY"}));
    let rp = w.given(
        "CreateResourceProvider",
        json!({"tenant_id": root, "name": "LB", "scopes": ["loadbalancer:*"]}),
    );
    let serves = json!({"resource_provider_id": rp, "location_id": location});
    w.given("AddResourceProviderLocation", serves.clone());
    let platform = w.platform.clone();
    assert!(matches!(
        w.when(
            &platform,
            "DeleteLocation",
            json!({"location_id": location})
        ),
        Err(DomainError::HasDependents { .. })
    ));
    w.given("RemoveResourceProviderLocation", serves);
    w.given("DeleteLocation", json!({"location_id": location}));
}

#[test]
fn finalizers_hold_a_deletion_until_the_last_one_is_removed() {
    let mut w = World::new();
    let root = w.tenant("Root", None);
    let location = w.given("CreateLocation", json!({"tenant_id": root, "name": "LA"}));
    for f in ["example.com/a", "example.com/b"] {
        w.given(
            "AddFinalizer",
            json!({"resource_id": location, "finalizer": f}),
        );
    }
    let platform = w.platform.clone();
    let events = w
        .when(
            &platform,
            "DeleteLocation",
            json!({"location_id": location}),
        )
        .unwrap();
    assert_eq!(event_types(&events), ["DeletionRequested"]);
    assert_eq!(w.lifecycle(&location), Lifecycle::Deleting);
    assert!(w.store.streams[&location]
        .metadata
        .deletion_requested_at
        .is_some());

    let err = w
        .when(
            &platform,
            "AddFinalizer",
            json!({"resource_id": location, "finalizer": "example.com/c"}),
        )
        .unwrap_err();
    assert!(matches!(err, DomainError::Deleting { .. }));
    let child = w.tenant("Child", Some(&root));
    let err = w
        .when(
            &platform,
            "MakeLocationAvailable",
            json!({"location_id": location, "tenant_id": child}),
        )
        .unwrap_err();
    assert!(matches!(err, DomainError::Deleting { .. }));

    let events = w
        .when(
            &platform,
            "RemoveFinalizer",
            json!({"resource_id": location, "finalizer": "example.com/a"}),
        )
        .unwrap();
    assert_eq!(event_types(&events), ["FinalizerRemoved"]);
    let events = w
        .when(
            &platform,
            "RemoveFinalizer",
            json!({"resource_id": location, "finalizer": "example.com/b"}),
        )
        .unwrap();
    assert_eq!(
        event_types(&events),
        ["FinalizerRemoved", "LocationDeleted"]
    );
    assert_eq!(w.lifecycle(&location), Lifecycle::Deleted);
}

#[test]
fn roles_are_inherited_by_sub_tenants_and_ranked() {
    let mut w = World::new();
    let root = w.tenant("Root", None);
    let child = w.tenant("Child", Some(&root));
    let (viewer, editor, admin) = (w.user("viewer"), w.user("editor"), w.user("admin"));
    w.grant(&root, viewer.user_id().unwrap(), "viewer");
    w.grant(&root, editor.user_id().unwrap(), "editor");
    w.grant(&root, admin.user_id().unwrap(), "admin");

    let location = json!({"tenant_id": child, "name": "NY"});
    assert!(matches!(
        w.when(&viewer, "CreateLocation", location.clone()),
        Err(DomainError::Forbidden {
            needed: Role::Editor,
            ..
        })
    ));
    w.when(&editor, "CreateLocation", location).unwrap();

    let sub = json!({"name": "Grandchild", "parent_id": child});
    assert!(matches!(
        w.when(&editor, "CreateTenant", sub.clone()),
        Err(DomainError::Forbidden {
            needed: Role::Admin,
            ..
        })
    ));
    w.when(&admin, "CreateTenant", sub).unwrap();
}

#[test]
fn a_revoked_admin_cannot_act() {
    let mut w = World::new();
    let root = w.tenant("Root", None);
    let admin = w.user("admin");
    w.grant(&root, admin.user_id().unwrap(), "admin");
    w.when(
        &admin,
        "CreateTenant",
        json!({"name": "A", "parent_id": root}),
    )
    .unwrap();
    w.given(
        "RevokeTenantAccess",
        json!({"tenant_id": root, "user_id": admin.user_id().unwrap()}),
    );
    assert!(matches!(
        w.when(
            &admin,
            "CreateTenant",
            json!({"name": "B", "parent_id": root})
        ),
        Err(DomainError::Forbidden { .. })
    ));
}

#[test]
fn granting_to_an_unknown_user_is_not_found() {
    let mut w = World::new();
    let root = w.tenant("Root", None);
    let platform = w.platform.clone();
    let ghost = UserId::for_identity("test", "ghost");
    let err = w
        .when(
            &platform,
            "GrantTenantAccess",
            json!({"tenant_id": root, "user_id": ghost, "role": "viewer"}),
        )
        .unwrap_err();
    assert!(matches!(err, DomainError::NotFound { .. }), "{err:?}");
}

#[test]
fn availability_goes_only_to_strict_descendants_of_the_owner() {
    let mut w = World::new();
    let t100 = w.tenant("Tenant-100", None);
    let t200 = w.tenant("Tenant-200", Some(&t100));
    let other = w.tenant("Other", None);
    let ny = w.given(
        "CreateLocation",
        json!({"tenant_id": t100, "name": "Location-NY"}),
    );
    let platform = w.platform.clone();
    for not_below in [&t100, &other] {
        let err = w
            .when(
                &platform,
                "MakeLocationAvailable",
                json!({"location_id": ny, "tenant_id": not_below}),
            )
            .unwrap_err();
        assert!(
            matches!(err, DomainError::NotStrictDescendant { .. }),
            "{not_below}"
        );
    }
    let events = w
        .when(
            &platform,
            "MakeLocationAvailable",
            json!({"location_id": ny, "tenant_id": t200, "include_subtenants": true}),
        )
        .unwrap();
    assert_eq!(event_types(&events), ["LocationMadeAvailable"]);
    // Repeating it changes nothing and appends nothing.
    assert!(w
        .when(
            &platform,
            "MakeLocationAvailable",
            json!({"location_id": ny, "tenant_id": t200, "include_subtenants": true})
        )
        .unwrap()
        .is_empty());
}

/// Does the resource provider hold `scope` at `tenant`, as the model says?
fn holds(w: &World, rp: &str, tenant: &str, scope: &str) -> bool {
    let tenant_id = TenantId::parse(tenant).unwrap();
    let path = w.store.streams[tenant].as_tenant().unwrap().path.clone();
    w.store.streams[rp]
        .as_resource_provider()
        .unwrap()
        .holds_scope(&tenant_id, &path, &Scope::parse(scope).unwrap())
}

struct Seed {
    w: World,
    t100: String,
    t200: String,
    t300: String,
    rp: String,
}

/// The seed example: Tenant-100 owns a load balancer resource provider; Tenant-200 below it,
/// Tenant-300 below that.
fn seed() -> Seed {
    let mut w = World::new();
    let t100 = w.tenant("Tenant-100", None);
    let t200 = w.tenant("Tenant-200", Some(&t100));
    let t300 = w.tenant("Tenant-300", Some(&t200));
    let rp = w.given(
        "CreateResourceProvider",
        json!({"tenant_id": t100, "name": "Resource-Provider-LoadBalancers",
               "scopes": ["loadbalancer:*", "network:read", "instance:read"]}),
    );
    Seed {
        w,
        t100,
        t200,
        t300,
        rp,
    }
}

#[test]
fn authorizing_requires_availability() {
    let Seed {
        mut w,
        t200,
        t300,
        rp,
        ..
    } = seed();
    let platform = w.platform.clone();
    let authorize = |t: &str| json!({"resource_provider_id": rp, "tenant_id": t});
    assert!(matches!(
        w.when(&platform, "AuthorizeResourceProvider", authorize(&t200)),
        Err(DomainError::NotAvailable { .. })
    ));

    // Available to Tenant-200 without sub-tenants: Tenant-300 still may not authorize.
    w.given(
        "MakeResourceProviderAvailable",
        json!({"resource_provider_id": rp, "tenant_id": t200}),
    );
    assert!(matches!(
        w.when(&platform, "AuthorizeResourceProvider", authorize(&t300)),
        Err(DomainError::NotAvailable { .. })
    ));
    w.when(&platform, "AuthorizeResourceProvider", authorize(&t200))
        .unwrap();

    w.given(
        "MakeResourceProviderAvailable",
        json!({"resource_provider_id": rp, "tenant_id": t200, "include_subtenants": true}),
    );
    w.when(&platform, "AuthorizeResourceProvider", authorize(&t300))
        .unwrap();
}

#[test]
fn the_owner_may_authorize_its_own_resource_provider() {
    let Seed {
        mut w, t100, rp, ..
    } = seed();
    let platform = w.platform.clone();
    let events = w
        .when(
            &platform,
            "AuthorizeResourceProvider",
            json!({"resource_provider_id": rp, "tenant_id": t100}),
        )
        .unwrap();
    let Event::ProviderAuthorized { scopes, .. } = &events[0] else {
        panic!("{events:?}")
    };
    assert_eq!(scopes.len(), 3, "defaults to every requested scope");
}

#[test]
fn authorized_scopes_must_be_requested_ones() {
    let Seed {
        mut w, t200, rp, ..
    } = seed();
    w.given(
        "MakeResourceProviderAvailable",
        json!({"resource_provider_id": rp, "tenant_id": t200}),
    );
    let platform = w.platform.clone();
    let err = w.when(&platform, "AuthorizeResourceProvider",
        json!({"resource_provider_id": rp, "tenant_id": t200, "scopes": ["network:read", "network:write"]})).unwrap_err();
    assert_eq!(
        err,
        DomainError::ScopesNotRequested {
            scopes: vec!["network:write".into()]
        }
    );
}

#[test]
fn scopes_hold_only_while_authorized_and_available() {
    let Seed {
        mut w,
        t200,
        t300,
        rp,
        ..
    } = seed();
    w.given(
        "MakeResourceProviderAvailable",
        json!({"resource_provider_id": rp, "tenant_id": t200}),
    );
    w.given(
        "AuthorizeResourceProvider",
        json!({"resource_provider_id": rp, "tenant_id": t200, "include_subtenants": true}),
    );
    let holds = |w: &World, tenant: &str, scope: &str| holds(w, &rp, tenant, scope);
    assert!(holds(&w, &t200, "loadbalancer:create"));
    assert!(
        holds(&w, &t300, "network:read"),
        "include_subtenants reaches Tenant-300"
    );
    assert!(!holds(&w, &t300, "network:write"));
    w.given(
        "RevokeResourceProviderAvailability",
        json!({"resource_provider_id": rp, "tenant_id": t200}),
    );
    assert!(
        !holds(&w, &t200, "loadbalancer:create"),
        "revoking availability removes access"
    );
}

#[test]
fn resource_provider_locations_must_be_usable_by_its_owner() {
    let Seed {
        mut w, t100, t200, ..
    } = seed();
    let platform = w.platform.clone();
    let ny = w.given(
        "CreateLocation",
        json!({"tenant_id": t100, "name": "Location-NY"}),
    );
    let rp200 = w.given(
        "CreateResourceProvider",
        json!({"tenant_id": t200, "name": "rp", "scopes": ["x:*"]}),
    );
    let add = json!({"resource_provider_id": rp200, "location_id": ny});
    assert!(matches!(
        w.when(&platform, "AddResourceProviderLocation", add.clone()),
        Err(DomainError::LocationNotUsable { .. })
    ));
    w.given(
        "MakeLocationAvailable",
        json!({"location_id": ny, "tenant_id": t200}),
    );
    assert_eq!(
        event_types(
            &w.when(&platform, "AddResourceProviderLocation", add)
                .unwrap()
        ),
        ["ResourceProviderLocationAdded"]
    );
}

#[test]
fn providers_register_only_where_their_resource_provider_is_available() {
    let Seed {
        mut w, t200, rp, ..
    } = seed();
    let platform = w.platform.clone();
    let register =
        json!({"tenant_id": t200, "resource_provider_id": rp, "name": "LB-Provider-Foo"});
    assert!(matches!(
        w.when(&platform, "RegisterProvider", register.clone()),
        Err(DomainError::NotAvailable { .. })
    ));
    w.given(
        "MakeResourceProviderAvailable",
        json!({"resource_provider_id": rp, "tenant_id": t200}),
    );
    assert_eq!(
        event_types(&w.when(&platform, "RegisterProvider", register).unwrap()),
        ["ProviderRegistered"]
    );
}

#[test]
fn metadata_is_set_replaced_and_removed() {
    let mut w = World::new();
    let root = w.tenant("Root", None);
    let platform = w.platform.clone();
    w.given(
        "SetAnnotation",
        json!({"resource_id": root, "key": "example.com/owner", "value": "team-a"}),
    );
    assert!(w
        .when(
            &platform,
            "SetAnnotation",
            json!({"resource_id": root, "key": "example.com/owner", "value": "team-a"})
        )
        .unwrap()
        .is_empty());
    w.given(
        "SetStatus",
        json!({"resource_id": root, "source": "lb.example.com", "data": {"ready": true}}),
    );
    w.given(
        "SetStatus",
        json!({"resource_id": root, "source": "lb.example.com", "data": {"ready": false}}),
    );
    let meta = &w.store.streams[&root].metadata;
    assert_eq!(meta.statuses.len(), 1, "one status per source");
    assert_eq!(
        serde_json::Value::from(meta.statuses.values().next().unwrap().clone()),
        json!({"ready": false})
    );
    w.given(
        "RemoveAnnotation",
        json!({"resource_id": root, "key": "example.com/owner"}),
    );
    assert!(w.store.streams[&root].metadata.annotations.is_empty());
}

#[test]
fn editors_change_metadata_and_viewers_cannot() {
    let mut w = World::new();
    let root = w.tenant("Root", None);
    let (viewer, editor) = (w.user("v"), w.user("e"));
    w.grant(&root, viewer.user_id().unwrap(), "viewer");
    w.grant(&root, editor.user_id().unwrap(), "editor");
    let set = json!({"resource_id": root, "key": "k", "value": "v"});
    assert!(matches!(
        w.when(&viewer, "SetAnnotation", set.clone()),
        Err(DomainError::Forbidden { .. })
    ));
    w.when(&editor, "SetAnnotation", set).unwrap();
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// A random command over the streams that exist, by index.
    fn random_command(
        w: &World,
        kind: u8,
        a: usize,
        b: usize,
        flag: bool,
    ) -> Option<(String, Value)> {
        let ids = |prefix: &str| -> Vec<String> {
            w.store
                .streams
                .keys()
                .filter(|k| k.starts_with(prefix))
                .cloned()
                .collect()
        };
        let pick = |v: &Vec<String>, i: usize| v.get(i % v.len().max(1)).cloned();
        let (tenants, locations, rps, providers, users) = (
            ids("tnntten"),
            ids("lctnloc"),
            ids("resopro"),
            ids("resoprv"),
            ids("idntusr"),
        );
        let t = pick(&tenants, a);
        let t2 = pick(&tenants, b);
        Some(match kind % 16 {
            0 => (
                "CreateTenant".into(),
                json!({"name": format!("t{}", b % 4), "parent_id": t}),
            ),
            1 => (
                "CreateTenant".into(),
                json!({"name": format!("root{}", a % 3)}),
            ),
            2 => ("DeleteTenant".into(), json!({"tenant_id": t?})),
            3 => (
                "CreateLocation".into(),
                json!({"tenant_id": t?, "name": "loc"}),
            ),
            4 => (
                "MakeLocationAvailable".into(),
                json!({"location_id": pick(&locations, a)?, "tenant_id": t2?, "include_subtenants": flag}),
            ),
            5 => (
                "CreateResourceProvider".into(),
                json!({"tenant_id": t?, "name": "rp", "scopes": ["lb:*", "net:read"]}),
            ),
            6 => (
                "MakeResourceProviderAvailable".into(),
                json!({"resource_provider_id": pick(&rps, a)?, "tenant_id": t2?, "include_subtenants": flag}),
            ),
            7 => (
                "AuthorizeResourceProvider".into(),
                json!({"resource_provider_id": pick(&rps, a)?, "tenant_id": t2?, "include_subtenants": flag}),
            ),
            8 => (
                "RevokeResourceProviderAvailability".into(),
                json!({"resource_provider_id": pick(&rps, a)?, "tenant_id": t2?}),
            ),
            9 => (
                "RegisterProvider".into(),
                json!({"tenant_id": t2?, "resource_provider_id": pick(&rps, a)?, "name": "p"}),
            ),
            10 => (
                "AddFinalizer".into(),
                json!({"resource_id": pick(&tenants, a)?, "finalizer": "f"}),
            ),
            11 => (
                "RemoveFinalizer".into(),
                json!({"resource_id": pick(&tenants, a)?, "finalizer": "f"}),
            ),
            12 => (
                "DeleteLocation".into(),
                json!({"location_id": pick(&locations, a)?}),
            ),
            13 => (
                "UnregisterProvider".into(),
                json!({"provider_id": pick(&providers, a)?}),
            ),
            14 => (
                "GrantTenantAccess".into(),
                json!({"tenant_id": t?, "user_id": pick(&users, b)?, "role": "editor"}),
            ),
            _ => (
                "AddResourceProviderLocation".into(),
                json!({"resource_provider_id": pick(&rps, a)?, "location_id": pick(&locations, b)?}),
            ),
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// `apply` accepts whatever `decide` produced, and refolding the whole log gives back
        /// exactly the state kept incrementally.
        #[test]
        fn refolding_the_log_reproduces_every_stream(steps in proptest::collection::vec((any::<u8>(), 0usize..8, 0usize..8, any::<bool>()), 1..80)) {
            let mut w = World::new();
            w.user("someone");
            let platform = w.platform.clone();
            for (kind, a, b, flag) in steps {
                if let Some((t, data)) = random_command(&w, kind, a, b, flag) {
                    let _ = w.when(&platform, &t, data);
                }
            }
            let mut refolded = std::collections::BTreeMap::new();
            for (stream, event) in &w.store.log {
                let next = apply(refolded.remove(stream), event);
                prop_assert!(next.is_some(), "apply dropped {stream} on {}", event.event_type());
                refolded.insert(stream.clone(), next.unwrap());
            }
            prop_assert_eq!(refolded, w.store.streams.clone());
        }
    }
}

mod folding;
mod idempotence;
mod principals;
