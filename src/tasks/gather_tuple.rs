//! `gather` over futures of different types (asyncio's `a, b = await gather(fa(), fb())`).
//!
//! [`gather`](fn@crate::gather) takes any number of futures of ONE type and returns a
//! `Vec`; Python's `gather` takes any awaitables and returns a list of mixed values.
//! Rust spells "a few futures of different types" as a tuple: [`gather_tuple`] (and
//! the [`gather!`](crate::gather!) macro) takes `(fa, fb, fc)` and returns
//! `Result<(A, B, C), E>`; [`gather_all_tuple`] ([`gather_all!`](crate::gather_all!))
//! returns `(Result<A, E>, Result<B, E>, Result<C, E>)`, asyncio's
//! `return_exceptions=True`. Tuples of 1 to 12 futures are supported.
//!
//! The rules are [`gather`](fn@crate::gather)'s, which are asyncio's:
//!
//! - each future runs as its own task, started when the gather is made inside a
//!   running loop (else at its first poll), so they run concurrently;
//! - outputs come in argument order, whatever order the children finish in;
//! - `gather`: the first child error is returned at once, and the other children keep
//!   running (asyncio does not cancel them either); `gather_all` waits for every child;
//! - dropping the gather before it finished (a cancelled awaiter, a timeout) cancels
//!   every child still running, as cancelling asyncio's gather cancels its children;
//! - a cancelled child is an `Error::Cancelled` error, a panicking one `Error::Panic`.

use std::fmt;
use std::future::Future as StdFuture;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::exceptions::{Error, Result};
use crate::tasks::Task;

/// One child of a tuple gather: its future until a loop runs it, then its task, then
/// its outcome.
#[doc(hidden)]
pub enum Slot<F: StdFuture> {
    Unspawned(Option<F>),
    Running(Task<F::Output>),
    Done(Option<F::Output>),
}

impl<F: StdFuture> fmt::Debug for Slot<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Slot::Unspawned(_) => "Unspawned",
            Slot::Running(_) => "Running",
            Slot::Done(_) => "Done",
        })
    }
}

impl<F, T, E> Slot<F>
where
    F: StdFuture<Output = Result<T, E>> + 'static,
    T: 'static,
    E: From<Error> + 'static,
{
    fn new(f: F) -> Slot<F> {
        if crate::events::get_running_loop().is_ok() {
            Slot::Running(crate::tasks::create_task(f))
        } else {
            Slot::Unspawned(Some(f))
        }
    }

    /// Poll the child; `Ready(true)` if it finished with an error.
    fn poll_slot(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        if let Slot::Unspawned(f) = self {
            let f = f.take().expect("an unspawned slot holds its future");
            *self = Slot::Running(crate::tasks::create_task(f));
        }
        match self {
            Slot::Running(task) => match Pin::new(task).poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(out) => {
                    let out = out.unwrap_or_else(|e| Err(E::from(e)));
                    let failed = out.is_err();
                    *self = Slot::Done(Some(out));
                    Poll::Ready(failed)
                }
            },
            Slot::Done(Some(out)) => Poll::Ready(out.is_err()),
            Slot::Done(None) | Slot::Unspawned(_) => Poll::Ready(false),
        }
    }

    /// The outcome, once; a second take is an `InvalidStateError`.
    fn take(&mut self) -> Result<T, E> {
        match self {
            Slot::Done(out) => out.take().unwrap_or_else(|| {
                Err(E::from(Error::invalid_state(
                    "gather polled after it completed",
                )))
            }),
            _ => Err(E::from(Error::invalid_state("gather child not done"))),
        }
    }

    /// Cancel the child if it is still running.
    fn cancel(&self) {
        if let Slot::Running(task) = self {
            task.cancel();
        }
    }
}

/// A tuple of futures that can be gathered; implemented for tuples of 1 to 12 futures
/// that share an error type `E`. See [`gather_tuple`].
pub trait GatherTuple<E>: Sized {
    /// The tuple of children as the gather holds them.
    #[doc(hidden)]
    type Slots;
    /// `(A, B, ...)`: every output, when all succeeded.
    type Output;
    /// `(Result<A, E>, Result<B, E>, ...)`: every outcome.
    type AllOutput;
    #[doc(hidden)]
    fn into_slots(self) -> Self::Slots;
    /// Poll every unfinished child; `Ready(true)` as soon as one failed (when
    /// `fail_fast`), `Ready(false)` when all are done.
    #[doc(hidden)]
    fn poll_slots(slots: &mut Self::Slots, cx: &mut Context<'_>, fail_fast: bool) -> Poll<bool>;
    #[doc(hidden)]
    fn first_error(slots: &mut Self::Slots) -> E;
    #[doc(hidden)]
    fn take_ok(slots: &mut Self::Slots) -> Result<Self::Output, E>;
    #[doc(hidden)]
    fn take_all(slots: &mut Self::Slots) -> Self::AllOutput;
    #[doc(hidden)]
    fn cancel(slots: &Self::Slots);
}

macro_rules! gather_tuple_impl {
    ($($F:ident $T:ident $i:tt),+) => {
        impl<E, $($F, $T),+> GatherTuple<E> for ($($F,)+)
        where
            E: From<Error> + 'static,
            $($F: StdFuture<Output = Result<$T, E>> + 'static, $T: 'static,)+
        {
            type Slots = ($(Slot<$F>,)+);
            type Output = ($($T,)+);
            type AllOutput = ($(Result<$T, E>,)+);

            fn into_slots(self) -> Self::Slots {
                ($(Slot::new(self.$i),)+)
            }

            fn poll_slots(slots: &mut Self::Slots, cx: &mut Context<'_>, fail_fast: bool) -> Poll<bool> {
                // Every slot is polled, also after a failure: an unspawned child is
                // started by its poll (an eager one may fail inside it), and must run
                // on even if an earlier one failed.
                let mut pending = false;
                let mut failed = false;
                $(
                    match slots.$i.poll_slot(cx) {
                        Poll::Pending => pending = true,
                        Poll::Ready(true) => failed = true,
                        Poll::Ready(false) => {}
                    }
                )+
                if failed && fail_fast {
                    Poll::Ready(true)
                } else if pending {
                    Poll::Pending
                } else {
                    Poll::Ready(false)
                }
            }

            fn first_error(slots: &mut Self::Slots) -> E {
                $(
                    if let Slot::Done(Some(Err(_))) = &slots.$i {
                        if let Err(e) = slots.$i.take() {
                            return e;
                        }
                    }
                )+
                E::from(Error::invalid_state("gather polled after it completed"))
            }

            fn take_ok(slots: &mut Self::Slots) -> Result<Self::Output, E> {
                Ok(($(slots.$i.take()?,)+))
            }

            fn take_all(slots: &mut Self::Slots) -> Self::AllOutput {
                ($(slots.$i.take(),)+)
            }

            fn cancel(slots: &Self::Slots) {
                $(slots.$i.cancel();)+
            }
        }
    };
}

gather_tuple_impl!(F0 T0 0);
gather_tuple_impl!(F0 T0 0, F1 T1 1);
gather_tuple_impl!(F0 T0 0, F1 T1 1, F2 T2 2);
gather_tuple_impl!(F0 T0 0, F1 T1 1, F2 T2 2, F3 T3 3);
gather_tuple_impl!(F0 T0 0, F1 T1 1, F2 T2 2, F3 T3 3, F4 T4 4);
gather_tuple_impl!(F0 T0 0, F1 T1 1, F2 T2 2, F3 T3 3, F4 T4 4, F5 T5 5);
gather_tuple_impl!(F0 T0 0, F1 T1 1, F2 T2 2, F3 T3 3, F4 T4 4, F5 T5 5, F6 T6 6);
gather_tuple_impl!(F0 T0 0, F1 T1 1, F2 T2 2, F3 T3 3, F4 T4 4, F5 T5 5, F6 T6 6, F7 T7 7);
gather_tuple_impl!(
    F0 T0 0, F1 T1 1, F2 T2 2, F3 T3 3, F4 T4 4, F5 T5 5, F6 T6 6, F7 T7 7, F8 T8 8
);
gather_tuple_impl!(
    F0 T0 0, F1 T1 1, F2 T2 2, F3 T3 3, F4 T4 4, F5 T5 5, F6 T6 6, F7 T7 7, F8 T8 8, F9 T9 9
);
gather_tuple_impl!(
    F0 T0 0, F1 T1 1, F2 T2 2, F3 T3 3, F4 T4 4, F5 T5 5, F6 T6 6, F7 T7 7, F8 T8 8, F9 T9 9,
    F10 T10 10
);
gather_tuple_impl!(
    F0 T0 0, F1 T1 1, F2 T2 2, F3 T3 3, F4 T4 4, F5 T5 5, F6 T6 6, F7 T7 7, F8 T8 8, F9 T9 9,
    F10 T10 10, F11 T11 11
);

/// The future of [`gather_tuple`] and [`gather_all_tuple`]: see the module docs.
pub struct GatherTupleFuture<G: GatherTuple<E>, E> {
    slots: G::Slots,
    fail_fast: bool,
    /// The gather returned: dropping it no longer cancels anything.
    finished: bool,
}

// The slots are polled in place but never pinned: each child is a task, and a task
// handle is `Unpin`; an unspawned child is moved into its task before it is polled.
impl<G: GatherTuple<E>, E> Unpin for GatherTupleFuture<G, E> {}

impl<G: GatherTuple<E>, E> GatherTupleFuture<G, E> {
    fn poll_done(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        let r = G::poll_slots(&mut self.slots, cx, self.fail_fast);
        if r.is_ready() {
            self.finished = true;
        }
        r
    }
}

impl<G: GatherTuple<E>, E> Drop for GatherTupleFuture<G, E> {
    fn drop(&mut self) {
        if !self.finished {
            G::cancel(&self.slots);
        }
    }
}

impl<G: GatherTuple<E>, E> fmt::Debug for GatherTupleFuture<G, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatherTuple")
            .field("return_exceptions", &!self.fail_fast)
            .field("finished", &self.finished)
            .finish()
    }
}

/// [`gather_tuple`]'s future.
pub struct GatherTupleOk<G: GatherTuple<E>, E>(GatherTupleFuture<G, E>);
/// [`gather_all_tuple`]'s future.
pub struct GatherTupleAll<G: GatherTuple<E>, E>(GatherTupleFuture<G, E>);

impl<G: GatherTuple<E>, E> Unpin for GatherTupleOk<G, E> {}
impl<G: GatherTuple<E>, E> Unpin for GatherTupleAll<G, E> {}

impl<G: GatherTuple<E>, E> fmt::Debug for GatherTupleOk<G, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<G: GatherTuple<E>, E> fmt::Debug for GatherTupleAll<G, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<G: GatherTuple<E>, E> StdFuture for GatherTupleOk<G, E> {
    type Output = Result<G::Output, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let g = &mut self.get_mut().0;
        match g.poll_done(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(true) => Poll::Ready(Err(G::first_error(&mut g.slots))),
            Poll::Ready(false) => Poll::Ready(G::take_ok(&mut g.slots)),
        }
    }
}

impl<G: GatherTuple<E>, E> StdFuture for GatherTupleAll<G, E> {
    type Output = G::AllOutput;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let g = &mut self.get_mut().0;
        match g.poll_done(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(_) => Poll::Ready(G::take_all(&mut g.slots)),
        }
    }
}

/// Run a tuple of futures of different types concurrently and return their outputs
/// as a tuple (asyncio's `a, b = await gather(fa(), fb())`); the
/// [`gather!`](crate::gather!) macro is the same with the futures as arguments.
///
/// Each future's output is a `Result<_, E>` with one error type `E` for all. The rules
/// are [`gather`](fn@crate::gather)'s, which are asyncio's:
///
/// - each future runs as its own task, started when the gather is made inside a
///   running loop (else at its first poll), so they run concurrently;
/// - outputs come in argument order, whatever order the children finish in;
/// - the first child error is returned at once, and the other children keep running
///   (asyncio does not cancel them either);
/// - dropping the gather before it finished (a cancelled awaiter, a timeout) cancels
///   every child still running, as cancelling asyncio's gather cancels its children;
/// - a cancelled child is an `Error::Cancelled` error, a panicking one `Error::Panic`.
///
/// ```
/// asyncio::run(async {
///     let name = async { Ok::<_, asyncio::Error>("ada") };
///     let age = async {
///         asyncio::sleep(std::time::Duration::from_millis(1)).await;
///         Ok(36u8)
///     };
///     let (name, age) = asyncio::gather_tuple((name, age)).await?;
///     assert_eq!((name, age), ("ada", 36));
///     Ok::<_, asyncio::Error>(())
/// }).unwrap().unwrap();
/// ```
pub fn gather_tuple<G, E>(futs: G) -> GatherTupleOk<G, E>
where
    G: GatherTuple<E>,
{
    GatherTupleOk(GatherTupleFuture {
        slots: futs.into_slots(),
        fail_fast: true,
        finished: false,
    })
}

/// [`gather_tuple`] that waits for every child and returns every outcome, errors
/// included (asyncio's `gather(..., return_exceptions=True)`); the
/// [`gather_all!`](crate::gather_all!) macro is the same with the futures as arguments.
///
/// ```
/// asyncio::run(async {
///     let ok = async { Ok::<_, asyncio::Error>(1) };
///     let bad = async { Err::<&str, _>(asyncio::Error::value("bad")) };
///     let (a, b) = asyncio::gather_all_tuple((ok, bad)).await;
///     assert_eq!(a.unwrap(), 1);
///     assert!(b.is_err());
/// }).unwrap();
/// ```
pub fn gather_all_tuple<G, E>(futs: G) -> GatherTupleAll<G, E>
where
    G: GatherTuple<E>,
{
    GatherTupleAll(GatherTupleFuture {
        slots: futs.into_slots(),
        fail_fast: false,
        finished: false,
    })
}

/// `asyncio::gather!(fa, fb, ...)`: [`gather_tuple`] with the futures as arguments,
/// the closest spelling of asyncio's `a, b = await gather(fa(), fb())`.
///
/// ```
/// asyncio::run(async {
///     let (n, s) = asyncio::gather!(
///         async { Ok::<_, asyncio::Error>(2 + 2) },
///         async { Ok(String::from("four")) },
///     )
///     .await?;
///     assert_eq!((n, s.as_str()), (4, "four"));
///     Ok::<_, asyncio::Error>(())
/// }).unwrap().unwrap();
/// ```
#[macro_export]
macro_rules! gather {
    ($($fut:expr),+ $(,)?) => {
        $crate::gather_tuple(($($fut,)+))
    };
}

/// `asyncio::gather_all!(fa, fb, ...)`: [`gather_all_tuple`] with the futures as
/// arguments (asyncio's `gather(..., return_exceptions=True)`).
///
/// ```
/// asyncio::run(async {
///     let (a, b) = asyncio::gather_all!(
///         async { Ok::<_, asyncio::Error>(1) },
///         async { Err::<(), _>(asyncio::Error::Timeout) },
///     )
///     .await;
///     assert_eq!(a.unwrap(), 1);
///     assert!(b.unwrap_err().is_timeout());
/// }).unwrap();
/// ```
#[macro_export]
macro_rules! gather_all {
    ($($fut:expr),+ $(,)?) => {
        $crate::gather_all_tuple(($($fut,)+))
    };
}
