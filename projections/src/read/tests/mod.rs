//! Property test: for random command sequences, the incremental projection (small batches, as
//! the runner applies them), a full rebuild, and a naive in-memory model of the rules (the
//! domain's `MemoryStore`, asked with the domain's own `available_to` / `holds_scope` /
//! `effective_role`) all agree: every read-model table row by row (`tables`), and the reads the
//! API answers from (`reads`). The commands are drawn from every kind of command, aimed where
//! they take effect (`draw`). Needs PostgreSQL (`PLINTH_TEST_DATABASE_URL`, default local).

mod draw;
mod reads;
mod revocations;
mod tables;

use std::collections::BTreeMap;

use proptest::prelude::*;

use plinth_test_support::{test_server_url, LogWriter, ScratchDatabase};

use super::{rebuild_in_batches, ProjectionSet};

async fn fresh_db() -> deadpool_postgres::Pool {
    let db = ScratchDatabase::create(&test_server_url(), "plinth_proj")
        .await
        .expect("PostgreSQL must be running (scripts/postgres-up)");
    db.migrated_pool(4).await.unwrap()
}

/// Every read-model row, as text, table by table.
async fn dump(client: &deadpool_postgres::Client) -> BTreeMap<&'static str, Vec<String>> {
    let mut out = BTreeMap::new();
    for p in ProjectionSet::all().iter() {
        for table in p.tables() {
            let rows = client
                .query(
                    &format!("select row_to_json(t)::text from read.{table} t order by 1"),
                    &[],
                )
                .await
                .unwrap();
            out.insert(*table, rows.iter().map(|r| r.get(0)).collect());
        }
    }
    out
}

/// The read models hold, table by table, what the model says.
async fn tables_agree_with_model(
    client: &deadpool_postgres::Client,
    store: &plinth_domain::memory::MemoryStore,
) {
    let expected = tables::expected(store);
    let read = tables::read(client).await;
    assert_eq!(
        read.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "the read models' tables and the tables the model describes"
    );
    for (table, rows) in &read {
        let want = &expected[table];
        let missing: Vec<&String> = want.difference(rows).collect();
        let extra: Vec<&String> = rows.difference(want).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "read.{table}: missing {missing:#?}, not in the model {extra:#?}"
        );
    }
}

async fn check(ops: Vec<draw::Op>, batch: i64) {
    let (store, users, tally) = draw::play(&ops);
    if std::env::var("PLINTH_PROP_STATS").is_ok() {
        eprintln!("(drawn, took effect) by command: {:?}", tally.0);
    }
    let pool = fresh_db().await;
    let mut writer = pool.get().await.unwrap();
    let mut log = LogWriter::new();
    let mut projector = pool.get().await.unwrap();
    // Incremental: the log grows in chunks and the projector follows in small batches.
    for chunk in store.log.chunks(7) {
        log.write(&mut writer, chunk).await.unwrap();
        super::runner::catch_up(&mut projector, ProjectionSet::all(), batch)
            .await
            .unwrap();
    }
    tables_agree_with_model(&projector, &store).await;
    let incremental = dump(&projector).await;
    // Full rebuild from the same log, swapped in.
    rebuild_in_batches(&pool, ProjectionSet::all(), batch + 1, |_| {})
        .await
        .unwrap();
    let rebuilt = dump(&projector).await;
    assert_eq!(
        incremental, rebuilt,
        "rebuild differs from the incremental projection"
    );
    // The reads answer from the tables alone, and the tables are the same as after the
    // incremental projection: asking them once is enough.
    tables_agree_with_model(&projector, &store).await;
    reads::compare_with_model(&projector, &store, &users).await;
}

proptest! {
    // Shrinking runs whole cases against PostgreSQL: bounded in time as well as in steps, so
    // that a failure (or a mutant, scripts/mutants) is reported within a minute or so.
    #![proptest_config(ProptestConfig {
        cases: 12,
        max_shrink_iters: 64,
        max_shrink_time: 30_000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn incremental_equals_rebuild_equals_the_naive_model(ops in draw::ops(), batch in 1i64..6) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(check(ops, batch));
    }
}
