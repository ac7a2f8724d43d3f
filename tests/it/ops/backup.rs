//! The backup docs/operations.md describes: the log and the write side's tables, without the
//! read models' data; restored, `plinth replay --all` rebuilds the same read models.

use plinth_test_support::{test_server_url, ScratchDatabase};

use crate::support::{run_plinth, test_db, HORIZON};

/// Every read-model table's rows, as one digest per table (the checkpoints aside: they record
/// when they were written).
async fn read_models(url: &str) -> Vec<(String, i64, String)> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let tables: Vec<String> = client
        .query(
            "select tablename::text from pg_tables
             where schemaname = 'read' and tablename <> 'checkpoints' order by 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut digests = Vec::new();
    for table in tables {
        let row = client
            .query_one(
                &format!(
                    "select count(*), md5(coalesce(string_agg(t::text, '|' order by t::text), ''))
                     from read.{table} t"
                ),
                &[],
            )
            .await
            .unwrap();
        digests.push((table, row.get(0), row.get(1)));
    }
    digests
}

fn run(program: &str, args: &[&str]) {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn a_backup_without_read_model_data_restores_and_replays_to_the_same_read_models() {
    let db = test_db().await;
    {
        // Through the command path (real hash chains), read models brought up to date; it keeps
        // the cores busy, which tests that time reads must not see (`HORIZON`).
        let _writing = HORIZON.write().await;
        let (ok, output) = run_plinth(&[
            "seed",
            "--database-url",
            &db.url,
            "--tenants",
            "60",
            "--events",
            "1500",
        ]);
        assert!(ok, "{output}");
    }
    let original = read_models(&db.url).await;
    let (ok, output) = run_plinth(&["audit", "verify", "--database-url", &db.url]);
    assert!(ok, "the original: {output}");
    let tenants = original.iter().find(|(t, ..)| t == "tenants").unwrap();
    assert!(tenants.1 >= 60, "{original:?}");

    let dump = std::env::temp_dir().join(format!("plinth-backup-{}.dump", uuid::Uuid::new_v4()));
    let dump_path = dump.to_str().unwrap();
    run(
        "pg_dump",
        &[
            "--format=custom",
            "--exclude-table-data=read.*",
            "--file",
            dump_path,
            &db.url,
        ],
    );
    let restored = ScratchDatabase::create(&test_server_url(), "plinth_test")
        .await
        .unwrap();
    run(
        "pg_restore",
        &["--no-owner", "--dbname", &restored.url, dump_path],
    );
    let _ = std::fs::remove_file(&dump);
    let empty = read_models(&restored.url).await;
    assert!(empty.iter().all(|(_, rows, _)| *rows == 0), "{empty:?}");

    let (ok, output) = run_plinth(&["replay", "--all", "--database-url", &restored.url]);
    assert!(ok, "{output}");
    assert_eq!(read_models(&restored.url).await, original);
    let (ok, output) = run_plinth(&["audit", "verify", "--database-url", &restored.url]);
    assert!(ok, "{output}");
}
