//! `plinth audit export`: the audit log, filtered as `GET /v1/audit` filters it, written to
//! stdout as JSON lines, CSV or a table.
//!
//! A platform administrator's tool: it reads the database directly (`DATABASE_URL`), with no
//! token and no tenant check, exactly as the platform administrator's audit page would. It
//! pages through the same query as the API (`queries::audit`, the `(tx, position)` cursor of
//! the log's gap-safe order), one page in memory at a time, so its memory does not grow with
//! the log; stdout carries nothing but data, and progress goes to stderr only on a terminal.

use std::io::{self, Write};

use anyhow::Context as _;
use chrono::{DateTime, SecondsFormat, Utc};
use deadpool_postgres::GenericClient;
use indicatif::ProgressBar;

use plinth_domain::{Event, TenantId, UserId};
use plinth_projections::read::queries::{self, AuditFilter, AuditItem, AuditRefusal, Viewer};

use super::progress;

/// Events per page: large enough that a round trip per page is cheap next to writing it.
const PAGE: i64 = 1000;

#[derive(Debug, clap::Args)]
pub(crate) struct ExportArgs {
    /// The database to read (directly: no token, no tenant check).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,
    /// That tenant's whole subtree (the streams its tenants govern).
    #[arg(long, value_parser = parse_tenant)]
    tenant: Option<String>,
    /// Events recorded for commands of this user.
    #[arg(long, value_parser = parse_user)]
    actor: Option<String>,
    /// Events of this type (e.g. `TenantCreated`).
    #[arg(long, value_parser = parse_event_type)]
    event_type: Option<String>,
    /// Recorded at or after this time (RFC 3339).
    #[arg(long)]
    since: Option<DateTime<Utc>>,
    /// Recorded before this time (RFC 3339).
    #[arg(long)]
    until: Option<DateTime<Utc>>,
    /// One stream's events.
    #[arg(long)]
    stream: Option<String>,
    /// Everything done for one originating request.
    #[arg(long)]
    correlation: Option<uuid::Uuid>,
    #[arg(long, value_enum)]
    format: Format,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Format {
    /// One JSON object per line, with the fields of the audit API's items.
    Jsonl,
    /// A header line, then one row per event (`data` as JSON text).
    Csv,
    /// Aligned columns for reading, without `data`.
    Table,
}

fn parse_tenant(raw: &str) -> Result<String, String> {
    TenantId::parse(raw)
        .map(|t| t.to_string())
        .map_err(|e| e.to_string())
}

fn parse_user(raw: &str) -> Result<String, String> {
    UserId::parse(raw)
        .map(|u| u.to_string())
        .map_err(|e| e.to_string())
}

fn parse_event_type(raw: &str) -> Result<String, String> {
    if Event::TYPES.contains(&raw) {
        Ok(raw.to_owned())
    } else {
        Err(format!("`{raw}` is not an event type"))
    }
}

pub(crate) async fn export(args: ExportArgs) -> anyhow::Result<()> {
    let pool = plinth_commands::pool(&args.database_url, 1)?;
    let client = pool
        .get()
        .await
        .context("failed to connect to the database")?;
    let filter = AuditFilter {
        tenant_id: args.tenant,
        stream_id: args.stream,
        actor: args.actor,
        correlation_id: args.correlation,
        event_type: args.event_type,
        since: args.since,
        until: args.until,
    };
    // A counter: the total is not known without counting the matches first, which would cost
    // a second pass over them.
    let bar = progress::on_terminal(
        None,
        "{spinner} [{elapsed_precise}] {human_pos} events ({per_sec})",
    );
    let stdout = io::BufWriter::new(io::stdout().lock());
    let written = write_audit(&client, &filter, args.format, stdout, &bar).await;
    bar.finish_and_clear();
    match written {
        // The reader went away (`| head`): what it wanted was written.
        Err(e) if is_broken_pipe(&e) => Ok(()),
        other => other.map(|_| ()),
    }
}

/// Writes every event that passes `filter` to `writer` as `format`, a page at a time in log
/// order, counting them on `bar`; returns how many it wrote.
pub(crate) async fn write_audit(
    client: &impl GenericClient,
    filter: &AuditFilter,
    format: Format,
    writer: impl Write,
    bar: &ProgressBar,
) -> anyhow::Result<u64> {
    let mut out = Output::new(format, writer);
    let mut page = queries::PageRequest {
        after: None,
        limit: PAGE,
    };
    let mut written = 0;
    loop {
        let items = match queries::audit(client, &Viewer::Platform, filter, &page).await? {
            Ok(items) => items,
            Err(AuditRefusal::TenantNotVisible) => anyhow::bail!(
                "tenant {} not found",
                filter.tenant_id.as_deref().unwrap_or_default()
            ),
            Err(AuditRefusal::NeedsTenant) => unreachable!("the platform may read everything"),
        };
        // After the first page, not before: an unknown tenant leaves stdout empty.
        if page.after.is_none() {
            out.header()?;
        }
        for item in &items.items {
            out.item(item)?;
        }
        written += items.items.len() as u64;
        bar.inc(items.items.len() as u64);
        match items.next {
            Some(next) => page.after = Some(next),
            None => break,
        }
    }
    out.finish()?;
    Ok(written)
}

/// Whether `error` is a write to a closed pipe, whichever writer (io, csv, serde_json) met it.
fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error
        .chain()
        .any(|cause| io_kind(cause) == Some(io::ErrorKind::BrokenPipe))
}

fn io_kind(cause: &(dyn std::error::Error + 'static)) -> Option<io::ErrorKind> {
    if let Some(e) = cause.downcast_ref::<io::Error>() {
        return Some(e.kind());
    }
    if let Some(e) = cause.downcast_ref::<serde_json::Error>() {
        return e.io_error_kind();
    }
    match cause.downcast_ref::<csv::Error>()?.kind() {
        csv::ErrorKind::Io(e) => Some(e.kind()),
        _ => None,
    }
}

/// The columns of the CSV and the table, in order.
const COLUMNS: [&str; 11] = [
    "position",
    "recorded_at",
    "event_type",
    "stream_id",
    "stream_version",
    "actor",
    "event_id",
    "command_id",
    "correlation_id",
    "causation_id",
    "data",
];

/// Where items go, in the chosen format.
enum Output<W: Write> {
    Jsonl(W),
    Csv(Box<csv::Writer<W>>),
    Table(W),
}

impl<W: Write> Output<W> {
    fn new(format: Format, writer: W) -> Self {
        match format {
            Format::Jsonl => Self::Jsonl(writer),
            Format::Csv => Self::Csv(Box::new(csv::Writer::from_writer(writer))),
            Format::Table => Self::Table(writer),
        }
    }

    fn header(&mut self) -> anyhow::Result<()> {
        match self {
            Self::Jsonl(_) => {}
            Self::Csv(w) => w.write_record(COLUMNS)?,
            Self::Table(w) => {
                let [position, recorded_at, event_type, stream_id, version, actor, event_id, ..] =
                    COLUMNS;
                table_row(
                    w,
                    [
                        position,
                        recorded_at,
                        event_type,
                        stream_id,
                        version,
                        actor,
                        event_id,
                    ],
                )?;
            }
        }
        Ok(())
    }

    fn item(&mut self, item: &AuditItem) -> anyhow::Result<()> {
        match self {
            Self::Jsonl(w) => {
                serde_json::to_writer(&mut *w, item)?;
                w.write_all(b"\n")?;
            }
            Self::Csv(w) => w.write_record(csv_record(item))?,
            Self::Table(w) => table_row(
                w,
                [
                    &item.position.to_string(),
                    &timestamp(item.recorded_at),
                    &item.event_type,
                    &item.stream_id,
                    &item.stream_version.to_string(),
                    item.actor.as_deref().unwrap_or("-"),
                    &item.event_id.to_string(),
                ],
            )?,
        }
        Ok(())
    }

    fn finish(self) -> anyhow::Result<()> {
        match self {
            Self::Jsonl(mut w) | Self::Table(mut w) => w.flush()?,
            Self::Csv(mut w) => w.flush()?,
        }
        Ok(())
    }
}

fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn csv_record(item: &AuditItem) -> [String; 11] {
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    [
        item.position.to_string(),
        timestamp(item.recorded_at),
        item.event_type.clone(),
        item.stream_id.clone(),
        item.stream_version.to_string(),
        text(&item.actor),
        item.event_id.to_string(),
        text(&item.command_id),
        text(&item.correlation_id),
        text(&item.causation_id),
        item.data.to_string(),
    ]
}

/// Column widths of the table: fixed rather than measured, because measuring would need every
/// row before the first is printed. Prefixed ids are 29 characters, user ids (the actor) 51
/// (29 for users recorded before ADR 0014), UUIDs 36, timestamps 27; event types are at most 35.
/// A longer value (a user's stream id) pushes its row's later columns to the right.
const WIDTHS: [usize; 7] = [10, 27, 35, 29, 7, 51, 36];

fn table_row(w: &mut impl Write, cells: [&str; 7]) -> io::Result<()> {
    let [position, rest @ ..] = cells;
    write!(w, "{position:>width$}", width = WIDTHS[0])?;
    for (cell, width) in rest.iter().zip(&WIDTHS[1..]) {
        write!(w, "  {cell:<width$}")?;
    }
    writeln!(w)
}
