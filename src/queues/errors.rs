//! The errors of `put` and `put_nowait`, which hand the refused item back.
//!
//! asyncio raises `QueueFull` or `QueueShutDown` and the caller still holds its item,
//! because Python passes a reference. In Rust the item was moved into the call, so an
//! error that only said `QueueFull` would drop it. These two types carry it back; both
//! convert into [`Error::QueueFull`] / [`Error::QueueShutDown`] (dropping the item) so
//! that `?` works in a function returning [`asyncio::Result`](crate::Result).

use std::fmt;

use crate::exceptions::Error;

/// [`put_nowait`](super::GenericQueue::put_nowait) refused the item: the queue is full
/// (asyncio's `QueueFull`) or shut down (`QueueShutDown`). The item is handed back.
///
/// ```
/// use asyncio::{PutNowaitError, Queue};
///
/// let q = Queue::new(1);
/// q.put_nowait(String::from("a")).unwrap();
/// match q.put_nowait(String::from("b")) {
///     Err(PutNowaitError::Full(item)) => assert_eq!(item, "b"), // not lost
///     other => panic!("{other:?}"),
/// }
/// q.shutdown(false);
/// let e: asyncio::Error = q.put_nowait(String::from("c")).unwrap_err().into();
/// assert!(matches!(e, asyncio::Error::QueueShutDown));
/// ```
pub enum PutNowaitError<T> {
    /// The queue holds `maxsize` items (asyncio's `QueueFull`).
    Full(T),
    /// The queue was shut down (asyncio's `QueueShutDown`).
    ShutDown(T),
}

impl<T> PutNowaitError<T> {
    /// The item that was not put.
    pub fn into_inner(self) -> T {
        match self {
            PutNowaitError::Full(item) | PutNowaitError::ShutDown(item) => item,
        }
    }

    /// Whether the queue was full.
    pub fn is_full(&self) -> bool {
        matches!(self, PutNowaitError::Full(_))
    }

    /// Whether the queue was shut down.
    pub fn is_shut_down(&self) -> bool {
        matches!(self, PutNowaitError::ShutDown(_))
    }

    /// The matching [`Error`] variant, without the item.
    pub fn error(&self) -> Error {
        match self {
            PutNowaitError::Full(_) => Error::QueueFull,
            PutNowaitError::ShutDown(_) => Error::QueueShutDown,
        }
    }
}

/// [`put`](super::GenericQueue::put) refused the item because the queue was shut down
/// (asyncio's `QueueShutDown`), before or while it waited for room. The item is handed
/// back in the field.
///
/// ```
/// asyncio::run(async {
///     let q = asyncio::Queue::new(0);
///     q.shutdown(false);
///     let err = q.put(vec![1, 2]).await.unwrap_err();
///     assert_eq!(err.into_inner(), [1, 2]);
/// })
/// .unwrap();
/// ```
pub struct PutError<T>(pub T);

impl<T> PutError<T> {
    /// The item that was not put.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for PutNowaitError<T> {
    /// Names the variant; the item is not printed (it need not be `Debug`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PutNowaitError::Full(_) => f.write_str("Full(..)"),
            PutNowaitError::ShutDown(_) => f.write_str("ShutDown(..)"),
        }
    }
}

impl<T> fmt::Debug for PutError<T> {
    /// The item is not printed (it need not be `Debug`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PutError(..)")
    }
}

impl<T> fmt::Display for PutNowaitError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error(), f)
    }
}

impl<T> fmt::Display for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&Error::QueueShutDown, f)
    }
}

impl<T> std::error::Error for PutNowaitError<T> {}
impl<T> std::error::Error for PutError<T> {}

impl<T> From<PutNowaitError<T>> for Error {
    /// [`Error::QueueFull`] or [`Error::QueueShutDown`]; the item is dropped.
    fn from(e: PutNowaitError<T>) -> Error {
        e.error()
    }
}

impl<T> From<PutError<T>> for Error {
    /// [`Error::QueueShutDown`]; the item is dropped.
    fn from(_: PutError<T>) -> Error {
        Error::QueueShutDown
    }
}

impl<T> From<PutError<T>> for PutNowaitError<T> {
    /// [`PutNowaitError::ShutDown`], keeping the item.
    fn from(e: PutError<T>) -> PutNowaitError<T> {
        PutNowaitError::ShutDown(e.0)
    }
}
