//! [`StreamWriter::sendfile`]: a file over a stream, by asyncio's `_sendfile_fallback`
//! (read a block, write it, `drain()`), the streams twin of
//! [`EventLoop::sock_sendfile`](crate::EventLoop::sock_sendfile).

use std::fs::File;

use super::StreamWriter;
use crate::exceptions::{Error, Result};
use crate::server::sendfile::{check_count, next_block, read_block, set_position};

/// The block size of [`StreamWriter::sendfile`]: the default high-water mark, so one
/// block that the socket does not take at once makes `drain()` wait.
pub const STREAM_SENDFILE_BLOCK: usize = 64 * 1024;

impl StreamWriter {
    /// Send `file` from byte `offset`, `count` bytes or up to its end when `None`,
    /// after whatever was written before (asyncio's `loop.sendfile(writer.transport,
    /// file, offset, count)`, which for a stream takes the fallback path); returns how
    /// many bytes were sent.
    ///
    /// Blocks of [`STREAM_SENDFILE_BLOCK`] are read from the file (with `pread`, on the
    /// loop's thread) and written, each followed by [`StreamWriter::drain`], so the
    /// transport's buffer stays bounded by its water marks. Afterwards (also after an
    /// error) the file's position is `offset` plus the bytes sent. Errors: the
    /// transport is closing (`RuntimeError("Transport is closing")`), `count ==
    /// Some(0)` (`ValueError`), a read error, or the connection's error from `drain`.
    /// Not cancel-safe: if dropped, a prefix may have been sent.
    pub async fn sendfile(&self, file: &File, offset: u64, count: Option<u64>) -> Result<u64> {
        if self.is_closing() {
            return Err(Error::runtime("Transport is closing"));
        }
        check_count(count)?;
        let block = next_block(STREAM_SENDFILE_BLOCK, count, 0);
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
                self.drain().await?;
                self.write(&buf[..n])?;
                sent += n as u64;
            }
        }
        .await;
        let r = match r {
            Ok(()) => self.drain().await,
            Err(e) => Err(e),
        };
        set_position(file, offset, sent);
        r.map(|()| sent)
    }
}
