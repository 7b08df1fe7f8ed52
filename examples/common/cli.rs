//! Command-line helpers: the program's name, `--help`, one-line argument errors, and
//! the two kinds of address the examples take.
//!
//! Conventions of every example: `-h` / `--help` prints the usage and exits 0; a bad
//! argument prints **one line**, `PROG: what is wrong (try --help)`, on stderr and
//! exits 1; a failure at run time (cannot listen, connection refused, ...) prints one
//! line, `PROG: error`, and exits 1.

use std::fmt::Display;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

/// Where the server examples listen unless told otherwise: loopback only.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8888";

/// The program's name: the file name of `argv[0]` (`echo_server` for
/// `target/release/examples/echo_server`).
pub fn prog_name() -> String {
    std::env::args_os()
        .next()
        .as_deref()
        .map(Path::new)
        .and_then(Path::file_name)
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "example".to_string())
}

/// A command line split into the flags it set and its positional arguments.
pub struct Args {
    /// The flags given, each one of the `known` flags passed to [`parse`].
    pub flags: Vec<&'static str>,
    /// Everything else, in order.
    pub positional: Vec<String>,
}

impl Args {
    /// Whether `flag` was given.
    pub fn has(&self, flag: &str) -> bool {
        self.flags.contains(&flag)
    }
}

/// Parse `std::env::args()`: `Ok(None)` for `-h` / `--help` (anywhere), an error for
/// an unknown option. After `--`, everything is positional (so a message may start
/// with `-`).
pub fn parse(known: &[&'static str]) -> Result<Option<Args>, String> {
    let mut args = Args {
        flags: Vec::new(),
        positional: Vec::new(),
    };
    let mut only_positional = false;
    for a in std::env::args().skip(1) {
        if only_positional || !a.starts_with('-') || a == "-" {
            args.positional.push(a);
        } else if a == "--" {
            only_positional = true;
        } else if a == "-h" || a == "--help" {
            return Ok(None);
        } else if let Some(flag) = known.iter().find(|f| **f == a) {
            args.flags.push(flag);
        } else {
            return Err(format!("unknown option '{a}'"));
        }
    }
    Ok(Some(args))
}

/// [`parse`] for `main`: the arguments, or the exit code `main` returns at once
/// (`--help` printed, or a usage error).
pub fn args_or_exit(usage: &str, known: &[&'static str]) -> Result<Args, ExitCode> {
    match parse(known) {
        Ok(Some(args)) => Ok(args),
        Ok(None) => Err(help(usage)),
        Err(msg) => Err(usage_error(msg)),
    }
}

/// A server's optional `[ADDR]` argument: [`DEFAULT_ADDR`] or the one positional
/// argument, parsed; or the exit code of a usage error.
pub fn server_addr(args: &Args) -> Result<SocketAddr, ExitCode> {
    let addr = match args.positional.as_slice() {
        [] => DEFAULT_ADDR,
        [addr] => addr.as_str(),
        [_, extra, ..] => return Err(usage_error(format!("unexpected argument '{extra}'"))),
    };
    listen_addr(addr).map_err(usage_error)
}

/// `--help`: print `usage: PROG {usage}` on stdout, exit status 0. `usage` starts
/// with the synopsis's arguments, so the program's name is whatever it was run as.
pub fn help(usage: &str) -> ExitCode {
    println!("usage: {} {usage}", prog_name());
    ExitCode::SUCCESS
}

/// A bad command line: one line on stderr, exit status 1.
pub fn usage_error(msg: impl Display) -> ExitCode {
    eprintln!("{}: {msg} (try --help)", prog_name());
    ExitCode::FAILURE
}

/// The end of `main`: status 0 on success; otherwise one line on stderr, status 1.
/// Takes what `asyncio::run(async { ... })` returns when the block returns a `Result`.
pub fn finish(outcome: asyncio::Result<asyncio::Result<()>>) -> ExitCode {
    match outcome.and_then(|r| r) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}: {e}", prog_name());
            ExitCode::FAILURE
        }
    }
}

/// An error that prints as just `msg` (for [`finish`]'s one line).
pub fn error(msg: impl Display) -> asyncio::Error {
    asyncio::Error::Io(std::io::Error::other(msg.to_string()))
}

/// A failed connect as one readable line: `cannot connect to HOST:PORT: CAUSE`, the
/// cause being the OS error when there is one (`Connection refused (os error 111)`).
pub fn connect_error(host: &str, port: u16, e: &asyncio::Error) -> asyncio::Error {
    let cause = match e {
        asyncio::Error::Io(io) => match std::error::Error::source(io) {
            Some(os) => os.to_string(),
            None => io.to_string(),
        },
        asyncio::Error::Timeout => "timed out".to_string(),
        other => other.to_string(),
    };
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    error(format_args!("cannot connect to {host}:{port}: {cause}"))
}

/// A listen address, `IP:PORT` (`[::1]:PORT` for IPv6). Port 0 asks the kernel for a
/// free port; the server prints the one it got.
pub fn listen_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse::<SocketAddr>()
        .map_err(|_| format!("invalid address '{s}': expected IP:PORT, e.g. {DEFAULT_ADDR}"))
}

/// A server to connect to, `HOST:PORT`: the host may be a name (`localhost`), an IPv4
/// address or a bracketed IPv6 address (`[::1]:8888`).
pub fn host_port(s: &str) -> Result<(String, u16), String> {
    let bad = || format!("invalid address '{s}': expected HOST:PORT, e.g. {DEFAULT_ADDR}");
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    let host = match host.strip_prefix('[') {
        Some(h) => h.strip_suffix(']').ok_or_else(bad)?,
        None if host.contains(':') => return Err(bad()),
        None => host,
    };
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() || port == 0 {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}

/// The value of an option that takes one (`--cert FILE`), taken out of `args`: the
/// option must be among the `known` flags given to [`parse`], which leaves its value
/// among the positional arguments. `Err` if the option is last on the line.
pub fn take_option_value(args: &mut Args, option: &str) -> Result<Option<String>, String> {
    if !args.has(option) {
        return Ok(None);
    }
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let Some(i) = raw.iter().position(|a| a == option) else {
        return Ok(None);
    };
    let value = raw
        .get(i + 1)
        .filter(|v| !v.starts_with('-'))
        .ok_or_else(|| format!("{option} needs a value"))?
        .clone();
    if let Some(j) = args.positional.iter().position(|p| *p == value) {
        args.positional.remove(j);
    }
    Ok(Some(value))
}
