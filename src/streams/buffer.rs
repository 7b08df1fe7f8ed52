//! The byte buffer behind a [`StreamReader`](super::StreamReader), and the byte
//! searches its `readuntil` uses.
//!
//! asyncio keeps a `bytearray` and deletes consumed bytes from its front
//! (`del buf[:n]`), which moves every remaining byte on each read. [`ByteBuf`] is a
//! `Vec<u8>` with a read offset instead: consuming is `start += n`, O(1); the live
//! bytes are moved to the front only when room is needed at the back and the consumed
//! prefix is at least as large as what is left (so every byte is moved at most once
//! on average).
//!
//! Memory: a buffer owns no allocation while it is empty. When a read empties it, its
//! storage goes back to a small per-thread pool, and the next data takes a buffer from
//! that pool (no zeroing, no system call). An idle connection therefore holds no read
//! buffer at all, whatever traffic it had before.

use std::cell::RefCell;

/// The least room lent to a transport for one read.
const MIN_ROOM: usize = 4 * 1024;
/// The size of a fresh allocation when the pool is empty.
const INITIAL: usize = 16 * 1024;
/// The most room asked for because the previous read filled its room (asyncio reads
/// at most 256 KiB at once).
const MAX_ROOM: usize = 256 * 1024;
/// Buffers larger than this are freed rather than pooled.
const POOL_MAX_BUFFER: usize = 1024 * 1024;
/// At most this many bytes sit in one thread's pool.
const POOL_MAX_BYTES: usize = 16 * 1024 * 1024;
/// At most this many buffers sit in one thread's pool.
const POOL_MAX_COUNT: usize = 1024;

/// Released read buffers of this thread, reused last-in first-out (cache-warm).
struct Pool {
    bufs: Vec<Vec<u8>>,
    bytes: usize,
}

thread_local! {
    static POOL: RefCell<Pool> = const { RefCell::new(Pool { bufs: Vec::new(), bytes: 0 }) };
}

/// A buffer from the pool, or a fresh zeroed one of at least `want` bytes.
fn acquire(want: usize) -> Vec<u8> {
    let pooled = POOL
        .try_with(|p| {
            let mut p = p.borrow_mut();
            let v = p.bufs.pop();
            if let Some(v) = &v {
                p.bytes -= v.len();
            }
            v
        })
        .ok()
        .flatten();
    match pooled {
        Some(mut v) => {
            if v.len() < want {
                v.resize(want, 0);
            }
            v
        }
        // `vec![0; n]` asks the allocator for zeroed memory: fresh pages come zeroed
        // from the kernel, so a large buffer is not written twice.
        None => vec![0; want.max(INITIAL)],
    }
}

/// Give a buffer back to this thread's pool (or free it if the pool is full).
fn release(v: Vec<u8>) {
    if v.is_empty() || v.len() > POOL_MAX_BUFFER {
        return;
    }
    let _ = POOL.try_with(|p| {
        let mut p = p.borrow_mut();
        if p.bufs.len() < POOL_MAX_COUNT && p.bytes + v.len() <= POOL_MAX_BYTES {
            p.bytes += v.len();
            p.bufs.push(v);
        }
    });
}

/// A FIFO byte buffer: append at the back, consume from the front in O(1).
///
/// `data[start..end]` holds the live bytes; `data[end..]` is initialized room that
/// a transport can read into ([`ByteBuf::room`] / [`ByteBuf::commit`]).
#[derive(Default)]
pub(crate) struct ByteBuf {
    data: Vec<u8>,
    start: usize,
    end: usize,
    /// How much room the last [`ByteBuf::room`] lent.
    lent: usize,
    /// Whether the last lent room was filled completely (more data is likely waiting).
    filled: bool,
}

impl ByteBuf {
    /// How many live bytes the buffer holds.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.end - self.start
    }

    /// Whether no live byte is held.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.end == self.start
    }

    /// The live bytes.
    #[inline]
    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    /// Bytes of storage held (live bytes plus room), for tests and `Debug`.
    pub(crate) fn allocated(&self) -> usize {
        self.data.len()
    }

    /// Drop the first `n` live bytes (`n <= len`). An emptied buffer gives its storage
    /// back to the pool.
    #[inline]
    pub(crate) fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.len());
        self.start += n;
        if self.start == self.end {
            self.clear();
        }
    }

    /// Drop every live byte and give the storage back to the pool.
    pub(crate) fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
        release(std::mem::take(&mut self.data));
    }

    /// Give the storage back to the pool if no live byte is held. Consuming the last
    /// byte already does; this is for room lent to a read that then found nothing
    /// (`BufferedProtocol::buffer_unused`), so an idle connection holds no buffer.
    #[inline]
    pub(crate) fn release_if_empty(&mut self) {
        if self.is_empty() && !self.data.is_empty() {
            self.clear();
        }
    }

    /// Move the first `n` live bytes out (`n <= len`).
    pub(crate) fn take_front(&mut self, n: usize) -> Vec<u8> {
        let out = self.as_slice()[..n].to_vec();
        self.consume(n);
        out
    }

    /// Move every live byte out: copied into a `Vec` of their size, and the storage
    /// goes back to the pool. Only storage too large for the pool is handed over
    /// itself (no copy of a big buffer).
    ///
    /// Handing over every buffer would save the copy but cost more: the reader's next
    /// storage is then a fresh zeroed allocation (as much work as the copy), and with
    /// many connections the allocator keeps returning the top of its heap to the
    /// kernel and faulting it back in (measured: 3 page faults and twice tokio's CPU
    /// per 10 KiB message at 100 connections).
    pub(crate) fn take_all(&mut self) -> Vec<u8> {
        if self.start == 0 && self.data.len() > POOL_MAX_BUFFER && self.end * 2 >= self.data.len() {
            // Hand over the storage itself: no copy.
            let mut v = std::mem::take(&mut self.data);
            v.truncate(self.end);
            self.end = 0;
            return v;
        }
        let n = self.len();
        self.take_front(n)
    }

    /// Make sure at least `need` bytes of room follow the live bytes: compact when the
    /// consumed prefix is at least as large as the live part, else grow.
    fn reserve(&mut self, need: usize) {
        if self.data.len() - self.end >= need {
            return;
        }
        if self.data.is_empty() {
            self.data = acquire(need);
            return;
        }
        if self.start > 0 && self.start >= self.len() {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if self.data.len() - self.end >= need {
                return;
            }
        }
        let want = (self.end + need).max(self.data.len() * 2);
        self.data.resize(want, 0);
    }

    /// Append `bytes` (the copy path: `feed_data`).
    pub(crate) fn extend(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.reserve(bytes.len());
        self.data[self.end..self.end + bytes.len()].copy_from_slice(bytes);
        self.end += bytes.len();
    }

    /// Room to read into (the zero-copy path: `get_buffer`). At least 4 KiB; twice the
    /// last room, up to 256 KiB, when the last read filled it. Never more than 256 KiB
    /// (asyncio's `max_size`), even when the storage has more spare: one read must not
    /// overshoot the reader's pause threshold by more than that.
    pub(crate) fn room(&mut self) -> &mut [u8] {
        let need = if self.filled {
            (self.lent * 2).clamp(MIN_ROOM, MAX_ROOM)
        } else {
            MIN_ROOM
        };
        self.reserve(need);
        let end = self.data.len().min(self.end + MAX_ROOM);
        self.lent = end - self.end;
        &mut self.data[self.end..end]
    }

    /// `n` bytes were written at the start of the last [`ByteBuf::room`].
    pub(crate) fn commit(&mut self, n: usize) {
        let n = n.min(self.data.len() - self.end);
        self.filled = n == self.lent;
        self.end += n;
        if self.start == self.end {
            self.clear();
        }
    }

    /// The index (relative to the live bytes) of the first `needle` at or after
    /// `from`.
    pub(crate) fn find(&self, needle: &[u8], from: usize) -> Option<usize> {
        let hay = self.as_slice();
        if from >= hay.len() {
            return None;
        }
        find(&hay[from..], needle).map(|i| i + from)
    }
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// The first byte of `word` (little-endian order) that is zero, as a flag set.
/// Only the lowest flagged byte is exact, which is all a search needs.
#[inline(always)]
fn zero_flags(word: u64) -> u64 {
    word.wrapping_sub(LO) & !word & HI
}

#[inline(always)]
fn load(chunk: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(chunk);
    u64::from_le_bytes(b)
}

/// The index of the first `x` in `hay`: a word-at-a-time search (eight bytes per
/// step, two words per iteration), as fast as a plain loop can be without SIMD
/// intrinsics or `unsafe`.
pub(crate) fn memchr(x: u8, hay: &[u8]) -> Option<usize> {
    let rep = LO.wrapping_mul(u64::from(x));
    let mut chunks = hay.chunks_exact(16);
    let mut base = 0;
    for c in &mut chunks {
        let a = zero_flags(load(&c[..8]) ^ rep);
        let b = zero_flags(load(&c[8..]) ^ rep);
        if a | b != 0 {
            return Some(if a != 0 {
                base + (a.trailing_zeros() / 8) as usize
            } else {
                base + 8 + (b.trailing_zeros() / 8) as usize
            });
        }
        base += 16;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == x)
        .map(|i| base + i)
}

/// The index of the first `needle` in `hay` (`needle` non-empty): [`memchr`] for
/// the first byte, then a comparison.
pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    if rest.is_empty() {
        return memchr(first, hay);
    }
    let last_start = hay.len().checked_sub(needle.len())?;
    let mut i = 0;
    while i <= last_start {
        match memchr(first, &hay[i..=last_start]) {
            None => return None,
            Some(j) => {
                let at = i + j;
                if &hay[at + 1..at + needle.len()] == rest {
                    return Some(at);
                }
                i = at + 1;
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memchr_matches_a_plain_search() {
        let mut hay = vec![0u8; 300];
        for (i, b) in hay.iter_mut().enumerate() {
            *b = (i % 251) as u8 | 1;
        }
        for x in [0u8, 1, 7, 0x80, 0xff, b'\n'] {
            for len in 0..hay.len() {
                let h = &hay[..len];
                assert_eq!(
                    memchr(x, h),
                    h.iter().position(|&b| b == x),
                    "x={x} len={len}"
                );
            }
        }
        // Every position of a lone needle, including right after a 0x80..0xff byte
        // (the trick's borrow must not report a false match).
        for pos in 0..40 {
            let mut h = vec![0x81u8; 40];
            h[pos] = b'\n';
            assert_eq!(memchr(b'\n', &h), Some(pos));
            let mut h = vec![b'\n' + 1; 40];
            h[pos] = b'\n';
            assert_eq!(memchr(b'\n', &h), Some(pos));
        }
    }

    #[test]
    fn find_multi_byte() {
        assert_eq!(find(b"abc\r\n\r\nx", b"\r\n\r\n"), Some(3));
        assert_eq!(find(b"\r\n\r\r\n\r\n", b"\r\n\r\n"), Some(3));
        assert_eq!(find(b"\r\n\r", b"\r\n\r\n"), None);
        assert_eq!(find(b"", b"ab"), None);
        assert_eq!(find(b"ab", b"ab"), Some(0));
        assert_eq!(find(b"aab", b"ab"), Some(1));
    }

    #[test]
    fn consume_is_offset_and_empty_releases() {
        let mut b = ByteBuf::default();
        assert_eq!(b.allocated(), 0);
        b.extend(b"hello world");
        assert_eq!(b.as_slice(), b"hello world");
        assert_eq!(b.take_front(6), b"hello ");
        assert_eq!(b.as_slice(), b"world");
        assert_eq!(b.find(b"r", 0), Some(2));
        assert_eq!(b.find(b"r", 3), None);
        b.consume(5);
        assert!(b.is_empty());
        assert_eq!(b.allocated(), 0, "an empty buffer holds no storage");
    }

    #[test]
    fn room_and_commit_grow_when_filled() {
        let mut b = ByteBuf::default();
        let r = b.room();
        let first = r.len();
        assert!(first >= MIN_ROOM);
        r[..3].copy_from_slice(b"abc");
        b.commit(3);
        assert_eq!(b.as_slice(), b"abc");
        let n = b.room().len();
        b.room()[..n].fill(b'x');
        b.commit(n);
        assert_eq!(b.len(), 3 + n);
        // The last read filled its room: the next room is at least twice as large.
        assert!(b.room().len() >= (2 * n).min(MAX_ROOM));
        assert_eq!(&b.as_slice()[..3], b"abc");
    }

    #[test]
    fn room_never_exceeds_max_room() {
        let mut b = ByteBuf::default();
        // Grow the storage far beyond MAX_ROOM, then empty most of it.
        b.extend(&vec![7u8; 4 * MAX_ROOM]);
        b.consume(4 * MAX_ROOM - 1);
        for _ in 0..8 {
            let n = b.room().len();
            assert!(n <= MAX_ROOM, "lent {n}");
            b.room()[..n].fill(1);
            b.commit(n);
            assert!(b.room().len() <= MAX_ROOM);
        }
    }

    #[test]
    fn compaction_keeps_order() {
        let mut b = ByteBuf::default();
        let big: Vec<u8> = (0..40_000u32).map(|i| (i % 256) as u8).collect();
        b.extend(&big);
        b.consume(39_990);
        b.extend(&big);
        assert_eq!(&b.as_slice()[..10], &big[39_990..]);
        assert_eq!(&b.as_slice()[10..], &big[..]);
        assert_eq!(b.take_all().len(), 40_010);
        assert!(b.is_empty());
    }
}
