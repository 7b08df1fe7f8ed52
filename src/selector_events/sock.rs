//! Low-level socket coroutines (asyncio's `loop.sock_recv()`, `sock_sendall()`,
//! `sock_connect()`, `sock_accept()`, `sock_recvfrom()`, ...) and the public readiness
//! primitive they are built on.
//!
//! asyncio passes a plain non-blocking socket to each call and registers a reader or
//! writer callback for the duration of the call. Here a socket is wrapped once in an
//! [`AsyncSocket`], which registers it with the loop for its whole life (one
//! `epoll_ctl` instead of two per call) and remembers readiness. Every operation tries
//! the syscall first and waits only on `WouldBlock`, as asyncio does.
//!
//! | asyncio | here |
//! |---|---|
//! | `await loop.sock_recv(sock, n)` | `lp.sock_recv(&sock, n).await` or `sock.recv(n).await` |
//! | `await loop.sock_recv_into(sock, buf)` | `sock.recv_into(&mut buf).await` |
//! | `await loop.sock_sendall(sock, data)` | `sock.sendall(data).await` |
//! | `await loop.sock_connect(sock, addr)` | `AsyncSocket::connect(&lp, addr).await` |
//! | `await loop.sock_accept(sock)` | `listener.accept().await` |
//! | `await loop.sock_recvfrom(sock, n)` | `lp.sock_recvfrom(&sock, n).await` or `sock.recvfrom(n).await` |
//! | `await loop.sock_sendto(sock, data, addr)` | `sock.sendto(data, &addr).await` |
//! | `loop.add_reader(fd, cb)` + a future | `sock.readable().await`, `sock.try_io(..)`, `sock.async_io(..)` |
//!
//! # The readiness primitive
//!
//! [`AsyncSocket`] wraps any mio source that has an fd: mio's sockets (TCP, UDP, Unix
//! stream and datagram), pipes (`mio::unix::pipe`), or a type of your own that holds an
//! fd and implements [`Source`] through [`mio::unix::SourceFd`]. Its
//! [`readable`](AsyncSocket::readable) / [`writable`](AsyncSocket::writable) /
//! [`poll_read_ready`](AsyncSocket::poll_read_ready) /
//! [`poll_write_ready`](AsyncSocket::poll_write_ready) /
//! [`try_io`](AsyncSocket::try_io) / [`async_io`](AsyncSocket::async_io) let a task
//! wait for readiness and build its own adapters (tokio's `AsyncFd`; asyncio has no
//! twin beyond `add_reader` / `add_writer`, whose callbacks a coroutine would wrap in
//! a future). The contract:
//!
//! - **Edge-triggered, remembered.** The loop records each readiness edge mio reports;
//!   `readable()` returns at once while the read readiness is remembered. A new
//!   `AsyncSocket` starts ready in both directions (the first attempt is always the
//!   syscall).
//! - **Clear on `WouldBlock`, and only then.** After a syscall returned `WouldBlock`,
//!   clear the readiness ([`clear_read_ready`](AsyncSocket::clear_read_ready), or let
//!   `try_io` / `async_io` do it); the next wake-up comes with the next edge. Clearing
//!   after a successful, partial, or short operation may wait forever for data that
//!   is already there. Read-closed, write-closed and error events count as ready for
//!   the direction they concern (the syscall then reports EOF or the error).
//! - **One waiter per direction.** One task may wait to read and one to write at a
//!   time; a second task polling the same direction replaces the first's waker (as
//!   asyncio's `add_reader` replaces the previous reader).
//! - **Cancel safety.** Waiting consumes nothing: dropping a `readable()` /
//!   `writable()` / `async_io` future between attempts loses no readiness and no data.
//!
//! ```
//! use std::io::{Read, Write};
//! use mio::Interest;
//!
//! asyncio::run(async {
//!     let lp = asyncio::get_running_loop()?;
//!     let (mut tx, rx) = mio::unix::pipe::new()?;
//!     let rx = asyncio::AsyncSocket::new(&lp, rx)?;
//!     tx.write_all(b"ready")?;
//!     let mut buf = [0; 16];
//!     let n = rx.async_io(Interest::READABLE, |mut r| r.read(&mut buf)).await?;
//!     assert_eq!(&buf[..n], b"ready");
//!     // Drained: the next try gets WouldBlock and clears the readiness.
//!     let e = rx.try_io(Interest::READABLE, |mut r| r.read(&mut buf)).unwrap_err();
//!     assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
//!     Ok::<_, asyncio::Error>(())
//! }).unwrap().unwrap();
//! ```
//!
//! A fd of your own needs only a type that says how to register it (mio's
//! [`SourceFd`](mio::unix::SourceFd) does the work) and what its fd is:
//!
//! ```
//! use std::io::{self, Read, Write};
//! use std::fs::File;
//! use std::os::fd::{AsRawFd, OwnedFd, RawFd};
//! use mio::{event::Source, unix::SourceFd, Interest, Registry, Token};
//!
//! /// Any non-blocking fd, held as a `File` so that `&File` reads and writes it.
//! struct MyFd(File);
//!
//! impl AsRawFd for MyFd {
//!     fn as_raw_fd(&self) -> RawFd {
//!         self.0.as_raw_fd()
//!     }
//! }
//!
//! impl Source for MyFd {
//!     fn register(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
//!         SourceFd(&self.0.as_raw_fd()).register(r, t, i)
//!     }
//!     fn reregister(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
//!         SourceFd(&self.0.as_raw_fd()).reregister(r, t, i)
//!     }
//!     fn deregister(&mut self, r: &Registry) -> io::Result<()> {
//!         SourceFd(&self.0.as_raw_fd()).deregister(r)
//!     }
//! }
//!
//! asyncio::run(async {
//!     let lp = asyncio::get_running_loop()?;
//!     let (mut peer, mine) = std::os::unix::net::UnixStream::pair()?;
//!     mine.set_nonblocking(true)?;
//!     let fd: OwnedFd = mine.into();
//!     let sock = asyncio::AsyncSocket::new(&lp, MyFd(File::from(fd)))?;
//!     peer.write_all(b"hi")?;
//!     let mut buf = [0; 8];
//!     let n = sock.async_io(Interest::READABLE, |s| (&s.0).read(&mut buf)).await?;
//!     assert_eq!(&buf[..n], b"hi");
//!     Ok::<_, asyncio::Error>(())
//! }).unwrap().unwrap();
//! ```
//!
//! Cancellation of the `sock_*` operations: dropping an operation's future leaves the
//! socket registered and unchanged (nothing was consumed: a `recv` that did not
//! complete read nothing; a `sendall` that is dropped may have sent a prefix, as in
//! asyncio). Dropping the [`AsyncSocket`] deregisters it from the loop and closes the
//! socket.

use std::fmt;
use std::future::poll_fn;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::task::{Context, Poll};

use mio::event::Source;
use mio::Interest;

use super::{IoWaiter, READABLE, WRITABLE};
use crate::base_events::EventLoop;
use crate::exceptions::{Error, Result};

/// A non-blocking socket (or any fd) registered with a loop: the socket argument of
/// asyncio's `sock_*` methods, and the public readiness primitive (see the module
/// docs for its contract). `S` is a mio source with an fd: `TcpStream`,
/// `TcpListener`, `UnixStream`, `UnixListener`, `UdpSocket`, `UnixDatagram`, a pipe
/// end, or your own type over [`mio::unix::SourceFd`].
pub struct AsyncSocket<S: Source + AsRawFd> {
    sock: Option<S>,
    waiter: Rc<IoWaiter>,
    token: usize,
    lp: EventLoop,
}

impl<S: Source + AsRawFd> AsyncSocket<S> {
    /// Register `sock` (which must be non-blocking, as every mio socket is) with `lp`
    /// for reading and writing. Errors if the fd is already watched by the loop (a
    /// transport or `add_reader`) or the loop is closed.
    pub fn new(lp: &EventLoop, mut sock: S) -> Result<AsyncSocket<S>> {
        let fd = sock.as_raw_fd();
        let waiter = IoWaiter::new(format!("socket fd={fd}"));
        let token = lp.inner.register_handler(
            &mut sock,
            Some(fd),
            Interest::READABLE | Interest::WRITABLE,
            waiter.clone(),
        )?;
        Ok(AsyncSocket {
            sock: Some(sock),
            waiter,
            token,
            lp: lp.clone(),
        })
    }

    /// The socket.
    pub fn get_ref(&self) -> &S {
        self.sock
            .as_ref()
            .expect("present until into_inner or drop")
    }

    /// Deregister from the loop and give the socket back.
    pub fn into_inner(mut self) -> S {
        let mut s = self.sock.take().expect("present until into_inner or drop");
        let h = self.lp.inner.deregister_handler(&mut s, self.token);
        drop(h);
        s
    }

    // ----- the public readiness primitive (tokio's `AsyncFd`) ----------------------

    /// Poll for read readiness: `Ready(Ok(()))` once the loop has seen the socket
    /// readable (or read-closed, or in error) since the last
    /// [`clear_read_ready`](AsyncSocket::clear_read_ready); otherwise the task's waker
    /// is stored and woken on the next readable edge. A fresh `AsyncSocket` starts
    /// ready (the first attempt is always the syscall itself). `Err` only if the loop
    /// is closed. One waker per direction: a second task polling the same direction
    /// replaces the first one's waker.
    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.poll_mask(cx, READABLE)
    }

    /// Poll for write readiness: as [`poll_read_ready`](AsyncSocket::poll_read_ready)
    /// for the write side.
    pub fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.poll_mask(cx, WRITABLE)
    }

    /// Wait until the socket is readable (see
    /// [`poll_read_ready`](AsyncSocket::poll_read_ready)). Returns at once while the
    /// readiness is remembered: after a syscall returned `WouldBlock`, call
    /// [`clear_read_ready`](AsyncSocket::clear_read_ready) or this keeps returning at
    /// once. Cancel-safe: dropping the future loses nothing.
    pub async fn readable(&self) -> Result<()> {
        poll_fn(|cx| self.poll_read_ready(cx)).await
    }

    /// Wait until the socket is writable; as [`readable`](AsyncSocket::readable).
    pub async fn writable(&self) -> Result<()> {
        poll_fn(|cx| self.poll_write_ready(cx)).await
    }

    /// Forget the read readiness: a syscall returned `WouldBlock`. mio's poll is
    /// edge-triggered, so the next wake-up comes only with the next edge; clearing
    /// after anything other than `WouldBlock` can make a task wait for data that is
    /// already there.
    pub fn clear_read_ready(&self) {
        self.waiter.clear(READABLE);
    }

    /// Forget the write readiness (a send returned `WouldBlock`); as
    /// [`clear_read_ready`](AsyncSocket::clear_read_ready).
    pub fn clear_write_ready(&self) {
        self.waiter.clear(WRITABLE);
    }

    /// Try one non-blocking operation now: if the socket is not known ready for
    /// `interest`, return `WouldBlock` without calling `f`; otherwise call `f` and, if
    /// it returns `WouldBlock`, clear that readiness. `f` must return `WouldBlock` only
    /// when the socket did. `interest` is [`Interest::READABLE`] or
    /// [`Interest::WRITABLE`] (both: ready if either is).
    pub fn try_io<T>(
        &self,
        interest: Interest,
        f: impl FnOnce(&S) -> io::Result<T>,
    ) -> io::Result<T> {
        let mask = mask_of(interest);
        if !self.waiter.is_ready(mask) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let r = f(self.get_ref());
        if matches!(&r, Err(e) if e.kind() == io::ErrorKind::WouldBlock) {
            self.waiter.clear(mask);
        }
        r
    }

    /// Run `f` until it stops returning `WouldBlock`, waiting for `interest` readiness
    /// in between (tokio's `async_io`; asyncio's "try the syscall, then `add_reader`").
    /// `Interrupted` retries at once. Cancel-safe if `f` is: between calls of `f` the
    /// future only waits.
    pub async fn async_io<T>(
        &self,
        interest: Interest,
        f: impl FnMut(&S) -> io::Result<T>,
    ) -> Result<T> {
        self.io(mask_of(interest), f).await
    }

    fn poll_mask(&self, cx: &mut Context<'_>, mask: u8) -> Poll<Result<()>> {
        if self.lp.is_closed() {
            return Poll::Ready(Err(Error::runtime("Event loop is closed")));
        }
        self.waiter.poll_ready(cx, mask).map(Ok)
    }

    /// Run `op` until it stops returning `WouldBlock`, waiting for `mask` readiness in
    /// between.
    pub(crate) async fn io<T>(
        &self,
        mask: u8,
        mut op: impl FnMut(&S) -> io::Result<T>,
    ) -> Result<T> {
        poll_fn(|cx| loop {
            match self.poll_mask(cx, mask) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {}
            }
            match op(self.get_ref()) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.waiter.clear(mask),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                r => return Poll::Ready(r.map_err(Error::from)),
            }
        })
        .await
    }
}

/// The readiness bits of a mio interest.
fn mask_of(interest: Interest) -> u8 {
    let mut m = 0;
    if interest.is_readable() {
        m |= READABLE;
    }
    if interest.is_writable() {
        m |= WRITABLE;
    }
    m
}

impl<S: Source + AsRawFd> AsyncSocket<S>
where
    for<'a> &'a S: Read + Write,
{
    /// Receive up to `n` bytes (asyncio's `sock_recv`); an empty vector means EOF.
    /// Cancel-safe: a dropped call consumed nothing.
    pub async fn recv(&self, n: usize) -> Result<Vec<u8>> {
        let mut buf = vec![0; n];
        let got = self.recv_into(&mut buf).await?;
        buf.truncate(got);
        Ok(buf)
    }

    /// Receive into `buf` (asyncio's `sock_recv_into`); 0 means EOF (or an empty
    /// `buf`). Cancel-safe.
    pub async fn recv_into(&self, buf: &mut [u8]) -> Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.io(READABLE, |mut s| s.read(buf)).await
    }

    /// Send all of `data` (asyncio's `sock_sendall`). Not cancel-safe: if dropped, a
    /// prefix may have been sent.
    pub async fn sendall(&self, data: &[u8]) -> Result<()> {
        let mut sent = 0;
        while sent < data.len() {
            let n = self.io(WRITABLE, |mut s| s.write(&data[sent..])).await?;
            if n == 0 {
                return Err(io::Error::from(io::ErrorKind::WriteZero).into());
            }
            sent += n;
        }
        Ok(())
    }
}

impl AsyncSocket<mio::net::TcpStream> {
    /// Connect to `addr` (asyncio's `sock_connect`): a non-blocking `connect`, then
    /// wait until the socket is writable and check its error. Dropping the future
    /// closes the half-open socket.
    pub async fn connect(lp: &EventLoop, addr: SocketAddr) -> Result<Self> {
        let s = AsyncSocket::new(lp, mio::net::TcpStream::connect(addr)?)?;
        loop {
            poll_fn(|cx| s.waiter.poll_ready(cx, WRITABLE)).await;
            if let Some(e) = s.get_ref().take_error()? {
                return Err(e.into());
            }
            match s.get_ref().peer_addr() {
                Ok(_) => return Ok(s),
                // Still connecting: a spurious wake-up.
                Err(e) if e.kind() == io::ErrorKind::NotConnected => s.waiter.clear(WRITABLE),
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl AsyncSocket<mio::net::TcpListener> {
    /// Accept a connection (asyncio's `sock_accept`). Cancel-safe.
    pub async fn accept(&self) -> Result<(mio::net::TcpStream, SocketAddr)> {
        self.io(READABLE, |s| s.accept()).await
    }
}

impl AsyncSocket<mio::net::UnixListener> {
    /// Accept a connection on a Unix socket (asyncio's `sock_accept`). Cancel-safe.
    pub async fn accept(&self) -> Result<(mio::net::UnixStream, std::os::unix::net::SocketAddr)> {
        self.io(READABLE, |s| s.accept()).await
    }
}

impl<S: Source + AsRawFd> AsRawFd for AsyncSocket<S> {
    fn as_raw_fd(&self) -> RawFd {
        self.get_ref().as_raw_fd()
    }
}

impl<S: Source + AsRawFd> Drop for AsyncSocket<S> {
    fn drop(&mut self) {
        if let Some(mut s) = self.sock.take() {
            let h = self.lp.inner.deregister_handler(&mut s, self.token);
            drop(h);
        }
    }
}

impl<S: Source + AsRawFd> fmt::Debug for AsyncSocket<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncSocket")
            .field("fd", &self.sock.as_ref().map(|s| s.as_raw_fd()))
            .finish()
    }
}

impl EventLoop {
    /// asyncio's `sock_recv(sock, n)`: see [`AsyncSocket::recv`].
    pub async fn sock_recv<S>(&self, sock: &AsyncSocket<S>, n: usize) -> Result<Vec<u8>>
    where
        S: Source + AsRawFd,
        for<'a> &'a S: Read + Write,
    {
        sock.recv(n).await
    }

    /// asyncio's `sock_recv_into(sock, buf)`: see [`AsyncSocket::recv_into`].
    pub async fn sock_recv_into<S>(&self, sock: &AsyncSocket<S>, buf: &mut [u8]) -> Result<usize>
    where
        S: Source + AsRawFd,
        for<'a> &'a S: Read + Write,
    {
        sock.recv_into(buf).await
    }

    /// asyncio's `sock_sendall(sock, data)`: see [`AsyncSocket::sendall`].
    pub async fn sock_sendall<S>(&self, sock: &AsyncSocket<S>, data: &[u8]) -> Result<()>
    where
        S: Source + AsRawFd,
        for<'a> &'a S: Read + Write,
    {
        sock.sendall(data).await
    }

    /// asyncio's `sock_connect(sock, addr)`, which here also makes the socket: see
    /// [`AsyncSocket::connect`].
    pub async fn sock_connect(&self, addr: SocketAddr) -> Result<AsyncSocket<mio::net::TcpStream>> {
        AsyncSocket::connect(self, addr).await
    }

    /// asyncio's `sock_accept(sock)` on a TCP listener: see
    /// [`AsyncSocket::<mio::net::TcpListener>::accept`](AsyncSocket::accept).
    pub async fn sock_accept(
        &self,
        listener: &AsyncSocket<mio::net::TcpListener>,
    ) -> Result<(mio::net::TcpStream, SocketAddr)> {
        listener.accept().await
    }
}
