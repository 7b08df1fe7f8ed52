//! The crate's one error type: asyncio's exception hierarchy (`exceptions.py`).
//!
//! Python raises a different exception class for each failure; Rust returns one
//! [`Error`] enum with a variant per asyncio exception. Every variant carries the data
//! its Python twin carries (`IncompleteReadError.partial`, `LimitOverrunError.consumed`)
//! and formats with asyncio's message, so code and logs read the same in both worlds.
//!
//! `Error` converts to and from [`std::io::Error`]: `?` works in both directions, and an
//! I/O error keeps its kind and OS error code through the round trip.

use std::fmt;
use std::io;
use std::sync::Arc;

/// The result type used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every error the runtime can report, one variant per asyncio exception.
///
/// `Error` is `Clone` because an asyncio `Future` can be awaited by many tasks and each
/// of them receives the stored exception; cloning an [`Error::Io`] keeps its
/// [`io::ErrorKind`], its OS error code and its message.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The operation was cancelled (`asyncio.CancelledError`). In Rust a cancelled task's
    /// future is dropped, so only those awaiting the task see this value.
    Cancelled,
    /// A deadline passed (`TimeoutError`, raised by `wait_for` and `timeout`).
    Timeout,
    /// An operation is not allowed in the object's current state (`asyncio.InvalidStateError`),
    /// e.g. `set_result` on a future that is already done.
    InvalidState(String),
    /// Misuse of the loop or of a stream (`RuntimeError`), e.g. a nested
    /// `run_until_complete`, scheduling on a closed loop, or two concurrent readers.
    Runtime(String),
    /// A bad argument (`ValueError`), e.g. a zero stream limit or inconsistent water marks.
    Value(String),
    /// EOF arrived before the expected number of bytes (`asyncio.IncompleteReadError`).
    IncompleteRead {
        /// The bytes read before EOF.
        partial: Vec<u8>,
        /// How many bytes were expected; `None` for `readuntil` (asyncio's `undefined`).
        expected: Option<usize>,
    },
    /// A stream read hit the reader's limit (`asyncio.LimitOverrunError`).
    LimitOverrun {
        /// asyncio's message: whether the separator was found or not.
        message: String,
        /// How many bytes must be consumed before the read could go on.
        consumed: usize,
    },
    /// A task or callback panicked; the payload's message is kept (Rust-only: Python has
    /// no panics, an ordinary exception would propagate instead).
    Panic(String),
    /// An operating-system error (`OSError` and its subclasses such as
    /// `ConnectionResetError`, `BrokenPipeError`, `ConnectionRefusedError`).
    Io(io::Error),
    /// [`get_nowait`](crate::Queue::get_nowait) found the queue empty
    /// (`asyncio.QueueEmpty`).
    QueueEmpty,
    /// [`put_nowait`](crate::Queue::put_nowait) found the queue full (`asyncio.QueueFull`);
    /// [`PutNowaitError`](crate::PutNowaitError) converts into it.
    QueueFull,
    /// A put, or a get from an empty queue, after [`shutdown`](crate::Queue::shutdown)
    /// (`asyncio.QueueShutDown`, Python 3.13).
    QueueShutDown,
    /// A [`Barrier`](crate::Barrier) wait failed because the barrier was aborted or
    /// reset (`asyncio.BrokenBarrierError`, a `RuntimeError`); the message says which.
    BrokenBarrier(String),
    /// Several errors at once (`ExceptionGroup`), e.g. from a [`TaskGroup`](crate::TaskGroup)
    /// whose children failed.
    Group(Vec<Error>),
    /// `error`, raised while handling `context` (Python's implicit exception chaining,
    /// `__context__`: "During handling of the above exception, another exception
    /// occurred"). Displays as `error`, has `error`'s [`kind`](Error::kind), and
    /// [`source()`](std::error::Error::source) is `context`. Example:
    /// [`readline`](crate::StreamReader::readline) over a too-long line fails with a
    /// `ValueError` whose context is the `LimitOverrun` (and its `consumed`).
    /// [`Error::unchained`] gives `error` for matching.
    Chained {
        /// The error raised.
        error: Box<Error>,
        /// The error being handled when it was raised.
        context: Box<Error>,
    },
    /// Any other error, e.g. one of the user's own types carried through a task group
    /// or a future (an arbitrary `Exception` subclass in Python).
    Other(Arc<dyn std::error::Error + Send + Sync>),
    /// [`run`](crate::run) was interrupted by Ctrl-C (SIGINT): the main task was
    /// cancelled and cleaned up (Python's `KeyboardInterrupt`, which `asyncio.run`
    /// raises in that case).
    KeyboardInterrupt,
    /// A TLS protocol failure (`ssl.SSLError`): the peer sent garbage or plain text, a
    /// bad record, an alert, or offered nothing we accept. The message is rustls's.
    SSL(String),
    /// The peer's certificate did not verify (`ssl.SSLCertVerificationError`): an unknown
    /// issuer, a name that does not match `server_hostname`, an expired certificate...
    SSLCertVerification(String),
}

impl Error {
    /// A `RuntimeError` with the given message.
    pub fn runtime(msg: impl Into<String>) -> Error {
        Error::Runtime(msg.into())
    }

    /// A `ValueError` with the given message.
    pub fn value(msg: impl Into<String>) -> Error {
        Error::Value(msg.into())
    }

    /// An `InvalidStateError` with the given message.
    pub fn invalid_state(msg: impl Into<String>) -> Error {
        Error::InvalidState(msg.into())
    }

    /// asyncio's `ConnectionResetError('Connection lost')`, raised by `drain()` once the
    /// connection is gone.
    pub fn connection_lost() -> Error {
        Error::Io(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "Connection lost",
        ))
    }

    /// Wrap any error as [`Error::Other`].
    pub fn other(e: impl std::error::Error + Send + Sync + 'static) -> Error {
        Error::Other(Arc::new(e))
    }

    /// The error itself, without the errors it was raised while handling: for an
    /// [`Error::Chained`], its `error` (unchained in turn); otherwise `self`. Match on
    /// this to find a `ValueError` whether or not it carries a context:
    ///
    /// ```
    /// use asyncio::Error;
    /// let e = Error::Chained {
    ///     error: Box::new(Error::value("too long")),
    ///     context: Box::new(Error::LimitOverrun { message: "chunk exceed the limit".into(), consumed: 9 }),
    /// };
    /// assert!(matches!(e.unchained(), Error::Value(m) if m == "too long"));
    /// assert_eq!(e.to_string(), "ValueError: too long");
    /// let source = std::error::Error::source(&e).unwrap().downcast_ref::<Error>();
    /// assert!(matches!(source, Some(Error::LimitOverrun { consumed: 9, .. })));
    /// ```
    pub fn unchained(&self) -> &Error {
        let mut e = self;
        while let Error::Chained { error, .. } = e {
            e = error;
        }
        e
    }

    /// Whether this is [`Error::Cancelled`].
    pub fn is_cancelled(&self) -> bool {
        matches!(self, Error::Cancelled)
    }

    /// Whether this is [`Error::Timeout`].
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout)
    }

    /// The [`io::ErrorKind`] this error maps to (the kind `From<Error> for io::Error` gives).
    pub fn kind(&self) -> io::ErrorKind {
        match self {
            Error::Io(e) => e.kind(),
            Error::Chained { error, .. } => error.kind(),
            Error::Cancelled | Error::KeyboardInterrupt => io::ErrorKind::Interrupted,
            Error::Timeout => io::ErrorKind::TimedOut,
            Error::IncompleteRead { .. } => io::ErrorKind::UnexpectedEof,
            Error::LimitOverrun { .. } | Error::Value(_) => io::ErrorKind::InvalidInput,
            Error::QueueEmpty | Error::QueueFull => io::ErrorKind::WouldBlock,
            Error::InvalidState(_)
            | Error::Runtime(_)
            | Error::Panic(_)
            | Error::QueueShutDown
            | Error::BrokenBarrier(_)
            | Error::SSL(_)
            | Error::SSLCertVerification(_)
            | Error::Group(_)
            | Error::Other(_) => io::ErrorKind::Other,
        }
    }

    /// The panic payload's message, as stored in [`Error::Panic`].
    pub(crate) fn from_panic(payload: Box<dyn std::any::Any + Send>) -> Error {
        let msg = if let Some(s) = payload.downcast_ref::<&'static str>() {
            (*s).to_string()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "panic with a non-string payload".to_string()
        };
        Error::Panic(msg)
    }
}

/// Clone an `io::Error`, keeping its OS code or its kind and message.
pub(crate) fn clone_io_error(e: &io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}

impl Clone for Error {
    fn clone(&self) -> Error {
        match self {
            Error::Cancelled => Error::Cancelled,
            Error::Timeout => Error::Timeout,
            Error::InvalidState(m) => Error::InvalidState(m.clone()),
            Error::Runtime(m) => Error::Runtime(m.clone()),
            Error::Value(m) => Error::Value(m.clone()),
            Error::IncompleteRead { partial, expected } => Error::IncompleteRead {
                partial: partial.clone(),
                expected: *expected,
            },
            Error::LimitOverrun { message, consumed } => Error::LimitOverrun {
                message: message.clone(),
                consumed: *consumed,
            },
            Error::Panic(m) => Error::Panic(m.clone()),
            Error::QueueEmpty => Error::QueueEmpty,
            Error::QueueFull => Error::QueueFull,
            Error::QueueShutDown => Error::QueueShutDown,
            Error::BrokenBarrier(m) => Error::BrokenBarrier(m.clone()),
            Error::Io(e) => Error::Io(clone_io_error(e)),
            Error::Group(v) => Error::Group(v.clone()),
            Error::Chained { error, context } => Error::Chained {
                error: error.clone(),
                context: context.clone(),
            },
            Error::Other(e) => Error::Other(e.clone()),
            Error::KeyboardInterrupt => Error::KeyboardInterrupt,
            Error::SSL(m) => Error::SSL(m.clone()),
            Error::SSLCertVerification(m) => Error::SSLCertVerification(m.clone()),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Cancelled => f.write_str("CancelledError"),
            Error::KeyboardInterrupt => f.write_str("KeyboardInterrupt"),
            Error::Timeout => f.write_str("TimeoutError"),
            Error::InvalidState(m) => write!(f, "InvalidStateError: {m}"),
            Error::Runtime(m) => write!(f, "RuntimeError: {m}"),
            Error::Value(m) => write!(f, "ValueError: {m}"),
            Error::IncompleteRead { partial, expected } => match expected {
                Some(n) => write!(
                    f,
                    "{} bytes read on a total of {} expected bytes",
                    partial.len(),
                    n
                ),
                None => write!(
                    f,
                    "{} bytes read on a total of undefined expected bytes",
                    partial.len()
                ),
            },
            Error::LimitOverrun { message, .. } => f.write_str(message),
            Error::Panic(m) => write!(f, "panic: {m}"),
            Error::QueueEmpty => f.write_str("QueueEmpty"),
            Error::QueueFull => f.write_str("QueueFull"),
            Error::QueueShutDown => f.write_str("QueueShutDown"),
            Error::BrokenBarrier(m) => write!(f, "BrokenBarrierError: {m}"),
            Error::SSL(m) => write!(f, "SSLError: {m}"),
            Error::SSLCertVerification(m) => {
                write!(
                    f,
                    "SSLCertVerificationError: certificate verify failed: {m}"
                )
            }
            Error::Io(e) => fmt::Display::fmt(e, f),
            Error::Group(v) => {
                write!(f, "{} sub-exception(s)", v.len())?;
                for e in v {
                    write!(f, "; {e}")?;
                }
                Ok(())
            }
            Error::Chained { error, .. } => fmt::Display::fmt(error, f),
            Error::Other(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            Error::Other(e) => Some(&**e),
            Error::Chained { context, .. } => Some(&**context),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    /// An `io::Error` that wraps an [`Error`] (made by `From<Error> for io::Error`) is
    /// unwrapped again, so the round trip is lossless.
    fn from(e: io::Error) -> Error {
        if e.get_ref()
            .map(|inner| inner.is::<Error>())
            .unwrap_or(false)
        {
            let inner = e.into_inner().expect("checked above");
            return *inner.downcast::<Error>().expect("checked above");
        }
        Error::Io(e)
    }
}

impl From<Error> for io::Error {
    /// [`Error::Io`] gives back the original error; every other variant becomes an
    /// `io::Error` of [`Error::kind`] that wraps it (recover it with `Error::from`).
    fn from(e: Error) -> io::Error {
        match e {
            Error::Io(e) => e,
            other => io::Error::new(other.kind(), other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incomplete_read_messages_match_asyncio() {
        let e = Error::IncompleteRead {
            partial: vec![0; 18],
            expected: Some(36),
        };
        assert_eq!(
            e.to_string(),
            "18 bytes read on a total of 36 expected bytes"
        );
        let e = Error::IncompleteRead {
            partial: vec![0; 2],
            expected: None,
        };
        assert_eq!(
            e.to_string(),
            "2 bytes read on a total of undefined expected bytes"
        );
    }

    #[test]
    fn io_round_trip_is_lossless() {
        let e = Error::LimitOverrun {
            message: "Separator is not found, and chunk exceed the limit".into(),
            consumed: 7,
        };
        let io: io::Error = e.into();
        assert_eq!(io.kind(), io::ErrorKind::InvalidInput);
        match Error::from(io) {
            Error::LimitOverrun { consumed, .. } => assert_eq!(consumed, 7),
            other => panic!("unexpected {other:?}"),
        }
        let reset = Error::from(io::Error::from_raw_os_error(104));
        let cloned = reset.clone();
        assert_eq!(cloned.kind(), io::ErrorKind::ConnectionReset);
        let back: io::Error = cloned.into();
        assert_eq!(back.raw_os_error(), Some(104));
    }
}
