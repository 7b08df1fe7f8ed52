//! Streams over pipes: a [`StreamReader`] on a read pipe (standard input, a child's
//! output, a FIFO) and a [`StreamWriter`] on a write pipe, over the pipe transports of
//! [`EventLoop::connect_read_pipe`] / [`EventLoop::connect_write_pipe`]. asyncio has
//! no helper for this (its docs show `connect_read_pipe` with a
//! `StreamReaderProtocol`); these are the short form.

use std::os::fd::{AsFd, OwnedFd};

use super::{StreamReader, StreamReaderProtocol, StreamWriter, DEFAULT_LIMIT};
use crate::events::get_running_loop;
use crate::exceptions::Result;
use crate::unix_events::pipes::{
    check_pipe, CloseUnlessConnected, ReadPipeTransport, WritePipeTransport,
};

/// A [`StreamReader`] reading the pipe `pipe` (any pipe, FIFO, socket or character
/// device, see [`EventLoop::connect_read_pipe`](crate::EventLoop::connect_read_pipe)),
/// with the default limit (64 KiB). The reader sees EOF when the writer closes its
/// end. Must run inside a loop.
///
/// ```
/// asyncio::run(async {
///     let child = std::process::Command::new("printf")
///         .arg("one\ntwo\n")
///         .stdout(std::process::Stdio::piped())
///         .spawn()?;
///     let mut reader = asyncio::streams::open_read_pipe(child.stdout.unwrap()).await?;
///     assert_eq!(reader.readline().await?, b"one\n");
///     assert_eq!(reader.readline().await?, b"two\n");
///     assert_eq!(reader.readline().await?, b"");
///     Ok::<(), asyncio::Error>(())
/// })
/// .unwrap()
/// .unwrap();
/// ```
pub async fn open_read_pipe(pipe: impl Into<OwnedFd>) -> Result<StreamReader> {
    open_read_pipe_with(pipe, DEFAULT_LIMIT).await
}

/// [`open_read_pipe`] with a reader `limit` (zero is a `ValueError`).
pub async fn open_read_pipe_with(pipe: impl Into<OwnedFd>, limit: usize) -> Result<StreamReader> {
    let lp = get_running_loop()?;
    let (fd, _) = check_pipe(pipe.into())?;
    let reader = StreamReader::with_limit(limit)?;
    let waiter = lp.create_future::<()>();
    let t = ReadPipeTransport::start(
        &lp,
        fd,
        StreamReaderProtocol::new(&reader),
        Some(waiter.clone()),
    )?;
    let mut guard = CloseUnlessConnected(Some(t));
    waiter.await?;
    guard.0 = None;
    Ok(reader)
}

/// A [`StreamReader`] on this process's standard input: the common "read stdin lines
/// asynchronously" (`while let Some(line) = reader.next_line().await`). Reads a
/// duplicate of fd 0, which is made non-blocking (that flag is shared with every
/// process using the same terminal or pipe, as with asyncio). Standard input must be
/// a pipe, FIFO, socket or terminal; a regular file is a `ValueError`.
pub async fn stdin_reader() -> Result<StreamReader> {
    let fd = std::io::stdin().as_fd().try_clone_to_owned()?;
    open_read_pipe(fd).await
}

/// A [`StreamWriter`] writing to the pipe `pipe` (see
/// [`EventLoop::connect_write_pipe`](crate::EventLoop::connect_write_pipe)). `close()`
/// or `write_eof()` close the pipe after the buffer is flushed (the reader sees EOF);
/// `drain()` waits while more than 64 KiB are buffered; a reader that went away
/// surfaces as a `BrokenPipe` error from `drain()` and `wait_closed()`.
///
/// ```
/// asyncio::run(async {
///     let mut child = std::process::Command::new("cat")
///         .stdin(std::process::Stdio::piped())
///         .stdout(std::process::Stdio::piped())
///         .spawn()?;
///     let writer = asyncio::streams::open_write_pipe(child.stdin.take().unwrap()).await?;
///     let mut reader = asyncio::streams::open_read_pipe(child.stdout.take().unwrap()).await?;
///     writer.write(b"ping\n")?;
///     writer.drain().await?;
///     assert_eq!(reader.readline().await?, b"ping\n");
///     writer.close();
///     writer.wait_closed().await?;
///     assert_eq!(reader.read_to_end().await?, b"");
///     child.wait()?;
///     Ok::<(), asyncio::Error>(())
/// })
/// .unwrap()
/// .unwrap();
/// ```
pub async fn open_write_pipe(pipe: impl Into<OwnedFd>) -> Result<StreamWriter> {
    let lp = get_running_loop()?;
    let (fd, _) = check_pipe(pipe.into())?;
    // The writer's protocol comes with a reader that is never read.
    let reader = StreamReader::new();
    let proto = StreamReaderProtocol::new(&reader);
    let waiter = lp.create_future::<()>();
    let t = WritePipeTransport::start(&lp, fd, proto.clone(), Some(waiter.clone()))?;
    let mut guard = CloseUnlessConnected(Some(t.clone()));
    waiter.await?;
    guard.0 = None;
    Ok(StreamWriter::new(t, proto))
}
