-- Audit pages that cost the same on a ten-million-event log as on a small one. Each index
-- below ends in the log's order, (tx, position), so that a filtered page is a range scan that
-- stops after `limit` matching rows, never a scan of the log or a sort of every match.

-- Audit by actor (who did what). The actor lives in the json metadata; without this index
-- an actor's page walks the whole log in order and reads every event's metadata to find the
-- few that match. The audit query filters on the same expression, `metadata->>'actor'`.
create index events_actor_log_order_idx
    on events ((metadata->>'actor'), tx, position);

-- Audit by stream, and by tenant subtree: a subtree page merges the first events (in log
-- order) of each stream the subtree governs, each read from this index by a short range
-- scan, so its cost follows the size of the subtree and not the size of the log. The unique
-- (stream_id, stream_version) index cannot serve that: it is in stream order, not log order.
create index events_stream_log_order_idx on events (stream_id, tx, position);
