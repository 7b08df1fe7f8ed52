//! Sending a file (asyncio 3.7's `loop.sendfile()` and `loop.sock_sendfile()`, in
//! `base_events.py`), by asyncio's fallback: read a block of the file, send it, repeat.
//!
//! `sendfile(transport, ...)` follows asyncio's `_sendfile_fallback`: the transport's
//! protocol is swapped for a private one (asyncio's `_SendfileFallbackProtocol`) that
//! turns `pause_writing` / `resume_writing` into a wait, reading is paused, and both
//! are put back at the end (also on error or cancellation).
//!
//! The kernel's `sendfile(2)` is not used: std does not expose it, and the crate takes
//! no dependency for it. The fallback is what asyncio itself does wherever
//! `os.sendfile` does not apply (TLS, Windows, a non-regular file, `fallback=True`
//! after a failure). Blocks are read with `pread` on the loop's thread (asyncio reads
//! in its executor): a file in the page cache reads faster than a thread hop, and a
//! cold file on a slow disk blocks the loop for one block's read.
//! [`StreamWriter::sendfile`](crate::StreamWriter::sendfile) is the same over a stream,
//! with `drain()` as flow control.

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

/// Puts the original protocol back, resumes reading, and passes on a resume owed to
/// it (asyncio's `restore()`); on drop, so that an error or a cancellation restores
/// too.
struct Restore<'a> {
    transport: &'a Rc<dyn Transport>,
    fb: Rc<FallbackProtocol>,
    resume_reading: bool,
}

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        self.fb.waiter.borrow_mut().take();
        if self.fb.lost.get() {
            return;
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
    /// asyncio's fallback: while the file is sent, the transport's protocol is replaced
    /// (so its `pause_writing` / `resume_writing` wake this call instead) and reading
    /// is paused; blocks of [`SENDFILE_TRANSPORT_BLOCK`] are read with `pread` and
    /// written, each once the write buffer is at or under its high-water mark. At the
    /// end (also on error, or if the future is dropped) the protocol and reading are
    /// restored, and the file's position is `offset` plus the bytes written. Returns
    /// when the last block is handed to the transport, not when it reached the peer.
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
        };
        let block = next_block(SENDFILE_TRANSPORT_BLOCK, count, 0);
        let mut buf = vec![0u8; block];
        let mut sent = 0u64;
        let r = async {
            loop {
                let want = next_block(block, count, sent);
                if want == 0 {
                    return Ok(());
                }
                let n = read_block(file, &mut buf[..want], offset + sent)?;
                if n == 0 {
                    return Ok(());
                }
                // asyncio's `drain()` of the fallback protocol. Over the high-water
                // mark the transport has called pause_writing (on us, or on the
                // original protocol before we came), so a resume_writing will come.
                loop {
                    if fb.lost.get() || transport.is_closing() {
                        return Err(closed_by_peer());
                    }
                    let (_low, high) = transport.get_write_buffer_limits();
                    if transport.get_write_buffer_size() <= high {
                        break;
                    }
                    let w = self.create_future::<()>();
                    *fb.waiter.borrow_mut() = Some(w.clone());
                    w.await?;
                }
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
    /// Blocks of [`SENDFILE_FALLBACK_READBUFFER_SIZE`] are read and sent with
    /// [`AsyncSocket::sendall`], so a slow peer slows the reading (see the module docs).
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
        let block = next_block(SENDFILE_FALLBACK_READBUFFER_SIZE, count, 0);
        let mut buf = vec![0u8; block];
        let mut sent = 0u64;
        let r = async {
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
