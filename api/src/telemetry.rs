//! Logging (tracing) and the Prometheus recorder behind `/metrics`.

use std::io::IsTerminal as _;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static PROMETHEUS: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// How log lines are written (`PLINTH_LOG_FORMAT`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// One human-readable line per event; a request's fields prefix it (`request{…}:`).
    #[default]
    Text,
    /// One JSON object per line, for log collectors: the event's fields under `fields`, the
    /// request's (request id, trace id, route) under `span` and `spans`.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    /// Named in the message by its variable: that is where an operator sets it.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err("PLINTH_LOG_FORMAT must be `text` or `json`".into()),
        }
    }
}

/// Installs the global tracing subscriber in the text format. Safe to call twice.
pub fn init_tracing() {
    init_logging(LogFormat::Text);
}

/// Installs the global tracing subscriber (RUST_LOG, default `info`), writing to stderr: stdout
/// is for what a command outputs (`plinth audit export`'s data, a token), which a log line
/// would corrupt when piped. Safe to call twice: the first call wins.
pub fn init_logging(format: LogFormat) {
    init_logging_at(format, "info");
}

/// [`init_logging`] with `default` as the filter when RUST_LOG is unset.
pub fn init_logging_at(format: LogFormat, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr);
    let _ = match format {
        // Colours only for a person at a terminal: escape codes in a file or a collector are
        // noise.
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        // The current span and the whole span list: a line logged inside a nested span still
        // carries the request's fields.
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .try_init(),
    };
}

/// Buckets of the latency histograms, in seconds: from a cached read (~1 ms) to a command
/// stuck behind a slow database (10 s).
const LATENCY_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Buckets of `plinth_commit_batch_size` (commands per group commit).
const BATCH_BUCKETS: [f64; 9] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// The process-wide Prometheus recorder, installed on first use. Latencies and batch sizes are
/// histograms (buckets), not the exporter's default summaries: buckets add up across replicas,
/// quantiles do not.
pub fn prometheus() -> Option<&'static PrometheusHandle> {
    PROMETHEUS
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("plinth_commit_batch_size".into()),
                        &BATCH_BUCKETS,
                    )
                })
                .ok()?
                .install_recorder()
                .ok()
        })
        .as_ref()
}
