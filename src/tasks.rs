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
//! Wakers are real [`std::task::Waker`]s, made afresh for each step (a packed waker
//! costs a few shifts; see `waker.rs`), and every one of a task's wakers wakes that
//! task, whichever step made it. Waking on the loop's
//! own thread queues the step with no lock; waking from another thread goes through the
//! loop's thread-safe inbox. Waking a finished task does nothing; waking a task twice
//! before it runs queues one step.
//!
//! [`Future`]: crate::Future

mod gather;
mod gather_tuple;
mod sleep;
mod wait;

pub use gather::{gather, gather_all, shield, Gather, GatherAll, Shield};
pub use gather_tuple::{
    gather_all_tuple, gather_tuple, GatherTuple, GatherTupleAll, GatherTupleFuture, GatherTupleOk,
};
pub use sleep::{sleep, sleep_until, yield_now, Sleep};
pub use wait::{as_completed, wait, AsCompleted, ReturnWhen, Wait};

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

/// Task state bits (one `Cell<u8>` keeps the task cell small).
const SCHEDULED: u8 = 1;
const MUST_CANCEL: u8 = 2;
const DONE: u8 = 4;
const CANCELLED: u8 = 8;
/// Whether the outcome was looked at (else a panic is reported).
const RETRIEVED: u8 = 16;
/// Whether a [`Task`] handle still exists.
const HANDLE_ALIVE: u8 = 32;

/// The part of a task the loop needs without knowing its output type.
///
/// Every field is kept small, since every connection of a server is a task: the name is
/// boxed (most tasks never get one), and the waker is not stored but made per step
/// (see [`TaskHeader::waker`]).
pub(crate) struct TaskHeader {
    pub(crate) id: u64,
    /// The slot in the loop's task slab (`u32::MAX`: none).
    key: u32,
    flags: Cell<u8>,
    /// Boxed `String`, not `String` or `Box<str>`: a thin pointer, 8 bytes.
    #[allow(clippy::box_collection)]
    name: Cell<Option<Box<String>>>,
    lp: Weak<Inner>,
}

impl TaskHeader {
    #[inline]
    fn has(&self, bit: u8) -> bool {
        self.flags.get() & bit != 0
    }

    #[inline]
    fn set(&self, bit: u8) {
        self.flags.set(self.flags.get() | bit);
    }

    #[inline]
    fn clear(&self, bit: u8) {
        self.flags.set(self.flags.get() & !bit);
    }

    /// Mark the task scheduled; returns whether it already was.
    #[inline]
    pub(crate) fn set_scheduled(&self) -> bool {
        let was = self.has(SCHEDULED);
        self.set(SCHEDULED);
        was
    }

    pub(crate) fn name(&self) -> String {
        let n = self.name.take();
        let s = match &n {
            Some(n) => n.to_string(),
            None => format!("Task-{}", self.id),
        };
        self.name.set(n);
        s
    }

    fn set_name(&self, name: String) {
        self.name.set(Some(Box::new(name)));
    }

    /// The waker a step polls the future with: a packed waker (`waker.rs`), made from
    /// the slot and the tag for the price of a few shifts. Where none can be packed
    /// (a slab key beyond 2^24, more than 65,536 live loops, a 32-bit target) an `Arc`
    /// waker is made for the step instead.
    fn waker(&self, lp: &Inner) -> Waker {
        let key = self.key as usize;
        let tag = lp.waker_tag(self.id);
        lp.waker_slot
            .and_then(|slot| crate::waker::packed_waker(slot, key, tag))
            .unwrap_or_else(|| Waker::from(Arc::new(TaskWaker::new(lp, key, tag))))
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

/// The fallback waker of one task (see `waker.rs` for the usual one): finds the task
/// by its slab key and waker tag.
struct TaskWaker {
    loop_id: u64,
    key: usize,
    /// The task's waker tag (`Inner::waker_tag`).
    id: u64,
    remote: Arc<Remote>,
}

impl TaskWaker {
    fn new(lp: &Inner, key: usize, tag: u64) -> TaskWaker {
        TaskWaker {
            loop_id: lp.id,
            key,
            id: tag,
            remote: lp.remote.clone(),
        }
    }
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

/// Where a task is in its life: its future while running, then its outcome.
enum Stage<T> {
    Running(BoxFuture<T>),
    /// A future whose `Err` is the task's error (task-group children).
    RunningTry(BoxFuture<Result<T>>),
    Done(Result<T>),
    /// The outcome was moved out by `.await` / `take_result`.
    Taken,
}

/// Who to tell when the task is done, in registration order.
enum Waiter {
    Wake(Waker),
    Callback(Box<dyn FnOnce(&TaskRef)>),
}

struct TaskCell<T> {
    header: TaskHeader,
    stage: RefCell<Stage<T>>,
    /// Taken out to be used (`Cell`: 8 bytes less than a `RefCell`).
    waiters: Cell<Vec<Waiter>>,
}

// Every connection of a server is a task: its cell (plus the `Rc` counts) stays within
// 120 bytes.
const _: () =
    assert!(cfg!(not(target_pointer_width = "64")) || std::mem::size_of::<TaskCell<()>>() <= 104);

fn report_unretrieved(lp: Option<Rc<Inner>>, name: String, e: &Error) {
    let ctx = ExceptionContext {
        message: "Task exception was never retrieved".into(),
        exception: Some(e.clone()),
        task: Some(name),
        ..Default::default()
    };
    match lp {
        Some(lp) if !lp.is_closed() => lp.call_exception_handler(ctx),
        _ => crate::base_events::default_exception_handler(&ctx),
    }
}

impl<T: 'static> TaskCell<T> {
    /// Replace the stage, dropping the future (if any) outside the borrow, since its
    /// destructors may call back into the task or the loop.
    fn set_stage(&self, new: Stage<T>) -> Stage<T> {
        std::mem::replace(&mut *self.stage.borrow_mut(), new)
    }

    fn finish(self: &Rc<Self>, lp: &Rc<Inner>, result: Result<T>) {
        let h = &self.header;
        h.set(DONE);
        if matches!(result, Err(Error::Cancelled)) {
            h.set(CANCELLED);
        }
        if let Err(e @ Error::Panic(_)) = &result {
            if !h.has(HANDLE_ALIVE) && !h.has(RETRIEVED) {
                h.set(RETRIEVED);
                report_unretrieved(Some(lp.clone()), h.name(), e);
            }
        }
        let old = self.set_stage(Stage::Done(result));
        drop(old);
        let removed = {
            let mut tasks = lp.tasks.borrow_mut();
            let key = h.key as usize;
            match tasks.get(key) {
                Some(t) if t.header().id == h.id => Some(tasks.remove(key)),
                _ => None,
            }
        };
        drop(removed);
        let waiters = self.waiters.take();
        for w in waiters {
            match w {
                Waiter::Wake(w) => w.wake(),
                Waiter::Callback(cb) => {
                    let r = TaskRef { task: self.clone() };
                    lp.call_soon_internal(move || cb(&r));
                }
            }
        }
    }
}

impl<T: 'static> TaskRun for TaskCell<T> {
    fn header(&self) -> &TaskHeader {
        &self.header
    }

    fn step(self: Rc<Self>, lp: &Rc<Inner>) {
        let h = &self.header;
        h.clear(SCHEDULED);
        if h.has(DONE) {
            return; // woken after completion: harmless
        }
        if h.has(MUST_CANCEL) {
            // The drop is this step: destructors see the task as current, as asyncio's
            // `finally:` blocks run inside the step that throws CancelledError.
            let old = self.set_stage(Stage::Taken);
            let prev = lp.current_task.replace(Some(self.clone()));
            let dropped = catch_unwind(AssertUnwindSafe(move || drop(old)));
            *lp.current_task.borrow_mut() = prev;
            if let Err(p) = dropped {
                lp.call_exception_handler(
                    ExceptionContext::new("Exception while dropping a cancelled task")
                        .with_exception(Error::from_panic(p)),
                );
            }
            self.finish(lp, Err(Error::Cancelled));
            return;
        }
        let prev = lp.current_task.replace(Some(self.clone()));
        let waker = h.waker(lp);
        let polled = {
            // A full cooperative budget for this step (`coop.rs`), dropped with it.
            let _budget = crate::coop::StepBudget::start();
            let mut stage = self.stage.borrow_mut();
            match &mut *stage {
                Stage::Running(fut) => {
                    let mut cx = Context::from_waker(&waker);
                    catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(&mut cx).map(Ok)))
                }
                Stage::RunningTry(fut) => {
                    let mut cx = Context::from_waker(&waker);
                    catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(&mut cx)))
                }
                _ => Ok(Poll::Pending),
            }
        };
        *lp.current_task.borrow_mut() = prev;
        let outcome = match polled {
            Ok(Poll::Pending) => return,
            Ok(Poll::Ready(v)) if !h.has(MUST_CANCEL) => v,
            // cancel() was called during the last step: asyncio cancels the task even
            // though the coroutine returned.
            Ok(Poll::Ready(_)) => Err(Error::Cancelled),
            Err(p) => Err(Error::from_panic(p)),
        };
        let old = self.set_stage(Stage::Taken);
        drop(old);
        self.finish(lp, outcome);
    }

    fn destroy_pending(&self, lp: &Rc<Inner>) {
        let h = &self.header;
        if h.has(DONE) {
            return;
        }
        h.set(DONE | CANCELLED);
        let old = self.set_stage(Stage::Done(Err(Error::Cancelled)));
        let _ = catch_unwind(AssertUnwindSafe(move || drop(old)));
        let mut ctx = ExceptionContext::new("Task was destroyed but it is pending!");
        ctx.task = Some(h.name());
        lp.call_exception_handler(ctx);
        drop(self.waiters.take());
    }

    fn cancel_dyn(self: Rc<Self>) -> bool {
        let h = &self.header;
        if h.has(DONE) {
            return false;
        }
        h.set(MUST_CANCEL);
        if let Some(lp) = h.lp.upgrade() {
            lp.schedule_task(self.clone());
        }
        true
    }

    fn add_done_dyn(self: Rc<Self>, f: Box<dyn FnOnce(&TaskRef)>) {
        if self.header.has(DONE) {
            if let Some(lp) = self.header.lp.upgrade() {
                let r = TaskRef { task: self.clone() };
                lp.call_soon_internal(move || f(&r));
            }
        } else {
            let mut waiters = self.waiters.take();
            waiters.push(Waiter::Callback(f));
            self.waiters.set(waiters);
        }
    }

    fn poll_done_dyn(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.header.has(DONE) {
            return Poll::Ready(());
        }
        let mut waiters = self.waiters.take();
        let known = waiters
            .iter()
            .any(|w| matches!(w, Waiter::Wake(w) if w.will_wake(cx.waker())));
        if !known {
            waiters.push(Waiter::Wake(cx.waker().clone()));
        }
        self.waiters.set(waiters);
        Poll::Pending
    }

    fn failed_dyn(&self) -> bool {
        matches!(&*self.stage.borrow(), Stage::Done(Err(e)) if !e.is_cancelled())
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
        if self.inner.is_closed() {
            return Task::failed(Some(self), Error::runtime("Event loop is closed"));
        }
        self.spawn_stage(Stage::Running(Box::pin(fut)), self.inner.eager_tasks.get())
    }

    /// Create a task whose first step runs now, inside this call, when the loop is
    /// running (asyncio 3.12's eager tasks: `create_task(coro, eager_start=True)` in
    /// 3.14, or any `create_task` under `eager_task_factory`). If that step completes,
    /// the task is done before this returns and never touches the ready queue; if it
    /// waits, the task goes on like any other. When the loop is not running, the task
    /// is scheduled as [`EventLoop::create_task`] does.
    ///
    /// The step runs with the new task as [`current_task`], then the caller's task is
    /// current again. A panic in it fails the new task, not the caller. Eager start
    /// saves a trip through the ready queue (a cache hit answered at once, say) but
    /// changes the order: the task's first step runs before callbacks already queued.
    ///
    /// ```
    /// asyncio::run(async {
    ///     let lp = asyncio::get_running_loop().unwrap();
    ///     let t = lp.create_eager_task(async { 7 });
    ///     assert!(t.done(), "finished inside create_eager_task");
    ///     assert_eq!(t.await.unwrap(), 7);
    /// }).unwrap();
    /// ```
    pub fn create_eager_task<F>(&self, fut: F) -> Task<F::Output>
    where
        F: StdFuture + 'static,
    {
        if self.inner.is_closed() {
            return Task::failed(Some(self), Error::runtime("Event loop is closed"));
        }
        self.spawn_stage(Stage::Running(Box::pin(fut)), true)
    }

    /// Choose how [`EventLoop::create_task`] (and [`create_task`]) start tasks
    /// (asyncio's `set_task_factory`): [`TaskFactory::Eager`] is asyncio 3.12's
    /// `eager_task_factory` (every task starts as [`EventLoop::create_eager_task`]
    /// does); [`TaskFactory::Default`] (asyncio's `set_task_factory(None)`) queues the
    /// first step.
    pub fn set_task_factory(&self, factory: TaskFactory) {
        self.inner
            .eager_tasks
            .set(matches!(factory, TaskFactory::Eager));
    }

    /// The task factory in use (asyncio's `get_task_factory()`).
    pub fn get_task_factory(&self) -> TaskFactory {
        if self.inner.eager_tasks.get() {
            TaskFactory::Eager
        } else {
            TaskFactory::Default
        }
    }

    /// [`EventLoop::create_task`] for a future whose `Err` becomes the task's error
    /// (awaiting the task gives it back as is): task-group children are `Task<T>`s.
    pub(crate) fn create_task_try<F, T>(&self, fut: F) -> Task<T>
    where
        F: StdFuture<Output = Result<T>> + 'static,
        T: 'static,
    {
        if self.inner.is_closed() {
            return Task::failed(Some(self), Error::runtime("Event loop is closed"));
        }
        self.spawn_stage(
            Stage::RunningTry(Box::pin(fut)),
            self.inner.eager_tasks.get(),
        )
    }

    fn spawn_stage<T: 'static>(&self, stage: Stage<T>, eager: bool) -> Task<T> {
        let inner = &self.inner;
        let id = inner.task_counter.get() + 1;
        inner.task_counter.set(id);
        let mut tasks = inner.tasks.borrow_mut();
        let entry = tasks.vacant_entry();
        let key = entry.key();
        let Ok(key32) = u32::try_from(key) else {
            drop(tasks);
            return Task::failed(Some(self), Error::runtime("too many tasks"));
        };
        let cell = Rc::new(TaskCell {
            header: TaskHeader {
                id,
                key: key32,
                flags: Cell::new(SCHEDULED | HANDLE_ALIVE),
                name: Cell::new(None),
                lp: Rc::downgrade(inner),
            },
            stage: RefCell::new(stage),
            waiters: Cell::new(Vec::new()),
        });
        entry.insert(cell.clone());
        drop(tasks);
        // Eager start needs the loop running here: the step may wake or create tasks
        // and touch I/O as any step does.
        let eager = eager && inner.running.get();
        if inner.is_debug() {
            let how = if eager { "runs now, eagerly" } else { "queued" };
            log::trace!(target: "asyncio", "    create Task-{id} (first step {how})");
        }
        if eager {
            cell.clone().step(inner);
        } else {
            inner.push_ready(Ready::Task(cell.clone()));
        }
        Task { cell }
    }
}

/// How a loop starts the tasks it creates: [`EventLoop::set_task_factory`] (asyncio's
/// task factories, of which the crate offers the two asyncio ships).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TaskFactory {
    /// The first step is queued and runs on a later iteration (asyncio's default).
    #[default]
    Default,
    /// The first step runs inside `create_task` when the loop is running (asyncio
    /// 3.12's `eager_task_factory`); see [`EventLoop::create_eager_task`].
    Eager,
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
                key: u32::MAX,
                flags: Cell::new(DONE | HANDLE_ALIVE),
                name: Cell::new(Some(Box::new("Task-failed".into()))),
                lp: lp.map(|l| Rc::downgrade(&l.inner)).unwrap_or_default(),
            },
            stage: RefCell::new(Stage::Done(Err(err))),
            waiters: Cell::new(Vec::new()),
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
        self.cell.header.has(CANCELLED)
    }

    /// Whether the task is done (completed, panicked or cancelled).
    pub fn done(&self) -> bool {
        self.cell.header.has(DONE)
    }

    /// The task's name: `Task-N` unless set (asyncio's `get_name()`).
    pub fn name(&self) -> String {
        self.cell.header.name()
    }

    /// Rename the task (asyncio's `set_name()`).
    pub fn set_name(&self, name: impl Into<String>) {
        self.cell.header.set_name(name.into());
    }

    /// Count the outcome as looked at, so a panic is never reported as "never
    /// retrieved" (for owners that collect errors themselves, like a task group).
    pub(crate) fn mark_retrieved(&self) {
        self.cell.header.set(RETRIEVED);
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
        self.cell.header.set(RETRIEVED);
        match &*self.cell.stage.borrow() {
            Stage::Done(r) => r.clone(),
            _ => Err(Error::invalid_state("the task's result was already taken")),
        }
    }

    /// Move the outcome out (what `.await` does), or `InvalidStateError` if pending or
    /// already taken.
    pub fn take_result(&self) -> Result<T> {
        if !self.done() {
            return Err(Error::invalid_state("Result is not set."));
        }
        self.cell.header.set(RETRIEVED);
        match self.cell.set_stage(Stage::Taken) {
            Stage::Done(r) => r,
            _ => Err(Error::invalid_state("the task's result was already taken")),
        }
    }

    /// The task's error (asyncio's `exception()`): `Ok(None)` if it completed,
    /// `Ok(Some(Panic))` if it panicked, `Err(Cancelled)` if cancelled, `Err(InvalidState)`
    /// while pending.
    pub fn exception(&self) -> Result<Option<Error>> {
        if !self.done() {
            return Err(Error::invalid_state("Exception is not set."));
        }
        self.cell.header.set(RETRIEVED);
        match &*self.cell.stage.borrow() {
            Stage::Done(Err(Error::Cancelled)) => Err(Error::Cancelled),
            Stage::Done(Err(e)) => Ok(Some(e.clone())),
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
        let h = &self.cell.header;
        h.clear(HANDLE_ALIVE);
        if h.has(DONE) && !h.has(RETRIEVED) {
            if let Stage::Done(Err(e @ Error::Panic(_))) = &*self.cell.stage.borrow() {
                report_unretrieved(h.lp.upgrade(), h.name(), e);
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
    let state = if h.has(CANCELLED) {
        "cancelled"
    } else if h.has(DONE) {
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
        self.task.header().set_name(name.into());
    }

    /// Whether the task is done.
    pub fn done(&self) -> bool {
        self.task.header().has(DONE)
    }

    /// Whether the task ended by cancellation.
    pub fn cancelled(&self) -> bool {
        self.task.header().has(CANCELLED)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A task whose slab key is too large for a packed waker (or whose loop has no
    /// registry slot) is polled with an `Arc` waker made for the step; waking it from
    /// another thread must still reach its loop, with its key and waker tag.
    #[test]
    fn a_key_too_large_to_pack_gets_an_arc_waker_that_reaches_the_loop() {
        let lp = EventLoop::new().unwrap();
        let key = 1usize << 24;
        assert!(
            crate::waker::packed_waker(0, key, 1).is_none(),
            "does not pack"
        );
        let h = TaskHeader {
            id: 7,
            key: key as u32,
            flags: Cell::new(0),
            name: Cell::new(None),
            lp: Rc::downgrade(&lp.inner),
        };
        let waker = h.waker(&lp.inner);
        let other = waker.clone();
        // Miri gives every use of a vtable its own address, so `will_wake` (which
        // compares vtable pointers) cannot hold there.
        if !cfg!(miri) {
            assert!(waker.will_wake(&other), "clones of one Arc waker");
        }
        std::thread::spawn(move || other.wake()).join().unwrap();
        assert_eq!(
            lp.inner.remote.queued_wakes(),
            [(key, lp.inner.waker_tag(7))],
            "the wake went to the loop's inbox"
        );
        lp.close().unwrap();
    }
}
