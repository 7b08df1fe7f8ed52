//! Sending a file (asyncio 3.7's `loop.sendfile()` and `loop.sock_sendfile()`, in
//! `base_events.py`).
//!
//! Two paths, as in asyncio:
//!
//! - **the kernel's `sendfile(2)`** (cargo feature `sendfile`, through nix's safe
//!   wrapper; asyncio's `_sendfile_native` / `_sock_sendfile_native`): the bytes go
//!   from the page cache to the socket without a copy through user space. Over a
//!   transport, sending starts once its write buffer is empty (its water marks are
//!   lowered to 0 meanwhile, so `resume_writing` says when), on a duplicate of its
//!   socket registered for writability. A file the kernel cannot send from (`EINVAL`
//!   before anything was sent) takes the other path;
//! - **read and write** (the default, and the fallback; asyncio's
//!   `_sendfile_fallback`): read a block with `pread` on the loop's thread (asyncio
//!   reads in its executor: a page-cache read is cheaper than a thread hop, and a cold
//!   file on a slow disk blocks the loop for one block's read), send it, repeat.
//!
//! Over a transport, both follow asyncio: the transport's protocol is swapped for a
//! private stand-in (asyncio's `_SendfileFallbackProtocol`) that turns `pause_writing`
//! / `resume_writing` into a wait, reading is paused, and all is put back at the end
//! (also on error or cancellation). [`StreamWriter::sendfile`](crate::StreamWriter::sendfile)
//! is the copy path over a stream, with `drain()` as flow control.

use std::cell::{Cell, RefCell};
use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::rc::Rc;

use super::AnyProtocol;
use crate::base_events::EventLoop;
use crate::exceptions::{Error, Result};
use crate::futures::Future;
use crate::protocols::{BaseProtocol, Protocol};
use crate::selector_events::AsyncSocket;
use crate::transports::Transport;

/// asyncio's block size for `sendfile` over a transport (16 KiB there; 64 KiB here,
/// the default high-water mark, for fewer rounds).
pub const SENDFILE_TRANSPORT_BLOCK: usize = 64 * 1024;

/// asyncio's `SENDFILE_FALLBACK_READBUFFER_SIZE`: the block size of the fallback.
pub const SENDFILE_FALLBACK_READBUFFER_SIZE: usize = 256 * 1024;

/// asyncio's `_check_sendfile_params` for what a Rust type does not already ensure:
/// a `count` of zero is a `ValueError`.
pub(crate) fn check_count(count: Option<u64>) -> Result<()> {
    if count == Some(0) {
        return Err(Error::value("count must be a positive integer (got 0)"));
    }
    Ok(())
}

/// The next block to read: at most `block`, and at most what is left of `count`.
pub(crate) fn next_block(block: usize, count: Option<u64>, sent: u64) -> usize {
    match count {
        Some(c) => (c - sent).min(block as u64) as usize,
        None => block,
    }
}

/// Read up to `buf.len()` bytes of `file` at `at` (retrying `EINTR`); 0 means its end.
pub(crate) fn read_block(file: &File, buf: &mut [u8], at: u64) -> Result<usize> {
    loop {
        match file.read_at(buf, at) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// asyncio's rule after a send, successful or not: the file's position is just past
/// what was sent (when something was).
pub(crate) fn set_position(mut file: &File, offset: u64, sent: u64) {
    if sent > 0 {
        let _ = file.seek(SeekFrom::Start(offset + sent));
    }
}

/// asyncio's `_SendfileFallbackProtocol`: stands in for the transport's protocol while
/// a file is sent, so that flow control wakes the sender instead of the protocol.
struct FallbackProtocol {
    orig: AnyProtocol,
    /// The sender waits on this while the buffer is over the high-water mark.
    waiter: RefCell<Option<Future<()>>>,
    /// `pause_writing` came to us, so the next `resume_writing` is ours.
    paused_by_us: Cell<bool>,
    /// A `resume_writing` came that answers a pause the original protocol got: it is
    /// passed on when the original protocol is put back.
    owe_resume: Cell<bool>,
    /// `connection_lost` was called.
    lost: Cell<bool>,
}

impl FallbackProtocol {
    fn wake(&self, r: Result<()>) {
        if let Some(w) = self.waiter.borrow_mut().take() {
            if !w.done() {
                let _ = match r {
                    Ok(()) => w.set_result(()),
                    Err(e) => w.set_exception(e),
                };
            }
        }
    }
}

impl BaseProtocol for FallbackProtocol {
    fn connection_lost(&self, exc: Option<Error>) {
        self.lost.set(true);
        let e = match &exc {
            Some(e) => e.clone(),
            None => closed_by_peer(),
        };
        self.wake(Err(e));
        match &self.orig {
            AnyProtocol::Stream(p) => p.connection_lost(exc),
            AnyProtocol::Buffered(p) => p.connection_lost(exc),
        }
    }

    fn pause_writing(&self) {
        self.paused_by_us.set(true);
    }

    fn resume_writing(&self) {
        if !self.paused_by_us.replace(false) {
            self.owe_resume.set(true);
        }
        self.wake(Ok(()));
    }
}

impl Protocol for FallbackProtocol {
    fn data_received(&self, data: &[u8]) {
        // Reading is paused while the file is sent; pass on anything already read.
        if let AnyProtocol::Stream(p) = &self.orig {
            p.data_received(data);
        }
    }

    fn eof_received(&self) -> bool {
        match &self.orig {
            AnyProtocol::Stream(p) => p.eof_received(),
            AnyProtocol::Buffered(p) => p.eof_received(),
        }
    }
}

fn closed_by_peer() -> Error {
    Error::Io(io::Error::new(
        io::ErrorKind::ConnectionReset,
        "Connection closed by peer",
    ))
}

/// asyncio's `drain()` of the fallback protocol: wait while the write buffer is over
/// its high-water mark. Over it, the transport has called `pause_writing` (on the
/// stand-in, or on the original protocol before it), so a `resume_writing` will come.
async fn drain(lp: &EventLoop, transport: &Rc<dyn Transport>, fb: &FallbackProtocol) -> Result<()> {
    loop {
        if fb.lost.get() || transport.is_closing() {
            return Err(closed_by_peer());
        }
        let (_low, high) = transport.get_write_buffer_limits();
        if transport.get_write_buffer_size() <= high {
            return Ok(());
        }
        let w = lp.create_future::<()>();
        *fb.waiter.borrow_mut() = Some(w.clone());
        w.await?;
    }
}

/// Puts the original protocol back, resumes reading, and passes on a resume owed to
/// it (asyncio's `restore()`); on drop, so that an error or a cancellation restores
/// too.
struct Restore<'a> {
    transport: &'a Rc<dyn Transport>,
    fb: Rc<FallbackProtocol>,
    resume_reading: bool,
    /// The water marks `(high, low)` to put back (the kernel path lowers them to 0
    /// to learn when the buffer is empty).
    #[cfg_attr(not(feature = "sendfile"), allow(dead_code))]
    limits: Cell<Option<(usize, usize)>>,
}

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        self.fb.waiter.borrow_mut().take();
        if self.fb.lost.get() {
            return;
        }
        if let Some((high, low)) = self.limits.take() {
            let _ = self
                .transport
                .set_write_buffer_limits(Some(high), Some(low));
        }
        let _ = self.transport.set_protocol(self.fb.orig.clone());
        if self.resume_reading {
            self.transport.resume_reading();
        }
        if self.fb.owe_resume.get() {
            match &self.fb.orig {
                AnyProtocol::Stream(p) => p.resume_writing(),
                AnyProtocol::Buffered(p) => p.resume_writing(),
            }
        }
    }
}

impl EventLoop {
    /// Send `file` over `transport`, from byte `offset`, `count` bytes or up to the
    /// end of the file when `None`, after whatever the transport has buffered
    /// (asyncio's `loop.sendfile(transport, file, offset=0, count=None)`); returns how
    /// many bytes were written.
    ///
    /// While the file is sent, the transport's protocol is replaced (so its
    /// `pause_writing` / `resume_writing` wake this call instead) and reading is
    /// paused. With the `sendfile` feature the kernel sends the file once the
    /// transport's buffer is empty (see the module docs); otherwise, or for a file the
    /// kernel cannot send from, blocks of [`SENDFILE_TRANSPORT_BLOCK`] are read with
    /// `pread` and written, each once the write buffer is at or under its high-water
    /// mark. At the end (also on error, or if the future is dropped) the protocol,
    /// reading and the water marks are restored, and the file's position is `offset`
    /// plus the bytes sent. Returns when the last block is handed to the transport (or
    /// the kernel), not when it reached the peer. Do not write to the transport from
    /// elsewhere meanwhile: asyncio refuses such writes (`unable to write; sendfile is
    /// in progress`); here they are not refused, and on the kernel path they would
    /// interleave with the file.
    ///
    /// Errors: the transport is closing (`RuntimeError("Transport is closing")`), the
    /// transport cannot switch protocols (`RuntimeError`), `count == Some(0)`
    /// (`ValueError`), a read error, or the connection ends meanwhile
    /// (`ConnectionReset` "Connection closed by peer", or the connection's error).
    /// Not cancel-safe: if dropped, a prefix may have been written.
    pub async fn sendfile(
        &self,
        transport: &Rc<dyn Transport>,
        file: &File,
        offset: u64,
        count: Option<u64>,
    ) -> Result<u64> {
        self.inner.check_closed()?;
        if transport.is_closing() {
            return Err(Error::runtime("Transport is closing"));
        }
        check_count(count)?;
        let Some(orig) = transport.get_protocol() else {
            return Err(Error::runtime("Transport is closing"));
        };
        let fb = Rc::new(FallbackProtocol {
            orig,
            waiter: RefCell::new(None),
            paused_by_us: Cell::new(false),
            owe_resume: Cell::new(false),
            lost: Cell::new(false),
        });
        transport.set_protocol(AnyProtocol::Stream(fb.clone()))?;
        let resume_reading = transport.is_reading();
        transport.pause_reading();
        let restore = Restore {
            transport,
            fb: fb.clone(),
            resume_reading,
            limits: Cell::new(None),
        };
        let mut sent = 0u64;
        let r = async {
            #[cfg(feature = "sendfile")]
            if native::transport(
                self,
                transport,
                &fb,
                &restore.limits,
                file,
                offset,
                count,
                &mut sent,
            )
            .await?
            {
                return Ok(());
            }
            let block = next_block(SENDFILE_TRANSPORT_BLOCK, count, sent);
            let mut buf = vec![0u8; block];
            loop {
                let want = next_block(block, count, sent);
                if want == 0 {
                    return Ok(());
                }
                let n = read_block(file, &mut buf[..want], offset + sent)?;
                if n == 0 {
                    return Ok(());
                }
                drain(self, transport, &fb).await?;
                transport.write(&buf[..n])?;
                sent += n as u64;
            }
        }
        .await;
        drop(restore);
        set_position(file, offset, sent);
        r.map(|()| sent)
    }

    /// Send `file` over the connected socket `sock`, from byte `offset`, `count` bytes
    /// or up to the end of the file when `None` (asyncio's `sock_sendfile(sock, file,
    /// offset=0, count=None)`); returns how many bytes were sent.
    ///
    /// With the `sendfile` feature the kernel sends the file (see the module docs);
    /// otherwise blocks of [`SENDFILE_FALLBACK_READBUFFER_SIZE`] are read and sent with
    /// [`AsyncSocket::sendall`], so a slow peer slows the reading.
    /// Afterwards (also after an error), the file's position is `offset` plus the bytes
    /// sent, as in asyncio. `count == Some(0)`: `ValueError("count must be a positive
    /// integer (got 0)")`. Not cancel-safe: if the future is dropped, a prefix may have
    /// been sent (and the file position is then not moved).
    pub async fn sock_sendfile(
        &self,
        sock: &AsyncSocket<mio::net::TcpStream>,
        file: &File,
        offset: u64,
        count: Option<u64>,
    ) -> Result<u64> {
        self.inner.check_closed()?;
        check_count(count)?;
        let mut sent = 0u64;
        let r = async {
            #[cfg(feature = "sendfile")]
            {
                let dup = std::os::fd::AsFd::as_fd(sock.get_ref()).try_clone_to_owned()?;
                if native::send(self, dup, file, offset, count, &mut sent, || Ok(())).await? {
                    return Ok(());
                }
            }
            let block = next_block(SENDFILE_FALLBACK_READBUFFER_SIZE, count, sent);
            let mut buf = vec![0u8; block];
            loop {
                let want = next_block(block, count, sent);
                if want == 0 {
                    return Ok(());
                }
                let n = read_block(file, &mut buf[..want], offset + sent)?;
                if n == 0 {
                    return Ok(());
                }
                sock.sendall(&buf[..n]).await?;
                sent += n as u64;
            }
        }
        .await;
        set_position(file, offset, sent);
        r.map(|()| sent)
    }
}

/// The kernel's `sendfile(2)` (feature `sendfile`), through nix's safe wrapper.
#[cfg(feature = "sendfile")]
mod native {
    use std::cell::Cell;
    use std::fs::File;
    use std::future::poll_fn;
    use std::io;
    use std::os::fd::{AsRawFd, OwnedFd};
    use std::rc::Rc;

    use mio::unix::SourceFd;
    use mio::Interest;
    use nix::errno::Errno;

    use super::{closed_by_peer, drain, FallbackProtocol};
    use crate::base_events::EventLoop;
    use crate::exceptions::Result;
    use crate::selector_events::{IoWaiter, WRITABLE};
    use crate::transports::Transport;

    /// The most one `sendfile(2)` call is asked for; the loop yields between calls.
    const MAX_CALL: u64 = 4 << 20;

    /// A duplicate of the socket, registered with the loop for writability while the
    /// kernel sends (the transport's own registration stays as it is).
    struct Registered<'a> {
        lp: &'a EventLoop,
        fd: OwnedFd,
        token: usize,
        waiter: Rc<IoWaiter>,
    }

    impl<'a> Registered<'a> {
        fn new(lp: &'a EventLoop, fd: OwnedFd) -> Result<Registered<'a>> {
            let raw = fd.as_raw_fd();
            let waiter = IoWaiter::new(format!("sendfile socket fd={raw}"));
            let token = lp.inner.register_handler(
                &mut SourceFd(&raw),
                Some(raw),
                Interest::WRITABLE,
                waiter.clone(),
            )?;
            Ok(Registered {
                lp,
                fd,
                token,
                waiter,
            })
        }
    }

    impl Drop for Registered<'_> {
        fn drop(&mut self) {
            let raw = self.fd.as_raw_fd();
            drop(
                self.lp
                    .inner
                    .deregister_handler(&mut SourceFd(&raw), self.token),
            );
        }
    }

    /// Send with `sendfile(2)` straight to `sock`: `Ok(true)` when done, `Ok(false)`
    /// when the kernel cannot (nothing sent: use the copy path), `Err` otherwise;
    /// `sent` counts what went out either way.
    pub(super) async fn send(
        lp: &EventLoop,
        sock: OwnedFd,
        file: &File,
        offset: u64,
        count: Option<u64>,
        sent: &mut u64,
        alive: impl Fn() -> Result<()>,
    ) -> Result<bool> {
        let reg = Registered::new(lp, sock)?;
        loop {
            alive()?;
            let want = match count {
                Some(c) => (c - *sent).min(MAX_CALL),
                None => MAX_CALL,
            };
            if want == 0 {
                return Ok(true);
            }
            let Ok(mut off) = i64::try_from(offset + *sent) else {
                return Ok(*sent > 0);
            };
            match nix::sys::sendfile::sendfile64(&reg.fd, file, Some(&mut off), want as usize) {
                Ok(0) => return Ok(true), // the end of the file
                Ok(n) => {
                    *sent += n as u64;
                    // Other tasks and connections get their turn between calls.
                    crate::tasks::yield_now().await;
                }
                Err(Errno::EAGAIN) => {
                    reg.waiter.clear(WRITABLE);
                    poll_fn(|cx| reg.waiter.poll_ready(cx, WRITABLE)).await;
                }
                Err(Errno::EINTR) => {}
                // Not a file the kernel can send from (a pipe, a socket, ...).
                Err(Errno::EINVAL | Errno::ENOSYS | Errno::EOPNOTSUPP) if *sent == 0 => {
                    return Ok(false)
                }
                Err(e) => return Err(io::Error::from_raw_os_error(e as i32).into()),
            }
        }
    }

    /// `EventLoop::sendfile`'s kernel path (asyncio's `_sendfile_native`): wait until
    /// the transport's buffer is empty (water marks lowered to 0 meanwhile), then send
    /// on a duplicate of its socket. `Ok(false)`: use the copy path.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn transport(
        lp: &EventLoop,
        transport: &Rc<dyn Transport>,
        fb: &FallbackProtocol,
        limits: &Cell<Option<(usize, usize)>>,
        file: &File,
        offset: u64,
        count: Option<u64>,
        sent: &mut u64,
    ) -> Result<bool> {
        if transport.get_write_buffer_size() > 0 {
            let (low, high) = transport.get_write_buffer_limits();
            limits.set(Some((high, low)));
            transport.set_write_buffer_limits(Some(0), Some(0))?;
            drain(lp, transport, fb).await?;
            if let Some((high, low)) = limits.take() {
                transport.set_write_buffer_limits(Some(high), Some(low))?;
            }
        }
        let Some(sock) = transport.dup_socket() else {
            return Err(closed_by_peer());
        };
        let alive = || {
            if fb.lost.get() || transport.is_closing() {
                Err(closed_by_peer())
            } else {
                Ok(())
            }
        };
        send(lp, sock, file, offset, count, sent, alive).await
    }
}
