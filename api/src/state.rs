//! What every request handler can reach.

use std::sync::Arc;

use axum::extract::FromRef;
use deadpool_postgres::Pool;

use plinth_commands::{CommandBus, EventStore};
use plinth_projections::read::ReadProgress;

use crate::auth::Auth;
use crate::settings::Settings;

#[derive(Debug, Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub pool: Pool,
    pub store: EventStore,
    pub bus: CommandBus,
    pub auth: Auth,
    /// Read-your-writes (`?min_position`): one watcher of the read models for every waiting read.
    pub read_progress: ReadProgress,
}

impl FromRef<AppState> for Auth {
    fn from_ref(state: &AppState) -> Self {
        state.auth.clone()
    }
}
