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
//! `http://host[:port][/path]` URLs (port 80 and path `/` by default; the host may be
//! a name, an IPv4 address or a bracketed IPv6 address), and `https://` ones (port 443)
//! when built with the cargo feature `tls`, as the seed's `ssl=True`: the server is
//! verified against the PEM CA bundle of `--cafile FILE` (a private CA), or else the
//! system's bundle (`/etc/ssl/certs/ca-certificates.crt` and the like). A bad URL, a
//! refused connection, a failed verification, or no answer within 30 s: one line on
//! stderr and exit status 1.
//!
//! ```sh
//! cargo run --features tls --example http_headers -- --cafile ca.pem https://localhost:8443/
//! ```
//!
//! Read with it: docs/08-streams.md.

mod common;

use std::process::ExitCode;
use std::time::Duration;

use asyncio::Error;
use common::cli;

const USAGE: &str = "[--cafile FILE] URL

Print the headers of an HTTP URL, as asyncio's streams documentation example does:
send 'HEAD path HTTP/1.0' and print each header line as 'HTTP header> line'.

  URL            http://host[:port][/path]  (port 80, path / by default), or
                 https://... (port 443; needs the cargo feature tls)
  --cafile FILE  verify https servers against this PEM CA bundle (default: the
                 system's bundle)
  -h, --help     show this help";

/// Where the system's CA bundle usually is (Debian, Fedora, Alpine/macOS).
#[cfg(feature = "tls")]
const SYSTEM_CA_FILES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

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
    /// `https://`: speak TLS.
    tls: bool,
}

fn parse_url(url: &str) -> Result<Url, String> {
    let bad = |why: &str| format!("invalid URL '{url}': {why}");
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(bad("expected http://host[:port][/path]"));
    };
    let tls = scheme.eq_ignore_ascii_case("https");
    if !tls && !scheme.eq_ignore_ascii_case("http") {
        return Err(bad(&format!(
            "only http:// and https:// are supported, not {scheme}://"
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
        None | Some("") if tls => 443,
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
        tls,
    })
}

/// The seed's coroutine: connect, send HEAD, print the header lines.
/// The connection options: `ssl` for `https://` (feature `tls`), verifying against
/// `cafile` or the system's bundle.
fn connect_options(url: &Url, cafile: Option<&str>) -> asyncio::Result<asyncio::ConnectOptions> {
    #[allow(unused_mut)]
    let mut opts = asyncio::ConnectOptions::default();
    if !url.tls {
        return Ok(opts);
    }
    #[cfg(feature = "tls")]
    {
        let cafile = match cafile {
            Some(f) => f,
            None => SYSTEM_CA_FILES
                .iter()
                .copied()
                .find(|f| std::path::Path::new(f).exists())
                .ok_or_else(|| cli::error("no system CA bundle found: give --cafile FILE"))?,
        };
        opts.ssl = Some(asyncio::sslproto::client_config_from_pem(cafile)?);
        Ok(opts)
    }
    #[cfg(not(feature = "tls"))]
    {
        let _ = cafile;
        Err(cli::error(
            "https:// needs the cargo feature tls (cargo run --features tls ...)",
        ))
    }
}

async fn print_http_headers(url: Url, cafile: Option<String>) -> asyncio::Result<()> {
    let opts = connect_options(&url, cafile.as_deref())?;
    let (mut reader, writer) =
        asyncio::open_connection_with(&url.host, url.port, asyncio::streams::DEFAULT_LIMIT, opts)
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
    let mut args = match cli::args_or_exit(USAGE, &["--cafile"]) {
        Ok(args) => args,
        Err(code) => return code,
    };
    let cafile = match cli::take_option_value(&mut args, "--cafile") {
        Ok(c) => c,
        Err(e) => return cli::usage_error(e),
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
        asyncio::wait_for(print_http_headers(url, cafile), TIMEOUT)
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
        let u = parse_url("https://example.com/x").unwrap();
        assert_eq!((u.port, u.tls, u.target.as_str()), (443, true, "/x"));
        assert!(!parse_url("http://example.com/").unwrap().tls);
        for bad in [
            "ftp://example.com/",
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
