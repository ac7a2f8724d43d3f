//! Resource lifecycles through HTTP: a location cannot be deleted from under the resource
//! providers serving it, finalizers hold deletions, and races end in exactly one outcome.

use serde_json::{json, Value};

use crate::read_side::{app, ids, read, read_ok, run};
use crate::support::TestApp;

/// A tenant with a location and a resource provider serving it: (tenant, location, rp).
async fn served_location(app: &TestApp) -> (String, String, String) {
    let admin = app.admin();
    let (tenant, _) = run(app, &admin, "CreateTenant", json!({"name": "Tenant-100"})).await;
    let (location, _) = run(
        app,
        &admin,
        "CreateLocation",
        json!({"tenant_id": tenant, "name": "Location-NY"}),
    )
    .await;
    let (rp, _) = run(
        app,
        &admin,
        "CreateResourceProvider",
        json!({"tenant_id": tenant, "name": "LBs", "scopes": ["loadbalancer:*"]}),
    )
    .await;
    run(
        app,
        &admin,
        "AddResourceProviderLocation",
        json!({"resource_provider_id": rp, "location_id": location}),
    )
    .await;
    (tenant, location, rp)
}

#[tokio::test]
async fn deleting_a_location_a_resource_provider_serves_is_409_naming_it() {
    let app = app().await;
    let admin = app.admin();
    let (tenant, location, rp) = served_location(&app).await;

    let refused = app
        .command(&admin, "DeleteLocation", json!({"location_id": location}))
        .await;
    assert_eq!(refused.status, 409, "{refused:?}");
    assert_eq!(refused.content_type, "application/problem+json");
    assert_eq!(refused.body["type"], "urn:plinth:problem:has-dependents");
    assert_eq!(refused.body["dependents"], json!([rp]));
    assert!(refused.body["detail"].as_str().unwrap().contains(&rp));

    // Once the resource provider no longer serves it, the delete goes through, and no read
    // model lists it any more.
    run(
        &app,
        &admin,
        "RemoveResourceProviderLocation",
        json!({"resource_provider_id": rp, "location_id": location}),
    )
    .await;
    let (_, at) = run(
        &app,
        &admin,
        "DeleteLocation",
        json!({"location_id": location}),
    )
    .await;
    let detail = read_ok(&app, &admin, &format!("/v1/resource-providers/{rp}"), at).await;
    assert_eq!(detail["locations"], json!([]));
    assert_eq!(
        read(&app, &admin, &format!("/v1/locations/{location}"), at)
            .await
            .status,
        404
    );
    let usable = read_ok(&app, &admin, &format!("/v1/tenants/{tenant}/locations"), at).await;
    assert!(ids(&usable, "id").is_empty());
}

#[tokio::test]
async fn adding_a_location_racing_its_delete_never_leaves_a_deleted_location_served() {
    let app = app().await;
    let admin = app.admin();
    let (tenant, _, rp) = served_location(&app).await;
    let mut locations = Vec::new();
    for i in 0..16 {
        let (location, _) = run(
            &app,
            &admin,
            "CreateLocation",
            json!({"tenant_id": tenant, "name": format!("L{i}")}),
        )
        .await;
        locations.push(location);
    }
    // Every add races the delete of its location, all at once, so that they meet in the same
    // group-commit batches as well as in concurrent ones.
    let races = locations.iter().map(|location| {
        let admin = admin.clone();
        let (app, rp) = (&app, &rp);
        async move {
            let (add, delete) = tokio::join!(
                app.command(
                    &admin,
                    "AddResourceProviderLocation",
                    json!({"resource_provider_id": rp, "location_id": location}),
                ),
                app.command(&admin, "DeleteLocation", json!({"location_id": location})),
            );
            (location.clone(), add, delete)
        }
    });
    let outcomes = futures::future::join_all(races).await;
    let mut served = Vec::new();
    let mut last = 0;
    for (location, add, delete) in outcomes {
        assert!(
            add.status < 500 && delete.status < 500,
            "{add:?} {delete:?}"
        );
        match (add.status, delete.status) {
            // The add won: the delete saw the dependent.
            (201, 409) => served.push(location),
            // The delete won: the add found the location gone.
            (404 | 409 | 422, 201) => {}
            other => panic!("add and delete both succeeded or both failed: {other:?}"),
        }
        for reply in [&add, &delete] {
            last = last.max(reply.body["position"].as_i64().unwrap_or(0));
        }
    }
    let (_, at) = run(
        &app,
        &admin,
        "SetAnnotation",
        json!({"resource_id": rp, "key": "example.com/done", "value": "yes"}),
    )
    .await;
    let detail = read_ok(
        &app,
        &admin,
        &format!("/v1/resource-providers/{rp}"),
        at.max(last),
    )
    .await;
    let mut listed: Vec<String> = detail["locations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_owned())
        .filter(|l| locations.contains(l))
        .collect();
    listed.sort();
    served.sort();
    assert_eq!(
        listed, served,
        "the resource provider serves exactly the locations that survived"
    );
    // And the write side agrees: every served location is still live.
    let client = app.db.pool.get().await.unwrap();
    for location in &served {
        let lifecycle: String = client
            .query_one(
                "select lifecycle from streams where stream_id = $1",
                &[location],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(lifecycle, "live", "{location}");
    }
}

/// One resource of each kind, owned below a fresh root: (kind's GET path prefix, id, the
/// delete command and its data, the event that completes the deletion).
async fn one_of_each(
    app: &TestApp,
) -> Vec<(&'static str, String, &'static str, Value, &'static str)> {
    let admin = app.admin();
    let (root, _) = run(app, &admin, "CreateTenant", json!({"name": "Root"})).await;
    let (leaf, _) = run(
        app,
        &admin,
        "CreateTenant",
        json!({"name": "Leaf", "parent_id": root}),
    )
    .await;
    let (location, _) = run(
        app,
        &admin,
        "CreateLocation",
        json!({"tenant_id": root, "name": "NY"}),
    )
    .await;
    let (rp, _) = run(
        app,
        &admin,
        "CreateResourceProvider",
        json!({"tenant_id": root, "name": "LBs", "scopes": ["loadbalancer:*"]}),
    )
    .await;
    // The provider uses a second resource provider, so that deleting the first is not
    // refused for having it as a dependent.
    let (rp2, _) = run(
        app,
        &admin,
        "CreateResourceProvider",
        json!({"tenant_id": root, "name": "DNS", "scopes": ["dns:*"]}),
    )
    .await;
    let (provider, _) = run(
        app,
        &admin,
        "RegisterProvider",
        json!({"tenant_id": root, "resource_provider_id": rp2, "name": "Foo"}),
    )
    .await;
    vec![
        (
            "/v1/tenants",
            leaf.clone(),
            "DeleteTenant",
            json!({"tenant_id": leaf}),
            "TenantDeleted",
        ),
        (
            "/v1/locations",
            location.clone(),
            "DeleteLocation",
            json!({"location_id": location}),
            "LocationDeleted",
        ),
        (
            "/v1/resource-providers",
            rp.clone(),
            "DeleteResourceProvider",
            json!({"resource_provider_id": rp}),
            "ResourceProviderDeleted",
        ),
        (
            "/v1/providers",
            provider.clone(),
            "UnregisterProvider",
            json!({"provider_id": provider}),
            "ProviderUnregistered",
        ),
    ]
}

async fn event_types(app: &TestApp, stream: &str, at: i64) -> Vec<String> {
    let events = read_ok(
        app,
        &app.admin(),
        &format!("/v1/streams/{stream}/events?limit=1000"),
        at,
    )
    .await;
    ids(&events, "event_type")
}

#[tokio::test]
async fn finalizers_hold_the_deletion_of_every_kind_of_resource_until_the_last_is_removed() {
    let app = app().await;
    let admin = app.admin();
    for (prefix, id, delete, data, deleted) in one_of_each(&app).await {
        for finalizer in ["example.com/a", "example.com/b"] {
            run(
                &app,
                &admin,
                "AddFinalizer",
                json!({"resource_id": id, "finalizer": finalizer}),
            )
            .await;
        }
        let (_, requested) = run(&app, &admin, delete, data).await;
        let view = read_ok(&app, &admin, &format!("{prefix}/{id}"), requested).await;
        assert_eq!(view["lifecycle"], "deleting", "{prefix}");
        assert!(
            view["metadata"]["deletion_requested_at"].is_string(),
            "{prefix}"
        );
        assert_eq!(
            view["metadata"]["finalizers"],
            json!(["example.com/a", "example.com/b"])
        );
        // No new finalizer on a deleting resource.
        let refused = app
            .command(
                &admin,
                "AddFinalizer",
                json!({"resource_id": id, "finalizer": "example.com/c"}),
            )
            .await;
        assert_eq!(refused.status, 409, "{prefix}: {refused:?}");

        let (_, one_left) = run(
            &app,
            &admin,
            "RemoveFinalizer",
            json!({"resource_id": id, "finalizer": "example.com/a"}),
        )
        .await;
        let view = read_ok(&app, &admin, &format!("{prefix}/{id}"), one_left).await;
        assert_eq!(view["lifecycle"], "deleting", "{prefix}");
        assert!(!event_types(&app, &id, one_left)
            .await
            .contains(&deleted.to_owned()));

        let (_, done) = run(
            &app,
            &admin,
            "RemoveFinalizer",
            json!({"resource_id": id, "finalizer": "example.com/b"}),
        )
        .await;
        let types = event_types(&app, &id, done).await;
        assert_eq!(
            types.last().map(String::as_str),
            Some(deleted),
            "{prefix}: {types:?}"
        );
        assert_eq!(
            read(&app, &admin, &format!("{prefix}/{id}"), done)
                .await
                .status,
            404,
            "{prefix}"
        );
    }
}

#[tokio::test]
async fn removing_the_last_two_finalizers_at_once_deletes_exactly_once() {
    let app = app().await;
    let admin = app.admin();
    let resources = one_of_each(&app).await;
    for (_, id, delete, data, _) in &resources {
        for finalizer in ["example.com/a", "example.com/b"] {
            run(
                &app,
                &admin,
                "AddFinalizer",
                json!({"resource_id": id, "finalizer": finalizer}),
            )
            .await;
        }
        run(&app, &admin, delete, data.clone()).await;
    }
    // Both removals of every resource at once: in one batch, or racing across batches.
    let removals: Vec<(&String, &str)> = resources
        .iter()
        .flat_map(|(_, id, ..)| ["example.com/a", "example.com/b"].map(|f| (id, f)))
        .collect();
    let remove = |id: &String, finalizer: &str| {
        app.command(
            &admin,
            "RemoveFinalizer",
            json!({"resource_id": id, "finalizer": finalizer}),
        )
    };
    let replies = futures::future::join_all(removals.iter().map(|(id, f)| remove(id, f))).await;
    let mut at = 0;
    for ((id, finalizer), reply) in removals.iter().zip(&replies) {
        // A version conflict (409) is a retry the client owes; retried, it must succeed.
        let reply = match reply.status {
            409 => &remove(id, finalizer).await,
            _ => reply,
        };
        assert!(reply.status == 201 || reply.status == 200, "{reply:?}");
        at = at.max(reply.body["position"].as_i64().unwrap());
    }
    for (prefix, id, _, _, deleted) in &resources {
        let types = event_types(&app, id, at).await;
        let count = types.iter().filter(|t| t.as_str() == *deleted).count();
        assert_eq!(count, 1, "{prefix}: {types:?}");
        assert_eq!(
            read(&app, &admin, &format!("{prefix}/{id}"), at)
                .await
                .status,
            404
        );
    }
}

#[tokio::test]
async fn locations_and_resource_providers_read_as_they_were_at_a_position_or_time() {
    let app = app().await;
    let admin = app.admin();
    let (root, _) = run(&app, &admin, "CreateTenant", json!({"name": "Root"})).await;
    let (child, _) = run(
        &app,
        &admin,
        "CreateTenant",
        json!({"name": "Child", "parent_id": root}),
    )
    .await;
    let (location, created) = run(
        &app,
        &admin,
        "CreateLocation",
        json!({"tenant_id": root, "name": "before"}),
    )
    .await;
    let (rp, rp_created) = run(
        &app,
        &admin,
        "CreateResourceProvider",
        json!({"tenant_id": root, "name": "LBs", "scopes": ["loadbalancer:*"]}),
    )
    .await;
    run(
        &app,
        &admin,
        "UpdateLocation",
        json!({"location_id": location, "name": "after"}),
    )
    .await;
    run(
        &app,
        &admin,
        "MakeLocationAvailable",
        json!({"location_id": location, "tenant_id": child}),
    )
    .await;
    let (_, now) = run(
        &app,
        &admin,
        "AddResourceProviderLocation",
        json!({"resource_provider_id": rp, "location_id": location}),
    )
    .await;

    let then = read_ok(
        &app,
        &admin,
        &format!("/v1/locations/{location}?as_of_position={created}"),
        now,
    )
    .await;
    assert_eq!(then["name"], "before");
    assert_eq!(then["available_to"], json!([]));
    assert_eq!(then["as_of_position"], created);
    let current = read_ok(&app, &admin, &format!("/v1/locations/{location}"), now).await;
    assert_eq!(current["name"], "after");
    assert_eq!(
        current["available_to"],
        json!([{"tenant_id": child, "include_subtenants": false}])
    );

    let rp_then = read_ok(
        &app,
        &admin,
        &format!("/v1/resource-providers/{rp}?as_of_position={rp_created}"),
        now,
    )
    .await;
    assert_eq!(rp_then["locations"], json!([]));
    assert_eq!(rp_then["scopes"], json!(["loadbalancer:*"]));
    let rp_now = read_ok(
        &app,
        &admin,
        &format!("/v1/resource-providers/{rp}?as_of_position={now}"),
        now,
    )
    .await;
    assert_eq!(rp_now["locations"], json!([location]));

    // By time: the creation's recorded time reads the first state; before it, nothing.
    let history = read_ok(&app, &admin, &format!("/v1/streams/{location}/events"), now).await;
    let created_at = history["items"][0]["recorded_at"]
        .as_str()
        .unwrap()
        .to_owned();
    let at_time = read_ok(
        &app,
        &admin,
        &format!(
            "/v1/locations/{location}?as_of_time={}",
            created_at.replace('+', "%2B")
        ),
        now,
    )
    .await;
    assert_eq!(at_time["name"], "before");
    let long_ago = format!("/v1/resource-providers/{rp}?as_of_time=2000-01-01T00:00:00Z");
    assert_eq!(read(&app, &admin, &long_ago, now).await.status, 404);
    // Malformed points in time are 400s.
    for bad in [
        "as_of_position=x",
        "as_of_time=yesterday",
        &format!("as_of_position={now}&as_of_time={created_at}"),
    ] {
        let reply = read(
            &app,
            &admin,
            &format!("/v1/locations/{location}?{bad}"),
            now,
        )
        .await;
        assert_eq!(reply.status, 400, "{bad}: {reply:?}");
    }

    // The tree as of a position is not served: a 400 saying so, never the current tree.
    for query in [
        format!("as_of_position={created}"),
        "as_of_time=2000-01-01T00:00:00Z".to_owned(),
    ] {
        let reply = read(
            &app,
            &admin,
            &format!("/v1/tenants/{root}/descendants?{query}"),
            now,
        )
        .await;
        assert_eq!(reply.status, 400, "{reply:?}");
        assert!(
            reply.body["detail"]
                .as_str()
                .unwrap()
                .contains("not supported"),
            "{reply:?}"
        );
    }
}
