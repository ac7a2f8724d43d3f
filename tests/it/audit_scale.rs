//! The audit log's filtered pages are index walks in log order, on a log large enough (and
//! analyzed) for PostgreSQL to prefer a scan and a sort where no index serves: a page then costs
//! the same however long the log grows.

use plinth_commands::log::{audit, explain_audit, AuditFilter};
use plinth_commands::Checkpoint;

use crate::support::{synthetic_platform, test_db, HORIZON};

/// The plan of a first page of 100 under `filter`.
async fn plan(client: &deadpool_postgres::Client, filter: AuditFilter) -> String {
    explain_audit(client, &filter, Checkpoint::default(), 101)
        .await
        .unwrap()
}

/// `plan` reads events through `index` only, and never sorts what it read.
fn assert_walks(plan: &str, index: &str) {
    assert!(plan.contains(index), "{index} not used:\n{plan}");
    assert!(!plan.contains("Seq Scan on events"), "{plan}");
    assert!(!plan.contains("Sort"), "{plan}");
}

#[tokio::test]
async fn actor_correlation_stream_and_subtree_pages_are_index_walks_in_log_order() {
    // Writing and projecting the log takes transactions of seconds, which hold the cluster's
    // snapshot horizon back: other tests' reads would wait on them.
    let _horizon = HORIZON.write().await;
    let db = test_db().await;
    let platform = synthetic_platform(&db, 40_000, 1_000, 50).await;
    let client = db.pool.get().await.unwrap();
    // As autovacuum leaves a settled log: analyzed, and its visibility map set.
    client.batch_execute("vacuum analyze").await.unwrap();
    let correlation: uuid::Uuid = client
        .query_one(
            "select (metadata->>'correlation_id')::uuid from events where position = 20000",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    // Tenant 11 is at depth 2 of the 10-ary tree: its subtree is 11 of the 1,000 tenants.
    let subtree: String = client
        .query_one(
            "select path from read.tenants where id = $1",
            &[&platform.tenants[11].as_str()],
        )
        .await
        .unwrap()
        .get(0);

    let actor = AuditFilter {
        actor: Some(platform.actors[3].clone()),
        ..AuditFilter::default()
    };
    assert_walks(&plan(&client, actor).await, "events_actor_log_order_idx");
    let by_correlation = AuditFilter {
        correlation_id: Some(correlation),
        ..AuditFilter::default()
    };
    assert_walks(
        &plan(&client, by_correlation).await,
        "events_correlation_log_order_idx",
    );
    // A stream of some 40 events may be read by version and its rows sorted (the planner's
    // choice for so few); never by a scan of the log.
    let stream = AuditFilter {
        stream_id: Some(platform.tenants[500].to_string()),
        ..AuditFilter::default()
    };
    let stream_plan = plan(&client, stream).await;
    assert!(!stream_plan.contains("Seq Scan on events"), "{stream_plan}");

    // A subtree page sorts only the merged heads of its streams' walks (at most a page per
    // stream), never the events themselves: no scan of the log, and each stream's walk is an
    // index range in log order.
    let tenant = AuditFilter {
        tenant_path: Some(subtree.clone()),
        ..AuditFilter::default()
    };
    let merged = plan(&client, tenant).await;
    assert!(
        merged.contains("Scan using events_stream_log_order_idx"),
        "{merged}"
    );
    assert!(!merged.contains("Seq Scan on events"), "{merged}");
    assert_eq!(merged.matches("Sort Key").count(), 1, "{merged}");

    // The root's subtree governs every tenant's stream, over a thousand: its page walks the
    // log in order instead, keeping the subtree's events, and stops after a page.
    let root = AuditFilter {
        tenant_path: Some(platform.tenants[0].to_string()),
        ..AuditFilter::default()
    };
    assert_walks(&plan(&client, root).await, "events_tx_position_idx");
}

#[tokio::test]
async fn merged_and_walked_subtree_pages_hold_the_subtrees_events_in_log_order() {
    // As above: the synthetic log's transactions hold the snapshot horizon back.
    let _horizon = HORIZON.write().await;
    let db = test_db().await;
    let platform = synthetic_platform(&db, 40_000, 1_000, 50).await;
    let client = db.pool.get().await.unwrap();
    // Tenant 11: eleven tenants, merged; the root: a thousand, walked. Each compared, page by
    // page, with the obvious query.
    for tenant in [&platform.tenants[11], &platform.tenants[0]] {
        let path: String = client
            .query_one(
                "select path from read.tenants where id = $1",
                &[&tenant.as_str()],
            )
            .await
            .unwrap()
            .get(0);
        let filter = AuditFilter {
            tenant_path: Some(path.clone()),
            ..AuditFilter::default()
        };
        let mut after = Checkpoint::default();
        for _ in 0..3 {
            let page = audit(&client, &filter, after, 100).await.unwrap();
            let positions: Vec<i64> = page.iter().map(|e| e.position).collect();
            let expected: Vec<i64> = client
                .query(
                    "select position from events
                     where stream_id in (
                         select r.id from read.tenants t
                         join read.resources r on r.tenant_id = t.id
                         where t.path = $1 or t.path like $1 || '/%')
                       and (tx, position) > ($2, $3)
                     order by tx, position limit 100",
                    &[&path, &after.tx, &after.position],
                )
                .await
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect();
            assert_eq!(positions, expected, "{tenant}");
            assert_eq!(positions.len(), 100, "{tenant}");
            after = page.last().unwrap().checkpoint();
        }
    }
}
