//! What every request handler can reach.

use std::sync::Arc;

use deadpool_postgres::Pool;

use plinth_commands::{CommandBus, EventStore};

use crate::auth::{KnownUsers, Verifier};
use crate::settings::Settings;

#[derive(Debug, Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub pool: Pool,
    pub store: EventStore,
    pub bus: CommandBus,
    pub verifier: Verifier,
    pub known_users: KnownUsers,
}
