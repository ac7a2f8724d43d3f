//! An in-memory reference model of the write side: every rule of [`crate::decide`] plus the
//! ones the database enforces (sibling names). Used by unit tests and as the "naive model" that
//! property tests compare the real store and projections against. Not for production use.

use std::collections::BTreeMap;

use chrono::Utc;

use crate::aggregate::{apply, Aggregate, Body, Lifecycle};
use crate::command::{Command, Target};
use crate::decide::{decide, Actor, DomainError, Facts};
use crate::event::Event;

/// All streams, and the log of every event in append order.
#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    pub streams: BTreeMap<String, Aggregate>,
    pub log: Vec<(String, Event)>,
}

impl Facts for MemoryStore {
    fn get(&self, id: &str) -> Option<&Aggregate> {
        self.streams.get(id)
    }

    fn has_live_dependents(&self, id: &str) -> bool {
        self.streams.values().any(|agg| {
            agg.lifecycle != Lifecycle::Deleted
                && (agg.owner_id().as_deref() == Some(id)
                    || matches!(&agg.body, Body::Provider(p) if p.resource_provider_id.as_str() == id)
                    || matches!(&agg.body, Body::ResourceProvider(r)
                        if r.locations.iter().any(|l| l.as_str() == id)))
        })
    }
}

impl MemoryStore {
    /// Decides and, on success, appends. Returns the stream id and the events.
    pub fn execute(
        &mut self,
        actor: &Actor,
        command: &Command,
    ) -> Result<(String, Vec<Event>), DomainError> {
        let stream_id = match command.target() {
            Target::New(kind) => kind.new_stream_id(),
            Target::Existing(id) => id,
        };
        let events = decide(command, actor, &stream_id, self, Utc::now())?;
        let mut next = self.streams.get(&stream_id).cloned();
        for event in &events {
            next = apply(next, event);
        }
        if let Some(agg) = &next {
            self.check_sibling_name(agg)?;
        }
        if let Some(agg) = next {
            self.streams.insert(stream_id.clone(), agg);
        }
        self.log
            .extend(events.iter().map(|e| (stream_id.clone(), e.clone())));
        Ok((stream_id, events))
    }

    /// Records a user, as the first authenticated request does.
    pub fn create_user(&mut self, issuer: &str, subject: &str) -> crate::id::UserId {
        let user_id = crate::id::UserId::for_identity(issuer, subject);
        if !self.streams.contains_key(user_id.as_str()) {
            let event = Event::UserCreated {
                user_id: user_id.clone(),
                issuer: issuer.to_owned(),
                subject: subject.to_owned(),
            };
            let agg = apply(None, &event).expect("creation event");
            self.streams.insert(user_id.to_string(), agg);
            self.log.push((user_id.to_string(), event));
        }
        user_id
    }

    /// Live siblings may not share a name (case-insensitive); roots are siblings of each other.
    fn check_sibling_name(&self, agg: &Aggregate) -> Result<(), DomainError> {
        let Some(tenant) = agg.as_tenant() else {
            return Ok(());
        };
        if agg.lifecycle == Lifecycle::Deleted {
            return Ok(());
        }
        let key = tenant.name.uniqueness_key();
        let taken = self.streams.values().any(|other| {
            other.id != agg.id
                && other.lifecycle != Lifecycle::Deleted
                && other.as_tenant().is_some_and(|t| {
                    t.parent_id == tenant.parent_id && t.name.uniqueness_key() == key
                })
        });
        if taken {
            return Err(DomainError::NameTaken {
                name: tenant.name.to_string(),
            });
        }
        Ok(())
    }
}
