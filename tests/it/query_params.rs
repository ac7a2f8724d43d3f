//! Unknown query parameters are a 400 problem naming them, on every route.

use crate::support::spawn_app;

#[tokio::test]
async fn every_route_rejects_unknown_query_parameters_by_name() {
    let app = spawn_app().await;
    let admin = app.admin();
    let document = app.get(&admin, "/openapi.json").await.body;
    let paths = document["paths"].as_object().unwrap();
    let mut checked = 0;
    for (path, operations) in paths {
        if operations.get("get").is_none() {
            continue;
        }
        let path = path.replace("{id}", "tnntten-000000000000000000000");
        let reply = app
            .get(
                &admin,
                &format!("{path}?colour=red&limit=5&flavour=x&colour=blue"),
            )
            .await;
        assert_eq!(reply.status, 400, "GET {path}: {reply:?}");
        assert_eq!(reply.content_type, "application/problem+json", "{path}");
        let detail = reply.body["detail"].as_str().unwrap();
        assert!(
            detail.contains("`colour`") && detail.contains("`flavour`"),
            "{path}: {detail}"
        );
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} GET routes in the document");

    // The ones a route documents are accepted.
    assert_eq!(app.get(&admin, "/v1/tenants?limit=5").await.status, 200);
    assert_eq!(
        app.get(&admin, "/v1/audit?limit=5&min_position=0")
            .await
            .status,
        200
    );
    // A filter the audit log does not have is refused rather than ignored.
    let audit = app.get(&admin, "/v1/audit?colour=red").await;
    assert_eq!(audit.status, 400, "{audit:?}");
}
