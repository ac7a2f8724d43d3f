-- Read models: tables that only the projectors write, each rebuilt from the event log at will.
-- They live in their own schema so that a rebuild can build a projection's tables side by side
-- in another schema (`read_rebuild_<projection>`) and move them in with `alter table .. set
-- schema`: index names are chosen per schema, so the moved tables keep exactly these names.
-- Index names follow PostgreSQL's default naming (`<table>_<columns>_idx`, `<table>_pkey`)
-- because `create table .. (like .. including all)` re-creates indexes under default names.
-- See docs/adr/0002-tenant-tree-read-model.md.

create schema read;

-- One row per projection: how far through the log (in (tx, position) order, the gap-safe
-- tail's order) its tables are. Updated in the same transaction as the rows it covers, so a
-- crash can neither lose nor double-apply an event. Not part of any rebuild: a rebuild swaps
-- its tables in and moves this row in one transaction.
create table read.checkpoints (
    projection text primary key,
    tx bigint not null default 0,
    position bigint not null default 0,
    updated_at timestamptz not null default now()
);

-- ── projection `tenants`: the tenant tree, users and the grants that give them access ──────

-- The tenant tree as a materialized path. `path` is the ids from the root down to the tenant,
-- joined by '/', in the "C" collation: '/' sorts below every id character, so a subtree is the
-- contiguous key range (path || '/', path || '0') of one b-tree index, already in depth-first
-- order, and no request ever walks the tree recursively. The parent never changes, so a path,
-- once written, never changes either.
create table read.tenants (
    id text primary key,
    parent_id text,
    name text not null,
    description text,
    lifecycle text not null check (lifecycle in ('live', 'deleting', 'deleted')),
    depth integer not null check (depth >= 0),
    path text collate "C" not null,
    -- Ancestors, root first (the parent last): "T or an ancestor of T" is `= any(...)`.
    ancestors text[] not null,
    created_at timestamptz not null,
    updated_at timestamptz not null,
    created_position bigint not null,
    last_position bigint not null
);

-- Subtrees (descendants, audit by tenant) are range scans of this index.
create unique index tenants_path_idx on read.tenants (path);
-- Children and roots (parent_id is null), paginated by id.
create index tenants_parent_id_id_idx on read.tenants (parent_id, id);

-- Users as first seen (issuer and subject of their token).
create table read.users (
    id text primary key,
    issuer text not null,
    subject text not null,
    created_at timestamptz not null
);

-- Direct grants. A user's effective role on T is the highest rank among its grants on T and
-- T's ancestors: one primary-key probe per ancestor, rather than a row per (user, descendant),
-- which a grant on a root of 100,000 tenants would multiply into 100,000 rows.
create table read.grants (
    user_id text not null,
    tenant_id text not null,
    role text not null check (role in ('viewer', 'editor', 'admin')),
    -- viewer 1 < editor 2 < admin 3, so that max() is the effective role.
    rank smallint not null check (rank between 1 and 3),
    primary key (user_id, tenant_id)
);

-- Who has access to a tenant.
create index grants_tenant_id_idx on read.grants (tenant_id);

-- ── projection `locations` ─────────────────────────────────────────────────────────────────

create table read.locations (
    id text primary key,
    tenant_id text not null,
    name text not null,
    description text,
    lifecycle text not null check (lifecycle in ('live', 'deleting', 'deleted')),
    created_at timestamptz not null,
    updated_at timestamptz not null,
    created_position bigint not null,
    last_position bigint not null
);

-- "Locations a tenant owns", paginated by id.
create index locations_tenant_id_id_idx on read.locations (tenant_id, id);

-- Availability as given: (location, tenant, include_subtenants). Whether T may use L is
-- decided at query time against T's ancestors, so tenants created later are covered without
-- rewriting anything.
create table read.location_availability (
    location_id text not null,
    tenant_id text not null,
    include_subtenants boolean not null,
    primary key (location_id, tenant_id)
);

-- "Locations made available to T or its ancestors".
create index location_availability_tenant_id_idx on read.location_availability (tenant_id);

-- ── projection `resource_providers` ────────────────────────────────────────────────────────

create table read.resource_providers (
    id text primary key,
    tenant_id text not null,
    name text not null,
    description text,
    -- The scopes it requests.
    scopes text[] not null,
    lifecycle text not null check (lifecycle in ('live', 'deleting', 'deleted')),
    created_at timestamptz not null,
    updated_at timestamptz not null,
    created_position bigint not null,
    last_position bigint not null
);

-- "Resource providers a tenant owns" (they are available there).
create index resource_providers_tenant_id_id_idx on read.resource_providers (tenant_id, id);

-- Availability as given, like locations'.
create table read.rp_availability (
    rp_id text not null,
    tenant_id text not null,
    include_subtenants boolean not null,
    primary key (rp_id, tenant_id)
);

-- "Resource providers made available to T or its ancestors".
create index rp_availability_tenant_id_idx on read.rp_availability (tenant_id);

-- Live authorizations. The access check probes the primary key with (rp, T and each ancestor
-- of T): at most depth + 1 index lookups, whatever the size of the tree.
create table read.rp_authorizations (
    rp_id text not null,
    tenant_id text not null,
    include_subtenants boolean not null,
    scopes text[] not null,
    primary key (rp_id, tenant_id)
);

-- "Resource providers authorized at T or its ancestors".
create index rp_authorizations_tenant_id_idx on read.rp_authorizations (tenant_id);

-- The locations a resource provider is available in (primary key: each pair once).
create table read.rp_locations (
    rp_id text not null,
    location_id text not null,
    primary key (rp_id, location_id)
);

-- "Resource providers in a location".
create index rp_locations_location_id_idx on read.rp_locations (location_id);

-- Concrete providers registered against a resource provider.
create table read.providers (
    id text primary key,
    tenant_id text not null,
    rp_id text not null,
    name text not null,
    lifecycle text not null check (lifecycle in ('live', 'deleting', 'deleted')),
    created_at timestamptz not null,
    updated_at timestamptz not null,
    created_position bigint not null,
    last_position bigint not null
);

-- "Providers of a tenant", "providers using a resource provider".
create index providers_tenant_id_id_idx on read.providers (tenant_id, id);
create index providers_rp_id_idx on read.providers (rp_id);

-- ── projection `resources`: every stream's governing tenant, and metadata ─────────────────

-- One row per stream: its kind, the tenant whose roles govern it (itself for a tenant, the
-- owner otherwise, null for users), so that any read can be authorized and the audit log can
-- be filtered by subtree; plus the lifecycle fields of the metadata view. Nothing here changes
-- with every event (no version, no updated_at): metadata events are most of a busy log and
-- would otherwise rewrite this row each time (the stream's version is in `streams`).
create table read.resources (
    id text primary key,
    kind text not null,
    tenant_id text,
    lifecycle text not null check (lifecycle in ('live', 'deleting', 'deleted')),
    deletion_requested_at timestamptz,
    created_at timestamptz not null,
    created_position bigint not null
);

-- Streams governed by a tenant (audit by subtree joins tenants' path range to this).
create index resources_tenant_id_idx on read.resources (tenant_id);

-- Metadata, one row per key: every change is an upsert or delete of exactly one row, which
-- is what lets a batch of events be coalesced per key and written set-wise.
create table read.annotations (
    resource_id text not null,
    key text not null,
    value text not null,
    primary key (resource_id, key)
);

-- One status per (resource, source), as the domain allows; `jsonb` because nothing needs the
-- exact bytes back, and the metadata view aggregates it with `jsonb_object_agg`.
create table read.statuses (
    resource_id text not null,
    source text not null,
    data jsonb not null,
    primary key (resource_id, source)
);

-- The finalizers still pending on a resource; the primary key makes re-adding one a no-op.
create table read.finalizers (
    resource_id text not null,
    finalizer text not null,
    primary key (resource_id, finalizer)
);
