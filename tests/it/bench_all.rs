//! `plinth bench all --quick` with tiny sizes, through the real binary: the JSON report holds
//! every figure issue 12 asks for, each a positive number. (Sizes only; the figures themselves
//! are for `docs/performance.md`.)

use serde_json::Value;

use plinth_test_support::test_server_url;

use crate::relay::brokers;
use crate::support::run_plinth;

/// The report's required keys: section, then the figures in it.
const REQUIRED: &[(&str, &[&str])] = &[
    (
        "append",
        &[
            "commands_per_s",
            "baseline_per_s",
            "ratio_to_baseline",
            "cpu_us_per_command",
        ],
    ),
    (
        "rebuild",
        &["events_per_s", "peak_rss_mib", "ratio_to_raw_read"],
    ),
    ("relay", &["events_per_s", "ratio_to_raw_produce"]),
    ("access_check", &["p50_us", "p99_us"]),
    (
        "end_to_end",
        &[
            "read_model_p99_ms",
            "kafka_p99_ms",
            "at_2000.read_model_p99_ms",
            "loaded.read_model_p99_ms",
        ],
    ),
];

/// Each required key that is missing, not a number or not positive, as `section.key` (a key
/// may itself be a dotted path into the section).
fn faults(report: &Value) -> Vec<String> {
    REQUIRED
        .iter()
        .flat_map(|(section, keys)| keys.iter().map(move |key| (*section, *key)))
        .filter(|(section, key)| {
            let value = key.split('.').fold(&report[section], |v, k| &v[k]);
            !value.as_f64().is_some_and(|v| v > 0.0)
        })
        .map(|(section, key)| format!("{section}.{key}"))
        .collect()
}

#[test]
fn a_missing_or_zero_figure_is_named() {
    let mut report = serde_json::json!({});
    for (section, keys) in REQUIRED {
        for key in *keys {
            let mut at = &mut report[section];
            for k in key.split('.') {
                at = &mut at[k];
            }
            *at = 1.5.into();
        }
    }
    assert!(faults(&report).is_empty());
    report["end_to_end"]["loaded"]
        .as_object_mut()
        .unwrap()
        .remove("read_model_p99_ms");
    report["relay"]
        .as_object_mut()
        .unwrap()
        .remove("events_per_s");
    report["access_check"]["p99_us"] = 0.into();
    assert_eq!(
        faults(&report),
        [
            "relay.events_per_s",
            "access_check.p99_us",
            "end_to_end.loaded.read_model_p99_ms"
        ]
    );
}

#[test]
fn bench_all_quick_reports_every_figure() {
    let dir = std::env::temp_dir().join(format!("plinth-bench-all-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let (json, plot) = (dir.join("report.json"), dir.join("append.png"));
    let (database_url, brokers) = (test_server_url(), brokers());
    let (ok, output) = run_plinth(&[
        "bench",
        "all",
        "--quick",
        "--json",
        json.to_str().unwrap(),
        "--plot",
        plot.to_str().unwrap(),
        "--database-url",
        &database_url,
        "--kafka-brokers",
        &brokers,
        // Tiny: 1,211 tenants is the least the audit's whole depth-2 subtree needs.
        "--events",
        "20000",
        "--tenants",
        "1300",
        "--access-tenants",
        "1000",
        "--checks",
        "300",
        "--clients",
        "1,4",
        "--seconds",
        "1",
        "--latency-seconds",
        "2",
        "--samples",
        "3",
    ]);
    assert!(ok, "plinth bench all failed:\n{output}");
    // Its server logs warnings only (unless RUST_LOG asks for more): no line per command.
    if std::env::var_os("RUST_LOG").is_none() {
        let info = output.lines().filter(|l| l.contains(" INFO ")).count();
        assert_eq!(info, 0, "the benchmark's server logged at INFO:\n{output}");
    }
    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let png = std::fs::read(&plot).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(faults(&report), Vec::<String>::new(), "{report:#}");
    assert_eq!(&png[1..4], b"PNG");
    // The per-client-count rows are there too, one per phase.
    assert_eq!(report["append"]["rows"].as_array().map(Vec::len), Some(2));
}
