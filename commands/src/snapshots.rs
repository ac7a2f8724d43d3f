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
const MAX_CACHED_STATES: usize = 50_000;

#[derive(Debug, Default)]
pub(crate) struct Snapshots {
    states: Mutex<HashMap<String, (i64, Arc<Aggregate>)>>,
}

impl Snapshots {
    /// The cached version of each of `ids`, 0 where none (no stream has version 0).
    pub(crate) fn versions(&self, ids: &[String]) -> Vec<i64> {
        let states = self.states.lock().expect("snapshot cache poisoned");
        ids.iter()
            .map(|id| states.get(id).map_or(0, |(version, _)| *version))
            .collect()
    }

    /// The state of `id` at `version`, if cached.
    pub(crate) fn get(&self, id: &str, version: i64) -> Option<Arc<Aggregate>> {
        let states = self.states.lock().expect("snapshot cache poisoned");
        match states.get(id) {
            Some((cached, state)) if *cached == version => Some(state.clone()),
            _ => None,
        }
    }

    /// Remembers committed states (see the module comment: never an uncommitted one).
    pub(crate) fn remember<'a>(
        &self,
        committed: impl IntoIterator<Item = (&'a String, i64, &'a Arc<Aggregate>)>,
    ) {
        let mut states = self.states.lock().expect("snapshot cache poisoned");
        for (id, version, state) in committed {
            if states.len() >= MAX_CACHED_STATES && !states.contains_key(id) {
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
        assert_eq!(cache.versions(&[id.clone(), "other".into()]), vec![3, 0]);
        assert!(cache.get("s", 3).is_some());
        assert!(cache.get("s", 4).is_none());
        assert!(cache.get("other", 3).is_none());
    }

    #[test]
    fn an_older_version_never_replaces_a_newer_one() {
        let cache = Snapshots::default();
        let id = "s".to_owned();
        cache.remember([(&id, 5, &state("new"))]);
        cache.remember([(&id, 4, &state("old"))]);
        assert_eq!(cache.versions(std::slice::from_ref(&id)), vec![5]);
    }
}
