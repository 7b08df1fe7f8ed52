//! Step 7 of 7: a chat server: many clients, one shared room.
//!
//! Each client's task asks for a name, then reads lines; every line goes to all the
//! other clients as `name: line`, and joins and leaves are announced. The tasks share
//! one `Room`, an `Rc` with a `RefCell` of the clients' writers: all tasks run on the
//! loop's one thread, so no lock is needed, only care never to hold the `RefCell`
//! borrowed across an `.await` (here nothing awaits while it is borrowed).
//!
//! ```sh
//! cargo run --example 07_chat_server -- --selftest   # a server and three clients in one process, then exit
//! cargo run --example 07_chat_server                 # serve on 127.0.0.1:8888 (or give IP:PORT)
//! nc 127.0.0.1 8888                                  # in two or more other terminals
//! ```
//!
//! (`chat_server` is the same program under a shorter name.) End of input (Ctrl-D),
//! Ctrl-C or SIGTERM shut the server down gracefully.
//!
//! **A slow client must not stall the others.** The echo server of `06_echo_streams`
//! waits in `drain()` for its one client; a broadcast that awaited each receiver's
//! `drain()` would let the slowest reader set everybody's pace, and one client that
//! stops reading would freeze the room. So a broadcast writes to each receiver
//! **without** awaiting `drain()` (`write` never blocks: the bytes wait in that
//! receiver's transport), and a receiver whose transport holds more than
//! [`MAX_BACKLOG`] (256 KiB) is dropped: its connection is aborted and the room is
//! told. The sender's own reading is unaffected. The self-test shows it: `mallory`
//! never reads, `alice` floods the room, `bob` receives every line while `mallory` is
//! dropped.
//!
//! **A fast client must not stall the others either.** A client that sends thousands
//! of lines at once fills its reader, and `next_line()` then returns without
//! suspending while a line is buffered: in asyncio such a relay loop keeps the thread
//! until that buffer runs dry. Here the crate's cooperative budget (`asyncio::coop`,
//! docs/08-streams.md) makes the loop yield after 32 ready operations in one step, so
//! every other client, the accept loop and the timers get their turn; the relay loop
//! needs no code for it. Without a budget (asyncio, or inside
//! `asyncio::coop::unconstrained`) the fair way is an explicit yield every so many
//! lines; see the comment in `handle_client`.
//!
//! The pain it ends on: none left in this series. The next questions (timeouts for
//! idle clients, a limit on the number of clients, TLS) are built from the same
//! pieces: `wait_for`, `Server::client_count`, and a transport of another kind.
//!
//! Read with it: docs/09-servers.md (servers, clients, closing), and docs/08-streams.md
//! on write buffers and `drain`.

mod common;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;

use asyncio::{Address, Error, Server, StreamReader, StreamWriter};
use common::cli;

const USAGE: &str = "[--selftest] [ADDR]

A chat server on asyncio streams: each line a client sends goes to every other
client; joins and leaves are announced. Clients that stop reading are dropped.

  ADDR         the address to listen on, IP:PORT (default 127.0.0.1:8888)
  --selftest   start a server on a free port, run three clients against it, exit
  -h, --help   show this help

End of input on stdin (Ctrl-D) shuts the server down gracefully when stdin is a
terminal or a pipe; otherwise it serves until killed.";

/// A client whose transport holds more than this many unsent bytes is dropped.
pub const MAX_BACKLOG: usize = 256 * 1024;

/// The longest name kept (longer ones are cut).
const MAX_NAME: usize = 32;

// ----- the room ----------------------------------------------------------------------

/// One connected client, as the room knows it.
struct Member {
    name: String,
    writer: Rc<StreamWriter>,
}

/// Everyone in the chat, by a join number. Shared by every client task as an
/// `Rc<Room>`.
#[derive(Default)]
struct Room {
    members: RefCell<BTreeMap<u64, Member>>,
    next_id: Cell<u64>,
}

impl Room {
    /// Add a member; tell them who is here and the others that they came.
    fn join(&self, name: String, writer: Rc<StreamWriter>) -> u64 {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let others: Vec<String> = self
            .members
            .borrow()
            .values()
            .map(|m| m.name.clone())
            .collect();
        let online = if others.is_empty() {
            "just you".to_string()
        } else {
            others.join(", ")
        };
        let _ = writer.write(format!("* welcome, {name}! online: {online}\n").as_bytes());
        self.broadcast(None, format!("* {name} joined\n").as_bytes());
        self.members
            .borrow_mut()
            .insert(id, Member { name, writer });
        id
    }

    /// Remove a member who left; false if they were already gone (dropped).
    fn leave(&self, id: u64) -> bool {
        let Some(member) = self.members.borrow_mut().remove(&id) else {
            return false;
        };
        self.broadcast(None, format!("* {} left\n", member.name).as_bytes());
        true
    }

    /// Send `text` to every member but `from`, without waiting for anyone. Members
    /// whose backlog is over [`MAX_BACKLOG`] are dropped instead.
    fn broadcast(&self, from: Option<u64>, text: &[u8]) {
        // Collect the receivers first: writing with the map borrowed would be fine
        // today, but dropping a member (below) needs it mutably.
        let receivers: Vec<(u64, Rc<StreamWriter>)> = self
            .members
            .borrow()
            .iter()
            .filter(|(id, _)| Some(**id) != from)
            .map(|(id, m)| (*id, m.writer.clone()))
            .collect();
        let mut too_slow = Vec::new();
        for (id, writer) in receivers {
            if writer.transport().get_write_buffer_size() > MAX_BACKLOG {
                too_slow.push(id);
            } else {
                // Never blocks; after the connection is lost the bytes are dropped.
                let _ = writer.write(text);
            }
        }
        for id in too_slow {
            let Some(member) = self.members.borrow_mut().remove(&id) else {
                continue;
            };
            // abort(), not close(): close() would first flush the backlog the member
            // is not reading. Its own task then sees the connection end.
            member.writer.transport().abort();
            self.broadcast(
                None,
                format!("* {} was dropped (not reading)\n", member.name).as_bytes(),
            );
        }
    }
}

// ----- one client --------------------------------------------------------------------

/// The first line a client sends, cleaned up to be a name: printable characters only,
/// at most [`MAX_NAME`]; `guest` when nothing is left.
fn clean_name(line: &[u8]) -> String {
    let name: String = String::from_utf8_lossy(line)
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_NAME)
        .collect();
    match name.trim() {
        "" => "guest".to_string(),
        n => n.to_string(),
    }
}

/// One client's task: ask a name, join, relay lines until EOF, leave.
async fn handle_client(
    room: Rc<Room>,
    mut reader: StreamReader,
    writer: StreamWriter,
) -> asyncio::Result<()> {
    let writer = Rc::new(writer);
    writer.write(b"name? ")?;
    let Some(first) = reader.next_line().await else {
        writer.close(); // left before saying a name
        return Ok(());
    };
    let name = clean_name(&first?);
    let id = room.join(name.clone(), writer.clone());
    // Fairness: `next_line()` spends the task's cooperative budget, so a member who
    // floods the room yields to the others every few lines. Without the budget (in
    // asyncio, or inside `asyncio::coop::unconstrained`), yield by hand instead:
    //
    //     relayed += 1;
    //     if relayed % 64 == 0 {
    //         asyncio::yield_now().await; // `await asyncio.sleep(0)`
    //     }
    while let Some(line) = reader.next_line().await {
        match line {
            Ok(line) => {
                let mut text = format!("{name}: ").into_bytes();
                text.extend_from_slice(line.strip_suffix(b"\n").unwrap_or(&line));
                text.push(b'\n');
                room.broadcast(Some(id), &text);
            }
            // A line over the reader's limit (64 KiB) is discarded: a ValueError
            // (chained to its LimitOverrun); say so and go on.
            Err(e) if matches!(e.unchained(), Error::Value(_)) => {
                let _ = writer.write(b"* line too long, not sent\n");
            }
            // The connection broke, or the room aborted it: leave below.
            Err(_) => break,
        }
    }
    room.leave(id);
    writer.close();
    Ok(())
}

async fn start(addr: SocketAddr) -> asyncio::Result<Server> {
    let room = Rc::new(Room::default());
    asyncio::start_server(
        move |reader, writer| handle_client(room.clone(), reader, writer),
        Some(&addr.ip().to_string()),
        addr.port(),
    )
    .await
}

// ----- the self-test -----------------------------------------------------------------

/// Connect, answer the name prompt, read the welcome line.
async fn join(port: u16, name: &str) -> asyncio::Result<(StreamReader, StreamWriter)> {
    let (mut reader, writer) = asyncio::open_connection("127.0.0.1", port).await?;
    assert_eq!(reader.readuntil(b"? ").await?, b"name? ");
    writer.write(format!("{name}\n").as_bytes())?;
    let welcome = reader.readline().await?;
    print!("{name} reads: {}", String::from_utf8_lossy(&welcome));
    Ok((reader, writer))
}

/// Read one line and check it.
async fn expect(who: &str, reader: &mut StreamReader, line: &str) -> asyncio::Result<()> {
    let got = reader.readline().await?;
    if got != line.as_bytes() {
        return Err(cli::error(format_args!(
            "{who} expected {line:?}, got {:?}",
            String::from_utf8_lossy(&got)
        )));
    }
    print!("{who} reads: {line}");
    Ok(())
}

async fn selftest() -> asyncio::Result<()> {
    let server = start(cli::listen_addr("127.0.0.1:0").map_err(Error::value)?).await?;
    let Some(Address::Inet(addr)) = server.local_addrs().into_iter().next() else {
        return Err(Error::runtime("the server has no TCP address"));
    };
    println!("server: listening on {addr}");
    let port = addr.port();

    // Three clients join; the ones already there hear about it.
    let (mut alice_r, alice) = join(port, "alice").await?;
    let (mut bob_r, bob) = join(port, "bob").await?;
    expect("alice", &mut alice_r, "* bob joined\n").await?;
    let (_mallory_r, mallory) = join(port, "mallory").await?;
    expect("alice", &mut alice_r, "* mallory joined\n").await?;
    expect("bob", &mut bob_r, "* mallory joined\n").await?;

    // A line goes to everyone else.
    alice.write(b"hello\n")?;
    expect("bob", &mut bob_r, "alice: hello\n").await?;

    // From here on mallory reads nothing. Alice floods the room with 1 KiB lines;
    // bob reads everything in a task of his own, and tells alice (through `dropped`)
    // when the room announces that mallory is gone.
    println!("mallory stops reading; alice sends 1 KiB lines until the room drops mallory");
    let dropped = Rc::new(Cell::new(false));
    let d = dropped.clone();
    let bob_reads = asyncio::create_task(async move {
        let mut lines = 0usize;
        loop {
            let line = bob_r.readline().await?;
            if line.starts_with(b"alice: flood ") {
                let expected = format!("alice: flood {lines:06} ");
                if !line.starts_with(expected.as_bytes()) {
                    return Err(cli::error(format_args!("bob missed line {lines}")));
                }
                lines += 1;
            } else if line == b"* mallory was dropped (not reading)\n" {
                println!("bob reads: * mallory was dropped (not reading)   (after {lines} lines)");
                d.set(true);
            } else if line == b"* alice left\n" {
                println!("bob reads: * alice left");
                return Ok::<_, Error>(lines);
            } else {
                return Err(cli::error(format_args!(
                    "bob got an unexpected line: {:?}",
                    String::from_utf8_lossy(&line)
                )));
            }
        }
    });
    let mut sent = 0usize;
    while !dropped.get() {
        if sent == 64 * 1024 {
            return Err(cli::error("64 MiB sent and mallory was never dropped"));
        }
        let mut line = format!("alice: flood {sent:06} ").into_bytes();
        line.resize(1023, b'.');
        line.push(b'\n');
        alice.write(&line["alice: ".len()..])?;
        alice.drain().await?;
        sent += 1;
        asyncio::yield_now().await; // let bob's task read
    }
    alice.close();
    alice.wait_closed().await?;
    let got = bob_reads.await??;
    println!("bob received all {got} of alice's {sent} lines, in order; the room never waited for mallory");
    assert_eq!(got, sent);

    mallory.close();
    bob.close();
    bob.wait_closed().await?;
    server.close();
    server.wait_closed().await?;
    println!("server: closed, no connection left");
    Ok(())
}

pub fn main() -> ExitCode {
    common::serve::progression_main(USAGE, selftest, start)
}
