//! A UDP echo server and client (asyncio's `create_datagram_endpoint` with a
//! `DatagramProtocol`, and the Rust-only awaitable `DatagramSocket`).
//!
//! ```sh
//! cargo run --release --example udp_echo                         # 127.0.0.1:8888
//! cargo run --release --example udp_echo -- --client 127.0.0.1:8888 hello world
//! ```
//!
//! The server's protocol sends every datagram back to where it came from, from inside
//! `datagram_received`: `sendto` tries the socket at once and queues the datagram only
//! if the kernel's buffer is full. The client sends each message as one datagram and
//! prints each echo on a line; a lost datagram is sent again (UDP does not promise
//! delivery), up to three tries of one second each.
//!
//! Stopping the server: end of input (Ctrl-D) closes it when stdin is a terminal or a
//! pipe; with stdin on `/dev/null` it serves until killed.
//! Read with it: docs/14-datagrams.md.

mod common;

use std::cell::RefCell;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use asyncio::{Address, DatagramOptions, DatagramProtocol, DatagramSocket, DatagramTransport};
use common::cli;

const USAGE: &str = "[ADDR] | --client ADDR MESSAGE...

A UDP echo server, or its client.

  ADDR         the server's address, IP:PORT (default 127.0.0.1:8888; port 0 picks a
               free port)
  --client     send each MESSAGE to ADDR as one datagram and print each echo
  -h, --help   show this help

The server prints 'listening on ADDR' once it is bound. End of input on stdin
(Ctrl-D) stops it when stdin is a terminal or a pipe; otherwise it serves until
killed.";

/// How long the client waits for each echo, and how many times it sends.
const WAIT: Duration = Duration::from_secs(1);
const TRIES: u32 = 3;

/// Sends every datagram back to its sender.
#[derive(Default)]
struct Echo {
    transport: RefCell<Option<Rc<dyn DatagramTransport>>>,
}

impl DatagramProtocol for Echo {
    fn connection_made(&self, transport: Rc<dyn DatagramTransport>) {
        *self.transport.borrow_mut() = Some(transport);
    }

    fn datagram_received(&self, data: &[u8], addr: &Address) {
        if let Some(t) = self.transport.borrow().as_ref() {
            // Only argument errors come back here; send errors go to error_received.
            let _ = t.sendto(data, Some(addr));
        }
    }

    fn error_received(&self, exc: asyncio::Error) {
        // A client that went away (ICMP unreachable) is not the server's problem.
        log::debug!("udp_echo: {exc}");
    }

    fn connection_lost(&self, _exc: Option<asyncio::Error>) {
        self.transport.borrow_mut().take();
    }
}

async fn serve(addr: SocketAddr) -> asyncio::Result<()> {
    let lp = asyncio::get_running_loop()?;
    let (transport, _) = lp
        .create_datagram_endpoint(
            Echo::default,
            Some(Address::Inet(addr)),
            None,
            DatagramOptions::default(),
        )
        .await?;
    if let Some(asyncio::ExtraInfo::Address(a)) = transport.get_extra_info("sockname") {
        println!("{}: listening on {a}", cli::prog_name());
    }
    if common::serve::stdin_is_watched() {
        let _ = lp
            .run_in_executor(|| std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink()))
            .await;
        transport.close();
        println!("{}: end of input: closed", cli::prog_name());
        Ok(())
    } else {
        // Serve until killed: a future nobody resolves.
        let forever = lp.create_future::<()>();
        forever.await
    }
}

async fn client(addr: SocketAddr, messages: Vec<String>) -> asyncio::Result<()> {
    let local: SocketAddr = if addr.is_ipv4() {
        "0.0.0.0:0".parse().unwrap()
    } else {
        "[::]:0".parse().unwrap()
    };
    let sock = DatagramSocket::bind(local)?;
    // Connected: only the server's datagrams arrive, and an ICMP "port unreachable"
    // comes back as ConnectionRefused.
    sock.connect(addr)?;
    let mut buf = vec![0u8; 65536];
    for m in messages {
        let mut echoed = None;
        for _ in 0..TRIES {
            sock.send(m.as_bytes()).await?;
            match asyncio::wait_for(sock.recv(&mut buf), WAIT).await {
                Ok(Ok(n)) => {
                    echoed = Some(n);
                    break;
                }
                Ok(Err(e)) => return Err(cli::error(format_args!("no echo from {addr}: {e}"))),
                Err(asyncio::Error::Timeout) => continue,
                Err(e) => return Err(e),
            }
        }
        let Some(n) = echoed else {
            return Err(cli::error(format_args!(
                "no echo from {addr} after {TRIES} tries"
            )));
        };
        println!("{}", String::from_utf8_lossy(&buf[..n]));
    }
    Ok(())
}

fn main() -> ExitCode {
    common::init_logging();
    let args = match cli::args_or_exit(USAGE, &["--client"]) {
        Ok(a) => a,
        Err(code) => return code,
    };
    if args.has("--client") {
        let Some((addr, messages)) = args.positional.split_first() else {
            return cli::usage_error("--client needs ADDR and at least one MESSAGE");
        };
        if messages.is_empty() {
            return cli::usage_error("--client needs at least one MESSAGE");
        }
        let addr = match cli::listen_addr(addr) {
            Ok(a) => a,
            Err(msg) => return cli::usage_error(msg),
        };
        let messages = messages.to_vec();
        return cli::finish(asyncio::run(client(addr, messages)));
    }
    let addr = match cli::server_addr(&args) {
        Ok(a) => a,
        Err(code) => return code,
    };
    cli::finish(asyncio::run(serve(addr)))
}
