//! [`Barrier`] (asyncio 3.11's `Barrier`): a fixed number of tasks wait for each other.

use std::cell::RefCell;
use std::fmt;
use std::future::Future as StdFuture;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use super::{wake_all, Slot, Waiters};
use crate::exceptions::{Error, Result};

/// Where a barrier is in its cycle (asyncio's `_BarrierState`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Tasks arrive and wait for the last party.
    Filling,
    /// The last party arrived: the waiting tasks leave; newcomers wait for the next cycle.
    Draining,
    /// [`Barrier::reset`] while tasks were waiting: they leave with an error, then the
    /// barrier fills again.
    Resetting,
    /// [`Barrier::abort`]: every wait fails until [`Barrier::reset`].
    Broken,
}

struct BarrierState {
    phase: Phase,
    /// Tasks inside the barrier (asyncio's `_count`): arrived in this cycle and not yet
    /// gone.
    count: usize,
    /// Every task waiting for the phase to change: woken all at once on each change,
    /// as asyncio's `Condition.notify_all` wakes its `wait_for` loops.
    waiters: Waiters,
}

/// A barrier for `parties` tasks (asyncio 3.11's `Barrier`): each [`wait`](Barrier::wait)
/// blocks until `parties` tasks are waiting, then all of them go on at once, and the
/// barrier is ready for the next cycle.
///
/// The cycle is asyncio's: while the tasks of one cycle are leaving (*draining*), a task
/// that arrives waits for the next cycle. [`reset`](Barrier::reset) sends the waiting
/// tasks away with [`Error::BrokenBarrier`] and starts a new cycle;
/// [`abort`](Barrier::abort) breaks the barrier, so every wait fails until a reset.
///
/// Cancel-safe as asyncio's: a wait dropped before its cycle completed leaves the
/// barrier (one party fewer waiting, as when asyncio's `wait` is cancelled); dropped
/// after, it changes nothing.
///
/// ```
/// use std::rc::Rc;
/// use asyncio::Barrier;
///
/// asyncio::run(async {
///     let barrier = Rc::new(Barrier::new(3).unwrap());
///     let mut tasks = Vec::new();
///     for _ in 0..3 {
///         let b = barrier.clone();
///         tasks.push(asyncio::create_task(async move { b.wait().await.unwrap() }));
///     }
///     let mut indices = Vec::new();
///     for t in tasks {
///         indices.push(t.await.unwrap());
///     }
///     indices.sort();
///     assert_eq!(indices, [0, 1, 2]); // each party got its own index
///     assert_eq!(barrier.n_waiting(), 0);
/// }).unwrap();
/// ```
pub struct Barrier {
    parties: usize,
    state: RefCell<BarrierState>,
}

impl Barrier {
    /// A barrier for `parties` tasks (asyncio's `Barrier(parties)`). Zero parties is a
    /// `ValueError`: `"parties must be > 0"`.
    pub fn new(parties: usize) -> Result<Barrier> {
        if parties == 0 {
            return Err(Error::value("parties must be > 0"));
        }
        Ok(Barrier {
            parties,
            state: RefCell::new(BarrierState {
                phase: Phase::Filling,
                count: 0,
                waiters: Waiters::default(),
            }),
        })
    }

    /// Wait until `parties` tasks wait (asyncio's `await barrier.wait()`). Returns this
    /// task's index in the cycle, `0..parties`, a different one for each task.
    ///
    /// Errors with [`Error::BrokenBarrier`] if the barrier is broken
    /// ([`abort`](Barrier::abort)) or is reset while this task waits.
    pub fn wait(&self) -> BarrierWait<'_> {
        BarrierWait {
            barrier: self,
            stage: Stage::Blocking,
            slot: None,
        }
    }

    /// Start a new cycle (asyncio's `reset()`, a coroutine there only to take its
    /// condition's lock). Tasks waiting now fail with [`Error::BrokenBarrier`]; a broken
    /// barrier is mended.
    pub fn reset(&self) {
        let wakers = {
            let mut st = self.state.borrow_mut();
            if st.count > 0 {
                st.phase = Phase::Resetting;
            } else {
                st.phase = Phase::Filling;
            }
            notify_all(&mut st)
        };
        wake_all(wakers);
    }

    /// Break the barrier (asyncio's `abort()`): every task waiting now and every later
    /// [`wait`](Barrier::wait) fails with [`Error::BrokenBarrier`] until
    /// [`reset`](Barrier::reset).
    pub fn abort(&self) {
        let wakers = {
            let mut st = self.state.borrow_mut();
            st.phase = Phase::Broken;
            notify_all(&mut st)
        };
        wake_all(wakers);
    }

    /// How many tasks must wait for the barrier to open (asyncio's `parties`).
    pub fn parties(&self) -> usize {
        self.parties
    }

    /// How many tasks wait in the current cycle (asyncio's `n_waiting`): 0 unless the
    /// barrier is filling.
    pub fn n_waiting(&self) -> usize {
        let st = self.state.borrow();
        if st.phase == Phase::Filling {
            st.count
        } else {
            0
        }
    }

    /// Whether the barrier is broken (asyncio's `broken`).
    pub fn broken(&self) -> bool {
        self.state.borrow().phase == Phase::Broken
    }

    /// A task leaves the barrier (asyncio's `finally: count -= 1; _exit()`): the last
    /// one out of a draining or resetting barrier starts the next cycle.
    fn leave(&self) {
        let wakers = {
            let mut st = self.state.borrow_mut();
            st.count -= 1;
            if st.count > 0 {
                return;
            }
            if matches!(st.phase, Phase::Resetting | Phase::Draining) {
                st.phase = Phase::Filling;
            }
            notify_all(&mut st)
        };
        wake_all(wakers);
    }
}

/// Wake every waiting task (each looks at the phase again).
fn notify_all(st: &mut BarrierState) -> Vec<std::task::Waker> {
    let n = st.waiters.len();
    st.waiters.grant_front(n)
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.state.borrow();
        f.debug_struct("Barrier")
            .field("state", &st.phase)
            .field("waiters", &st.count)
            .field("parties", &self.parties)
            .finish()
    }
}

#[derive(Clone, Copy, Debug)]
enum Stage {
    /// Waiting for a draining or resetting barrier to be ready (asyncio's `_block`).
    Blocking,
    /// Counted in; waiting for the cycle to complete (asyncio's `_wait`).
    Inside(usize),
    /// Returned.
    Done,
}

/// The future of [`Barrier::wait`]: this task's index in the cycle, or
/// [`Error::BrokenBarrier`].
#[must_use = "futures do nothing unless awaited"]
pub struct BarrierWait<'a> {
    barrier: &'a Barrier,
    stage: Stage,
    /// This task's place among the waiters while it waits.
    slot: Option<Rc<Slot>>,
}

impl fmt::Debug for BarrierWait<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BarrierWait")
            .field("stage", &self.stage)
            .finish()
    }
}

impl BarrierWait<'_> {
    /// Wait for the next phase change: a new place among the waiters if the last one
    /// was granted (or there is none), else the latest waker.
    fn park(&mut self, st: &mut BarrierState, cx: &Context<'_>) -> Poll<Result<usize>> {
        match &self.slot {
            Some(slot) if !slot.woken.get() => slot.register(cx.waker()),
            _ => self.slot = Some(st.waiters.push(cx.waker())),
        }
        Poll::Pending
    }
}

impl StdFuture for BarrierWait<'_> {
    type Output = Result<usize>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<usize>> {
        let this = self.get_mut();
        let barrier = this.barrier;
        loop {
            match this.stage {
                Stage::Done => {
                    return Poll::Ready(Err(Error::invalid_state(
                        "Barrier.wait() polled after it completed",
                    )))
                }
                Stage::Blocking => {
                    let released = {
                        let mut st = barrier.state.borrow_mut();
                        match st.phase {
                            Phase::Draining | Phase::Resetting => return this.park(&mut st, cx),
                            Phase::Broken => {
                                this.stage = Stage::Done;
                                return Poll::Ready(Err(Error::BrokenBarrier(
                                    "Barrier aborted".into(),
                                )));
                            }
                            Phase::Filling => {
                                let index = st.count;
                                st.count += 1;
                                this.stage = Stage::Inside(index);
                                if index + 1 == barrier.parties {
                                    // The last party: release the others (asyncio's
                                    // `_release`) and leave at once.
                                    st.phase = Phase::Draining;
                                    Some(notify_all(&mut st))
                                } else {
                                    None
                                }
                            }
                        }
                    };
                    if let Some(wakers) = released {
                        wake_all(wakers);
                    }
                }
                Stage::Inside(index) => {
                    let phase = {
                        let mut st = barrier.state.borrow_mut();
                        if st.phase == Phase::Filling {
                            return this.park(&mut st, cx);
                        }
                        st.phase
                    };
                    this.stage = Stage::Done;
                    if let Some(slot) = this.slot.take() {
                        barrier.state.borrow_mut().waiters.remove(&slot);
                    }
                    barrier.leave();
                    return Poll::Ready(match phase {
                        Phase::Broken | Phase::Resetting => {
                            Err(Error::BrokenBarrier("Abort or reset of barrier".into()))
                        }
                        _ => Ok(index),
                    });
                }
            }
        }
    }
}

impl Drop for BarrierWait<'_> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            self.barrier.state.borrow_mut().waiters.remove(&slot);
        }
        if let Stage::Inside(_) = self.stage {
            // Dropped (cancelled) while counted in: leave, as asyncio's `finally` does.
            self.barrier.leave();
        }
    }
}
