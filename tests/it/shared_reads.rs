//! Shared resources read where they are usable, providers, and who may do what: the seed's
//! story read back by the tenants it is told from.

use serde_json::{json, Value};

use crate::read_side::{app, ids, read, read_ok, run};
use crate::support::TestApp;

/// Tenant-100 owns Location-NY, Location-LA, a resource provider and two providers; NY is
/// available to Tenant-200 with its sub-tenants, and the resource provider to Tenant-200 alone.
/// Both are also available to Tenant-250, Tenant-200's sibling: the owner's other grants.
struct Seed {
    t100: String,
    t200: String,
    t250: String,
    t300: String,
    ny: String,
    la: String,
    rp: String,
    foo: String,
    bar: String,
}

async fn seed(app: &TestApp) -> Seed {
    let admin = app.admin();
    let tenant = |name: &'static str, parent: Option<String>| {
        let admin = admin.clone();
        async move {
            let data = match parent {
                Some(p) => json!({"name": name, "parent_id": p}),
                None => json!({"name": name}),
            };
            run(app, &admin, "CreateTenant", data).await.0
        }
    };
    let t100 = tenant("Tenant-100", None).await;
    let t200 = tenant("Tenant-200", Some(t100.clone())).await;
    let t250 = tenant("Tenant-250", Some(t100.clone())).await;
    let t300 = tenant("Tenant-300", Some(t200.clone())).await;
    let location = |name: &'static str| {
        let (admin, t100) = (admin.clone(), t100.clone());
        async move {
            run(
                app,
                &admin,
                "CreateLocation",
                json!({"tenant_id": t100, "name": name, "description": format!("{name} zone")}),
            )
            .await
            .0
        }
    };
    let ny = location("Location-NY").await;
    let la = location("Location-LA").await;
    let (rp, _) = run(
        app,
        &admin,
        "CreateResourceProvider",
        json!({"tenant_id": t100, "name": "Resource-Provider-LoadBalancers",
               "description": "load balancers", "scopes": ["loadbalancer:*", "network:read"]}),
    )
    .await;
    let mut providers = Vec::new();
    for name in ["LB-Provider-Foo", "LB-Provider-Bar"] {
        let (p, _) = run(
            app,
            &admin,
            "RegisterProvider",
            json!({"tenant_id": t100, "resource_provider_id": rp, "name": name}),
        )
        .await;
        providers.push(p);
    }
    for (command, field, id) in [
        ("MakeLocationAvailable", "location_id", &ny),
        ("MakeResourceProviderAvailable", "resource_provider_id", &rp),
    ] {
        run(
            app,
            &admin,
            command,
            json!({field: id, "tenant_id": t200, "include_subtenants": command == "MakeLocationAvailable"}),
        )
        .await;
        run(app, &admin, command, json!({field: id, "tenant_id": t250})).await;
    }
    run(
        app,
        &admin,
        "AddResourceProviderLocation",
        json!({"resource_provider_id": rp, "location_id": ny}),
    )
    .await;
    Seed {
        t100,
        t200,
        t250,
        t300,
        ny,
        la,
        rp,
        bar: providers.pop().unwrap(),
        foo: providers.pop().unwrap(),
    }
}

/// A user with `role` on `tenant`; returns its token and the position of the grant.
async fn member(app: &TestApp, subject: &str, tenant: &str, role: &str) -> (String, i64) {
    let user = app.user(subject).await;
    let (_, at) = run(
        app,
        &app.admin(),
        "GrantTenantAccess",
        json!({"tenant_id": tenant, "user_id": user, "role": role}),
    )
    .await;
    (app.token(subject), at)
}

async fn status(app: &TestApp, token: &str, path: &str, at: i64) -> u16 {
    read(app, token, path, at).await.status
}

fn availability(view: &Value) -> Value {
    view["available_to"].clone()
}

#[tokio::test]
async fn every_role_of_a_consumer_tenant_reads_what_is_available_to_it_and_nothing_more() {
    let app = app().await;
    let s = seed(&app).await;
    for role in ["viewer", "editor", "admin"] {
        let (token, at) = member(&app, &format!("t200-{role}"), &s.t200, role).await;

        let ny = read_ok(&app, &token, &format!("/v1/locations/{}", s.ny), at).await;
        assert_eq!(ny["name"], "Location-NY", "{role}");
        assert_eq!(ny["description"], "Location-NY zone");
        assert_eq!(ny["tenant_id"], s.t100.as_str());
        // Only its own availability, not the one given to its sibling Tenant-250.
        assert_eq!(
            availability(&ny),
            json!([{"tenant_id": s.t200, "include_subtenants": true}]),
            "{role}"
        );
        assert!(ny["metadata"]["annotations"].is_object());

        let rp = read_ok(
            &app,
            &token,
            &format!("/v1/resource-providers/{}", s.rp),
            at,
        )
        .await;
        assert_eq!(rp["name"], "Resource-Provider-LoadBalancers");
        assert_eq!(rp["description"], "load balancers");
        assert_eq!(rp["tenant_id"], s.t100.as_str());
        assert_eq!(rp["locations"], json!([s.ny]));
        assert_eq!(
            availability(&rp),
            json!([{"tenant_id": s.t200, "include_subtenants": false}])
        );

        // Not available to it, or the owner's business: 404 as if it did not exist.
        for path in [
            format!("/v1/locations/{}", s.la),
            format!("/v1/locations/{}/tenants", s.ny),
            format!("/v1/resource-providers/{}/tenants", s.rp),
            format!("/v1/tenants/{}", s.t100),
            format!("/v1/tenants/{}", s.t250),
        ] {
            assert_eq!(status(&app, &token, &path, at).await, 404, "{role}: {path}");
        }
    }
}

#[tokio::test]
async fn include_subtenants_reaches_a_sub_tenant_and_strangers_see_nothing() {
    let app = app().await;
    let s = seed(&app).await;
    // Tenant-300 is below Tenant-200: NY reaches it (include_subtenants), the resource
    // provider does not (given to Tenant-200 alone).
    let (t300, at) = member(&app, "t300-viewer", &s.t300, "viewer").await;
    let ny = read_ok(&app, &t300, &format!("/v1/locations/{}", s.ny), at).await;
    assert_eq!(
        availability(&ny),
        json!([{"tenant_id": s.t200, "include_subtenants": true}])
    );
    for path in [
        format!("/v1/resource-providers/{}", s.rp),
        format!("/v1/providers/{}", s.foo),
        format!("/v1/resource-providers/{}/providers", s.rp),
    ] {
        assert_eq!(status(&app, &t300, &path, at).await, 404, "{path}");
    }

    // A user with no grant at all sees none of it.
    let nobody = app.token("nobody");
    app.user("nobody").await;
    for path in [
        format!("/v1/locations/{}", s.ny),
        format!("/v1/resource-providers/{}", s.rp),
        format!("/v1/providers/{}", s.foo),
        format!("/v1/resource-providers/{}/providers", s.rp),
        format!("/v1/tenants/{}/providers", s.t200),
    ] {
        assert_eq!(status(&app, &nobody, &path, at).await, 404, "{path}");
    }

    // The owner's readers see every entry.
    let (owner, at) = member(&app, "t100-viewer", &s.t100, "viewer").await;
    let ny = read_ok(&app, &owner, &format!("/v1/locations/{}", s.ny), at).await;
    assert_eq!(availability(&ny).as_array().unwrap().len(), 2);
    let tenants = read_ok(&app, &owner, &format!("/v1/locations/{}/tenants", s.ny), at).await;
    assert!(ids(&tenants, "tenant_id").contains(&s.t250));
}

#[tokio::test]
async fn providers_read_by_their_owner_and_by_the_consumers_of_their_resource_provider() {
    let app = app().await;
    let s = seed(&app).await;
    let (consumer, at) = member(&app, "t200-viewer", &s.t200, "viewer").await;

    let foo = read_ok(&app, &consumer, &format!("/v1/providers/{}", s.foo), at).await;
    assert_eq!(foo["name"], "LB-Provider-Foo");
    assert_eq!(foo["tenant_id"], s.t100.as_str());
    assert_eq!(foo["resource_provider_id"], s.rp.as_str());
    assert_eq!(foo["lifecycle"], "live");
    assert_eq!(foo["metadata"]["finalizers"], json!([]));

    let using = read_ok(
        &app,
        &consumer,
        &format!("/v1/resource-providers/{}/providers", s.rp),
        at,
    )
    .await;
    assert_eq!(ids(&using, "id"), vec![s.foo.clone(), s.bar.clone()]);

    let usable = read_ok(
        &app,
        &consumer,
        &format!("/v1/tenants/{}/providers", s.t200),
        at,
    )
    .await;
    assert_eq!(ids(&usable, "id"), vec![s.foo.clone(), s.bar.clone()]);
    assert!(usable["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["via"] == "available"));

    // The owner lists them as its own, a page at a time.
    let admin = app.admin();
    let first = read_ok(
        &app,
        &admin,
        &format!("/v1/tenants/{}/providers?limit=1", s.t100),
        at,
    )
    .await;
    assert_eq!(ids(&first, "id"), vec![s.foo.clone()]);
    assert_eq!(first["items"][0]["via"], "owned");
    let next = first["next"].as_str().unwrap();
    let second = read_ok(
        &app,
        &admin,
        &format!("/v1/tenants/{}/providers?limit=1&after={next}", s.t100),
        at,
    )
    .await;
    assert_eq!(ids(&second, "id"), vec![s.bar.clone()]);
    assert!(second["next"].is_null());

    // Unregistered, it is gone from every list and its GET.
    let (_, gone) = run(
        &app,
        &admin,
        "UnregisterProvider",
        json!({"provider_id": s.bar}),
    )
    .await;
    let using = read_ok(
        &app,
        &consumer,
        &format!("/v1/resource-providers/{}/providers", s.rp),
        gone,
    )
    .await;
    assert_eq!(ids(&using, "id"), vec![s.foo.clone()]);
    assert_eq!(
        status(&app, &admin, &format!("/v1/providers/{}", s.bar), gone).await,
        404
    );
    assert_eq!(
        status(&app, &admin, "/v1/providers/tnntten-notaprovider", gone).await,
        400
    );
}

#[tokio::test]
async fn tenant_admins_list_direct_and_inherited_grants_and_users_read_their_own_roles() {
    let app = app().await;
    let s = seed(&app).await;
    member(&app, "root-viewer", &s.t100, "viewer").await;
    let (t200_admin, _) = member(&app, "t200-admin", &s.t200, "admin").await;
    let (t300_editor, at) = member(&app, "t300-editor", &s.t300, "editor").await;
    let root_viewer_id = app.user("root-viewer").await;
    let editor_id = app.user("t300-editor").await;

    // At Tenant-300: the Tenant-100 viewer and Tenant-200 admin inherited, the editor direct.
    let grants = read_ok(
        &app,
        &t200_admin,
        &format!("/v1/tenants/{}/grants", s.t300),
        at,
    )
    .await;
    let items = grants["items"].as_array().unwrap();
    let summary: Vec<(String, String, bool)> = items
        .iter()
        .map(|g| {
            (
                g["source_tenant_id"].as_str().unwrap().to_owned(),
                g["role"].as_str().unwrap().to_owned(),
                g["inherited"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (s.t100.clone(), "viewer".into(), true),
            (s.t200.clone(), "admin".into(), true),
            (s.t300.clone(), "editor".into(), false),
        ]
    );
    assert_eq!(items[0]["user_id"], root_viewer_id.as_str());
    assert_eq!(items[2]["subject"], "t300-editor");
    // Paginated.
    let page = read_ok(
        &app,
        &t200_admin,
        &format!("/v1/tenants/{}/grants?limit=2", s.t300),
        at,
    )
    .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let rest = read_ok(
        &app,
        &t200_admin,
        &format!(
            "/v1/tenants/{}/grants?limit=2&after={}",
            s.t300,
            page["next"].as_str().unwrap()
        ),
        at,
    )
    .await;
    assert_eq!(rest["items"][0]["subject"], "t300-editor");

    // An editor reads the tenant but may not list who has access; a stranger gets 404.
    let path = format!("/v1/tenants/{}/grants", s.t300);
    assert_eq!(status(&app, &t300_editor, &path, at).await, 403);
    assert_eq!(status(&app, &app.token("stranger"), &path, at).await, 404);

    // The editor's own roles; the effective role takes grants above into account.
    let (_, at) = member(&app, "t300-editor", &s.t100, "viewer").await;
    let roles = read_ok(
        &app,
        &t300_editor,
        &format!("/v1/users/{editor_id}/roles"),
        at,
    )
    .await;
    assert_eq!(
        roles["items"],
        json!([
            {"tenant_id": s.t100, "tenant_name": "Tenant-100", "role": "viewer", "effective_role": "viewer"},
            {"tenant_id": s.t300, "tenant_name": "Tenant-300", "role": "editor", "effective_role": "editor"},
        ])
    );
    // Another user may not read them; a platform administrator may.
    let path = format!("/v1/users/{editor_id}/roles");
    assert_eq!(status(&app, &t200_admin, &path, at).await, 404);
    let by_admin = read_ok(&app, &app.admin(), &path, at).await;
    assert_eq!(by_admin["items"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_sub_tenant_reached_only_by_an_authorization_reads_the_resource_provider_and_its_providers(
) {
    let app = app().await;
    let s = seed(&app).await;
    // The resource provider is available to Tenant-200 alone; Tenant-200 authorizes it for its
    // sub-tenants too, so it acts in Tenant-300.
    let (t200_admin, _) = member(&app, "t200-admin", &s.t200, "admin").await;
    let (t300, before) = member(&app, "t300-viewer", &s.t300, "viewer").await;
    let rp_path = format!("/v1/resource-providers/{}", s.rp);
    assert_eq!(status(&app, &t300, &rp_path, before).await, 404);
    let (_, at) = run(
        &app,
        &t200_admin,
        "AuthorizeResourceProvider",
        json!({"resource_provider_id": s.rp, "tenant_id": s.t200, "include_subtenants": true}),
    )
    .await;
    let rp = read_ok(&app, &t300, &rp_path, at).await;
    assert_eq!(rp["name"], "Resource-Provider-LoadBalancers");
    assert_eq!(
        rp["available_to"],
        json!([]),
        "no entry concerns Tenant-300's own grants"
    );
    let foo = read_ok(&app, &t300, &format!("/v1/providers/{}", s.foo), at).await;
    assert_eq!(foo["name"], "LB-Provider-Foo");

    // Revoking the availability the authorization was given under ends it.
    let (_, revoked) = run(
        &app,
        &app.admin(),
        "RevokeResourceProviderAvailability",
        json!({"resource_provider_id": s.rp, "tenant_id": s.t200}),
    )
    .await;
    assert_eq!(status(&app, &t300, &rp_path, revoked).await, 404);
    assert_eq!(
        status(&app, &t300, &format!("/v1/providers/{}", s.foo), revoked).await,
        404
    );
}
