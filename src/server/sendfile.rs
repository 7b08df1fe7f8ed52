//! Sending a file over a socket (asyncio 3.7's `loop.sock_sendfile()`, in
//! `base_events.py`), by asyncio's fallback: read a block of the file, send it, repeat.
//!
//! The kernel's `sendfile(2)` is not used: std does not expose it, and the crate takes
//! no dependency for it. The fallback is what asyncio itself does wherever
//! `os.sendfile` does not apply (TLS, Windows, a non-regular file, `fallback=True`
//! after a failure). Blocks are read with `pread` on the loop's thread (asyncio reads
//! in its executor): a file in the page cache reads faster than a thread hop, and a
//! cold file on a slow disk blocks the loop for one block's read.
//! [`StreamWriter::sendfile`](crate::StreamWriter::sendfile) is the same over a stream,
//! with `drain()` as flow control.

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::FileExt;

use crate::base_events::EventLoop;
use crate::exceptions::{Error, Result};
use crate::selector_events::AsyncSocket;

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

impl EventLoop {
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
