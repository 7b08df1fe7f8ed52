//! `gather` and `shield` (asyncio's `tasks.gather()` and `tasks.shield()`), and the
//! per-child wake-up bookkeeping that [`gather`], [`wait`](crate::wait) and
//! [`as_completed`](crate::as_completed) share.
//!
//! # How a helper waits for many tasks without re-polling all of them
//!
//! Each child task is polled with its own small waker that records the child's index
//! and then wakes the helper's own task. When the helper runs again it looks only at
//! the children that were woken, so `n` children finishing one by one cost `O(n)` in
//! total, not `O(n^2)`.

use std::fmt;
use std::future::Future as StdFuture;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};

use crate::exceptions::{Error, Result};
use crate::tasks::{Task, TaskRef};

type BoxFuture<T> = Pin<Box<dyn StdFuture<Output = T>>>;

// ----- per-child wake-ups ------------------------------------------------------------

#[derive(Default)]
struct Woken {
    /// Indices of the children woken since the parent last looked.
    ready: Vec<usize>,
    /// The waker of the task that polls the helper.
    parent: Option<Waker>,
}

/// Which children of a helper were woken. Wakers are `Send`, hence the mutex; on the
/// loop thread it is never contended.
#[derive(Default)]
struct Shared {
    woken: Mutex<Woken>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Woken> {
        match self.woken.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

struct ChildWaker {
    index: usize,
    shared: Arc<Shared>,
}

impl Wake for ChildWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let parent = {
            let mut w = self.shared.lock();
            w.ready.push(self.index);
            w.parent.take()
        };
        if let Some(p) = parent {
            p.wake();
        }
    }
}

/// One waker per child, and the list of children woken since the last look.
pub(crate) struct ChildWakers {
    shared: Arc<Shared>,
    wakers: Vec<Waker>,
    started: bool,
}

impl ChildWakers {
    pub(crate) fn new(n: usize) -> ChildWakers {
        let shared = Arc::new(Shared::default());
        let wakers = (0..n)
            .map(|index| {
                Waker::from(Arc::new(ChildWaker {
                    index,
                    shared: shared.clone(),
                }))
            })
            .collect();
        ChildWakers {
            shared,
            wakers,
            started: false,
        }
    }

    /// Remember `cx`'s waker as the parent's and return the children to look at: all of
    /// them on the first call, then those woken since the previous call (in wake order,
    /// possibly with repeats).
    pub(crate) fn candidates(&mut self, cx: &Context<'_>) -> Vec<usize> {
        let mut w = self.shared.lock();
        match &w.parent {
            Some(p) if p.will_wake(cx.waker()) => {}
            _ => w.parent = Some(cx.waker().clone()),
        }
        if !self.started {
            self.started = true;
            w.ready.clear();
            return (0..self.wakers.len()).collect();
        }
        std::mem::take(&mut w.ready)
    }

    /// A context whose waker reports child `i`.
    pub(crate) fn context(&self, i: usize) -> Context<'_> {
        Context::from_waker(&self.wakers[i])
    }
}

impl fmt::Debug for ChildWakers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildWakers")
            .field("children", &self.wakers.len())
            .finish()
    }
}

// ----- gather ------------------------------------------------------------------------

/// The children of a gather: futures until a loop runs them, then tasks.
struct Children<T, E> {
    /// Futures not yet made into tasks (the gather was created outside a running loop).
    unspawned: Vec<BoxFuture<Result<T, E>>>,
    /// One task per child; `None` once its output was taken.
    tasks: Vec<Option<Task<Result<T, E>>>>,
    /// The same tasks, type-erased, for cancelling them on drop.
    refs: Vec<TaskRef>,
    outputs: Vec<Option<Result<T, E>>>,
    remaining: usize,
    wakers: Option<ChildWakers>,
    /// The gather returned: dropping it no longer cancels anything.
    finished: bool,
}

impl<T: 'static, E: From<Error> + 'static> Children<T, E> {
    fn new<I, F>(futs: I) -> Children<T, E>
    where
        I: IntoIterator<Item = F>,
        F: StdFuture<Output = Result<T, E>> + 'static,
    {
        let futs: Vec<BoxFuture<Result<T, E>>> = futs
            .into_iter()
            .map(|f| Box::pin(f) as BoxFuture<Result<T, E>>)
            .collect();
        let n = futs.len();
        let mut c = Children {
            unspawned: Vec::new(),
            tasks: Vec::new(),
            refs: Vec::new(),
            outputs: (0..n).map(|_| None).collect(),
            remaining: n,
            wakers: None,
            finished: false,
        };
        // asyncio's gather schedules its children at once; without a running loop
        // (e.g. `lp.run_until_complete(gather(..))`) they start at the first poll.
        if crate::events::get_running_loop().is_ok() {
            c.spawn(futs);
        } else {
            c.unspawned = futs;
        }
        c
    }

    fn spawn(&mut self, futs: Vec<BoxFuture<Result<T, E>>>) {
        self.tasks = futs
            .into_iter()
            .map(|f| Some(crate::tasks::create_task(f)))
            .collect();
        self.refs = self.tasks.iter().flatten().map(Task::task_ref).collect();
    }

    /// Collect the outputs of the children that finished. Returns the first error in
    /// completion order when `fail_fast`, else `Ready(None)` once all are done.
    fn poll_children(&mut self, cx: &mut Context<'_>, fail_fast: bool) -> Poll<Option<E>> {
        if self.finished {
            // Polled again after completion: nothing more to give.
            return Poll::Ready(None);
        }
        if !self.unspawned.is_empty() {
            let futs = std::mem::take(&mut self.unspawned);
            self.spawn(futs);
        }
        let wakers = self
            .wakers
            .get_or_insert_with(|| ChildWakers::new(self.tasks.len()));
        for i in wakers.candidates(cx) {
            let Some(task) = self.tasks[i].as_mut() else {
                continue; // woken twice
            };
            let mut ccx = wakers.context(i);
            let out = match Pin::new(task).poll(&mut ccx) {
                Poll::Pending => continue,
                Poll::Ready(Ok(r)) => r,
                Poll::Ready(Err(e)) => Err(E::from(e)),
            };
            self.tasks[i] = None;
            self.remaining -= 1;
            match out {
                Err(e) if fail_fast => {
                    self.finish();
                    return Poll::Ready(Some(e));
                }
                out => self.outputs[i] = Some(out),
            }
        }
        if self.remaining == 0 {
            self.finish();
            return Poll::Ready(None);
        }
        Poll::Pending
    }

    /// The gather has its answer: the children still running are detached (they keep
    /// running, as in asyncio; a later panic is reported as never retrieved).
    fn finish(&mut self) {
        self.finished = true;
        self.tasks.clear();
        self.refs.clear();
    }
}

impl<T, E> Drop for Children<T, E> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // The gather was cancelled (dropped while pending): cancel every child.
        for (t, r) in self.tasks.iter().zip(&self.refs) {
            if t.is_some() {
                r.cancel();
            }
        }
    }
}

/// The future returned by [`gather`]; resolves to every output in argument order, or
/// to the first error.
pub struct Gather<T, E = Error> {
    children: Children<T, E>,
}

/// The future returned by [`gather_all`]; resolves to every outcome in argument order.
pub struct GatherAll<T, E = Error> {
    children: Children<T, E>,
}

/// Run futures concurrently, each as its own task, and collect their outputs in
/// argument order (asyncio's `gather(*aws)`).
///
/// * Every future becomes a task at once when a loop is running (as asyncio schedules
///   them at once), else at the gather's first poll. So the children run concurrently,
///   and keep running when one of them fails.
/// * Output: `Ok(outputs)` in argument order once all succeed; otherwise the **first
///   error in completion order**, returned as soon as it happens. The other children
///   keep running, detached.
/// * A child task that is cancelled or panics gives `E::from(Error::Cancelled)` or
///   `E::from(Error::Panic(msg))`, like any other error.
/// * Dropping the `Gather` while it is pending (its task cancelled, or a
///   [`wait_for`](crate::wait_for) around it timing out) cancels every child still
///   running: asyncio's "cancelling gather() cancels the children". Once it has
///   returned, dropping it cancels nothing.
/// * No futures: `Ok(vec![])` at once.
///
/// Departures from asyncio: the error type `E` is yours (any `E: From<Error>`); a
/// panic in a child still running after the gather returned is reported as `"Task
/// exception was never retrieved"` instead of being silently marked retrieved.
///
/// ```
/// use std::time::Duration;
/// let (lp, _clock) = asyncio::EventLoop::with_test_clock().unwrap();
/// let slow = |ms: u64| async move {
///     asyncio::sleep(Duration::from_millis(ms)).await;
///     Ok::<u64, asyncio::Error>(ms)
/// };
/// let out = lp.run_until_complete(asyncio::gather([slow(30), slow(10), slow(20)])).unwrap();
/// assert_eq!(out.unwrap(), [30, 10, 20]); // argument order, not completion order
/// ```
pub fn gather<I, F, T, E>(futs: I) -> Gather<T, E>
where
    I: IntoIterator<Item = F>,
    F: StdFuture<Output = Result<T, E>> + 'static,
    T: 'static,
    E: From<Error> + 'static,
{
    Gather {
        children: Children::new(futs),
    }
}

/// [`gather`] that waits for every child and returns every outcome in argument order
/// (asyncio's `gather(*aws, return_exceptions=True)`): errors, cancellations
/// (`E::from(Error::Cancelled)`) and panics (`E::from(Error::Panic(..))`) take their
/// child's place in the vector. Dropping it while pending cancels the children, as for
/// [`gather`].
///
/// ```
/// let lp = asyncio::EventLoop::new().unwrap();
/// type Child = std::pin::Pin<Box<dyn std::future::Future<Output = asyncio::Result<i32>>>>;
/// let children: Vec<Child> = vec![
///     Box::pin(async { Ok(1) }),
///     Box::pin(async { Err(asyncio::Error::value("bad")) }),
/// ];
/// let out = lp.run_until_complete(asyncio::gather_all(children)).unwrap();
/// assert_eq!(out[0].as_ref().unwrap(), &1);
/// assert!(out[1].is_err());
/// ```
pub fn gather_all<I, F, T, E>(futs: I) -> GatherAll<T, E>
where
    I: IntoIterator<Item = F>,
    F: StdFuture<Output = Result<T, E>> + 'static,
    T: 'static,
    E: From<Error> + 'static,
{
    GatherAll {
        children: Children::new(futs),
    }
}

// Outputs are stored, never pinned: moving a gather is fine whatever `T` and `E` are.
impl<T, E> Unpin for Gather<T, E> {}
impl<T, E> Unpin for GatherAll<T, E> {}
impl<T> Unpin for Shield<T> {}

impl<T: 'static, E: From<Error> + 'static> StdFuture for Gather<T, E> {
    type Output = Result<Vec<T>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let c = &mut self.get_mut().children;
        match c.poll_children(cx, true) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(e)) => Poll::Ready(Err(e)),
            Poll::Ready(None) => {
                let mut out = Vec::with_capacity(c.outputs.len());
                for o in c.outputs.drain(..) {
                    match o {
                        Some(Ok(v)) => out.push(v),
                        Some(Err(e)) => return Poll::Ready(Err(e)),
                        None => {
                            return Poll::Ready(Err(E::from(Error::invalid_state(
                                "gather polled after it completed",
                            ))))
                        }
                    }
                }
                Poll::Ready(Ok(out))
            }
        }
    }
}

impl<T: 'static, E: From<Error> + 'static> StdFuture for GatherAll<T, E> {
    type Output = Vec<Result<T, E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let c = &mut self.get_mut().children;
        match c.poll_children(cx, false) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(_) => Poll::Ready(
                c.outputs
                    .drain(..)
                    .map(|o| {
                        o.unwrap_or_else(|| {
                            Err(E::from(Error::invalid_state(
                                "gather_all polled after it completed",
                            )))
                        })
                    })
                    .collect(),
            ),
        }
    }
}

impl<T, E> fmt::Debug for Children<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gather")
            .field("children", &self.outputs.len())
            .field("remaining", &self.remaining)
            .field("finished", &self.finished)
            .finish()
    }
}

impl<T, E> fmt::Debug for Gather<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.children.fmt(f)
    }
}

impl<T, E> fmt::Debug for GatherAll<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.children.fmt(f)
    }
}

// ----- shield ------------------------------------------------------------------------

enum ShieldState<T> {
    /// Created outside a running loop: becomes a task at the first poll.
    Unspawned(BoxFuture<T>),
    Task(Task<T>),
    /// Between the two, or after the output was taken.
    Empty,
}

/// The future returned by [`shield`].
pub struct Shield<T> {
    state: ShieldState<T>,
}

/// Protect `fut` from cancellation (asyncio's `shield()`): `fut` runs as its own task,
/// and dropping the `Shield` (its awaiting task cancelled, a timeout around it) leaves
/// that task running to completion.
///
/// The output is the task's: `Ok(value)`, or `Err(Panic)` if it panicked, or
/// `Err(Cancelled)` if the inner task itself was cancelled. The task is created at once
/// when a loop is running, else at the first poll (a `Shield` made outside a loop and
/// dropped unpolled never runs `fut`).
///
/// In Rust, awaiting a [`Task`] is already shielded: dropping the await never cancels
/// the task (unlike asyncio, where cancelling the awaiter cancels the awaited task). So
/// `shield(fut)` is the same as `create_task(fut)` awaited later; it exists for
/// wrapping plain futures and for readers coming from asyncio. A panic in the inner
/// task after the shield was dropped is reported as `"Task exception was never
/// retrieved"` (asyncio silently marks it retrieved).
///
/// ```
/// use std::time::Duration;
/// let (lp, _clock) = asyncio::EventLoop::with_test_clock().unwrap();
/// let done = std::rc::Rc::new(std::cell::Cell::new(false));
/// let d = done.clone();
/// let r = lp.run_until_complete(async move {
///     let inner = asyncio::shield(async move {
///         asyncio::sleep(Duration::from_secs(2)).await;
///         d.set(true);
///     });
///     let r = asyncio::wait_for(inner, Duration::from_secs(1)).await;
///     asyncio::sleep(Duration::from_secs(5)).await; // the shielded work goes on
///     r
/// }).unwrap();
/// assert!(r.unwrap_err().is_timeout());
/// assert!(done.get());
/// ```
pub fn shield<F>(fut: F) -> Shield<F::Output>
where
    F: StdFuture + 'static,
{
    let state = if crate::events::get_running_loop().is_ok() {
        ShieldState::Task(crate::tasks::create_task(fut))
    } else {
        ShieldState::Unspawned(Box::pin(fut))
    };
    Shield { state }
}

impl<T: 'static> Shield<T> {
    /// The inner task, once it exists.
    pub fn task(&self) -> Option<&Task<T>> {
        match &self.state {
            ShieldState::Task(t) => Some(t),
            _ => None,
        }
    }
}

impl<T: 'static> StdFuture for Shield<T> {
    type Output = Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        let this = self.get_mut();
        if let ShieldState::Unspawned(_) = &this.state {
            if let ShieldState::Unspawned(f) =
                std::mem::replace(&mut this.state, ShieldState::Empty)
            {
                this.state = ShieldState::Task(crate::tasks::create_task(f));
            }
        }
        match &mut this.state {
            ShieldState::Task(t) => {
                let r = std::task::ready!(Pin::new(t).poll(cx));
                this.state = ShieldState::Empty;
                Poll::Ready(r)
            }
            _ => Poll::Ready(Err(Error::invalid_state(
                "shield polled after it completed",
            ))),
        }
    }
}

impl<T> fmt::Debug for Shield<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.state {
            ShieldState::Unspawned(_) => f.write_str("Shield(unspawned)"),
            ShieldState::Task(t) => f.debug_tuple("Shield").field(t).finish(),
            ShieldState::Empty => f.write_str("Shield(done)"),
        }
    }
}
