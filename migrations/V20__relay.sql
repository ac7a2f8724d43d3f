-- The Kafka relay's progress. The event store is the outbox: the relay tails the log and
-- records here how far the broker has confirmed it. Written only by the relay that holds the
-- advisory lock for `name`, and only after every event up to (tx, position) was confirmed.

create table relay_checkpoints (
    -- One row per relay name (`plinth relay --name`, default `kafka`): relays with different
    -- names publish the whole log independently, e.g. to two clusters.
    name text primary key,
    -- The last confirmed event, in the log's (transaction, position) order: the relay resumes
    -- with the first event after it. (0, 0) is the start of the log.
    tx bigint not null default 0,
    position bigint not null default 0,
    updated_at timestamptz not null default now(),
    -- A negative checkpoint can only come from a hand-edit gone wrong; refuse it rather than
    -- let it silently republish or skip.
    constraint relay_checkpoints_not_negative check (tx >= 0 and position >= 0)
);
