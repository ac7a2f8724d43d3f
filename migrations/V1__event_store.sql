-- The event store: one append-only table of events, plus the write side's per-stream row
-- (version, snapshot and the columns cross-aggregate rules are checked against) and the durable
-- idempotency keys. Every write to these tables happens in the transaction that appends events.

create table events (
    -- Global position: assigned at insert, so it does NOT give commit order on its own.
    position bigint generated always as identity primary key,
    -- The appending transaction's id. Readers order by (tx, position) and read only below the
    -- oldest transaction still running, so an event that commits late is never skipped.
    tx bigint not null default (pg_current_xact_id()::text::bigint),
    event_id uuid not null unique,
    stream_id text not null,
    stream_version bigint not null check (stream_version > 0),
    event_type text not null,
    schema_version integer not null,
    -- `json`, not `jsonb`: the exact bytes that were hashed, so the chain can be recomputed.
    data json not null,
    metadata json not null,
    recorded_at timestamptz not null,
    -- sha256(previous hash of this stream || this event's canonical bytes).
    hash bytea not null,
    -- Optimistic concurrency: two writers can never both append version n of a stream.
    constraint events_stream_version_key unique (stream_id, stream_version)
);

-- The gap-safe tail of the global log.
create index events_tx_position_idx on events (tx, position);
-- Audit queries by type and time.
create index events_type_idx on events (event_type, position);
create index events_recorded_at_idx on events (recorded_at);

-- Append-only at the database level: no UPDATE, DELETE or TRUNCATE, whoever asks.
create function events_are_immutable() returns trigger
language plpgsql as $$
begin
    raise exception 'events are append-only: % is not allowed', tg_op
        using errcode = 'P0001';
end;
$$;

create trigger events_no_update_or_delete
    before update or delete on events
    for each row execute function events_are_immutable();

create trigger events_no_truncate
    before truncate on events
    for each statement execute function events_are_immutable();

-- One row per stream: its version, its state folded from its events (a snapshot, so commands
-- never re-read a long stream), and the columns the cross-aggregate rules need. Rows are
-- locked (FOR UPDATE / FOR SHARE) by the commands that read them, which serializes exactly
-- the commands that could invalidate each other's decisions.
create table streams (
    stream_id text primary key,
    kind text not null,
    version bigint not null,
    -- Hash of the stream's last event: the next event chains to it.
    last_hash bytea not null,
    -- Global position of its last event, returned by commands that change nothing.
    last_position bigint not null,
    -- Owning tenant (a tenant's parent); null for roots and users.
    owner_id text,
    -- For providers: the resource provider they use (it may not be deleted under them).
    uses_id text,
    lifecycle text not null check (lifecycle in ('live', 'deleting', 'deleted')),
    -- Tenants only: lower(trimmed name), for the sibling-uniqueness index below.
    name_key text,
    -- The tenants whose grants govern this stream, root first (a tenant includes itself).
    scope_path text[] not null default '{}',
    snapshot jsonb not null,
    snapshot_version integer not null
);

-- Sibling names are unique among live tenants; roots (owner_id null) are siblings of each
-- other, hence coalesce. A race between two creates fails one of them on this index.
create unique index streams_tenant_sibling_name_key
    on streams (coalesce(owner_id, ''), name_key)
    where kind = 'tenant' and lifecycle <> 'deleted';

-- "Does this tenant still own anything live?" for deletes.
create index streams_owner_idx on streams (owner_id) where lifecycle <> 'deleted';
create index streams_uses_idx on streams (uses_id) where lifecycle <> 'deleted';

-- Durable idempotency: written in the same transaction as the command's events, so a key is
-- remembered exactly when its effects are, across restarts.
create table idempotency_keys (
    user_id text not null,
    key text not null,
    -- sha256 of the canonical request body: the same key with another body is refused.
    request_hash bytea not null,
    response jsonb not null,
    created_at timestamptz not null default now(),
    primary key (user_id, key)
);
