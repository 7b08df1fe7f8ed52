//! Subprocesses, the streams layer (asyncio's `subprocess.py`):
//! [`create_subprocess_exec`], [`create_subprocess_shell`] and [`Process`].
//!
//! ```
//! use asyncio::subprocess::{create_subprocess_exec, Stdio, SubprocessOptions};
//!
//! asyncio::run(async {
//!     let opts = SubprocessOptions::default()
//!         .stdin(Stdio::Pipe)
//!         .stdout(Stdio::Pipe);
//!     let mut proc = create_subprocess_exec("cat", [] as [&str; 0], opts).await?;
//!     let (out, err) = proc.communicate(Some(b"hello")).await?;
//!     assert_eq!(out.as_deref(), Some(&b"hello"[..]));
//!     assert_eq!(err, None); // stderr was not piped
//!     assert_eq!(proc.returncode(), Some(0));
//!     Ok::<(), asyncio::Error>(())
//! })
//! .unwrap()
//! .unwrap();
//! ```
//!
//! # `communicate` never deadlocks; `wait` can
//!
//! A child blocks when a pipe it writes to is full; the reader of that pipe pauses
//! reading once it holds `2 x limit` bytes. So a parent that only calls
//! [`Process::wait`] while the child writes more than that to a pipe nobody reads waits
//! for ever (asyncio's documented deadlock). [`Process::communicate`] writes the input,
//! and reads stdout and stderr to their ends, all at the same time, so every pipe keeps
//! moving whatever the sizes.

use std::cell::RefCell;
use std::ffi::OsStr;
use std::fmt;
use std::future::{poll_fn, Future as StdFuture};
use std::pin::pin;
use std::rc::Rc;
use std::task::Poll;

pub use crate::base_subprocess::{
    Stdio, SubprocessOptions, SubprocessProtocol, SubprocessTransport,
};
use crate::events::get_running_loop;
use crate::exceptions::{Error, Result};
use crate::protocols::{BaseProtocol, Protocol};
use crate::streams::{StreamReader, StreamReaderProtocol, StreamWriter};

/// The protocol behind a [`Process`] (asyncio's `SubprocessStreamProtocol`): feeds
/// the stdout and stderr readers and carries the stdin writer's flow control.
struct SubprocessStreamProtocol {
    /// The reader protocols of fds 1 and 2, and the stdin writer's protocol (fd 0; its
    /// own reader is never read).
    protos: [Option<Rc<StreamReaderProtocol>>; 3],
    transport: RefCell<Option<Rc<SubprocessTransport>>>,
}

impl SubprocessProtocol for SubprocessStreamProtocol {
    fn connection_made(&self, transport: Rc<SubprocessTransport>) {
        for fd in 0..3 {
            if let (Some(p), Some(t)) = (&self.protos[fd], transport.get_pipe_transport(fd as i32))
            {
                p.connection_made(t);
            }
        }
        *self.transport.borrow_mut() = Some(transport);
    }

    fn pipe_data_received(&self, fd: i32, data: &[u8]) {
        if let Some(Some(p)) = self.protos.get(fd as usize) {
            p.data_received(data);
        }
    }

    fn pipe_connection_lost(&self, fd: i32, exc: Option<Error>) {
        if let Some(Some(p)) = self.protos.get(fd as usize) {
            p.connection_lost(exc);
        }
    }

    fn connection_lost(&self, _exc: Option<Error>) {
        // asyncio's `_maybe_close_transport`: everything is over, let go.
        let t = self.transport.borrow_mut().take();
        if let Some(t) = t {
            t.close();
        }
    }

    fn pause_writing(&self) {
        if let Some(p) = &self.protos[0] {
            p.pause_writing();
        }
    }

    fn resume_writing(&self) {
        if let Some(p) = &self.protos[0] {
            p.resume_writing();
        }
    }
}

/// A child process with streams (asyncio's `asyncio.subprocess.Process`), made by
/// [`create_subprocess_exec`] or [`create_subprocess_shell`].
///
/// `stdin`, `stdout` and `stderr` are `Some` for the streams spawned as
/// [`Stdio::Pipe`]; take them out to use them from other tasks.
///
/// **Dropping** a `Process` does not kill the child (asyncio does not either): the
/// loop keeps watching it and reaps it when it exits. A stdin writer that was neither
/// closed nor taken is closed (with the writer's "unclosed" warning), so a child
/// waiting for its input's end sees EOF; the stdout and stderr pipes still held by the
/// `Process` are closed too (nobody can read them any more), so a child that goes on
/// writing gets `EPIPE` (or `SIGPIPE`) instead of blocking on a full pipe for ever.
/// Readers taken out of the `Process` stay open.
pub struct Process {
    /// The child's stdin, if piped.
    pub stdin: Option<StreamWriter>,
    /// The child's stdout, if piped.
    pub stdout: Option<StreamReader>,
    /// The child's stderr, if piped.
    pub stderr: Option<StreamReader>,
    transport: Rc<SubprocessTransport>,
}

impl fmt::Debug for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<Process {}>", self.transport.get_pid())
    }
}

impl Process {
    /// The child's process id (asyncio's `pid`).
    pub fn pid(&self) -> u32 {
        self.transport.get_pid()
    }

    /// The return code (asyncio's `returncode`): `None` while running, the exit code,
    /// or minus the signal number that killed the child (-9 for `SIGKILL`).
    pub fn returncode(&self) -> Option<i32> {
        self.transport.get_returncode()
    }

    /// The subprocess transport underneath.
    pub fn transport(&self) -> &Rc<SubprocessTransport> {
        &self.transport
    }

    /// Wait for the child to exit; its return code (asyncio's `wait()`). With piped
    /// output it also waits for the pipes to close, and a child that fills a pipe
    /// nobody reads blocks: use [`Process::communicate`] then. Cancel-safe: dropping
    /// the future changes nothing, and `wait` may be called again.
    pub async fn wait(&self) -> Result<i32> {
        self.transport.wait().await
    }

    /// Send `input` to stdin (if given) and close it, read stdout and stderr to EOF,
    /// all concurrently, then wait for the child (asyncio's `communicate()`); returns
    /// `(stdout, stderr)`, `None` for a stream that is not piped. A child that stops
    /// reading its input early is not an error (`BrokenPipe` / `ConnectionReset` on
    /// stdin are ignored, as asyncio does). Reads stdin only if piped: input for a
    /// child without a stdin pipe is dropped.
    ///
    /// Not cancel-safe: dropped mid-way, what was read so far is lost (the readers
    /// are put back, positioned after it).
    pub async fn communicate(
        &mut self,
        input: Option<&[u8]>,
    ) -> Result<(Option<Vec<u8>>, Option<Vec<u8>>)> {
        let stdin = self.stdin.as_ref();
        let feed = async move {
            let Some(w) = stdin else { return Ok(()) };
            if let Some(data) = input {
                let r = match w.write(data) {
                    Ok(()) => w.drain().await,
                    Err(e) => Err(e),
                };
                if let Err(e) = r {
                    match e.kind() {
                        std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset => {
                            log::debug!(target: "asyncio", "communicate: stdin got {e}");
                        }
                        _ if matches!(e, Error::Runtime(_)) => {
                            // Written after write_eof: nothing more to send.
                        }
                        _ => {
                            w.close();
                            return Err(e);
                        }
                    }
                }
            }
            w.close();
            Ok(())
        };
        let mut feed = pin!(feed);
        let mut out = pin!(read_all(self.stdout.as_mut()));
        let mut err = pin!(read_all(self.stderr.as_mut()));
        let (mut fr, mut or, mut er) = (None, None, None);
        poll_fn(|cx| {
            if fr.is_none() {
                if let Poll::Ready(r) = feed.as_mut().poll(cx) {
                    fr = Some(r);
                }
            }
            if or.is_none() {
                if let Poll::Ready(r) = out.as_mut().poll(cx) {
                    or = Some(r);
                }
            }
            if er.is_none() {
                if let Poll::Ready(r) = err.as_mut().poll(cx) {
                    er = Some(r);
                }
            }
            if fr.is_some() && or.is_some() && er.is_some() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
        let (fr, or, er) = (
            fr.unwrap_or(Ok(())),
            or.unwrap_or(Ok(None)),
            er.unwrap_or(Ok(None)),
        );
        fr?;
        let (o, e) = (or?, er?);
        self.transport.wait().await?;
        Ok((o, e))
    }

    /// Send the signal `sig` to the child (asyncio's `send_signal()`); see
    /// [`SubprocessTransport::send_signal`].
    pub fn send_signal(&self, sig: i32) -> Result<()> {
        self.transport.send_signal(sig)
    }

    /// `SIGTERM` the child (asyncio's `terminate()`).
    pub fn terminate(&self) -> Result<()> {
        self.transport.terminate()
    }

    /// `SIGKILL` the child (asyncio's `kill()`).
    pub fn kill(&self) -> Result<()> {
        self.transport.kill()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        for (fd, held) in [(1, self.stdout.is_some()), (2, self.stderr.is_some())] {
            if held {
                if let Some(t) = self.transport.get_pipe_transport(fd) {
                    t.close();
                }
            }
        }
    }
}

/// Read `r` to its end, if there is one.
async fn read_all(r: Option<&mut StreamReader>) -> Result<Option<Vec<u8>>> {
    match r {
        Some(r) => r.read_to_end().await.map(Some),
        None => Ok(None),
    }
}

/// Spawn `cmd` and wrap it into a [`Process`].
async fn create(program: &OsStr, args: Vec<&OsStr>, opts: SubprocessOptions) -> Result<Process> {
    let lp = get_running_loop()?;
    let limit = opts.limit;
    let reader = |on: bool| -> Result<Option<StreamReader>> {
        if on {
            StreamReader::with_limit(limit).map(Some)
        } else {
            Ok(None)
        }
    };
    let stdin_r = reader(matches!(opts.stdin, Stdio::Pipe))?;
    let stdout = reader(matches!(opts.stdout, Stdio::Pipe))?;
    let stderr = reader(matches!(opts.stderr, Stdio::Pipe))?;
    let protos = [
        stdin_r.as_ref().map(StreamReaderProtocol::new),
        stdout.as_ref().map(StreamReaderProtocol::new),
        stderr.as_ref().map(StreamReaderProtocol::new),
    ];
    let stdin_proto = protos[0].clone();
    let (transport, _p) = lp
        .subprocess_exec(
            move || SubprocessStreamProtocol {
                protos,
                transport: RefCell::new(None),
            },
            program,
            args,
            opts,
        )
        .await?;
    let stdin = match (stdin_proto, transport.get_pipe_transport(0)) {
        (Some(p), Some(t)) => Some(StreamWriter::new(t, p)),
        _ => None,
    };
    Ok(Process {
        stdin,
        stdout,
        stderr,
        transport,
    })
}

/// Run `program` with `args` and return a [`Process`] (asyncio's
/// `create_subprocess_exec()`). The streams asked for as [`Stdio::Pipe`] in `opts`
/// become `process.stdin` / `stdout` / `stderr` (readers with `opts.limit`); by
/// default all three are inherited. A missing program is an `Io` error of kind
/// `NotFound`. Must run inside a loop.
pub async fn create_subprocess_exec(
    program: impl AsRef<OsStr>,
    args: impl IntoIterator<Item = impl AsRef<OsStr>>,
    opts: SubprocessOptions,
) -> Result<Process> {
    let args: Vec<std::ffi::OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    create(
        program.as_ref(),
        args.iter().map(|a| a.as_os_str()).collect(),
        opts,
    )
    .await
}

/// Run `cmd` with the shell (`/bin/sh -c cmd`) and return a [`Process`] (asyncio's
/// `create_subprocess_shell()`); otherwise as [`create_subprocess_exec`].
pub async fn create_subprocess_shell(
    cmd: impl AsRef<OsStr>,
    opts: SubprocessOptions,
) -> Result<Process> {
    create(
        OsStr::new("/bin/sh"),
        vec![OsStr::new("-c"), cmd.as_ref()],
        opts,
    )
    .await
}
