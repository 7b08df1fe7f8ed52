//! One loop per core: a streams echo server on N event loops, one per thread, each
//! with its own listening socket bound with `SO_REUSEPORT` to the same address, so the
//! kernel spreads the connections among the loops (`asyncio::server::serve_multicore`).
//!
//! ```sh
//! cargo run --release --example multicore_echo -- --threads 4 127.0.0.1:8888
//! cargo run --release --example echo_client -- 127.0.0.1:8888 hello   # in another terminal
//! ```
//!
//! Each loop is the single-threaded loop of the other examples: a connection stays on
//! the loop that accepted it, and nothing is shared between loops but the port. With
//! port 0 the first loop's socket gets a free port and the others bind that one.
//!
//! Stopping: end of input (Ctrl-D, or closing the pipe on stdin) stops every loop
//! (each closes its server, then its connections) and exits 0; Ctrl-C ends the process
//! at once. With stdin on `/dev/null` it serves until killed (see
//! `examples/common/serve.rs`).
//! Read with it: docs/09-servers.md.

mod common;

use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;

use asyncio::{ServerOptions, StreamReader, StreamWriter};
use common::cli;

const USAGE: &str = "[--threads N] [ADDR]

An echo server on N asyncio event loops, one per thread, all listening on ADDR
with SO_REUSEPORT: the kernel spreads the connections among the loops.

  ADDR          the address to listen on, IP:PORT (default 127.0.0.1:8888; port 0
                picks a free port, shared by every loop)
  --threads N   how many loops (default: the number of CPUs)
  -h, --help    show this help

Prints 'listening on ADDR' once every loop listens. End of input on stdin (Ctrl-D)
stops every loop when stdin is a terminal or a pipe; otherwise it serves until
killed.";

/// Echo chunk by chunk until the client's EOF.
async fn echo(mut reader: StreamReader, writer: StreamWriter) {
    let outcome = async {
        loop {
            let data = reader.read(65536).await?;
            if data.is_empty() {
                return Ok(());
            }
            writer.write(&data)?;
            writer.drain().await?;
        }
    }
    .await;
    common::serve::finish_client(&writer, outcome).await;
}

/// `--threads N` and `[ADDR]`, or the exit code of `--help` / a usage error.
fn parse_args() -> Result<(usize, SocketAddr), ExitCode> {
    let mut threads = None;
    let mut addr = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let value = if a == "--threads" {
            Some(
                args.next()
                    .ok_or_else(|| cli::usage_error("--threads needs a number"))?,
            )
        } else {
            a.strip_prefix("--threads=").map(str::to_string)
        };
        if let Some(v) = value {
            match v.parse::<usize>() {
                Ok(n) if n > 0 => threads = Some(n),
                _ => return Err(cli::usage_error(format!("invalid thread count '{v}'"))),
            }
        } else if a == "-h" || a == "--help" {
            return Err(cli::help(USAGE));
        } else if a.starts_with('-') {
            return Err(cli::usage_error(format!("unknown option '{a}'")));
        } else if addr.is_some() {
            return Err(cli::usage_error(format!("unexpected argument '{a}'")));
        } else {
            addr = Some(cli::listen_addr(&a).map_err(cli::usage_error)?);
        }
    }
    let threads = threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let addr = match addr {
        Some(a) => a,
        None => cli::listen_addr(cli::DEFAULT_ADDR).map_err(cli::usage_error)?,
    };
    Ok((threads, addr))
}

fn main() -> ExitCode {
    common::init_logging();
    let (threads, addr) = match parse_args() {
        Ok(a) => a,
        Err(code) => return code,
    };
    let prog = cli::prog_name();
    let started = asyncio::server::serve_multicore(threads, addr, |_index, sock| async move {
        let opts = ServerOptions {
            sock: Some(sock),
            backlog: 1024,
            ..Default::default()
        };
        let server =
            asyncio::start_server_with(echo, None, 0, asyncio::streams::DEFAULT_LIMIT, opts)
                .await?;
        match server.serve_forever().await {
            Ok(()) | Err(asyncio::Error::Cancelled) => Ok(()),
            Err(e) => Err(e),
        }
    });
    let mc = match started {
        Ok(mc) => mc,
        Err(e) => {
            eprintln!("{prog}: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("{prog}: listening on {} ({threads} loops)", mc.local_addr());
    if common::serve::stdin_is_watched() {
        // Anything typed is thrown away; the end of input stops the loops.
        let _ = io::copy(&mut io::stdin().lock(), &mut io::sink());
        mc.stop();
        let r = mc.join();
        println!("{prog}: end of input: {threads} loops stopped");
        return cli::finish(Ok(r));
    }
    cli::finish(Ok(mc.join()))
}
