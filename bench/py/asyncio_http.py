"""Minimal HTTP/1.1 keep-alive hello-world server on asyncio streams.

Every request is answered with ``Hello, World!`` (same bytes as tokio_http).
Requests are delimited by ``\\r\\n\\r\\n``; all complete requests found in the
buffer are answered with one write (minimal pipelining). ``Connection: close``
is honoured.

Usage: python3 asyncio_http.py HOST:PORT [--uvloop]
"""


from _common import serve_streams, set_nodelay

RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\n"
    b"Hello, World!"
)
MAX_HEAD = 64 * 1024


async def handle(reader, writer):
    set_nodelay(writer.transport)
    buf = b""
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            buf += data
            responses = 0
            close = False
            while True:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    break
                head, buf = buf[:end], buf[end + 4:]
                responses += 1
                if b"connection: close" in head.lower():
                    close = True
                    break
            if len(buf) > MAX_HEAD:
                break
            if responses:
                writer.write(RESPONSE * responses)
                await writer.drain()
            if close:
                break
    except ConnectionError:
        pass
    finally:
        writer.close()


if __name__ == "__main__":
    serve_streams(handle)
