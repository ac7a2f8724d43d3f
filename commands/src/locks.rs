//! Stream locks: how writers serialize, and why the log's read order is right.
//!
//! Every transaction that appends events first locks, until it ends, the streams it writes
//! (exclusively) and the streams it reads (shared, with every tenant in their chains: those
//! tenants' grants authorize the commands, and a child's create reads its parent), and only
//! then reads them and writes. The locks are transaction-level advisory locks, which, unlike row
//! locks, take no transaction id: a transaction gets its id at its first insert, after every
//! lock it waited for was released by a commit. So a writer's id is larger than the id of every
//! writer it waited for, and readers ordering the log by (transaction id, position) see each
//! stream's events in version order and each event after the events its command read
//! (docs/adr/0004-log-order.md).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use sha2::{Digest, Sha256};
use tokio_postgres::types::ToSql;
use tokio_postgres::GenericClient;

/// Takes the locks of a [`LockSet`] (`$1` keys, `$2` exclusive or not) in the order given.
/// The aggregate evaluates its argument row by row in the order `unnest` returns them.
pub(crate) const LOCK_SQL: &str = "select count(case when exclusive
                                    then pg_advisory_xact_lock(key)::text
                                    else pg_advisory_xact_lock_shared(key)::text end)::int4
     from unnest($1::int8[], $2::bool[]) as wanted(key, exclusive)";

/// The chains of streams, looked up by primary key one id at a time: a plan that stays an
/// index lookup even when it is cached while `streams` is small (`limit 1` keeps the lateral
/// subquery from being flattened into a join that may scan the table).
const CHAINS_SQL: &str = "select s.stream_id, s.scope_path
     from unnest($1::text[]) as wanted(id)
     join lateral (select stream_id, scope_path from streams where stream_id = wanted.id limit 1) s on true";

/// The locks one transaction takes: 64-bit keys in ascending order, so that two transactions
/// meet on common streams in the same order and never deadlock on them.
#[derive(Debug, Default)]
pub(crate) struct LockSet {
    keys: Vec<i64>,
    exclusive: Vec<bool>,
}

impl LockSet {
    /// `exclusive` streams locked exclusively, `shared` ones shared; a stream named both ways
    /// (or two ids sharing a key, which only serializes more than needed) is taken exclusively.
    pub(crate) fn new<'a>(
        exclusive: impl IntoIterator<Item = &'a str>,
        shared: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        let mut wanted: BTreeMap<i64, bool> = BTreeMap::new();
        for id in exclusive {
            wanted.insert(lock_key(id), true);
        }
        for id in shared {
            wanted.entry(lock_key(id)).or_insert(false);
        }
        Self {
            keys: wanted.keys().copied().collect(),
            exclusive: wanted.values().copied().collect(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub(crate) fn params(&self) -> [&(dyn ToSql + Sync); 2] {
        [&self.keys, &self.exclusive]
    }
}

/// A stream's lock key: the first 8 bytes of sha256(id). Stable across processes and versions
/// (every writer of one database must agree on it), and outside the handful of fixed keys the
/// session locks of migrations, projectors and relays use, but for a 2^-64 chance.
fn lock_key(stream_id: &str) -> i64 {
    let digest = Sha256::digest(stream_id.as_bytes());
    i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// Takes the stream locks of the current transaction: `exclusive` for the streams it will
/// append to, `shared` for the streams it reads (their chains are the caller's to include).
/// Call it before the transaction's first write, and read the streams only in statements sent
/// after it returned: a statement's snapshot is taken when it starts.
pub async fn lock_streams(
    client: &impl GenericClient,
    exclusive: &[&str],
    shared: &[&str],
) -> Result<(), tokio_postgres::Error> {
    let set = LockSet::new(exclusive.iter().copied(), shared.iter().copied());
    client.query_one(LOCK_SQL, &set.params()).await?;
    Ok(())
}

/// The tenant chains (`scope_path`) of streams, cached: a parent never changes, so neither does
/// a stream's chain once the stream exists, and a batch can compute its locks without asking
/// the database again. Only streams that exist are cached.
#[derive(Debug, Default)]
pub(crate) struct Chains {
    known: Mutex<HashMap<String, Vec<String>>>,
}

/// Enough for the streams a busy writer touches; past it the cache starts over (a miss costs
/// one lookup statement).
const MAX_CACHED_CHAINS: usize = 100_000;

impl Chains {
    /// The chains of the `named` streams that exist, looking up (outside any lock: chains never
    /// change) the ones not cached yet.
    pub(crate) async fn of(
        &self,
        client: &tokio_postgres::Client,
        named: &[String],
    ) -> Result<HashMap<String, Vec<String>>, tokio_postgres::Error> {
        let mut found = HashMap::new();
        let mut unknown = Vec::new();
        {
            let known = self.known.lock().expect("chain cache poisoned");
            for id in named {
                match known.get(id) {
                    Some(chain) => {
                        found.insert(id.clone(), chain.clone());
                    }
                    None => unknown.push(id.as_str()),
                }
            }
        }
        if unknown.is_empty() {
            return Ok(found);
        }
        let rows = client.query(CHAINS_SQL, &[&unknown]).await?;
        let mut known = self.known.lock().expect("chain cache poisoned");
        if known.len() + rows.len() > MAX_CACHED_CHAINS {
            known.clear();
        }
        for row in rows {
            let (id, chain): (String, Vec<String>) = (row.get(0), row.get(1));
            known.insert(id.clone(), chain.clone());
            found.insert(id, chain);
        }
        Ok(found)
    }
}

/// The locks of a batch: its `targets` exclusively, the `named` streams it reads (targets
/// included) and every tenant in their `chains` shared.
pub(crate) fn batch_locks(
    targets: &[String],
    named: &[String],
    chains: &HashMap<String, Vec<String>>,
) -> LockSet {
    let chain_ids: HashSet<&str> = chains.values().flatten().map(String::as_str).collect();
    LockSet::new(
        targets.iter().map(String::as_str),
        named.iter().map(String::as_str).chain(chain_ids),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_taken_in_ascending_order_and_exclusive_wins() {
        let set = LockSet::new(["b", "a"], ["a", "c", "d"]);
        let mut sorted = set.keys.clone();
        sorted.sort();
        assert_eq!(set.keys, sorted);
        assert_eq!(set.keys.len(), 4);
        let mode = |id: &str| set.exclusive[set.keys.binary_search(&lock_key(id)).unwrap()];
        assert!(mode("a") && mode("b"));
        assert!(!mode("c") && !mode("d"));
    }

    #[test]
    fn a_batch_locks_its_chains_shared() {
        let chains = HashMap::from([("loc".to_owned(), vec!["root".to_owned(), "t".to_owned()])]);
        let set = batch_locks(&["loc".to_owned()], &["loc".to_owned()], &chains);
        assert_eq!(set.keys.len(), 3);
        let mode = |id: &str| set.exclusive[set.keys.binary_search(&lock_key(id)).unwrap()];
        assert!(mode("loc") && !mode("root") && !mode("t"));
    }
}
