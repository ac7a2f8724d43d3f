//! The report of `plinth bench all`: the JSON written with `--json` (its required keys are the
//! issue's: `append`, `rebuild`, `relay`, `access_check`, `end_to_end`; the rest is detail) and
//! the table printed against the goals.

use serde::Serialize;

use super::access::AccessReport;
use super::append::AppendRow;
use super::audit::AuditReport;
use super::end_to_end::EndToEndReport;
use super::rebuild::RebuildReport;
use super::relay;

#[derive(Debug, Serialize)]
pub(crate) struct Report {
    /// `quick` or `full`.
    pub(crate) mode: &'static str,
    pub(crate) append: AppendSummary,
    pub(crate) rebuild: RebuildSummary,
    pub(crate) relay: RelaySummary,
    pub(crate) access_check: AccessReport,
    pub(crate) audit_page: AuditReport,
    pub(crate) end_to_end: EndToEndSummary,
}

/// The figures at the largest client count (32 in both modes), and every row.
#[derive(Debug, Serialize)]
pub(crate) struct AppendSummary {
    pub(crate) clients: usize,
    pub(crate) commands_per_s: f64,
    pub(crate) baseline_per_s: f64,
    pub(crate) ratio_to_baseline: f64,
    pub(crate) cpu_us_per_command: f64,
    pub(crate) pg_cpu_us_per_command: f64,
    pub(crate) client_cpu_us_per_command: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) phase_seconds: u64,
    pub(crate) rows: Vec<AppendRow>,
}

impl AppendSummary {
    pub(crate) fn of(rows: Vec<AppendRow>, phase_seconds: u64) -> anyhow::Result<Self> {
        let top = rows
            .iter()
            .max_by_key(|r| r.clients)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("no append phase ran"))?;
        Ok(Self {
            clients: top.clients,
            commands_per_s: top.commands_per_s,
            baseline_per_s: top.baseline_per_s,
            ratio_to_baseline: top.ratio_to_baseline,
            cpu_us_per_command: top.cpu_us_per_command,
            pg_cpu_us_per_command: top.pg_cpu_us_per_command,
            client_cpu_us_per_command: top.client_cpu_us_per_command,
            p50_ms: top.p50_ms,
            p99_ms: top.p99_ms,
            phase_seconds,
            rows,
        })
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct RebuildSummary {
    pub(crate) events: u64,
    pub(crate) tenants: usize,
    pub(crate) seconds: f64,
    pub(crate) events_per_s: f64,
    /// The rebuild's rate over a raw sequential read of the same log with the same client.
    pub(crate) ratio_to_raw_read: f64,
    pub(crate) raw_read_events_per_s: f64,
    pub(crate) peak_rss_mib: f64,
    pub(crate) peak_rss_before_mib: f64,
}

impl From<&RebuildReport> for RebuildSummary {
    fn from(r: &RebuildReport) -> Self {
        Self {
            events: r.events,
            tenants: r.tenants,
            seconds: r.rebuild.as_secs_f64(),
            events_per_s: r.rebuild_events_per_sec,
            ratio_to_raw_read: r.rebuild_events_per_sec / r.raw_read_events_per_sec,
            raw_read_events_per_s: r.raw_read_events_per_sec,
            peak_rss_mib: r.peak_rss_after_kib as f64 / 1024.0,
            peak_rss_before_mib: r.peak_rss_before_kib as f64 / 1024.0,
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct RelaySummary {
    pub(crate) events: u64,
    pub(crate) seconds: f64,
    pub(crate) events_per_s: f64,
    /// The relay's rate over producing the same messages without it (same producer).
    pub(crate) ratio_to_raw_produce: f64,
    pub(crate) raw_produce_events_per_s: f64,
}

#[derive(Debug, Serialize)]
pub(crate) struct EndToEndSummary {
    pub(crate) commands_per_second: u32,
    pub(crate) read_model_p50_ms: f64,
    pub(crate) read_model_p99_ms: f64,
    pub(crate) kafka_p50_ms: f64,
    pub(crate) kafka_p99_ms: f64,
    /// The read-model run in full (command latency, errors, max).
    pub(crate) read_model: EndToEndReport,
    /// The same at 2,000 commands/s.
    pub(crate) at_2000: EndToEndReport,
    /// The same at 500 commands/s beside a CPU hog (a thread spinning at normal priority).
    pub(crate) loaded: EndToEndReport,
    pub(crate) kafka_commands: u64,
    pub(crate) kafka_received: u64,
    pub(crate) kafka_command_errors: u64,
}

impl RelaySummary {
    pub(crate) fn of(r: &relay::BenchReport) -> Self {
        Self {
            events: r.events,
            seconds: r.publish_time.as_secs_f64(),
            events_per_s: r.events_per_second(),
            ratio_to_raw_produce: r.events_per_second() / r.raw_produce_per_second(),
            raw_produce_events_per_s: r.raw_produce_per_second(),
        }
    }
}

impl EndToEndSummary {
    pub(crate) fn of(
        read_model: EndToEndReport,
        at_2000: EndToEndReport,
        loaded: EndToEndReport,
        kafka: &relay::BenchReport,
    ) -> Self {
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
        Self {
            commands_per_second: read_model.commands_per_second,
            read_model_p50_ms: read_model.read_model_p50_ms,
            read_model_p99_ms: read_model.read_model_p99_ms,
            kafka_p50_ms: ms(kafka.p50),
            kafka_p99_ms: ms(kafka.p99),
            read_model,
            at_2000,
            loaded,
            kafka_commands: kafka.commands,
            kafka_received: kafka.received,
            kafka_command_errors: kafka.command_errors,
        }
    }
}

impl Report {
    /// The measures against the goals, as a Markdown table.
    pub(crate) fn goals_table(&self) -> String {
        let a = &self.append;
        let e = &self.end_to_end;
        let met = |ok: bool| if ok { "met" } else { "**not met**" };
        let rows = [
            (
                format!("append at {} clients, ratio to baseline", a.clients),
                format!(
                    "{:.0} vs {:.0} commands/s = {:.2}×",
                    a.commands_per_s, a.baseline_per_s, a.ratio_to_baseline
                ),
                "≥ 2.0× (floor 0.7×)",
                met(a.ratio_to_baseline >= 2.0),
            ),
            (
                format!(
                    "server / PostgreSQL CPU per command ({} clients)",
                    a.clients
                ),
                format!(
                    "{:.0} µs / {:.0} µs",
                    a.cpu_us_per_command, a.pg_cpu_us_per_command
                ),
                "—",
                "",
            ),
            (
                format!("rebuild ({} events)", self.rebuild.events),
                format!(
                    "{:.0} events/s, peak RSS {:.0} MiB",
                    self.rebuild.events_per_s, self.rebuild.peak_rss_mib
                ),
                "≥ 200,000 events/s, flat memory",
                met(self.rebuild.events_per_s >= 200_000.0),
            ),
            (
                "rebuild, ratio to a raw read of the log".to_owned(),
                format!(
                    "{:.2}× ({:.0} events/s raw)",
                    self.rebuild.ratio_to_raw_read, self.rebuild.raw_read_events_per_s
                ),
                "≥ 0.5×",
                met(self.rebuild.ratio_to_raw_read >= 0.5),
            ),
            (
                format!("relay ({} events)", self.relay.events),
                format!("{:.0} events/s", self.relay.events_per_s),
                "≥ 150,000 events/s",
                met(self.relay.events_per_s >= 150_000.0),
            ),
            (
                "relay, ratio to producing the same messages".to_owned(),
                format!(
                    "{:.2}× ({:.0} events/s raw)",
                    self.relay.ratio_to_raw_produce, self.relay.raw_produce_events_per_s
                ),
                "≥ 0.5×",
                met(self.relay.ratio_to_raw_produce >= 0.5),
            ),
            (
                format!("access check ({} tenants)", self.access_check.tenants),
                format!(
                    "p50 {} µs, p99 {} µs",
                    self.access_check.p50_us, self.access_check.p99_us
                ),
                "p99 ≤ 1,000 µs at 100,000 tenants",
                met(self.access_check.p99_us <= 1_000 && self.access_check.tenants >= 100_000),
            ),
            (
                format!(
                    "/api/v1/allow check ({} tenants)",
                    self.access_check.tenants
                ),
                format!(
                    "p50 {} µs, p99 {} µs",
                    self.access_check.allow.p50_us, self.access_check.allow.p99_us
                ),
                "p99 ≤ 1,000 µs at 100,000 tenants",
                met(self.access_check.allow.p99_us <= 1_000 && self.access_check.tenants >= 100_000),
            ),
            (
                format!("command → read model at {}/s", e.commands_per_second),
                format!(
                    "p50 {:.1} ms, p99 {:.1} ms",
                    e.read_model_p50_ms, e.read_model_p99_ms
                ),
                "p99 ≤ 25 ms",
                met(e.read_model_p99_ms <= 25.0),
            ),
            (
                format!(
                    "command → read model at {}/s",
                    e.at_2000.commands_per_second
                ),
                format!(
                    "p50 {:.1} ms, p99 {:.1} ms",
                    e.at_2000.read_model_p50_ms, e.at_2000.read_model_p99_ms
                ),
                "p99 ≤ 50 ms",
                met(e.at_2000.read_model_p99_ms <= 50.0),
            ),
            (
                format!(
                    "command → read model at {}/s beside a CPU hog",
                    e.loaded.commands_per_second
                ),
                format!(
                    "p50 {:.1} ms, p99 {:.1} ms, {} errors",
                    e.loaded.read_model_p50_ms, e.loaded.read_model_p99_ms, e.loaded.errors
                ),
                "p99 ≤ 2× the idle run's, no read out of its budget",
                met(e.loaded.read_model_p99_ms <= 2.0 * e.read_model_p99_ms && e.loaded.errors == 0),
            ),
            (
                format!("command → Kafka at {}/s", e.commands_per_second),
                format!("p50 {:.1} ms, p99 {:.1} ms", e.kafka_p50_ms, e.kafka_p99_ms),
                "p99 ≤ 35 ms",
                met(e.kafka_p99_ms <= 35.0),
            ),
            (
                "audit page, tenant subtree (first page)".to_owned(),
                format!(
                    "p50 {:.1} ms, p99 {:.1} ms",
                    self.audit_page.subtree_first_page.p50_us as f64 / 1000.0,
                    self.audit_page.subtree_first_page.p99_us as f64 / 1000.0
                ),
                "—",
                "",
            ),
        ];
        let mut table = String::from("| measure | result | goal | |\n|---|---|---|---|\n");
        for (measure, result, goal, verdict) in rows {
            table.push_str(&format!("| {measure} | {result} | {goal} | {verdict} |\n"));
        }
        table
    }
}
