-- The audit log pages in the log's own order, (tx, position), like every other reader of the
-- log (see `plinth_commands::log`): a cursor by position alone could skip an event that
-- commits late with a lower position. Its filters need indexes that end in that order, so
-- that a page is an index range scan and not a sort of every matching event.

-- Audit by event type: replaces the (event_type, position) index of V1, which served the
-- position order and nothing else; one index either way, so appends cost the same.
drop index events_type_idx;
create index events_type_log_order_idx on events (event_type, tx, position);

-- Audit by correlation id (everything done for one originating request). As a uuid, not
-- the text of the json field: half the size. The audit query filters on the same expression.
create index events_correlation_log_order_idx
    on events (((metadata->>'correlation_id')::uuid), tx, position);
