//! [`StreamReaderProtocol`]: the adapter between a transport and a
//! [`StreamReader`] / [`StreamWriter`] pair (asyncio's `StreamReaderProtocol` and
//! `FlowControlMixin`).
//!
//! Received bytes go into the reader; `pause_writing` / `resume_writing` drive
//! [`StreamWriter::drain`]; `connection_lost` ends the reader (EOF, or the error) and
//! completes [`StreamWriter::wait_closed`].

use std::cell::{Cell, RefCell, RefMut};
use std::fmt;
use std::future::{poll_fn, Future as StdFuture};
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};

use super::reader::{ReaderInner, StreamReader};
use super::writer::StreamWriter;
use crate::base_events::Inner;
use crate::exceptions::{Error, Result};
use crate::protocols::{BaseProtocol, BufferedProtocol, Protocol};
use crate::transports::Transport;

/// The callback a server-side protocol hands the new reader and writer to.
type ConnectedCb = Box<dyn FnOnce(StreamReader, StreamWriter)>;

/// Write-side flow control and the connection's end, as the writer sees them
/// (asyncio's `FlowControlMixin` plus the `_closed` future).
#[derive(Default)]
struct FlowState {
    /// `connection_made` ran.
    connected: bool,
    /// `pause_writing` was called and `resume_writing` not yet.
    paused: bool,
    /// Bumped by every `resume_writing`: a drainer that saw it change may go on, even
    /// if writing paused again meanwhile (asyncio resolves its future at resume).
    resumes: u64,
    /// `connection_lost` ran, with this error (`None`: a clean close). Boxed: most
    /// connections never get here with an error, and an idle one should stay small.
    lost: Option<Option<Box<Error>>>,
    /// Tasks waiting in `drain()` or `wait_closed()`.
    waiters: Vec<Waker>,
    /// The writer's side was shut down through an I/O trait (`poll_shutdown`).
    shut_down: bool,
}

impl FlowState {
    fn park(&mut self, cx: &Context<'_>) {
        if !self.waiters.iter().any(|w| w.will_wake(cx.waker())) {
            self.waiters.push(cx.waker().clone());
        }
    }

    fn wake_all(&mut self) {
        for w in std::mem::take(&mut self.waiters) {
            w.wake();
        }
    }
}

/// asyncio's `StreamReaderProtocol`: a [`Protocol`] (and [`BufferedProtocol`]) that
/// feeds a [`StreamReader`] and backs a [`StreamWriter`]. Public so that users can
/// build their own stream types on [`EventLoop::create_connection_with`] /
/// [`EventLoop::create_server_with`](crate::EventLoop::create_server_with).
///
/// Callbacks, in the protocol state machine
/// `connection_made -> data_received* -> eof_received? -> connection_lost`:
///
/// - `connection_made`: the reader learns the transport (for read flow control). On
///   a server-side protocol (made with
///   [`StreamReaderProtocol::with_client_connected_cb`]) a [`StreamWriter`] is made
///   and the callback is called with both, synchronously.
/// - data: appended to the reader. As a [`BufferedProtocol`] the transport reads
///   straight into the reader's buffer, with no intermediate copy.
/// - `eof_received`: the reader gets EOF, and `true` is returned: the connection stays
///   half-open, so the writer can still answer (asyncio's rule for streams).
/// - `connection_lost(None)`: the reader gets EOF; `connection_lost(Some(e))`: the
///   reader stores `e`. Either way drainers are released and `wait_closed` completes.
/// - `pause_writing` / `resume_writing`: drive [`StreamWriter::drain`].
///
/// [`EventLoop::create_connection_with`]: crate::EventLoop::create_connection_with
pub struct StreamReaderProtocol {
    /// The reader's state, in the same allocation: an idle connection's reader and
    /// protocol cost one allocation, not two.
    pub(crate) reader: ReaderInner,
    me: Weak<StreamReaderProtocol>,
    /// The loop: the one running when the reader was made, else the one that ran
    /// `connection_made`.
    lp: Cell<Weak<Inner>>,
    flow: RefCell<FlowState>,
    /// Server side: the callback, until `connection_made`.
    client: Cell<Option<ConnectedCb>>,
}

// One per streams connection, reader state included: part of the idle-memory budget
// (under 1 KiB per idle streams connection, chapter 11). Grow it only on purpose.
const _: () = assert!(
    cfg!(not(target_pointer_width = "64")) || std::mem::size_of::<StreamReaderProtocol>() <= 216
);

impl StreamReaderProtocol {
    /// The protocol that feeds `reader` (asyncio's `StreamReaderProtocol(reader)`). Make
    /// the [`StreamWriter`] yourself once the transport exists.
    ///
    /// Every reader is made together with its protocol (the reader's buffer lives in
    /// it), so this returns that one protocol: calling it twice for one reader gives
    /// the same protocol, where asyncio would make two feeding one reader.
    pub fn new(reader: &StreamReader) -> Rc<StreamReaderProtocol> {
        reader.proto.clone()
    }

    /// A server-side protocol (asyncio's `StreamReaderProtocol(reader,
    /// client_connected_cb)`): in `connection_made` it makes the [`StreamWriter`] and
    /// calls `cb(reader, writer)` synchronously. A panic in `cb` is a fatal error for
    /// this connection only.
    ///
    /// This is `reader`'s own protocol (see [`StreamReaderProtocol::new`]); the callback
    /// gets a handle to the same reader. A second call replaces the callback.
    pub fn with_client_connected_cb(
        reader: StreamReader,
        cb: impl FnOnce(StreamReader, StreamWriter) + 'static,
    ) -> Rc<StreamReaderProtocol> {
        reader.proto.client.set(Some(Box::new(cb)));
        reader.proto
    }

    /// A reader's protocol, made with the reader.
    pub(crate) fn make(reader: ReaderInner) -> Rc<StreamReaderProtocol> {
        let lp = crate::events::with_running(Rc::downgrade).unwrap_or_default();
        Rc::new_cyclic(|me| StreamReaderProtocol {
            reader,
            me: me.clone(),
            lp: Cell::new(lp),
            flow: RefCell::new(FlowState::default()),
            client: Cell::new(None),
        })
    }

    /// The loop this protocol runs on, if it is still open.
    pub(crate) fn live_loop(&self) -> Option<Rc<Inner>> {
        let lp = self.lp.take();
        let live = lp.upgrade().filter(|l| !l.is_closed());
        self.lp.set(lp);
        live
    }

    /// Whether `connection_lost` ran.
    pub fn is_connection_lost(&self) -> bool {
        self.flow.borrow().lost.is_some()
    }

    /// Mark the write side as shut down through an I/O trait (`streams/poll.rs`).
    pub(crate) fn set_shut_down(&self) {
        self.flow.borrow_mut().shut_down = true;
    }

    /// Whether the write side was shut down through an I/O trait: a writer dropped
    /// afterwards closes its transport without the "unclosed" warning.
    pub(crate) fn is_shut_down(&self) -> bool {
        self.flow.borrow().shut_down
    }

    /// Whether the reader has seen the peer's EOF (or the connection's end).
    pub(crate) fn reader_saw_eof(&self) -> bool {
        self.reader.state.borrow().eof
    }

    /// The reader's stored error, if any (the first thing `drain()` checks).
    pub(crate) fn reader_exception(&self) -> Option<Error> {
        self.reader.exception()
    }

    /// asyncio's `_drain_helper`: `Err(ConnectionReset "Connection lost")` if the
    /// connection is already gone; at once if writing is not paused; otherwise wait
    /// for `resume_writing` (then `Ok`) or `connection_lost` (its error, or `Ok` for a
    /// clean close). Any number of tasks may wait at once.
    ///
    /// Returns the future (not an `async fn`): its state is the counter it saw, so a
    /// connection waiting in `drain()` stays small.
    pub(crate) fn drain_helper(&self) -> impl StdFuture<Output = Result<()>> + '_ {
        let mut seen: Option<u64> = None;
        poll_fn(move |cx| {
            let mut st = self.flow.borrow_mut();
            match (&st.lost, seen) {
                (Some(_), None) => return Poll::Ready(Err(Error::connection_lost())),
                (Some(None), Some(_)) => return Poll::Ready(Ok(())),
                (Some(Some(e)), Some(_)) => return Poll::Ready(Err(Error::clone(e))),
                (None, _) => {}
            }
            if !st.paused || seen.is_some_and(|n| n != st.resumes) {
                return Poll::Ready(Ok(()));
            }
            seen = Some(st.resumes);
            st.park(cx);
            Poll::Pending
        })
    }

    /// asyncio's `await protocol._closed`: `Ok` once `connection_lost(None)` ran, the
    /// error once `connection_lost(Some(e))` ran.
    pub(crate) fn closed(&self) -> impl StdFuture<Output = Result<()>> + '_ {
        poll_fn(|cx| self.poll_closed(cx))
    }

    /// One poll of [`StreamReaderProtocol::closed`]: parks `cx`'s waker until
    /// `connection_lost`.
    pub(crate) fn poll_closed(&self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let mut st = self.flow.borrow_mut();
        match &st.lost {
            Some(None) => Poll::Ready(Ok(())),
            Some(Some(e)) => Poll::Ready(Err(Error::clone(e))),
            None => {
                st.park(cx);
                Poll::Pending
            }
        }
    }

    /// The stateless drain of the poll API (`streams/poll.rs`): `Err(ConnectionReset
    /// "Connection lost")` once the connection is gone; `Ok` while writing is not
    /// paused; otherwise parks `cx`'s waker until `resume_writing` or
    /// `connection_lost`. Holds no state between polls, so a caller may poll it
    /// afresh each time.
    pub(crate) fn poll_drain(&self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let mut st = self.flow.borrow_mut();
        if st.lost.is_some() {
            return Poll::Ready(Err(Error::connection_lost()));
        }
        if !st.paused {
            return Poll::Ready(Ok(()));
        }
        st.park(cx);
        Poll::Pending
    }

    /// asyncio's `_replace_transport`: the reader's flow control goes to `t` (the TLS
    /// transport after `StreamWriter::start_tls`).
    #[cfg(feature = "tls")]
    pub(crate) fn replace_transport(&self, t: &Rc<dyn Transport>) {
        self.reader.replace_transport(t);
    }

    fn made(&self, transport: Rc<dyn Transport>) {
        self.flow.borrow_mut().connected = true;
        if self.live_loop().is_none() {
            // A reader made outside the loop: the loop is the one running now.
            if let Some(lp) = crate::events::with_running(Rc::downgrade) {
                self.lp.set(lp);
            }
        }
        // A second transport is a programming error of a custom user setup; the
        // reader keeps the first one for flow control.
        let _ = self.reader.set_transport(&transport);
        if let (Some(cb), Some(me)) = (self.client.take(), self.me.upgrade()) {
            let writer = StreamWriter::new(transport, me.clone());
            cb(StreamReader::from_proto(me), writer);
        }
    }

    fn eof(&self) -> bool {
        self.reader.feed_eof();
        true
    }
}

impl BaseProtocol for StreamReaderProtocol {
    fn connection_made(&self, transport: Rc<dyn Transport>) {
        self.made(transport);
    }

    fn connection_lost(&self, exc: Option<Error>) {
        match &exc {
            None => self.reader.feed_eof(),
            Some(e) => self.reader.set_exception(e.clone()),
        }
        let mut st = self.flow.borrow_mut();
        st.lost = Some(exc.map(Box::new));
        st.paused = false;
        st.wake_all();
        drop(st);
        // A server-side protocol that never connected drops its callback here.
        drop(self.client.take());
    }

    fn pause_writing(&self) {
        self.flow.borrow_mut().paused = true;
    }

    fn resume_writing(&self) {
        let mut st = self.flow.borrow_mut();
        st.paused = false;
        st.resumes += 1;
        st.wake_all();
    }
}

impl Protocol for StreamReaderProtocol {
    fn data_received(&self, data: &[u8]) {
        // Only fails after feed_eof, which the transport never follows with data.
        let _ = self.reader.feed_data(data);
    }

    fn eof_received(&self) -> bool {
        self.eof()
    }
}

impl BufferedProtocol for StreamReaderProtocol {
    fn get_buffer(&self, _sizehint: usize) -> RefMut<'_, [u8]> {
        self.reader.room()
    }

    fn buffer_updated(&self, nbytes: usize) {
        self.reader.commit(nbytes);
    }

    /// The transport found nothing to read: an empty reader gives its storage back,
    /// so an idle connection holds no read buffer (the transport reads speculatively
    /// when reading starts or resumes, and that read usually finds nothing).
    fn buffer_unused(&self) {
        self.reader.release_if_empty();
    }

    fn eof_received(&self) -> bool {
        self.eof()
    }
}

impl fmt::Debug for StreamReaderProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = if self.is_connection_lost() {
            "lost"
        } else if self.flow.try_borrow().is_ok_and(|s| s.connected) {
            "connected"
        } else {
            "new"
        };
        write!(f, "<StreamReaderProtocol {state}")?;
        if self.flow.try_borrow().is_ok_and(|s| s.paused) {
            f.write_str(" writing=paused")?;
        }
        f.write_str(">")
    }
}
