-- Stream locks that take no transaction id (docs/adr/0004-log-order.md).
--
-- Readers order the log by (tx, position), where tx is the appending transaction's id. A
-- transaction takes that id at its first write *or row lock*, so a batch that row-locked one
-- stream and then waited for another batch's lock on a second stream sorted before that other
-- batch although it committed after it, and a stream's events could come out of version order.
-- Transaction-level advisory locks do not assign a transaction id: a batch now takes every
-- stream lock it needs first, reads its streams under them, and gets its id only at its first
-- insert. Whoever waited for a lock therefore always takes its id after the holder committed,
-- and (tx, position) order keeps every stream's version order and every event after the events
-- its command read.

-- Locks, for the rest of the transaction, the streams a batch writes (exclusively) and reads
-- (shared), plus, shared, every tenant in the chains (scope_path) of both: those tenants' grants
-- authorize the commands, and a parent is read by a child's create.
--
-- Keys are 64-bit hashes of the stream ids, taken in key order so that two batches meet on
-- common streams in the same order (no deadlock between them). Two ids sharing a hash only
-- serialize more than needed; a key wanted both ways is taken exclusively. The int8 key space of
-- these locks is shared with the session-level locks of migrations, projectors and relays, whose
-- fixed keys a stream hash would have to hit exactly.
--
-- scope_path never changes once a stream exists (a parent is immutable), so reading it before
-- the locks are held is safe. Callers read stream rows only in statements that start after this
-- one returned: a statement's snapshot is taken when it starts, and one started before the lock
-- was granted would not see the holder's commit.
create function plinth_lock_streams(exclusive text[], shared text[]) returns integer
language plpgsql as $$
declare
    found integer;
    keys int8[];
    modes boolean[];
begin
    -- One statement, so that the streams counted are the streams whose chains are locked.
    with existing as (
        select scope_path from streams where stream_id = any(exclusive || shared)
    ), ids as (
        select hashtextextended(id, 0) as key, true as is_exclusive from unnest(exclusive) as id
        union all
        select hashtextextended(id, 0), false from unnest(shared) as id
        union all
        select hashtextextended(chain.id, 0), false
        from existing, unnest(existing.scope_path) as chain(id)
    ), wanted as (
        select key, bool_or(is_exclusive) as is_exclusive from ids group by key
    )
    select (select count(*) from existing),
           array(select key from wanted order by key),
           array(select is_exclusive from wanted order by key)
    into found, keys, modes;
    for i in 1 .. coalesce(array_length(keys, 1), 0) loop
        if modes[i] then
            perform pg_advisory_xact_lock(keys[i]);
        else
            perform pg_advisory_xact_lock_shared(keys[i]);
        end if;
    end loop;
    -- How many of the named streams existed: a caller that then reads more of them saw one
    -- appear after its chain was looked up (unlocked), and must start over.
    return found;
end;
$$;
