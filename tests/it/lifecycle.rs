//! Resource lifecycles through HTTP: a location cannot be deleted from under the resource
//! providers serving it, finalizers hold deletions, and races end in exactly one outcome.

use serde_json::json;

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
