//! The I/O selector (the low-level half of asyncio's `selector_events.py`): mio
//! registrations, readiness dispatch, and `add_reader` / `add_writer`.
//!
//! # Registrations and tokens
//!
//! Every registered source has a slot in a [`slab::Slab`]. Its mio token is the slot key
//! in the low 32 bits and a generation number in the high bits. When a slot is freed and
//! reused, the new owner gets a new generation, so an event that was already in flight
//! for the old owner carries a token that no longer matches and is dropped: a late event
//! for a freed or reused slot never reaches the new owner.
//!
//! # Level-triggered callbacks on an edge-triggered poll
//!
//! asyncio's selectors are level-triggered: a reader callback runs on every iteration
//! while the fd stays readable. mio is edge-triggered: it reports readiness once, and
//! again only after the readiness went away and came back. [`EventLoop::add_reader`]
//! restores asyncio's meaning: after each callback invocation the loop re-arms the fd
//! (`epoll_ctl(EPOLL_CTL_MOD)` through mio's `reregister`). Re-arming makes the kernel
//! check the fd's current state, so if data is still unread, the next poll reports it
//! again, exactly as a level-triggered poll would. That costs one syscall per callback.
//!
//! Transports do better (see the transport module): they read until `WouldBlock` or a
//! short read, so they never need re-arming.

mod datagram;
mod sock;
pub(crate) mod transport;

pub use datagram::{DatagramFamily, DatagramOptions, DatagramSock, DatagramSocket, DatagramSource};
pub use sock::AsyncSocket;

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::RawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use mio::event::Source;
use mio::unix::SourceFd;
use mio::{Events, Interest, Token};
use slab::Slab;

use crate::base_events::{EventLoop, Inner, Ready};
use crate::events::ExceptionContext;
use crate::exceptions::{Error, Result};

/// The token of the `mio::Waker` behind `call_soon_threadsafe`.
const WAKER_TOKEN: Token = Token(usize::MAX);
/// How many events one poll returns at most (tokio's default too).
const EVENTS_CAPACITY: usize = 1024;

/// Readiness bits carried by [`Ready::Io`].
pub(crate) const READABLE: u8 = 1;
/// The write side is ready.
pub(crate) const WRITABLE: u8 = 2;
/// The peer closed its write side (EOF will be read).
pub(crate) const READ_CLOSED: u8 = 4;
/// The write side is closed (EPIPE / reset will follow).
pub(crate) const WRITE_CLOSED: u8 = 8;
/// The socket has a pending error.
pub(crate) const ERROR: u8 = 16;
/// Not from the poll: a transport re-queued its own read step (fairness, or
/// `resume_reading`).
pub(crate) const REQUEUED: u8 = 32;

/// Something that wants to hear about readiness of a registered source: a transport, a
/// listening server, or an [`IoWaiter`].
pub(crate) trait IoHandler {
    /// The source is ready: `bits` is a mask of [`READABLE`], [`WRITABLE`], ...
    /// Edge-triggered: drain until `WouldBlock` (or a short read) before relying on
    /// another call.
    fn on_ready(self: Rc<Self>, lp: &Rc<Inner>, bits: u8);
    /// One line for debug narration, e.g. `transport 127.0.0.1:5000`.
    fn describe(&self) -> String;
    /// The loop is closing: release whatever the handler holds (break `Rc` cycles).
    fn loop_closed(&self) {}
}

/// The `add_reader` / `add_writer` callbacks of one raw fd.
struct FdCallbacks {
    reader: Option<Rc<dyn Fn()>>,
    writer: Option<Rc<dyn Fn()>>,
}

enum SlotKind {
    /// `add_reader` / `add_writer` callbacks on a raw fd (boxed: rare, and the slab's
    /// entries stay small).
    Fd(Box<FdCallbacks>),
    /// A transport, server or waiter.
    Handler(Rc<dyn IoHandler>),
}

/// One registration (24 bytes), one per open connection.
struct Slot {
    gen: u32,
    /// The registered fd, or -1 (a source registered without one).
    fd: RawFd,
    kind: SlotKind,
}

// The slab holds one slot per open connection: keep it at 24 bytes.
const _: () = assert!(cfg!(not(target_pointer_width = "64")) || std::mem::size_of::<Slot>() <= 24);

/// Which slot owns which fd: the slot key plus one, indexed by the fd (0: none). The
/// kernel hands out the lowest free fd number, so the table stays about as long as
/// the number of open fds, at 4 bytes each (a hash map took ~40 per entry).
#[derive(Default)]
struct FdTable(Vec<u32>);

impl FdTable {
    fn get(&self, fd: RawFd) -> Option<usize> {
        let i = usize::try_from(fd).ok()?;
        match self.0.get(i) {
            Some(&k) if k != 0 => Some(k as usize - 1),
            _ => None,
        }
    }

    /// Record `fd -> key`; `fd` is non-negative and `key` a slot key (below 2^32 - 1,
    /// since a token keeps 32 bits of it).
    fn insert(&mut self, fd: RawFd, key: usize) {
        let (Ok(i), Ok(k)) = (usize::try_from(fd), u32::try_from(key + 1)) else {
            return;
        };
        if i >= self.0.len() {
            self.0.resize(i + 1, 0);
        }
        self.0[i] = k;
    }

    fn remove(&mut self, fd: RawFd) {
        if let Some(k) = usize::try_from(fd).ok().and_then(|i| self.0.get_mut(i)) {
            *k = 0;
        }
    }

    fn clear(&mut self) {
        self.0 = Vec::new();
    }
}

/// The loop's I/O state.
pub(crate) struct IoState {
    poll: RefCell<mio::Poll>,
    events: RefCell<Events>,
    registry: mio::Registry,
    slots: RefCell<Slab<Slot>>,
    generation: Cell<u32>,
    /// How many fds have `add_reader` / `add_writer` callbacks (level-triggered: the
    /// loop then polls on every iteration).
    fd_callbacks: Cell<usize>,
    /// Which slot owns which fd (for `add_reader` and the "used by transport" check).
    fds: RefCell<FdTable>,
}

fn token_of(key: usize, gen: u32) -> Token {
    Token(((gen as usize) << 32) | key)
}

fn split_token(token: usize) -> (usize, u32) {
    (token & 0xFFFF_FFFF, (token >> 32) as u32)
}

fn bits_of(ev: &mio::event::Event) -> u8 {
    let mut b = 0;
    if ev.is_readable() {
        b |= READABLE;
    }
    if ev.is_writable() {
        b |= WRITABLE;
    }
    if ev.is_read_closed() {
        b |= READ_CLOSED;
    }
    if ev.is_write_closed() {
        b |= WRITE_CLOSED;
    }
    if ev.is_error() {
        b |= ERROR;
    }
    b
}

fn interest_of(reader: bool, writer: bool) -> Option<Interest> {
    match (reader, writer) {
        (true, true) => Some(Interest::READABLE | Interest::WRITABLE),
        (true, false) => Some(Interest::READABLE),
        (false, true) => Some(Interest::WRITABLE),
        (false, false) => None,
    }
}

impl IoState {
    pub(crate) fn new() -> Result<(IoState, mio::Waker)> {
        let poll = mio::Poll::new()?;
        let waker = mio::Waker::new(poll.registry(), WAKER_TOKEN)?;
        let registry = poll.registry().try_clone()?;
        Ok((
            IoState {
                poll: RefCell::new(poll),
                events: RefCell::new(Events::with_capacity(EVENTS_CAPACITY)),
                registry,
                slots: RefCell::new(Slab::new()),
                generation: Cell::new(0),
                fd_callbacks: Cell::new(0),
                fds: RefCell::new(FdTable::default()),
            },
            waker,
        ))
    }

    fn next_gen(&self) -> u32 {
        // 31 bits, so no token can ever equal WAKER_TOKEN.
        let g = self.generation.get().wrapping_add(1) & 0x7FFF_FFFF;
        self.generation.set(g);
        g
    }
}

impl Inner {
    /// Poll mio once and queue an I/O step per event. Returns how many I/O events
    /// (not counting the cross-thread waker) arrived.
    pub(crate) fn poll_io(&self, timeout: Option<Duration>) -> usize {
        let mut events = self.io.events.borrow_mut();
        if let Err(e) = self.io.poll.borrow_mut().poll(&mut events, timeout) {
            if e.kind() != io::ErrorKind::Interrupted {
                log::error!(target: "asyncio", "poll failed: {e}");
            }
            return 0;
        }
        let mut n = 0;
        let debug = self.is_debug();
        for ev in events.iter() {
            if ev.token() == WAKER_TOKEN {
                if debug {
                    log::trace!(target: "asyncio", "  event: cross-thread wake-up");
                }
                continue;
            }
            n += 1;
            let bits = bits_of(ev);
            if debug {
                log::trace!(target: "asyncio", "  event: {}", self.describe_io(ev.token().0, bits));
            }
            self.push_ready(Ready::Io(ev.token().0, bits));
        }
        n
    }

    /// Describe an I/O event for the debug narration.
    pub(crate) fn describe_io(&self, token: usize, bits: u8) -> String {
        let (key, gen) = split_token(token);
        let mut what = Vec::new();
        for (b, name) in [
            (READABLE, "readable"),
            (WRITABLE, "writable"),
            (READ_CLOSED, "read-closed"),
            (WRITE_CLOSED, "write-closed"),
            (ERROR, "error"),
        ] {
            if bits & b != 0 {
                what.push(name);
            }
        }
        let owner = match self.io.slots.borrow().get(key) {
            Some(slot) if slot.gen == gen => match &slot.kind {
                SlotKind::Fd(_) => format!("add_reader/add_writer on fd {}", slot.fd),
                SlotKind::Handler(handler) => handler.describe(),
            },
            _ => "a freed registration (dropped)".to_string(),
        };
        format!("{} for {}", what.join("+"), owner)
    }

    /// Run the owner of an I/O event (the `Ready::Io` step).
    pub(crate) fn dispatch_io(self: &Rc<Self>, token: usize, bits: u8) {
        let (key, gen) = split_token(token);
        enum Target {
            Fd(Option<Rc<dyn Fn()>>, Option<Rc<dyn Fn()>>),
            Handler(Rc<dyn IoHandler>),
        }
        let target = match self.io.slots.borrow().get(key) {
            Some(slot) if slot.gen == gen => match &slot.kind {
                SlotKind::Fd(cbs) => {
                    let FdCallbacks { reader, writer } = &**cbs;
                    let r = if bits & (READABLE | READ_CLOSED | ERROR) != 0 {
                        reader.clone()
                    } else {
                        None
                    };
                    let w = if bits & (WRITABLE | WRITE_CLOSED | ERROR) != 0 {
                        writer.clone()
                    } else {
                        None
                    };
                    Target::Fd(r, w)
                }
                SlotKind::Handler(handler) => Target::Handler(handler.clone()),
            },
            // A late event for a freed or reused slot: never deliver it.
            _ => return,
        };
        match target {
            Target::Handler(h) => {
                let what = if self.is_debug() {
                    Some(h.describe())
                } else {
                    None
                };
                if let Err(p) = catch_unwind(AssertUnwindSafe(|| h.on_ready(self, bits))) {
                    let mut ctx = ExceptionContext::new("Exception in I/O callback")
                        .with_exception(Error::from_panic(p));
                    ctx.handle = what;
                    self.call_exception_handler(ctx);
                }
            }
            Target::Fd(r, w) => {
                for (write, cb) in [(false, r), (true, w)] {
                    let Some(cb) = cb else { continue };
                    // The reader may have removed or replaced the writer: asyncio
                    // cancels a removed callback's handle, so it is not called.
                    if !self.is_fd_callback(key, gen, write, &cb) {
                        continue;
                    }
                    if let Err(p) = catch_unwind(AssertUnwindSafe(|| cb())) {
                        self.call_exception_handler(
                            ExceptionContext::new("Exception in callback")
                                .with_exception(Error::from_panic(p)),
                        );
                    }
                }
                self.rearm_fd(key, gen);
            }
        }
    }

    /// Whether `cb` is still the reader (or writer) of the registration `key`/`gen`.
    fn is_fd_callback(&self, key: usize, gen: u32, write: bool, cb: &Rc<dyn Fn()>) -> bool {
        match self.io.slots.borrow().get(key) {
            Some(Slot {
                gen: g,
                kind: SlotKind::Fd(cbs),
                ..
            }) if *g == gen => {
                let current = if write { &cbs.writer } else { &cbs.reader };
                current.as_ref().is_some_and(|c| Rc::ptr_eq(c, cb))
            }
            _ => false,
        }
    }

    /// Re-arm an `add_reader`/`add_writer` fd so a still-ready fd is reported again.
    fn rearm_fd(&self, key: usize, gen: u32) {
        let slots = self.io.slots.borrow();
        if let Some(Slot {
            gen: g,
            fd,
            kind: SlotKind::Fd(cbs),
        }) = slots.get(key)
        {
            if *g != gen {
                return;
            }
            if let Some(interest) = interest_of(cbs.reader.is_some(), cbs.writer.is_some()) {
                let _ =
                    self.io
                        .registry
                        .reregister(&mut SourceFd(fd), token_of(key, gen), interest);
            }
        }
    }

    /// Register a source whose events go to `handler`. Returns its token.
    pub(crate) fn register_handler<S: Source + ?Sized>(
        &self,
        source: &mut S,
        fd: Option<RawFd>,
        interest: Interest,
        handler: Rc<dyn IoHandler>,
    ) -> Result<usize> {
        self.check_closed()?;
        if let Some(fd) = fd {
            if self.io.fds.borrow().get(fd).is_some() {
                return Err(Error::runtime(format!(
                    "File descriptor {fd} is already registered"
                )));
            }
        }
        let gen = self.io.next_gen();
        let key = self.io.slots.borrow_mut().insert(Slot {
            gen,
            fd: fd.unwrap_or(-1),
            kind: SlotKind::Handler(handler),
        });
        let token = token_of(key, gen);
        if let Err(e) = self.io.registry.register(source, token, interest) {
            self.io.slots.borrow_mut().remove(key);
            return Err(e.into());
        }
        if let Some(fd) = fd {
            self.io.fds.borrow_mut().insert(fd, key);
        }
        Ok(token.0)
    }

    /// Change the interest of a handler registration.
    pub(crate) fn reregister_handler<S: Source + ?Sized>(
        &self,
        source: &mut S,
        token: usize,
        interest: Interest,
    ) -> Result<()> {
        self.io
            .registry
            .reregister(source, Token(token), interest)?;
        Ok(())
    }

    /// Remove a handler registration; its slot is freed even if mio's deregister fails
    /// (the fd may already be gone). Returns the handler so the caller can drop it
    /// outside any borrow.
    pub(crate) fn deregister_handler<S: Source + ?Sized>(
        &self,
        source: &mut S,
        token: usize,
    ) -> Option<Rc<dyn IoHandler>> {
        let (key, gen) = split_token(token);
        let _ = self.io.registry.deregister(source);
        let mut slots = self.io.slots.borrow_mut();
        match slots.get(key) {
            Some(slot) if slot.gen == gen => {}
            _ => return None,
        }
        let slot = slots.remove(key);
        match slot.kind {
            SlotKind::Handler(handler) => {
                self.io.fds.borrow_mut().remove(slot.fd);
                Some(handler)
            }
            SlotKind::Fd(_) => None,
        }
    }

    fn set_fd_callback(&self, fd: RawFd, write: bool, cb: Option<Rc<dyn Fn()>>) -> Result<bool> {
        if fd < 0 {
            return Err(Error::value(format!("Invalid file descriptor: {fd}")));
        }
        let existing = self.io.fds.borrow().get(fd);
        let mut slots = self.io.slots.borrow_mut();
        match existing {
            Some(key) => {
                let slot = slots.get_mut(key).expect("fds and slots agree");
                let gen = slot.gen;
                let FdCallbacks { reader, writer } = match &mut slot.kind {
                    SlotKind::Fd(cbs) => &mut **cbs,
                    SlotKind::Handler(handler) => {
                        // Adding and removing alike (asyncio's `_ensure_fd_no_transport`).
                        return Err(Error::runtime(format!(
                            "File descriptor {fd} is used by {}",
                            handler.describe()
                        )));
                    }
                };
                let had = if write {
                    std::mem::replace(writer, cb).is_some()
                } else {
                    std::mem::replace(reader, cb).is_some()
                };
                match interest_of(reader.is_some(), writer.is_some()) {
                    Some(interest) => {
                        self.io.registry.reregister(
                            &mut SourceFd(&fd),
                            token_of(key, gen),
                            interest,
                        )?;
                    }
                    None => {
                        let _ = self.io.registry.deregister(&mut SourceFd(&fd));
                        slots.remove(key);
                        self.io.fds.borrow_mut().remove(fd);
                        self.io.fd_callbacks.set(self.io.fd_callbacks.get() - 1);
                    }
                }
                Ok(had)
            }
            None => {
                let Some(cb) = cb else { return Ok(false) };
                let gen = self.io.next_gen();
                let (reader, writer) = if write {
                    (None, Some(cb))
                } else {
                    (Some(cb), None)
                };
                let key = slots.insert(Slot {
                    gen,
                    fd,
                    kind: SlotKind::Fd(Box::new(FdCallbacks { reader, writer })),
                });
                let interest = if write {
                    Interest::WRITABLE
                } else {
                    Interest::READABLE
                };
                if let Err(e) =
                    self.io
                        .registry
                        .register(&mut SourceFd(&fd), token_of(key, gen), interest)
                {
                    slots.remove(key);
                    return Err(e.into());
                }
                self.io.fds.borrow_mut().insert(fd, key);
                self.io.fd_callbacks.set(self.io.fd_callbacks.get() + 1);
                Ok(false)
            }
        }
    }

    /// Whether some fd has an `add_reader` / `add_writer` callback.
    pub(crate) fn has_fd_callbacks(&self) -> bool {
        self.io.fd_callbacks.get() > 0
    }

    /// Drop every registration (loop close).
    pub(crate) fn close_io(&self) {
        let slots: Vec<Slot> = self.io.slots.borrow_mut().drain().collect();
        self.io.fds.borrow_mut().clear();
        self.io.fd_callbacks.set(0);
        for slot in &slots {
            if let SlotKind::Handler(handler) = &slot.kind {
                handler.loop_closed();
            }
        }
        drop(slots);
    }
}

impl EventLoop {
    /// Call `f` whenever `fd` is readable (asyncio's `add_reader()`), with asyncio's
    /// level-triggered meaning: `f` runs on every iteration while unread data remains
    /// (see the module docs for how this is done on edge-triggered epoll).
    ///
    /// Replaces an earlier reader of the same fd. The fd must stay open until
    /// [`EventLoop::remove_reader`]; it is not closed by the loop. Errors if a transport
    /// owns the fd, or the loop is closed.
    pub fn add_reader(&self, fd: RawFd, f: impl Fn() + 'static) -> Result<()> {
        self.inner.check_closed()?;
        self.inner
            .set_fd_callback(fd, false, Some(Rc::new(f)))
            .map(|_| ())
    }

    /// Call `f` whenever `fd` is writable (asyncio's `add_writer()`), level-triggered
    /// like [`EventLoop::add_reader`].
    pub fn add_writer(&self, fd: RawFd, f: impl Fn() + 'static) -> Result<()> {
        self.inner.check_closed()?;
        self.inner
            .set_fd_callback(fd, true, Some(Rc::new(f)))
            .map(|_| ())
    }

    /// Stop watching `fd` for reading (asyncio's `remove_reader()`). Returns whether a
    /// reader was registered. Errors, as asyncio does, if a transport (or a server or an
    /// [`AsyncSocket`]) owns the fd.
    pub fn remove_reader(&self, fd: RawFd) -> Result<bool> {
        self.inner.set_fd_callback(fd, false, None)
    }

    /// Stop watching `fd` for writing (asyncio's `remove_writer()`). Returns whether a
    /// writer was registered. Errors like [`EventLoop::remove_reader`].
    pub fn remove_writer(&self, fd: RawFd) -> Result<bool> {
        self.inner.set_fd_callback(fd, true, None)
    }
}

/// A registration's readiness as seen by futures: remembers readiness bits and wakes
/// the task waiting for them (tokio's `ScheduledIo`, in miniature). The `sock_*`
/// coroutines are built on it: try the syscall, and on `WouldBlock` clear the bit and
/// wait for the next edge.
#[derive(Default)]
pub(crate) struct IoWaiter {
    ready: Cell<u8>,
    read_waker: RefCell<Option<Waker>>,
    write_waker: RefCell<Option<Waker>>,
    what: String,
}

impl IoWaiter {
    pub(crate) fn new(what: String) -> Rc<IoWaiter> {
        Rc::new(IoWaiter {
            // Assume ready: the first attempt is always the syscall itself.
            ready: Cell::new(READABLE | WRITABLE),
            what,
            ..Default::default()
        })
    }

    /// Whether any of `mask` (with the closed / error bits of its directions) is set.
    pub(crate) fn is_ready(&self, mask: u8) -> bool {
        let mut also = 0;
        if mask & READABLE != 0 {
            also |= READ_CLOSED | ERROR;
        }
        if mask & WRITABLE != 0 {
            also |= WRITE_CLOSED | ERROR;
        }
        self.ready.get() & (mask | also) != 0
    }

    /// Ready if any of `mask` is set; else remember the waker (in the slot of each
    /// direction in `mask`) and wait.
    pub(crate) fn poll_ready(&self, cx: &mut Context<'_>, mask: u8) -> Poll<()> {
        if self.is_ready(mask) {
            return Poll::Ready(());
        }
        for (bit, slot) in [(READABLE, &self.read_waker), (WRITABLE, &self.write_waker)] {
            if mask & bit == 0 {
                continue;
            }
            let mut w = slot.borrow_mut();
            match &*w {
                Some(old) if old.will_wake(cx.waker()) => {}
                _ => *w = Some(cx.waker().clone()),
            }
        }
        Poll::Pending
    }

    /// The syscall said `WouldBlock`: forget the readiness in `mask`.
    /// A `WouldBlock` also means no error is pending (a pending error is what the
    /// syscall would have returned) and the direction is not closed, so those bits go
    /// too: a UDP socket's consumed ICMP error must not keep it "ready" forever.
    pub(crate) fn clear(&self, mask: u8) {
        let mut m = mask | ERROR;
        if mask & READABLE != 0 {
            m |= READ_CLOSED;
        }
        if mask & WRITABLE != 0 {
            m |= WRITE_CLOSED;
        }
        self.ready.set(self.ready.get() & !m);
    }
}

impl IoHandler for IoWaiter {
    fn on_ready(self: Rc<Self>, _lp: &Rc<Inner>, bits: u8) {
        self.ready.set(self.ready.get() | bits);
        if bits & (READABLE | READ_CLOSED | ERROR) != 0 {
            if let Some(w) = self.read_waker.borrow_mut().take() {
                w.wake();
            }
        }
        if bits & (WRITABLE | WRITE_CLOSED | ERROR) != 0 {
            if let Some(w) = self.write_waker.borrow_mut().take() {
                w.wake();
            }
        }
    }

    fn describe(&self) -> String {
        self.what.clone()
    }
}
