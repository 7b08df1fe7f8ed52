//! hyper 1.x on the loop (cargo feature `hyper`, Rust-only): hyper's runtime traits
//! for the streams and the loop, so that serving (or fetching) HTTP/1.1 and HTTP/2
//! with hyper takes a few lines.
//!
//! - [`StreamPair`] is `hyper::rt::Read + hyper::rt::Write`, by the rules of the
//!   streams' poll functions (see [`crate::streams`]; `poll_flush` is
//!   [`StreamWriter::poll_flush`](crate::StreamWriter::poll_flush), `poll_shutdown` is
//!   [`StreamWriter::poll_shutdown`](crate::StreamWriter::poll_shutdown)).
//! - [`HyperExecutor`] is a `hyper::rt::Executor` that runs each future hyper hands
//!   it as a task on the running loop. The futures need not be `Send`: hyper's HTTP/2
//!   server and client take a `!Send` executor (its bounds ask only for
//!   `Executor<F>` and `Clone`), so a service may hold `Rc`s.
//! - [`HyperTimer`] is a `hyper::rt::Timer` on the loop's timers (and its clock:
//!   under a [`TestClock`](crate::TestClock) hyper's timeouts follow virtual time).
//!
//! With them, a connection from [`start_server`](crate::start_server) is served by
//! `hyper::server::conn::http1::Builder::new().timer(HyperTimer)
//! .serve_connection(reader.unsplit(writer), service)`; the workspace member
//! `ecosystem/` has the whole server (HTTP/1.1 and HTTP/2 on one port) and the tests
//! (book chapter 15).
//!
//! # The timer's `Send + Sync` sleeps, without `unsafe`
//!
//! hyper requires its sleeps to be `Send + Sync`, while the loop's timers are
//! single-threaded (`Rc`). A [`HyperSleep`] therefore holds only plain data: its
//! deadline, a numeric id and the id of the thread that registered it. The loop-side
//! state (the [`TimerHandle`] and the waker) lives in a
//! thread-local table, keyed by that id, on the loop's thread. Polling registers a
//! loop timer (`call_at`) on first use and refreshes the waker; the timer marks the
//! entry fired and wakes it; dropping the sleep removes the entry and cancels the
//! timer. A sleep moved to another thread (hyper never does, on this loop) only
//! loses its early cancel: its timer fires and finds nothing. No thread, no lock.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future as StdFuture;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use hyper::rt::{ReadBufCursor, Sleep, Timer};

use crate::events::{get_running_loop, TimerHandle};
use crate::streams::StreamPair;

impl hyper::rt::Read for StreamPair {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let max = buf.remaining();
        self.get_mut()
            .reader_mut()
            .poll_take(cx, max, |b| buf.put_slice(b))
            .map(|r| r.map(drop).map_err(Into::into))
    }
}

impl hyper::rt::Write for StreamPair {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.writer().poll_write(cx, buf).map_err(Into::into)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.writer()
            .poll_write_vectored(cx, bufs)
            .map_err(Into::into)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.writer().poll_flush(cx).map_err(Into::into)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.writer().poll_shutdown(cx).map_err(Into::into)
    }
}

/// A `hyper::rt::Executor` that runs every future as a detached task on the running
/// loop ([`create_task`](crate::create_task)); the futures need not be `Send`. Give
/// it to `hyper::server::conn::http2::Builder::new` (and to the HTTP/2 client's
/// handshake). A panic in such a task is reported through the loop's exception
/// handler, like any task's. Outside a running loop the future is dropped (with the
/// task that could not start; `create_task`'s rule).
#[derive(Clone, Copy, Debug, Default)]
pub struct HyperExecutor;

impl<F> hyper::rt::Executor<F> for HyperExecutor
where
    F: StdFuture + 'static,
{
    fn execute(&self, fut: F) {
        drop(crate::create_task(async move {
            fut.await;
        }));
    }
}

/// A `hyper::rt::Timer` on the loop's timers and clock (see the module docs for how
/// its sleeps are `Send + Sync` without `unsafe`). Give it to hyper's builders
/// (`.timer(HyperTimer)`): it drives HTTP/1.1's header-read timeout and HTTP/2's
/// keep-alive pings.
///
/// Its sleeps must be polled on the loop's thread while the loop runs; a sleep
/// polled with no loop running completes at once (with a warning), rather than
/// never.
#[derive(Clone, Copy, Debug, Default)]
pub struct HyperTimer;

impl Timer for HyperTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        let now = self.now();
        self.sleep_until(now.checked_add(duration).unwrap_or(now + FAR))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        Box::pin(HyperSleep::new(deadline))
    }

    /// The loop's time ([`EventLoop::time`](crate::EventLoop::time)), or
    /// `Instant::now()` with no loop running.
    fn now(&self) -> Instant {
        match get_running_loop() {
            Ok(lp) => lp.time(),
            Err(_) => Instant::now(),
        }
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn Sleep>>, new_deadline: Instant) {
        match sleep.as_mut().downcast_mut_pin::<HyperSleep>() {
            Some(s) => s.get_mut().deadline = new_deadline,
            None => *sleep = self.sleep_until(new_deadline),
        }
    }
}

/// A deadline too far to matter, for a `Duration` that overflows an `Instant`.
const FAR: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// One loop timer behind a [`HyperSleep`], on the loop's thread.
struct Entry {
    handle: TimerHandle,
    deadline: Instant,
    waker: Waker,
    fired: bool,
}

/// The loop-side state of this thread's [`HyperSleep`]s, by id.
#[derive(Default)]
struct Registry {
    next: u64,
    entries: HashMap<u64, Entry>,
}

thread_local! {
    static SLEEPS: RefCell<Registry> = RefCell::default();
}

/// The loop timer of sleep `id` fired: mark it and wake its poller.
fn fire(id: u64) {
    let waker = SLEEPS
        .try_with(|r| {
            let mut r = r.try_borrow_mut().ok()?;
            let e = r.entries.get_mut(&id)?;
            e.fired = true;
            Some(e.waker.clone())
        })
        .ok()
        .flatten();
    if let Some(w) = waker {
        w.wake();
    }
}

/// Remove sleep `id`'s entry and cancel its loop timer.
fn unregister(id: u64) {
    let entry = SLEEPS
        .try_with(|r| r.try_borrow_mut().ok()?.entries.remove(&id))
        .ok()
        .flatten();
    if let Some(e) = entry {
        e.handle.cancel();
    }
}

/// The sleep [`HyperTimer`] gives hyper: `Send + Sync`, as hyper requires, because it
/// holds only its deadline and the id of its loop-side entry (see the module docs).
/// Completes once the loop's clock reaches the deadline. Dropping it cancels its
/// loop timer.
#[derive(Debug)]
pub struct HyperSleep {
    deadline: Instant,
    /// The entry's id in the thread-local table, and the thread of that table; `None`
    /// until first polled.
    reg: Option<(u64, ThreadId)>,
}

impl HyperSleep {
    /// A sleep until `deadline` (on the loop's clock).
    pub fn new(deadline: Instant) -> HyperSleep {
        HyperSleep {
            deadline,
            reg: None,
        }
    }

    /// The deadline.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// This thread's entry id, if the sleep was registered on this thread.
    fn local_id(&self) -> Option<u64> {
        match self.reg {
            Some((id, t)) if t == std::thread::current().id() => Some(id),
            _ => None,
        }
    }
}

/// What a poll finds in a registered sleep's entry.
enum State {
    Waiting,
    Fired,
    /// Reset to another deadline, or the entry is gone: register afresh.
    Stale,
}

impl StdFuture for HyperSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let Ok(lp) = get_running_loop() else {
            log::warn!(target: "asyncio", "HyperSleep polled with no running loop: completes at once");
            return Poll::Ready(());
        };
        let deadline = this.deadline;
        if let Some(id) = this.local_id() {
            let state = SLEEPS.with(|r| {
                let mut r = r.borrow_mut();
                match r.entries.get_mut(&id) {
                    Some(e) if e.deadline != deadline => State::Stale,
                    Some(e) if e.fired => State::Fired,
                    Some(e) => {
                        if !e.waker.will_wake(cx.waker()) {
                            e.waker = cx.waker().clone();
                        }
                        State::Waiting
                    }
                    None => State::Stale,
                }
            });
            match state {
                State::Waiting => return Poll::Pending,
                State::Fired => {
                    unregister(id);
                    this.reg = None;
                    return Poll::Ready(());
                }
                State::Stale => unregister(id),
            }
        }
        this.reg = None;
        if lp.time() >= deadline {
            return Poll::Ready(());
        }
        let id = SLEEPS.with(|r| {
            let mut r = r.borrow_mut();
            r.next += 1;
            r.next
        });
        let handle = match lp.call_at(deadline, move || fire(id)) {
            Ok(h) => h,
            // The loop is closed: nothing will wake this sleep, so end it.
            Err(_) => return Poll::Ready(()),
        };
        SLEEPS.with(|r| {
            r.borrow_mut().entries.insert(
                id,
                Entry {
                    handle,
                    deadline,
                    waker: cx.waker().clone(),
                    fired: false,
                },
            )
        });
        this.reg = Some((id, std::thread::current().id()));
        Poll::Pending
    }
}

impl Sleep for HyperSleep {}

impl Drop for HyperSleep {
    fn drop(&mut self) {
        if let Some(id) = self.local_id() {
            unregister(id);
        }
    }
}
