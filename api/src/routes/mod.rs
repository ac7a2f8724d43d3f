//! HTTP routes, one module per area.

pub(crate) mod commands;
pub(crate) mod console;
pub(crate) mod me;
pub(crate) mod openapi;
pub(crate) mod ops;
pub(crate) mod queries;
pub(crate) mod query_names;
