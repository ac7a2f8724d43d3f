//! The event store's read API and the few writes that are not commands (users).

use anyhow::Context as _;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use plinth_domain::{Event, ResourceProviderId, UserId};

use crate::hash;
use crate::log::{self, stored_event};
use crate::model::{Checkpoint, EventMetadata, StoredEvent};
use crate::rows::{self, Entry, World};

/// Builds a connection pool for `database_url`.
pub fn pool(database_url: &str, max_size: usize) -> anyhow::Result<Pool> {
    let config: tokio_postgres::Config = database_url.parse().context("invalid DATABASE_URL")?;
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(max_size)
        .build()
        .context("failed to build the pool")
}

/// Reads of the event store.
#[derive(Debug, Clone)]
pub struct EventStore {
    pool: Pool,
}

impl EventStore {
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Up to `limit` events after `after`, in log order, never skipping one: see
    /// [`log`](crate::log) for the order rule.
    pub async fn read_after(
        &self,
        after: Checkpoint,
        limit: i64,
    ) -> anyhow::Result<Vec<StoredEvent>> {
        let client = self.pool.get().await?;
        log::read_after(&client, after, limit).await
    }

    /// A stream's events from `from_version` (inclusive), oldest first.
    pub async fn read_stream(
        &self,
        stream_id: &str,
        from_version: i64,
        limit: i64,
    ) -> anyhow::Result<Vec<StoredEvent>> {
        let client = self.pool.get().await?;
        log::read_stream(&client, stream_id, from_version, limit).await
    }

    /// The checkpoint of the event at `position`, if it exists (for read-your-writes).
    pub async fn checkpoint_of(&self, position: i64) -> anyhow::Result<Option<Checkpoint>> {
        let client = self.pool.get().await?;
        log::checkpoint_of(&client, position).await
    }

    /// The live streams that keep `id` from being deleted (the rule `COUNT_DEPENDENTS` in
    /// `batch.rs` counts), up to `limit`, oldest first: what a refused delete names. Read after
    /// the refusal, so a dependent removed since may be missing from it.
    pub async fn live_dependents(&self, id: &str, limit: i64) -> anyhow::Result<Vec<String>> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "select stream_id from streams
                 where (owner_id = $1 or uses_id = $1) and lifecycle <> 'deleted'
                 union
                 select stream_id from streams
                 where kind = 'resource_provider' and lifecycle <> 'deleted'
                   and snapshot->'body'->'locations' ? $1
                 order by 1 limit $2",
                &[&id, &limit],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// The user of (issuer, subject), recorded unless it exists; returns its id. That is the id
    /// identity-api derives ([`UserId::for_identity`]), except for a user recorded before Plinth
    /// adopted that derivation: its stream is named by [`UserId::legacy_for_identity`], and that
    /// id stays the user's, since the log's events name it (docs/adr/0014). Both are looked up in
    /// one statement. Concurrent first requests create exactly one user: both streams are locked
    /// and looked up again before the new one is claimed, and whoever finds a user appends
    /// nothing.
    pub async fn ensure_user(&self, issuer: &str, subject: &str) -> anyhow::Result<UserId> {
        let user_id = UserId::for_identity(issuer, subject);
        let legacy = UserId::legacy_for_identity(issuer, subject);
        let mut client = self.pool.get().await?;
        if let Some(existing) = existing_user(&**client, &user_id, &legacy).await? {
            return Ok(existing);
        }
        let tx = client.transaction().await?;
        // Like every writer of the log: the stream's lock before any write (docs/adr/0004). The
        // legacy stream's too, so that a server still deriving legacy ids (a rolling upgrade)
        // that is recording this user is waited for, and its user found.
        crate::lock_streams(&*tx, &[user_id.as_str(), legacy.as_str()], &[]).await?;
        if let Some(existing) = existing_user(&*tx, &user_id, &legacy).await? {
            return Ok(existing);
        }
        record_user(&tx, &user_id, issuer, subject).await?;
        tx.commit().await?;
        Ok(user_id)
    }

    /// Who (issuer, subject) is: the resource providers it is or was bound to if any (read
    /// from the streams' committed states, so a bind or an unbind counts from its commit on),
    /// else the user recorded for it, recording the user unless it exists
    /// ([`Self::ensure_user`]). The binding is looked up again under the user streams' locks,
    /// which a bind takes too (`BindResourceProviderIdentity` reads them): an identity ever
    /// bound is never also recorded as a person.
    pub async fn resolve_identity(&self, issuer: &str, subject: &str) -> anyhow::Result<Identity> {
        let mut client = self.pool.get().await?;
        if let Some(bound) = bound_resource_providers(&**client, issuer, subject).await? {
            return Ok(bound);
        }
        let user_id = UserId::for_identity(issuer, subject);
        let legacy = UserId::legacy_for_identity(issuer, subject);
        if let Some(existing) = existing_user(&**client, &user_id, &legacy).await? {
            return Ok(Identity::User(existing));
        }
        let tx = client.transaction().await?;
        crate::lock_streams(&*tx, &[user_id.as_str(), legacy.as_str()], &[]).await?;
        if let Some(bound) = bound_resource_providers(&*tx, issuer, subject).await? {
            return Ok(bound);
        }
        if let Some(existing) = existing_user(&*tx, &user_id, &legacy).await? {
            return Ok(Identity::User(existing));
        }
        record_user(&tx, &user_id, issuer, subject).await?;
        tx.commit().await?;
        Ok(Identity::User(user_id))
    }

    /// Records (issuer, subject)'s `UserCreated` under exactly `user_id` unless that stream
    /// exists; returns whether it did. This is how servers before ADR 0014 recorded users, with
    /// [`UserId::legacy_for_identity`]: for tests and tools that must reproduce such a log.
    /// Authentication records users with [`Self::ensure_user`] alone.
    pub async fn record_user_with_id(
        &self,
        user_id: &UserId,
        issuer: &str,
        subject: &str,
    ) -> anyhow::Result<bool> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        crate::lock_streams(&*tx, &[user_id.as_str()], &[]).await?;
        let recorded = record_user(&tx, user_id, issuer, subject).await?;
        tx.commit().await?;
        Ok(recorded)
    }

    /// Recomputes every stream's hash chain over the whole log, streaming it in batches.
    /// Returns the number of events checked, or the first event that does not match.
    pub async fn verify_chains(&self) -> anyhow::Result<Result<u64, ChainBreak>> {
        let client = self.pool.get().await?;
        let mut checked = 0u64;
        let mut last: Option<(String, i64)> = None;
        let mut prev_hash: Vec<u8> = hash::GENESIS.to_vec();
        loop {
            let after = last.clone().unwrap_or_default();
            let rows = log::by_stream_after(&client, &after, 5000).await?;
            if rows.is_empty() {
                return Ok(Ok(checked));
            }
            for row in &rows {
                let event = stored_event(row)?;
                let metadata: String = row.get("metadata");
                let same_stream = last.as_ref().is_some_and(|(s, _)| *s == event.stream_id);
                if !same_stream {
                    prev_hash = hash::GENESIS.to_vec();
                }
                let expected_version = if same_stream {
                    last.as_ref().map_or(1, |(_, v)| v + 1)
                } else {
                    1
                };
                let recomputed = hash::chain(
                    &prev_hash,
                    &hash::Hashed {
                        event_id: event.event_id,
                        stream_id: &event.stream_id,
                        stream_version: event.stream_version,
                        event_type: &event.event_type,
                        schema_version: event.schema_version,
                        data: &event.data,
                        metadata: &metadata,
                        recorded_at: event.recorded_at,
                    },
                );
                if event.stream_version != expected_version
                    || recomputed.as_slice() != event.hash.as_slice()
                {
                    return Ok(Err(ChainBreak {
                        event_id: event.event_id,
                        stream_id: event.stream_id,
                        stream_version: event.stream_version,
                        position: event.position,
                    }));
                }
                prev_hash = event.hash.clone();
                last = Some((event.stream_id, event.stream_version));
                checked += 1;
            }
        }
    }

    /// Checks every stream's head (`streams.version` and `last_hash`) against its last event,
    /// and that every stream in the log has a head. The chains alone cannot see a removed last
    /// event (what remains is a valid prefix) nor one appended with a recomputed hash; the head,
    /// written in the same transaction as the events, can. Returns the number of heads checked,
    /// or the first mismatch.
    pub async fn verify_heads(&self) -> anyhow::Result<Result<u64, HeadMismatch>> {
        let client = self.pool.get().await?;
        let mismatch = log::first_head_mismatch(&client).await?;
        if let Some((stream_id, head_version, last_event_version)) = mismatch {
            return Ok(Err(HeadMismatch {
                stream_id,
                head_version,
                last_event_version,
            }));
        }
        let heads: i64 = client
            .query_one("select count(*) from streams", &[])
            .await?
            .get(0);
        Ok(Ok(heads as u64))
    }

    /// Folds one stream from its events (for temporal reads and checks): the state after the
    /// last event at or below `max_position`.
    pub async fn fold_stream(
        &self,
        stream_id: &str,
        max_position: i64,
    ) -> anyhow::Result<Option<plinth_domain::Aggregate>> {
        let client = self.pool.get().await?;
        log::fold_stream(&client, stream_id, max_position).await
    }
}

/// The first event whose stored hash does not match the recomputed chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    pub event_id: uuid::Uuid,
    pub stream_id: String,
    pub stream_version: i64,
    pub position: i64,
}

/// A stream whose head (`streams` row) does not agree with its last event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadMismatch {
    pub stream_id: String,
    /// The version the head records; `None` when the stream has events but no head.
    pub head_version: Option<i64>,
    /// The version of its last event; `None` when the head has no event at all.
    pub last_event_version: Option<i64>,
}

impl std::fmt::Display for HeadMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let version = |v: Option<i64>| v.map_or_else(|| "none".to_owned(), |v| v.to_string());
        write!(
            f,
            "stream {} head says version {} (with its last hash), its last event is version {}",
            self.stream_id,
            version(self.head_version),
            version(self.last_event_version)
        )
    }
}

/// Who an (issuer, subject) is, as [`EventStore::resolve_identity`] finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// Bound to these resource providers (not deleted), oldest first: one, unless two binds
    /// of the same identity to different providers raced, which the caller must refuse.
    ResourceProviders(Vec<ResourceProviderId>),
    /// Bound once, to these resource providers, and unbound since (or the provider was
    /// deleted): acts as nobody.
    Retired(Vec<ResourceProviderId>),
    /// A person.
    User(UserId),
}

/// The resource providers (issuer, subject) is bound to, not deleted, or else those it was
/// bound to; `None` if it never was: lookups in the `streams_rp_*identities_idx` indexes (V40)
/// of their committed states.
async fn bound_resource_providers(
    client: &impl tokio_postgres::GenericClient,
    issuer: &str,
    subject: &str,
) -> anyhow::Result<Option<Identity>> {
    let wanted = serde_json::json!([{ "issuer": issuer, "subject": subject }]);
    let rows = client
        .query(
            "select stream_id,
                    lifecycle <> 'deleted' and snapshot->'body'->'identities' @> $1::jsonb
             from streams
             where kind = 'resource_provider'
               and (snapshot->'body'->'identities' @> $1::jsonb
                    or snapshot->'body'->'unbound_identities' @> $1::jsonb)
             order by stream_id",
            &[&tokio_postgres::types::Json(&wanted)],
        )
        .await?;
    let (mut bound, mut retired) = (Vec::new(), Vec::new());
    for row in &rows {
        let id = ResourceProviderId::parse(row.get::<_, &str>(0))
            .context("a resource provider stream with a malformed id")?;
        if row.get::<_, bool>(1) {
            bound.push(id);
        } else {
            retired.push(id);
        }
    }
    Ok(if !bound.is_empty() {
        Some(Identity::ResourceProviders(bound))
    } else if !retired.is_empty() {
        Some(Identity::Retired(retired))
    } else {
        None
    })
}

/// The id of the user recorded for an identity, if any: its stream under the id identity-api
/// derives, else under Plinth's legacy one.
async fn existing_user(
    client: &impl tokio_postgres::GenericClient,
    user_id: &UserId,
    legacy: &UserId,
) -> Result<Option<UserId>, tokio_postgres::Error> {
    let found: Vec<String> = client
        .query(
            "select stream_id from streams where stream_id = any($1)",
            &[&[user_id.as_str(), legacy.as_str()].as_slice()],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok([user_id, legacy]
        .into_iter()
        .find(|id| found.iter().any(|f| f == id.as_str()))
        .cloned())
}

/// Claims `user_id`'s stream and appends its `UserCreated`, in `tx`, which holds the stream's
/// lock; whoever loses the claim appends nothing. Returns whether it appended.
async fn record_user(
    tx: &deadpool_postgres::Transaction<'_>,
    user_id: &UserId,
    issuer: &str,
    subject: &str,
) -> anyhow::Result<bool> {
    let claimed = tx
        .execute(
            "insert into streams (stream_id, kind, version, last_hash, last_position, lifecycle,
                                  snapshot, snapshot_version)
             values ($1, 'user', 0, '', 0, 'live', '{}', 0) on conflict (stream_id) do nothing",
            &[&user_id.as_str()],
        )
        .await?;
    if claimed == 0 {
        return Ok(false);
    }
    let event = Event::UserCreated {
        user_id: user_id.clone(),
        issuer: issuer.to_owned(),
        subject: subject.to_owned(),
    };
    let command_id = uuid::Uuid::now_v7();
    let metadata = EventMetadata {
        actor: Some(user_id.to_string()),
        command_id,
        correlation_id: command_id,
        causation_id: command_id,
        traceparent: None,
    };
    let mut world = World::default();
    let mut entry = Entry::new_stream();
    let mut event_rows = Vec::new();
    rows::append_in_memory(
        &mut entry,
        user_id.as_str(),
        &[event],
        &metadata,
        rows::now_micros(),
        &mut event_rows,
    )?;
    world.streams.insert(user_id.to_string(), entry);
    rows::write(tx, &event_rows, &world).await?;
    Ok(true)
}
