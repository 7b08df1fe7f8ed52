//! `mio_echo ADDR`: a hand-written mio echo server, one thread, no runtime.
//!
//! This is the floor of the suite: what an echo costs with nothing between the
//! application and epoll. Per connection:
//! * on READABLE, read (edge-triggered) until WouldBlock or a short read;
//! * write what was read immediately; whatever the socket does not take is
//!   buffered, and only then is WRITABLE interest registered;
//! * on WRITABLE, flush the buffer and drop WRITABLE interest again.
//!
//! If the unsent buffer grows past `MAX_PENDING` (a client that does not read),
//! reading pauses until it drains. Prints nothing but errors; runs until killed.

use std::io::{self, Read, Write};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

const LISTENER: Token = Token(usize::MAX);
const READ_BUF: usize = 64 * 1024;
const MAX_PENDING: usize = 1 << 20;

struct Conn {
    stream: TcpStream,
    /// Bytes read but not yet written back.
    pending: Vec<u8>,
    /// WRITABLE interest is currently registered.
    want_write: bool,
}

/// Connections in a vector indexed by token, with a free list of slots.
struct Conns {
    slots: Vec<Option<Conn>>,
    free: Vec<usize>,
}

impl Conns {
    fn insert(&mut self, c: Conn) -> usize {
        match self.free.pop() {
            Some(i) => {
                self.slots[i] = Some(c);
                i
            }
            None => {
                self.slots.push(Some(c));
                self.slots.len() - 1
            }
        }
    }

    fn remove(&mut self, i: usize, poll: &Poll) {
        if let Some(mut c) = self.slots[i].take() {
            let _ = poll.registry().deregister(&mut c.stream);
            self.free.push(i);
        }
    }
}

/// Writes `data`, returning how many bytes the socket took.
fn write_some(stream: &mut TcpStream, data: &[u8]) -> io::Result<usize> {
    let mut off = 0;
    while off < data.len() {
        match stream.write(&data[off..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => off += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(off)
}

/// Handles readiness for one connection. `Ok(false)` means: close it.
fn on_ready(
    c: &mut Conn,
    token: Token,
    poll: &Poll,
    buf: &mut [u8],
    writable: bool,
) -> io::Result<bool> {
    // Flush what is left from earlier first, so bytes stay in order.
    if writable && !c.pending.is_empty() {
        let n = write_some(&mut c.stream, &c.pending)?;
        c.pending.drain(..n);
    }
    // Read until WouldBlock or a short read (edge-triggered: a later arrival
    // raises a new event), unless too much is already waiting to be written.
    while c.pending.len() < MAX_PENDING {
        let n = match c.stream.read(buf) {
            Ok(0) => return Ok(false),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if c.pending.is_empty() {
            let w = write_some(&mut c.stream, &buf[..n])?;
            c.pending.extend_from_slice(&buf[w..n]);
        } else {
            c.pending.extend_from_slice(&buf[..n]);
        }
        if n < buf.len() {
            break;
        }
    }
    // Register WRITABLE only while something is waiting to be written.
    let need = !c.pending.is_empty();
    if need != c.want_write {
        let interest = if need {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        poll.registry().reregister(&mut c.stream, token, interest)?;
        c.want_write = need;
    }
    Ok(true)
}

fn main() {
    let addr = asyncio_bench::listen_addr("mio_echo");
    let mut poll = Poll::new().expect("poll");
    let mut listener = TcpListener::bind(addr).unwrap_or_else(|e| {
        eprintln!("mio_echo: bind {addr}: {e}");
        std::process::exit(1);
    });
    // mio binds with std's backlog (128); calling listen() again on a listening
    // socket only updates the backlog, to the suite's common value.
    // SAFETY: plain syscall on a descriptor owned by `listener`.
    unsafe {
        libc::listen(
            std::os::fd::AsRawFd::as_raw_fd(&listener),
            asyncio_bench::BACKLOG as i32,
        )
    };
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)
        .expect("register");
    let mut conns = Conns {
        slots: Vec::new(),
        free: Vec::new(),
    };
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; READ_BUF];
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            eprintln!("mio_echo: poll: {e}");
            std::process::exit(1);
        }
        for ev in events.iter() {
            if ev.token() == LISTENER {
                // Accept everything that is waiting.
                loop {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            let _ = stream.set_nodelay(true);
                            let i = conns.free.last().copied().unwrap_or(conns.slots.len());
                            if let Err(e) =
                                poll.registry()
                                    .register(&mut stream, Token(i), Interest::READABLE)
                            {
                                eprintln!("mio_echo: register: {e}");
                                continue;
                            }
                            let j = conns.insert(Conn {
                                stream,
                                pending: Vec::new(),
                                want_write: false,
                            });
                            debug_assert_eq!(i, j);
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            // E.g. EMFILE. The listener stays readable-edge-less
                            // until a new connection arrives; that is acceptable
                            // for a benchmark peer.
                            eprintln!("mio_echo: accept: {e}");
                            break;
                        }
                    }
                }
                continue;
            }
            let i = ev.token().0;
            let Some(c) = conns.slots.get_mut(i).and_then(Option::as_mut) else {
                continue;
            };
            match on_ready(c, ev.token(), &poll, &mut buf, ev.is_writable()) {
                Ok(true) => {}
                Ok(false) => conns.remove(i, &poll),
                Err(e) => {
                    asyncio_bench::report("mio_echo", "connection", &e);
                    conns.remove(i, &poll);
                }
            }
        }
    }
}
