//! Soak: the real `plinth serve` (projectors and Kafka relay included) at 500 commands/s for
//! 60 s, with reads in between. Every command and read must succeed; command latency (p50,
//! p99) and the server's memory are printed; memory must stay flat from the first 20 s to
//! the last 20 s. `PLINTH_SOAK_SECS` and `PLINTH_SOAK_RATE` change the run.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::crash::{create_tenants, free_port, Server};
use crate::relay::unique;
use crate::support::{test_db, ADMIN, HORIZON, SECRET};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_hundred_commands_a_second_for_a_minute_without_an_error_or_growth() {
    // A minute of load: apart from the tests that bound read latency.
    let _horizon = HORIZON.write().await;
    let seconds = env_or("PLINTH_SOAK_SECS", 60);
    let rate = env_or("PLINTH_SOAK_RATE", 500);
    let db = test_db().await;
    let server = Server::start(&db, free_port(), &unique("soak")).await;
    let token = plinth_api::auth::mint_dev_token(SECRET, ADMIN, 3600).unwrap();
    let tenants = create_tenants(&server.base, &token, 16).await;
    let http = reqwest::Client::new();

    let latencies = Arc::new(Mutex::new(
        hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap(),
    ));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut rss = Vec::new();
    let mut tasks = Vec::new();
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate as u32);
    let mut sent = 0u64;
    let mut next_sample = started;
    while started.elapsed() < Duration::from_secs(seconds) {
        tick.tick().await;
        if Instant::now() >= next_sample {
            rss.push(server.rss_kib());
            next_sample += Duration::from_secs(1);
        }
        let (http, base, token) = (http.clone(), server.base.clone(), token.clone());
        let tenant = tenants[sent as usize % tenants.len()].clone();
        let (latencies, failures) = (latencies.clone(), failures.clone());
        let n = sent;
        tasks.push(tokio::spawn(async move {
            let body = if n % 2 == 0 {
                json!({"type": "SetAnnotation",
                       "data": {"resource_id": tenant, "key": "example.com/soak", "value": n.to_string()}})
            } else {
                json!({"type": "UpdateTenant",
                       "data": {"tenant_id": tenant, "description": n.to_string()}})
            };
            let began = Instant::now();
            let reply = http
                .post(format!("{base}/v1/commands"))
                .bearer_auth(&token)
                .json(&body)
                .timeout(Duration::from_secs(30))
                .send()
                .await;
            let took = began.elapsed();
            match reply {
                Ok(r) if r.status() == 201 => {
                    latencies.lock().await.record(took.as_micros().max(1) as u64).unwrap();
                    // Every tenth command: read it back, as a client of the read side would.
                    if n % 10 == 0 {
                        let position = r.json::<serde_json::Value>().await.unwrap()["position"]
                            .as_i64()
                            .unwrap();
                        let read = http
                            .get(format!("{base}/v1/tenants/{tenant}?min_position={position}"))
                            .bearer_auth(&token)
                            .timeout(Duration::from_secs(30))
                            .send()
                            .await;
                        match read {
                            Ok(r) if r.status() == 200 => {}
                            Ok(r) => failures.lock().await.push(format!("read: {}", r.status())),
                            Err(e) => failures.lock().await.push(format!("read: {e}")),
                        }
                    }
                }
                Ok(r) => failures.lock().await.push(format!("command: {}", r.status())),
                Err(e) => failures.lock().await.push(format!("command: {e}")),
            }
        }));
        sent += 1;
    }
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed();
    let failures = failures.lock().await;
    assert!(
        failures.is_empty(),
        "{} of {sent} failed, first: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    let latencies = latencies.lock().await;
    let window = (rss.len() / 3).max(1);
    let first = *rss[..window].iter().max().unwrap();
    let last = *rss[rss.len() - window..].iter().max().unwrap();
    eprintln!(
        "soak: {sent} commands in {:.1} s ({:.0}/s), p50 {} µs, p99 {} µs, max {} µs; \
         server RSS max {} MiB in the first {window} s, {} MiB in the last {window} s",
        elapsed.as_secs_f64(),
        sent as f64 / elapsed.as_secs_f64(),
        latencies.value_at_quantile(0.5),
        latencies.value_at_quantile(0.99),
        latencies.max(),
        first / 1024,
        last / 1024
    );
    assert!(
        sent as f64 >= 0.9 * (rate * seconds) as f64,
        "the load fell short: {sent} commands"
    );
    // Flat: the last third of the run holds no more than the first third, give or take
    // allocator noise.
    assert!(
        last <= first + first / 4 + 16 * 1024,
        "server memory grew from {first} KiB to {last} KiB"
    );
    let status = server.terminate().await;
    assert!(status.success(), "{status}");
}
