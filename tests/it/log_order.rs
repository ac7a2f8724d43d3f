//! The global log's order under concurrency: every stream's events in version order, every
//! event after the events its command read, none skipped (docs/adr/0004-log-order.md).
//!
//! A test that appends sequentially cannot see an ordering bug: these build the interleaving
//! that broke ordering by transaction id (a batch that locked one stream took its id, then
//! waited for a batch that started later), once deterministically with two connections and once
//! as concurrent load through the HTTP API.

use std::collections::HashMap;
use std::time::Duration;

use plinth_commands::{lock_streams, read_after, Checkpoint, EventStore, StoredEvent};
use serde_json::{json, Value};
use tokio_postgres::Transaction;

use crate::support::{
    committed_events, events_eventually, spawn_app, test_db, NeighbourTransaction, TestApp,
};

/// The streams whose versions come out of order in `events`, with the offending pair.
pub fn version_inversions(events: &[StoredEvent]) -> Vec<(String, i64, i64)> {
    let mut last: HashMap<&str, i64> = HashMap::new();
    let mut inverted = Vec::new();
    for e in events {
        let previous = last.insert(&e.stream_id, e.stream_version).unwrap_or(0);
        if e.stream_version != previous + 1 {
            inverted.push((e.stream_id.clone(), previous, e.stream_version));
        }
    }
    inverted
}

/// Inserts one event row the way the write side does (inside the caller's transaction, after
/// its locks): the insert is what gives the transaction its id.
async fn append(tx: &Transaction<'_>, stream: &str, version: i64, data: Value) {
    tx.execute(
        "insert into events (event_id, stream_id, stream_version, event_type, schema_version,
                             data, metadata, recorded_at, hash)
         values ($1, $2, $3, 'Test', 1, $4::text::json,
                 json_build_object('command_id', gen_random_uuid(),
                                   'correlation_id', gen_random_uuid(),
                                   'causation_id', gen_random_uuid()),
                 now(), '\\x00')",
        &[&uuid::Uuid::now_v7(), &stream, &version, &data.to_string()],
    )
    .await
    .unwrap();
}

/// The interleaving that broke the order, step by step on two connections: batch 1 locks
/// stream A; batch 2, starting later, locks S, appends S v1 and commits; batch 1 then locks S,
/// appends S v2 (and A v1) and commits. Batch 1 started first, but S v2 must still be read
/// after S v1.
#[tokio::test]
async fn a_batch_that_waited_for_a_stream_is_read_after_the_batch_it_waited_for() {
    let db = test_db().await;
    let (mut first, mut second) = (db.pool.get().await.unwrap(), db.pool.get().await.unwrap());
    let batch1 = first.transaction().await.unwrap();
    lock_streams(&*batch1, &["stream-a"], &[]).await.unwrap();

    let batch2 = second.transaction().await.unwrap();
    lock_streams(&*batch2, &["stream-s"], &[]).await.unwrap();
    append(&batch2, "stream-s", 1, json!({})).await;
    batch2.commit().await.unwrap();

    lock_streams(&*batch1, &["stream-s"], &[]).await.unwrap();
    append(&batch1, "stream-s", 2, json!({})).await;
    append(&batch1, "stream-a", 1, json!({})).await;
    batch1.commit().await.unwrap();

    let order: Vec<(String, i64)> = events_eventually(&db.pool, 3)
        .await
        .into_iter()
        .map(|e| (e.stream_id, e.stream_version))
        .collect();
    let s1 = order.iter().position(|e| *e == ("stream-s".into(), 1));
    let s2 = order.iter().position(|e| *e == ("stream-s".into(), 2));
    assert!(
        s1 < s2,
        "stream-s out of version order in the log: {order:?}"
    );
}

/// The causal half: batch 1 locks A; batch 2 changes S and commits; batch 1 then reads S (a
/// shared lock, as a command reads its tenant chain) and appends to A what it read. A's event
/// depends on S's, so every reader must see S's first.
#[tokio::test]
async fn an_event_is_read_after_the_events_its_command_read() {
    let db = test_db().await;
    let (mut first, mut second) = (db.pool.get().await.unwrap(), db.pool.get().await.unwrap());
    let batch1 = first.transaction().await.unwrap();
    lock_streams(&*batch1, &["stream-a"], &[]).await.unwrap();

    let batch2 = second.transaction().await.unwrap();
    lock_streams(&*batch2, &["stream-s"], &[]).await.unwrap();
    append(&batch2, "stream-s", 1, json!({"name": "renamed"})).await;
    batch2.commit().await.unwrap();

    lock_streams(&*batch1, &[], &["stream-s"]).await.unwrap();
    let seen: String = batch1
        .query_one(
            "select data->>'name' from events where stream_id = 'stream-s' and stream_version = 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    append(&batch1, "stream-a", 1, json!({ "saw": seen })).await;
    batch1.commit().await.unwrap();

    let order: Vec<String> = events_eventually(&db.pool, 2)
        .await
        .into_iter()
        .map(|e| e.stream_id)
        .collect();
    assert_eq!(
        order,
        ["stream-s", "stream-a"],
        "an event was read before an event its command had read"
    );
}

/// Locks are held to the end of the transaction, and a shared lock waits for an exclusive one.
#[tokio::test]
async fn stream_locks_exclude_writers_until_commit() {
    let db = test_db().await;
    let (mut first, mut second) = (db.pool.get().await.unwrap(), db.pool.get().await.unwrap());
    let holder = first.transaction().await.unwrap();
    lock_streams(&*holder, &["stream-x"], &[]).await.unwrap();
    let waiter = async {
        let tx = second.transaction().await.unwrap();
        lock_streams(&*tx, &[], &["stream-x"]).await.unwrap();
        tx.commit().await.unwrap();
    };
    tokio::pin!(waiter);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut waiter)
            .await
            .is_err(),
        "a reader got a stream's lock while a writer held it"
    );
    holder.commit().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("the lock is released at commit");
}

/// The observation, as a test: 32 HTTP clients for a few seconds, renaming and
/// annotating 6 locations and 6 tenants of one root (few streams, so batches wait on each
/// other's locks). Afterwards every stream must be in version order in the log's read order,
/// and every read-model row must equal the fold of its stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_concurrent_load_every_stream_is_read_in_version_order() {
    let app = spawn_app().await;
    tokio::spawn(plinth_projections::read::run_projectors(
        app.db.pool.clone(),
        std::future::pending(),
    ));
    let admin = app.admin();
    let root = app
        .ok(&admin, "CreateTenant", json!({"name": "load root"}))
        .await;
    let mut tenants = Vec::new();
    let mut locations = Vec::new();
    for i in 0..6 {
        tenants.push(
            app.ok(
                &admin,
                "CreateTenant",
                json!({"name": format!("t{i}"), "parent_id": root}),
            )
            .await,
        );
        locations.push(
            app.ok(
                &admin,
                "CreateLocation",
                json!({"tenant_id": root, "name": format!("l{i}")}),
            )
            .await,
        );
    }

    const CLIENTS: usize = 32;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(6);
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let (api, admin) = (app.api(), admin.clone());
        let (tenants, locations) = (tenants.clone(), locations.clone());
        clients.push(tokio::spawn(async move {
            let mut sent = 0usize;
            while tokio::time::Instant::now() < deadline {
                let n = c + sent * CLIENTS;
                let (kind, data) = match n % 3 {
                    0 => (
                        "UpdateLocation",
                        json!({"location_id": locations[n % 6], "name": format!("loc {n}")}),
                    ),
                    1 => (
                        "SetAnnotation",
                        json!({"resource_id": locations[(n / 3) % 6],
                               "key": "example.com/last", "value": format!("{n}")}),
                    ),
                    _ => (
                        "UpdateTenant",
                        json!({"tenant_id": tenants[n % 6], "description": format!("d {n}")}),
                    ),
                };
                let reply = api.command(&admin, kind, data).await;
                assert_eq!(reply.status, 201, "{kind}: {reply:?}");
                sent += 1;
            }
            sent
        }));
    }
    let mut sent = 0;
    for c in clients {
        sent += c.await.unwrap();
    }

    let store = EventStore::new(app.db.pool.clone());
    // The administrator's UserCreated (its first request), the root, 6 tenants, 6 locations.
    let expected = 2 + 12 + sent;
    let events = events_eventually(&app.db.pool, expected).await;
    assert_eq!(
        events.len(),
        expected,
        "every acknowledged command is in the log once"
    );
    let inverted = version_inversions(&events);
    assert!(
        inverted.is_empty(),
        "{} of {} events out of their stream's version order, e.g. {:?}",
        inverted.len(),
        events.len(),
        &inverted[..inverted.len().min(5)]
    );

    let head = events.iter().map(|e| e.position).max().unwrap();
    for (id, path) in tenants
        .iter()
        .map(|t| (t, format!("/v1/tenants/{t}")))
        .chain(locations.iter().map(|l| (l, format!("/v1/locations/{l}"))))
    {
        let folded = store.fold_stream(id, i64::MAX).await.unwrap().unwrap();
        let folded = serde_json::to_value(&folded).unwrap();
        let row = read_at(&app, &admin, &path, head).await;
        let body = &folded["body"];
        assert_eq!(row["name"], body["name"], "{path}: the read model's name");
        assert_eq!(
            row["description"], body["description"],
            "{path}: the read model's description"
        );
        let metadata = read_at(&app, &admin, &format!("/v1/resources/{id}/metadata"), head).await;
        assert_eq!(
            metadata["annotations"], folded["metadata"]["annotations"],
            "{path}: the read model's annotations"
        );
    }
}

async fn read_at(app: &TestApp, token: &str, path: &str, position: i64) -> Value {
    let reply = app
        .get(token, &format!("{path}?min_position={position}"))
        .await;
    assert_eq!(reply.status, 200, "GET {path}: {reply:?}");
    reply.body
}

/// A transaction in another database of the cluster can never write this log, so it holds no
/// reader back (ADR 0023): with the snapshot's xmin as the horizon, the event below stayed
/// unreadable for as long as the neighbour ran.
#[tokio::test]
async fn a_long_transaction_in_another_database_holds_no_reader_back() {
    let neighbour = NeighbourTransaction::open().await;
    let db = test_db().await;
    let mut client = db.pool.get().await.unwrap();
    let tx = client.transaction().await.unwrap();
    append(&tx, "stream-a", 1, json!({})).await;
    tx.commit().await.unwrap();

    let events = events_eventually(&db.pool, 1).await;
    assert!(
        events[0].tx > neighbour.xid,
        "the event must be younger than the neighbour for this test to mean anything"
    );
    neighbour.end().await;
}

/// Gap safety with the per-database horizon: a running transaction of *this* database still
/// hides every later one, even while an older transaction of another database runs (the
/// horizon is the oldest of this database's, not the newest id seen).
#[tokio::test]
async fn a_running_writer_of_this_database_still_holds_readers_back() {
    let neighbour = NeighbourTransaction::open().await;
    let db = test_db().await;
    let (mut first, mut second) = (db.pool.get().await.unwrap(), db.pool.get().await.unwrap());
    let early = first.transaction().await.unwrap();
    append(&early, "stream-early", 1, json!({})).await;
    let late = second.transaction().await.unwrap();
    append(&late, "stream-late", 1, json!({})).await;
    late.commit().await.unwrap();

    let reader = db.pool.get().await.unwrap();
    let seen = read_after(&reader, Checkpoint::default(), 100)
        .await
        .unwrap();
    assert!(
        seen.is_empty(),
        "read past a running transaction of this database: {:?}",
        seen.iter().map(|e| &e.stream_id).collect::<Vec<_>>()
    );

    early.commit().await.unwrap();
    let order: Vec<String> = events_eventually(&db.pool, 2)
        .await
        .into_iter()
        .map(|e| e.stream_id)
        .collect();
    assert_eq!(order, ["stream-early", "stream-late"]);
    neighbour.end().await;
}

/// The horizon under concurrency: writers of this database (some rolling back) and short
/// transactions of another database interleave, behind a long one of that other database,
/// while a reader tails the log from its own checkpoint. The reader must see every committed
/// event exactly once, in strictly increasing (tx, position): a horizon that let it past a
/// running writer of this database would make it skip that writer's events for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tail_reader_misses_nothing_while_both_databases_write() {
    const WRITERS: usize = 8;
    const TRANSACTIONS: usize = 60;
    let neighbour = NeighbourTransaction::open().await;
    let db = test_db().await;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));

    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let pool = db.pool.clone();
        writers.push(tokio::spawn(async move {
            let mut client = pool.get().await.unwrap();
            let mut version = 0;
            for t in 0..TRANSACTIONS {
                let tx = client.transaction().await.unwrap();
                append(&tx, &format!("stream-{w}"), version + 1, json!({})).await;
                // Stay running for a moment, so that readers meet running writers.
                tokio::time::sleep(Duration::from_millis(((w + t) % 4) as u64)).await;
                if (w + t) % 7 == 0 {
                    tx.rollback().await.unwrap();
                } else {
                    tx.commit().await.unwrap();
                    version += 1;
                }
            }
        }));
    }
    let mut churn = Vec::new();
    for c in 0..2u64 {
        let (url, done) = (neighbour.url().to_owned(), done.clone());
        churn.push(tokio::spawn(async move {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(connection);
            let mut n = c;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                client.batch_execute("begin").await.unwrap();
                client
                    .query_one("select pg_current_xact_id()", &[])
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(n % 3)).await;
                client.batch_execute("commit").await.unwrap();
                n += 1;
            }
        }));
    }

    let reader = db.pool.get().await.unwrap();
    let mut seen: Vec<StoredEvent> = Vec::new();
    let mut after = Checkpoint::default();
    while writers.iter().any(|w| !w.is_finished()) {
        if tail(&reader, &mut after, &mut seen).await == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    for w in writers {
        w.await.unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    for c in churn {
        c.await.unwrap();
    }
    let committed = committed_events(&db.pool).await as usize;
    // What is left is readable once this database's writers are done (up to 30 s of other
    // work in this database, such as an autovacuum's analyze).
    for _ in 0..3000 {
        if seen.len() >= committed {
            break;
        }
        if tail(&reader, &mut after, &mut seen).await == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    let places: Vec<(i64, i64)> = seen.iter().map(|e| (e.tx, e.position)).collect();
    assert!(
        places.windows(2).all(|p| p[0] < p[1]),
        "the tail went backwards or repeated itself"
    );
    let ids: std::collections::HashSet<uuid::Uuid> = seen.iter().map(|e| e.event_id).collect();
    let all: std::collections::HashSet<uuid::Uuid> = db
        .pool
        .get()
        .await
        .unwrap()
        .query("select event_id from events", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let missed = all.difference(&ids).count();
    assert_eq!(
        missed,
        0,
        "the tail skipped {missed} of {} committed events",
        all.len()
    );
    assert!(version_inversions(&seen).is_empty());
    neighbour.end().await;
}

/// One read of the tail after `after`, moving it on: how many events it found.
async fn tail(
    reader: &deadpool_postgres::Client,
    after: &mut Checkpoint,
    seen: &mut Vec<StoredEvent>,
) -> usize {
    let batch = read_after(reader, *after, 7).await.unwrap();
    if let Some(last) = batch.last() {
        *after = last.checkpoint();
    }
    let found = batch.len();
    seen.extend(batch);
    found
}
