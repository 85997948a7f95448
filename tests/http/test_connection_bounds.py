"""Connection bounds over real sockets: slow headers are closed, a stalled body is a 408,
a chunked body over the limit a 413, connections beyond the cap a 503.

The server is uvicorn with the configuration ``wrapserve serve`` uses
(``server.http.connections.uvicorn_config``) and the body middleware, around a small echo
app: these bounds sit below the routes, so nothing above them is needed here."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from server.http.connections import uvicorn_config
from server.http.middleware.body_limit import BodyLimitMiddleware
from server.limits import Limits

LIMITS = Limits(header_timeout_s=0.5, body_timeout_s=0.5, max_connections=4, max_body_bytes=1000)


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers with the length of the body it read."""
    size, more = 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    body = str(size).encode()
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]}
    )
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    app = BodyLimitMiddleware(echo, LIMITS)
    server = uvicorn.Server(
        uvicorn_config(app, LIMITS, host="127.0.0.1", port=free, log_config=None, lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield free
    server.should_exit = True
    thread.join(10)


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def _reply(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
        if b"\r\n\r\n" in data and data.split(b"\r\n\r\n", 1)[1]:
            break
    return data


def _status(reply: bytes) -> int:
    return int(reply.split(b" ", 2)[1])


def test_a_connection_that_never_finishes_its_headers_is_closed(port: int) -> None:
    with _connect(port) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        started = time.monotonic()
        assert sock.recv(1024) == b""  # closed by the server, nothing answered
        assert time.monotonic() - started < 3


def test_an_idle_new_connection_is_closed(port: int) -> None:
    with _connect(port) as sock:
        assert sock.recv(1024) == b""


def test_a_stalled_body_is_a_408(port: int) -> None:
    with _connect(port) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabcd")
        reply = _reply(sock)
    assert _status(reply) == 408 and b"request_timeout" in reply


def test_a_chunked_body_over_the_limit_is_a_413(port: int) -> None:
    chunk = b"%x\r\n%s\r\n" % (600, b"a" * 600)
    with _connect(port) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk + chunk)
        reply = _reply(sock)
    assert _status(reply) == 413 and b"request_too_large" in reply


def test_keep_alive_requests_are_served_and_bodies_within_bounds_pass(port: int) -> None:
    with _connect(port) as sock:
        for _ in range(2):
            sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
            reply = _reply(sock)
            assert _status(reply) == 200 and reply.endswith(b"5")


def test_connections_beyond_the_cap_get_503(port: int) -> None:
    held = [_connect(port) for _ in range(LIMITS.max_connections)]
    try:
        time.sleep(0.1)
        with _connect(port) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert _status(_reply(sock)) == 503
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.2)
    with _connect(port) as sock:  # freed again
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _status(_reply(sock)) == 200
