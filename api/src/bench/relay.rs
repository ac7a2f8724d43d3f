//! `plinth bench relay`: relay throughput from a large log, and command-to-Kafka latency.
//!
//! Runs against a scratch database created on the given server (dropped afterwards) and a
//! fresh topic prefix, so it never touches real data or topics.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use deadpool_postgres::Pool;
use hdrhistogram::Histogram;
use plinth_commands::{CommandBus, Submission};
use plinth_domain::{Actor, Command, UserId};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::message::{Headers as _, Message as _};
use rdkafka::{Offset, TopicPartitionList};
use tokio::time::Instant;
use uuid::Uuid;

use plinth_projections::kafka::{self, checkpoint, RelayConfig, TracingContext as Context};
use plinth_test_support::{seed_log, ScratchDatabase};

#[derive(Debug, clap::Args)]
pub(crate) struct BenchRelayArgs {
    #[command(flatten)]
    pub(crate) server: super::ScratchServer,
    #[arg(long, env = "PLINTH_KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    pub(crate) kafka_brokers: String,
    /// Events in the log to relay.
    #[arg(long, default_value_t = 1_000_000)]
    pub(crate) events: u64,
    /// Command rate of the latency run.
    #[arg(long, default_value_t = 500)]
    pub(crate) rate: u32,
    /// Length of the latency run, in seconds.
    #[arg(long, default_value_t = 20)]
    pub(crate) latency_seconds: u64,
    /// Keep the benchmark database instead of dropping it.
    #[arg(long)]
    pub(crate) keep_database: bool,
    /// Run the projectors beside the relay in the latency run, on the same database, as
    /// `plinth serve` does (their transactions hold the log's horizon for the relay too).
    #[arg(long)]
    pub(crate) with_projectors: bool,
}

/// What to measure.
#[derive(Debug, Clone)]
pub(crate) struct BenchOptions {
    /// A PostgreSQL URL; the scratch database is created on its server.
    pub(crate) database_url: String,
    pub(crate) brokers: String,
    /// Events in the log for the throughput run.
    pub(crate) events: u64,
    /// Steady command rate for the latency run.
    pub(crate) commands_per_second: u32,
    /// Length of the latency run.
    pub(crate) latency_duration: Duration,
    /// Keep the scratch database (and print its name) instead of dropping it.
    pub(crate) keep_database: bool,
    /// Projectors beside the relay in the latency run.
    pub(crate) with_projectors: bool,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            database_url: super::ScratchServer::LOCAL.to_owned(),
            brokers: "127.0.0.1:9092".to_owned(),
            events: 1_000_000,
            commands_per_second: 500,
            latency_duration: Duration::from_secs(20),
            keep_database: false,
            with_projectors: false,
        }
    }
}

/// The figures `plinth bench relay` prints.
#[derive(Debug, Clone)]
pub(crate) struct BenchReport {
    pub(crate) events: u64,
    pub(crate) seed_time: Duration,
    pub(crate) publish_time: Duration,
    /// Producing the same messages without the relay (`raw_produce`).
    pub(crate) raw_produce_time: Duration,
    pub(crate) commands_per_second: u32,
    pub(crate) commands: u64,
    pub(crate) command_errors: u64,
    pub(crate) received: u64,
    pub(crate) p50: Duration,
    pub(crate) p90: Duration,
    pub(crate) p99: Duration,
    pub(crate) max: Duration,
}

impl BenchReport {
    pub(crate) fn events_per_second(&self) -> f64 {
        self.events as f64 / self.publish_time.as_secs_f64().max(1e-9)
    }

    /// The same messages produced without the relay, per second.
    pub(crate) fn raw_produce_per_second(&self) -> f64 {
        self.events as f64 / self.raw_produce_time.as_secs_f64().max(1e-9)
    }
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
        let rows = [
            ("events in the log", self.events.to_string()),
            (
                "time to build the log",
                format!("{:.1} s", self.seed_time.as_secs_f64()),
            ),
            (
                "time to publish the log",
                format!("{:.1} s", self.publish_time.as_secs_f64()),
            ),
            (
                "relay throughput",
                format!("{:.0} events/s (goal >= 150000)", self.events_per_second()),
            ),
            (
                "raw produce, same messages",
                format!(
                    "{:.0} events/s (relay {:.2}x, goal >= 0.5x)",
                    self.raw_produce_per_second(),
                    self.events_per_second() / self.raw_produce_per_second()
                ),
            ),
            (
                "latency run",
                format!(
                    "{} commands at {}/s",
                    self.commands, self.commands_per_second
                ),
            ),
            ("command errors", self.command_errors.to_string()),
            ("events received", self.received.to_string()),
            ("command-to-Kafka p50", ms(self.p50)),
            ("command-to-Kafka p90", ms(self.p90)),
            ("command-to-Kafka p99", ms(self.p99)),
            ("command-to-Kafka max", ms(self.max)),
        ];
        writeln!(f, "plinth bench relay")?;
        writeln!(f, "{}", "-".repeat(64))?;
        for (k, v) in rows {
            writeln!(f, "{k:<26} {v}")?;
        }
        Ok(())
    }
}

/// `plinth bench relay`.
pub(crate) async fn run(args: BenchRelayArgs) -> anyhow::Result<()> {
    let report = bench(BenchOptions {
        database_url: args.server.database_url,
        brokers: args.kafka_brokers,
        events: args.events,
        commands_per_second: args.rate,
        latency_duration: Duration::from_secs(args.latency_seconds),
        keep_database: args.keep_database,
        with_projectors: args.with_projectors,
    })
    .await?;
    print!("{report}");
    Ok(())
}

/// Runs both measurements, each on its own scratch database and topic prefix, and returns the
/// figures. Latency first: the test broker (noida-db) answers more slowly the more messages it
/// holds (measured: command-to-Kafka p99 27 ms on a fresh broker, 249 ms once it held the
/// 1,000,000 events of a throughput run, with the same binary and log), which Apache Kafka
/// does not; measured after the throughput run, the tail would be the broker's.
pub(crate) async fn bench(options: BenchOptions) -> anyhow::Result<BenchReport> {
    let scratch = ScratchDatabase::create(&options.database_url, "plinth_bench_relay").await?;
    let latency = async {
        let pool = scratch.migrated_pool(8).await?;
        let relay = Relay::start(&options, &scratch, &pool);
        let (stop_projectors, stopped) = tokio::sync::oneshot::channel::<()>();
        let projectors = options.with_projectors.then(|| {
            tokio::spawn(plinth_projections::read::run_projectors(
                pool.clone(),
                async move {
                    let _ = stopped.await;
                },
            ))
        });
        let latency = latency_run(&options, &pool, &relay.prefix).await;
        let _ = stop_projectors.send(());
        if let Some(projectors) = projectors {
            projectors.await.context("projectors task")??;
        }
        relay.stop().await?;
        latency
    }
    .await;
    scratch.drop().await?;
    let latency = latency?;

    let scratch = ScratchDatabase::create(&options.database_url, "plinth_bench_relay").await?;
    let result = throughput(&options, &scratch).await;
    if options.keep_database {
        eprintln!("kept database {}", scratch.name);
    } else {
        scratch.drop().await?;
    }
    let (seed_time, publish_time, raw_produce_time) = result?;
    Ok(BenchReport {
        events: options.events,
        seed_time,
        publish_time,
        raw_produce_time,
        ..latency
    })
}

/// The relay under test, publishing a scratch database's log to topics of a fresh prefix.
struct Relay {
    prefix: String,
    config: RelayConfig,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Relay {
    fn start(options: &BenchOptions, scratch: &ScratchDatabase, pool: &Pool) -> Self {
        let prefix = format!("bench-{}", Uuid::now_v7().simple());
        let config = RelayConfig {
            database_url: Some(scratch.url.clone()),
            ..RelayConfig::new(&options.brokers, &prefix)
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(kafka::run(pool.clone(), config.clone(), async move {
            let _ = stopped.await;
        }));
        Self {
            prefix,
            config,
            stop,
            task,
        }
    }

    async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task.await.context("relay task")?
    }
}

/// Builds the log, then times the relay publishing all of it, then the same messages produced
/// without the relay: (seed time, publish time, raw produce time).
async fn throughput(
    options: &BenchOptions,
    scratch: &ScratchDatabase,
) -> anyhow::Result<(Duration, Duration, Duration)> {
    let pool = scratch.migrated_pool(8).await?;
    eprintln!(
        "building a log of {} events in {}",
        options.events, scratch.name
    );
    let started = Instant::now();
    seed_log(&pool, options.events, (options.events / 10).max(1)).await?;
    let seed_time = started.elapsed();

    let relay = Relay::start(options, scratch, &pool);
    eprintln!("publishing to {}.*", relay.prefix);
    let started = Instant::now();
    let head = plinth_commands::log::head_position(&pool.get().await?).await?;
    let mut last_report = Instant::now();
    loop {
        let at = checkpoint(&pool, &relay.config.name)
            .await?
            .map_or(0, |c| c.position);
        if at >= head {
            break;
        }
        anyhow::ensure!(!relay.task.is_finished(), "the relay stopped early");
        if last_report.elapsed() >= Duration::from_secs(2) {
            eprintln!("  published up to position {at} of {head}");
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let publish_time = started.elapsed();
    eprintln!("published in {:.1} s", publish_time.as_secs_f64());
    relay.stop().await?;
    let raw_produce_time = raw_produce(options, &pool).await?;
    Ok((seed_time, publish_time, raw_produce_time))
}

/// The relay's physical limit: the same log's messages produced by the relay's own producer
/// (`kafka::raw`) to topics of another fresh prefix, the log read into memory beforehand in
/// chunks whose reading is not timed; the time spent producing and confirming them.
async fn raw_produce(options: &BenchOptions, pool: &Pool) -> anyhow::Result<Duration> {
    const CHUNK: i64 = 100_000;
    let prefix = format!("bench-raw-{}", Uuid::now_v7().simple());
    eprintln!("producing the same messages without the relay to {prefix}.*");
    let mut producer =
        kafka::raw::RawProducer::new(&RelayConfig::new(&options.brokers, &prefix)).await?;
    let client = pool.get().await?;
    let (mut after, mut spent) = (plinth_commands::Checkpoint::default(), Duration::ZERO);
    loop {
        let events = plinth_commands::log::read_after(&client, after, CHUNK).await?;
        let Some(last) = events.last() else {
            break;
        };
        after = last.checkpoint();
        spent += producer.produce(&events).await?;
    }
    eprintln!("produced in {:.1} s", spent.as_secs_f64());
    Ok(spent)
}

/// Submits commands at a steady rate through the command bus and times each from submission
/// to its event's arrival at a consumer of the tenants topic.
async fn latency_run(
    options: &BenchOptions,
    pool: &Pool,
    prefix: &str,
) -> anyhow::Result<BenchReport> {
    let topic = format!("{prefix}.tenants");
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", &options.brokers)
        .set("group.id", format!("{prefix}-latency"))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10");
    let consumer: StreamConsumer<Context> = client.create_with_context(Context)?;
    // The relay creates its topics as it starts.
    let waited = Instant::now();
    let metadata = loop {
        let metadata = consumer.fetch_metadata(Some(&topic), Duration::from_secs(10))?;
        if metadata.topics().iter().any(|t| !t.partitions().is_empty()) {
            break metadata;
        }
        anyhow::ensure!(
            waited.elapsed() < Duration::from_secs(30),
            "the relay did not create {topic}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Start at the current end of every partition: only the commands below are measured.
    let mut assignment = TopicPartitionList::new();
    for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
        let (_, high) =
            consumer.fetch_watermarks(&topic, partition.id(), Duration::from_secs(10))?;
        assignment.add_partition_offset(&topic, partition.id(), Offset::Offset(high))?;
    }
    consumer.assign(&assignment)?;

    let sent: Arc<Mutex<HashMap<Uuid, Instant>>> = Arc::default();
    let commands = (options.commands_per_second as u64 * options.latency_duration.as_secs()).max(1);
    let bus = CommandBus::start(pool.clone(), 2);
    let actor = Actor::user(UserId::for_identity("bench", "relay"), true);
    eprintln!(
        "latency: {commands} commands at {}/s",
        options.commands_per_second
    );

    let submitter = {
        let sent = sent.clone();
        async move {
            let mut tick =
                tokio::time::interval(Duration::from_secs(1) / options.commands_per_second.max(1));
            let mut tasks = Vec::with_capacity(commands as usize);
            for _ in 0..commands {
                tick.tick().await;
                let command = Command::parse(
                    "CreateTenant",
                    serde_json::json!({ "name": format!("bench {}", Uuid::now_v7()) }),
                )?;
                let submission = Submission::new(actor.clone(), command);
                let bus = bus.clone();
                let sent = sent.clone();
                tasks.push(tokio::spawn(async move {
                    sent.lock()
                        .expect("not poisoned")
                        .insert(submission.correlation_id, Instant::now());
                    bus.submit(submission).await.is_ok()
                }));
            }
            let mut errors = 0u64;
            for task in tasks {
                if !task.await? {
                    errors += 1;
                }
            }
            anyhow::Ok(errors)
        }
    };
    let receiver = async {
        let mut histogram = Histogram::<u64>::new(3)?;
        let deadline = Instant::now() + options.latency_duration + Duration::from_secs(30);
        while histogram.len() < commands && Instant::now() < deadline {
            let Ok(Ok(message)) =
                tokio::time::timeout(Duration::from_millis(500), consumer.recv()).await
            else {
                continue;
            };
            let arrived = Instant::now();
            let correlation = message
                .headers()
                .and_then(|h| {
                    h.iter()
                        .find(|h| h.key == "plinth_correlation_id")
                        .and_then(|h| h.value)
                })
                .and_then(|v| std::str::from_utf8(v).ok()?.parse::<Uuid>().ok());
            let Some(submitted) =
                correlation.and_then(|c| sent.lock().expect("not poisoned").remove(&c))
            else {
                continue;
            };
            histogram.record((arrived - submitted).as_micros() as u64)?;
        }
        anyhow::Ok(histogram)
    };
    let (errors, histogram) = tokio::try_join!(submitter, receiver)?;
    let at = |q: f64| Duration::from_micros(histogram.value_at_quantile(q));
    Ok(BenchReport {
        events: 0,
        seed_time: Duration::ZERO,
        publish_time: Duration::ZERO,
        raw_produce_time: Duration::ZERO,
        commands_per_second: options.commands_per_second,
        commands,
        command_errors: errors,
        received: histogram.len(),
        p50: at(0.5),
        p90: at(0.9),
        p99: at(0.99),
        max: Duration::from_micros(histogram.max()),
    })
}
