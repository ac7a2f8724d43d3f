//! Plinth's pure domain: identifiers, validated values, commands, events, aggregate state and
//! the rules that turn a command into events.
//!
//! Nothing here does I/O: the write side (`plinth-commands`) loads and locks the state a
//! command needs, calls [`decide`], folds the resulting events with [`apply`] and appends them.
//! Keeping every rule here means every rule is unit-testable without a database.

pub mod action;
pub mod aggregate;
pub mod command;
pub mod decide;
pub mod event;
pub mod id;
pub mod memory;
pub mod upcast;
pub mod values;

pub use action::{Action, ActionError};
pub use aggregate::{apply, Aggregate, Body, Lifecycle};
pub use command::{Command, CommandType, Target};
pub use decide::{decide, effective_role, Actor, DomainError, Facts, Principal};
pub use event::{DecodeError, Event};
pub use id::{
    AggregateKind, IdError, LocationId, ProviderId, ResourceId, ResourceProviderId, TenantId,
    UserId,
};
pub use values::{IdentityPart, Role, Scope, ValueError};

#[cfg(test)]
mod tests;
