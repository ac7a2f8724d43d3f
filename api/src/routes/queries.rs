//! Read routes (the query API over the read models).

use axum::Router;

use crate::state::AppState;

/// The read routes; mounted beside the command routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
}
