//! Resource providers as principals: a service whose (issuer, subject) is bound to a resource
//! provider signs in at the real OpenID provider (client credentials) and acts as it.

use serde_json::{json, Value};

use super::{spawn_trusting, Provider, AUDIENCE};
use crate::support::{all_events, TestApp};

/// The client whose tokens the tests bind, and a second one (a rotated-in credential).
const SERVICE: &str = "plinth-service";
const ROTATED: &str = "plinth-service-es256";

struct Setup {
    app: TestApp,
    provider: Provider,
    /// A platform administrator's token (a person, `carol`).
    root: String,
    tenant: String,
    rp: String,
}

/// Plinth trusting the shared issuer, a tenant owning a resource provider.
async fn setup() -> Setup {
    let provider = Provider::shared();
    let admin = format!("{}|carol", provider.url);
    let app = spawn_trusting(|s| s.platform_admins = vec![admin]).await;
    // Test apps run no projectors; the reads below need them.
    tokio::spawn(plinth_projections::read::run_projectors(
        app.db.pool.clone(),
        std::future::pending(),
    ));
    let root = provider
        .person_token(&provider.url, "carol", AUDIENCE)
        .await;
    let tenant = app
        .ok(&root, "CreateTenant", json!({"name": "Sarah Corp"}))
        .await;
    let rp = app
        .ok(
            &root,
            "CreateResourceProvider",
            json!({"tenant_id": tenant, "name": "LB",
                   "scopes": ["loadbalancer:*", "status:write", "finalizer:write"]}),
        )
        .await;
    Setup {
        app,
        provider,
        root,
        tenant,
        rp,
    }
}

impl Setup {
    fn identity(&self, subject: &str) -> serde_json::Value {
        json!({"resource_provider_id": self.rp, "issuer": self.provider.url, "subject": subject})
    }

    async fn service_token(&self, client: &str) -> String {
        self.provider
            .service_token(&self.provider.url, client, AUDIENCE)
            .await
    }
}

#[tokio::test]
async fn a_bound_service_is_the_resource_provider_and_its_events_name_it_as_actor() {
    let s = setup().await;
    for client in [SERVICE, ROTATED] {
        s.app
            .ok(&s.root, "BindResourceProviderIdentity", s.identity(client))
            .await;
    }
    let token = s.service_token(SERVICE).await;
    let me = s.app.get(&token, "/v1/me").await;
    assert_eq!(me.status, 200, "{me:?}");
    assert_eq!(me.body["id"], s.rp.as_str(), "{me:?}");
    assert_eq!(me.body["kind"], "resource_provider");
    assert_eq!(me.body["subject"], SERVICE);
    assert_eq!(me.body["platform_admin"], false);

    // The provider retires its rotated-out credential itself: the event names it as actor.
    let unbound = s
        .app
        .command(
            &token,
            "UnbindResourceProviderIdentity",
            s.identity(ROTATED),
        )
        .await;
    assert_eq!(unbound.status, 201, "{unbound:?}");
    let audit = s
        .app
        .get(
            &s.root,
            &format!(
                "/v1/audit?actor={}&min_position={}",
                s.rp, unbound.body["position"]
            ),
        )
        .await;
    assert_eq!(audit.status, 200, "{audit:?}");
    let types: Vec<&str> = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["ResourceProviderIdentityUnbound"], "{audit:?}");
    assert_eq!(audit.body["items"][0]["actor"], s.rp.as_str());

    // The retired credential's token is refused, and it is not taken for a person.
    let retired = s.service_token(ROTATED).await;
    let me = s.app.get(&retired, "/v1/me").await;
    super::assert_unauthenticated(&me, "an unbound identity");
    // The resource provider's reads show the identity still bound, and only it.
    let read = s
        .app
        .get(
            &s.root,
            &format!(
                "/v1/resource-providers/{}?min_position={}",
                s.rp, unbound.body["position"]
            ),
        )
        .await;
    assert_eq!(read.status, 200, "{read:?}");
    assert_eq!(
        read.body["identities"],
        json!([{"issuer": s.provider.url, "subject": SERVICE}]),
        "{read:?}"
    );
    // No UserCreated for either service: never recorded as a person.
    let users: Vec<String> = all_events(&s.app.db.pool)
        .await
        .into_iter()
        .filter(|e| e.event_type == "UserCreated")
        .map(|e| e.data)
        .collect();
    assert_eq!(users.len(), 1, "only carol: {users:?}");
    assert!(users[0].contains("\"carol\""), "{users:?}");
}

#[tokio::test]
async fn unbinding_stops_the_next_command_and_a_person_is_never_bound() {
    let s = setup().await;
    s.app
        .ok(&s.root, "BindResourceProviderIdentity", s.identity(SERVICE))
        .await;
    s.app
        .ok(&s.root, "BindResourceProviderIdentity", s.identity(ROTATED))
        .await;
    let token = s.service_token(SERVICE).await;
    assert_eq!(s.app.get(&token, "/v1/me").await.status, 200);
    s.app
        .ok(
            &s.root,
            "UnbindResourceProviderIdentity",
            s.identity(SERVICE),
        )
        .await;
    // The same token, still valid at the issuer, acts no more.
    let refused = s
        .app
        .command(
            &token,
            "UnbindResourceProviderIdentity",
            s.identity(ROTATED),
        )
        .await;
    super::assert_unauthenticated(&refused, "a token of an unbound identity");

    // Someone who signed in as a person cannot be bound.
    let alice = s
        .provider
        .person_token(&s.provider.url, "alice", AUDIENCE)
        .await;
    assert_eq!(s.app.get(&alice, "/v1/me").await.status, 200);
    let refused = s
        .app
        .command(&s.root, "BindResourceProviderIdentity", s.identity("alice"))
        .await;
    assert_eq!(refused.status, 409, "{refused:?}");
    assert_eq!(
        refused.body["type"], "urn:plinth:problem:identity-is-a-person",
        "{refused:?}"
    );
    // A bound provider is nobody's admin: it cannot bind identities, even to itself.
    let rotated = s.service_token(ROTATED).await;
    let refused = s
        .app
        .command(
            &rotated,
            "BindResourceProviderIdentity",
            s.identity("other"),
        )
        .await;
    assert_eq!(refused.status, 403, "{refused:?}");
    // A blank subject is a 400 before anything is decided.
    let bad = s
        .app
        .command(&s.root, "BindResourceProviderIdentity", s.identity("  "))
        .await;
    assert_eq!(bad.status, 400, "{bad:?}");
}

/// `GET /api/v1/allow?resource=&action=` as the caller of `token`: its status.
async fn allow(s: &Setup, token: &str, resource: &str, action: &str, at: &Value) -> u16 {
    let reply = s
        .app
        .get(
            token,
            &format!("/api/v1/allow?resource={resource}&action={action}&min_position={at}"),
        )
        .await;
    if reply.status == 200 {
        assert_eq!(reply.body, json!({}), "{reply:?}");
    }
    reply.status
}

/// `POST /api/v1/allow` with `{"actions": [...]}`.
async fn allow_all(s: &Setup, token: &str, actions: Value) -> crate::support::Reply {
    let response = reqwest::Client::new()
        .post(format!("http://{}/api/v1/allow", s.app.app.address))
        .bearer_auth(token)
        .json(&json!({ "actions": actions }))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    crate::support::Reply {
        status,
        content_type: String::new(),
        body,
    }
}

#[tokio::test]
async fn allow_answers_for_people_by_role_and_for_providers_by_their_live_scopes() {
    let s = setup().await;
    let child = s
        .app
        .ok(
            &s.root,
            "CreateTenant",
            json!({"name": "Prod", "parent_id": s.tenant}),
        )
        .await;
    s.app
        .ok(&s.root, "BindResourceProviderIdentity", s.identity(SERVICE))
        .await;
    // A person with a viewer's role reads, and does nothing else.
    let alice = s
        .provider
        .person_token(&s.provider.url, "alice", AUDIENCE)
        .await;
    let alice_id = s.app.get(&alice, "/v1/me").await.body["id"].clone();
    let granted = s
        .app
        .command(
            &s.root,
            "GrantTenantAccess",
            json!({"tenant_id": s.tenant, "user_id": alice_id, "role": "viewer"}),
        )
        .await;
    let at = &granted.body["position"];
    assert_eq!(allow(&s, &alice, &child, "tenant_get", at).await, 200);
    assert_eq!(
        allow(&s, &alice, &child, "loadbalancer_list", at).await,
        200
    );
    assert_eq!(
        allow(&s, &alice, &child, "loadbalancer_create", at).await,
        403
    );
    let granted = s
        .app
        .command(
            &s.root,
            "GrantTenantAccess",
            json!({"tenant_id": s.tenant, "user_id": alice_id, "role": "editor"}),
        )
        .await;
    let at = &granted.body["position"];
    assert_eq!(
        allow(&s, &alice, &child, "loadbalancer_create", at).await,
        200
    );
    assert_eq!(
        allow(&s, &alice, &child, "loadbalancer_failover", at).await,
        403
    );

    // The provider, before it is authorized anywhere: nothing.
    let lb = s.service_token(SERVICE).await;
    assert_eq!(allow(&s, &lb, &child, "loadbalancer_create", at).await, 403);
    let authorized = s
        .app
        .command(
            &s.root,
            "AuthorizeResourceProvider",
            json!({"resource_provider_id": s.rp, "tenant_id": s.tenant, "include_subtenants": true}),
        )
        .await;
    assert_eq!(authorized.status, 201, "{authorized:?}");
    let at = &authorized.body["position"];
    // `loadbalancer:*` allows every `loadbalancer_<verb>`, in the tenant and below; nothing else.
    assert_eq!(allow(&s, &lb, &child, "loadbalancer_create", at).await, 200);
    assert_eq!(
        allow(&s, &lb, &s.tenant, "loadbalancer_failover", at).await,
        200
    );
    assert_eq!(allow(&s, &lb, &child, "network_get", at).await, 403);
    let all = allow_all(
        &s,
        &lb,
        json!([{"resource_id": child, "action": "loadbalancer_get"},
               {"resource_id": s.tenant, "action": "loadbalancer_delete"}]),
    )
    .await;
    assert_eq!((all.status, &all.body), (200, &json!({})), "{all:?}");
    let one_denied = allow_all(
        &s,
        &lb,
        json!([{"resource_id": child, "action": "loadbalancer_get"},
               {"resource_id": child, "action": "network_get"}]),
    )
    .await;
    assert_eq!(one_denied.status, 403, "{one_denied:?}");

    // The bulk form answers each check, in order, allowed or not.
    let response = reqwest::Client::new()
        .post(format!("http://{}/api/v1/allow/bulk", s.app.app.address))
        .bearer_auth(&lb)
        .json(
            &json!([{"resource_id": child, "action": "loadbalancer_get"},
                      {"resource_id": child, "action": "network_get"}]),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answers: Value = response.json().await.unwrap();
    assert_eq!(
        answers,
        json!([{"resource_id": child, "action": "loadbalancer_get", "allowed": true},
               {"resource_id": child, "action": "network_get", "allowed": false}])
    );

    // Revoked, the next check says no.
    let revoked = s
        .app
        .command(
            &s.root,
            "RevokeResourceProviderAuthorization",
            json!({"resource_provider_id": s.rp, "tenant_id": s.tenant}),
        )
        .await;
    let at = &revoked.body["position"];
    assert_eq!(allow(&s, &lb, &child, "loadbalancer_create", at).await, 403);

    // Bad input is a 400; an id of nothing is a denial like any other.
    let zero = json!(0);
    assert_eq!(
        allow(&s, &s.root, "not-an-id", "tenant_get", &zero).await,
        400
    );
    assert_eq!(
        allow(
            &s,
            &s.root,
            "loadbal-1aaaaaaaaaaaaaaaaaaaa",
            "tenant_get",
            &zero
        )
        .await,
        400
    );
    assert_eq!(allow(&s, &s.root, &child, "tenant", &zero).await, 400);
    assert_eq!(allow(&s, &s.root, &child, "Tenant_get", &zero).await, 400);
    let missing = plinth_domain::TenantId::generate().to_string();
    assert_eq!(allow(&s, &s.root, &missing, "tenant_get", &zero).await, 403);
    assert_eq!(
        allow(&s, &s.root, &child, "tenant_delete", &zero).await,
        200
    );
    assert_eq!(allow_all(&s, &s.root, json!([])).await.status, 400);
    let bad = allow_all(&s, &s.root, json!([{"resource_id": child, "action": "x"}])).await;
    assert_eq!(bad.status, 400, "{bad:?}");
}

#[tokio::test]
async fn a_provider_writes_its_own_status_while_authorized_and_the_event_names_it() {
    let s = setup().await;
    s.app
        .ok(&s.root, "BindResourceProviderIdentity", s.identity(SERVICE))
        .await;
    let location = s
        .app
        .ok(
            &s.root,
            "CreateLocation",
            json!({"tenant_id": s.tenant, "name": "L"}),
        )
        .await;
    let lb = s.service_token(SERVICE).await;
    let own = format!("example.com/{}.health", s.rp);
    let status =
        |source: &str| json!({"resource_id": location, "source": source, "data": {"up": 3}});
    // Not authorized yet.
    let refused = s.app.command(&lb, "SetStatus", status(&own)).await;
    assert_eq!(refused.status, 403, "{refused:?}");
    assert_eq!(refused.body["type"], "urn:plinth:problem:scope-not-held");
    s.app
        .ok(
            &s.root,
            "AuthorizeResourceProvider",
            json!({"resource_provider_id": s.rp, "tenant_id": s.tenant,
                   "scopes": ["status:write"]}),
        )
        .await;
    let set = s.app.command(&lb, "SetStatus", status(&own)).await;
    assert_eq!(set.status, 201, "{set:?}");
    let events = all_events(&s.app.db.pool).await;
    let recorded = events.iter().find(|e| e.event_type == "StatusSet").unwrap();
    assert_eq!(recorded.metadata.actor.as_deref(), Some(s.rp.as_str()));
    // Only under its own name, only what the scope covers.
    let refused = s
        .app
        .command(&lb, "SetStatus", status("example.com/health"))
        .await;
    assert_eq!(
        refused.body["type"], "urn:plinth:problem:not-own-name",
        "{refused:?}"
    );
    let refused = s
        .app
        .command(
            &lb,
            "AddFinalizer",
            json!({"resource_id": location, "finalizer": own}),
        )
        .await;
    assert_eq!(
        refused.body["type"], "urn:plinth:problem:scope-not-held",
        "{refused:?}"
    );
    // Revoked: the next command is refused.
    s.app
        .ok(
            &s.root,
            "RevokeResourceProviderAuthorization",
            json!({"resource_provider_id": s.rp, "tenant_id": s.tenant}),
        )
        .await;
    let refused = s
        .app
        .command(
            &lb,
            "RemoveStatus",
            json!({"resource_id": location, "source": own}),
        )
        .await;
    assert_eq!(refused.status, 403, "{refused:?}");
    assert_eq!(refused.body["type"], "urn:plinth:problem:scope-not-held");
}
