//! A server's life after it is bound: say where it listens, serve, and shut down
//! gracefully at the end of input.
//!
//! # How the server examples stop
//!
//! - **End of input** (Ctrl-D in a terminal, or closing the pipe that feeds stdin):
//!   the graceful path. The server stops accepting, closes every client connection
//!   after flushing what is buffered for it (waiting at most [`GRACE`], then aborting
//!   the stragglers), prints one line and exits with status 0.
//! - **Ctrl-C** (SIGINT) or **SIGTERM**: the graceful path too, with stdin watched or
//!   not. The server stops accepting, lets the connections in flight finish for a
//!   grace period, closes the rest, prints `shut down on SIGTERM` (or SIGINT) and
//!   exits with status 0 (see `signals.rs`). A second Ctrl-C ends the process at once.
//!
//! stdin is watched only when it is a **terminal, a pipe or a socket**, i.e. when
//! someone can later close it on purpose. When it is `/dev/null` or a file, as for a
//! daemon, a `cmd &` in a script, or the benchmark (`bench/run.py` starts servers
//! with `stdin=DEVNULL`), its immediate EOF means nothing, and the server serves until
//! a signal stops it. Nor is a terminal watched by a server started in the background
//! of an interactive shell (`cargo run --example echo_server &`): reading it would
//! stop the process (SIGTTIN), and Ctrl-D goes to the shell anyway. Stop that one
//! with `kill %1` (SIGTERM), or bring it to the foreground with `fg` first. (One moved to the
//! background later, with Ctrl-Z and `bg`, is stopped by its pending read: `fg` it.)
//!
//! Watching stdin is asyncio's own recipe, `await loop.run_in_executor(None,
//! sys.stdin.read)`: the blocking read runs on the loop's executor thread (started by
//! this call, on the program's request), and the task waiting for it wakes when the
//! read returns.

use std::io::{self, IsTerminal};
use std::os::fd::AsFd;
use std::os::unix::fs::FileTypeExt;
use std::time::Duration;

use asyncio::{Error, Server};

use super::cli::prog_name;

/// How long a graceful shutdown waits for buffered replies to be flushed before it
/// aborts the connections that are left.
pub const GRACE: Duration = Duration::from_secs(5);

/// Whether stdin is something that can be closed on purpose: a terminal, a pipe or a
/// socket (see the module docs).
pub fn stdin_is_watched() -> bool {
    let stdin = io::stdin();
    if stdin.is_terminal() {
        return !in_background_of_terminal();
    }
    // The file type of fd 0, without `unsafe`: duplicate the fd, ask fstat.
    let Ok(fd) = stdin.as_fd().try_clone_to_owned() else {
        return false;
    };
    match std::fs::File::from(fd).metadata() {
        Ok(m) => m.file_type().is_fifo() || m.file_type().is_socket(),
        Err(_) => false,
    }
}

/// Whether this process runs in the background of its terminal: its process group is
/// not the terminal's foreground group. Read from `/proc/self/stat` (fields `pgrp` and
/// `tpgid`), since asking the terminal (`tcgetpgrp`) would take `unsafe`; where there
/// is no `/proc`, the answer is "no".
fn in_background_of_terminal() -> bool {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return false;
    };
    // "pid (comm) state ppid pgrp session tty_nr tpgid ...": comm may hold spaces and
    // parentheses, so count the fields after its last ')'.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return false;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    match (fields.get(2), fields.get(5)) {
        (Some(pgrp), Some(tpgid)) => *tpgid != "-1" && pgrp != tpgid,
        _ => false,
    }
}

/// Print `PROG: listening on ADDR`, one line per listening socket, on stdout (the
/// line scripts wait for; with port 0 it tells them the port the kernel chose).
pub fn announce(server: &Server) {
    for addr in server.local_addrs() {
        println!("{}: listening on {addr}", prog_name());
    }
}

/// Announce the server, serve until the end of input when stdin is watched (then
/// shut down gracefully), or forever otherwise; SIGINT or SIGTERM stop it in either
/// case (see [`super::signals`]). See the module docs.
pub async fn serve_until_end_of_input(server: &Server) -> asyncio::Result<()> {
    announce(server);
    // Listening from here on: a signal sent right after "listening on" counts.
    let stop = super::signals::stop_signal();
    let watched = stdin_is_watched();
    if watched && io::stdin().is_terminal() {
        eprintln!(
            "{}: Ctrl-D (end of input) or Ctrl-C shuts down gracefully",
            prog_name()
        );
    }
    let serve = async {
        if !watched {
            // serve_forever returns only once the server is closed, as Err(Cancelled).
            return match server.serve_forever().await {
                Ok(()) | Err(Error::Cancelled) => Ok(false),
                Err(e) => Err(e),
            };
        }
        // Anything typed is read and thrown away; only the end of input matters. A
        // read error counts as the end too.
        let lp = server.get_loop();
        let _ = lp
            .run_in_executor(|| io::copy(&mut io::stdin().lock(), &mut io::sink()))
            .await;
        Ok(true)
    };
    match super::signals::first(stop, serve).await {
        super::signals::First::Left(sig) => super::signals::shutdown_on_signal(server, sig?).await,
        super::signals::First::Right(Ok(true)) => shutdown(server).await,
        super::signals::First::Right(done) => done.map(|_| ()),
    }
}

/// The graceful shutdown: stop accepting, close every client (flushing first), wait
/// up to [`GRACE`] for them to go, abort the rest. Prints one line when done.
pub async fn shutdown(server: &Server) -> asyncio::Result<()> {
    server.close();
    let clients = server.client_count();
    server.close_clients();
    match asyncio::wait_for(server.wait_closed(), GRACE).await {
        Ok(closed) => closed?,
        Err(_) => {
            // Someone is not reading what we flush: drop their buffers.
            server.abort_clients();
            server.wait_closed().await?;
        }
    }
    println!(
        "{}: end of input: shut down, {clients} connection(s) closed",
        prog_name()
    );
    Ok(())
}

/// The `main` of the progression's servers (05 to 07): `--help`; `--selftest`, which
/// runs `selftest` on a fresh loop and exits; or `[ADDR]` (default
/// [`DEFAULT_ADDR`](super::cli::DEFAULT_ADDR)), which starts the server with `start`
/// and serves until the end of input.
pub fn progression_main<T, U>(
    usage: &str,
    selftest: impl FnOnce() -> T,
    start: impl FnOnce(std::net::SocketAddr) -> U + 'static,
) -> std::process::ExitCode
where
    T: std::future::Future<Output = asyncio::Result<()>> + 'static,
    U: std::future::Future<Output = asyncio::Result<Server>> + 'static,
{
    use super::cli;
    super::init_logging();
    let args = match cli::args_or_exit(usage, &["--selftest"]) {
        Ok(args) => args,
        Err(code) => return code,
    };
    if args.has("--selftest") {
        if let Some(extra) = args.positional.first() {
            return cli::usage_error(format!("--selftest takes no address (got '{extra}')"));
        }
        return cli::finish(asyncio::run(selftest()));
    }
    let addr = match cli::server_addr(&args) {
        Ok(a) => a,
        Err(code) => return code,
    };
    cli::finish(asyncio::run(async move {
        let server = start(addr).await?;
        serve_until_end_of_input(&server).await
    }))
}

/// End a stream server's client: close the writer, wait for the close, and report on
/// stderr an error other than the peer going away (a reset or broken pipe is the
/// client's business, not the server's).
pub async fn finish_client(writer: &asyncio::StreamWriter, outcome: asyncio::Result<()>) {
    writer.close();
    match outcome.and(writer.wait_closed().await) {
        Ok(()) => {}
        Err(Error::Io(e)) if is_disconnect(e.kind()) => {}
        Err(e) => {
            let peer = writer.peername().map_or("?".to_string(), |p| p.to_string());
            eprintln!("{}: client {peer}: {e}", prog_name());
        }
    }
}

fn is_disconnect(kind: io::ErrorKind) -> bool {
    use io::ErrorKind::*;
    matches!(kind, ConnectionReset | ConnectionAborted | BrokenPipe)
}
