//! One transaction for a batch of commands (group commit): lock the streams they need, then load
//! them, in a few bulk statements (locks before anything that takes a transaction id:
//! `locks.rs`, docs/adr/0004-log-order.md), decide each in order against the evolving in-memory state, then write all
//! events, stream rows and idempotency keys in bulk and commit once.
//!
//! Each command's decision is its own: a refused command leaves the batch's state untouched.
//! If the bulk write fails (a unique index caught a race, a deadlock), the caller re-runs each
//! command alone, so no command fails because of another.

use std::collections::HashMap;

use anyhow::Context as _;
use deadpool_postgres::{Client, GenericClient};
use plinth_domain::{decide, Aggregate, Body, Target};
use tokio_postgres::types::ToSql;

use crate::error::CommandError;
use crate::locks::{self, Chains};
use crate::model::{AppendedEvent, CommandOutcome, EventMetadata};
use crate::rows::{self, Entry, EventRow, World};
use crate::snapshots::Snapshots;
use crate::submission::Submission;

/// A stream named by the batch appeared after its locks were computed; the batch must run again.
#[derive(Debug, thiserror::Error)]
#[error("a stream named by the batch appeared while its locks were taken; try again")]
pub(crate) struct StreamAppeared;

/// What the writers remember between transactions: facts that, once committed, never change.
#[derive(Debug)]
pub(crate) struct Caches {
    pub(crate) chains: Chains,
    pub(crate) snapshots: Snapshots,
}

impl Caches {
    pub(crate) fn with_capacity(cached_states: usize) -> Self {
        Self {
            chains: Chains::default(),
            snapshots: Snapshots::with_capacity(cached_states),
        }
    }
}

/// A command's result; `bool` is true when it was replayed from its idempotency key.
pub type Processed = Result<(CommandOutcome, bool), CommandError>;

/// A successful decision waiting for its positions.
struct Pending {
    index: usize,
    stream_id: String,
    version: i64,
    rows: std::ops::Range<usize>,
    /// For commands that appended nothing: where the stream's last event is.
    last_row: Option<usize>,
    last_position: i64,
}

/// Runs `subs` in one transaction. `Err` means the transaction failed as a whole and nothing
/// was written; per-command refusals are inside `Ok`.
///
/// The transaction costs two round trips however many commands it holds: one pipeline opens it,
/// locks and then loads every stream the batch needs, counts dependents and looks up idempotency
/// keys; after deciding in memory, a second pipeline writes everything and commits. (With
/// idempotency keys to store, a third: their stored responses need the positions. Streams whose
/// chains are not cached yet cost one lookup before the transaction.)
///
/// A batch that only creates streams, and reads only streams whose committed states the
/// writers have cached, costs one: it is decided on those states first, then one pipeline opens
/// the transaction, locks, writes only if every stream read is still at the version decided on,
/// and commits (ADR 0015). Held back, it runs again as above.
#[tracing::instrument(level = "debug", skip_all, fields(commands = subs.len()))]
pub(crate) async fn run(
    client: &mut Client,
    subs: &[Submission],
    caches: &Caches,
) -> anyhow::Result<Vec<Processed>> {
    let result = run_pipelined(client, subs, caches).await;
    if result.is_err() {
        // Leave no transaction open on a pooled connection. After a pipelined COMMIT of a
        // failed transaction there is none, and this only draws a warning.
        let _ = client.batch_execute("rollback").await;
    }
    result
}

async fn run_pipelined(
    client: &Client,
    subs: &[Submission],
    caches: &Caches,
) -> anyhow::Result<Vec<Processed>> {
    // Pick the streams each command writes; new streams get fresh, time-ordered ids.
    let targets: Vec<String> = subs
        .iter()
        .map(|s| match s.command.target() {
            Target::New(kind) => kind.new_stream_id(),
            Target::Existing(id) => id,
        })
        .collect();
    // New streams cannot exist yet (their ids were just made), so only existing targets lock.
    let mut existing: Vec<String> = subs
        .iter()
        .zip(&targets)
        .filter(|(s, _)| matches!(s.command.target(), Target::Existing(_)))
        .map(|(_, t)| t.clone())
        .collect();
    existing.sort();
    existing.dedup();
    // Everything the decisions read, targets included; their chains come with them.
    let mut shared: Vec<String> = subs
        .iter()
        .flat_map(|s| s.references())
        .chain(existing.iter().cloned())
        .collect();
    shared.sort();
    shared.dedup();
    let deleting: Vec<&str> = subs
        .iter()
        .zip(&targets)
        .filter(|(s, _)| s.command.checks_dependents())
        .map(|(_, t)| t.as_str())
        .collect();
    let keyed: Vec<(usize, &str, &str)> = subs
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            s.idempotency
                .as_ref()
                .map(|k| (i, s.actor.id(), k.key.as_str()))
        })
        .collect();
    let key_users: Vec<&str> = keyed.iter().map(|k| k.1).collect();
    let key_names: Vec<&str> = keyed.iter().map(|k| k.2).collect();

    // The chains come first, outside the transaction: they never change once a stream exists.
    let chains = caches.chains.of(client, &shared).await?;
    let locks = locks::batch_locks(&existing, &shared, &chains);
    // Everything loaded: the named streams and every tenant in their chains.
    let mut loading: Vec<String> = shared
        .iter()
        .chain(chains.values().flatten())
        .cloned()
        .collect();
    loading.sort();
    loading.dedup();
    let held = caches.snapshots.held(&loading);
    let cached_versions = held.versions(&loading);
    let (lock, load, count_dependents, find_keys) = futures::try_join!(
        client.prepare_cached(locks::LOCK_SQL),
        client.prepare_cached(rows::LOAD_SQL),
        client.prepare_cached(COUNT_DEPENDENTS),
        client.prepare_cached(FIND_KEYS),
    )?;
    let lock_params = locks.params();
    if deleting.is_empty() && keyed.is_empty() && existing.is_empty() {
        if let Some(world) = cached_world(&loading, &held, &chains) {
            let guard = Guard {
                lock: (!locks.is_empty()).then_some((&lock, &lock_params[..])),
                ids: &loading,
                versions: &cached_versions,
            };
            let results = subs.iter().map(|_| None).collect();
            if let Some(done) =
                decide_and_write(client, subs, &targets, world, results, caches, Some(guard))
                    .await?
            {
                metrics::counter!("plinth_batches_total", "path" => "cached").increment(1);
                return Ok(done);
            }
            // A stream it read changed since it was cached (another process wrote it), or
            // every command was refused: decide again on states loaded under the locks.
            metrics::counter!("plinth_batches_total", "path" => "cached_retried").increment(1);
        }
    }
    let load_params: [&(dyn ToSql + Sync); 3] =
        [&loading, &cached_versions, &rows::SNAPSHOT_VERSION];
    let dependents_params: [&(dyn ToSql + Sync); 1] = [&deleting];
    let keys_params: [&(dyn ToSql + Sync); 2] = [&key_users, &key_names];
    // Locks first, then reads, as separate statements of one pipeline: each statement takes
    // its snapshot when it starts, after the locks are held, so it sees every commit it waited
    // for. Nothing here takes a transaction id; the write below does (docs/adr/0004).
    let (begun, locked, loaded, dependents, keys_found) = futures::join!(
        client.batch_execute("begin"),
        query_unless_empty(client, locks.is_empty(), &lock, &lock_params),
        query_unless_empty(client, loading.is_empty(), &load, &load_params),
        query_unless_empty(
            client,
            deleting.is_empty(),
            &count_dependents,
            &dependents_params
        ),
        query_unless_empty(client, keyed.is_empty(), &find_keys, &keys_params),
    );
    begun.context("failed to begin")?;
    locked?;
    let mut world = World::default();
    rows::add_rows(client, &mut world, loaded?, &held, &caches.snapshots).await?;
    if shared
        .iter()
        .any(|id| world.streams.contains_key(id) && !chains.contains_key(id))
    {
        // A named stream committed after its chain was looked up, so its chain is not locked.
        // Rare (ids are handed out after their stream commits); start over.
        return Err(StreamAppeared.into());
    }
    for row in dependents? {
        world.dependents.insert(row.get(0), row.get(1));
    }
    let mut results: Vec<Option<Processed>> = subs.iter().map(|_| None).collect();
    replay_idempotent(subs, &keyed, keys_found?, &mut results)?;
    metrics::counter!("plinth_batches_total", "path" => "loaded").increment(1);
    let done = decide_and_write(client, subs, &targets, world, results, caches, None).await?;
    Ok(done.expect("an unguarded write is never held back"))
}

/// What a batch decided on cached states must find still true when it writes.
struct Guard<'a> {
    /// The lock statement and its parameters, sent in the write's pipeline.
    lock: Option<(&'a tokio_postgres::Statement, &'a [&'a (dyn ToSql + Sync)])>,
    ids: &'a [String],
    versions: &'a [i64],
}

/// The batch's streams from the writers' caches, when every one it reads is cached: a batch of
/// new streams (nothing appended to an existing one, whose chain head is not cached) can then
/// be decided before anything is read, and written in one round trip with its locks
/// (ADR 0015).
fn cached_world(
    loading: &[String],
    held: &crate::snapshots::Held,
    chains: &HashMap<String, Vec<String>>,
) -> Option<World> {
    let versions = held.versions(loading);
    let mut world = World::default();
    for (id, version) in loading.iter().zip(versions) {
        let state = held.get(id, version)?;
        // A tenant's scope path ends with itself: its chain, or a prefix of one naming it.
        let scope_path = chains.get(id).cloned().or_else(|| {
            chains.values().find_map(|chain| {
                let at = chain.iter().position(|t| t == id)?;
                Some(chain[..=at].to_vec())
            })
        })?;
        let entry = Entry {
            version,
            agg: Some(state),
            scope_path,
            ..Entry::new_stream()
        };
        world.streams.insert(id.clone(), entry);
    }
    Some(world)
}

/// Decides the commands not answered yet on `world`, then writes and commits. With a `guard`
/// (a batch decided on cached states) the transaction opens here, in the write's pipeline, and
/// `None` means nothing was written: a stream read had moved on, or no command appended.
async fn decide_and_write(
    client: &Client,
    subs: &[Submission],
    targets: &[String],
    mut world: World,
    mut results: Vec<Option<Processed>>,
    caches: &Caches,
    guard: Option<Guard<'_>>,
) -> anyhow::Result<Option<Vec<Processed>>> {
    let todo: Vec<usize> = (0..subs.len()).filter(|i| results[*i].is_none()).collect();

    let now = rows::now_micros();
    let mut event_rows: Vec<EventRow> = Vec::new();
    let mut pending: Vec<Pending> = Vec::new();
    for &i in &todo {
        let sub = &subs[i];
        let target = &targets[i];
        let current = world.streams.get(target).map_or(0, |e| e.version);
        if let Some(expected) = sub.expected_version {
            if expected != current {
                results[i] = Some(Err(CommandError::VersionConflict {
                    stream_id: target.clone(),
                    expected,
                    actual: current,
                }));
                continue;
            }
        }
        let events = match decide(&sub.command, &sub.actor, target, &world, now) {
            Ok(events) => events,
            Err(e) => {
                results[i] = Some(Err(e.into()));
                continue;
            }
        };
        let metadata = EventMetadata {
            actor: Some(sub.actor.id().to_owned()),
            command_id: sub.command_id,
            correlation_id: sub.correlation_id,
            causation_id: sub.causation_id.unwrap_or(sub.command_id),
            traceparent: sub.traceparent.clone(),
        };
        let is_new = !world.streams.contains_key(target);
        let mut entry = world
            .streams
            .remove(target)
            .unwrap_or_else(Entry::new_stream);
        let first_row = event_rows.len();
        rows::append_in_memory(&mut entry, target, &events, &metadata, now, &mut event_rows)?;
        if is_new {
            if let Some(agg) = &entry.agg {
                entry.scope_path = scope_path_of_new(&world, target, agg);
                count_dependent(&mut world, agg, 1);
            }
        } else if entry
            .agg
            .as_ref()
            .is_some_and(|a| a.lifecycle == plinth_domain::Lifecycle::Deleted)
            && !events.is_empty()
        {
            if let Some(agg) = &entry.agg {
                count_dependent(&mut world, agg, -1);
            }
        }
        pending.push(Pending {
            index: i,
            stream_id: target.clone(),
            version: entry.version,
            rows: first_row..event_rows.len(),
            last_row: entry.last_row,
            last_position: entry.last_position,
        });
        world.streams.insert(target.clone(), entry);
    }

    let mut keys = IdempotencyRows::default();
    let needs_keys = todo.iter().any(|i| subs[*i].idempotency.is_some());
    // One statement writes every event and stream row and notifies readers; the commit rides
    // in the same pipeline when no idempotency key waits for the positions. If the write fails,
    // PostgreSQL turns the pipelined COMMIT into a rollback.
    //
    // Results of a pipeline are checked in the order sent: after a failure PostgreSQL answers
    // every later statement with "transaction aborted", and the first error is the cause.
    // Statements are prepared first: a query goes out on its future's first poll only when
    // nothing before it awaits, and the write must reach the server before the COMMIT does.
    let (write, store_keys) = futures::try_join!(
        client.prepare_cached(rows::WRITE_SQL),
        client.prepare_cached(STORE_KEYS)
    )?;
    let mut write_params = rows::WriteParams::new(&event_rows, &world)?;
    if let Some(guard) = &guard {
        if event_rows.is_empty() {
            // Refusals decided on cached states are checked by no write: decide them again.
            return Ok(None);
        }
        write_params = write_params.guarded(guard.ids, guard.versions);
    }
    let params = write_params.params();
    let unguarded = "an unguarded write returned no position for an event";
    let positions = if event_rows.is_empty() {
        Vec::new()
    } else if let Some(guard) = &guard {
        // One pipeline: open, lock, write if nothing read has moved on, commit. The write
        // starts after the locks are held (docs/adr/0004), so its guard sees their commits.
        let locking = async {
            match guard.lock {
                Some((statement, lock_params)) => client.query(statement, lock_params).await,
                None => Ok(Vec::new()),
            }
        };
        let (begun, locked, written, committed) = futures::join!(
            client.batch_execute("begin"),
            locking,
            client.query(&write, &params),
            client.batch_execute("commit")
        );
        begun.context("failed to begin")?;
        locked?;
        let written = written?;
        committed.context("failed to commit")?;
        match write_params.positions(&written) {
            Some(positions) => positions,
            // Held back: the transaction committed nothing but its locks.
            None => return Ok(None),
        }
    } else if needs_keys {
        write_params
            .positions(&client.query(&write, &params).await?)
            .context(unguarded)?
    } else {
        let (written, committed) = futures::join!(
            client.query(&write, &params),
            client.batch_execute("commit")
        );
        let written = written?;
        committed.context("failed to commit")?;
        write_params.positions(&written).context(unguarded)?
    };
    let committed = !event_rows.is_empty() && !needs_keys;
    for p in pending {
        let sub = &subs[p.index];
        let events: Vec<AppendedEvent> = p
            .rows
            .clone()
            .map(|r| AppendedEvent {
                event_id: event_rows[r].event_id,
                event_type: event_rows[r].event_type.to_owned(),
                stream_version: event_rows[r].stream_version,
                position: positions[r],
            })
            .collect();
        let position = events
            .last()
            .map(|e| e.position)
            .or(p.last_row.map(|r| positions[r]))
            .unwrap_or(p.last_position);
        let outcome = CommandOutcome {
            command_id: sub.command_id,
            aggregate_id: p.stream_id.clone(),
            stream_id: p.stream_id,
            version: p.version,
            position,
            events,
        };
        if let Some(key) = &sub.idempotency {
            keys.push(sub.actor.id(), &key.key, &key.request_hash, &outcome)?;
        }
        results[p.index] = Some(Ok((outcome, false)));
    }

    if !committed {
        let key_params = keys.params();
        let (stored, committed) = futures::join!(
            client.execute(&store_keys, &key_params),
            client.batch_execute("commit")
        );
        stored?;
        committed.context("failed to commit")?;
    }
    // Committed: the new states may serve the next batches (never before the commit).
    caches.snapshots.remember(
        world
            .streams
            .iter()
            .filter(|(_, e)| e.changed)
            .filter_map(|(id, e)| e.agg.as_ref().map(|agg| (id, e.version, agg))),
    );
    metrics::counter!("plinth_events_appended_total").increment(event_rows.len() as u64);
    Ok(Some(
        results
            .into_iter()
            .map(|r| r.expect("every command decided"))
            .collect(),
    ))
}

const FIND_KEYS: &str = "select user_id, key, request_hash, response from idempotency_keys
     where (user_id, key) in (select * from unnest($1::text[], $2::text[]))";

/// Live dependents (sub-tenants, owned resources, providers using a resource provider, resource
/// providers serving a location) of the streams whose deletes are decided in the batch. A
/// resource provider's locations are read from its snapshot (GIN index of migration V32);
/// AddResourceProviderLocation locks the location for share, so the count is exact once the
/// location is locked for update.
const COUNT_DEPENDENTS: &str = "select id,
            (select count(*) from streams s
             where (s.owner_id = id or s.uses_id = id) and s.lifecycle <> 'deleted')
          + (select count(*) from streams s
             where s.kind = 'resource_provider' and s.lifecycle <> 'deleted'
               and s.snapshot->'body'->'locations' ? id)
     from unnest($1::text[]) as id";

/// Stores the first result of each keyed command, for replays.
const STORE_KEYS: &str = "insert into idempotency_keys (user_id, key, request_hash, response)
     select u, k, h, r::jsonb from unnest($1::text[], $2::text[], $3::bytea[], $4::text[]) as t(u, k, h, r)";

/// Answers commands whose idempotency key was already used, from the stored first result.
fn replay_idempotent(
    subs: &[Submission],
    keyed: &[(usize, &str, &str)],
    found: Vec<tokio_postgres::Row>,
    results: &mut [Option<Processed>],
) -> anyhow::Result<()> {
    let found: HashMap<(String, String), (Vec<u8>, serde_json::Value)> = found
        .into_iter()
        .map(|r| ((r.get(0), r.get(1)), (r.get(2), r.get(3))))
        .collect();
    for &(i, user, key) in keyed {
        if let Some((hash, response)) = found.get(&(user.to_owned(), key.to_owned())) {
            let request_hash = &subs[i].idempotency.as_ref().expect("keyed").request_hash;
            results[i] = Some(if hash == request_hash {
                let outcome =
                    serde_json::from_value(response.clone()).context("bad stored response")?;
                Ok((outcome, true))
            } else {
                Err(CommandError::IdempotencyKeyReused {
                    key: key.to_owned(),
                })
            });
        }
    }
    Ok(())
}

/// Keeps in-batch dependents counts true when a batch creates or deletes a dependent.
fn count_dependent(world: &mut World, agg: &Aggregate, delta: i64) {
    let uses = match &agg.body {
        Body::Provider(p) => Some(p.resource_provider_id.to_string()),
        _ => None,
    };
    for id in agg.owner_id().into_iter().chain(uses) {
        if let Some(n) = world.dependents.get_mut(&id) {
            *n += delta;
        }
    }
}

/// The tenant chain of a new stream: its parent's plus itself for a tenant, else its owner's.
fn scope_path_of_new(world: &World, id: &str, agg: &Aggregate) -> Vec<String> {
    let owner_path = |owner: &str| {
        world
            .streams
            .get(owner)
            .map(|e| e.scope_path.clone())
            .unwrap_or_default()
    };
    match &agg.body {
        Body::Tenant(t) => {
            let mut path = t
                .parent_id
                .as_ref()
                .map(|p| owner_path(p.as_str()))
                .unwrap_or_default();
            path.push(id.to_owned());
            path
        }
        Body::User(_) => Vec::new(),
        _ => agg.owner_id().map(|o| owner_path(&o)).unwrap_or_default(),
    }
}

#[derive(Default)]
struct IdempotencyRows {
    users: Vec<String>,
    keys: Vec<String>,
    hashes: Vec<Vec<u8>>,
    responses: Vec<String>,
}

impl IdempotencyRows {
    fn push(
        &mut self,
        user: &str,
        key: &str,
        hash: &[u8],
        outcome: &CommandOutcome,
    ) -> anyhow::Result<()> {
        self.users.push(user.to_owned());
        self.keys.push(key.to_owned());
        self.hashes.push(hash.to_vec());
        self.responses.push(serde_json::to_string(outcome)?);
        Ok(())
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 4] {
        [&self.users, &self.keys, &self.hashes, &self.responses]
    }
}

/// Runs a query unless it has nothing to ask: every statement costs a server round of its own,
/// even inside a pipeline. Sends on first poll, like the query itself.
async fn query_unless_empty(
    client: &Client,
    empty: bool,
    statement: &tokio_postgres::Statement,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<tokio_postgres::Row>, tokio_postgres::Error> {
    if empty {
        return Ok(Vec::new());
    }
    client.query(statement, params).await
}
