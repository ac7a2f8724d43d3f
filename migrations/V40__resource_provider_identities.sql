-- Resource providers as principals (issue 25, docs/security.md "Principals").

-- Authentication asks, for a token's (issuer, subject) not known as a person, which resource
-- providers it is (or was) bound to, on every request of a provider: from the streams'
-- committed states (snapshots), so that a bind or an unbind counts from its commit and not
-- from when a projector catches up. jsonb_path_ops: each lookup is one containment (`@>`) of
-- {"issuer", "subject"}. Deleted providers stay indexed: their identities are refused, never
-- taken for a person's.
create index streams_rp_identities_idx on streams
    using gin ((snapshot->'body'->'identities') jsonb_path_ops)
    where kind = 'resource_provider';
create index streams_rp_unbound_identities_idx on streams
    using gin ((snapshot->'body'->'unbound_identities') jsonb_path_ops)
    where kind = 'resource_provider';

-- The identities bound to each resource provider (GET /v1/resource-providers/{id}). The key
-- (rp_id, identity) is two columns, as the read-model engine's keyed tables have it:
-- `identity` is the JSON array [issuer, subject], unambiguous whatever characters either holds.
create table read.rp_identities (
    rp_id text not null,
    identity text not null,
    issuer text not null,
    subject text not null,
    primary key (rp_id, identity)
);
