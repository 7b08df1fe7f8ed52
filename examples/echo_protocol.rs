//! An echo server at the protocol layer (asyncio's `EchoServerProtocol` from the
//! "Transports and Protocols" docs): every byte received is written back.
//!
//! ```sh
//! cargo run --release --example echo_protocol            # 127.0.0.1:8888
//! cargo run --release --example echo_protocol 127.0.0.1:9000
//! ```
//!
//! It serves until killed. The protocol writes straight from `data_received`: the
//! transport sends at once and buffers only what the socket does not take, so an echo
//! costs one `recv` and one `send`.

use std::cell::OnceCell;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;

use asyncio::{BaseProtocol, Protocol, ServerOptions, Transport};

const USAGE: &str = "usage: echo_protocol [ADDR]

An echo server built on asyncio's Protocol layer.

  ADDR   the address to listen on, IP:PORT (default 127.0.0.1:8888)
  -h, --help   show this help";

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
            // write() only fails after write_eof(), which this server never calls.
            let _ = t.write(data);
        }
    }

    fn eof_received(&self) -> bool {
        false // the client is done: close our side too
    }
}

fn parse_args() -> Result<SocketAddr, String> {
    let mut args = std::env::args().skip(1);
    let addr = match args.next() {
        None => "127.0.0.1:8888".to_string(),
        Some(a) if a == "-h" || a == "--help" => return Err(String::new()),
        Some(a) => a,
    };
    if let Some(extra) = args.next() {
        return Err(format!("unexpected argument '{extra}'"));
    }
    addr.parse::<SocketAddr>().map_err(|e| {
        format!("invalid address '{addr}' ({e}); expected IP:PORT, e.g. 127.0.0.1:8888")
    })
}

fn main() -> ExitCode {
    let addr = match parse_args() {
        Ok(a) => a,
        Err(msg) if msg.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("echo_protocol: {msg}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = asyncio::run(async move {
        let lp = asyncio::get_running_loop()?;
        let ip = addr.ip().to_string();
        let server = lp
            .create_server(
                Echo::default,
                Some(&ip),
                addr.port(),
                ServerOptions::default(),
            )
            .await?;
        for a in server.local_addrs() {
            println!("echo_protocol: listening on {a}");
        }
        // Serve until killed (serve_forever only returns if the server is closed).
        match server.serve_forever().await {
            Err(asyncio::Error::Cancelled) | Ok(()) => Ok(()),
            Err(e) => Err(e),
        }
    });
    match result.and_then(|r| r) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("echo_protocol: cannot serve on {addr}: {e}");
            ExitCode::FAILURE
        }
    }
}
