//! What every request handler can reach.

use std::sync::Arc;

use axum::extract::FromRef;
use deadpool_postgres::Pool;

use plinth_commands::{CommandBus, EventStore};
use plinth_projections::read::ReadProgress;

use crate::auth::Auth;
use crate::settings::Settings;

/// Cheap to clone (one reference count): axum clones the state for every request, several
/// times over its layers and extractors.
#[derive(Debug, Clone)]
pub struct AppState(Arc<AppParts>);

/// The parts of [`AppState`], reached through it by `Deref`.
#[derive(Debug)]
pub struct AppParts {
    pub settings: Arc<Settings>,
    pub pool: Pool,
    pub store: EventStore,
    pub bus: CommandBus,
    pub auth: Auth,
    /// Read-your-writes (`?min_position`): one watcher of the read models for every waiting read.
    pub read_progress: ReadProgress,
    /// The read replicas (`PLINTH_READ_DATABASE_URLS`), possibly none.
    pub replicas: Arc<crate::replicas::Replicas>,
}

impl AppState {
    pub fn new(parts: AppParts) -> Self {
        Self(Arc::new(parts))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppParts;

    fn deref(&self) -> &AppParts {
        &self.0
    }
}

impl FromRef<AppState> for Auth {
    fn from_ref(state: &AppState) -> Self {
        state.auth.clone()
    }
}
