//! `GET /openapi.json`: the API description (OpenAPI 3.1). Written out by hand from one table
//! so that it stays small and readable; a test checks that every route the router serves is in it.
//! The table's query parameter names are also what each route accepts: any other is a 400
//! (`query_names`).

use axum::Json;
use serde_json::{json, Map, Value};

/// (method, path, summary, query parameters) of every route.
pub(crate) const ROUTES: &[(&str, &str, &str, &[&str])] = &[
    (
        "post",
        "/v1/commands",
        "Submit a command (`Idempotency-Key` header optional)",
        &[],
    ),
    (
        "get",
        "/v1/me",
        "The caller as a user (recorded on first call)",
        &[],
    ),
    (
        "get",
        "/v1/tenants",
        "Root tenants the caller may see",
        &["after", "limit", "min_position"],
    ),
    (
        "get",
        "/v1/tenants/{id}",
        "A tenant with its metadata (temporal with as_of_position / as_of_time)",
        &["min_position", "as_of_position", "as_of_time"],
    ),
    (
        "get",
        "/v1/tenants/{id}/children",
        "Direct sub-tenants",
        &["after", "limit", "min_position"],
    ),
    (
        "get",
        "/v1/tenants/{id}/ancestors",
        "Ancestors, parent first",
        &["after", "limit", "min_position"],
    ),
    (
        "get",
        "/v1/tenants/{id}/descendants",
        "Descendants with depth (as_of_position / as_of_time: 400, not supported)",
        &[
            "max_depth",
            "after",
            "limit",
            "min_position",
            "as_of_position",
            "as_of_time",
        ],
    ),
    (
        "get",
        "/v1/tenants/{id}/locations",
        "Locations usable by the tenant (owned or available)",
        &["after", "limit", "min_position"],
    ),
    (
        "get",
        "/v1/tenants/{id}/resource-providers",
        "Resource providers available in the tenant",
        &["after", "limit", "min_position"],
    ),
    (
        "get",
        "/v1/locations/{id}",
        "A location with its metadata and the availability the caller may know of (temporal with as_of_position / as_of_time)",
        &["min_position", "as_of_position", "as_of_time"],
    ),
    (
        "get",
        "/v1/locations/{id}/tenants",
        "Tenants that may use the location",
        &["after", "limit", "min_position"],
    ),
    (
        "get",
        "/v1/resource-providers/{id}",
        "A resource provider with scopes, live locations, metadata and the availability the caller may know of (temporal too)",
        &["min_position", "as_of_position", "as_of_time"],
    ),
    (
        "get",
        "/v1/resource-providers/{id}/tenants",
        "Tenants where it holds access, with scopes",
        &["after", "limit", "min_position"],
    ),
    (
        "get",
        "/v1/resource-providers/{id}/providers",
        "Providers using the resource provider",
        &["after", "limit", "min_position"],
    ),
    (
        "get",
        "/v1/providers/{id}",
        "A provider with its metadata (readable by its resource provider's consumers too)",
        &["min_position"],
    ),
    (
        "get",
        "/v1/tenants/{id}/providers",
        "Providers the tenant may use (owned or through an available resource provider)",
        &["after", "limit", "min_position"],
    ),
    (
        "get",
        "/v1/tenants/{id}/grants",
        "Access grants in effect at the tenant, direct and inherited, each with its source (tenant admins)",
        &["after", "limit", "min_position"],
    ),
    (
        "get",
        "/v1/users/{id}/roles",
        "A user's roles per tenant subtree, with the effective role (the user or a platform admin)",
        &["after", "limit", "min_position"],
    ),
    (
        "get",
        "/v1/tenants/{id}/resources",
        "The subtree's resources of every kind carrying an annotation (`annotation=key=value`)",
        &["annotation", "after", "limit", "min_position"],
    ),
    (
        "get",
        "/v1/access/check",
        "Does a resource provider hold a scope in a tenant?",
        &["resource_provider_id", "tenant_id", "scope", "min_position"],
    ),
    (
        "get",
        "/v1/resources/{id}/metadata",
        "Annotations, statuses, finalizers",
        &["min_position"],
    ),
    (
        "get",
        "/v1/streams/{id}/events",
        "A stream's events",
        &["after", "limit", "min_position"],
    ),
    (
        "get",
        "/v1/audit",
        "Audit log in the log's order (tenant_id means its subtree)",
        &[
            "tenant_id",
            "stream_id",
            "actor",
            "correlation_id",
            "event_type",
            "since",
            "until",
            "after",
            "limit",
            "min_position",
        ],
    ),
    ("get", "/healthz", "Liveness", &[]),
    ("get", "/readyz", "Readiness (PostgreSQL reachable)", &[]),
    ("get", "/metrics", "Prometheus metrics", &[]),
    ("get", "/openapi.json", "This document", &[]),
];

pub(crate) async fn openapi() -> Json<Value> {
    Json(document())
}

fn document() -> Value {
    let problem = json!({"description": "Problem (RFC 9457)", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}});
    let mut paths = Map::new();
    for (method, path, summary, query) in ROUTES {
        let mut parameters: Vec<Value> = query
            .iter()
            .map(|name| json!({"name": name, "in": "query", "required": false, "schema": {"type": "string"}}))
            .collect();
        if path.contains("{id}") {
            parameters.push(
                json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}),
            );
        }
        let mut operation = json!({
            "summary": summary,
            "parameters": parameters,
            "responses": {"200": {"description": "OK"}, "4XX": problem, "5XX": problem},
        });
        if *method == "post" {
            operation["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CommandRequest"}}}});
            operation["responses"]["201"] = json!({"description": "Committed"});
        }
        if path.starts_with("/v1/") {
            operation["security"] = json!([{"bearer": []}]);
        }
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        entry[*method] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Plinth", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "schemas": {
                "Problem": {"type": "object", "properties": {
                    "type": {"type": "string"}, "title": {"type": "string"},
                    "status": {"type": "integer"}, "detail": {"type": "string"}}},
                "CommandRequest": {"type": "object", "required": ["type"], "additionalProperties": false, "properties": {
                    "type": {"type": "string", "examples": ["CreateTenant"]},
                    "data": {"type": "object"},
                    "expected_version": {"type": "integer", "minimum": 0}}},
            },
        },
    })
}
