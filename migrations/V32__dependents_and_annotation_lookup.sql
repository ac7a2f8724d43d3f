-- Indexes for issue 9: the location-delete rule, the annotation search, providers by resource
-- provider.

-- "Which live resource providers serve location L?": DeleteLocation is refused while any does
-- (COUNT_DEPENDENTS in commands/src/batch.rs). Derived from the snapshot the write side keeps
-- current, rather than a new column that every writer would have to maintain; partial so that
-- only live resource providers are indexed. jsonb_ops answers `?` (element of the array).
create index streams_rp_locations_idx on streams
    using gin ((snapshot->'body'->'locations'))
    where kind = 'resource_provider' and lifecycle <> 'deleted';

-- GET /v1/tenants/{id}/resources?annotation=key=value: the resources carrying one annotation,
-- in id order (the page key), then filtered to the subtree by their tenant's path.
create index annotations_key_value_resource_id_idx on read.annotations (key, value, resource_id);

-- GET /v1/resource-providers/{id}/providers pages by id.
create index providers_rp_id_id_idx on read.providers (rp_id, id);
drop index read.providers_rp_id_idx;
