//! JSON that two parsers could read differently is refused with a 400 naming the problem, and
//! nothing of it reaches the log: a duplicate key at any depth, a lone UTF-16 surrogate, an
//! integer no 64-bit integer holds (serde would store a nearby float instead).

use serde_json::json;

use crate::support::{committed_events, spawn_app};

#[tokio::test]
async fn ambiguous_command_bodies_are_refused_naming_the_problem_and_write_nothing() {
    let app = spawn_app().await;
    let admin = app.admin();
    let tenant = app.ok(&admin, "CreateTenant", json!({"name": "t"})).await;
    let before = committed_events(&app.db.pool).await;

    let cases = [
        (
            r#"{"type":"CreateTenant","data":{"name":"a","name":"b"}}"#.to_owned(),
            "duplicate key at data.name",
        ),
        (
            // The same key, once escaped: still a duplicate.
            r#"{"type":"CreateTenant","data":{"name":"a","\u006eame":"b"}}"#.to_owned(),
            "duplicate key at data.name",
        ),
        (
            format!(
                r#"{{"type":"SetStatus","data":{{"resource_id":"{tenant}","source":"s",
                    "data":{{"checks":[{{"ok":true}},{{"ok":true,"ok":false}}]}}}}}}"#
            ),
            "duplicate key at data.data.checks[1].ok",
        ),
        (
            r#"{"type":"CreateTenant","data":{"name":"a\ud800b"}}"#.to_owned(),
            "lone UTF-16 surrogate \\uD800",
        ),
        (
            format!(
                r#"{{"type":"SetStatus","data":{{"resource_id":"{tenant}","source":"s",
                    "data":{{"bytes":123456789012345678901234}}}}}}"#
            ),
            "the integer 123456789012345678901234 at data.data.bytes is out of range",
        ),
    ];
    for (body, named) in cases {
        let reply = app.post_raw(&admin, body.clone(), &[]).await;
        assert_eq!(reply.status, 400, "{body}: {reply:?}");
        assert_eq!(reply.content_type, "application/problem+json");
        let detail = reply.body["detail"].as_str().unwrap();
        assert!(detail.contains(named), "{body}: {detail}");
    }
    assert_eq!(committed_events(&app.db.pool).await, before);

    // What is unambiguous still goes through: the same keys in sibling objects, a surrogate
    // pair, the largest 64-bit integers.
    let fine = format!(
        r#"{{"type":"SetStatus","data":{{"resource_id":"{tenant}","source":"s",
            "data":{{"a":{{"k":1}},"b":{{"k":2}},"emoji":"\ud83d\ude00",
                     "max":18446744073709551615,"min":-9223372036854775808}}}}}}"#
    );
    let reply = app.post_raw(&admin, fine, &[]).await;
    assert_eq!(reply.status, 201, "{reply:?}");
}

#[tokio::test]
async fn ambiguous_permission_check_bodies_are_refused_naming_the_problem() {
    let app = spawn_app().await;
    let admin = app.admin();
    let tenant = app.ok(&admin, "CreateTenant", json!({"name": "t"})).await;
    let cases = [
        (
            "/api/v1/allow",
            format!(
                r#"{{"actions":[{{"resource_id":"{tenant}","action":"tenant_get","action":"tenant_delete"}}]}}"#
            ),
            "duplicate key at actions[0].action",
        ),
        (
            "/api/v1/allow/bulk",
            format!(
                r#"[{{"resource_id":"{tenant}","resource_id":"{tenant}","action":"tenant_get"}}]"#
            ),
            "duplicate key at [0].resource_id",
        ),
    ];
    for (path, body, named) in cases {
        let response = app
            .http
            .post(format!("{}{path}", app.base))
            .bearer_auth(&admin)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 400, "{path} {body}");
        let problem: serde_json::Value = response.json().await.unwrap();
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains(named), "{path} {body}: {detail}");
    }
}
