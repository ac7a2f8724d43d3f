//! The whole stack under the conditions that stalled it (issue 28): `plinth serve` with its
//! projectors and both relays, a CPU-bound neighbour taking a core, and a long transaction in
//! another database of the same PostgreSQL cluster. With the snapshot's xmin as the log's
//! horizon, that transaction held every projector and relay back, so every `?min_position=`
//! read waited out its budget and answered 503 (the console's "the read models have not
//! reached position N yet"). ADR 0023.

use std::time::Duration;

use plinth_projections::nats::{self, StreamConfig};
use plinth_test_support::CpuHog;
use serde_json::{json, Value};

use crate::nats::nats_url;
use crate::ops::Plinth;
use crate::relay::brokers;
use crate::support::{test_db, NeighbourTransaction, ADMIN, HORIZON};

/// Commands sent, each followed by its read-your-writes read.
const COMMANDS: usize = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_of_ones_own_writes_are_answered_under_a_cpu_hog_and_a_neighbours_transaction() {
    // A busy core stretches other tests' timing bounds: they wait (see `HORIZON`).
    let _horizon = HORIZON.write().await;
    let neighbour = NeighbourTransaction::open().await;
    let db = test_db().await;
    let unique = uuid::Uuid::now_v7().simple().to_string();
    let nats_prefix = format!("it.l{unique}");
    nats::ensure_stream(&StreamConfig {
        name: nats_prefix.replace('.', "-"),
        ..StreamConfig::new(nats_url(), &nats_prefix)
    })
    .await
    .expect("a NATS stream for the relay");
    let hog = CpuHog::start();
    let secret = format!("load-secret-{unique}");
    let (brokers, kafka_prefix, nats_url) = (brokers(), format!("it-l{unique}"), nats_url());
    let server = Plinth::start(
        &db,
        &secret,
        &[
            ("PLINTH_KAFKA_BROKERS", &brokers),
            ("PLINTH_KAFKA_TOPIC_PREFIX", &kafka_prefix),
            ("PLINTH_NATS_URL", &nats_url),
            ("PLINTH_NATS_PREFIX", &nats_prefix),
        ],
    )
    .await;
    let token = plinth_api::auth::mint_dev_token(&secret, ADMIN, 3600).unwrap();
    let http = reqwest::Client::new();

    let mut last = 0;
    for i in 0..COMMANDS {
        let created = http
            .post(format!("{}/v1/commands", server.base))
            .bearer_auth(&token)
            .json(&json!({"type": "CreateTenant", "data": {"name": format!("loaded {i}")}}))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
        let outcome: Value = created.json().await.unwrap();
        let (id, position) = (
            outcome["stream_id"].as_str().unwrap(),
            outcome["position"].as_i64().unwrap(),
        );
        let read = http
            .get(format!(
                "{}/v1/tenants/{id}?min_position={position}",
                server.base
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        let status = read.status().as_u16();
        let body = read.text().await.unwrap();
        assert_eq!(
            status, 200,
            "command {i}: the read of its own write was not answered: {body}"
        );
        last = position;
    }

    // The relays publish past the neighbour too: both checkpoints reach the last event.
    let client = db.pool.get().await.unwrap();
    let mut reached = 0;
    for _ in 0..1200 {
        reached = client
            .query_one(
                "select count(*) from relay_checkpoints c, events e
                 where e.position = $1 and c.name in ('kafka', 'nats')
                   and (c.tx, c.position) >= (e.tx, e.position)",
                &[&last],
            )
            .await
            .unwrap()
            .get::<_, i64>(0);
        if reached == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(hog);
    assert_eq!(
        reached,
        2,
        "the relays never published the last event:\n{}",
        server.log_text()
    );
    server.stop().await;
    neighbour.end().await;
}
