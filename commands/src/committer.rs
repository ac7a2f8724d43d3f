//! Group commit: concurrent commands are coalesced into one transaction each, so the cost of a
//! commit (the WAL flush) is shared. A command is acknowledged only after its transaction
//! committed, and succeeds or fails on its own: when a batch fails as a whole, each of its
//! commands is re-run alone.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::sync::{mpsc, oneshot, Mutex, Notify};

use plinth_domain::{Command, DomainError, Target};

use crate::batch::{self, Caches, Processed, StreamAppeared};
use crate::error::{pg, CommandError};
use crate::sqlstate::{self, DbFailure};
use crate::submission::Submission;

/// Largest batch one transaction takes.
const MAX_BATCH: usize = 256;
/// The longest a batch waits for the batches in flight ([`stagger`]): a few of their
/// typical 1–3 ms, so that a slow one does not hold the next back for long.
const MAX_STAGGER: Duration = Duration::from_millis(5);
/// Retries of a lone command that hit a deadlock, serialization failure or a racing append.
const MAX_ATTEMPTS: usize = 5;

struct Job {
    submission: Submission,
    reply: oneshot::Sender<Processed>,
}

/// The write side's entry point: submit a command, get its committed outcome.
#[derive(Debug, Clone)]
pub struct CommandBus {
    jobs: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("command", &self.submission.command.command_type())
            .finish()
    }
}

impl CommandBus {
    /// Starts `writers` committer tasks on `pool`. Each holds one connection per batch; with
    /// more than one, a batch can be decided while another waits for its commit.
    pub fn start(pool: Pool, writers: usize) -> Self {
        Self::start_with(pool, writers, crate::snapshots::DEFAULT_CACHED_STATES)
    }

    /// [`Self::start`], the writers keeping up to `cached_states` decoded stream states.
    pub fn start_with(pool: Pool, writers: usize, cached_states: usize) -> Self {
        let (jobs, receiver) = mpsc::channel::<Job>(16 * MAX_BATCH);
        let receiver = Arc::new(Mutex::new(receiver));
        let caches = Arc::new(Caches::with_capacity(cached_states));
        let in_flight = Arc::new(InFlight::default());
        for _ in 0..writers.max(1) {
            tokio::spawn(writer(
                pool.clone(),
                receiver.clone(),
                caches.clone(),
                in_flight.clone(),
            ));
        }
        Self { jobs }
    }

    /// Decides and commits one command.
    #[tracing::instrument(level = "debug", skip_all, fields(
        command = submission.command.command_type(),
        command_id = %submission.command_id,
    ))]
    pub async fn submit(&self, submission: Submission) -> Processed {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { submission, reply })
            .await
            .map_err(|_| CommandError::Unavailable("the write side has stopped".into()))?;
        answer
            .await
            .map_err(|_| CommandError::Unavailable("the write side dropped the command".into()))?
    }
}

async fn writer(
    pool: Pool,
    receiver: Arc<Mutex<mpsc::Receiver<Job>>>,
    caches: Arc<Caches>,
    in_flight: Arc<InFlight>,
) {
    let mut deferred: Vec<Job> = Vec::new();
    loop {
        let mut jobs = std::mem::take(&mut deferred);
        if jobs.is_empty() {
            // Wait for work. The lock is held while waiting, so idle writers queue up here.
            let mut rx = receiver.lock().await;
            match rx.recv().await {
                Some(job) => jobs.push(job),
                None => return,
            }
            fill(&mut rx, &mut jobs);
            top_up(&mut rx, &mut jobs).await;
            stagger(&mut rx, &mut jobs, &in_flight).await;
        } else if let Ok(mut rx) = receiver.try_lock() {
            // With deferred work in hand never wait for the lock: an idle writer holds it
            // while it waits for new commands, which may never come.
            fill(&mut rx, &mut jobs);
        }
        let (batch, later) = split_batch(jobs);
        deferred = later;
        let (size, started) = (batch.len(), std::time::Instant::now());
        let _flying = in_flight.take_off(size);
        run_jobs(&pool, &caches, batch).await;
        let micros = started.elapsed().as_micros() as u64;
        tracing::debug!(size, deferred = deferred.len(), micros, "batch done");
    }
}

/// Splits queued jobs into this batch and the next (in arrival order). Two kinds of pairs must
/// not share a transaction:
/// - two uses of one idempotency key: the second has to see the first's stored result;
/// - a delete that checks dependents and a command that reads its target: the batch counts
///   dependents before it decides anything, so a dependent that an earlier command of the same
///   batch adds (AddResourceProviderLocation before DeleteLocation) would go uncounted. In
///   separate transactions the locks order them and the count is exact.
fn split_batch(jobs: Vec<Job>) -> (Vec<Job>, Vec<Job>) {
    let mut keys = HashSet::new();
    let mut deleting = HashSet::new();
    let mut referenced = HashSet::new();
    jobs.into_iter().partition(|job| {
        let sub = &job.submission;
        if let Some(k) = &sub.idempotency {
            if !keys.insert((sub.actor.id().to_owned(), k.key.clone())) {
                return false;
            }
        }
        let delete = match sub.command.target() {
            Target::Existing(id) if sub.command.checks_dependents() => Some(id),
            _ => None,
        };
        let references = sub.references();
        let conflicts = delete.as_ref().is_some_and(|d| referenced.contains(d))
            || references.iter().any(|r| deleting.contains(r));
        if conflicts {
            return false;
        }
        deleting.extend(delete);
        referenced.extend(references);
        true
    })
}

/// Lets the tasks that are ready run (HTTP requests being parsed, about to submit) and takes
/// what they queued, for as long as each pass brings more: bigger batches under load cost the
/// database less per command (ADR 0009), and no timer is involved, so an idle system adds no
/// latency (one pass that finds nothing new).
async fn top_up(rx: &mut mpsc::Receiver<Job>, jobs: &mut Vec<Job>) {
    while jobs.len() < MAX_BATCH {
        let before = jobs.len();
        tokio::task::yield_now().await;
        fill(rx, jobs);
        if jobs.len() == before {
            return;
        }
    }
}

/// The commands in batches that writers are running, and a signal each time one ends.
#[derive(Default)]
struct InFlight {
    commands: AtomicUsize,
    landed: Notify,
}

impl InFlight {
    /// Counts `size` commands as in flight until the returned guard drops (also when the
    /// batch's task unwinds, so that no writer waits on a batch that will never end).
    fn take_off(&self, size: usize) -> Landing<'_> {
        self.commands.fetch_add(size, Ordering::SeqCst);
        Landing { flight: self, size }
    }
}

struct Landing<'a> {
    flight: &'a InFlight,
    size: usize,
}

impl Drop for Landing<'_> {
    fn drop(&mut self) {
        self.flight.commands.fetch_sub(self.size, Ordering::SeqCst);
        self.flight.landed.notify_waiters();
    }
}

/// Holds back a batch much smaller than the batches already running, until it has grown to
/// half their size or one of them has ended. Without this the writers fall into step: one
/// takes every command that queued while the other was busy, the other starts at once with the
/// first straggler, and two in five transactions carry one to three commands, each costing
/// the database a whole transaction while the commands behind it wait for it (measured at 32
/// clients, docs/performance.md). A writer with nothing else running starts at once, so a
/// lone command never waits; otherwise the wait ends with the batches in flight, and after
/// [`MAX_STAGGER`] at most, for when one of them is slow (waiting on a lock, or re-running its
/// commands one by one after a failure).
async fn stagger<T>(rx: &mut mpsc::Receiver<T>, jobs: &mut Vec<T>, in_flight: &InFlight) {
    let give_up = tokio::time::Instant::now() + MAX_STAGGER;
    while jobs.len() < MAX_BATCH {
        // Registered before the check, so a batch that ends in between still wakes this one.
        let landed = in_flight.landed.notified();
        let flying = in_flight.commands.load(Ordering::SeqCst);
        if flying == 0 || jobs.len() * 2 >= flying {
            return;
        }
        tokio::select! {
            job = rx.recv() => match job {
                Some(job) => {
                    jobs.push(job);
                    fill(rx, jobs);
                }
                None => return,
            },
            () = landed => {}
            () = tokio::time::sleep_until(give_up) => return,
        }
    }
}

/// Takes whatever is already queued, up to a full batch, without waiting.
fn fill<T>(rx: &mut mpsc::Receiver<T>, jobs: &mut Vec<T>) {
    while jobs.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(job) => jobs.push(job),
            Err(_) => break,
        }
    }
}

async fn run_jobs(pool: &Pool, caches: &Caches, jobs: Vec<Job>) {
    metrics::histogram!("plinth_commit_batch_size").record(jobs.len() as f64);
    let (subs, replies): (Vec<Submission>, Vec<oneshot::Sender<Processed>>) = jobs
        .into_iter()
        .map(|job| (job.submission, job.reply))
        .unzip();
    if subs.len() > 1 {
        match run_once(pool, caches, &subs).await {
            Ok(results) => {
                for (reply, result) in replies.into_iter().zip(results) {
                    let _ = reply.send(result);
                }
                return;
            }
            Err(e) if sqlstate::classify(&e) == DbFailure::Unavailable => {
                // The connection failed, maybe after its COMMIT was sent: the batch may have
                // committed. Running its commands again could apply them twice, and the
                // database is likely gone anyway; each client retries (with its key).
                tracing::warn!(
                    error = format!("{e:#}"),
                    size = subs.len(),
                    "batch failed: database unavailable"
                );
                for reply in replies {
                    let _ = reply.send(Err(CommandError::Unavailable(format!("{e:#}"))));
                }
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, size = subs.len(), "batch failed; running its commands alone")
            }
        }
    }
    for (sub, reply) in subs.iter().zip(replies) {
        let result = run_alone(pool, caches, sub).await;
        let _ = reply.send(result);
    }
}

async fn run_once(
    pool: &Pool,
    caches: &Caches,
    subs: &[Submission],
) -> anyhow::Result<Vec<Processed>> {
    let mut client = pool.get().await?;
    batch::run(&mut client, subs, caches).await
}

/// Runs one command in its own transaction, mapping whole-transaction failures to its error.
async fn run_alone(pool: &Pool, caches: &Caches, sub: &Submission) -> Processed {
    let mut last_error = None;
    for attempt in 0..MAX_ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(5 * (1 << attempt))).await;
        }
        let error = match run_once(pool, caches, std::slice::from_ref(sub)).await {
            Ok(mut results) => return results.pop().expect("one result"),
            Err(e) => e,
        };
        match classify(&error, sub, attempt) {
            Retry::Again => last_error = Some(error),
            Retry::Fail(e) => return Err(e),
        }
    }
    // Still conflicting after every attempt: contention, not a bug; the client may retry.
    let error = last_error.expect("attempted");
    tracing::warn!(
        error = format!("{error:#}"),
        "command gave up after retries"
    );
    Err(CommandError::Unavailable(format!(
        "gave up after {MAX_ATTEMPTS} attempts: {error:#}"
    )))
}

enum Retry {
    Again,
    Fail(CommandError),
}

fn classify(error: &anyhow::Error, sub: &Submission, attempt: usize) -> Retry {
    if error.downcast_ref::<StreamAppeared>().is_some() {
        return Retry::Again;
    }
    // By SQLSTATE first (docs/operations.md, "Database failures"): a restart, a lost
    // connection or an overloaded server is a 503, whatever words the driver used.
    match sqlstate::classify(error) {
        DbFailure::Unavailable => {
            return Retry::Fail(CommandError::Unavailable(format!("{error:#}")))
        }
        // Rolled back whole: nothing of this attempt remains, so deciding again is safe.
        DbFailure::Conflict => return Retry::Again,
        DbFailure::Internal => {}
    }
    let Some(db) = error
        .chain()
        .find_map(|c| c.downcast_ref::<tokio_postgres::Error>())
    else {
        return Retry::Fail(CommandError::Internal(anyhow::anyhow!("{error:#}")));
    };
    if pg::is_unique_violation(db) {
        return match pg::constraint(db) {
            // A retry of an idempotent request may have lost to its own first attempt: deciding
            // again replays that attempt's result instead of reporting the name as taken.
            Some("streams_tenant_sibling_name_key")
                if sub.idempotency.is_some() && attempt == 0 =>
            {
                Retry::Again
            }
            Some("streams_tenant_sibling_name_key") => {
                Retry::Fail(CommandError::Domain(DomainError::NameTaken {
                    name: tenant_name(&sub.command),
                }))
            }
            // Another transaction stored this key first: the next attempt replays its result.
            Some("idempotency_keys_pkey") => Retry::Again,
            // Another writer appended to the stream first. Deciding again is safe, and reports
            // an accurate version conflict when the client sent an expected version.
            _ => Retry::Again,
        };
    }
    Retry::Fail(CommandError::Internal(anyhow::anyhow!("{error:#}")))
}

fn tenant_name(command: &Command) -> String {
    match command {
        Command::CreateTenant(c) => c.name.to_string(),
        Command::UpdateTenant(c) => c.name.as_ref().map(|n| n.to_string()).unwrap_or_default(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Polls `stagger` until it has waited on everything ready, without a timer: it is held
    /// back exactly when this returns `false`.
    async fn settles(wait: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>) -> bool {
        for _ in 0..10 {
            if futures::poll!(wait.as_mut()).is_ready() {
                return true;
            }
            tokio::task::yield_now().await;
        }
        false
    }

    #[tokio::test]
    async fn a_lone_batch_starts_at_once() {
        let (_tx, mut rx) = mpsc::channel::<u32>(16);
        let in_flight = InFlight::default();
        let mut jobs = vec![1];
        stagger(&mut rx, &mut jobs, &in_flight).await;
        assert_eq!(jobs, [1]);
    }

    #[tokio::test]
    async fn a_small_batch_waits_until_it_has_half_of_what_is_in_flight() {
        let (tx, mut rx) = mpsc::channel::<u32>(16);
        let in_flight = InFlight::default();
        let _running = in_flight.take_off(10);
        let mut jobs = vec![1];
        {
            let wait = stagger(&mut rx, &mut jobs, &in_flight);
            tokio::pin!(wait);
            assert!(!settles(&mut wait).await);
            for n in 2..=4 {
                tx.send(n).await.unwrap();
            }
            assert!(
                !settles(&mut wait).await,
                "4 of 10 in flight is not yet half"
            );
            tx.send(5).await.unwrap();
            assert!(settles(&mut wait).await);
        }
        assert_eq!(jobs, [1, 2, 3, 4, 5]);
    }

    #[tokio::test]
    async fn a_small_batch_starts_when_the_batch_in_flight_lands() {
        let (_tx, mut rx) = mpsc::channel::<u32>(16);
        let in_flight = InFlight::default();
        let running = in_flight.take_off(10);
        let mut jobs = vec![1];
        {
            let wait = stagger(&mut rx, &mut jobs, &in_flight);
            tokio::pin!(wait);
            assert!(!settles(&mut wait).await);
            drop(running);
            assert!(settles(&mut wait).await);
        }
        assert_eq!(jobs, [1]);
        assert_eq!(in_flight.commands.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_small_batch_stops_waiting_for_a_slow_one_in_flight() {
        let (_tx, mut rx) = mpsc::channel::<u32>(16);
        let in_flight = InFlight::default();
        let _stuck = in_flight.take_off(10);
        let mut jobs = vec![1];
        let waited = tokio::time::timeout(
            Duration::from_secs(10),
            stagger(&mut rx, &mut jobs, &in_flight),
        )
        .await;
        assert!(
            waited.is_ok(),
            "held back for as long as the batch in flight"
        );
        assert_eq!(jobs, [1]);
    }

    #[tokio::test]
    async fn a_batch_whose_task_unwinds_still_lands() {
        let in_flight = Arc::new(InFlight::default());
        let flight = in_flight.clone();
        let crashed = tokio::spawn(async move {
            let _running = flight.take_off(7);
            panic!("a batch that unwinds");
        })
        .await;
        assert!(crashed.is_err());
        assert_eq!(in_flight.commands.load(Ordering::SeqCst), 0);
    }
}
