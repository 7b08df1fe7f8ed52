//! `gather`, `shield`. Under construction.
