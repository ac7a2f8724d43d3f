//! Read models and queries (issue 3).
