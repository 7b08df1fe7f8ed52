//! [`StreamReader`]: asyncio's buffered reader, with its exact buffer rules.
//!
//! The reader is two parts: the shared state ([`ReaderInner`]: the buffer, the EOF
//! flag, a stored error, the one waiting reader's waker) which the protocol feeds, and
//! the [`StreamReader`] handle through which a task reads. The shared state lives
//! inside the reader's [`StreamReaderProtocol`], so that a connection's reader and
//! protocol are one allocation. Every read method takes
//! `&mut self`, so two concurrent reads of one reader cannot be written (asyncio
//! raises `RuntimeError` at run time instead). Because the bytes live in the shared
//! state and not in a read's future, every read is cancel-safe: a read dropped while
//! it waits has consumed nothing, and the next read sees every byte.

use std::cell::{Cell, RefCell, RefMut};
use std::fmt;
use std::future::{poll_fn, Future as StdFuture};
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};

use super::buffer::ByteBuf;
use super::protocol::StreamReaderProtocol;
use crate::exceptions::{Error, Result};
use crate::transports::Transport;

/// asyncio's `_DEFAULT_LIMIT`: 64 KiB.
pub const DEFAULT_LIMIT: usize = 64 * 1024;

/// `readline`'s separator.
const NEWLINE: &[&[u8]] = &[b"\n"];

/// What to do to the transport once the state is no longer borrowed: the transport's
/// `pause_reading` / `resume_reading` may call back (a user's transport could feed data
/// synchronously), so they are never called with the state borrowed.
#[must_use]
pub(crate) enum Flow {
    Nothing,
    Pause(Rc<dyn Transport>),
    Resume(Rc<dyn Transport>),
}

impl Flow {
    #[inline]
    pub(crate) fn apply(self) {
        match self {
            Flow::Nothing => {}
            Flow::Pause(t) => t.pause_reading(),
            Flow::Resume(t) => t.resume_reading(),
        }
    }
}

/// The mutable part of a reader (asyncio's `_buffer`, `_eof`, `_waiter`,
/// `_exception`, `_transport`, `_paused`).
#[derive(Default)]
pub(crate) struct ReaderState {
    pub(crate) buf: ByteBuf,
    pub(crate) eof: bool,
    /// Boxed: a connection that never fails should not carry an error's room.
    exception: Option<Box<Error>>,
    /// The waiting read's waker (asyncio's `_waiter`, still pending).
    waker: Option<Waker>,
    /// `feed_data`/`feed_eof` took the waker (asyncio: resolved the waiter with a
    /// result) and the read has not run since. Such a read goes on with the data even
    /// if an error is stored meanwhile. Cleared when the read runs or is dropped.
    woken: bool,
    transport: Option<Weak<dyn Transport>>,
    paused: bool,
}

impl ReaderState {
    /// asyncio's pause rule, run after data was added: pause the transport when the
    /// buffer holds strictly more than twice the limit.
    #[inline]
    pub(crate) fn after_feed(&mut self, limit: usize) -> Flow {
        if !self.paused && self.buf.len() > 2 * limit {
            if let Some(t) = self.transport.as_ref().and_then(Weak::upgrade) {
                self.paused = true;
                return Flow::Pause(t);
            }
        }
        Flow::Nothing
    }

    /// asyncio's `_maybe_resume_transport`, run after a consuming read: resume once the
    /// buffer is down to the limit.
    #[inline]
    fn after_consume(&mut self, limit: usize) -> Flow {
        if self.paused && self.buf.len() <= limit {
            return self.resume();
        }
        Flow::Nothing
    }

    fn resume(&mut self) -> Flow {
        self.paused = false;
        match self.transport.as_ref().and_then(Weak::upgrade) {
            Some(t) => Flow::Resume(t),
            None => Flow::Nothing,
        }
    }

    /// asyncio's `_wait_for_data`: remember the waker, and resume a paused transport
    /// first (a reader that needs more than the pause threshold, e.g. `readexactly`
    /// of 3 x limit, would otherwise wait forever).
    fn wait(&mut self, cx: &mut Context<'_>) -> Flow {
        debug_assert!(!self.eof, "waiting for data after EOF");
        match &self.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => self.waker = Some(cx.waker().clone()),
        }
        if self.paused {
            self.resume()
        } else {
            Flow::Nothing
        }
    }

    /// asyncio's `_wakeup_waiter`: resolve the waiter with a result.
    fn take_waker(&mut self) -> Option<Waker> {
        let w = self.waker.take();
        self.woken |= w.is_some();
        w
    }
}

/// The state a [`StreamReader`] shares with the protocol that feeds it.
pub(crate) struct ReaderInner {
    pub(crate) limit: usize,
    pub(crate) state: RefCell<ReaderState>,
}

impl ReaderInner {
    pub(crate) fn new(limit: usize) -> ReaderInner {
        ReaderInner {
            limit,
            state: RefCell::new(ReaderState::default()),
        }
    }

    /// `feed_data`: append, wake the reader, apply the pause rule.
    pub(crate) fn feed_data(&self, data: &[u8]) -> Result<()> {
        let (waker, flow) = {
            let mut st = self.state.borrow_mut();
            if st.eof {
                return Err(Error::runtime("feed_data after feed_eof"));
            }
            if data.is_empty() {
                return Ok(());
            }
            st.buf.extend(data);
            (st.take_waker(), st.after_feed(self.limit))
        };
        wake(waker);
        flow.apply();
        Ok(())
    }

    /// Room for the transport to read into (the zero-copy path).
    pub(crate) fn room(&self) -> RefMut<'_, [u8]> {
        RefMut::map(self.state.borrow_mut(), |st| st.buf.room())
    }

    /// `n` bytes were read into the last [`ReaderInner::room`]: the same as
    /// `feed_data` of those bytes, without the copy.
    pub(crate) fn commit(&self, n: usize) {
        let (waker, flow) = {
            let mut st = self.state.borrow_mut();
            st.buf.commit(n);
            if n == 0 {
                return;
            }
            (st.take_waker(), st.after_feed(self.limit))
        };
        wake(waker);
        flow.apply();
    }

    /// The last [`ReaderInner::room`] got nothing: free the storage if no byte is
    /// buffered.
    pub(crate) fn release_if_empty(&self) {
        self.state.borrow_mut().buf.release_if_empty();
    }

    /// `feed_eof`: no more data will come; wake the reader. Idempotent.
    pub(crate) fn feed_eof(&self) {
        let waker = {
            let mut st = self.state.borrow_mut();
            st.eof = true;
            st.take_waker()
        };
        wake(waker);
    }

    /// `set_exception`: every read started later fails with `e`, before any buffered
    /// data; a read waiting now fails with it too (asyncio sets the waiter's
    /// exception), but one already woken by data or EOF does not.
    pub(crate) fn set_exception(&self, e: Error) {
        let waker = {
            let mut st = self.state.borrow_mut();
            st.exception = Some(Box::new(e));
            // Not take_waker: this resolves the waiter with the error, not a result.
            st.waker.take()
        };
        wake(waker);
    }

    pub(crate) fn exception(&self) -> Option<Error> {
        self.state.borrow().exception.as_deref().cloned()
    }

    /// The connection got a new transport (a TLS upgrade): flow control goes to it.
    #[cfg(feature = "tls")]
    pub(crate) fn replace_transport(&self, t: &Rc<dyn Transport>) {
        self.state.borrow_mut().transport = Some(Rc::downgrade(t));
    }

    pub(crate) fn set_transport(&self, t: &Rc<dyn Transport>) -> Result<()> {
        let mut st = self.state.borrow_mut();
        if st.transport.is_some() {
            return Err(Error::runtime("Transport already set"));
        }
        st.transport = Some(Rc::downgrade(t));
        Ok(())
    }

    /// [`ReaderInner::poll_read`] for a read that consumes what it returns.
    #[inline]
    pub(crate) fn poll_with<T>(
        &self,
        cx: &mut Context<'_>,
        attempt: impl FnOnce(&mut ReaderState, usize) -> Option<Result<T>>,
    ) -> Poll<Result<T>> {
        self.poll_read(cx, true, |st, limit, _| attempt(st, limit))
    }

    /// One poll of a read: check the stored error as asyncio does, then run `attempt`
    /// on the state. `None` from `attempt` means "wait for data": the waker is stored
    /// and a paused transport resumed. A successful read that `consumes` then applies
    /// the resume rule; an error (`IncompleteRead` at EOF) does not, as in asyncio.
    ///
    /// asyncio checks `_exception` when a read starts, and afterwards learns of an
    /// error only through its waiter. Here: a read whose waker is still stored is
    /// waiting (a spurious poll), and one that `feed_data`/`feed_eof` woke goes on
    /// with the data (`attempt` is told so by its third argument); neither looks at
    /// the stored error. Otherwise the read is starting, or `set_exception` took its
    /// waker, and the stored error, if any, is its result.
    #[inline]
    fn poll_read<T>(
        &self,
        cx: &mut Context<'_>,
        consumes: bool,
        attempt: impl FnOnce(&mut ReaderState, usize, bool) -> Option<Result<T>>,
    ) -> Poll<Result<T>> {
        std::task::ready!(crate::coop::poll_proceed(cx)); // the cooperative budget
        let flow;
        let out = {
            let mut st = self.state.borrow_mut();
            let woken = std::mem::take(&mut st.woken);
            if !woken && st.waker.is_none() {
                if let Some(e) = &st.exception {
                    return Poll::Ready(Err(Error::clone(e)));
                }
            }
            match attempt(&mut st, self.limit, woken) {
                Some(r) => {
                    st.waker = None;
                    flow = match r {
                        Ok(_) if consumes => st.after_consume(self.limit),
                        _ => Flow::Nothing,
                    };
                    Poll::Ready(r)
                }
                None => {
                    flow = st.wait(cx);
                    Poll::Pending
                }
            }
        };
        flow.apply();
        out
    }
}

/// One read's hold on the reader's waiter. Lives in the read's future (in place of a
/// plain `&ReaderInner`, so it costs the future nothing); dropped while the read waits
/// (the read was cancelled), it clears the waiter, as asyncio's `_wait_for_data` does
/// in its `finally`. Reads take `&mut StreamReader`, so the waiter, if any, is this
/// read's.
struct Waiter<'a>(&'a ReaderInner);

impl<'a> Waiter<'a> {
    /// The reader's state. A method, not the field: a closure that calls it captures
    /// the whole guard (a closure using `waiter.0` would capture only the reference,
    /// and the guard would be dropped before the read ran).
    #[inline]
    fn get(&self) -> &'a ReaderInner {
        self.0
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        if let Ok(mut st) = self.0.state.try_borrow_mut() {
            if st.waker.is_some() || st.woken {
                st.waker = None;
                st.woken = false;
            }
        }
    }
}

/// The first `k` bytes of a reader's buffer, lent out by [`StreamReader::read_with`].
///
/// The buffer is moved out of the reader's state for the loan, so the borrower may
/// reach the state through any path (a transport call that feeds or fails the reader)
/// without a `RefCell` conflict. Dropping the loan (also when the borrower panics)
/// consumes the `k` bytes, puts the buffer back ahead of anything fed meanwhile, and
/// resumes a paused transport once the buffer is down to the limit.
struct Lent<'a> {
    inner: &'a ReaderInner,
    buf: ByteBuf,
    k: usize,
}

impl<'a> Lent<'a> {
    fn new(inner: &'a ReaderInner, n: usize) -> Lent<'a> {
        let buf = std::mem::take(&mut inner.state.borrow_mut().buf);
        let k = n.min(buf.len());
        Lent { inner, buf, k }
    }

    fn bytes(&self) -> &[u8] {
        &self.buf.as_slice()[..self.k]
    }
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        let mut buf = std::mem::take(&mut self.buf);
        buf.consume(self.k);
        let flow = {
            let mut st = self.inner.state.borrow_mut();
            let mut fed = std::mem::replace(&mut st.buf, buf);
            let pause = if fed.is_empty() {
                Flow::Nothing
            } else {
                // Fed during the loan: those bytes come after the lent buffer's, and
                // the pause rule runs again on the whole (feed_data saw only its own).
                st.buf.extend(fed.as_slice());
                fed.clear();
                st.after_feed(self.inner.limit)
            };
            // Nothing fed: only the resume rule, as after `read(n)`.
            match pause {
                Flow::Nothing => st.after_consume(self.inner.limit),
                pause => pause,
            }
        };
        flow.apply();
    }
}

#[inline]
fn wake(w: Option<Waker>) {
    if let Some(w) = w {
        w.wake();
    }
}

/// Find the earliest end of any separator in `buf[offset..]` (asyncio 3.13's rule: the
/// match that ends first wins; of two ending together, the shorter, which `seps`
/// lists first because it is sorted by length). Returns `(start, end)`.
fn find_first_end(buf: &ByteBuf, seps: &[&[u8]], offset: usize) -> Option<(usize, usize)> {
    let mut best: Option<(usize, usize)> = None;
    for sep in seps {
        if let Some(i) = buf.find(sep, offset) {
            let end = i + sep.len();
            if best.is_none_or(|(_, e)| end < e) {
                best = Some((i, end));
            }
        }
    }
    best
}

/// One attempt of `readuntil` on the current buffer: `None` means wait for more data.
/// `offset` carries, across attempts, where the search resumes, so no byte is
/// searched twice.
fn readuntil_step(
    st: &mut ReaderState,
    limit: usize,
    seps: &[&[u8]],
    offset: &mut usize,
) -> Option<Result<Vec<u8>>> {
    let min_len = seps.first().map_or(1, |s| s.len());
    let max_len = seps.last().map_or(1, |s| s.len());
    let buflen = st.buf.len();
    if buflen.saturating_sub(*offset) >= min_len {
        if let Some((start, end)) = find_first_end(&st.buf, seps, *offset) {
            if start > limit {
                return Some(Err(Error::LimitOverrun {
                    message: "Separator is found, but chunk is longer than limit".into(),
                    consumed: start,
                }));
            }
            return Some(Ok(st.buf.take_front(end)));
        }
        *offset = (buflen + 1).saturating_sub(max_len);
        if *offset > limit {
            return Some(Err(Error::LimitOverrun {
                message: "Separator is not found, and chunk exceed the limit".into(),
                consumed: *offset,
            }));
        }
    }
    if st.eof {
        return Some(Err(Error::IncompleteRead {
            partial: st.buf.take_all(),
            expected: None,
        }));
    }
    None
}

/// asyncio's `StreamReader`: a buffer of received bytes with `read`, `readline`,
/// `readuntil` and `readexactly`.
///
/// Readers are usually made by [`open_connection`](super::open_connection) and
/// [`start_server`](super::start_server); one made by hand ([`StreamReader::new`]) is
/// fed with [`StreamReader::feed_data`] and [`StreamReader::feed_eof`].
///
/// # The limit
///
/// `limit` (64 KiB by default) bounds a line: rather than wait for more of a line
/// when more than `limit` bytes are buffered without its separator (or when the
/// separator starts beyond `limit`), `readuntil` fails with a
/// [`LimitOverrun`](Error::LimitOverrun) error and `readline` with a `ValueError`
/// ([`Error::Chained`]: an [`Error::Value`] whose source is that `LimitOverrun`). It
/// also sets read-side flow control: when a feed leaves more than `2 x limit` bytes
/// buffered the transport stops reading from the socket (`pause_reading`), and it
/// resumes once a successful read leaves the buffer at `limit` or below, or as soon as
/// a read has to wait.
///
/// # Errors
///
/// A stored error ([`StreamReader::set_exception`], or the connection's error when it
/// broke) is returned by every read that **starts** after it was stored, before any
/// data still buffered. A read already waiting learns of it only through its wake-up,
/// as in asyncio: if `set_exception` wakes it, it fails with the error; if
/// `feed_data`/`feed_eof` woke it first, it goes on with the data, even though the
/// error was stored before it ran (and, should it need more, waits again).
///
/// # Cancel safety
///
/// Every read is cancel-safe: the buffer belongs to the reader, not to the read's
/// future, so dropping a read while it waits (in a `select`, a timeout) loses no byte.
/// The next read sees everything. The dropped read takes its waker with it (asyncio
/// clears `_waiter` when a wait ends), so the reader keeps no stale waiter.
///
/// ```
/// let mut r = asyncio::StreamReader::new();
/// r.feed_data(b"GET / HTTP/1.0\r\nHost: x\r\n\r\nbody").unwrap();
/// r.feed_eof();
/// asyncio::run(async move {
///     assert_eq!(r.readline().await.unwrap(), b"GET / HTTP/1.0\r\n");
///     assert_eq!(r.readuntil(b"\r\n\r\n").await.unwrap(), b"Host: x\r\n\r\n");
///     assert_eq!(r.read_to_end().await.unwrap(), b"body");
///     assert!(r.at_eof());
/// }).unwrap();
/// ```
pub struct StreamReader {
    /// The protocol that feeds this reader; the reader's state is part of it.
    pub(crate) proto: Rc<StreamReaderProtocol>,
    /// Bytes lent out by `poll_fill_buf` and not consumed yet (`streams/poll.rs`);
    /// every other read puts them back in front of the buffer first.
    pub(crate) front: Cell<Option<Box<ByteBuf>>>,
}

impl Default for StreamReader {
    fn default() -> Self {
        StreamReader::new()
    }
}

impl StreamReader {
    /// The shared state.
    #[inline]
    pub(crate) fn inner(&self) -> &ReaderInner {
        &self.proto.reader
    }

    /// The shared state, for a read: bytes lent by `poll_fill_buf` and not consumed
    /// are put back in front of the buffer first.
    #[inline]
    fn reading(&mut self) -> &ReaderInner {
        super::poll::give_back_front(self);
        &self.proto.reader
    }

    /// The reader of `proto`.
    pub(crate) fn from_proto(proto: Rc<StreamReaderProtocol>) -> StreamReader {
        StreamReader {
            proto,
            front: Cell::new(None),
        }
    }

    /// A reader with the default limit, 64 KiB (asyncio's `StreamReader()`).
    pub fn new() -> StreamReader {
        StreamReader::from_proto(StreamReaderProtocol::make(ReaderInner::new(DEFAULT_LIMIT)))
    }

    /// A reader with the given limit (asyncio's `StreamReader(limit=...)`). A zero
    /// limit is a `ValueError`: `"Limit cannot be <= 0"`.
    pub fn with_limit(limit: usize) -> Result<StreamReader> {
        if limit == 0 {
            return Err(Error::value("Limit cannot be <= 0"));
        }
        Ok(StreamReader::from_proto(StreamReaderProtocol::make(
            ReaderInner::new(limit),
        )))
    }

    /// The limit this reader was made with.
    pub fn limit(&self) -> usize {
        self.inner().limit
    }

    /// The stored error, if any (asyncio's `exception()`).
    pub fn exception(&self) -> Option<Error> {
        self.inner().exception()
    }

    /// Store an error (asyncio's `set_exception()`): a read waiting now (not already
    /// woken by data or EOF), and every read started later, returns it, even while
    /// data is still buffered. The buffer is kept.
    pub fn set_exception(&self, e: Error) {
        self.inner().set_exception(e);
    }

    /// Attach the transport whose reading this reader pauses and resumes (asyncio's
    /// `set_transport()`). Only a weak reference is kept. Errors with `"Transport
    /// already set"` if one is attached.
    pub fn set_transport(&self, transport: &Rc<dyn Transport>) -> Result<()> {
        self.inner().set_transport(transport)
    }

    /// Append received bytes (asyncio's `feed_data()`) and wake a waiting read.
    /// Empty data is a no-op. Errors with `"feed_data after feed_eof"` (asyncio
    /// asserts). May pause the transport (see the type's docs).
    pub fn feed_data(&self, data: &[u8]) -> Result<()> {
        self.inner().feed_data(data)
    }

    /// Mark the end of the stream (asyncio's `feed_eof()`) and wake a waiting read.
    /// Idempotent.
    pub fn feed_eof(&self) {
        self.inner().feed_eof();
    }

    /// Whether EOF was fed **and** the buffer is empty (asyncio's `at_eof()`): the
    /// next read returns nothing.
    pub fn at_eof(&self) -> bool {
        let st = self.inner().state.borrow();
        st.eof && st.buf.is_empty() && super::poll::lent_len(self) == 0
    }

    /// How many bytes are buffered (asyncio's `len(reader._buffer)`; Rust-only).
    pub fn buffered(&self) -> usize {
        self.inner().state.borrow().buf.len() + super::poll::lent_len(self)
    }

    /// Bytes of storage the buffer holds (its capacity: live bytes, room and reserve),
    /// for tests of the memory rules: a reader with nothing buffered holds none, one
    /// holding more than 64 KiB at most 1.25 bytes per byte held. Not asyncio API.
    #[doc(hidden)]
    pub fn allocated_bytes(&self) -> usize {
        self.inner().state.borrow().buf.allocated()
    }

    /// Read up to `n` bytes (asyncio's `read(n)`).
    ///
    /// `n == 0` returns an empty `Vec` at once. Otherwise, if nothing is buffered and
    /// EOF was not fed, waits for data; then returns what is buffered, at most `n`
    /// bytes (possibly fewer: it does not wait for `n`). At EOF returns an empty `Vec`.
    /// The result is not bounded by the limit. Cancel-safe.
    ///
    /// The bytes are copied out of the reader's buffer into the returned `Vec`; to pass
    /// them on without that copy, use [`read_with`](StreamReader::read_with).
    pub async fn read(&mut self, n: usize) -> Result<Vec<u8>> {
        let waiter = Waiter(self.reading());
        poll_fn(move |cx| {
            waiter.get().poll_with(cx, |st, _| {
                if n == 0 {
                    return Some(Ok(Vec::new()));
                }
                if st.buf.is_empty() && !st.eof {
                    return None;
                }
                let k = n.min(st.buf.len());
                Some(Ok(if k == st.buf.len() {
                    st.buf.take_all()
                } else {
                    st.buf.take_front(k)
                }))
            })
        })
        .await
    }

    /// Lend up to `n` buffered bytes to `f` instead of copying them out: the
    /// zero-copy twin of [`read`](StreamReader::read) (Rust-only; asyncio has none).
    ///
    /// Waits exactly as `read(n)` does (not at all for `n == 0`), then calls `f` once
    /// with the bytes `read(n)` would have returned (an empty slice at EOF, or for
    /// `n == 0`) and consumes them, whatever `f` returns; its result is returned. The
    /// flow-control rules are `read(n)`'s: the resume rule after consuming, and the
    /// pause rule only if `f` fed the reader. An echo forwards a chunk with no copy of
    /// its own:
    /// `reader.read_with(65536, |data| writer.write(data)).await??`. The slice lives
    /// only during the call, so no view of the buffer outlives it. `f` runs with the
    /// buffer lent out, not borrowed: it may use anything, this reader's transport
    /// included. If `f` panics, the lent bytes are still consumed and the rest is
    /// kept. Cancel-safe: nothing is consumed before `f` runs.
    ///
    /// ```
    /// let mut r = asyncio::StreamReader::new();
    /// r.feed_data(b"hello world").unwrap();
    /// r.feed_eof();
    /// asyncio::run(async move {
    ///     // Look at the bytes where they are: count the vowels, copy nothing.
    ///     let vowels = |b: &[u8]| b.iter().filter(|c| b"aeiou".contains(c)).count();
    ///     assert_eq!(r.read_with(5, vowels).await.unwrap(), 2); // "hello"
    ///     assert_eq!(r.buffered(), 6, "the rest stays buffered");
    ///     assert_eq!(r.read_with(100, vowels).await.unwrap(), 1); // " world"
    ///     assert_eq!(r.read_with(100, <[u8]>::len).await.unwrap(), 0, "EOF: empty");
    /// }).unwrap();
    /// ```
    pub async fn read_with<T>(&mut self, n: usize, f: impl FnOnce(&[u8]) -> T) -> Result<T> {
        let inner = self.reading();
        let waiter = Waiter(inner);
        // Nothing is consumed yet: the resume rule runs when the loan ends.
        poll_fn(move |cx| {
            waiter.get().poll_read(cx, false, |st, _, _| {
                (n == 0 || !st.buf.is_empty() || st.eof).then_some(Ok(()))
            })
        })
        .await?;
        let lent = Lent::new(inner, n);
        Ok(f(lent.bytes()))
    }

    /// Read until EOF and return every byte (asyncio's `read()` / `read(-1)`).
    ///
    /// The buffer is emptied as data arrives, so the pause rule never blocks it. A
    /// stored error is returned as soon as it is seen (bytes collected so far are
    /// dropped, as asyncio's are). asyncio's `read()` is a loop of `read(limit)`, and
    /// so is this one where it shows: woken by data with an error stored meanwhile, it
    /// takes one block of at most `limit` bytes, then fails; woken by EOF, it returns
    /// what it collected. Not cancel-safe in one respect: bytes already moved into the
    /// result are lost if the read is dropped before EOF.
    pub async fn read_to_end(&mut self) -> Result<Vec<u8>> {
        let waiter = Waiter(self.reading());
        let mut out: Vec<u8> = Vec::new();
        poll_fn(move |cx| {
            waiter.get().poll_read(cx, true, |st, limit, woken| {
                if woken && !st.buf.is_empty() {
                    // asyncio's `read()` is a loop of `read(limit)`: the one that
                    // waited takes its block whatever was stored meanwhile; the next
                    // one starts by checking the stored error.
                    let block = st.buf.take_front(limit.min(st.buf.len()));
                    if out.is_empty() {
                        out = block;
                    } else {
                        out.extend_from_slice(&block);
                    }
                    if let Some(e) = &st.exception {
                        return Some(Err(Error::clone(e)));
                    }
                }
                if !st.buf.is_empty() {
                    if out.is_empty() {
                        out = st.buf.take_all();
                    } else {
                        out.extend_from_slice(st.buf.as_slice());
                        st.buf.clear();
                    }
                }
                if st.eof {
                    Some(Ok(std::mem::take(&mut out)))
                } else {
                    None
                }
            })
        })
        .await
    }

    /// Read one line, up to and including `\n` (asyncio's `readline()`).
    ///
    /// At EOF returns the last partial line (without `\n`), or an empty `Vec` when
    /// nothing is left. A line longer than the limit (not counting its `\n`) is a
    /// `ValueError` carrying asyncio's message, raised while handling the
    /// `LimitOverrunError`: an [`Error::Chained`] whose
    /// [`unchained()`](Error::unchained) is the [`Error::Value`] and whose
    /// [`source()`](std::error::Error::source) is the [`Error::LimitOverrun`] with its
    /// `consumed`. As in asyncio, that line is **discarded**: if its `\n` is already
    /// buffered, the buffer loses the line including the `\n`; otherwise the whole
    /// buffer is cleared. Use [`StreamReader::readuntil`] to keep the data and get the
    /// [`LimitOverrun`](Error::LimitOverrun) error itself instead. Cancel-safe.
    pub async fn readline(&mut self) -> Result<Vec<u8>> {
        let r = self.until(NEWLINE).await;
        self.line_outcome(r)
    }

    /// `readline`'s rules applied to the outcome of `readuntil(b"\n")`: a partial last
    /// line is a line, and an overlong line is discarded and becomes a `ValueError`.
    fn line_outcome(&mut self, r: Result<Vec<u8>>) -> Result<Vec<u8>> {
        match r {
            Ok(line) => Ok(line),
            Err(Error::IncompleteRead { partial, .. }) => Ok(partial),
            Err(Error::LimitOverrun { message, consumed }) => {
                let flow = {
                    let mut st = self.inner().state.borrow_mut();
                    if st.buf.as_slice().get(consumed) == Some(&b'\n') {
                        st.buf.consume(consumed + 1);
                    } else {
                        st.buf.clear();
                    }
                    st.after_consume(self.inner().limit)
                };
                flow.apply();
                // asyncio raises the ValueError while handling the LimitOverrunError.
                Err(Error::Chained {
                    error: Box::new(Error::Value(message.clone())),
                    context: Box::new(Error::LimitOverrun { message, consumed }),
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Read up to and including `separator` (asyncio's `readuntil()`).
    ///
    /// - Found: returns the data with the separator at its end.
    /// - EOF first: `Error::IncompleteRead { partial, expected: None }` with every
    ///   buffered byte (possibly a partial separator); the buffer is emptied, and a
    ///   paused transport stays paused (as in asyncio).
    /// - The separator starts beyond `limit` bytes, or more than `limit` bytes are
    ///   buffered without it: `Error::LimitOverrun { consumed }`, and the buffer is
    ///   left untouched so the data can be read again (e.g. with `read(consumed)`).
    ///
    /// An empty separator is a `ValueError`. Bytes already searched are never searched
    /// again while the read waits. Cancel-safe.
    pub async fn readuntil(&mut self, separator: &[u8]) -> Result<Vec<u8>> {
        if separator.is_empty() {
            return Err(Error::value("Separator should be at least one-byte string"));
        }
        self.until(std::slice::from_ref(&separator)).await
    }

    /// Read up to the first of several separators (asyncio 3.13's `readuntil()` with
    /// a tuple): the match that **ends** first wins, and of two ending at the same
    /// byte, the shorter. Same errors and buffer rules as [`StreamReader::readuntil`].
    /// An empty slice (`"Separator should contain at least one element"`) or an empty
    /// separator (`"Separator should be at least one-byte string"`) is a `ValueError`,
    /// checked before the stored error, as in asyncio. Cancel-safe.
    pub async fn readuntil_any(&mut self, separators: &[&[u8]]) -> Result<Vec<u8>> {
        if separators.is_empty() {
            return Err(Error::value(
                "Separator should contain at least one element",
            ));
        }
        if separators.iter().any(|s| s.is_empty()) {
            return Err(Error::value("Separator should be at least one-byte string"));
        }
        let sorted: Vec<&[u8]>;
        let seps = if separators.len() == 1 {
            separators
        } else {
            let mut v = separators.to_vec();
            v.sort_by_key(|s| s.len());
            sorted = v;
            &sorted[..]
        };
        self.until(seps).await
    }

    /// The wait of `readuntil_any` for separators sorted by length. A plain function
    /// returning the future (not an `async fn`), so that the reads built on it carry
    /// no state of their own beyond the search offset: `readline`'s future is 48
    /// bytes, and every waiting connection holds one.
    fn until<'a>(
        &'a mut self,
        seps: &'a [&'a [u8]],
    ) -> impl StdFuture<Output = Result<Vec<u8>>> + 'a {
        let waiter = Waiter(self.reading());
        let mut offset = 0;
        poll_fn(move |cx| {
            waiter
                .get()
                .poll_with(cx, |st, limit| readuntil_step(st, limit, seps, &mut offset))
        })
    }

    /// Read exactly `n` bytes (asyncio's `readexactly()`).
    ///
    /// `n == 0` returns an empty `Vec`. If EOF comes first:
    /// `Error::IncompleteRead { partial, expected: Some(n) }` with every buffered byte,
    /// and the buffer is emptied (a paused transport stays paused, as in asyncio). `n`
    /// may exceed the limit (a waiting read resumes a paused transport). Cancel-safe:
    /// nothing is consumed until all `n` bytes are there.
    pub async fn readexactly(&mut self, n: usize) -> Result<Vec<u8>> {
        let waiter = Waiter(self.reading());
        poll_fn(move |cx| {
            waiter.get().poll_with(cx, |st, _| {
                if st.buf.len() >= n {
                    return Some(Ok(if n == st.buf.len() {
                        st.buf.take_all()
                    } else {
                        st.buf.take_front(n)
                    }));
                }
                if st.eof {
                    return Some(Err(Error::IncompleteRead {
                        partial: st.buf.take_all(),
                        expected: Some(n),
                    }));
                }
                None
            })
        })
        .await
    }

    /// The next line, or `None` at the end (asyncio's `async for line in reader`,
    /// which stops when `readline()` returns `b''`). The last line may lack its `\n`.
    ///
    /// ```
    /// let mut r = asyncio::StreamReader::new();
    /// r.feed_data(b"a\nb").unwrap();
    /// r.feed_eof();
    /// asyncio::run(async move {
    ///     let mut lines = Vec::new();
    ///     while let Some(line) = r.next_line().await {
    ///         lines.push(line.unwrap());
    ///     }
    ///     assert_eq!(lines, [b"a\n".to_vec(), b"b".to_vec()]);
    /// }).unwrap();
    /// ```
    pub async fn next_line(&mut self) -> Option<Result<Vec<u8>>> {
        let r = self.until(NEWLINE).await;
        match self.line_outcome(r) {
            Ok(line) if line.is_empty() => None,
            r => Some(r),
        }
    }
}

impl fmt::Debug for StreamReader {
    /// asyncio's repr: `<StreamReader 4 bytes eof limit=123 waiter exception=...
    /// transport paused>`, each part only when it is not the default.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Ok(st) = self.inner().state.try_borrow() else {
            return f.write_str("<StreamReader (busy)>");
        };
        f.write_str("<StreamReader")?;
        let len = st.buf.len() + super::poll::lent_len(self);
        if len != 0 {
            write!(f, " {len} bytes")?;
        }
        if st.eof {
            f.write_str(" eof")?;
        }
        if self.inner().limit != DEFAULT_LIMIT {
            write!(f, " limit={}", self.inner().limit)?;
        }
        if st.waker.is_some() {
            f.write_str(" waiter")?;
        }
        if let Some(e) = &st.exception {
            write!(f, " exception={e}")?;
        }
        if st.transport.is_some() {
            f.write_str(" transport")?;
        }
        if st.paused {
            f.write_str(" paused")?;
        }
        f.write_str(">")
    }
}
