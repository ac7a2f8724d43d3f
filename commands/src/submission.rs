//! What a caller hands to the write side.

use uuid::Uuid;

use plinth_domain::{Actor, Command};

/// An idempotency key and a hash of the request it was first used with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    pub key: String,
    pub request_hash: Vec<u8>,
}

/// A command with everything needed to decide, record and answer it.
#[derive(Debug, Clone)]
pub struct Submission {
    pub actor: Actor,
    pub command: Command,
    /// Optimistic concurrency: the version the client last saw of the target stream.
    pub expected_version: Option<i64>,
    pub idempotency: Option<IdempotencyKey>,
    pub command_id: Uuid,
    pub correlation_id: Uuid,
    pub causation_id: Option<Uuid>,
    pub traceparent: Option<String>,
}

impl Submission {
    /// Every stream the decision reads besides its target: the command's references and the
    /// acting resource provider's stream (its bound identities are checked at commit).
    pub fn references(&self) -> Vec<String> {
        let mut ids = self.command.references();
        ids.extend(self.actor.references());
        ids
    }

    /// A submission with fresh ids and no options.
    pub fn new(actor: Actor, command: Command) -> Self {
        let command_id = Uuid::now_v7();
        Self {
            actor,
            command,
            expected_version: None,
            idempotency: None,
            command_id,
            correlation_id: command_id,
            causation_id: None,
            traceparent: None,
        }
    }
}
