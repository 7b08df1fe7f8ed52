//! Make a throw-away test CA and a server certificate for `localhost` and `127.0.0.1`
//! (PEM files, with rcgen), for trying the TLS examples and for the interop check of
//! `.ci/run` (`tests/py/tls_interop.py`). Feature `tls`.
//!
//! ```sh
//! cargo run --features tls --example tls_test_ca -- /tmp/pki
//! cargo run --features tls --example echo_server -- --tls --cert /tmp/pki/cert.pem --key /tmp/pki/key.pem
//! ```
//!
//! Writes `DIR/ca.pem`, `DIR/cert.pem` (the server's chain: its certificate) and
//! `DIR/key.pem` (its PKCS#8 key). Never use them outside tests.
//! Read with it: docs/16-tls.md.

mod common;

use std::path::PathBuf;
use std::process::ExitCode;

use common::cli;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

const USAGE: &str = "DIR

Write a test CA (DIR/ca.pem) and a server certificate for localhost and 127.0.0.1
signed by it (DIR/cert.pem, DIR/key.pem). For tests only.

  -h, --help   show this help";

fn make(dir: &PathBuf) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir)?;
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "asyncio test CA");
    let ca_cert = ca.self_signed(&ca_key)?;
    let key = KeyPair::generate()?;
    let mut leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
    leaf.distinguished_name
        .push(DnType::CommonName, "localhost");
    let cert = leaf.signed_by(&key, &ca_cert, &ca_key)?;
    std::fs::write(dir.join("ca.pem"), ca_cert.pem())?;
    std::fs::write(dir.join("cert.pem"), cert.pem())?;
    std::fs::write(dir.join("key.pem"), key.serialize_pem())?;
    Ok(())
}

fn main() -> ExitCode {
    let args = match cli::args_or_exit(USAGE, &[]) {
        Ok(args) => args,
        Err(code) => return code,
    };
    let dir = match args.positional.as_slice() {
        [d] => PathBuf::from(d),
        [] => return cli::usage_error("missing DIR"),
        [_, extra, ..] => return cli::usage_error(format!("unexpected argument '{extra}'")),
    };
    match make(&dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}: {e}", cli::prog_name());
            ExitCode::FAILURE
        }
    }
}
