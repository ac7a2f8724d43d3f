//! Every role on every route: the routes come from `/openapi.json`, so a route added without
//! deciding who may use it fails here ("no rule for …"), and every rule is checked for every
//! role through HTTP.
//!
//! The platform: root R, its child T (owning location L, resource provider RP and its provider
//! P). Roles: nobody (no token), a stranger (a user without grants), a viewer, an editor and an
//! administrator of T, an administrator of R (inherited by T), a platform administrator, and a
//! resource provider signed in with a bound identity (RP itself, authorized nowhere: it holds
//! no role, so it may do what a stranger may).

use std::collections::BTreeMap;

use serde_json::json;

use crate::read_side::app as spawn_app;
use crate::support::TestApp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Role {
    Nobody,
    Stranger,
    Viewer,
    Editor,
    Admin,
    AncestorAdmin,
    PlatformAdmin,
    BoundProvider,
}

const ROLES: [Role; 8] = [
    Role::Nobody,
    Role::Stranger,
    Role::Viewer,
    Role::Editor,
    Role::Admin,
    Role::AncestorAdmin,
    Role::PlatformAdmin,
    Role::BoundProvider,
];

/// Who may do what: the status each role gets.
#[derive(Debug, Clone, Copy)]
enum Rule {
    /// No token needed (operations).
    Public,
    /// Any authenticated user.
    AnyUser,
    /// Whoever may see T (members of T or its ancestors); others get 404, as if nothing existed.
    SeesTenant,
    /// Administrators of T (or above); its other members 403, strangers 404.
    AdministersTenant,
    /// The user itself (the viewer here) and platform administrators; others 404.
    SelfOrPlatform,
    /// `/api/v1/allow` (`tenant_get` on T): 200 for whoever may, 403 for the others.
    Allow,
}

impl Rule {
    fn expected(self, role: Role) -> u16 {
        use Role::*;
        match (self, role) {
            (Rule::Public, _) => 200,
            (_, Nobody) => 401,
            (Rule::AnyUser, _) => 200,
            (Rule::Allow, Stranger | BoundProvider) => 403,
            (Rule::Allow, _) => 200,
            (Rule::SeesTenant | Rule::AdministersTenant, BoundProvider) => 404,
            (Rule::SeesTenant, Stranger) => 404,
            (Rule::SeesTenant, _) => 200,
            (Rule::AdministersTenant, Stranger) => 404,
            (Rule::AdministersTenant, Viewer | Editor) => 403,
            (Rule::AdministersTenant, _) => 200,
            (Rule::SelfOrPlatform, Viewer | PlatformAdmin) => 200,
            (Rule::SelfOrPlatform, _) => 404,
        }
    }
}

/// The rule of each documented read route, and the query it needs.
fn rule_of(path: &str) -> Option<(Rule, &'static str)> {
    Some(match path {
        "/healthz" | "/readyz" | "/openapi.json" => (Rule::Public, ""),
        "/v1/me" | "/v1/tenants" => (Rule::AnyUser, ""),
        "/v1/tenants/{id}/grants" => (Rule::AdministersTenant, ""),
        "/v1/users/{id}/roles" => (Rule::SelfOrPlatform, ""),
        "/v1/tenants/{id}/resources" => (Rule::SeesTenant, "annotation=example.com/k=v"),
        "/v1/access/check" => (Rule::SeesTenant, "ACCESS"),
        "/api/v1/allow" => (Rule::Allow, "resource=T&action=tenant_get"),
        "/v1/audit" => (Rule::SeesTenant, "tenant_id=T"),
        p if p.starts_with("/v1/tenants/{id}")
            || p.starts_with("/v1/locations/{id}")
            || p.starts_with("/v1/resource-providers/{id}")
            || p.starts_with("/v1/providers/{id}")
            || p.starts_with("/v1/resources/{id}")
            || p.starts_with("/v1/streams/{id}") =>
        {
            (Rule::SeesTenant, "")
        }
        _ => return None,
    })
}

struct Platform {
    tenant: String,
    location: String,
    resource_provider: String,
    provider: String,
    viewer_id: String,
    tokens: BTreeMap<Role, Option<String>>,
}

async fn platform(app: &TestApp) -> Platform {
    let admin = app.admin();
    let root = app.ok(&admin, "CreateTenant", json!({"name": "R"})).await;
    let tenant = app
        .ok(
            &admin,
            "CreateTenant",
            json!({"name": "T", "parent_id": root}),
        )
        .await;
    let location = app
        .ok(
            &admin,
            "CreateLocation",
            json!({"tenant_id": tenant, "name": "L"}),
        )
        .await;
    let resource_provider = app
        .ok(
            &admin,
            "CreateResourceProvider",
            json!({"tenant_id": tenant, "name": "RP", "scopes": ["loadbalancer:*"]}),
        )
        .await;
    let provider = app
        .ok(
            &admin,
            "RegisterProvider",
            json!({"tenant_id": tenant, "resource_provider_id": resource_provider, "name": "P"}),
        )
        .await;
    let mut tokens = BTreeMap::new();
    tokens.insert(Role::Nobody, None);
    tokens.insert(Role::PlatformAdmin, Some(admin.clone()));
    app.ok(
        &admin,
        "BindResourceProviderIdentity",
        json!({"resource_provider_id": resource_provider, "issuer": plinth_api::auth::DEV_ISSUER,
               "subject": "rp-service"}),
    )
    .await;
    tokens.insert(Role::BoundProvider, Some(app.token("rp-service")));
    let mut viewer_id = String::new();
    for (role, subject, on, granted) in [
        (Role::Stranger, "stranger", None, ""),
        (Role::Viewer, "viewer", Some(&tenant), "viewer"),
        (Role::Editor, "editor", Some(&tenant), "editor"),
        (Role::Admin, "admin", Some(&tenant), "admin"),
        (Role::AncestorAdmin, "ancestor-admin", Some(&root), "admin"),
    ] {
        let user = app.user(subject).await;
        if let Some(on) = on {
            app.ok(
                &admin,
                "GrantTenantAccess",
                json!({"tenant_id": on, "user_id": user, "role": granted}),
            )
            .await;
        }
        if role == Role::Viewer {
            viewer_id = user;
        }
        tokens.insert(role, Some(app.token(subject)));
    }
    // Every read below sees all of the above (read-your-writes on the last event).
    let last: i64 = app
        .db
        .pool
        .get()
        .await
        .unwrap()
        .query_one("select max(position) from events", &[])
        .await
        .unwrap()
        .get(0);
    let caught_up = app
        .get(&admin, &format!("/v1/tenants?min_position={last}"))
        .await;
    assert_eq!(caught_up.status, 200, "{caught_up:?}");
    Platform {
        tenant,
        location,
        resource_provider,
        provider,
        viewer_id,
        tokens,
    }
}

impl Platform {
    /// The concrete path and query of a route template for this platform.
    fn url(&self, template: &str, query: &str) -> String {
        let id = if template.starts_with("/v1/locations/") {
            &self.location
        } else if template.starts_with("/v1/resource-providers/") {
            &self.resource_provider
        } else if template.starts_with("/v1/providers/") {
            &self.provider
        } else if template.starts_with("/v1/users/") {
            &self.viewer_id
        } else {
            &self.tenant
        };
        let path = template.replace("{id}", id);
        let query = match query {
            "ACCESS" => format!(
                "resource_provider_id={}&tenant_id={}&scope=loadbalancer:create",
                self.resource_provider, self.tenant
            ),
            q => q.replace("=T", &format!("={}", self.tenant)),
        };
        if query.is_empty() {
            path
        } else {
            format!("{path}?{query}")
        }
    }

    /// `url` with each of the platform's ids replaced by a well-formed id of the same kind
    /// that names nothing.
    fn with_missing_ids(&self, url: &str) -> String {
        let ids = [
            &self.tenant,
            &self.location,
            &self.resource_provider,
            &self.provider,
            &self.viewer_id,
        ];
        ids.iter().fold(url.to_owned(), |url, id| {
            url.replace(id.as_str(), &format!("{}-{}", &id[..7], "A".repeat(21)))
        })
    }

    /// A problem body with every id (real or missing) written as `<id>`.
    fn without_ids(&self, body: &str) -> String {
        let missing = self.with_missing_ids(&format!(
            "{} {} {} {} {}",
            self.tenant, self.location, self.resource_provider, self.provider, self.viewer_id
        ));
        missing
            .split(' ')
            .chain([
                self.tenant.as_str(),
                &self.location,
                &self.resource_provider,
                &self.provider,
                &self.viewer_id,
            ])
            .fold(body.to_owned(), |body, id| body.replace(id, "<id>"))
    }
}

async fn get_body(app: &TestApp, token: Option<&str>, url: &str) -> (u16, String) {
    let mut request = app.http.get(format!("{}{url}", app.base));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// The app's `/openapi.json`: where the routes and command types under test come from.
async fn openapi(app: &TestApp) -> serde_json::Value {
    let response = app.http.get(format!("{}/openapi.json", app.base)).send();
    response.await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn every_role_gets_what_its_rule_says_on_every_documented_read_route() {
    let app = spawn_app().await;
    let platform = platform(&app).await;
    let document = openapi(&app).await;
    let mut checked = 0;
    let mut compared = 0;
    let mut wrong = Vec::new();
    for (template, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if method != "get" || template == "/metrics" {
                // POST /v1/commands: the command matrix below. /metrics: not installed in
                // test apps (503); public like /healthz.
                continue;
            }
            let (rule, query) = rule_of(template)
                .unwrap_or_else(|| panic!("no rule for GET {template}: decide who may read it"));
            let url = platform.url(template, query);
            for role in ROLES {
                let token = platform.tokens[&role].as_deref();
                let (got, body) = get_body(&app, token, &url).await;
                let want = rule.expected(role);
                if got != want {
                    wrong.push(format!(
                        "{role:?} GET {url}: {got}, expected {want} ({rule:?})"
                    ));
                } else if got == 404 {
                    // Hidden must look exactly like missing, or ids could be probed.
                    let missing = platform.with_missing_ids(&url);
                    let (status, missing_body) = get_body(&app, token, &missing).await;
                    let (hidden, absent) = (
                        platform.without_ids(&body),
                        platform.without_ids(&missing_body),
                    );
                    compared += 1;
                    if status != 404 || hidden != absent {
                        wrong.push(format!(
                            "{role:?} GET {url}: hidden {hidden} but missing {status} {absent}"
                        ));
                    }
                }
                checked += 1;
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {checked}:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert!(checked > 150, "only {checked} checks");
    assert!(
        compared > 20,
        "only {compared} hidden answers compared with missing ones"
    );
}

/// Who may send a command (design.md): editors manage locations, resource providers,
/// providers, metadata and availability; administrators the tenant itself, sub-tenants, grants
/// and authorizations; roots are the platform's.
#[derive(Debug, Clone, Copy)]
enum May {
    Editors,
    Admins,
    PlatformOnly,
}

impl May {
    fn allows(self, role: Role) -> bool {
        use Role::*;
        match self {
            May::Editors => matches!(role, Editor | Admin | AncestorAdmin | PlatformAdmin),
            May::Admins => matches!(role, Admin | AncestorAdmin | PlatformAdmin),
            May::PlatformOnly => role == PlatformAdmin,
        }
    }
}

/// Fresh objects under T for one cell of the matrix, made by the platform administrator, so
/// that what one role's command changes is not what the next role's command meets.
struct Cell<'a> {
    app: &'a TestApp,
    admin: String,
    tenant: String,
    n: String,
    /// Statuses and finalizers are named `example.com/<own>.…`: a resource provider's id
    /// when one acts (its own names), else `plinth`.
    own: String,
}

impl Cell<'_> {
    async fn ok(&self, command: &str, data: serde_json::Value) -> String {
        self.app.ok(&self.admin, command, data).await
    }

    async fn child(&self) -> String {
        let name = format!("child {}", self.n);
        self.ok(
            "CreateTenant",
            json!({"name": name, "parent_id": self.tenant}),
        )
        .await
    }

    async fn location(&self) -> String {
        let name = format!("loc {}", self.n);
        self.ok(
            "CreateLocation",
            json!({"tenant_id": self.tenant, "name": name}),
        )
        .await
    }

    async fn resource_provider(&self) -> String {
        let name = format!("rp {}", self.n);
        self.ok(
            "CreateResourceProvider",
            json!({"tenant_id": self.tenant, "name": name, "scopes": ["loadbalancer:*"]}),
        )
        .await
    }

    /// The data of `command` against fresh objects, and who may send it.
    async fn case(&self, command: &str) -> (serde_json::Value, May) {
        let t = &self.tenant;
        let n = &self.n;
        match command {
            "CreateTenant" => (json!({"name": n, "parent_id": t}), May::Admins),
            "CreateTenant as a root" => (json!({"name": n}), May::PlatformOnly),
            "UpdateTenant" => (json!({"tenant_id": t, "description": n}), May::Admins),
            "DeleteTenant" => (json!({"tenant_id": self.child().await}), May::Admins),
            "GrantTenantAccess" => {
                let user = self.app.user(&format!("grantee {n}")).await;
                (
                    json!({"tenant_id": t, "user_id": user, "role": "viewer"}),
                    May::Admins,
                )
            }
            "RevokeTenantAccess" => {
                let user = self.app.user(&format!("revokee {n}")).await;
                let grant = json!({"tenant_id": t, "user_id": user, "role": "viewer"});
                self.ok("GrantTenantAccess", grant).await;
                (json!({"tenant_id": t, "user_id": user}), May::Admins)
            }
            "CreateLocation" => (json!({"tenant_id": t, "name": n}), May::Editors),
            "UpdateLocation" => (
                json!({"location_id": self.location().await, "description": n}),
                May::Editors,
            ),
            "DeleteLocation" => (json!({"location_id": self.location().await}), May::Editors),
            "MakeLocationAvailable" => (
                json!({"location_id": self.location().await, "tenant_id": self.child().await,
                       "include_subtenants": true}),
                May::Editors,
            ),
            "RevokeLocationAvailability" => {
                let (location, child) = (self.location().await, self.child().await);
                let available = json!({"location_id": location, "tenant_id": child,
                                       "include_subtenants": true});
                self.ok("MakeLocationAvailable", available).await;
                (
                    json!({"location_id": location, "tenant_id": child}),
                    May::Editors,
                )
            }
            "CreateResourceProvider" => (
                json!({"tenant_id": t, "name": n, "scopes": ["network:read"]}),
                May::Editors,
            ),
            "UpdateResourceProvider" => (
                json!({"resource_provider_id": self.resource_provider().await, "description": n}),
                May::Editors,
            ),
            "DeleteResourceProvider" => (
                json!({"resource_provider_id": self.resource_provider().await}),
                May::Editors,
            ),
            "MakeResourceProviderAvailable" => (
                json!({"resource_provider_id": self.resource_provider().await,
                       "tenant_id": self.child().await, "include_subtenants": true}),
                May::Editors,
            ),
            "RevokeResourceProviderAvailability" => {
                let (rp, child) = (self.resource_provider().await, self.child().await);
                let available = json!({"resource_provider_id": rp, "tenant_id": child,
                                       "include_subtenants": true});
                self.ok("MakeResourceProviderAvailable", available).await;
                (
                    json!({"resource_provider_id": rp, "tenant_id": child}),
                    May::Editors,
                )
            }
            "AddResourceProviderLocation" => (
                json!({"resource_provider_id": self.resource_provider().await,
                       "location_id": self.location().await}),
                May::Editors,
            ),
            "RemoveResourceProviderLocation" => {
                let (rp, location) = (self.resource_provider().await, self.location().await);
                let added = json!({"resource_provider_id": rp, "location_id": location});
                self.ok("AddResourceProviderLocation", added.clone()).await;
                (added, May::Editors)
            }
            "AuthorizeResourceProvider" => {
                let (rp, child) = (self.resource_provider().await, self.child().await);
                let available = json!({"resource_provider_id": rp, "tenant_id": child,
                                       "include_subtenants": true});
                self.ok("MakeResourceProviderAvailable", available).await;
                (
                    json!({"resource_provider_id": rp, "tenant_id": child}),
                    May::Admins,
                )
            }
            "RevokeResourceProviderAuthorization" => {
                let (rp, child) = (self.resource_provider().await, self.child().await);
                let available = json!({"resource_provider_id": rp, "tenant_id": child,
                                       "include_subtenants": true});
                self.ok("MakeResourceProviderAvailable", available).await;
                let authorized = json!({"resource_provider_id": rp, "tenant_id": child});
                self.ok("AuthorizeResourceProvider", authorized.clone())
                    .await;
                (authorized, May::Admins)
            }
            "RegisterProvider" => (
                json!({"tenant_id": t, "resource_provider_id": self.resource_provider().await,
                       "name": n}),
                May::Editors,
            ),
            "UnregisterProvider" => {
                let rp = self.resource_provider().await;
                let provider = self
                    .ok(
                        "RegisterProvider",
                        json!({"tenant_id": t, "resource_provider_id": rp, "name": n}),
                    )
                    .await;
                (json!({"provider_id": provider}), May::Editors)
            }
            "SetAnnotation" | "RemoveAnnotation" => {
                let location = self.location().await;
                let set = json!({"resource_id": location, "key": "example.com/k", "value": n});
                if command == "RemoveAnnotation" {
                    self.ok("SetAnnotation", set).await;
                    let removed = json!({"resource_id": location, "key": "example.com/k"});
                    return (removed, May::Editors);
                }
                (set, May::Editors)
            }
            "SetStatus" | "RemoveStatus" => {
                let location = self.location().await;
                let source = format!("example.com/{}.probe", self.own);
                let set = json!({"resource_id": location, "source": source,
                                 "data": {"ok": true}});
                if command == "RemoveStatus" {
                    self.ok("SetStatus", set).await;
                    let removed = json!({"resource_id": location, "source": source});
                    return (removed, May::Editors);
                }
                (set, May::Editors)
            }
            "AddFinalizer" | "RemoveFinalizer" => {
                let location = self.location().await;
                let finalizer = format!("example.com/{}.f", self.own);
                let added = json!({"resource_id": location, "finalizer": finalizer});
                if command == "RemoveFinalizer" {
                    self.ok("AddFinalizer", added.clone()).await;
                }
                (added, May::Editors)
            }
            "BindResourceProviderIdentity" | "UnbindResourceProviderIdentity" => {
                let identity = json!({"resource_provider_id": self.resource_provider().await,
                                      "issuer": "https://idp.example", "subject": n});
                if command == "UnbindResourceProviderIdentity" {
                    self.ok("BindResourceProviderIdentity", identity.clone())
                        .await;
                }
                (identity, May::Admins)
            }
            other => panic!("no rule for command {other}: decide who may send it"),
        }
    }
}

/// The command types the API documents (the `type` of each `Command` variant).
fn documented_commands(document: &serde_json::Value) -> Vec<String> {
    let mut types = Vec::new();
    collect_command_types(
        &document["components"]["schemas"]["Command"],
        document,
        &mut types,
    );
    types.sort();
    types.dedup();
    types
}

fn collect_command_types(
    schema: &serde_json::Value,
    document: &serde_json::Value,
    out: &mut Vec<String>,
) {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.rsplit('/').next().unwrap();
        return collect_command_types(&document["components"]["schemas"][name], document, out);
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        for variant in schema[key].as_array().into_iter().flatten() {
            collect_command_types(variant, document, out);
        }
    }
    if let Some(properties) = schema["properties"].as_object() {
        if let Some(values) = properties.get("type").and_then(|t| t["enum"].as_array()) {
            out.extend(values.iter().filter_map(|v| v.as_str().map(str::to_owned)));
        }
    }
}

/// Every documented command type × every role: the status each gets (201 when its rule
/// allows, 403 otherwise, 401 without a token), each against fresh objects.
#[tokio::test]
async fn every_role_gets_what_its_rule_says_for_every_command_type() {
    let app = spawn_app().await;
    let p = platform(&app).await;
    let document = openapi(&app).await;
    let commands = documented_commands(&document);
    assert!(
        commands.len() >= 27,
        "the document lists the commands: {commands:?}"
    );
    let admin = p.tokens[&Role::PlatformAdmin].clone().unwrap();
    let mut wrong = Vec::new();
    // Each documented type, and the one type whose rule depends on its data.
    let cases = commands
        .iter()
        .map(String::as_str)
        .chain(["CreateTenant as a root"]);
    for case in cases {
        let command = case.split(' ').next().unwrap();
        for role in ROLES {
            let cell = Cell {
                app: &app,
                admin: admin.clone(),
                tenant: p.tenant.clone(),
                n: format!("{command} {role:?}"),
                own: "plinth".into(),
            };
            let (data, may) = cell.case(case).await;
            let status = match p.tokens[&role].as_deref() {
                Some(token) => app.command(token, command, data.clone()).await.status,
                None => app
                    .http
                    .post(format!("{}/v1/commands", app.base))
                    .json(&json!({"type": command, "data": data}))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16(),
            };
            let want = match role {
                Role::Nobody => 401,
                _ if may.allows(role) => 201,
                _ => 403,
            };
            if status != want {
                wrong.push(format!(
                    "{role:?} {case} {data}: {status}, expected {want} ({may:?})"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// What a bound resource provider may do with the scopes Plinth interprets: exactly the
/// commands its live scope allows, on resources of the tenant it is authorized in, and nothing
/// once the authorization is revoked; no command at all without a scope.
#[tokio::test]
async fn a_resource_provider_gets_what_its_scopes_allow_for_every_command_type() {
    let app = spawn_app().await;
    let admin = app.admin();
    let document = openapi(&app).await;
    let commands = documented_commands(&document);
    let root = app.ok(&admin, "CreateTenant", json!({"name": "R"})).await;
    let mut wrong = Vec::new();
    for (scope, allowed) in [
        ("status:write", ["SetStatus", "RemoveStatus"]),
        ("finalizer:write", ["AddFinalizer", "RemoveFinalizer"]),
    ] {
        // A tenant and a provider of R available to it, its identity bound, per scope.
        let tenant = app
            .ok(
                &admin,
                "CreateTenant",
                json!({"name": scope, "parent_id": root}),
            )
            .await;
        let rp = app
            .ok(
                &admin,
                "CreateResourceProvider",
                json!({"tenant_id": root, "name": scope,
                       "scopes": ["status:write", "finalizer:write", "loadbalancer:*"]}),
            )
            .await;
        let at = json!({"resource_provider_id": rp, "tenant_id": tenant});
        app.ok(&admin, "MakeResourceProviderAvailable", at.clone())
            .await;
        let subject = format!("svc {scope}");
        let identity = json!({"resource_provider_id": rp,
                              "issuer": plinth_api::auth::DEV_ISSUER, "subject": subject});
        app.ok(&admin, "BindResourceProviderIdentity", identity)
            .await;
        let token = app.token(&subject);
        for state in ["without", "with", "after revoking"] {
            match state {
                "with" => {
                    let authorized = json!({"resource_provider_id": rp, "tenant_id": tenant,
                                            "scopes": [scope]});
                    app.ok(&admin, "AuthorizeResourceProvider", authorized)
                        .await;
                }
                "after revoking" => {
                    app.ok(&admin, "RevokeResourceProviderAuthorization", at.clone())
                        .await;
                }
                _ => {}
            }
            for command in &commands {
                let cell = Cell {
                    app: &app,
                    admin: admin.clone(),
                    tenant: tenant.clone(),
                    n: format!("{command} {scope} {state}"),
                    own: rp.clone(),
                };
                let (data, _) = cell.case(command).await;
                let status = app.command(&token, command, data.clone()).await.status;
                let want = if state == "with" && allowed.contains(&command.as_str()) {
                    201
                } else {
                    403
                };
                if status != want {
                    wrong.push(format!(
                        "{scope} {state}: {command} {data}: {status}, expected {want}"
                    ));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
