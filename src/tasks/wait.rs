//! `wait`, `as_completed`. Under construction.
