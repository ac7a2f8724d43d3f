//! The read side end to end: commands through HTTP, projectors tailing the log, queries
//! through HTTP with read-your-writes.

use serde_json::{json, Value};

use crate::support::{spawn_app, Api, Reply, TestApp, HORIZON};

/// A running app with the projectors running beside it (as `plinth serve` runs them).
pub async fn app() -> TestApp {
    let app = spawn_app().await;
    tokio::spawn(plinth_projections::read::run_projectors(
        app.db.pool.clone(),
        std::future::pending(),
    ));
    app
}

/// A command that must succeed: (stream id, position).
pub async fn run(app: &TestApp, token: &str, command_type: &str, data: Value) -> (String, i64) {
    let reply = app.command(token, command_type, data).await;
    assert!(
        reply.status == 201 || reply.status == 200,
        "{command_type}: {reply:?}"
    );
    (
        reply.body["stream_id"].as_str().unwrap().to_owned(),
        reply.body["position"].as_i64().unwrap(),
    )
}

/// `GET path` once the read models cover `position`.
pub async fn read(app: &Api, token: &str, path: &str, position: i64) -> Reply {
    let sep = if path.contains('?') { '&' } else { '?' };
    app.get(token, &format!("{path}{sep}min_position={position}"))
        .await
}

pub async fn read_ok(app: &TestApp, token: &str, path: &str, position: i64) -> Value {
    let reply = read(app, token, path, position).await;
    assert_eq!(reply.status, 200, "GET {path}: {reply:?}");
    reply.body
}

pub fn ids(list: &Value, field: &str) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap_or_else(|| panic!("not a page: {list}"))
        .iter()
        .map(|i| i[field].as_str().unwrap().to_owned())
        .collect()
}

async fn allowed(
    app: &TestApp,
    token: &str,
    rp: &str,
    tenant: &str,
    scope: &str,
    position: i64,
) -> bool {
    let body = read_ok(
        app,
        token,
        &format!("/v1/access/check?resource_provider_id={rp}&tenant_id={tenant}&scope={scope}"),
        position,
    )
    .await;
    body["allowed"].as_bool().unwrap()
}

/// The seed's own example (`seed/foundational-resources.txt`): Tenant-100 owns Location-LA,
/// Location-NY, LB-Provider-Foo/Bar and Resource-Provider-LoadBalancers; it makes NY and the
/// resource provider available to its sub-tenant Tenant-200, and the resource provider
/// available in NY; Tenant-200 authorizes it.
#[tokio::test]
async fn the_seed_example_holds_end_to_end_and_revoking_availability_removes_access() {
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
    let (la, _) = run(
        &app,
        &admin,
        "CreateLocation",
        json!({"tenant_id": t100, "name": "Location-LA"}),
    )
    .await;
    let (ny, _) = run(
        &app,
        &admin,
        "CreateLocation",
        json!({"tenant_id": t100, "name": "Location-NY"}),
    )
    .await;
    let (rp, _) = run(
        &app,
        &admin,
        "CreateResourceProvider",
        json!({"tenant_id": t100, "name": "Resource-Provider-LoadBalancers",
               "scopes": ["loadbalancer:*", "network:read", "instance:read"]}),
    )
    .await;
    let mut lb_providers = Vec::new();
    for name in ["LB-Provider-Foo", "LB-Provider-Bar"] {
        let (provider, _) = run(
            &app,
            &admin,
            "RegisterProvider",
            json!({"tenant_id": t100, "resource_provider_id": rp, "name": name}),
        )
        .await;
        lb_providers.push(provider);
    }
    run(
        &app,
        &admin,
        "MakeLocationAvailable",
        json!({"location_id": ny, "tenant_id": t200}),
    )
    .await;
    run(
        &app,
        &admin,
        "MakeResourceProviderAvailable",
        json!({"resource_provider_id": rp, "tenant_id": t200}),
    )
    .await;
    run(
        &app,
        &admin,
        "AddResourceProviderLocation",
        json!({"resource_provider_id": rp, "location_id": ny}),
    )
    .await;

    // Tenant-200's own administrator authorizes the resource provider.
    let t200_admin_id = app.user("t200-admin").await;
    run(
        &app,
        &admin,
        "GrantTenantAccess",
        json!({"tenant_id": t200, "user_id": t200_admin_id, "role": "admin"}),
    )
    .await;
    let t200_admin = app.token("t200-admin");
    let (_, at) = run(
        &app,
        &t200_admin,
        "AuthorizeResourceProvider",
        json!({"resource_provider_id": rp, "tenant_id": t200}),
    )
    .await;

    assert!(allowed(&app, &admin, &rp, &t200, "loadbalancer:create", at).await);
    assert!(allowed(&app, &admin, &rp, &t200, "network:read", at).await);
    assert!(!allowed(&app, &admin, &rp, &t200, "network:write", at).await);
    // Tenant-200's admin may ask too; Tenant-100 itself never authorized it.
    assert!(allowed(&app, &t200_admin, &rp, &t200, "instance:read", at).await);
    assert!(!allowed(&app, &admin, &rp, &t100, "loadbalancer:create", at).await);

    // Tenant-200 may use NY (made available) but not LA; Tenant-100 owns both.
    let t200_locations = read_ok(
        &app,
        &t200_admin,
        &format!("/v1/tenants/{t200}/locations"),
        at,
    )
    .await;
    assert_eq!(ids(&t200_locations, "id"), vec![ny.clone()]);
    assert_eq!(t200_locations["items"][0]["via"], "available");
    let t100_locations = read_ok(&app, &admin, &format!("/v1/tenants/{t100}/locations"), at).await;
    let mut owned = ids(&t100_locations, "id");
    owned.sort();
    let mut expected = vec![la.clone(), ny.clone()];
    expected.sort();
    assert_eq!(owned, expected);
    assert!(t100_locations["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|l| l["via"] == "owned"));
    let ny_tenants = read_ok(&app, &admin, &format!("/v1/locations/{ny}/tenants"), at).await;
    assert_eq!(
        ids(&ny_tenants, "tenant_id"),
        vec![t100.clone(), t200.clone()]
    );

    // The resource provider as Tenant-200 sees it, and as its owner sees it.
    let in_t200 = read_ok(
        &app,
        &t200_admin,
        &format!("/v1/tenants/{t200}/resource-providers"),
        at,
    )
    .await;
    let item = &in_t200["items"][0];
    assert_eq!(item["id"], rp.as_str());
    assert_eq!(item["available"], true);
    assert_eq!(item["authorized"], true);
    assert_eq!(
        item["scopes"],
        json!(["instance:read", "loadbalancer:*", "network:read"])
    );
    let detail = read_ok(&app, &admin, &format!("/v1/resource-providers/{rp}"), at).await;
    assert_eq!(detail["locations"], json!([ny]));
    assert_eq!(
        detail["scopes"],
        json!(["instance:read", "loadbalancer:*", "network:read"])
    );
    let served = read_ok(
        &app,
        &admin,
        &format!("/v1/resource-providers/{rp}/tenants"),
        at,
    )
    .await;
    assert_eq!(ids(&served, "tenant_id"), vec![t200.clone()]);
    assert_eq!(
        served["items"][0]["scopes"],
        json!(["instance:read", "loadbalancer:*", "network:read"])
    );

    // Tenant-200's user reads back what it may use: the location, the resource provider and
    // the providers acting through it, though all belong to Tenant-100.
    let ny_seen = read_ok(&app, &t200_admin, &format!("/v1/locations/{ny}"), at).await;
    assert_eq!(ny_seen["name"], "Location-NY");
    assert_eq!(ny_seen["tenant_id"], t100.as_str());
    assert_eq!(
        ny_seen["available_to"],
        json!([{"tenant_id": t200, "include_subtenants": false}])
    );
    let rp_seen = read_ok(
        &app,
        &t200_admin,
        &format!("/v1/resource-providers/{rp}"),
        at,
    )
    .await;
    assert_eq!(rp_seen["name"], "Resource-Provider-LoadBalancers");
    assert_eq!(rp_seen["locations"], json!([ny]));
    let usable = read_ok(
        &app,
        &t200_admin,
        &format!("/v1/tenants/{t200}/providers"),
        at,
    )
    .await;
    assert_eq!(ids(&usable, "id"), lb_providers);
    let using = read_ok(
        &app,
        &t200_admin,
        &format!("/v1/resource-providers/{rp}/providers"),
        at,
    )
    .await;
    assert_eq!(
        ids(&using, "name"),
        vec!["LB-Provider-Foo", "LB-Provider-Bar"]
    );
    let foo = read_ok(
        &app,
        &t200_admin,
        &format!("/v1/providers/{}", lb_providers[0]),
        at,
    )
    .await;
    assert_eq!(foo["resource_provider_id"], rp.as_str());
    // Location-LA was never made available to it.
    assert_eq!(
        read(&app, &t200_admin, &format!("/v1/locations/{la}"), at)
            .await
            .status,
        404
    );

    // Revoking availability removes the access, though the authorization event stands.
    let (_, revoked) = run(
        &app,
        &admin,
        "RevokeResourceProviderAvailability",
        json!({"resource_provider_id": rp, "tenant_id": t200}),
    )
    .await;
    assert!(!allowed(&app, &admin, &rp, &t200, "loadbalancer:create", revoked).await);
    assert!(!allowed(&app, &admin, &rp, &t200, "network:read", revoked).await);
    let served = read_ok(
        &app,
        &admin,
        &format!("/v1/resource-providers/{rp}/tenants"),
        revoked,
    )
    .await;
    assert!(ids(&served, "tenant_id").is_empty());
}

#[tokio::test]
async fn include_subtenants_covers_tenants_created_later_and_the_tree_reads_without_recursion() {
    let app = app().await;
    let admin = app.admin();
    let (root, _) = run(&app, &admin, "CreateTenant", json!({"name": "root"})).await;
    let (a, _) = run(
        &app,
        &admin,
        "CreateTenant",
        json!({"name": "a", "parent_id": root}),
    )
    .await;
    let (loc, _) = run(
        &app,
        &admin,
        "CreateLocation",
        json!({"tenant_id": root, "name": "dc"}),
    )
    .await;
    let (rp, _) = run(
        &app,
        &admin,
        "CreateResourceProvider",
        json!({"tenant_id": root, "name": "rp", "scopes": ["vm:*"]}),
    )
    .await;
    run(
        &app,
        &admin,
        "MakeLocationAvailable",
        json!({"location_id": loc, "tenant_id": a, "include_subtenants": true}),
    )
    .await;
    run(
        &app,
        &admin,
        "MakeResourceProviderAvailable",
        json!({"resource_provider_id": rp, "tenant_id": a, "include_subtenants": true}),
    )
    .await;
    run(
        &app,
        &admin,
        "AuthorizeResourceProvider",
        json!({"resource_provider_id": rp, "tenant_id": a, "include_subtenants": true}),
    )
    .await;
    // Created after the availability and the authorization.
    let (b, _) = run(
        &app,
        &admin,
        "CreateTenant",
        json!({"name": "b", "parent_id": a}),
    )
    .await;
    let (c, at) = run(
        &app,
        &admin,
        "CreateTenant",
        json!({"name": "c", "parent_id": b}),
    )
    .await;

    let locations = read_ok(&app, &admin, &format!("/v1/tenants/{c}/locations"), at).await;
    assert_eq!(ids(&locations, "id"), vec![loc.clone()]);
    assert!(allowed(&app, &admin, &rp, &c, "vm:start", at).await);
    assert!(!allowed(&app, &admin, &rp, &root, "vm:start", at).await);

    let ancestors = read_ok(&app, &admin, &format!("/v1/tenants/{c}/ancestors"), at).await;
    assert_eq!(
        ids(&ancestors, "id"),
        vec![b.clone(), a.clone(), root.clone()],
        "parent first"
    );
    let descendants = read_ok(&app, &admin, &format!("/v1/tenants/{root}/descendants"), at).await;
    assert_eq!(
        ids(&descendants, "id"),
        vec![a.clone(), b.clone(), c.clone()]
    );
    assert_eq!(descendants["items"][2]["relative_depth"], 3);
    let shallow = read_ok(
        &app,
        &admin,
        &format!("/v1/tenants/{root}/descendants?max_depth=2"),
        at,
    )
    .await;
    assert_eq!(ids(&shallow, "id"), vec![a.clone(), b.clone()]);
    let children = read_ok(&app, &admin, &format!("/v1/tenants/{a}/children"), at).await;
    assert_eq!(ids(&children, "id"), vec![b.clone()]);
    let roots = read_ok(&app, &admin, "/v1/tenants", at).await;
    assert_eq!(ids(&roots, "id"), vec![root.clone()]);
    let served = read_ok(
        &app,
        &admin,
        &format!("/v1/resource-providers/{rp}/tenants"),
        at,
    )
    .await;
    assert_eq!(ids(&served, "tenant_id"), vec![a, b, c]);
}

#[tokio::test]
async fn a_viewer_of_a_subtree_sees_only_that_subtree_and_everything_else_is_404() {
    let app = app().await;
    let admin = app.admin();
    let (root, _) = run(&app, &admin, "CreateTenant", json!({"name": "root"})).await;
    let (mine, _) = run(
        &app,
        &admin,
        "CreateTenant",
        json!({"name": "mine", "parent_id": root}),
    )
    .await;
    let (below, _) = run(
        &app,
        &admin,
        "CreateTenant",
        json!({"name": "below", "parent_id": mine}),
    )
    .await;
    let (other, _) = run(
        &app,
        &admin,
        "CreateTenant",
        json!({"name": "other", "parent_id": root}),
    )
    .await;
    let (other_loc, _) = run(
        &app,
        &admin,
        "CreateLocation",
        json!({"tenant_id": other, "name": "x"}),
    )
    .await;
    let (my_loc, _) = run(
        &app,
        &admin,
        "CreateLocation",
        json!({"tenant_id": mine, "name": "y"}),
    )
    .await;
    let viewer_id = app.user("viewer").await;
    let (_, at) = run(
        &app,
        &admin,
        "GrantTenantAccess",
        json!({"tenant_id": mine, "user_id": viewer_id, "role": "viewer"}),
    )
    .await;
    let viewer = app.token("viewer");

    // Their roots are the tops of what they may see.
    let roots = read_ok(&app, &viewer, "/v1/tenants", at).await;
    assert_eq!(ids(&roots, "id"), vec![mine.clone()]);
    read_ok(&app, &viewer, &format!("/v1/tenants/{below}"), at).await;
    read_ok(&app, &viewer, &format!("/v1/locations/{my_loc}"), at).await;
    read_ok(
        &app,
        &viewer,
        &format!("/v1/resources/{below}/metadata"),
        at,
    )
    .await;
    let events = read_ok(&app, &viewer, &format!("/v1/streams/{mine}/events"), at).await;
    assert_eq!(events["items"][0]["event_type"], "TenantCreated");
    // Ancestors stop where their visibility does.
    let ancestors = read_ok(&app, &viewer, &format!("/v1/tenants/{below}/ancestors"), at).await;
    assert_eq!(ids(&ancestors, "id"), vec![mine.clone()]);

    for path in [
        format!("/v1/tenants/{root}"),
        format!("/v1/tenants/{other}"),
        format!("/v1/tenants/{other}/children"),
        format!("/v1/tenants/{other}/descendants"),
        format!("/v1/tenants/{other}/locations"),
        format!("/v1/tenants/{root}/resource-providers"),
        format!("/v1/locations/{other_loc}"),
        format!("/v1/locations/{other_loc}/tenants"),
        format!("/v1/resources/{other}/metadata"),
        format!("/v1/streams/{other}/events"),
        format!("/v1/audit?tenant_id={other}"),
        format!("/v1/tenants/{other}?as_of_position={at}"),
    ] {
        let reply = read(&app, &viewer, &path, at).await;
        assert_eq!(reply.status, 404, "{path}: {reply:?}");
        assert_eq!(reply.content_type, "application/problem+json");
    }
    // A tenant that does not exist reads exactly the same.
    let missing = plinth_domain::TenantId::generate();
    assert_eq!(
        read(&app, &viewer, &format!("/v1/tenants/{missing}"), at)
            .await
            .status,
        404
    );
    // The whole audit log is for platform administrators.
    assert_eq!(read(&app, &viewer, "/v1/audit", at).await.status, 403);
    let audit = read_ok(&app, &viewer, &format!("/v1/audit?tenant_id={mine}"), at).await;
    let streams: std::collections::BTreeSet<String> =
        ids(&audit, "stream_id").into_iter().collect();
    assert!(streams.contains(&mine) && streams.contains(&below) && streams.contains(&my_loc));
    assert!(!streams.contains(&other) && !streams.contains(&root));
    // Unauthenticated is 401; malformed ids and limits are 400.
    let anonymous = app
        .http
        .get(format!("{}/v1/tenants", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    for path in [
        "/v1/tenants/not-an-id".to_owned(),
        format!("/v1/tenants/{my_loc}"),
        format!("/v1/tenants/{mine}/children?limit=1001"),
        format!("/v1/tenants/{mine}/children?limit=0"),
        format!("/v1/tenants/{mine}/children?after=%%%"),
        format!("/v1/access/check?resource_provider_id=x&tenant_id={mine}&scope=a:b"),
        "/v1/resources/idntusr-aaaaaaaaaaaaaaaaaaaaa/metadata".to_owned(),
        format!("/v1/tenants/{mine}?min_position=abc"),
    ] {
        let reply = app.get(&viewer, &path).await;
        assert_eq!(reply.status, 400, "{path}: {reply:?}");
    }
}

#[tokio::test]
async fn min_position_waits_for_the_projection_and_503s_past_the_bound() {
    let app = app().await;
    let admin = app.admin();
    let (tenant, position) = run(&app, &admin, "CreateTenant", json!({"name": "fresh"})).await;
    // Immediately readable with min_position, every time.
    for i in 0..5 {
        let (child, p) = run(
            &app,
            &admin,
            "CreateTenant",
            json!({"name": format!("c{i}"), "parent_id": tenant}),
        )
        .await;
        let reply = read(&app, &admin, &format!("/v1/tenants/{child}"), p).await;
        assert_eq!(reply.status, 200, "{reply:?}");
    }
    assert_eq!(
        read(&app, &admin, &format!("/v1/tenants/{tenant}"), position)
            .await
            .status,
        200
    );
    // A position nobody has written yet: bounded wait, then 503 with Retry-After.
    let started = std::time::Instant::now();
    let response = app
        .http
        .get(format!(
            "{}/v1/tenants/{tenant}?min_position=999999999",
            app.base
        ))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 503);
    assert!(response.headers().get("retry-after").is_some());
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

/// Many more waiting reads than the pool has connections (16): they share one watcher of the
/// checkpoints, none gives up, and every one answers once the projectors catch up.
#[tokio::test]
async fn two_hundred_reads_waiting_at_once_all_answer_when_the_projectors_catch_up() {
    let app = spawn_app().await;
    let admin = app.admin();
    let (tenant, position) = run(&app, &admin, "CreateTenant", json!({"name": "awaited"})).await;
    let reads: Vec<_> = (0..200)
        .map(|_| {
            let (api, admin, path) = (app.api(), admin.clone(), format!("/v1/tenants/{tenant}"));
            tokio::spawn(async move { read(&api, &admin, &path, position).await })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        reads.iter().all(|r| !r.is_finished()),
        "no read may answer before the projectors applied the event"
    );
    // Commands are still served while the reads wait.
    run(&app, &admin, "CreateTenant", json!({"name": "meanwhile"})).await;
    tokio::spawn(plinth_projections::read::run_projectors(
        app.db.pool.clone(),
        std::future::pending(),
    ));
    for r in reads {
        let reply = r.await.unwrap();
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(reply.body["id"], tenant);
    }
}

#[tokio::test]
async fn lists_paginate_with_cursors_and_every_item_appears_once() {
    let app = app().await;
    let admin = app.admin();
    let (root, _) = run(&app, &admin, "CreateTenant", json!({"name": "root"})).await;
    let mut created = Vec::new();
    let mut at = 0;
    for i in 0..7 {
        let (id, p) = run(
            &app,
            &admin,
            "CreateTenant",
            json!({"name": format!("t{i}"), "parent_id": root}),
        )
        .await;
        created.push(id);
        at = p;
    }
    for list in ["children", "descendants"] {
        let mut seen = Vec::new();
        let mut path = format!("/v1/tenants/{root}/{list}?limit=3");
        loop {
            let page = read_ok(&app, &admin, &path, at).await;
            assert!(page["items"].as_array().unwrap().len() <= 3);
            seen.extend(ids(&page, "id"));
            match page["next"].as_str() {
                Some(next) => path = format!("/v1/tenants/{root}/{list}?limit=3&after={next}"),
                None => break,
            }
        }
        assert_eq!(seen, created, "{list}");
    }
}

#[tokio::test]
async fn metadata_history_and_temporal_reads_follow_the_log() {
    let app = app().await;
    let admin = app.admin();
    let (t, v1) = run(&app, &admin, "CreateTenant", json!({"name": "before"})).await;
    run(
        &app,
        &admin,
        "SetAnnotation",
        json!({"resource_id": t, "key": "example.com/owner", "value": "sre"}),
    )
    .await;
    run(
        &app,
        &admin,
        "SetStatus",
        json!({"resource_id": t, "source": "example.com/probe", "data": {"ready": true}}),
    )
    .await;
    run(
        &app,
        &admin,
        "AddFinalizer",
        json!({"resource_id": t, "finalizer": "example.com/cleanup"}),
    )
    .await;
    let (_, at) = run(
        &app,
        &admin,
        "UpdateTenant",
        json!({"tenant_id": t, "name": "after"}),
    )
    .await;

    let metadata = read_ok(&app, &admin, &format!("/v1/resources/{t}/metadata"), at).await;
    assert_eq!(
        metadata,
        json!({"annotations": {"example.com/owner": "sre"}, "statuses": {"example.com/probe": {"ready": true}},
               "finalizers": ["example.com/cleanup"], "deletion_requested_at": null})
    );
    let now = read_ok(&app, &admin, &format!("/v1/tenants/{t}"), at).await;
    assert_eq!(now["name"], "after");
    let then = read_ok(
        &app,
        &admin,
        &format!("/v1/tenants/{t}?as_of_position={v1}"),
        at,
    )
    .await;
    assert_eq!(then["name"], "before");
    assert_eq!(then["as_of_position"], v1);
    let long_ago = app
        .get(
            &admin,
            &format!("/v1/tenants/{t}?as_of_time=2000-01-01T00:00:00Z"),
        )
        .await;
    assert_eq!(long_ago.status, 404);

    // Deleting with a finalizer leaves it visible as deleting.
    let (_, deleting) = run(&app, &admin, "DeleteTenant", json!({"tenant_id": t})).await;
    let metadata = read_ok(
        &app,
        &admin,
        &format!("/v1/resources/{t}/metadata"),
        deleting,
    )
    .await;
    assert!(metadata["deletion_requested_at"].is_string());
    assert_eq!(
        read_ok(&app, &admin, &format!("/v1/tenants/{t}"), deleting).await["lifecycle"],
        "deleting"
    );

    let history = read_ok(
        &app,
        &admin,
        &format!("/v1/streams/{t}/events?limit=2"),
        deleting,
    )
    .await;
    assert_eq!(
        ids(&history, "event_type"),
        vec!["TenantCreated", "AnnotationSet"]
    );
    assert!(history["next"].is_string());
    // A command name is not an event type.
    assert_eq!(
        app.get(&admin, "/v1/audit?event_type=UpdateTenant")
            .await
            .status,
        400
    );
    let updates = read_ok(&app, &admin, "/v1/audit?event_type=TenantUpdated", deleting).await;
    assert_eq!(ids(&updates, "stream_id"), vec![t.clone()]);
    assert!(updates["items"][0]["actor"].is_string());
    assert!(updates["items"][0]["command_id"].is_string());
}

#[tokio::test]
async fn a_standby_projector_takes_over_when_the_active_one_stops() {
    use plinth_projections::read::{run_projectors_with, RunnerConfig};
    let app = spawn_app().await;
    let config = RunnerConfig {
        takeover_interval: std::time::Duration::from_millis(200),
        ..RunnerConfig::default()
    };
    let (stop_a, stopped_a) = tokio::sync::oneshot::channel::<()>();
    let a = tokio::spawn(run_projectors_with(
        app.db.pool.clone(),
        config.clone(),
        async {
            let _ = stopped_a.await;
        },
    ));
    let admin = app.admin();
    let (t, p) = run(&app, &admin, "CreateTenant", json!({"name": "first"})).await;
    read_ok(&app, &admin, &format!("/v1/tenants/{t}"), p).await;
    // B starts while A holds every projection: it stands by.
    tokio::spawn(run_projectors_with(
        app.db.pool.clone(),
        config,
        std::future::pending(),
    ));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let holders = app
        .db
        .pool
        .get()
        .await
        .unwrap()
        .query_one(
            "select count(distinct pid) from pg_locks
             where locktype = 'advisory' and granted
               and database = (select oid from pg_database where datname = current_database())",
            &[],
        )
        .await
        .unwrap()
        .get::<_, i64>(0);
    assert_eq!(holders, 1, "one process holds the projections");
    stop_a.send(()).unwrap();
    a.await.unwrap().unwrap();
    // B takes over from A's checkpoints: new events still reach the read models.
    let (t2, p2) = run(
        &app,
        &admin,
        "CreateTenant",
        json!({"name": "second", "parent_id": t}),
    )
    .await;
    let child = read_ok(&app, &admin, &format!("/v1/tenants/{t2}"), p2).await;
    assert_eq!(child["parent_id"], t.as_str());
}

#[tokio::test]
async fn a_rebuild_swaps_in_equal_read_models_while_queries_are_served() {
    let app = app().await;
    let admin = app.admin();
    let (root, _) = run(&app, &admin, "CreateTenant", json!({"name": "root"})).await;
    let mut at = 0;
    for i in 0..20 {
        let (t, _) = run(
            &app,
            &admin,
            "CreateTenant",
            json!({"name": format!("t{i}"), "parent_id": root}),
        )
        .await;
        (_, at) = run(
            &app,
            &admin,
            "SetAnnotation",
            json!({"resource_id": t, "key": "k", "value": format!("{i}")}),
        )
        .await;
    }
    let before = read_ok(&app, &admin, &format!("/v1/tenants/{root}/descendants"), at).await;
    let pool = app.db.pool.clone();
    let rebuild = tokio::spawn(async move {
        plinth_projections::read::rebuild(
            &pool,
            plinth_projections::read::ProjectionSet::all(),
            |_| {},
        )
        .await
    });
    // Reads keep answering, with the same answer, before, during and after the swap.
    while !rebuild.is_finished() {
        let during = read_ok(&app, &admin, &format!("/v1/tenants/{root}/descendants"), at).await;
        assert_eq!(during, before);
    }
    let report = rebuild.await.unwrap().unwrap();
    assert!(report.events >= 41, "{report:?}");
    assert_eq!(
        read_ok(&app, &admin, &format!("/v1/tenants/{root}/descendants"), at).await,
        before
    );
    // The live projector goes on from the rebuilt checkpoint.
    let (late, p) = run(
        &app,
        &admin,
        "CreateTenant",
        json!({"name": "late", "parent_id": root}),
    )
    .await;
    let after = read_ok(
        &app,
        &admin,
        &format!("/v1/tenants/{root}/children?limit=1000"),
        p,
    )
    .await;
    assert!(ids(&after, "id").contains(&late));
}

#[tokio::test]
async fn notifications_wake_the_projector_without_waiting_for_the_poll() {
    use plinth_projections::read::{run_projectors_with, RunnerConfig};
    let _horizon = HORIZON.read().await;
    let app = spawn_app().await;
    // A poll far beyond the read-your-writes bound: only LISTEN/NOTIFY can make these reads.
    let config = RunnerConfig {
        poll_interval: std::time::Duration::from_secs(3600),
        ..RunnerConfig::default()
    };
    tokio::spawn(run_projectors_with(
        app.db.pool.clone(),
        config,
        std::future::pending(),
    ));
    let admin = app.admin();
    let (root, _) = run(&app, &admin, "CreateTenant", json!({"name": "root"})).await;
    for i in 0..5 {
        let started = std::time::Instant::now();
        let (t, p) = run(
            &app,
            &admin,
            "CreateTenant",
            json!({"name": format!("n{i}"), "parent_id": root}),
        )
        .await;
        read_ok(&app, &admin, &format!("/v1/tenants/{t}"), p).await;
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }
}

#[tokio::test]
async fn a_notified_event_hidden_behind_an_older_transaction_is_applied_without_waiting_for_the_poll(
) {
    use plinth_projections::read::{run_projectors_with, RunnerConfig};
    let _horizon = HORIZON.write().await;
    let app = spawn_app().await;
    let config = RunnerConfig {
        poll_interval: std::time::Duration::from_secs(3600),
        ..RunnerConfig::default()
    };
    tokio::spawn(run_projectors_with(
        app.db.pool.clone(),
        config,
        std::future::pending(),
    ));
    let admin = app.admin();
    let (root, p) = run(&app, &admin, "CreateTenant", json!({"name": "root"})).await;
    // Setup, not the claim: in two cold CI runs (fresh clone, first suite after the build) this
    // first read was still 503 after 3 s, never in warm runs; why is open (see issue 11's
    // notes). Retried as a client honouring `Retry-After` would, for up to 30 s.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while read(&app, &admin, &format!("/v1/tenants/{root}"), p)
        .await
        .status
        == 503
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the projector never started"
        );
    }
    for i in 0..3 {
        // An older transaction with an id, writing no event (so never notifying): while it
        // runs, the gap-safe tail hides every event committed after it started.
        let mut older = app.db.pool.get().await.unwrap();
        let older = older.transaction().await.unwrap();
        older
            .query_one("select pg_current_xact_id()", &[])
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let (t, p) = run(
            &app,
            &admin,
            "CreateTenant",
            json!({"name": format!("n{i}"), "parent_id": root}),
        )
        .await;
        // The notification has come and gone, the event is still hidden; then it shows,
        // with nothing to announce it: only the runner's own re-reads can find it in time.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        older.commit().await.unwrap();
        read_ok(&app, &admin, &format!("/v1/tenants/{t}"), p).await;
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }
}

/// Every page of `GET path` from the start (or from `after`), following `next`: the items, and
/// the last cursor handed out.
async fn pages(
    app: &TestApp,
    token: &str,
    path: &str,
    mut after: Option<String>,
) -> (Vec<Value>, Option<String>) {
    let mut items = Vec::new();
    loop {
        let cursor = after
            .as_deref()
            .map(|c| format!("&after={c}"))
            .unwrap_or_default();
        let page = app.get(token, &format!("{path}{cursor}")).await;
        assert_eq!(page.status, 200, "{page:?}");
        items.extend(page.body["items"].as_array().unwrap().iter().cloned());
        match page.body["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => return (items, after),
        }
    }
}

#[tokio::test]
async fn audit_pages_never_skip_an_event_that_commits_after_a_later_page_was_read() {
    let _horizon = HORIZON.write().await;
    let app = spawn_app().await;
    let admin = app.admin();
    for i in 0..3 {
        app.ok(
            &admin,
            "CreateTenant",
            json!({"name": format!("before{i}")}),
        )
        .await;
    }
    // A writer that appended and has not committed yet: its event has a lower position than
    // everything committed after it.
    let mut late = app.db.pool.get().await.unwrap();
    let late = late.transaction().await.unwrap();
    let late_id = uuid::Uuid::now_v7();
    late.execute(
        "insert into events (event_id, stream_id, stream_version, event_type, schema_version,
                             data, metadata, recorded_at, hash)
         values ($1, 'late-stream', 1, 'Test', 1, '{}',
                 json_build_object('command_id', $1::uuid, 'correlation_id', $1::uuid, 'causation_id', $1::uuid),
                 now(), '\\x00')",
        &[&late_id],
    )
    .await
    .unwrap();
    for i in 0..3 {
        app.ok(&admin, "CreateTenant", json!({"name": format!("after{i}")}))
            .await;
    }
    // A reader pages as far as the log goes, then the late writer commits, then the reader
    // goes on from the last cursor it was given.
    let (mut seen, cursor) = pages(&app, &admin, "/v1/audit?limit=1", None).await;
    late.commit().await.unwrap();
    let client = app.db.pool.get().await.unwrap();
    // Pages show events once no older transaction that can write this database's log runs
    // (`log_horizon`, ADR 0023): wait for that, as any reader of the log does.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !client
        .query_one(
            "select bool_and(tx < (select log_horizon(pg_current_snapshot()))) from events",
            &[],
        )
        .await
        .unwrap()
        .get::<_, bool>(0)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the log never settled"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    seen.extend(pages(&app, &admin, "/v1/audit?limit=1", cursor).await.0);
    let seen: std::collections::HashSet<String> = seen
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_owned())
        .collect();
    let all: std::collections::HashSet<String> = client
        .query("select event_id::text from events", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        seen.contains(&late_id.to_string()),
        "the late event was skipped"
    );
    assert_eq!(seen, all);
}

#[tokio::test]
async fn audit_filters_by_stream_and_by_correlation_id() {
    let app = app().await;
    let admin = app.admin();
    let correlation = uuid::Uuid::now_v7().to_string();
    let correlated = |command_type: &str, data: Value| {
        let body = json!({"type": command_type, "data": data}).to_string();
        let (app, admin, correlation) = (&app, &admin, &correlation);
        async move {
            let reply = app
                .post_raw(admin, body, &[("x-correlation-id", correlation)])
                .await;
            assert_eq!(reply.status, 201, "{reply:?}");
            reply.body["stream_id"].as_str().unwrap().to_owned()
        }
    };
    let a = correlated("CreateTenant", json!({"name": "a"})).await;
    app.ok(
        &admin,
        "UpdateTenant",
        json!({"tenant_id": a, "description": "changed"}),
    )
    .await;
    let b = correlated("CreateTenant", json!({"name": "b"})).await;
    let (_, last) = run(&app, &admin, "CreateTenant", json!({"name": "c"})).await;
    // Once the projectors have applied the last event, the log shows every event before it.
    read_ok(&app, &admin, "/v1/tenants", last).await;

    let stream = pages(
        &app,
        &admin,
        &format!("/v1/audit?stream_id={a}&limit=1"),
        None,
    )
    .await
    .0;
    let of = |items: &[Value], field: &str| -> Vec<String> {
        items
            .iter()
            .map(|e| e[field].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        of(&stream, "event_type"),
        ["TenantCreated", "TenantUpdated"]
    );
    assert!(of(&stream, "stream_id").iter().all(|s| *s == a));

    let by_correlation = pages(
        &app,
        &admin,
        &format!("/v1/audit?correlation_id={correlation}"),
        None,
    )
    .await
    .0;
    assert_eq!(of(&by_correlation, "stream_id"), [a.clone(), b]);
    assert!(of(&by_correlation, "correlation_id")
        .iter()
        .all(|c| *c == correlation));

    let both = pages(
        &app,
        &admin,
        &format!("/v1/audit?stream_id={a}&correlation_id={correlation}"),
        None,
    )
    .await
    .0;
    assert_eq!(of(&both, "event_type"), ["TenantCreated"]);

    for bad in ["correlation_id=not-a-uuid", "stream_id=nonsense"] {
        let reply = app.get(&admin, &format!("/v1/audit?{bad}")).await;
        assert_eq!(reply.status, 400, "{bad}: {reply:?}");
    }
}

#[tokio::test]
async fn openapi_lists_every_read_route() {
    let app = spawn_app().await;
    let doc = app.get(&app.admin(), "/openapi.json").await;
    assert_eq!(doc.status, 200);
    for path in [
        "/v1/tenants/{id}/descendants",
        "/v1/access/check",
        "/v1/audit",
        "/v1/streams/{id}/events",
    ] {
        assert!(doc.body["paths"][path]["get"].is_object(), "{path}");
    }
}
