//! `TaskGroup` (asyncio's `taskgroups.py`, Python 3.11): structured concurrency.
//!
//! A task group owns the tasks created through it. The first child that fails (returns
//! `Err` or panics; being cancelled is not failing) cancels every other child, and the
//! group refuses new tasks from then on. [`TaskGroup::wait`] waits for every child and
//! reports all the failures at once as [`Error::Group`] (asyncio's `ExceptionGroup`).
//!
//! asyncio writes `async with TaskGroup() as tg: tg.create_task(...)`, and the `async
//! with` block cannot end before the children have. Rust has no async destructors, so
//! the end of the block is an explicit `tg.wait().await`, and dropping a group that was
//! not waited for **cancels** the children still running: no child outlives its group
//! unnoticed.
//!
//! ```
//! use std::time::Duration;
//! use asyncio::{Error, TaskGroup};
//!
//! let (lp, _clock) = asyncio::EventLoop::with_test_clock().unwrap();
//! let r = lp.run_until_complete(async {
//!     let tg = TaskGroup::new()?;
//!     let a = tg.create_task(async {
//!         asyncio::sleep(Duration::from_secs(1)).await;
//!         Ok(1)
//!     });
//!     let b = tg.create_task(async { Ok(2) });
//!     tg.wait().await?;
//!     Ok::<_, Error>(a.await? + b.await?)
//! }).unwrap();
//! assert_eq!(r.unwrap(), 3);
//! ```

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future as StdFuture;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use slab::Slab;

use crate::base_events::EventLoop;
use crate::events::ExceptionContext;
use crate::exceptions::{Error, Result};
use crate::tasks::{Task, TaskRef};

/// What a group and its handles share with its children.
struct GroupState {
    /// The children still running (`None` while a child is being created).
    children: RefCell<Slab<Option<TaskRef>>>,
    /// Failures in the order they happened.
    errors: RefCell<Vec<Error>>,
    /// A child failed: the others were cancelled and no new task is accepted.
    aborting: Cell<bool>,
    /// The group was waited for or dropped: no new task is accepted.
    finished: Cell<bool>,
    /// The task in [`TaskGroup::wait`].
    waiter: RefCell<Option<Waker>>,
}

impl GroupState {
    /// Cancel every child except the one in slot `except`.
    fn cancel_children(&self, except: Option<usize>) {
        let to_cancel: Vec<TaskRef> = self
            .children
            .borrow()
            .iter()
            .filter(|(k, _)| Some(*k) != except)
            .filter_map(|(_, t)| t.clone())
            .collect();
        for t in to_cancel {
            t.cancel();
        }
    }

    /// Child `key` failed with `e` (asyncio's `_on_task_done` for an exception).
    ///
    /// The other children are cancelled through `call_soon`, as asyncio learns of the
    /// failure in a done callback: siblings whose steps are already queued in this
    /// iteration still run, and their failures are collected too.
    fn child_failed(self: &Rc<Self>, key: usize, e: Error) {
        if self.finished.get() {
            // The group was dropped without waiting: nobody will see this error.
            if let Ok(lp) = crate::events::get_running_loop() {
                lp.call_exception_handler(
                    ExceptionContext::new("TaskGroup exception was never retrieved")
                        .with_exception(e),
                );
            }
            return;
        }
        self.errors.borrow_mut().push(e);
        if !self.aborting.replace(true) {
            let st = self.clone();
            let deferred = crate::events::get_running_loop()
                .and_then(|lp| lp.call_soon(move || st.cancel_children(None)));
            if deferred.is_err() {
                self.cancel_children(Some(key));
            }
        }
    }
}

/// Lives inside a child's future: when the future is dropped (finished, cancelled, or
/// destroyed with the loop), the child leaves the group.
struct ChildGuard {
    state: Rc<GroupState>,
    key: usize,
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let st = &self.state;
        let now_empty = {
            let mut children = st.children.borrow_mut();
            if children.contains(self.key) {
                children.remove(self.key);
            }
            children.is_empty()
        };
        if now_empty {
            let w = st.waiter.borrow_mut().take();
            if let Some(w) = w {
                w.wake();
            }
        }
    }
}

/// Turns a panic of the inner future into `Err(Error::Panic)`, so the group sees it.
struct CatchPanic<F> {
    fut: Pin<Box<F>>,
}

impl<T, F: StdFuture<Output = Result<T>>> StdFuture for CatchPanic<F> {
    type Output = Result<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        let fut = self.fut.as_mut();
        match catch_unwind(AssertUnwindSafe(move || fut.poll(cx))) {
            Ok(p) => p,
            Err(payload) => Poll::Ready(Err(Error::from_panic(payload))),
        }
    }
}

/// A group of tasks that fail together (asyncio's `TaskGroup`, 3.11).
///
/// * [`TaskGroup::create_task`] starts a child (`Future<Output = Result<T>>`) and
///   returns its [`Task<T>`]: awaiting it gives the child's `Ok` value or its error.
/// * The first child to fail, by returning `Err` or by panicking, cancels every other
///   child still running, and from then on `create_task` refuses new tasks (it returns
///   a task already failed with `"TaskGroup is shutting down"`). The cancellation is
///   scheduled with `call_soon`, as asyncio's done callback is: a sibling whose step
///   was already queued in that iteration still runs, and if it fails too, both
///   failures are reported. A child that is cancelled, or that returns
///   `Err(Error::Cancelled)`, has not failed.
/// * [`TaskGroup::wait`] waits until every child is done, then returns `Ok(())`, or
///   `Err(Error::Group(errors))` with every failure in the order they happened.
/// * Dropping the group without waiting (or dropping the `wait` future, e.g. under a
///   timeout) cancels the children still running; failures nobody will see are
///   reported through the loop's exception handler as `"TaskGroup exception was never
///   retrieved"`.
/// * Children's failures belong to the group: a child's panic is not also reported as
///   "Task exception was never retrieved" when its `Task` handle is dropped.
///
/// Departures from asyncio: no `async with` (see the module docs); a failing child
/// does not cancel the task that created the group (Rust cannot interrupt it): that
/// task learns of the failure from `wait`, or from `create_task` refusing; an error is
/// returned even when the only failures were in children, as asyncio raises its
/// `ExceptionGroup`.
pub struct TaskGroup {
    lp: EventLoop,
    state: Rc<GroupState>,
}

/// A cheap, cloneable handle that adds tasks to a [`TaskGroup`], for children that
/// spawn siblings (in asyncio they would capture `tg`). It does not keep the group
/// open: once the group is waited for or dropped, it refuses new tasks.
#[derive(Clone)]
pub struct TaskGroupHandle {
    lp: EventLoop,
    state: Rc<GroupState>,
}

impl TaskGroup {
    /// A new, empty group on the running loop. Errors with `"no running event loop"`
    /// outside one (asyncio's `TaskGroup` needs a running loop too).
    pub fn new() -> Result<TaskGroup> {
        Ok(TaskGroup::with_loop(&crate::events::get_running_loop()?))
    }

    /// A new, empty group whose children run on `lp` (they run while it runs).
    pub fn with_loop(lp: &EventLoop) -> TaskGroup {
        TaskGroup {
            lp: lp.clone(),
            state: Rc::new(GroupState {
                children: RefCell::new(Slab::new()),
                errors: RefCell::new(Vec::new()),
                aborting: Cell::new(false),
                finished: Cell::new(false),
                waiter: RefCell::new(None),
            }),
        }
    }

    /// Start `fut` as a child of the group (asyncio's `tg.create_task()`); see
    /// [`TaskGroup`] for what a failure does. If the group is shutting down (a child
    /// failed) the future is dropped unpolled and the returned task is already failed
    /// with `Error::Runtime("TaskGroup is shutting down")`.
    pub fn create_task<F, T>(&self, fut: F) -> Task<T>
    where
        F: StdFuture<Output = Result<T>> + 'static,
        T: 'static,
    {
        spawn(&self.lp, &self.state, fut)
    }

    /// A handle that can add tasks to this group from elsewhere (e.g. from a child).
    pub fn handle(&self) -> TaskGroupHandle {
        TaskGroupHandle {
            lp: self.lp.clone(),
            state: self.state.clone(),
        }
    }

    /// How many children are still running.
    pub fn len(&self) -> usize {
        self.state.children.borrow().len()
    }

    /// Whether no child is running.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a child failed, so the others were cancelled and new tasks are refused.
    pub fn is_aborting(&self) -> bool {
        self.state.aborting.get()
    }

    /// Wait until every child is done (the end of asyncio's `async with` block).
    ///
    /// Returns `Ok(())` if no child failed, else `Err(Error::Group(errors))` with every
    /// failure (`Err` values and panics, not cancellations) in the order they happened.
    /// Children added through a [`TaskGroupHandle`] while waiting are waited for too.
    /// Dropping this future before it completes cancels the children still running.
    pub async fn wait(self) -> Result<()> {
        std::future::poll_fn(|cx| {
            if self.state.children.borrow().is_empty() {
                return Poll::Ready(());
            }
            *self.state.waiter.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })
        .await;
        self.state.finished.set(true);
        let errors = std::mem::take(&mut *self.state.errors.borrow_mut());
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Group(errors))
        }
    }
}

impl TaskGroupHandle {
    /// [`TaskGroup::create_task`] through a handle; also refuses once the group was
    /// waited for or dropped (`"TaskGroup is finished"`).
    pub fn create_task<F, T>(&self, fut: F) -> Task<T>
    where
        F: StdFuture<Output = Result<T>> + 'static,
        T: 'static,
    {
        spawn(&self.lp, &self.state, fut)
    }
}

fn spawn<F, T>(lp: &EventLoop, state: &Rc<GroupState>, fut: F) -> Task<T>
where
    F: StdFuture<Output = Result<T>> + 'static,
    T: 'static,
{
    if state.finished.get() {
        return Task::failed(Some(lp), Error::runtime("TaskGroup is finished"));
    }
    if state.aborting.get() {
        return Task::failed(Some(lp), Error::runtime("TaskGroup is shutting down"));
    }
    let key = state.children.borrow_mut().insert(None);
    let guard = ChildGuard {
        state: state.clone(),
        key,
    };
    let child = async move {
        let guard = guard;
        let r = CatchPanic { fut: Box::pin(fut) }.await;
        if let Err(e) = &r {
            if !e.is_cancelled() {
                guard.state.child_failed(guard.key, e.clone());
            }
        }
        r
    };
    let task = lp.create_task_try(child);
    task.mark_retrieved();
    // On a closed loop the child was dropped at once and its slot is gone already.
    if let Some(slot) = state.children.borrow_mut().get_mut(key) {
        *slot = Some(task.task_ref());
    }
    task
}

impl Drop for TaskGroup {
    fn drop(&mut self) {
        let st = &self.state;
        if st.finished.replace(true) {
            return;
        }
        st.cancel_children(None);
        let errors = std::mem::take(&mut *st.errors.borrow_mut());
        if !errors.is_empty() {
            self.lp.call_exception_handler(
                ExceptionContext::new("TaskGroup exception was never retrieved")
                    .with_exception(Error::Group(errors)),
            );
        }
    }
}

fn describe(st: &GroupState, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.debug_struct(name)
        .field("children", &st.children.borrow().len())
        .field("errors", &st.errors.borrow().len())
        .field("aborting", &st.aborting.get())
        .field("finished", &st.finished.get())
        .finish()
}

impl fmt::Debug for TaskGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        describe(&self.state, "TaskGroup", f)
    }
}

impl fmt::Debug for TaskGroupHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        describe(&self.state, "TaskGroupHandle", f)
    }
}
