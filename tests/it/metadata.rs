//! Metadata on every resource's GET, and finding a subtree's resources by annotation.

use serde_json::{json, Value};

use crate::read_side::{app, ids, read, read_ok, run};

#[tokio::test]
async fn every_get_embeds_metadata_and_annotations_find_resources_of_every_kind_in_a_subtree() {
    let app = app().await;
    let admin = app.admin();
    let (t100, _) = run(&app, &admin, "CreateTenant", json!({"name": "Tenant-100"})).await;
    let (t200, _) = run(
        &app,
        &admin,
        "CreateTenant",
        json!({"name": "Tenant-200", "parent_id": t100}),
    )
    .await;
    let (other, _) = run(&app, &admin, "CreateTenant", json!({"name": "Other"})).await;
    let location_of = |tenant: String, name: &'static str| {
        let admin = admin.clone();
        let app = &app;
        async move {
            run(
                app,
                &admin,
                "CreateLocation",
                json!({"tenant_id": tenant, "name": name}),
            )
            .await
            .0
        }
    };
    let ny = location_of(t200.clone(), "NY").await;
    let la = location_of(t200.clone(), "LA").await;
    let elsewhere = location_of(other.clone(), "Elsewhere").await;
    let (rp, _) = run(
        &app,
        &admin,
        "CreateResourceProvider",
        json!({"tenant_id": t100, "name": "LBs", "scopes": ["loadbalancer:*"]}),
    )
    .await;
    let (provider, _) = run(
        &app,
        &admin,
        "RegisterProvider",
        json!({"tenant_id": t100, "resource_provider_id": rp, "name": "Foo"}),
    )
    .await;
    let key = "example.com/team";
    let mut at = 0;
    for (id, value) in [
        (&t200, "blue"),
        (&ny, "blue"),
        (&rp, "blue"),
        (&provider, "blue"),
        (&elsewhere, "blue"),
        (&la, "red"),
    ] {
        at = run(
            &app,
            &admin,
            "SetAnnotation",
            json!({"resource_id": id, "key": key, "value": value}),
        )
        .await
        .1;
    }
    run(
        &app,
        &admin,
        "SetStatus",
        json!({"resource_id": ny, "source": "probe", "data": {"up": true}}),
    )
    .await;
    let (_, at2) = run(
        &app,
        &admin,
        "AddFinalizer",
        json!({"resource_id": ny, "finalizer": "example.com/drain"}),
    )
    .await;
    at = at.max(at2);

    // Every GET carries its metadata.
    for (path, value) in [
        (format!("/v1/tenants/{t200}"), "blue"),
        (format!("/v1/locations/{la}"), "red"),
        (format!("/v1/resource-providers/{rp}"), "blue"),
        (format!("/v1/providers/{provider}"), "blue"),
    ] {
        let view = read_ok(&app, &admin, &path, at).await;
        assert_eq!(
            view["metadata"]["annotations"],
            json!({key: value}),
            "{path}"
        );
        assert!(
            view["metadata"]["deletion_requested_at"].is_null(),
            "{path}"
        );
    }
    let ny_view = read_ok(&app, &admin, &format!("/v1/locations/{ny}"), at).await;
    assert_eq!(
        ny_view["metadata"]["statuses"],
        json!({"probe": {"up": true}})
    );
    assert_eq!(
        ny_view["metadata"]["finalizers"],
        json!(["example.com/drain"])
    );

    // Tenant-100's subtree: the tenant, location, resource provider and provider, not the
    // red one, nor the blue one in another tree.
    let search = |tenant: &str, extra: &str| {
        format!("/v1/tenants/{tenant}/resources?annotation={key}=blue{extra}")
    };
    let found = read_ok(&app, &admin, &search(&t100, ""), at).await;
    let mut expected = vec![t200.clone(), ny.clone(), rp.clone(), provider.clone()];
    expected.sort();
    assert_eq!(ids(&found, "id"), expected);
    let kinds: Vec<&str> = found["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["kind"].as_str().unwrap())
        .collect();
    for kind in ["tenant", "location", "resource_provider", "provider"] {
        assert!(kinds.contains(&kind), "{kinds:?}");
    }
    let ny_item = found["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == ny.as_str())
        .unwrap();
    assert_eq!(ny_item["name"], "NY");
    assert_eq!(ny_item["tenant_id"], t200.as_str());

    // Paginated: two pages of two, every item once.
    let first = read_ok(&app, &admin, &search(&t100, "&limit=2"), at).await;
    let next = first["next"].as_str().unwrap().to_owned();
    let second = read_ok(
        &app,
        &admin,
        &search(&t100, &format!("&limit=2&after={next}")),
        at,
    )
    .await;
    assert!(second["next"].is_null());
    let paged: Vec<String> = [ids(&first, "id"), ids(&second, "id")].concat();
    assert_eq!(paged, expected);

    // A smaller subtree finds less; a viewer of it finds the same; a stranger gets 404.
    let below = read_ok(&app, &admin, &search(&t200, ""), at).await;
    let mut t200_expected = vec![t200.clone(), ny.clone()];
    t200_expected.sort();
    assert_eq!(ids(&below, "id"), t200_expected);
    let viewer_id = app.user("t200-viewer").await;
    let (_, granted) = run(
        &app,
        &admin,
        "GrantTenantAccess",
        json!({"tenant_id": t200, "user_id": viewer_id, "role": "viewer"}),
    )
    .await;
    let viewer = app.token("t200-viewer");
    assert_eq!(
        ids(
            &read_ok(&app, &viewer, &search(&t200, ""), granted).await,
            "id"
        ),
        t200_expected
    );
    assert_eq!(
        read(&app, &viewer, &search(&t100, ""), granted)
            .await
            .status,
        404
    );

    // Bad searches are 400 problems.
    for query in ["", "?annotation=no-value", "?annotation=Not%20A%20Key=x"] {
        let reply = read(
            &app,
            &admin,
            &format!("/v1/tenants/{t100}/resources{query}"),
            at,
        )
        .await;
        assert_eq!(reply.status, 400, "{query}: {reply:?}");
        assert_eq!(reply.content_type, "application/problem+json");
    }

    // A resource that is gone is not found any more.
    let (_, gone) = run(
        &app,
        &admin,
        "UnregisterProvider",
        json!({"provider_id": provider}),
    )
    .await;
    let after: Value = read_ok(&app, &admin, &search(&t100, ""), gone).await;
    assert!(!ids(&after, "id").contains(&provider));
}
