//! Step 5 of 7: sockets, at the protocol layer.
//!
//! A transport owns a socket: it reads when the selector says the socket is readable,
//! sends what it can and buffers the rest. A protocol is the object the transport
//! calls: `connection_made`, `data_received`, `eof_received`, `connection_lost`. The
//! server here is asyncio's `EchoServerProtocol` from the "Transports and Protocols"
//! docs: every byte received is written straight back (one `recv`, one `send`), which
//! makes it the fastest server in this directory.
//!
//! ```sh
//! cargo run --example 05_echo_protocol -- --selftest   # a server and a client in one process, then exit
//! cargo run --example 05_echo_protocol                 # serve on 127.0.0.1:8888 (or give IP:PORT)
//! ASYNCIO_DEBUG=1 cargo run --example 05_echo_protocol -- --selftest   # see the I/O events
//! ```
//!
//! While it serves, try it with `cargo run --example echo_client -- 127.0.0.1:8888 hi`
//! (or `nc 127.0.0.1 8888`). End of input (Ctrl-D), Ctrl-C or SIGTERM
//! shut it down gracefully (see `common/serve.rs`). The benchmark runs this same program under
//! the name `echo_protocol` (`examples/echo_protocol.rs`).
//!
//! The pain it ends on: it is callbacks again. The self-test's client sends one
//! message and gets the echo back in as many `data_received` calls as TCP felt like:
//! it has to collect the bytes itself and decide when a reply is complete (framing by
//! hand), keep its state in `RefCell`s, and report the result through a `Future` set
//! from a callback. Nor does anything stop a fast sender: a protocol that wants
//! backpressure implements `pause_writing` / `resume_writing` itself. `06_echo_streams`
//! puts a buffer and a task on top: `readline().await`, `drain().await`.
//!
//! Read with it: docs/07-transports-and-protocols.md, then docs/09-servers.md.

mod common;

use std::cell::{Cell, OnceCell, RefCell};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;

use asyncio::{
    Address, BaseProtocol, ConnectOptions, Error, Future, Protocol, Server, ServerOptions,
    Transport,
};
use common::cli;

const USAGE: &str = "[--selftest] [ADDR]

An echo server built on asyncio's Protocol layer: every byte received is sent back.

  ADDR         the address to listen on, IP:PORT (default 127.0.0.1:8888)
  --selftest   start a server on a free port, talk to it, check the echo, exit
  -h, --help   show this help

End of input on stdin (Ctrl-D) shuts the server down gracefully when stdin is a
terminal or a pipe; otherwise it serves until killed.";

// ----- the server: asyncio's EchoServerProtocol ------------------------------------

/// One connection's protocol: keeps its transport and echoes.
#[derive(Default)]
struct Echo {
    transport: OnceCell<Rc<dyn Transport>>,
}

impl BaseProtocol for Echo {
    fn connection_made(&self, transport: Rc<dyn Transport>) {
        let _ = self.transport.set(transport);
    }
}

impl Protocol for Echo {
    fn data_received(&self, data: &[u8]) {
        if let Some(t) = self.transport.get() {
            // The transport sends at once and buffers only what the socket does not
            // take. write() only fails after write_eof(), which this server never calls.
            let _ = t.write(data);
        }
    }

    fn eof_received(&self) -> bool {
        false // the client is done: close our side too
    }
}

/// Listen on `addr` with the echo protocol. The backlog (how many connections one
/// readiness event may accept) is the benchmark peers' 1024.
async fn start(addr: SocketAddr) -> asyncio::Result<Server> {
    let lp = asyncio::get_running_loop()?;
    let opts = ServerOptions {
        backlog: 1024,
        ..ServerOptions::default()
    };
    lp.create_server(
        Echo::default,
        Some(&addr.ip().to_string()),
        addr.port(),
        opts,
    )
    .await
}

// ----- the self-test's client: the same layer, seen from the other side -------------

/// A client protocol that sends one message and collects its echo. Everything it
/// knows lives in cells, because callbacks only get `&self`.
struct EchoClient {
    message: Rc<Vec<u8>>,
    received: RefCell<Vec<u8>>,
    chunks: Cell<usize>,
    transport: OnceCell<Rc<dyn Transport>>,
    /// Where the complete echo lands: the only way out of the callbacks.
    done: Future<Vec<u8>>,
}

impl BaseProtocol for EchoClient {
    fn connection_made(&self, transport: Rc<dyn Transport>) {
        // One write of the whole message. It never blocks: what the socket does not
        // take waits in the transport's buffer, and nothing here has to wait for it.
        let _ = transport.write(&self.message);
        println!(
            "client: one write() of {} bytes, returned at once (the transport buffers \
             what the socket did not take: {} bytes)",
            self.message.len(),
            transport.get_write_buffer_size()
        );
        let _ = self.transport.set(transport);
    }

    fn connection_lost(&self, exc: Option<Error>) {
        // If the reply is complete this does nothing (the future is already done).
        let _ = self.done.set_exception(exc.unwrap_or_else(|| {
            Error::runtime("the server closed the connection before the whole echo came")
        }));
    }
}

impl Protocol for EchoClient {
    fn data_received(&self, data: &[u8]) {
        // Framing by hand: TCP delivers a byte stream in chunks of its own choosing.
        // Only the client knows that the reply ends after message.len() bytes.
        self.chunks.set(self.chunks.get() + 1);
        let mut received = self.received.borrow_mut();
        received.extend_from_slice(data);
        if received.len() >= self.message.len() {
            let _ = self.done.set_result(std::mem::take(&mut *received));
            if let Some(t) = self.transport.get() {
                t.close();
            }
        }
    }
}

/// Start a server on a free port, send it 256 KiB through a protocol client, check
/// the echo.
async fn selftest() -> asyncio::Result<()> {
    let lp = asyncio::get_running_loop()?;
    let server = start(cli::listen_addr("127.0.0.1:0").map_err(Error::value)?).await?;
    let Some(Address::Inet(addr)) = server.local_addrs().into_iter().next() else {
        return Err(Error::runtime("the server has no TCP address"));
    };
    println!("server: listening on {addr}");

    let message: Rc<Vec<u8>> = Rc::new((0..256 * 1024).map(|i| (i % 251) as u8).collect());
    let done = lp.create_future::<Vec<u8>>();
    let (m, d) = (message.clone(), done.clone());
    let (_transport, client) = lp
        .create_connection(
            move || EchoClient {
                message: m,
                received: RefCell::default(),
                chunks: Cell::new(0),
                transport: OnceCell::new(),
                done: d,
            },
            "127.0.0.1",
            addr.port(),
            ConnectOptions::default(),
        )
        .await?;

    let echo = done.await?;
    println!(
        "client: the echo came back in {} data_received calls, which the client had to \
         stitch together itself",
        client.chunks.get()
    );
    assert_eq!(echo, *message, "the echo differs from the message");
    println!("client: all {} bytes match", echo.len());

    // The client closed its side; the server's protocol saw EOF and closed too.
    server.close();
    server.wait_closed().await?;
    println!("server: closed, no connection left");
    Ok(())
}

pub fn main() -> ExitCode {
    common::serve::progression_main(USAGE, selftest, start)
}
