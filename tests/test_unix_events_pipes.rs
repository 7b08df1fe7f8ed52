//! Pipe transports (CPython's `test_unix_events.py`, `UnixReadPipeTransportTests` and
//! `UnixWritePipeTransportTests`): the order of calls, EOF, pause/resume reading,
//! write flow control, broken pipes, close and abort, the fd-type check, and streams
//! over pipes.

use std::cell::{Cell, RefCell};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::rc::Rc;
use std::time::Duration;

use asyncio::{BaseProtocol, Error, ExtraInfo, Protocol};

fn run<T: 'static>(f: impl std::future::Future<Output = T> + 'static) -> T {
    asyncio::run(async move {
        asyncio::wait_for(f, Duration::from_secs(30))
            .await
            .expect("test timed out")
    })
    .unwrap()
}

/// A pipe as two owned fds: (read end, write end), blocking.
fn pipe() -> (OwnedFd, OwnedFd) {
    let (tx, rx) = mio::unix::pipe::new().unwrap();
    tx.set_nonblocking(false).unwrap();
    rx.set_nonblocking(false).unwrap();
    (OwnedFd::from(rx), OwnedFd::from(tx))
}

#[derive(Default)]
struct Rec {
    events: RefCell<Vec<String>>,
    data: RefCell<Vec<u8>>,
    lost: asyncio::Event,
    lost_kind: Cell<Option<ErrorKind>>,
    paused: Cell<u32>,
    resumed: Cell<u32>,
}

impl BaseProtocol for Rec {
    fn connection_made(&self, _t: Rc<dyn asyncio::Transport>) {
        self.events.borrow_mut().push("made".into());
    }
    fn connection_lost(&self, exc: Option<Error>) {
        self.events
            .borrow_mut()
            .push(format!("lost {}", exc.is_some()));
        self.lost_kind.set(exc.map(|e| e.kind()));
        self.lost.set();
    }
    fn pause_writing(&self) {
        self.paused.set(self.paused.get() + 1);
    }
    fn resume_writing(&self) {
        self.resumed.set(self.resumed.get() + 1);
    }
}

impl Protocol for Rec {
    fn data_received(&self, data: &[u8]) {
        let mut ev = self.events.borrow_mut();
        if ev.last().map(|e| e != "data").unwrap_or(true) {
            ev.push("data".into());
        }
        self.data.borrow_mut().extend_from_slice(data);
    }
    fn eof_received(&self) -> bool {
        self.events.borrow_mut().push("eof".into());
        true // ignored by pipes
    }
}

/// Let the loop run a few iterations.
async fn spin() {
    for _ in 0..5 {
        asyncio::sleep(Duration::ZERO).await;
    }
}

// ----- read pipes ------------------------------------------------------------------

#[test]
fn read_pipe_data_then_eof_then_lost() {
    run(async {
        let lp = asyncio::get_running_loop().unwrap();
        let (r, w) = pipe();
        let (t, p) = lp.connect_read_pipe(Rec::default, r).await.unwrap();
        assert_eq!(*p.events.borrow(), ["made"]);
        assert!(matches!(t.get_extra_info("pipe"), Some(ExtraInfo::Pipe(_))));
        assert_eq!(t.get_extra_info("peername"), None);
        let mut w = std::fs::File::from(w);
        w.write_all(b"hello").unwrap();
        drop(w);
        p.lost.wait().await;
        assert_eq!(*p.data.borrow(), b"hello");
        // eof_received then connection_lost(None); true from eof_received is ignored.
        assert_eq!(*p.events.borrow(), ["made", "data", "eof", "lost false"]);
        assert!(t.is_closing());
    });
}

#[test]
fn read_pipe_pause_and_resume() {
    run(async {
        let lp = asyncio::get_running_loop().unwrap();
        let (r, w) = pipe();
        let (t, p) = lp.connect_read_pipe(Rec::default, r).await.unwrap();
        assert!(t.is_reading());
        t.pause_reading();
        t.pause_reading(); // idempotent
        assert!(!t.is_reading());
        let mut w = std::fs::File::from(w);
        w.write_all(b"while paused").unwrap();
        spin().await;
        assert!(p.data.borrow().is_empty());
        t.resume_reading();
        assert!(t.is_reading());
        while p.data.borrow().len() < 12 {
            asyncio::sleep(Duration::ZERO).await;
        }
        assert_eq!(*p.data.borrow(), b"while paused");
        t.close();
        p.lost.wait().await;
        assert!(!t.is_reading());
        assert_eq!(p.events.borrow().last().unwrap(), "lost false");
    });
}

#[test]
fn read_pipe_close_is_connection_lost_none_once() {
    run(async {
        let lp = asyncio::get_running_loop().unwrap();
        let (r, _w) = pipe();
        let (t, p) = lp.connect_read_pipe(Rec::default, r).await.unwrap();
        t.close();
        t.close();
        assert!(t.is_closing());
        p.lost.wait().await;
        spin().await;
        assert_eq!(*p.events.borrow(), ["made", "lost false"]);
    });
}

#[test]
fn read_pipe_reads_large_data_in_order() {
    run(async {
        let lp = asyncio::get_running_loop().unwrap();
        let (r, w) = pipe();
        let (_t, p) = lp.connect_read_pipe(Rec::default, r).await.unwrap();
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
        let d = data.clone();
        let writer = std::thread::spawn(move || {
            let mut w = std::fs::File::from(w);
            w.write_all(&d).unwrap();
        });
        p.lost.wait().await;
        writer.join().unwrap();
        assert!(*p.data.borrow() == data);
    });
}

#[test]
fn regular_file_is_a_value_error() {
    run(async {
        let lp = asyncio::get_running_loop().unwrap();
        let f = std::fs::File::open("Cargo.toml").unwrap();
        let e = lp.connect_read_pipe(Rec::default, f).await.err().unwrap();
        assert_eq!(
            e.to_string(),
            "ValueError: Pipe transport is for pipes/sockets only."
        );
        let f = std::fs::File::open("Cargo.toml").unwrap();
        let e = lp.connect_write_pipe(Rec::default, f).await.err().unwrap();
        assert!(matches!(e, Error::Value(_)));
    });
}

#[test]
fn read_pipe_cannot_write() {
    run(async {
        let lp = asyncio::get_running_loop().unwrap();
        let (r, _w) = pipe();
        let (t, p) = lp.connect_read_pipe(Rec::default, r).await.unwrap();
        // The protocol's Rc<dyn Transport> has an inert write half.
        let made: Rc<dyn asyncio::Transport> = {
            struct Keep(RefCell<Option<Rc<dyn asyncio::Transport>>>);
            impl BaseProtocol for Keep {
                fn connection_made(&self, t: Rc<dyn asyncio::Transport>) {
                    *self.0.borrow_mut() = Some(t);
                }
            }
            impl Protocol for Keep {}
            let (r2, _w2) = pipe();
            let (_t, k) = lp
                .connect_read_pipe(|| Keep(RefCell::new(None)), r2)
                .await
                .unwrap();
            let t = k.0.borrow_mut().take().unwrap();
            t
        };
        assert!(made.write(b"x").is_err());
        assert!(!made.can_write_eof());
        assert_eq!(made.get_write_buffer_size(), 0);
        made.close();
        t.close();
        p.lost.wait().await;
    });
}

// ----- write pipes -----------------------------------------------------------------

#[test]
fn write_pipe_writes_and_closes_after_flush() {
    run(async {
        let lp = asyncio::get_running_loop().unwrap();
        let (r, w) = pipe();
        let (t, p) = lp.connect_write_pipe(Rec::default, w).await.unwrap();
        assert!(t.can_write_eof());
        assert!(matches!(t.get_extra_info("pipe"), Some(ExtraInfo::Pipe(_))));
        t.write(b"abc").unwrap();
        t.writelines(&[b"de", b"f"]).unwrap();
        t.write(b"").unwrap();
        t.close();
        assert!(t.is_closing());
        p.lost.wait().await;
        assert_eq!(*p.events.borrow(), ["made", "lost false"]);
        let mut got = Vec::new();
        std::fs::File::from(r).read_to_end(&mut got).unwrap();
        assert_eq!(got, b"abcdef");
    });
}

#[test]
fn write_pipe_flow_control_and_flush_on_close() {
    run(async {
        let lp = asyncio::get_running_loop().unwrap();
        let (r, w) = pipe();
        let (t, p) = lp.connect_write_pipe(Rec::default, w).await.unwrap();
        assert_eq!(t.get_write_buffer_limits(), (16384, 65536));
        t.set_write_buffer_limits(Some(1000), None).unwrap();
        assert_eq!(t.get_write_buffer_limits(), (250, 1000));
        assert!(t.set_write_buffer_limits(Some(1), Some(2)).is_err());
        // Nobody reads: the pipe (64 KiB on Linux) fills and the rest is buffered.
        let chunk = vec![7u8; 64 * 1024];
        for _ in 0..8 {
            t.write(&chunk).unwrap();
        }
        assert!(t.get_write_buffer_size() > 1000);
        assert_eq!(p.paused.get(), 1, "pause_writing once");
        assert_eq!(p.resumed.get(), 0);
        t.close(); // flushes first
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            std::fs::File::from(r).read_to_end(&mut got).unwrap();
            got.len()
        });
        p.lost.wait().await;
        assert_eq!(p.resumed.get(), 1, "resume_writing once drained");
        assert_eq!(t.get_write_buffer_size(), 0);
        assert_eq!(reader.join().unwrap(), 8 * 64 * 1024);
        assert_eq!(p.lost_kind.get(), None);
    });
}

#[test]
fn write_pipe_broken_pipe_on_write() {
    run(async {
        let lp = asyncio::get_running_loop().unwrap();
        let (r, w) = pipe();
        let (t, p) = lp.connect_write_pipe(Rec::default, w).await.unwrap();
        drop(r);
        spin().await;
        // Either the error edge closed it already, or this write meets EPIPE.
        t.write(b"into the void").unwrap();
        p.lost.wait().await;
        assert!(t.is_closing());
        // Writes after the loss are dropped, not errors.
        for _ in 0..6 {
            t.write(b"more").unwrap();
        }
        assert_eq!(t.get_write_buffer_size(), 0);
    });
}

#[test]
fn write_pipe_broken_pipe_with_data_buffered() {
    run(async {
        let lp = asyncio::get_running_loop().unwrap();
        let (r, w) = pipe();
        let (t, p) = lp.connect_write_pipe(Rec::default, w).await.unwrap();
        let chunk = vec![1u8; 256 * 1024];
        t.write(&chunk).unwrap();
        assert!(t.get_write_buffer_size() > 0);
        drop(r);
        p.lost.wait().await;
        assert_eq!(p.lost_kind.get(), Some(ErrorKind::BrokenPipe));
        assert_eq!(*p.events.borrow(), ["made", "lost true"]);
        assert_eq!(t.get_write_buffer_size(), 0);
    });
}

#[test]
fn write_pipe_abort_drops_the_buffer() {
    run(async {
        let lp = asyncio::get_running_loop().unwrap();
        let (r, w) = pipe();
        let (t, p) = lp.connect_write_pipe(Rec::default, w).await.unwrap();
        t.write(&vec![2u8; 256 * 1024]).unwrap();
        t.abort();
        assert_eq!(t.get_write_buffer_size(), 0);
        p.lost.wait().await;
        assert_eq!(*p.events.borrow(), ["made", "lost false"]);
        let mut got = Vec::new();
        std::fs::File::from(r).read_to_end(&mut got).unwrap();
        assert!(got.len() < 256 * 1024, "the buffered part was dropped");
    });
}

#[test]
fn write_pipe_write_after_write_eof_is_an_error() {
    run(async {
        let lp = asyncio::get_running_loop().unwrap();
        let (r, w) = pipe();
        let (t, p) = lp.connect_write_pipe(Rec::default, w).await.unwrap();
        t.write(b"last").unwrap();
        t.write_eof().unwrap();
        t.write_eof().unwrap();
        let e = t.write(b"x").unwrap_err();
        assert_eq!(
            e.to_string(),
            "RuntimeError: Cannot call write() after write_eof()"
        );
        p.lost.wait().await;
        let mut got = Vec::new();
        std::fs::File::from(r).read_to_end(&mut got).unwrap();
        assert_eq!(got, b"last");
    });
}

#[test]
fn pipe_fds_are_closed_by_the_transports() {
    run(async {
        let lp = asyncio::get_running_loop().unwrap();
        let (r, w) = pipe();
        let (rfd, wfd) = (r.as_raw_fd(), w.as_raw_fd());
        let link = |fd: i32| std::fs::read_link(format!("/proc/self/fd/{fd}")).ok();
        let name = link(rfd).unwrap();
        assert!(name.to_string_lossy().starts_with("pipe:"));
        let (rt, rp) = lp.connect_read_pipe(Rec::default, r).await.unwrap();
        let (wt, wp) = lp.connect_write_pipe(Rec::default, w).await.unwrap();
        wt.write(b"x").unwrap();
        wt.close();
        wp.lost.wait().await;
        rp.lost.wait().await;
        assert_eq!(*rp.data.borrow(), b"x");
        drop((rt, wt));
        // Both fds are closed: free, or reused for something that is not this pipe.
        for fd in [rfd, wfd] {
            assert_ne!(link(fd).as_ref(), Some(&name), "fd {fd} still open");
        }
    });
}

// ----- streams over pipes ----------------------------------------------------------

#[test]
fn stream_reader_and_writer_over_pipes() {
    run(async {
        let (r, w) = pipe();
        let writer = asyncio::streams::open_write_pipe(w).await.unwrap();
        let mut reader = asyncio::streams::open_read_pipe(r).await.unwrap();
        let big = vec![b'z'; 300 * 1024];
        writer.write(b"first line\n").unwrap();
        writer.write(&big).unwrap();
        let w = Rc::new(writer);
        let w2 = w.clone();
        let feeder = asyncio::create_task(async move {
            w2.drain().await.unwrap();
            w2.write(b"\nlast\n").unwrap();
            w2.close();
            w2.wait_closed().await.unwrap();
        });
        assert_eq!(reader.readline().await.unwrap(), b"first line\n");
        assert_eq!(reader.readexactly(big.len()).await.unwrap(), big);
        assert_eq!(reader.readline().await.unwrap(), b"\n");
        assert_eq!(reader.next_line().await.unwrap().unwrap(), b"last\n");
        assert!(reader.next_line().await.is_none());
        feeder.await.unwrap();
        assert!(w.transport().is_closing());
    });
}

#[test]
fn stream_writer_drain_reports_broken_pipe() {
    run(async {
        let (r, w) = pipe();
        let writer = asyncio::streams::open_write_pipe(w).await.unwrap();
        drop(r);
        let mut err = None;
        for _ in 0..100 {
            if writer.write(&[0u8; 65536]).is_err() {
                break;
            }
            if let Err(e) = writer.drain().await {
                err = Some(e);
                break;
            }
        }
        // BrokenPipe if a write met EPIPE; asyncio's ConnectionResetError("Connection
        // lost") if the reader's going away closed the idle transport first.
        let e = err.expect("drain reported the broken pipe");
        assert!(
            matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset),
            "{e:?}"
        );
    });
}

#[test]
fn fifo_both_ways() {
    use std::os::unix::fs::OpenOptionsExt;
    run(async {
        let lp = asyncio::get_running_loop().unwrap();
        let dir = std::env::temp_dir().join(format!("asyncio-fifo-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        let path = dir.join("fifo");
        let st = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .unwrap();
        assert!(st.success());
        // Open the read end non-blocking first, so that neither open waits.
        let r = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .unwrap();
        let w = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        let (_rt, rp) = lp.connect_read_pipe(Rec::default, r).await.unwrap();
        let (wt, wp) = lp.connect_write_pipe(Rec::default, w).await.unwrap();
        wt.write(b"through the fifo").unwrap();
        wt.close();
        wp.lost.wait().await;
        rp.lost.wait().await;
        assert_eq!(*rp.data.borrow(), b"through the fifo");
        assert_eq!(*rp.events.borrow(), ["made", "data", "eof", "lost false"]);
        std::fs::remove_dir_all(&dir).unwrap();
    });
}

#[test]
fn a_character_device_epoll_cannot_watch_is_an_error_not_a_panic() {
    run(async {
        let lp = asyncio::get_running_loop().unwrap();
        // /dev/null passes the type check, but epoll refuses it (EPERM), as with asyncio.
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .unwrap();
        let r = lp.connect_write_pipe(Rec::default, f).await;
        assert!(matches!(r, Err(Error::Io(_))), "{:?}", r.err());
    });
}

/// Cancel `fut` (run as a task) after its first step, then let the loop turn.
async fn start_then_cancel(fut: impl std::future::Future<Output = ()> + 'static) {
    let task = asyncio::create_task(fut);
    asyncio::sleep(Duration::ZERO).await;
    assert!(!task.done(), "the connection waits for connection_made");
    task.cancel();
    asyncio::sleep(Duration::ZERO).await;
}

#[test]
fn open_write_pipe_cancelled_before_it_returns_closes_the_pipe() {
    // asyncio's connect_write_pipe closes the transport when its wait is cancelled;
    // kept open, the reader of the pipe would never see EOF.
    run(async {
        let (r, w) = pipe();
        start_then_cancel(async move {
            let _ = asyncio::streams::open_write_pipe(w).await;
        })
        .await;
        let mut reader = asyncio::streams::open_read_pipe(r).await.unwrap();
        let eof = asyncio::wait_for(reader.read_to_end(), Duration::from_secs(10)).await;
        assert!(eof
            .expect("no EOF: the cancelled write pipe is still open")
            .unwrap()
            .is_empty());
    });
}

#[test]
fn connect_read_pipe_cancelled_before_it_returns_closes_the_pipe() {
    run(async {
        let lp = asyncio::get_running_loop().unwrap();
        let (r, w) = pipe();
        start_then_cancel(async move {
            let _ = lp.connect_read_pipe(Rec::default, r).await;
        })
        .await;
        // With the read end closed, a write fails with EPIPE.
        let mut w = std::fs::File::from(w);
        for _ in 0..2000 {
            match w.write(b"x") {
                Err(e) if e.kind() == ErrorKind::BrokenPipe => return,
                r => {
                    r.unwrap();
                }
            }
            asyncio::sleep(Duration::from_millis(5)).await;
        }
        panic!("the cancelled read pipe is still open");
    });
}
