//! Tasks: Rust `async` code driven by the loop (asyncio's `tasks.py`).
//!
//! [`EventLoop::create_task`] wraps a Rust future in a [`Task`] and schedules its first
//! step with `call_soon`. A step is asyncio's `Task.__step`: poll the future once. If it
//! returns `Pending`, it has stored the task's [`Waker`] somewhere (in a [`Future`],
//! a timer, an I/O registration); waking it queues the next step at the back of the
//! ready queue, so the task resumes on a later iteration, as asyncio's `__wakeup` does.
//!
//! Ownership: the loop owns every task until it finishes. Dropping a [`Task`] handle
//! never cancels or loses the task (asyncio's loop keeps only weak references, so
//! Python tasks can be garbage-collected mid-flight; here they cannot).
//!
//! Cancellation is drop: [`Task::cancel`] asks for the task's future to be dropped at
//! its next step, and whoever awaits the task gets [`Error::Cancelled`]. The future
//! observes cancellation through its destructors (Rust has no way to throw an
//! exception into a suspended `async` block); a task cancelled before its first step
//! never runs its body at all.
//!
//! Wakers are real [`std::task::Waker`]s, created once per task. Waking on the loop's
//! own thread queues the step with no lock; waking from another thread goes through the
//! loop's thread-safe inbox. Waking a finished task does nothing; waking a task twice
//! before it runs queues one step.
//!
//! [`Future`]: crate::Future

mod gather;
mod sleep;
mod wait;

pub use sleep::{sleep, sleep_until, yield_now, Sleep};
// task helpers: gather / shield / wait / as_completed re-exports go here

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future as StdFuture;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use crate::base_events::{EventLoop, Inner, Ready, Remote, RemoteItem};
use crate::events::{ExceptionContext, RUNNING};
use crate::exceptions::{Error, Result};

/// The part of a task the loop needs without knowing its output type.
pub(crate) struct TaskHeader {
    pub(crate) id: u64,
    key: usize,
    pub(crate) scheduled: Cell<bool>,
    must_cancel: Cell<bool>,
    done: Cell<bool>,
    cancelled: Cell<bool>,
    name: RefCell<Option<String>>,
    waker: Waker,
    lp: Weak<Inner>,
}

impl TaskHeader {
    pub(crate) fn name(&self) -> String {
        match &*self.name.borrow() {
            Some(n) => n.clone(),
            None => format!("Task-{}", self.id),
        }
    }
}

/// A task as the loop sees it.
pub(crate) trait TaskRun {
    fn header(&self) -> &TaskHeader;
    /// Run one step (asyncio's `__step`).
    fn step(self: Rc<Self>, lp: &Rc<Inner>);
    /// The loop is closing with this task still pending: drop its future and report
    /// `"Task was destroyed but it is pending!"`.
    fn destroy_pending(&self, lp: &Rc<Inner>);
    /// Ask for cancellation (see [`Task::cancel`]).
    fn cancel_dyn(self: Rc<Self>) -> bool;
    /// Add a done callback (see [`Task::add_done_callback`]).
    fn add_done_dyn(self: Rc<Self>, f: Box<dyn FnOnce(&TaskRef)>);
    /// Wake `waker` when the task is done.
    fn poll_done_dyn(&self, cx: &mut Context<'_>) -> Poll<()>;
    /// Whether the task finished with an error (a panic), not counting cancellation.
    fn failed_dyn(&self) -> bool;
}

/// The waker of one task: finds the task by its slab key and id.
struct TaskWaker {
    loop_id: u64,
    key: usize,
    id: u64,
    remote: Arc<Remote>,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // On the loop's own thread, while it runs: straight into the ready queue.
        let local = RUNNING
            .try_with(|r| match &*r.borrow() {
                Some(lp) if lp.id == self.loop_id => {
                    lp.wake_task(self.key, self.id);
                    true
                }
                _ => false,
            })
            .unwrap_or(false);
        if !local {
            // Another thread (or the loop is not running): the thread-safe inbox.
            self.remote.push(RemoteItem::Wake {
                key: self.key,
                id: self.id,
            });
        }
    }
}

type BoxFuture<T> = Pin<Box<dyn StdFuture<Output = T>>>;

struct TaskCell<T> {
    header: TaskHeader,
    future: RefCell<Option<BoxFuture<T>>>,
    result: RefCell<Option<Result<T>>>,
    /// Whether the outcome was looked at (else a panic is reported).
    retrieved: Cell<bool>,
    /// Whether a [`Task`] handle still exists.
    handle_alive: Cell<bool>,
    waiters: RefCell<Vec<Waker>>,
    done_callbacks: RefCell<Vec<Box<dyn FnOnce(&TaskRef)>>>,
}

fn report_unretrieved(lp: Option<Rc<Inner>>, name: String, e: &Error) {
    let ctx = ExceptionContext {
        message: "Task exception was never retrieved".into(),
        exception: Some(e.clone()),
        task: Some(name),
        ..Default::default()
    };
    match lp {
        Some(lp) if !lp.is_closed() => lp.call_exception_handler(ctx),
        _ => log::error!(target: "asyncio", "{}", ctx.render()),
    }
}

impl<T: 'static> TaskCell<T> {
    fn finish(self: &Rc<Self>, lp: &Rc<Inner>, result: Result<T>) {
        let h = &self.header;
        h.done.set(true);
        if matches!(result, Err(Error::Cancelled)) {
            h.cancelled.set(true);
        }
        if let Err(e @ Error::Panic(_)) = &result {
            if !self.handle_alive.get() && !self.retrieved.get() {
                self.retrieved.set(true);
                report_unretrieved(Some(lp.clone()), h.name(), e);
            }
        }
        *self.result.borrow_mut() = Some(result);
        let removed = {
            let mut tasks = lp.tasks.borrow_mut();
            match tasks.get(h.key) {
                Some(t) if t.header().id == h.id => Some(tasks.remove(h.key)),
                _ => None,
            }
        };
        drop(removed);
        for w in std::mem::take(&mut *self.waiters.borrow_mut()) {
            w.wake();
        }
        let callbacks = std::mem::take(&mut *self.done_callbacks.borrow_mut());
        for cb in callbacks {
            let r = TaskRef { task: self.clone() };
            lp.call_soon_internal(move || cb(&r));
        }
    }
}

impl<T: 'static> TaskRun for TaskCell<T> {
    fn header(&self) -> &TaskHeader {
        &self.header
    }

    fn step(self: Rc<Self>, lp: &Rc<Inner>) {
        let h = &self.header;
        h.scheduled.set(false);
        if h.done.get() {
            return; // woken after completion: harmless
        }
        if h.must_cancel.get() {
            let fut = self.future.borrow_mut().take();
            if let Err(p) = catch_unwind(AssertUnwindSafe(move || drop(fut))) {
                lp.call_exception_handler(
                    ExceptionContext::new("Exception while dropping a cancelled task")
                        .with_exception(Error::from_panic(p)),
                );
            }
            self.finish(lp, Err(Error::Cancelled));
            return;
        }
        let prev = lp.current_task.replace(Some(self.clone()));
        let polled = {
            let mut slot = self.future.borrow_mut();
            match slot.as_mut() {
                Some(fut) => {
                    let mut cx = Context::from_waker(&h.waker);
                    catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(&mut cx)))
                }
                None => Ok(Poll::Pending),
            }
        };
        *lp.current_task.borrow_mut() = prev;
        let outcome = match polled {
            Ok(Poll::Pending) => return,
            Ok(Poll::Ready(v)) if !h.must_cancel.get() => Ok(v),
            // cancel() was called during the last step: asyncio cancels the task even
            // though the coroutine returned.
            Ok(Poll::Ready(_)) => Err(Error::Cancelled),
            Err(p) => Err(Error::from_panic(p)),
        };
        let fut = self.future.borrow_mut().take();
        drop(fut);
        self.finish(lp, outcome);
    }

    fn destroy_pending(&self, lp: &Rc<Inner>) {
        if self.header.done.get() {
            return;
        }
        self.header.done.set(true);
        self.header.cancelled.set(true);
        let fut = self.future.borrow_mut().take();
        let _ = catch_unwind(AssertUnwindSafe(move || drop(fut)));
        *self.result.borrow_mut() = Some(Err(Error::Cancelled));
        let mut ctx = ExceptionContext::new("Task was destroyed but it is pending!");
        ctx.task = Some(self.header.name());
        lp.call_exception_handler(ctx);
        self.waiters.borrow_mut().clear();
        self.done_callbacks.borrow_mut().clear();
    }

    fn cancel_dyn(self: Rc<Self>) -> bool {
        let h = &self.header;
        if h.done.get() {
            return false;
        }
        h.must_cancel.set(true);
        if let Some(lp) = h.lp.upgrade() {
            lp.schedule_task(self.clone());
        }
        true
    }

    fn add_done_dyn(self: Rc<Self>, f: Box<dyn FnOnce(&TaskRef)>) {
        if self.header.done.get() {
            if let Some(lp) = self.header.lp.upgrade() {
                let r = TaskRef { task: self.clone() };
                lp.call_soon_internal(move || f(&r));
            }
        } else {
            self.done_callbacks.borrow_mut().push(f);
        }
    }

    fn poll_done_dyn(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.header.done.get() {
            return Poll::Ready(());
        }
        let mut w = self.waiters.borrow_mut();
        if !w.iter().any(|x| x.will_wake(cx.waker())) {
            w.push(cx.waker().clone());
        }
        Poll::Pending
    }

    fn failed_dyn(&self) -> bool {
        matches!(&*self.result.borrow(), Some(Err(e)) if !e.is_cancelled())
    }
}

/// A scheduled coroutine (asyncio's `Task`): the handle to Rust future running on the
/// loop, returned by [`EventLoop::create_task`] and [`create_task`].
///
/// Awaiting a `Task<T>` gives `Ok(T)` when the future completed, `Err(Cancelled)` if
/// the task was cancelled, `Err(Panic)` if it panicked. Awaiting moves the output out;
/// [`Task::result`] clones it instead. Dropping the handle detaches the task: it runs
/// to completion anyway, and a panic nobody retrieved is reported through the loop's
/// exception handler as `"Task exception was never retrieved"`.
///
/// Tasks run only while the loop runs (`run_until_complete`, `run_forever`, [`crate::run`]).
pub struct Task<T> {
    cell: Rc<TaskCell<T>>,
}

/// A type-erased handle to a task, for [`current_task`], [`all_tasks`] and done
/// callbacks: name, state and cancellation, but not the output.
#[derive(Clone)]
pub struct TaskRef {
    task: Rc<dyn TaskRun>,
}

impl EventLoop {
    /// Schedule `fut` as a task (asyncio's `loop.create_task()`); its first step runs on
    /// the next iteration, after the callbacks already queued.
    ///
    /// No `Send` bound: tasks never leave the loop's thread. On a closed loop the task
    /// is returned already failed with `"Event loop is closed"` and `fut` is dropped.
    pub fn create_task<F>(&self, fut: F) -> Task<F::Output>
    where
        F: StdFuture + 'static,
    {
        let inner = &self.inner;
        if inner.is_closed() {
            return Task::failed(Some(self), Error::runtime("Event loop is closed"));
        }
        let id = inner.task_counter.get() + 1;
        inner.task_counter.set(id);
        let mut tasks = inner.tasks.borrow_mut();
        let entry = tasks.vacant_entry();
        let key = entry.key();
        let waker = Waker::from(Arc::new(TaskWaker {
            loop_id: inner.id,
            key,
            id,
            remote: inner.remote.clone(),
        }));
        let cell = Rc::new(TaskCell {
            header: TaskHeader {
                id,
                key,
                scheduled: Cell::new(true),
                must_cancel: Cell::new(false),
                done: Cell::new(false),
                cancelled: Cell::new(false),
                name: RefCell::new(None),
                waker,
                lp: Rc::downgrade(inner),
            },
            future: RefCell::new(Some(Box::pin(fut))),
            result: RefCell::new(None),
            retrieved: Cell::new(false),
            handle_alive: Cell::new(true),
            waiters: RefCell::new(Vec::new()),
            done_callbacks: RefCell::new(Vec::new()),
        });
        entry.insert(cell.clone());
        drop(tasks);
        inner.push_ready(Ready::Task(cell.clone()));
        Task { cell }
    }
}

/// Schedule `fut` on the running loop (asyncio's `asyncio.create_task()`).
///
/// Outside a running loop nothing is scheduled: the task comes back already failed with
/// `"no running event loop"`, which awaiting it reports.
pub fn create_task<F>(fut: F) -> Task<F::Output>
where
    F: StdFuture + 'static,
{
    match crate::events::get_running_loop() {
        Ok(lp) => lp.create_task(fut),
        Err(e) => Task::failed(None, e),
    }
}

/// The task whose step is running now (asyncio's `current_task()`); `None` in a plain
/// callback or outside a loop.
pub fn current_task() -> Option<TaskRef> {
    crate::events::with_running(|lp| lp.current_task.borrow().clone())
        .flatten()
        .map(|task| TaskRef { task })
}

/// The running loop's unfinished tasks (asyncio's `all_tasks()`), in creation order
/// modulo slot reuse; empty outside a loop.
pub fn all_tasks() -> Vec<TaskRef> {
    crate::events::with_running(|lp| {
        lp.tasks
            .borrow()
            .iter()
            .map(|(_, t)| TaskRef { task: t.clone() })
            .collect()
    })
    .unwrap_or_default()
}

impl<T: 'static> Task<T> {
    /// A task that is already done with `err` (never scheduled).
    pub(crate) fn failed(lp: Option<&EventLoop>, err: Error) -> Task<T> {
        let cell = Rc::new(TaskCell {
            header: TaskHeader {
                id: 0,
                key: usize::MAX,
                scheduled: Cell::new(false),
                must_cancel: Cell::new(false),
                done: Cell::new(true),
                cancelled: Cell::new(false),
                name: RefCell::new(Some("Task-failed".into())),
                waker: Waker::noop().clone(),
                lp: lp.map(|l| Rc::downgrade(&l.inner)).unwrap_or_default(),
            },
            future: RefCell::new(None),
            result: RefCell::new(Some(Err(err))),
            retrieved: Cell::new(false),
            handle_alive: Cell::new(true),
            waiters: RefCell::new(Vec::new()),
            done_callbacks: RefCell::new(Vec::new()),
        });
        Task { cell }
    }

    /// Ask for the task to be cancelled (asyncio's `cancel()`). Returns `false` if it is
    /// already done. Otherwise its future is dropped at its next step (queued now), and
    /// awaiting the task gives `Error::Cancelled`. A task cancelled before its first
    /// step never runs its body.
    pub fn cancel(&self) -> bool {
        self.cell.clone().cancel_dyn()
    }

    /// Whether the task ended by cancellation.
    pub fn cancelled(&self) -> bool {
        self.cell.header.cancelled.get()
    }

    /// Whether the task is done (completed, panicked or cancelled).
    pub fn done(&self) -> bool {
        self.cell.header.done.get()
    }

    /// The task's name: `Task-N` unless set (asyncio's `get_name()`).
    pub fn name(&self) -> String {
        self.cell.header.name()
    }

    /// Rename the task (asyncio's `set_name()`).
    pub fn set_name(&self, name: impl Into<String>) {
        *self.cell.header.name.borrow_mut() = Some(name.into());
    }

    /// A type-erased handle to this task.
    pub fn task_ref(&self) -> TaskRef {
        TaskRef {
            task: self.cell.clone(),
        }
    }

    /// A clone of the outcome (asyncio's `result()`): `InvalidStateError("Result is not
    /// set.")` while pending, `Err(Cancelled)` if cancelled, the panic as `Err(Panic)`,
    /// and `InvalidStateError` if an `.await` already moved the output out.
    pub fn result(&self) -> Result<T>
    where
        T: Clone,
    {
        if !self.done() {
            return Err(Error::invalid_state("Result is not set."));
        }
        self.cell.retrieved.set(true);
        match &*self.cell.result.borrow() {
            Some(r) => r.clone(),
            None => Err(Error::invalid_state("the task's result was already taken")),
        }
    }

    /// Move the outcome out (what `.await` does), or `InvalidStateError` if pending or
    /// already taken.
    pub fn take_result(&self) -> Result<T> {
        if !self.done() {
            return Err(Error::invalid_state("Result is not set."));
        }
        self.cell.retrieved.set(true);
        self.cell
            .result
            .borrow_mut()
            .take()
            .unwrap_or_else(|| Err(Error::invalid_state("the task's result was already taken")))
    }

    /// The task's error (asyncio's `exception()`): `Ok(None)` if it completed,
    /// `Ok(Some(Panic))` if it panicked, `Err(Cancelled)` if cancelled, `Err(InvalidState)`
    /// while pending.
    pub fn exception(&self) -> Result<Option<Error>> {
        if !self.done() {
            return Err(Error::invalid_state("Exception is not set."));
        }
        self.cell.retrieved.set(true);
        match &*self.cell.result.borrow() {
            Some(Err(Error::Cancelled)) => Err(Error::Cancelled),
            Some(Err(e)) => Ok(Some(e.clone())),
            _ => Ok(None),
        }
    }

    /// Call `f` once the task is done, always through `call_soon` (asyncio's
    /// `add_done_callback()`).
    pub fn add_done_callback(&self, f: impl FnOnce(&TaskRef) + 'static) {
        self.cell.clone().add_done_dyn(Box::new(f));
    }
}

impl<T: 'static> StdFuture for Task<T> {
    type Output = Result<T>;

    /// Pending until the task is done, then its outcome (moved out). Cancel-safe:
    /// dropping the await does not affect the task.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        match self.cell.poll_done_dyn(cx) {
            Poll::Ready(()) => Poll::Ready(self.take_result()),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        let cell = &self.cell;
        cell.handle_alive.set(false);
        if cell.header.done.get() && !cell.retrieved.get() {
            if let Some(Err(e @ Error::Panic(_))) = &*cell.result.borrow() {
                report_unretrieved(cell.header.lp.upgrade(), cell.header.name(), e);
            }
        }
    }
}

impl<T> fmt::Debug for Task<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        describe(&self.cell.header, f)
    }
}

fn describe(h: &TaskHeader, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let state = if h.cancelled.get() {
        "cancelled"
    } else if h.done.get() {
        "finished"
    } else {
        "pending"
    };
    write!(f, "<Task {state} name='{}'>", h.name())
}

impl TaskRef {
    pub(crate) fn from_rc(task: Rc<dyn TaskRun>) -> TaskRef {
        TaskRef { task }
    }

    /// The task's name (`Task-N` unless set).
    pub fn name(&self) -> String {
        self.task.header().name()
    }

    /// Rename the task.
    pub fn set_name(&self, name: impl Into<String>) {
        *self.task.header().name.borrow_mut() = Some(name.into());
    }

    /// Whether the task is done.
    pub fn done(&self) -> bool {
        self.task.header().done.get()
    }

    /// Whether the task ended by cancellation.
    pub fn cancelled(&self) -> bool {
        self.task.header().cancelled.get()
    }

    /// Whether the task ended with an error (a panic), not counting cancellation.
    pub fn failed(&self) -> bool {
        self.task.failed_dyn()
    }

    /// Ask for cancellation; see [`Task::cancel`].
    pub fn cancel(&self) -> bool {
        self.task.clone().cancel_dyn()
    }

    /// Call `f` once the task is done (through `call_soon`).
    pub fn add_done_callback(&self, f: impl FnOnce(&TaskRef) + 'static) {
        self.task.clone().add_done_dyn(Box::new(f));
    }

    /// Wait until the task is done without taking its output.
    pub fn poll_done(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.task.poll_done_dyn(cx)
    }
}

impl PartialEq for TaskRef {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.task, &other.task)
    }
}
impl Eq for TaskRef {}

impl fmt::Debug for TaskRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        describe(self.task.header(), f)
    }
}
