//! The asyncio crate with Rust's async ecosystem (a workspace member, not published).
//!
//! The library's optional features (`futures-io`, `tokio-io`, `hyper`) are exercised
//! here with the real crates, so that the library's own build and `cargo test` never
//! compile them:
//!
//! - `tests/test_futures_io.rs`: `futures::io::copy`, `AsyncBufReadExt::read_line` and
//!   friends over real connections;
//! - `tests/test_tokio_io.rs`: the same through tokio's I/O traits (no tokio runtime);
//! - `tests/test_hyper.rs`: a hyper client and a hyper server, both on the loop, over
//!   HTTP/1.1 with keep-alive and HTTP/2;
//! - `examples/hyper_server.rs`: hello world on hyper, HTTP/1.1 and HTTP/2 (prior
//!   knowledge).
//!
//! Run them with `cargo test -p asyncio-ecosystem` and
//! `cargo run -p asyncio-ecosystem --example hyper_server`.
#![deny(missing_docs)]
