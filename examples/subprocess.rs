//! Run a program and show its output as it comes, line by line, marked by stream.
//!
//! ```sh
//! cargo run --example subprocess -- sh -c 'echo a; echo b >&2; exit 3'
//! cargo run --example subprocess -- --timeout 1 sleep 10
//! ```
//!
//! The first prints `[stdout] a` and `[stderr] b` (in the order they arrive), then
//! `exit status: 3`; the second prints `killed after timeout`. The child's stdout and
//! stderr are pipes read as two [`asyncio::StreamReader`]s at the same time, so neither
//! can fill up and block the child. A status is asyncio's return code: the exit code,
//! or minus the signal number that killed the child. A program that cannot be run is
//! one line on stderr and exit status 1; otherwise this exits 0.
//!
//! Read with it: docs/13-subprocesses.md.

mod common;

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::process::ExitCode;
use std::task::Poll;
use std::time::Duration;

use asyncio::subprocess::{create_subprocess_exec, Stdio, SubprocessOptions};
use asyncio::StreamReader;
use common::cli;

const USAGE: &str = "[--timeout SECS] PROGRAM [ARGS...]

Run PROGRAM with ARGS; print each line it writes as '[stdout] LINE' or
'[stderr] LINE' as it arrives, then 'exit status: N' (minus the signal number if a
signal killed it).

  --timeout SECS   kill the program after SECS seconds (a decimal number) and
                   print 'killed after timeout'
  -h, --help       show this help

Options end at PROGRAM: everything after it is passed to it.";

/// Print every line of `reader` with its stream's tag, until EOF.
async fn pump(tag: &str, mut reader: StreamReader) -> asyncio::Result<()> {
    while let Some(line) = reader.next_line().await {
        let line = line?;
        let text = String::from_utf8_lossy(&line);
        println!("[{tag}] {}", text.strip_suffix('\n').unwrap_or(&text));
    }
    Ok(())
}

/// Both futures to completion, concurrently; the first error.
async fn join2(
    a: impl Future<Output = asyncio::Result<()>>,
    b: impl Future<Output = asyncio::Result<()>>,
) -> asyncio::Result<()> {
    let (mut a, mut b) = (pin!(a), pin!(b));
    let (mut ra, mut rb) = (None, None);
    poll_fn(|cx| {
        if ra.is_none() {
            if let Poll::Ready(r) = a.as_mut().poll(cx) {
                ra = Some(r);
            }
        }
        if rb.is_none() {
            if let Poll::Ready(r) = b.as_mut().poll(cx) {
                rb = Some(r);
            }
        }
        if ra.is_some() && rb.is_some() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    ra.unwrap_or(Ok(())).and(rb.unwrap_or(Ok(())))
}

async fn run(timeout: Option<Duration>, program: String, args: Vec<String>) -> asyncio::Result<()> {
    let opts = SubprocessOptions::default()
        .stdout(Stdio::Pipe)
        .stderr(Stdio::Pipe);
    let mut proc = create_subprocess_exec(&program, &args, opts)
        .await
        .map_err(|e| cli::error(format_args!("cannot run '{program}': {e}")))?;
    let out = proc.stdout.take().expect("piped");
    let err = proc.stderr.take().expect("piped");
    let finished = async {
        join2(pump("stdout", out), pump("stderr", err)).await?;
        proc.wait().await
    };
    let code = match timeout {
        None => finished.await?,
        Some(d) => match asyncio::wait_for(finished, d).await {
            Ok(code) => code?,
            Err(e) if e.is_timeout() => {
                // The readers were dropped with the timed-out future: nothing more
                // is printed.
                proc.kill()?;
                println!("killed after timeout");
                return Ok(());
            }
            Err(e) => return Err(e),
        },
    };
    println!("exit status: {code}");
    Ok(())
}

fn main() -> ExitCode {
    common::init_logging();
    let mut timeout = None;
    let mut argv = std::env::args().skip(1);
    let mut program = None;
    while let Some(a) = argv.next() {
        match a.as_str() {
            "-h" | "--help" => return cli::help(USAGE),
            "--timeout" => {
                let Some(v) = argv.next() else {
                    return cli::usage_error("--timeout needs a number of seconds");
                };
                match v.parse::<f64>() {
                    Ok(s) if s.is_finite() && s >= 0.0 => {
                        timeout = Some(Duration::from_secs_f64(s));
                    }
                    _ => return cli::usage_error(format!("bad --timeout '{v}'")),
                }
            }
            "--" => {
                program = argv.next();
                break;
            }
            _ if a.starts_with('-') => {
                return cli::usage_error(format!("unknown option '{a}'"));
            }
            _ => {
                program = Some(a);
                break;
            }
        }
    }
    let Some(program) = program else {
        return cli::usage_error("missing PROGRAM");
    };
    let args: Vec<String> = argv.collect();
    cli::finish(asyncio::run(run(timeout, program, args)))
}
