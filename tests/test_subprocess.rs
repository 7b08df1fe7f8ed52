//! Subprocesses (CPython's `test_subprocess.py`): stdin to stdout through `cat`,
//! `communicate` with 10 MB each way, stderr to stdout, signals and return codes, exec
//! failure, 100 children at once, `wait` cancelled and called again, a child exiting
//! before its output is read, the protocol layer's order of calls, and fd counts.
//!
//! The tests take a process-wide lock: the fd-count test counts `/proc/self/fd`, which
//! every test of this binary shares.

use std::cell::RefCell;
use std::io::ErrorKind;
use std::rc::Rc;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use asyncio::subprocess::{
    create_subprocess_exec, create_subprocess_shell, Stdio, SubprocessOptions, SubprocessProtocol,
    SubprocessTransport,
};
use asyncio::{wait_for, Error};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Run `f` on a fresh loop, bounded by 60 s.
fn run<T: 'static>(f: impl std::future::Future<Output = T> + 'static) -> T {
    asyncio::run(async move {
        wait_for(f, Duration::from_secs(60))
            .await
            .expect("test timed out")
    })
    .unwrap()
}

fn piped() -> SubprocessOptions {
    SubprocessOptions::default()
        .stdin(Stdio::Pipe)
        .stdout(Stdio::Pipe)
        .stderr(Stdio::Pipe)
}

fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

const NO_ARGS: [&str; 0] = [];

#[test]
fn stdin_to_stdout_through_cat() {
    let _g = serial();
    run(async {
        let mut p = create_subprocess_exec("cat", NO_ARGS, piped())
            .await
            .unwrap();
        let stdin = p.stdin.take().unwrap();
        let stdout = p.stdout.as_mut().unwrap();
        for i in 0..5 {
            let line = format!("line {i}\n");
            stdin.write(line.as_bytes()).unwrap();
            stdin.drain().await.unwrap();
            assert_eq!(stdout.readline().await.unwrap(), line.as_bytes());
        }
        stdin.close();
        stdin.wait_closed().await.unwrap();
        assert_eq!(stdout.read_to_end().await.unwrap(), b"");
        assert_eq!(p.wait().await.unwrap(), 0);
        assert_eq!(p.returncode(), Some(0));
    });
}

#[test]
fn communicate_10_mb_each_way_without_deadlock() {
    let _g = serial();
    run(async {
        const N: usize = 10 * 1024 * 1024;
        let input: Vec<u8> = (0..N).map(|i| (i % 251) as u8).collect();
        // cat echoes the input while it is being written (both pipes fill up many
        // times over), then 10 MB go to stderr.
        let mut p =
            create_subprocess_exec("sh", ["-c", "cat; head -c 10485760 /dev/zero >&2"], piped())
                .await
                .unwrap();
        let (out, err) = p.communicate(Some(&input)).await.unwrap();
        assert!(out.unwrap() == input, "stdout differs from the input");
        let err = err.unwrap();
        assert_eq!(err.len(), N);
        assert!(err.iter().all(|&b| b == 0));
        assert_eq!(p.returncode(), Some(0));
    });
}

#[test]
fn communicate_without_pipes_returns_none() {
    let _g = serial();
    run(async {
        let opts = SubprocessOptions::default()
            .stdout(Stdio::DevNull)
            .stderr(Stdio::DevNull);
        let mut p = create_subprocess_exec("sh", ["-c", "exit 4"], opts)
            .await
            .unwrap();
        assert!(p.stdin.is_none() && p.stdout.is_none() && p.stderr.is_none());
        assert_eq!(p.communicate(None).await.unwrap(), (None, None));
        assert_eq!(p.returncode(), Some(4));
    });
}

#[test]
fn communicate_ignores_a_child_that_does_not_read() {
    let _g = serial();
    run(async {
        let mut p = create_subprocess_exec("sh", ["-c", "exec 0<&-; echo done"], piped())
            .await
            .unwrap();
        let big = vec![b'x'; 1024 * 1024];
        let (out, err) = p.communicate(Some(&big)).await.unwrap();
        assert_eq!(out.unwrap(), b"done\n");
        assert_eq!(err.unwrap(), b"");
        assert_eq!(p.returncode(), Some(0));
    });
}

#[test]
fn stderr_to_stdout() {
    let _g = serial();
    run(async {
        let opts = SubprocessOptions::default()
            .stdout(Stdio::Pipe)
            .stderr(Stdio::Stdout);
        let mut p = create_subprocess_shell("echo out; echo err >&2; echo out2", opts)
            .await
            .unwrap();
        assert!(p.stderr.is_none());
        let (out, err) = p.communicate(None).await.unwrap();
        assert_eq!(out.unwrap(), b"out\nerr\nout2\n");
        assert_eq!(err, None);
    });
}

#[test]
fn stdout_cannot_be_stdout() {
    let _g = serial();
    run(async {
        let opts = SubprocessOptions::default().stdout(Stdio::Stdout);
        let e = create_subprocess_exec("true", NO_ARGS, opts)
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Value(_)), "{e:?}");
    });
}

async fn sleeper() -> asyncio::subprocess::Process {
    // exec: the signal reaches sleep itself, not a shell waiting for it.
    create_subprocess_exec("sh", ["-c", "exec sleep 30"], SubprocessOptions::default())
        .await
        .unwrap()
}

#[test]
fn kill_terminate_send_signal_return_codes() {
    let _g = serial();
    run(async {
        let p = sleeper().await;
        assert_eq!(p.returncode(), None);
        p.kill().unwrap();
        assert_eq!(p.wait().await.unwrap(), -9);
        assert_eq!(p.returncode(), Some(-9));
        // After wait() the process is gone: asyncio's ProcessLookupError (ESRCH).
        let e = p.kill().unwrap_err();
        assert_eq!(e.kind(), io_kind_esrch(), "{e:?}");

        let p = sleeper().await;
        p.terminate().unwrap();
        assert_eq!(p.wait().await.unwrap(), -15);

        let p = sleeper().await;
        p.send_signal(1).unwrap(); // SIGHUP
        assert_eq!(p.wait().await.unwrap(), -1);
    });
}

#[test]
fn exit_codes() {
    let _g = serial();
    run(async {
        for code in [0, 1, 7, 255] {
            let p = create_subprocess_shell(format!("exit {code}"), SubprocessOptions::default())
                .await
                .unwrap();
            assert_eq!(p.wait().await.unwrap(), code);
        }
    });
}

#[test]
fn exec_failure_is_not_found_and_leaks_no_fd() {
    let _g = serial();
    run(async {
        // Warm up: the loop's child watcher takes its fds on the first spawn.
        let p = create_subprocess_exec("true", NO_ARGS, piped())
            .await
            .unwrap();
        p.wait().await.unwrap();
        let before = fd_count();
        for _ in 0..3 {
            let e = create_subprocess_exec("/nonexistent/program", NO_ARGS, piped())
                .await
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::NotFound, "{e:?}");
        }
        assert_eq!(fd_count(), before);
    });
}

#[test]
fn fd_count_unchanged_after_children_exit() {
    let _g = serial();
    run(async {
        let p = create_subprocess_exec("true", NO_ARGS, piped())
            .await
            .unwrap();
        p.wait().await.unwrap();
        let before = fd_count();
        for _ in 0..10 {
            let mut p = create_subprocess_exec("sh", ["-c", "cat; echo err >&2"], piped())
                .await
                .unwrap();
            let (out, err) = p.communicate(Some(b"in")).await.unwrap();
            assert_eq!(
                (out.unwrap(), err.unwrap()),
                (b"in".to_vec(), b"err\n".to_vec())
            );
            drop(p);
        }
        // connection_lost and the pipes' release run as callbacks: let them run.
        asyncio::sleep(Duration::ZERO).await;
        assert_eq!(fd_count(), before);
    });
}

#[test]
fn hundred_concurrent_children() {
    let _g = serial();
    run(async {
        let mut tasks = Vec::new();
        for i in 0..100 {
            tasks.push(asyncio::create_task(async move {
                let mut p = create_subprocess_exec(
                    "sh",
                    ["-c", &format!("echo {i}; exit {}", i % 7)],
                    SubprocessOptions::default().stdout(Stdio::Pipe),
                )
                .await
                .unwrap();
                let (out, _) = p.communicate(None).await.unwrap();
                (i, out.unwrap(), p.returncode())
            }));
        }
        for t in tasks {
            let (i, out, code) = t.await.unwrap();
            assert_eq!(out, format!("{i}\n").as_bytes());
            assert_eq!(code, Some(i % 7));
        }
    });
}

#[test]
fn wait_cancelled_and_called_again() {
    let _g = serial();
    run(async {
        let p = sleeper().await;
        let r = wait_for(p.wait(), Duration::from_millis(20)).await;
        assert!(matches!(r, Err(Error::Timeout)), "{r:?}");
        assert_eq!(p.returncode(), None);
        p.kill().unwrap();
        assert_eq!(p.wait().await.unwrap(), -9);
        assert_eq!(p.wait().await.unwrap(), -9);
    });
}

#[test]
fn process_exits_before_its_output_is_read() {
    let _g = serial();
    run(async {
        let mut p = create_subprocess_shell(
            "echo early; echo late >&2",
            SubprocessOptions::default()
                .stdout(Stdio::Pipe)
                .stderr(Stdio::Pipe),
        )
        .await
        .unwrap();
        assert_eq!(p.wait().await.unwrap(), 0);
        assert_eq!(
            p.stdout.as_mut().unwrap().read_to_end().await.unwrap(),
            b"early\n"
        );
        assert_eq!(
            p.stderr.as_mut().unwrap().read_to_end().await.unwrap(),
            b"late\n"
        );
    });
}

#[test]
fn env_and_cwd() {
    let _g = serial();
    run(async {
        let opts = SubprocessOptions::default()
            .stdout(Stdio::Pipe)
            .env_clear()
            .env("ASYNCIO_TEST", "value")
            .cwd("/");
        let mut p = create_subprocess_exec("/bin/sh", ["-c", "echo $ASYNCIO_TEST; pwd"], opts)
            .await
            .unwrap();
        let (out, _) = p.communicate(None).await.unwrap();
        assert_eq!(out.unwrap(), b"value\n/\n");
    });
}

#[test]
fn dropped_process_is_reaped_not_killed() {
    let _g = serial();
    run(async {
        let (tx, rx) = std::os::unix::net::UnixStream::pair().unwrap();
        drop(tx);
        // The child waits for a line on a pipe we hold: it runs until we write it.
        let p = create_subprocess_exec(
            "sh",
            ["-c", "read x; exit 3"],
            SubprocessOptions::default().stdin(Stdio::Pipe),
        )
        .await
        .unwrap();
        drop(rx);
        let pid = p.pid();
        let stdin = {
            let mut p = p;
            p.stdin.take().unwrap()
        }; // the Process is dropped here
        let stat = format!("/proc/{pid}/stat");
        assert!(
            std::path::Path::new(&stat).exists(),
            "the dropped child was killed"
        );
        stdin.write(b"go\n").unwrap();
        stdin.close();
        // Bounded: the child exits at once; the loop's watcher reaps it.
        for _ in 0..1000 {
            if !std::path::Path::new(&stat).exists() {
                return;
            }
            asyncio::sleep(Duration::from_millis(5)).await;
        }
        panic!("the child of a dropped Process was not reaped");
    });
}

#[derive(Default)]
struct Recorder {
    events: RefCell<Vec<String>>,
    done: asyncio::Event,
    transport: RefCell<Option<Rc<SubprocessTransport>>>,
}

impl SubprocessProtocol for Recorder {
    fn connection_made(&self, transport: Rc<SubprocessTransport>) {
        self.events.borrow_mut().push("made".into());
        *self.transport.borrow_mut() = Some(transport);
    }
    fn pipe_data_received(&self, fd: i32, data: &[u8]) {
        self.events.borrow_mut().push(format!(
            "data {fd} {}",
            String::from_utf8_lossy(data).trim()
        ));
    }
    fn pipe_connection_lost(&self, fd: i32, exc: Option<Error>) {
        self.events
            .borrow_mut()
            .push(format!("pipe lost {fd} {}", exc.is_some()));
    }
    fn process_exited(&self) {
        self.events.borrow_mut().push("exited".into());
    }
    fn connection_lost(&self, exc: Option<Error>) {
        self.events
            .borrow_mut()
            .push(format!("lost {}", exc.is_some()));
        self.done.set();
    }
}

#[test]
fn protocol_layer_order_of_calls() {
    let _g = serial();
    run(async {
        let lp = asyncio::get_running_loop().unwrap();
        let (t, p) = lp
            .subprocess_shell(
                Recorder::default,
                "read x; echo got $x",
                SubprocessOptions::pipes(),
            )
            .await
            .unwrap();
        assert_eq!(p.events.borrow()[0], "made");
        assert!(t.get_pid() > 0);
        assert!(t.get_pipe_transport(0).is_some());
        assert!(t.get_pipe_transport(1).is_some());
        assert!(t.get_pipe_transport(3).is_none());
        let stdin = t.get_pipe_transport(0).unwrap();
        stdin.write(b"it\n").unwrap();
        stdin.close();
        p.done.wait().await;
        assert_eq!(t.wait().await.unwrap(), 0);
        let ev = p.events.borrow().clone();
        let pos = |s: &str| {
            ev.iter()
                .position(|e| e == s)
                .unwrap_or_else(|| panic!("{s} in {ev:?}"))
        };
        assert!(pos("data 1 got it") < pos("pipe lost 1 false"));
        assert!(pos("pipe lost 0 false") < pos("lost false"));
        assert!(pos("pipe lost 2 false") < pos("lost false"));
        assert!(pos("exited") < pos("lost false"));
        assert_eq!(ev.last().unwrap(), "lost false");
        // After connection_lost the process is gone: asyncio's ProcessLookupError.
        let e = t.send_signal(15).unwrap_err();
        assert_eq!(e.kind(), io_kind_esrch());
        drop(p.transport.borrow_mut().take());
    });
}

fn io_kind_esrch() -> ErrorKind {
    std::io::Error::from_raw_os_error(3).kind()
}

#[test]
fn close_kills_a_running_child() {
    let _g = serial();
    run(async {
        let lp = asyncio::get_running_loop().unwrap();
        let (t, p) = lp
            .subprocess_exec(
                Recorder::default,
                "sleep",
                ["30"],
                SubprocessOptions::pipes(),
            )
            .await
            .unwrap();
        t.close();
        assert!(t.is_closing());
        p.done.wait().await;
        assert_eq!(t.get_returncode(), Some(-9));
        drop(p.transport.borrow_mut().take());
    });
}

struct Panicky {
    lost: asyncio::Event,
}

impl SubprocessProtocol for Panicky {
    fn pipe_data_received(&self, _fd: i32, _data: &[u8]) {
        panic!("boom in pipe_data_received");
    }
    fn connection_lost(&self, _exc: Option<Error>) {
        self.lost.set();
    }
}

#[test]
fn a_panicking_protocol_is_reported_and_the_process_goes_on() {
    let _g = serial();
    run(async {
        let lp = asyncio::get_running_loop().unwrap();
        let seen = Rc::new(RefCell::new(Vec::new()));
        let s = seen.clone();
        lp.set_exception_handler(Some(
            move |_lp: &asyncio::EventLoop, ctx: &asyncio::ExceptionContext| {
                s.borrow_mut()
                    .push(format!("{} {:?}", ctx.message, ctx.exception));
            },
        ));
        let (t, p) = lp
            .subprocess_shell(
                || Panicky {
                    lost: asyncio::Event::new(),
                },
                "echo one; echo two >&2",
                SubprocessOptions::pipes(),
            )
            .await
            .unwrap();
        p.lost.wait().await;
        assert_eq!(t.wait().await.unwrap(), 0);
        let seen = seen.borrow();
        assert!(!seen.is_empty());
        assert!(
            seen.iter()
                .all(|m| m.contains("boom in pipe_data_received")),
            "{seen:?}"
        );
    });
}

#[test]
fn children_left_running_at_loop_close_are_reaped_later() {
    let _g = serial();
    let lp = asyncio::EventLoop::new().unwrap();
    let pid = lp
        .run_until_complete(async {
            // Still running when the loop closes; exits a moment later.
            let p = create_subprocess_exec("sleep", ["0.3"], SubprocessOptions::default())
                .await
                .unwrap();
            assert_eq!(p.returncode(), None);
            p.pid()
        })
        .unwrap();
    lp.close().unwrap();
    let stat = format!("/proc/{pid}/stat");
    // A later loop on this thread sweeps the orphan on its watcher's wake-ups.
    run(async move {
        for _ in 0..1000 {
            let p = create_subprocess_exec("true", NO_ARGS, SubprocessOptions::default())
                .await
                .unwrap();
            p.wait().await.unwrap();
            if !std::path::Path::new(&stat).exists() {
                return;
            }
            asyncio::sleep(Duration::from_millis(5)).await;
        }
        panic!("the orphan {pid} was never reaped");
    });
}

#[test]
fn a_dropped_process_does_not_leave_its_child_blocked_on_a_full_pipe() {
    let _g = serial();
    run(async {
        // Far more than a pipe and the reader's 2 x limit hold.
        let p = create_subprocess_shell(
            "head -c 20000000 /dev/zero",
            SubprocessOptions::default().stdout(Stdio::Pipe),
        )
        .await
        .unwrap();
        let stat = format!("/proc/{}/stat", p.pid());
        drop(p);
        for _ in 0..2000 {
            if !std::path::Path::new(&stat).exists() {
                return;
            }
            asyncio::sleep(Duration::from_millis(5)).await;
        }
        panic!("the child of a dropped Process stayed blocked (or unreaped)");
    });
}

#[test]
fn stdout_to_a_given_fd_which_the_parent_then_closes() {
    let _g = serial();
    run(async {
        let (tx, rx) = mio::unix::pipe::new().unwrap();
        tx.set_nonblocking(false).unwrap();
        let opts = SubprocessOptions::default()
            .stdout(Stdio::Fd(std::os::fd::OwnedFd::from(tx)))
            .stderr(Stdio::Stdout);
        let p = create_subprocess_shell("echo to-fd; echo err-too >&2", opts)
            .await
            .unwrap();
        assert!(p.stdout.is_none());
        assert_eq!(p.wait().await.unwrap(), 0);
        // The parent's copy of the write end was closed after the spawn: EOF comes.
        let mut reader = asyncio::streams::open_read_pipe(rx).await.unwrap();
        assert_eq!(reader.read_to_end().await.unwrap(), b"to-fd\nerr-too\n");
    });
}

#[test]
fn creation_cancelled_midway_still_reaps_the_child() {
    let _g = serial();
    run(async {
        let lp = asyncio::get_running_loop().unwrap();
        let pid = Rc::new(std::cell::Cell::new(0u32));
        struct Made(Rc<std::cell::Cell<u32>>);
        impl SubprocessProtocol for Made {
            fn connection_made(&self, t: Rc<SubprocessTransport>) {
                self.0.set(t.get_pid());
            }
        }
        let p2 = pid.clone();
        let l2 = lp.clone();
        let task = asyncio::create_task(async move {
            let _ = l2
                .subprocess_exec(
                    move || Made(p2),
                    "sleep",
                    ["0.2"],
                    SubprocessOptions::pipes(),
                )
                .await;
        });
        // Cancel after the spawn, while subprocess_exec waits for connection_made.
        asyncio::sleep(Duration::ZERO).await;
        task.cancel();
        while pid.get() == 0 {
            asyncio::sleep(Duration::from_millis(1)).await;
        }
        let stat = format!("/proc/{}/stat", pid.get());
        for _ in 0..2000 {
            if !std::path::Path::new(&stat).exists() {
                return;
            }
            asyncio::sleep(Duration::from_millis(5)).await;
        }
        panic!("the child of a cancelled subprocess_exec was not reaped");
    });
}

#[test]
fn creation_cancelled_midway_kills_a_child_that_would_run_on() {
    // asyncio's `_make_subprocess_transport` closes the transport (killing the child)
    // when the wait for `connection_made` is cancelled. `cat` on a stdin pipe nobody
    // will ever close would otherwise run (and hold its pipes) until the loop closes.
    let _g = serial();
    run(async {
        let lp = asyncio::get_running_loop().unwrap();
        let pid = Rc::new(std::cell::Cell::new(0u32));
        struct Made(Rc<std::cell::Cell<u32>>);
        impl SubprocessProtocol for Made {
            fn connection_made(&self, t: Rc<SubprocessTransport>) {
                self.0.set(t.get_pid());
            }
        }
        let p2 = pid.clone();
        let l2 = lp.clone();
        let task = asyncio::create_task(async move {
            let _ = l2
                .subprocess_exec(move || Made(p2), "cat", NO_ARGS, SubprocessOptions::pipes())
                .await;
        });
        asyncio::sleep(Duration::ZERO).await;
        task.cancel();
        while pid.get() == 0 {
            asyncio::sleep(Duration::from_millis(1)).await;
        }
        let stat = format!("/proc/{}/stat", pid.get());
        for _ in 0..2000 {
            if !std::path::Path::new(&stat).exists() {
                return;
            }
            asyncio::sleep(Duration::from_millis(5)).await;
        }
        panic!("the child of a cancelled subprocess_exec still runs");
    });
}
