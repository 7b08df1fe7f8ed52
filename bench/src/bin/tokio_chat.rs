//! `tokio_chat ADDR`: the tokio peer of `examples/07_chat_server.rs` for
//! `bench/fairness.py`, written the same way.
//!
//! One thread: tokio current_thread runtime + LocalSet, one task per client that
//! prompts `name? `, reads the name, then relays every line as `name: line` to every
//! other member; joins and leaves are announced. A broadcast never waits for a
//! receiver: each member has an unbounded queue drained by a writer task of its own
//! (tokio has no transport buffer; the queue is its stand-in, and the writer batches
//! what is queued into one `write_all`, as a transport writes its buffer). A member
//! whose queue holds more than 256 KiB is dropped, as in the example. Fairness comes
//! from tokio's cooperative budget, spent once per relayed line
//! (`tokio::task::coop::consume_budget`): lines taken from `BufReader`'s buffer
//! would otherwise cost none. Prints nothing but errors; runs until killed.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

use asyncio_bench::{report, run_tokio_server};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Notify};

/// A member whose queue holds more than this many bytes is dropped.
const MAX_BACKLOG: usize = 256 * 1024;
/// The longest name kept.
const MAX_NAME: usize = 32;
/// The longest line read (the example's reader limit).
const MAX_LINE: usize = 64 * 1024;

struct Member {
    name: String,
    tx: mpsc::UnboundedSender<Vec<u8>>,
    backlog: Rc<Cell<usize>>,
    kick: Rc<Notify>,
}

#[derive(Default)]
struct Room {
    members: RefCell<BTreeMap<u64, Member>>,
    next_id: Cell<u64>,
}

impl Room {
    fn send(member: &Member, text: &[u8]) {
        member.backlog.set(member.backlog.get() + text.len());
        let _ = member.tx.send(text.to_vec());
    }

    fn join(&self, member: Member) -> u64 {
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
        let welcome = format!("* welcome, {}! online: {online}\n", member.name);
        Room::send(&member, welcome.as_bytes());
        self.broadcast(None, format!("* {} joined\n", member.name).as_bytes());
        self.members.borrow_mut().insert(id, member);
        id
    }

    fn leave(&self, id: u64) {
        let Some(member) = self.members.borrow_mut().remove(&id) else {
            return;
        };
        self.broadcast(None, format!("* {} left\n", member.name).as_bytes());
    }

    fn broadcast(&self, from: Option<u64>, text: &[u8]) {
        let mut too_slow = Vec::new();
        for (id, m) in self.members.borrow().iter() {
            if Some(*id) == from {
                continue;
            }
            if m.backlog.get() > MAX_BACKLOG {
                too_slow.push(*id);
            } else {
                Room::send(m, text);
            }
        }
        for id in too_slow {
            let Some(member) = self.members.borrow_mut().remove(&id) else {
                continue;
            };
            member.kick.notify_one();
            self.broadcast(
                None,
                format!("* {} was dropped (not reading)\n", member.name).as_bytes(),
            );
        }
    }
}

/// Write what is queued for one member, batching up to 64 KiB per `write_all`.
async fn writer_task(
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
    mut w: OwnedWriteHalf,
    backlog: Rc<Cell<usize>>,
) {
    let mut batch = Vec::with_capacity(64 * 1024);
    while let Some(first) = rx.recv().await {
        batch.clear();
        batch.extend_from_slice(&first);
        while batch.len() < 64 * 1024 {
            match rx.try_recv() {
                Ok(more) => batch.extend_from_slice(&more),
                Err(_) => break,
            }
        }
        if let Err(e) = w.write_all(&batch).await {
            return report("tokio_chat", "write", &e);
        }
        backlog.set(backlog.get().saturating_sub(batch.len()));
    }
}

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

async fn serve(room: Rc<Room>, stream: TcpStream) {
    let (r, mut w) = stream.into_split();
    let mut reader = BufReader::new(r);
    if w.write_all(b"name? ").await.is_err() {
        return;
    }
    let mut line = Vec::with_capacity(256);
    match reader.read_until(b'\n', &mut line).await {
        Ok(0) | Err(_) => return,
        Ok(_) => {}
    }
    let name = clean_name(&line);
    let (tx, rx) = mpsc::unbounded_channel();
    let backlog = Rc::new(Cell::new(0));
    let kick = Rc::new(Notify::new());
    let writer = tokio::task::spawn_local(writer_task(rx, w, backlog.clone()));
    let id = room.join(Member {
        name: name.clone(),
        tx,
        backlog,
        kick: kick.clone(),
    });
    loop {
        line.clear();
        let n = tokio::select! {
            r = reader.read_until(b'\n', &mut line) => r,
            _ = kick.notified() => break,
        };
        match n {
            Ok(0) => break,
            Ok(_) if line.len() > MAX_LINE => {}
            Ok(_) => {
                // A line from BufReader's buffer costs tokio no budget (only reads of
                // the socket do); count each relayed line, as the crate's reads do.
                tokio::task::coop::consume_budget().await;
                let mut text = Vec::with_capacity(name.len() + 2 + line.len());
                text.extend_from_slice(name.as_bytes());
                text.extend_from_slice(b": ");
                text.extend_from_slice(line.strip_suffix(b"\n").unwrap_or(&line));
                text.push(b'\n');
                room.broadcast(Some(id), &text);
            }
            Err(e) => {
                report("tokio_chat", "read", &e);
                break;
            }
        }
    }
    room.leave(id);
    // The writer ends when the member's queue sender is gone (left or dropped).
    writer.abort();
}

fn main() {
    let room = Rc::new(Room::default());
    run_tokio_server("tokio_chat", move |stream| serve(room.clone(), stream));
}
