//! What the examples share: a ten-line logger, so that `ASYNCIO_DEBUG=1` shows the
//! loop narrating its own iterations; command-line helpers ([`cli`]); and the life of
//! a server from "listening on" to a graceful shutdown ([`serve`], [`signals`]).
//!
//! Each example compiles this module as its own copy and uses only part of it, hence
//! the `allow(dead_code)`.
//!
//! The crate logs through the `log` facade and installs no logger of its own (a library
//! must not). A program that wants to see the narration installs one; this is the
//! smallest that works: every record at `trace` level and up, to stderr, prefixed with
//! its target (`asyncio` for the loop's own lines).

#![allow(dead_code)]

pub mod cli;
pub mod serve;
pub mod signals;

/// Prints every log record to stderr as `[level target] message`.
struct StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, _metadata: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        eprintln!(
            "[{:<5} {}] {}",
            record.level(),
            record.target(),
            record.args()
        );
    }

    fn flush(&self) {}
}

static LOGGER: StderrLogger = StderrLogger;

/// Install the stderr logger if `ASYNCIO_DEBUG` is set to anything but empty or `0`
/// (the same test the loop uses to turn its debug mode on). Returns whether it did.
pub fn init_logging() -> bool {
    let on = std::env::var_os("ASYNCIO_DEBUG").is_some_and(|v| !v.is_empty() && v != "0");
    if on && log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Trace);
    }
    on
}
