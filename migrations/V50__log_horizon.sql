-- The horizon of the gap-safe tail (`SETTLED` in commands/src/log.rs, ADR 0023): the smallest
-- transaction id that may still commit events into this database's log, as seen by `snap`
-- (the reading statement's own snapshot: pass `pg_current_snapshot()`). A reader reads only
-- events with `tx` below it.
--
-- It used to be the snapshot's xmin, the oldest transaction running anywhere in the cluster:
-- transaction ids are cluster-wide, so a long transaction in *another* database (a bulk load,
-- CREATE/DROP DATABASE, an idle-in-transaction session, a neighbour's test) held every reader
-- of this log back until it ended. Only transactions connected to this database can write its
-- `events` table, so the horizon is the smallest running id of the snapshot that is not known
-- to belong to a backend of another database (or the snapshot's xmax if there is none):
--
-- * An id counts unless a backend of another database holds it. Ids are never reused and a
--   backend never changes database, so "held by a backend of database D" is true for good once
--   seen; anything not seen that way (a prepared transaction, a subtransaction, a backend whose
--   status is unreadable) counts, which can only hold readers back, never make them skip.
-- * The backends' status is read after `snap` was taken, so a transaction of this database
--   that was running at `snap` is either still running in its backend (seen with this
--   database) or has ended (seen nowhere): it counts either way.
-- * That status is cached until the end of the transaction (a reader paging in one transaction
--   would look at a stale copy), hence `pg_stat_clear_snapshot()` first.
--
-- Volatile (it must read the status afresh): call it once per statement, as
-- `tx < (select log_horizon(pg_current_snapshot()))`, which PostgreSQL evaluates once and can
-- use as a bound of the (tx, position) index. Its own statements take snapshots of their own;
-- that is why the reader's snapshot is an argument.
create function log_horizon(snap pg_snapshot) returns bigint
language plpgsql volatile parallel restricted as $$
declare
    here oid := (select oid from pg_database where datname = current_database());
begin
    if pg_snapshot_xmin(snap) = pg_snapshot_xmax(snap) then
        -- Nothing running: nothing to attribute.
        return pg_snapshot_xmax(snap)::text::bigint;
    end if;
    perform pg_stat_clear_snapshot();
    return (
        select coalesce(min(x::text::bigint), pg_snapshot_xmax(snap)::text::bigint)
        from pg_snapshot_xip(snap) as x
        -- backend_xid is the 32-bit id; running ids span less than 2^31, so its low 32 bits
        -- name one running id.
        where x::text::bigint % 4294967296 not in (
            select a.backend_xid::text::bigint
            from pg_stat_activity a
            where a.backend_xid is not null and a.datid is not null and a.datid <> here
        )
    );
end
$$;
