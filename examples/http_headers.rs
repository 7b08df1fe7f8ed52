//! The example of asyncio's streams documentation: print the HTTP headers of a URL.
//!
//! `open_connection` to the URL's host, send a `HEAD` request, then `readline` until
//! the empty line that ends the headers (or EOF), printing each line as
//! `HTTP header> ...`, and close. It is the seed's `print_http_headers` coroutine,
//! line for line, with errors handled.
//!
//! ```sh
//! python3 -m http.server 8000 --bind 127.0.0.1 &    # any HTTP server will do
//! cargo run --example http_headers -- http://127.0.0.1:8000/
//! ```
//!
//! prints
//!
//! ```text
//! HTTP header> HTTP/1.0 200 OK
//! HTTP header> Server: SimpleHTTP/0.6 Python/3.12.3
//! HTTP header> Date: ...
//! ...
//! ```
//!
//! Only `http://host[:port][/path]` URLs (port 80 and path `/` by default; the host
//! may be a name, an IPv4 address or a bracketed IPv6 address); there is no TLS, so
//! `https://` is refused. A bad URL, a refused connection, or no answer within 30 s:
//! one line on stderr and exit status 1.
//!
//! Read with it: docs/08-streams.md.

mod common;

use std::process::ExitCode;
use std::time::Duration;

use asyncio::Error;
use common::cli;

const USAGE: &str = "URL

Print the headers of an HTTP URL, as asyncio's streams documentation example does:
send 'HEAD path HTTP/1.0' and print each header line as 'HTTP header> line'.

  URL          http://host[:port][/path]  (port 80, path / by default; no https)
  -h, --help   show this help";

/// The whole exchange must finish within this.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The parts of an `http://` URL that a `HEAD` request needs.
#[derive(Debug, PartialEq)]
struct Url {
    /// What to connect to: a name or an IP address (without brackets).
    host: String,
    port: u16,
    /// The `Host:` header: the authority as written in the URL (`host` or `host:port`).
    authority: String,
    /// The request target: the path and the query, `/` when the URL has none.
    target: String,
}

fn parse_url(url: &str) -> Result<Url, String> {
    let bad = |why: &str| format!("invalid URL '{url}': {why}");
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(bad("expected http://host[:port][/path]"));
    };
    if !scheme.eq_ignore_ascii_case("http") {
        return Err(bad(&format!(
            "only http:// is supported, not {scheme}:// (there is no TLS here)"
        )));
    }
    if url.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(bad("spaces and control characters must be percent-encoded"));
    }
    let rest = rest.split('#').next().unwrap_or_default(); // the fragment stays local
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, target) = rest.split_at(split);
    if authority.contains('@') {
        return Err(bad("user:password@ is not supported"));
    }
    // host, [v6], host:port or [v6]:port
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            match after {
                "" => (host, None),
                _ => match after.strip_prefix(':') {
                    Some(port) => (host, Some(port)),
                    None => return Err(bad("unexpected text after ']'")),
                },
            }
        }
        None => match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    let port = match port {
        None | Some("") => 80,
        Some(p) => match p.parse::<u16>() {
            Ok(p) if p != 0 => p,
            _ => return Err(bad(&format!("invalid port '{p}'"))),
        },
    };
    let target = match target {
        "" => "/".to_string(),
        t if t.starts_with('?') => format!("/{t}"),
        t => t.to_string(),
    };
    Ok(Url {
        host: host.to_string(),
        port,
        authority: authority.to_string(),
        target,
    })
}

/// The seed's coroutine: connect, send HEAD, print the header lines.
async fn print_http_headers(url: Url) -> asyncio::Result<()> {
    let (mut reader, writer) = asyncio::open_connection(&url.host, url.port)
        .await
        .map_err(|e| cli::connect_error(&url.host, url.port, &e))?;
    let query = format!(
        "HEAD {} HTTP/1.0\r\nHost: {}\r\n\r\n",
        url.target, url.authority
    );
    writer.write(query.as_bytes())?;
    loop {
        let line = reader.readline().await?;
        if line.is_empty() {
            break; // EOF
        }
        // Header bytes are Latin-1 (the seed decodes them so): one char per byte.
        let line: String = line.iter().map(|&b| char::from(b)).collect();
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break; // the empty line that ends the headers
        }
        println!("HTTP header> {line}");
    }
    writer.close();
    match writer.wait_closed().await {
        // We close with the server's side possibly unread: a reset is no error here.
        Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(()),
        other => other,
    }
}

fn main() -> ExitCode {
    common::init_logging();
    let args = match cli::args_or_exit(USAGE, &[]) {
        Ok(args) => args,
        Err(code) => return code,
    };
    let url = match args.positional.as_slice() {
        [] => return cli::usage_error("missing URL"),
        [url] => url,
        [_, extra, ..] => return cli::usage_error(format!("unexpected argument '{extra}'")),
    };
    let url = match parse_url(url) {
        Ok(u) => u,
        Err(msg) => return cli::usage_error(msg),
    };
    cli::finish(asyncio::run(async move {
        asyncio::wait_for(print_http_headers(url), TIMEOUT)
            .await
            .map_err(|_| cli::error(format_args!("no complete answer within {TIMEOUT:?}")))?
    }))
}

#[cfg(test)]
mod tests {
    // `cargo test --example http_headers` runs these.
    use super::*;

    #[test]
    fn urls() {
        let u = parse_url("http://example.com").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.target.as_str()),
            ("example.com", 80, "/")
        );
        let u = parse_url("http://127.0.0.1:8000/a/b?x=1#frag").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("127.0.0.1", 8000));
        assert_eq!(
            (u.authority.as_str(), u.target.as_str()),
            ("127.0.0.1:8000", "/a/b?x=1")
        );
        let u = parse_url("HTTP://[::1]:81?q").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.target.as_str()),
            ("::1", 81, "/?q")
        );
        for bad in [
            "https://example.com/",
            "example.com",
            "http://",
            "http://:80/",
            "http://h:0/",
            "http://h:99999/",
            "http://h:x/",
            "http://u@h/",
            "http://[::1/",
            "http://h/a b",
        ] {
            assert!(parse_url(bad).is_err(), "{bad} should be refused");
        }
    }
}
