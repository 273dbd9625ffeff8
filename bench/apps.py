"""The applications every benchmarked server runs.

WSGI (served by the Gunicorn workers and by Hypercorn's WSGI mode):

* ``hello``: ``GET`` anything, answers ``Hello, world!`` (13 bytes).
* ``bodies``: ``GET /big?mb=N`` streams N MiB in 64 KiB chunks;
  ``POST /upload[?expect=N]`` reads ``wsgi.input`` in 64 KiB chunks and answers
  the byte count as ``N\\n`` (status 400 and ``short: N\\n`` if it differs from
  ``expect``, so a truncated upload shows up as a failed request in h2load,
  by status or by body length). Any other path is ``hello``,
  so the readiness probe works on it too.

ASGI twins (``hello_asgi``, ``bodies_asgi``) exist so Hypercorn can also be
measured on its native interface (server name ``hypercorn-asgi``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from typing import Any
from urllib.parse import parse_qs

HELLO = b"Hello, world!"
CHUNK = 64 * 1024
MIB = 1024 * 1024
MAX_MB = 4096

StartResponse = Callable[..., Any]
Environ = dict[str, Any]
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_HELLO_HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(HELLO)))]
_ZEROS = bytes(CHUNK)


def hello(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """13-byte hello world."""
    start_response("200 OK", _HELLO_HEADERS)
    return [HELLO]


def _query_int(query: str, name: str, default: int) -> int:
    values = parse_qs(query).get(name)
    if not values:
        return default
    return int(values[0])


def _big_chunks(total: int) -> Iterator[bytes]:
    remaining = total
    while remaining >= CHUNK:
        remaining -= CHUNK
        yield _ZEROS
    if remaining:
        yield _ZEROS[:remaining]


def _plain(start_response: StartResponse, status: str, body: bytes) -> list[bytes]:
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def bodies(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """Large downloads (``GET /big?mb=N``) and uploads (``POST /upload``)."""
    path = environ.get("PATH_INFO", "/")
    query = environ.get("QUERY_STRING", "")
    method = environ.get("REQUEST_METHOD", "GET")
    try:
        if path == "/big":
            mb = _query_int(query, "mb", 1)
            if not 0 <= mb <= MAX_MB:
                return _plain(start_response, "400 Bad Request", b"mb out of range\n")
            total = mb * MIB
            start_response(
                "200 OK",
                [("Content-Type", "application/octet-stream"), ("Content-Length", str(total))],
            )
            return _big_chunks(total)
        if path == "/upload" and method == "POST":
            expect = _query_int(query, "expect", -1)
            stream = environ["wsgi.input"]
            received = 0
            while True:
                chunk = stream.read(CHUNK)
                if not chunk:
                    break
                received += len(chunk)
            if expect in (-1, received):
                return _plain(start_response, "200 OK", b"%d\n" % received)
            return _plain(start_response, "400 Bad Request", b"short: %d\n" % received)
    except ValueError:
        return _plain(start_response, "400 Bad Request", b"bad query\n")
    return hello(environ, start_response)


# ---------------------------------------------------------------- ASGI twins


async def _asgi_plain(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def hello_asgi(scope: Scope, receive: Receive, send: Send) -> None:
    """ASGI twin of :func:`hello`."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    await _asgi_plain(send, 200, HELLO)


async def bodies_asgi(scope: Scope, receive: Receive, send: Send) -> None:
    """ASGI twin of :func:`bodies`."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    path = scope.get("path", "/")
    query = scope.get("query_string", b"").decode("latin-1")
    try:
        if path == "/big":
            mb = _query_int(query, "mb", 1)
            if not 0 <= mb <= MAX_MB:
                await _asgi_plain(send, 400, b"mb out of range\n")
                return
            total = mb * MIB
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"application/octet-stream"),
                        (b"content-length", str(total).encode()),
                    ],
                }
            )
            for chunk in _big_chunks(total):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            return
        if path == "/upload" and scope.get("method") == "POST":
            expect = _query_int(query, "expect", -1)
            received = 0
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                received += len(message.get("body", b""))
                if not message.get("more_body"):
                    break
            if expect in (-1, received):
                await _asgi_plain(send, 200, b"%d\n" % received)
            else:
                await _asgi_plain(send, 400, b"short: %d\n" % received)
            return
    except ValueError:
        await _asgi_plain(send, 400, b"bad query\n")
        return
    await _asgi_plain(send, 200, HELLO)
