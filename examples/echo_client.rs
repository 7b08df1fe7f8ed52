//! A line client for the echo servers: for each message, send it and a newline,
//! read the echoed line, print it.
//!
//! ```sh
//! cargo run --release --example echo_server &                 # or in another terminal
//! cargo run --example echo_client -- 127.0.0.1:8888 hello "two words"
//! ```
//!
//! prints `hello` and `two words`, one per line, and exits 0. Each exchange is
//! `write` + `drain` + `readline`, under a 10-second timeout; then the client closes
//! and waits for the close (`wait_closed`). A refused connection, a server that
//! closes early or does not answer: one line on stderr, exit status 1.
//!
//! Read with it: docs/08-streams.md.

mod common;

use std::process::ExitCode;
use std::time::Duration;

use common::cli;

const USAGE: &str = "ADDR MESSAGE...

Send each MESSAGE as a line to the echo server at ADDR, print each echoed line.

  ADDR         the server, HOST:PORT (e.g. 127.0.0.1:8888, localhost:8888, [::1]:8888)
  MESSAGE      one line of text each (no newline inside); put -- first if one
               starts with '-'
  -h, --help   show this help";

/// How long to wait for the connection, and then for each echo.
const TIMEOUT: Duration = Duration::from_secs(10);

async fn talk(host: String, port: u16, messages: Vec<String>) -> asyncio::Result<()> {
    let (mut reader, writer) = asyncio::wait_for(asyncio::open_connection(&host, port), TIMEOUT)
        .await
        .and_then(|connected| connected)
        .map_err(|e| cli::connect_error(&host, port, &e))?;
    for message in &messages {
        writer.write(message.as_bytes())?;
        writer.write(b"\n")?;
        writer.drain().await?;
        let line = asyncio::wait_for(reader.readline(), TIMEOUT)
            .await
            .map_err(|_| cli::error("no echo within 10 s"))??;
        if !line.ends_with(b"\n") {
            return Err(cli::error(
                "the server closed the connection before echoing a whole line",
            ));
        }
        println!("{}", String::from_utf8_lossy(&line[..line.len() - 1]));
    }
    writer.close();
    writer.wait_closed().await
}

fn main() -> ExitCode {
    common::init_logging();
    let args = match cli::args_or_exit(USAGE, &[]) {
        Ok(args) => args,
        Err(code) => return code,
    };
    let Some((addr, messages)) = args.positional.split_first() else {
        return cli::usage_error("missing ADDR and MESSAGE");
    };
    if messages.is_empty() {
        return cli::usage_error("missing MESSAGE");
    }
    if messages.iter().any(|m| m.contains('\n')) {
        return cli::usage_error("a MESSAGE cannot contain a newline");
    }
    let (host, port) = match cli::host_port(addr) {
        Ok(hp) => hp,
        Err(msg) => return cli::usage_error(msg),
    };
    cli::finish(asyncio::run(talk(host, port, messages.to_vec())))
}
