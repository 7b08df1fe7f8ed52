//! The main job: an echo server on streams (asyncio's `start_server`).
//!
//! Each client gets a task that loops `read(65536)` / `write` / `drain` until EOF,
//! then closes the connection. With `--lines` it echoes line by line instead
//! (`readline` / `write` / `drain`), with a stream limit of 1 MiB so that long lines
//! fit (asyncio's default limit is 64 KiB; the benchmark sends 100 KiB lines). With
//! `--lend` it echoes by chunks with `read_with`, the zero-copy twin of `read`: each
//! chunk is written straight from the reader's buffer instead of being copied into a
//! `Vec` first.
//!
//! ```sh
//! cargo run --release --example echo_server                  # 127.0.0.1:8888
//! cargo run --release --example echo_server -- --lines 127.0.0.1:9000
//! cargo run --release --example echo_client -- 127.0.0.1:8888 hello world   # in another terminal
//! ```
//!
//! `drain()` is the backpressure: when a client sends faster than it reads, the
//! replies pile up in the transport's buffer; past its high-water mark (64 KiB)
//! `drain` waits, so the task stops reading, the reader's buffer fills, the transport
//! stops reading the socket, and TCP slows the client down. Memory per client stays
//! bounded without a line of flow-control code here.
//!
//! Stopping: end of input (Ctrl-D) shuts down gracefully when stdin is a terminal or
//! a pipe: stop accepting, flush and close every connection, exit 0. Ctrl-C (SIGINT)
//! or SIGTERM shut down gracefully too, whatever stdin is: stop accepting, give the
//! connections in flight 2 s to finish (a client mid-request gets its answer), close
//! the rest, print `shut down on SIGTERM` (or SIGINT), exit 0; a second Ctrl-C ends the
//! process at once. With stdin on `/dev/null` (the benchmark, a daemon) only a signal
//! stops it. The details are in `examples/common/serve.rs` and
//! `examples/common/signals.rs`; the recipe is in docs/12-unix-events.md.
//!
//! With `--tls --cert FILE --key FILE` (PEM files; cargo feature `tls`) it serves TLS:
//! the same streams, with `ssl` set in the server options (docs/16-tls.md).
//!
//! The benchmark runs it as `echo_server ADDR`, `echo_server --lend ADDR` and
//! `echo_server --lines ADDR`.
//! Read with it: docs/08-streams.md, docs/09-servers.md.

mod common;

use std::net::SocketAddr;
use std::process::ExitCode;

use asyncio::{ServerOptions, StreamReader, StreamWriter};
use common::cli;

const USAGE: &str = "[--lines | --lend] [--tls --cert FILE --key FILE] [ADDR]

An echo server on asyncio streams: every byte a client sends is sent back.

  ADDR         the address to listen on, IP:PORT (default 127.0.0.1:8888; port 0
               picks a free port)
  --lines      echo line by line (readline) instead of by chunks (read(65536))
  --lend       echo by chunks with read_with(65536): no copy out of the reader
  --tls        serve TLS (needs the cargo feature tls) with the PEM certificate
               chain of --cert FILE and the PEM private key of --key FILE
  -h, --help   show this help

Prints 'listening on ADDR' once it listens. End of input on stdin (Ctrl-D) shuts it
down gracefully when stdin is a terminal or a pipe. SIGINT (Ctrl-C) or SIGTERM
shut it down gracefully too: stop accepting, let the connections in flight finish
(2 s at most), close the rest, print 'shut down on SIGTERM' (or SIGINT), exit 0.";

/// The reader's limit in `--lines` mode: the longest line that can be echoed.
const LINE_LIMIT: usize = 1 << 20;

/// Echo chunk by chunk until the client's EOF (asyncio's `read(65536)` loop).
async fn echo_chunks(reader: &mut StreamReader, writer: &StreamWriter) -> asyncio::Result<()> {
    loop {
        let data = reader.read(65536).await?;
        if data.is_empty() {
            return Ok(()); // EOF
        }
        writer.write(&data)?;
        writer.drain().await?;
    }
}

/// Echo chunk by chunk with no copy of our own: `read_with` lends each chunk to
/// `write`, which sends it from the reader's buffer (and copies only what the socket
/// did not take).
async fn echo_lent(reader: &mut StreamReader, writer: &StreamWriter) -> asyncio::Result<()> {
    loop {
        let sent = reader
            .read_with(65536, |data| writer.write(data).map(|()| data.len()))
            .await??;
        if sent == 0 {
            return Ok(()); // EOF
        }
        writer.drain().await?;
    }
}

/// Echo line by line until the client's EOF (the last line may lack its `\n`).
async fn echo_lines(reader: &mut StreamReader, writer: &StreamWriter) -> asyncio::Result<()> {
    while let Some(line) = reader.next_line().await {
        writer.write(&line?)?;
        writer.drain().await?;
    }
    Ok(())
}

/// One client, from accept to close. Errors are this connection's only: a client that
/// leaves without saying goodbye (a reset) is normal; anything else gets one line on
/// stderr.
async fn client(mut reader: StreamReader, writer: StreamWriter, mode: Mode) {
    let outcome = match mode {
        Mode::Chunks => echo_chunks(&mut reader, &writer).await,
        Mode::Lent => echo_lent(&mut reader, &writer).await,
        Mode::Lines => echo_lines(&mut reader, &writer).await,
    };
    common::serve::finish_client(&writer, outcome).await;
}

/// How a client's bytes are echoed.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// `read(65536)` / `write` / `drain`.
    Chunks,
    /// `read_with(65536, write)` / `drain` (`--lend`).
    Lent,
    /// `readline` / `write` / `drain` (`--lines`).
    Lines,
}

/// The TLS certificate chain and key files of `--tls`.
type TlsFiles = Option<(String, String)>;

async fn serve(addr: SocketAddr, mode: Mode, tls: TlsFiles) -> asyncio::Result<()> {
    let limit = if mode == Mode::Lines {
        LINE_LIMIT
    } else {
        asyncio::streams::DEFAULT_LIMIT
    };
    // The backlog (connections accepted per readiness event) of the benchmark's peers.
    #[allow(unused_mut)]
    let mut opts = ServerOptions {
        backlog: 1024,
        ..ServerOptions::default()
    };
    #[cfg(feature = "tls")]
    if let Some((cert, key)) = &tls {
        opts.ssl = Some(asyncio::sslproto::server_config_from_pem(cert, key)?);
    }
    #[cfg(not(feature = "tls"))]
    let _ = tls;
    let server = asyncio::start_server_with(
        move |reader, writer| client(reader, writer, mode),
        Some(&addr.ip().to_string()),
        addr.port(),
        limit,
        opts,
    )
    .await?;
    common::serve::serve_until_end_of_input(&server).await
}

fn main() -> ExitCode {
    common::init_logging();
    let mut args =
        match cli::args_or_exit(USAGE, &["--lines", "--lend", "--tls", "--cert", "--key"]) {
            Ok(args) => args,
            Err(code) => return code,
        };
    let (cert, key) = match (
        cli::take_option_value(&mut args, "--cert"),
        cli::take_option_value(&mut args, "--key"),
    ) {
        (Ok(c), Ok(k)) => (c, k),
        (Err(e), _) | (_, Err(e)) => return cli::usage_error(e),
    };
    let tls = match (args.has("--tls"), cert, key) {
        (false, None, None) => None,
        (true, Some(c), Some(k)) if cfg!(feature = "tls") => Some((c, k)),
        (true, Some(_), Some(_)) => {
            return cli::usage_error("--tls needs the cargo feature tls (--features tls)")
        }
        _ => return cli::usage_error("--tls goes with --cert FILE and --key FILE"),
    };
    let addr = match cli::server_addr(&args) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let mode = match (args.has("--lines"), args.has("--lend")) {
        (true, true) => return cli::usage_error("--lines and --lend do not mix"),
        (true, false) => Mode::Lines,
        (false, true) => Mode::Lent,
        (false, false) => Mode::Chunks,
    };
    cli::finish(asyncio::run(serve(addr, mode, tls)))
}
