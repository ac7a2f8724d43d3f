//! The writers' cache of stream states, so that a batch does not move and decode the snapshot
//! of every stream it reads when it already knows that stream's current version.
//!
//! A stream's state at a given version never changes (events are immutable), so a cached
//! `(version, state)` is right exactly when the version read under the batch's locks is the
//! cached one; the load statement then sends no snapshot. Only versions that are committed
//! enter the cache: those read from `streams`, and those a batch wrote once its COMMIT
//! succeeded. A version from a rolled-back transaction could later be written again with other
//! events, so it must never be remembered. Correct across processes for the same reason: the
//! version in the database is the authority, the cache only saves the bytes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use plinth_domain::Aggregate;

/// Enough for the streams (tenant chains, busy targets) a busy writer touches; past it the
/// cache starts over, and a miss costs one snapshot in the load statement.
/// `PLINTH_WRITE_CACHE_STATES` sets it.
pub const DEFAULT_CACHED_STATES: usize = 50_000;

#[derive(Debug)]
pub(crate) struct Snapshots {
    states: Mutex<HashMap<String, (i64, Arc<Aggregate>)>>,
    capacity: usize,
}

impl Default for Snapshots {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CACHED_STATES)
    }
}

/// The cached states one batch holds (see [`Snapshots::held`]).
#[derive(Debug, Default)]
pub(crate) struct Held(HashMap<String, (i64, Arc<Aggregate>)>);

impl Held {
    /// The held version of each of `ids`, 0 where none (no stream has version 0).
    pub(crate) fn versions(&self, ids: &[String]) -> Vec<i64> {
        ids.iter()
            .map(|id| self.0.get(id).map_or(0, |(version, _)| *version))
            .collect()
    }

    /// The held state of `id` at `version`, if any.
    pub(crate) fn get(&self, id: &str, version: i64) -> Option<Arc<Aggregate>> {
        match self.0.get(id) {
            Some((held, state)) if *held == version => Some(state.clone()),
            _ => None,
        }
    }
}

impl Snapshots {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self {
            states: Mutex::default(),
            capacity: capacity.max(1),
        }
    }

    /// What is cached of `ids` now, taken out for one batch: the batch tells the load statement
    /// these versions (so no snapshot is sent for them) and must then use exactly these states.
    /// Looking them up again later could miss: another writer may have cleared the cache in
    /// between (seen under load once the cache filled: a 500 "neither sent nor cached").
    pub(crate) fn held(&self, ids: &[String]) -> Held {
        let states = self.states.lock().expect("snapshot cache poisoned");
        Held(
            ids.iter()
                .filter_map(|id| states.get(id).map(|held| (id.clone(), held.clone())))
                .collect(),
        )
    }

    /// Remembers committed states (see the module comment: never an uncommitted one).
    pub(crate) fn remember<'a>(
        &self,
        committed: impl IntoIterator<Item = (&'a String, i64, &'a Arc<Aggregate>)>,
    ) {
        let mut states = self.states.lock().expect("snapshot cache poisoned");
        for (id, version, state) in committed {
            if states.len() >= self.capacity && !states.contains_key(id) {
                states.clear();
            }
            match states.get(id) {
                // Another writer may already hold a newer committed version.
                Some((cached, _)) if *cached > version => {}
                _ => {
                    states.insert(id.clone(), (version, state.clone()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(id: &str) -> Arc<Aggregate> {
        let event = plinth_domain::Event::UserCreated {
            user_id: plinth_domain::UserId::for_identity("iss", id),
            issuer: "iss".into(),
            subject: id.into(),
        };
        Arc::new(plinth_domain::apply(None, &event).expect("a user"))
    }

    #[test]
    fn a_state_is_answered_only_at_its_version() {
        let cache = Snapshots::default();
        let id = "s".to_owned();
        cache.remember([(&id, 3, &state("a"))]);
        let held = cache.held(&[id.clone(), "other".into()]);
        assert_eq!(held.versions(&[id.clone(), "other".into()]), vec![3, 0]);
        assert!(held.get("s", 3).is_some());
        assert!(held.get("s", 4).is_none());
        assert!(held.get("other", 3).is_none());
    }

    #[test]
    fn a_held_state_survives_the_cache_starting_over() {
        let cache = Snapshots::with_capacity(1);
        let (id, other) = ("s".to_owned(), "t".to_owned());
        cache.remember([(&id, 3, &state("a"))]);
        let ids = std::slice::from_ref(&id);
        let held = cache.held(ids);
        // Another writer fills the cache past its capacity: it starts over.
        cache.remember([(&other, 1, &state("b"))]);
        assert_eq!(cache.held(ids).versions(ids), vec![0]);
        assert!(
            held.get("s", 3).is_some(),
            "the batch keeps what it announced"
        );
    }

    #[test]
    fn an_older_version_never_replaces_a_newer_one() {
        let cache = Snapshots::default();
        let id = "s".to_owned();
        cache.remember([(&id, 5, &state("new"))]);
        cache.remember([(&id, 4, &state("old"))]);
        let ids = std::slice::from_ref(&id);
        assert_eq!(cache.held(ids).versions(ids), vec![5]);
    }
}
