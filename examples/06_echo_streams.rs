//! Step 6 of 7: the echo server again, on streams.
//!
//! `start_server` calls an async function once per client with a `StreamReader` and a
//! `StreamWriter`. Underneath is a protocol like the one of `05_echo_protocol`, but
//! it only puts the received bytes in the reader's buffer and wakes the task waiting
//! for them. The server is now five lines that read top to bottom:
//!
//! - **no callbacks**: `reader.readline().await` waits for a whole line; the state of
//!   a connection is the local variables of its task;
//! - **framing by the reader**: `readline`, `readuntil`, `readexactly` collect the
//!   chunks TCP delivers into the units the program means;
//! - **backpressure by `drain()`**: `write` never blocks, and `drain().await` waits
//!   while the transport holds more than its high-water mark (64 KiB). A task that
//!   waits in `drain` stops reading, so its reader's buffer fills, its transport stops
//!   reading the socket, and TCP slows the sender down.
//!
//! ```sh
//! cargo run --example 06_echo_streams -- --selftest   # a server and clients in one process, then exit
//! cargo run --example 06_echo_streams                 # serve on 127.0.0.1:8888 (or give IP:PORT)
//! ```
//!
//! The self-test runs three clients at once, then a client that writes without
//! reading until `drain()` has to wait, and watches the backpressure work end to end.
//! While it serves, try `cargo run --example echo_client -- 127.0.0.1:8888 hi there`
//! (or `nc 127.0.0.1 8888`); end of input (Ctrl-D), Ctrl-C or SIGTERM shut it down
//! gracefully. `echo_server` is the same server with a chunk mode and the benchmark's
//! settings.
//!
//! The pain it ends on: every connection lives alone. Its task knows its own reader
//! and writer and nothing else, so clients cannot talk to each other. A server where
//! they do needs state shared between tasks, and then one slow client must not stall
//! the others: `07_chat_server`.
//!
//! Read with it: docs/08-streams.md, then docs/09-servers.md.

mod common;

use std::net::SocketAddr;
use std::process::ExitCode;

use asyncio::{Address, Error, Server, StreamReader, StreamWriter};
use common::cli;

const USAGE: &str = "[--selftest] [ADDR]

A line echo server on asyncio streams: every line a client sends is sent back.

  ADDR         the address to listen on, IP:PORT (default 127.0.0.1:8888)
  --selftest   start a server on a free port, run clients against it, check, exit
  -h, --help   show this help

End of input on stdin (Ctrl-D) shuts the server down gracefully when stdin is a
terminal or a pipe; otherwise it serves until killed.";

// ----- the server --------------------------------------------------------------------

/// One client: echo each line until EOF. Compare with the `Echo` protocol of
/// `05_echo_protocol`: the same job, as one straight function. An error (the client
/// reset the connection, a line longer than the reader's 64 KiB limit) ends this
/// client only, and is reported through the loop's exception handler.
async fn handle_echo(mut reader: StreamReader, writer: StreamWriter) -> asyncio::Result<()> {
    while let Some(line) = reader.next_line().await {
        writer.write(&line?)?;
        writer.drain().await?; // waits only while the client is not reading its echo
    }
    writer.close();
    writer.wait_closed().await
}

async fn start(addr: SocketAddr) -> asyncio::Result<Server> {
    asyncio::start_server(handle_echo, Some(&addr.ip().to_string()), addr.port()).await
}

// ----- the self-test's clients -------------------------------------------------------

/// A client as straight-line code: connect, write a line, read its echo, repeat.
async fn chatty_client(port: u16, id: usize) -> asyncio::Result<()> {
    let (mut reader, writer) = asyncio::open_connection("127.0.0.1", port).await?;
    for n in 1..=3 {
        let line = format!("client {id}, line {n}\n");
        writer.write(line.as_bytes())?;
        writer.drain().await?;
        let echo = reader.readline().await?;
        assert_eq!(echo, line.as_bytes());
        print!("client {id}: got back: {line}");
    }
    writer.close();
    writer.wait_closed().await
}

/// The numbered line `i`, 1 KiB with its newline.
fn numbered_line(i: usize) -> Vec<u8> {
    let mut line = format!("{i:09} ").into_bytes();
    line.resize(1023, b'.');
    line.push(b'\n');
    line
}

/// A client that first writes without reading anything back, until `drain()` has to
/// wait, then reads the echo in a task of its own while it writes some more.
async fn firehose_client(port: u16) -> asyncio::Result<()> {
    let (mut reader, writer) = asyncio::open_connection("127.0.0.1", port).await?;
    let (_low, high) = writer.transport().get_write_buffer_limits();
    let buffered = || writer.transport().get_write_buffer_size();

    // 1. Write, never read. The echo piles up: in the server's write buffer, until
    //    its drain() waits; then the server stops reading us, the kernel's buffers
    //    between us fill, and our own transport starts buffering. Past the high-water
    //    mark, our drain() would wait too: the backpressure has come all the way back.
    let mut sent = 0;
    loop {
        writer.write(&numbered_line(sent))?;
        sent += 1;
        if buffered() > high {
            break; // drain() would wait now, and nobody reads: stop here
        }
        if sent == 64 * 1024 {
            return Err(cli::error("64 MiB written and drain() never had to wait"));
        }
        writer.drain().await?; // returns at once while under the high-water mark
    }
    println!(
        "firehose: wrote {:.1} MiB without reading; now {} KiB wait in our transport \
         (over the {} KiB high-water mark): drain() waits, the server stopped reading us",
        (sent * 1024) as f64 / (1024.0 * 1024.0),
        buffered() / 1024,
        high / 1024
    );

    // 2. Read the echo in another task, and keep writing, with drain() after each
    //    line. The buffer never goes far over the high-water mark.
    let reading = asyncio::create_task(async move {
        let mut got = 0;
        while let Some(line) = reader.next_line().await {
            if line? != numbered_line(got) {
                return Err(cli::error(format_args!("echo of line {got} differs")));
            }
            got += 1;
        }
        Ok(got)
    });
    writer.drain().await?; // returns once the reading task has made room
    let mut peak = 0;
    for _ in 0..4096 {
        writer.write(&numbered_line(sent))?;
        sent += 1;
        peak = peak.max(buffered());
        writer.drain().await?;
    }
    writer.write_eof()?; // we are done; the server closes after the last echo
    let got = reading.await??;
    println!(
        "firehose: {got} lines echoed, in order; our buffer peaked at {} KiB with drain()",
        peak / 1024
    );
    assert_eq!(got, sent);
    assert!(
        peak <= high + 1024,
        "drain() keeps the buffer near the high-water mark"
    );
    writer.close();
    writer.wait_closed().await
}

async fn selftest() -> asyncio::Result<()> {
    let server = start(cli::listen_addr("127.0.0.1:0").map_err(Error::value)?).await?;
    let Some(Address::Inet(addr)) = server.local_addrs().into_iter().next() else {
        return Err(Error::runtime("the server has no TCP address"));
    };
    println!("server: listening on {addr}");

    // Three clients at once: three tasks, and three server tasks answering them.
    let clients: Vec<_> = (1..=3)
        .map(|id| asyncio::create_task(chatty_client(addr.port(), id)))
        .collect();
    for client in clients {
        client.await??;
    }
    firehose_client(addr.port()).await?;

    server.close();
    server.wait_closed().await?;
    println!("server: closed, no connection left");
    Ok(())
}

fn main() -> ExitCode {
    common::serve::progression_main(USAGE, selftest, start)
}
