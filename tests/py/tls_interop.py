#!/usr/bin/env python3
"""TLS interop between this crate and CPython's ssl + asyncio (run by .ci/run).

usage: tls_interop.py EXAMPLES_DIR PKI_DIR

PKI_DIR holds ca.pem, cert.pem and key.pem (made by the tls_test_ca example).

1. CPython's asyncio client (ssl, verifying against ca.pem as 'localhost') against our
   `echo_server --tls`: a 300 KB echo both ways, the cipher and version it negotiated,
   a clean close; then a client that does not trust the CA fails with
   SSLCertVerificationError, and the server still serves the next client.
2. Our `http_headers --cafile ca.pem https://localhost:PORT/` against a CPython
   asyncio TLS server answering HEAD requests.

Every wait is bounded; the server process is stopped by SIGTERM and must exit 0.
"""

import asyncio
import os
import re
import signal
import ssl
import sys

TIMEOUT = 30


async def echo_server_against_cpython_client(ex, pki):
    proc = await asyncio.create_subprocess_exec(
        os.path.join(ex, "echo_server"), "--tls",
        "--cert", os.path.join(pki, "cert.pem"),
        "--key", os.path.join(pki, "key.pem"),
        "127.0.0.1:0",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), TIMEOUT)).decode()
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        assert m, f"no 'listening on' line: {line!r}"
        port = int(m.group(1))

        ctx = ssl.create_default_context(cafile=os.path.join(pki, "ca.pem"))
        r, w = await asyncio.open_connection(
            "127.0.0.1", port, ssl=ctx, server_hostname="localhost")
        data = bytes(range(256)) * 1200
        w.write(data)
        await w.drain()
        got = await asyncio.wait_for(r.readexactly(len(data)), TIMEOUT)
        assert got == data, "the echo differs"
        cipher = w.get_extra_info("cipher")
        print(f"cpython client -> echo_server --tls: {len(data)} bytes echoed, {cipher[0]} {cipher[1]}")
        w.close()
        await w.wait_closed()

        bad = ssl.create_default_context()  # the system's CAs: ours is unknown
        try:
            await asyncio.open_connection(
                "127.0.0.1", port, ssl=bad, server_hostname="localhost")
        except ssl.SSLCertVerificationError as e:
            print(f"untrusted CA refused as expected: {e.verify_message}")
        else:
            raise AssertionError("a client that does not trust the CA connected")

        r, w = await asyncio.open_connection(
            "127.0.0.1", port, ssl=ctx, server_hostname="localhost")
        w.write(b"still serving\n")
        assert await asyncio.wait_for(r.readline(), TIMEOUT) == b"still serving\n"
        w.close()
        await w.wait_closed()
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        rc = await asyncio.wait_for(proc.wait(), TIMEOUT)
    assert rc == 0, f"echo_server exited {rc}"


async def http_headers_against_cpython_server(ex, pki):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(os.path.join(pki, "cert.pem"), os.path.join(pki, "key.pem"))

    async def handle(r, w):
        request = await r.readuntil(b"\r\n\r\n")
        assert request.startswith(b"HEAD / HTTP/1.0\r\n"), request
        w.write(b"HTTP/1.0 200 OK\r\nServer: cpython-asyncio-ssl\r\n"
                b"Content-Length: 0\r\n\r\n")
        await w.drain()
        w.close()
        try:
            await w.wait_closed()
        except (ConnectionError, ssl.SSLError):
            pass

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx)
    port = server.sockets[0].getsockname()[1]
    async with server:
        proc = await asyncio.create_subprocess_exec(
            os.path.join(ex, "http_headers"), "--cafile", os.path.join(pki, "ca.pem"),
            f"https://localhost:{port}/",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    out = out.decode()
    print(out, end="")
    assert proc.returncode == 0, f"http_headers exited {proc.returncode}: {err.decode()}"
    assert out.splitlines()[:2] == [
        "HTTP header> HTTP/1.0 200 OK",
        "HTTP header> Server: cpython-asyncio-ssl",
    ], out


async def main(ex, pki):
    await echo_server_against_cpython_client(ex, pki)
    await http_headers_against_cpython_server(ex, pki)
    print("tls interop: ok")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    asyncio.run(main(sys.argv[1], sys.argv[2]))
