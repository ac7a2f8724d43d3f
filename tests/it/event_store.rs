//! The event store's guarantees, tested directly against PostgreSQL.

use std::collections::HashSet;
use std::time::Duration;

use plinth_commands::{read_after, Checkpoint, CommandBus, CommandError, EventStore, Submission};
use plinth_domain::{Actor, Command, DomainError, UserId};
use serde_json::json;

use crate::support::{events_eventually, test_db};

fn platform() -> Actor {
    Actor::user(UserId::for_identity("test", "root"), true)
}

fn command(t: &str, data: serde_json::Value) -> Command {
    Command::parse(t, data).unwrap()
}

#[tokio::test]
async fn appended_events_read_back_with_metadata_and_chain() {
    let db = test_db().await;
    let bus = CommandBus::start(db.pool.clone(), 1);
    let (outcome, replayed) = bus
        .submit(Submission::new(
            platform(),
            command("CreateTenant", json!({"name": "Sarah Corp"})),
        ))
        .await
        .unwrap();
    assert!(!replayed);
    assert_eq!(outcome.version, 1);
    let store = EventStore::new(db.pool.clone());
    let events = events_eventually(&db.pool, 1).await;
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.event_type, "TenantCreated");
    assert_eq!(e.stream_id, outcome.stream_id);
    assert_eq!(e.metadata.command_id, outcome.command_id);
    assert_eq!(e.position, outcome.position);
    assert_eq!(store.verify_chains().await.unwrap(), Ok(1));
}

#[tokio::test]
async fn the_events_table_rejects_update_delete_and_truncate() {
    let db = test_db().await;
    let bus = CommandBus::start(db.pool.clone(), 1);
    bus.submit(Submission::new(
        platform(),
        command("CreateTenant", json!({"name": "x"})),
    ))
    .await
    .unwrap();
    let client = db.pool.get().await.unwrap();
    for sql in [
        "update events set event_type = 'Forged'",
        "delete from events",
        "truncate events",
    ] {
        let err = client.batch_execute(sql).await.unwrap_err();
        assert!(
            err.to_string().contains("append-only") || format!("{err:?}").contains("append-only"),
            "{sql}: {err:?}"
        );
    }
}

#[tokio::test]
async fn tampering_is_found_by_verify_and_named() {
    let db = test_db().await;
    let bus = CommandBus::start(db.pool.clone(), 1);
    let (outcome, _) = bus
        .submit(Submission::new(
            platform(),
            command("CreateTenant", json!({"name": "x"})),
        ))
        .await
        .unwrap();
    bus.submit(Submission::new(
        platform(),
        command(
            "UpdateTenant",
            json!({"tenant_id": outcome.stream_id, "name": "y"}),
        ),
    ))
    .await
    .unwrap();
    let client = db.pool.get().await.unwrap();
    // A superuser can bypass triggers; the chain still tells.
    client
        .batch_execute(
            "alter table events disable trigger events_no_update_or_delete;
             update events set data = '{\"tenant_id\":\"forged\"}' where stream_version = 2;
             alter table events enable trigger events_no_update_or_delete;",
        )
        .await
        .unwrap();
    let broken = EventStore::new(db.pool.clone())
        .verify_chains()
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(broken.stream_id, outcome.stream_id);
    assert_eq!(broken.stream_version, 2);
}

/// Writers insert, wait a random while, then commit, so positions commit out of order; a
/// reader tails with a checkpoint the whole time. It must see every event exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tailing_reader_never_skips_events_committed_out_of_order() {
    let db = test_db().await;
    const WRITERS: usize = 12;
    const PER_WRITER: usize = 25;
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let pool = db.pool.clone();
        writers.push(tokio::spawn(async move {
            let mut client = pool.get().await.unwrap();
            let mut late_commits = 0;
            for i in 0..PER_WRITER {
                let tx = client.transaction().await.unwrap();
                let row = tx
                    .query_one(
                        "insert into events (event_id, stream_id, stream_version, event_type, schema_version,
                                             data, metadata, recorded_at, hash)
                         values ($1, $2, 1, 'Test', 1, '{}', json_build_object('command_id', gen_random_uuid(),
                                 'correlation_id', gen_random_uuid(), 'causation_id', gen_random_uuid()),
                                 now(), '\\x00') returning position",
                        &[&uuid::Uuid::now_v7(), &format!("stream-{w}-{i}")],
                    )
                    .await
                    .unwrap();
                let position: i64 = row.get(0);
                tokio::time::sleep(Duration::from_millis(rand::random::<u64>() % 15)).await;
                let max: i64 = tx.query_one("select max(position) from events", &[]).await.unwrap().get(0);
                if max > position {
                    late_commits += 1;
                }
                tx.commit().await.unwrap();
            }
            late_commits
        }));
    }
    // A transaction that rolls back leaves a hole in the positions; it must not stall anyone.
    {
        let mut client = db.pool.get().await.unwrap();
        let tx = client.transaction().await.unwrap();
        tx.execute(
            "insert into events (event_id, stream_id, stream_version, event_type, schema_version, data, metadata, recorded_at, hash)
             values ($1, 'rolled-back', 1, 'Test', 1, '{}', '{}', now(), '\\x00')",
            &[&uuid::Uuid::now_v7()],
        )
        .await
        .unwrap();
        tx.rollback().await.unwrap();
    }
    let reader_pool = db.pool.clone();
    let reader = tokio::spawn(async move {
        let client = reader_pool.get().await.unwrap();
        let mut checkpoint = Checkpoint::default();
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while seen.len() < WRITERS * PER_WRITER && tokio::time::Instant::now() < deadline {
            let batch = read_after(&client, checkpoint, 7).await.unwrap();
            for e in &batch {
                assert!(
                    e.checkpoint() > checkpoint,
                    "read order must be strictly increasing"
                );
                checkpoint = e.checkpoint();
                seen.push(e.event_id);
            }
            if batch.is_empty() {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        seen
    });
    let mut late = 0;
    for w in writers {
        late += w.await.unwrap();
    }
    let seen = reader.await.unwrap();
    assert!(
        late > 0,
        "the test must actually produce out-of-order commits"
    );
    let unique: HashSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no event twice");
    assert_eq!(seen.len(), WRITERS * PER_WRITER, "no event skipped");
}

#[tokio::test]
async fn an_expected_version_that_is_stale_is_a_conflict_not_a_lost_write() {
    let db = test_db().await;
    let bus = CommandBus::start(db.pool.clone(), 1);
    let (created, _) = bus
        .submit(Submission::new(
            platform(),
            command("CreateTenant", json!({"name": "a"})),
        ))
        .await
        .unwrap();
    let update = |name: &str| {
        let mut s = Submission::new(
            platform(),
            command(
                "UpdateTenant",
                json!({"tenant_id": created.stream_id, "name": name}),
            ),
        );
        s.expected_version = Some(1);
        s
    };
    let (first, second) = tokio::join!(bus.submit(update("b")), bus.submit(update("c")));
    let outcomes = [first, second];
    assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 1);
    assert!(outcomes.iter().any(|o| matches!(
        o,
        Err(CommandError::VersionConflict {
            expected: 1,
            actual: 2,
            ..
        })
    )));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_siblings_with_one_name_leave_exactly_one() {
    let db = test_db().await;
    let buses = [
        CommandBus::start(db.pool.clone(), 2),
        CommandBus::start(db.pool.clone(), 2),
    ];
    let (root, _) = buses[0]
        .submit(Submission::new(
            platform(),
            command("CreateTenant", json!({"name": "root"})),
        ))
        .await
        .unwrap();
    let attempts = (0..16).map(|i| {
        let bus = buses[i % 2].clone();
        let name = if i % 2 == 0 { "Prod" } else { "PROD" };
        let cmd = command(
            "CreateTenant",
            json!({"name": name, "parent_id": root.stream_id}),
        );
        async move { bus.submit(Submission::new(platform(), cmd)).await }
    });
    let results = futures::future::join_all(attempts).await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    assert!(results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .all(|e| matches!(e, CommandError::Domain(DomainError::NameTaken { .. }))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sub_tenant_created_while_its_parent_is_deleted_never_becomes_an_orphan() {
    let db = test_db().await;
    for _ in 0..10 {
        let bus = CommandBus::start(db.pool.clone(), 2);
        let other = CommandBus::start(db.pool.clone(), 2);
        let (root, _) = bus
            .submit(Submission::new(
                platform(),
                command(
                    "CreateTenant",
                    json!({"name": uuid::Uuid::now_v7().to_string()}),
                ),
            ))
            .await
            .unwrap();
        let (parent, _) = bus
            .submit(Submission::new(
                platform(),
                command(
                    "CreateTenant",
                    json!({"name": "p", "parent_id": root.stream_id}),
                ),
            ))
            .await
            .unwrap();
        let delete = bus.submit(Submission::new(
            platform(),
            command("DeleteTenant", json!({"tenant_id": parent.stream_id})),
        ));
        let create = other.submit(Submission::new(
            platform(),
            command(
                "CreateTenant",
                json!({"name": "child", "parent_id": parent.stream_id}),
            ),
        ));
        let (deleted, created) = tokio::join!(delete, create);
        assert!(
            deleted.is_ok() != created.is_ok(),
            "exactly one wins: {deleted:?} / {created:?}"
        );
        let client = db.pool.get().await.unwrap();
        let orphans: i64 = client
            .query_one(
                "select count(*) from streams c join streams p on c.owner_id = p.stream_id
                 where c.lifecycle <> 'deleted' and p.lifecycle = 'deleted'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(orphans, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revoked_admin_cannot_act_even_racing_the_revoke() {
    let db = test_db().await;
    let store = EventStore::new(db.pool.clone());
    let bus = CommandBus::start(db.pool.clone(), 2);
    let other = CommandBus::start(db.pool.clone(), 2);
    let (root, _) = bus
        .submit(Submission::new(
            platform(),
            command("CreateTenant", json!({"name": "root"})),
        ))
        .await
        .unwrap();
    let admin = Actor::user(store.ensure_user("test", "admin").await.unwrap(), false);
    bus.submit(Submission::new(
        platform(),
        command(
            "GrantTenantAccess",
            json!({"tenant_id": root.stream_id, "user_id": admin.user_id().unwrap(), "role": "admin"}),
        ),
    ))
    .await
    .unwrap();
    let revoke = bus.submit(Submission::new(
        platform(),
        command(
            "RevokeTenantAccess",
            json!({"tenant_id": root.stream_id, "user_id": admin.user_id().unwrap()}),
        ),
    ));
    let act = other.submit(Submission::new(
        admin.clone(),
        command(
            "CreateTenant",
            json!({"name": "sneaky", "parent_id": root.stream_id}),
        ),
    ));
    let (revoked, acted) = tokio::join!(revoke, act);
    let (revoked, _) = revoked.unwrap();
    if let Ok((acted, _)) = acted {
        // If the admin's command committed, it must have committed before the revoke.
        assert!(
            acted.position < revoked.position,
            "acted after the revoke committed"
        );
    }
    let after = bus
        .submit(Submission::new(
            admin,
            command(
                "CreateTenant",
                json!({"name": "late", "parent_id": root.stream_id}),
            ),
        ))
        .await;
    assert!(
        matches!(
            after,
            Err(CommandError::Domain(DomainError::Forbidden { .. }))
        ),
        "{after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_requests_create_exactly_one_user() {
    let db = test_db().await;
    let store = EventStore::new(db.pool.clone());
    let ids =
        futures::future::join_all((0..16).map(|_| store.ensure_user("https://issuer", "alice")))
            .await;
    assert!(ids
        .iter()
        .all(|r| r.as_ref().unwrap() == ids[0].as_ref().unwrap()));
    let events = events_eventually(&db.pool, 1).await;
    assert_eq!(
        events
            .iter()
            .filter(|e| e.event_type == "UserCreated")
            .count(),
        1
    );
}

/// Submits as a platform administrator.
async fn submit(bus: &CommandBus, t: &str, data: serde_json::Value) -> plinth_commands::Processed {
    bus.submit(Submission::new(platform(), command(t, data)))
        .await
}

/// A fresh root tenant (named after the round) and a sub-tenant of it.
async fn owner_and_sub(
    bus: &CommandBus,
    round: usize,
) -> (
    plinth_commands::CommandOutcome,
    plinth_commands::CommandOutcome,
) {
    let (owner, _) = submit(
        bus,
        "CreateTenant",
        json!({"name": format!("owner-{round}")}),
    )
    .await
    .unwrap();
    let parent = json!({"name": "sub", "parent_id": owner.stream_id});
    let (sub, _) = submit(bus, "CreateTenant", parent).await.unwrap();
    (owner, sub)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn authorizing_races_revoking_availability_and_never_wins_after_it() {
    let db = test_db().await;
    for round in 0..8 {
        let bus = CommandBus::start(db.pool.clone(), 2);
        let other = CommandBus::start(db.pool.clone(), 2);
        let (owner, sub) = owner_and_sub(&bus, round).await;
        let (rp, _) = submit(
            &bus,
            "CreateResourceProvider",
            json!({"tenant_id": owner.stream_id, "name": "lb", "scopes": ["loadbalancer:*"]}),
        )
        .await
        .unwrap();
        let target = json!({"resource_provider_id": rp.stream_id, "tenant_id": sub.stream_id});
        submit(&bus, "MakeResourceProviderAvailable", target.clone())
            .await
            .unwrap();
        let (authorized, revoked) = tokio::join!(
            submit(&other, "AuthorizeResourceProvider", target.clone()),
            submit(&bus, "RevokeResourceProviderAvailability", target.clone()),
        );
        let (revoked, _) = revoked.unwrap();
        match authorized {
            Ok((a, _)) => assert!(
                a.position < revoked.position,
                "authorized after availability was revoked"
            ),
            Err(e) => assert!(
                matches!(e, CommandError::Domain(DomainError::NotAvailable { .. })),
                "{e:?}"
            ),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn availability_never_lands_on_a_tenant_deleted_at_the_same_time() {
    let db = test_db().await;
    for round in 0..8 {
        let bus = CommandBus::start(db.pool.clone(), 2);
        let other = CommandBus::start(db.pool.clone(), 2);
        let (owner, sub) = owner_and_sub(&bus, round).await;
        let (location, _) = submit(
            &bus,
            "CreateLocation",
            json!({"tenant_id": owner.stream_id, "name": "NY"}),
        )
        .await
        .unwrap();
        let (made, deleted) = tokio::join!(
            submit(
                &other,
                "MakeLocationAvailable",
                json!({"location_id": location.stream_id, "tenant_id": sub.stream_id})
            ),
            submit(&bus, "DeleteTenant", json!({"tenant_id": sub.stream_id})),
        );
        let (deleted, _) = deleted.unwrap();
        if let Ok((made, _)) = made {
            assert!(
                made.position < deleted.position,
                "made available to an already deleted tenant"
            );
        }
    }
}
