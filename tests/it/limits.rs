//! Fair under abuse: per-principal rate limits (`PLINTH_RATE_LIMIT`).
//!
//! One caller sends ten times its limit while ten others send at ordinary rates. The noisy one
//! gets 429 with `Retry-After` for its excess; the others get no 429. Their p99 latency with
//! and without the noisy caller (rounds alternating, the median of the rounds' p99s) is printed,
//! not asserted: timing belongs in benchmarks, not in a test on a busy machine.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::{spawn_app_on, test_db, Api, ADMIN, HORIZON, SECRET};

/// Requests a second per principal.
const LIMIT: u32 = 20;
/// Each ordinary caller's rate: a quarter of the limit.
const ORDINARY_EVERY: Duration = Duration::from_millis(200);
const ORDINARY_CALLERS: usize = 10;
const ROUND: Duration = Duration::from_secs(3);
const ROUNDS: usize = 5;

/// What the ordinary callers saw in one round: each request's latency and status.
async fn ordinary_round(api: &Api, tokens: &[String]) -> Vec<(Duration, u16)> {
    let tasks: Vec<_> = tokens
        .iter()
        .map(|token| {
            let (api, token) = (api.clone(), token.clone());
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let end = Instant::now() + ROUND;
                let mut every = tokio::time::interval(ORDINARY_EVERY);
                while Instant::now() < end {
                    every.tick().await;
                    let started = Instant::now();
                    let reply = api.get(&token, "/v1/tenants").await;
                    seen.push((started.elapsed(), reply.status));
                }
                seen
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all
}

/// Sends `10 × LIMIT` requests a second as one principal until `stop`, each on its own task so
/// that slow answers do not lower the rate; returns (429s with Retry-After, other statuses).
fn noisy(api: Api, token: String, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<(u32, u32)> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(1) / (10 * LIMIT));
        let mut sent = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            every.tick().await;
            let (http, url, token) = (
                api.http.clone(),
                format!("{}/v1/tenants", api.base),
                token.clone(),
            );
            sent.push(tokio::spawn(async move {
                let response = http.get(url).bearer_auth(token).send().await.unwrap();
                let limited = response.status().as_u16() == 429
                    && response.headers().get("retry-after").is_some();
                limited
            }));
        }
        let (mut limited, mut other) = (0, 0);
        for request in sent {
            if request.await.unwrap() {
                limited += 1;
            } else {
                other += 1;
            }
        }
        (limited, other)
    })
}

fn p99(mut latencies: Vec<Duration>) -> Duration {
    latencies.sort_unstable();
    latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)]
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort_unstable();
    values[values.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_at_ten_times_its_limit_gets_429s_and_the_others_none() {
    let _quiet = HORIZON.read().await;
    let db = test_db().await;
    let mut settings = plinth_api::settings::Settings::for_database(&db.url, SECRET, &[ADMIN]);
    settings.rate_limit = LIMIT;
    let app = spawn_app_on(db, settings).await;
    let tokens: Vec<String> = (0..ORDINARY_CALLERS)
        .map(|n| app.token(&format!("ordinary-{n}")))
        .collect();
    let noisy_token = app.token("noisy");
    // Every caller recorded as a user before measuring (a first request writes an event).
    for token in tokens.iter().chain([&noisy_token]) {
        assert_eq!(app.get(token, "/v1/me").await.status, 200);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    let (mut quiet_p99s, mut noisy_p99s) = (Vec::new(), Vec::new());
    let (mut limited, mut let_through) = (0, 0);
    for _ in 0..ROUNDS {
        let alone = ordinary_round(&app.api, &tokens).await;
        let stop = Arc::new(AtomicBool::new(false));
        let flood = noisy(app.api(), noisy_token.clone(), stop.clone());
        let beside = ordinary_round(&app.api, &tokens).await;
        stop.store(true, Ordering::Relaxed);
        let (l, t) = flood.await.unwrap();
        (limited, let_through) = (limited + l, let_through + t);
        for (_, status) in alone.iter().chain(&beside) {
            assert_eq!(*status, 200, "an ordinary caller was refused");
        }
        quiet_p99s.push(p99(alone.into_iter().map(|(d, _)| d).collect()));
        noisy_p99s.push(p99(beside.into_iter().map(|(d, _)| d).collect()));
        // Let the noisy caller's bucket refill, so each round starts alike.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }

    let (quiet, beside_noisy) = (median(quiet_p99s.clone()), median(noisy_p99s.clone()));
    eprintln!(
        "ordinary p99 alone {quiet:?} (rounds {quiet_p99s:?}), beside the noisy caller \
         {beside_noisy:?} (rounds {noisy_p99s:?}); noisy: {limited} limited, {let_through} let through"
    );
    assert!(
        limited > let_through,
        "the noisy caller was not limited: {limited} 429s, {let_through} let through"
    );
    // The p99s above are reported, not asserted: a timed assertion fails on a busy machine
    // (in CI once at 11.9 ms against 1.5 × 7.8 ms), and here the flood's client shares the
    // test's two runtime threads with the ordinary callers, so the ratio measures the test's own
    // contention as much as the server's fairness. What the limit guarantees is asserted: the
    // ordinary callers are never refused (above) and the noisy one is.
}

/// A running app whose connections are bounded as `settings` says.
async fn app_with(
    change: impl FnOnce(&mut plinth_api::settings::Settings),
) -> crate::support::TestApp {
    let db = test_db().await;
    let mut settings = plinth_api::settings::Settings::for_database(&db.url, SECRET, &[ADMIN]);
    change(&mut settings);
    spawn_app_on(db, settings).await
}

/// Reads until the server closes the connection (or answers it: a 408 before closing), or
/// `give_up` passes; true when the server ended it. `trickle` sends one more header byte
/// between reads.
async fn closed_by_the_server(
    stream: &mut tokio::net::TcpStream,
    trickle: bool,
    give_up: Duration,
) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let deadline = Instant::now() + give_up;
    let mut buffer = [0u8; 512];
    while Instant::now() < deadline {
        if trickle && stream.write_all(b"x").await.is_err() {
            return true;
        }
        match tokio::time::timeout(Duration::from_millis(250), stream.read(&mut buffer)).await {
            Ok(Ok(_)) | Ok(Err(_)) => return true,
            Err(_) => {}
        }
    }
    false
}

/// A guard against a hang, far past the header read timeout of 2 s the apps below have.
const STAYED_OPEN: Duration = Duration::from_secs(45);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_connections_trickling_their_headers_neither_starve_others_nor_stay_open() {
    use tokio::io::AsyncWriteExt;
    let _quiet = HORIZON.read().await;
    let app = app_with(|s| s.header_read_timeout_secs = 2).await;
    let address = app.app.address;
    let connected = Arc::new(tokio::sync::Barrier::new(501));
    let tricklers: Vec<_> = (0..500)
        .map(|_| {
            let connected = connected.clone();
            tokio::spawn(async move {
                let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
                stream
                    .write_all(b"GET /healthz HTTP/1.1\r\nhost: plinth\r\nx-slow: ")
                    .await
                    .unwrap();
                connected.wait().await;
                closed_by_the_server(&mut stream, true, STAYED_OPEN).await
            })
        })
        .collect();
    connected.wait().await;

    // While all 500 trickle: ordinary clients are answered.
    let token = app.admin();
    for _ in 0..20 {
        let reply = app.get(&token, "/v1/me").await;
        assert_eq!(reply.status, 200, "{reply:?}");
    }
    let mut stayed_open = 0;
    for trickler in tricklers {
        if !trickler.await.unwrap() {
            stayed_open += 1;
        }
    }
    assert_eq!(
        stayed_open, 0,
        "connections trickling their headers stayed open for {STAYED_OPEN:?}"
    );
}

#[tokio::test]
async fn connections_past_the_cap_are_closed_at_once_and_the_slots_come_back() {
    let app = app_with(|s| {
        s.max_connections = 20;
        s.header_read_timeout_secs = 2;
    })
    .await;
    let address = app.app.address;
    // Twenty connections that send nothing take every slot.
    let mut silent = Vec::new();
    for _ in 0..20 {
        silent.push(tokio::net::TcpStream::connect(address).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut one_more = tokio::net::TcpStream::connect(address).await.unwrap();
    assert!(
        closed_by_the_server(&mut one_more, false, Duration::from_secs(5)).await,
        "a connection past the cap was kept"
    );
    // The silent ones are closed by the header read timeout, and their slots serve again.
    for stream in &mut silent {
        assert!(
            closed_by_the_server(stream, false, STAYED_OPEN).await,
            "a connection that sent nothing stayed open for {STAYED_OPEN:?}"
        );
    }
    let reply = app.get(&app.admin(), "/v1/me").await;
    assert_eq!(reply.status, 200, "{reply:?}");
}
