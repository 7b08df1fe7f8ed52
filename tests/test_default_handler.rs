//! The default exception handler with no `log` logger installed (asyncio's
//! `default_exception_handler`, whose reports CPython's logging prints to stderr by
//! default): the report goes to stderr, once per event, with its context.
//!
//! Each case runs in a child process (this test binary again, with
//! `ASYNCIO_REPORT_CHILD` naming the case), since a logger, once set, stays for the
//! whole process; the parent captures the child's stderr.

mod support_transports;

use std::process::Command;

use support_transports::LIMIT;

const CHILD_ENV: &str = "ASYNCIO_REPORT_CHILD";

/// Run the case `case` in a child process; its stderr.
fn child_stderr(case: &str) -> String {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, case)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "child {case} failed: {stderr}");
    stderr
}

/// The child side: does nothing unless run by [`child_stderr`].
#[test]
fn child_entry() {
    let Ok(case) = std::env::var(CHILD_ENV) else {
        return;
    };
    // Keep the panic hook quiet: the report, not the hook, must carry the message.
    std::panic::set_hook(Box::new(|_| {}));
    assert_eq!(log::max_level(), log::LevelFilter::Off, "no logger here");
    match case.as_str() {
        "server_cb" => server_callback_fails(),
        "task_panic" => task_panics_unretrieved(),
        other => panic!("unknown case {other}"),
    }
}

/// A `start_server` callback returns an error for its one client.
fn server_callback_fails() {
    let lp = asyncio::EventLoop::new().unwrap();
    lp.run_until_complete(asyncio::wait_for(
        async {
            let server = asyncio::start_server(
                |_r, w| async move {
                    w.close();
                    Err::<(), _>(asyncio::Error::value("the callback failed on purpose"))
                },
                Some("127.0.0.1"),
                0,
            )
            .await
            .unwrap();
            let Some(asyncio::Address::Inet(addr)) = server.local_addrs().into_iter().next() else {
                panic!("no address");
            };
            let (mut r, _w) = asyncio::open_connection("127.0.0.1", addr.port())
                .await
                .unwrap();
            // The server closes after its callback failed: EOF here.
            assert_eq!(r.read(10).await.unwrap(), b"");
            server.close();
            server.wait_closed().await.unwrap();
        },
        LIMIT,
    ))
    .unwrap()
    .unwrap();
    lp.close().unwrap();
}

/// A detached task panics and nobody awaits it.
fn task_panics_unretrieved() {
    let lp = asyncio::EventLoop::new().unwrap();
    let task = lp.create_task(async { panic!("the task panicked on purpose") });
    task.set_name("doomed");
    drop(task);
    lp.run_until_complete(asyncio::sleep(std::time::Duration::from_millis(1)))
        .unwrap();
    lp.close().unwrap();
}

#[test]
fn a_failing_server_callback_is_reported_on_stderr_once_with_context() {
    let err = child_stderr("server_cb");
    assert_eq!(
        err.matches("Unhandled exception in client_connected_cb")
            .count(),
        1,
        "stderr: {err}"
    );
    assert!(
        err.contains("the callback failed on purpose"),
        "stderr: {err}"
    );
    assert!(err.contains("transport: "), "the peer is named: {err}");
}

#[test]
fn an_unretrieved_task_panic_is_reported_on_stderr_once_with_context() {
    let err = child_stderr("task_panic");
    assert_eq!(
        err.matches("Task exception was never retrieved").count(),
        1,
        "stderr: {err}"
    );
    assert!(
        err.contains("the task panicked on purpose"),
        "stderr: {err}"
    );
    assert!(err.contains("task: doomed"), "stderr: {err}");
}
