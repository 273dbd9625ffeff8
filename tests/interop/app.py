"""The app the interop suite serves: tests.apps' routes, plus what
independent clients exercise: an echo with trailers, a gRPC service written
as plain WSGI (length-prefixed messages, ``grpc-status`` in trailers) and a
page with 30 subresources for a browser.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from tests.apps import app as base_app

StartResponse = Callable[..., Any]
SUBRESOURCES = 30


def echo_trailers(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """The request body back as it is read, then trailers with its digest."""
    stream = environ["wsgi.input"]
    start_response("200 OK", [("Content-Type", "application/octet-stream")])

    def body() -> Iterator[bytes]:
        digest, count = hashlib.sha256(), 0
        while piece := stream.read(65536):
            digest.update(piece)
            count += len(piece)
            yield piece
        environ["gunicorn.http2.send_trailers"](
            [("x-sha256", digest.hexdigest()), ("x-count", str(count))]
        )

    return body()


# -- gRPC as plain WSGI ------------------------------------------------------------
#
# Messages are raw bytes (the clients use identity serializers). Unary and
# client-streaming answer one message; server-streaming answers N messages of
# the requested size; Echo (bidirectional) answers each message as soon as it
# arrives, so a client that waits for each reply before sending the next
# works only if request and response really stream side by side.


def _messages(stream: Any) -> Iterator[bytes]:
    while head := stream.read(5):
        if len(head) < 5:
            raise ValueError("truncated gRPC message prefix")
        (length,) = struct.unpack(">I", head[1:])
        data = stream.read(length)
        if len(data) < length:
            raise ValueError("truncated gRPC message")
        yield data


def _frame(message: bytes) -> bytes:
    return struct.pack(">BI", 0, len(message)) + message


def _grpc(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    method = environ["PATH_INFO"].rsplit("/", 1)[-1]
    stream = environ["wsgi.input"]
    start_response("200 OK", [("Content-Type", "application/grpc")])
    trailers = environ["gunicorn.http2.send_trailers"]

    def body() -> Iterator[bytes]:
        if method == "Unary":  # the reply is the request message, reversed
            for message in _messages(stream):
                yield _frame(message[::-1])
        elif method == "ServerStream":  # request: count and size, 4 bytes each
            request = next(_messages(stream))
            count, size = struct.unpack(">II", request)
            for i in range(count):
                yield _frame(bytes([i % 256]) * size)
        elif method == "ClientStream":  # reply: count and sha256 of all messages
            digest, count = hashlib.sha256(), 0
            for message in _messages(stream):
                digest.update(message)
                count += 1
            yield _frame(struct.pack(">I", count) + digest.digest())
        elif method == "Echo":
            for message in _messages(stream):
                yield _frame(message)
        else:
            trailers([("grpc-status", "12"), ("grpc-message", "unknown method")])
            return
        trailers([("grpc-status", "0")])

    return body()


# -- a page for a browser ------------------------------------------------------------

PAGE = (
    "<!doctype html><html><head><title>loading</title>"
    + "".join(f'<link rel="stylesheet" href="/sub/style{i}.css">' for i in range(10))
    + "</head><body>"
    + "".join(f'<img src="/sub/img{i}.svg" width="8" height="8">' for i in range(10))
    + "".join(f'<script src="/sub/script{i}.js"></script>' for i in range(10))
    + "<script>window.addEventListener('load', () => {"
    " const n = performance.getEntriesByType('resource')"
    ".filter(e => e.nextHopProtocol === 'h2').length;"
    " document.title = 'loaded ' + n; });</script>"
    "</body></html>"
).encode()
SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8">'
    b'<rect width="8" height="8"/></svg>'
)
TYPES = {"css": "text/css", "svg": "image/svg+xml", "js": "text/javascript"}


def _sub(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    name = environ["PATH_INFO"].rsplit("/", 1)[-1]
    kind = name.rsplit(".", 1)[-1]
    if kind == "svg":
        body = SVG
    elif kind == "css":
        body = f"/* {name} */ body {{ margin: 0 }}".encode()
    else:
        body = f"window.loaded{name.split('.')[0][6:]} = true;".encode()
    start_response("200 OK", [("Content-Type", TYPES[kind]), ("Content-Length", str(len(body)))])
    return [body]


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "")
    if path == "/echo-trailers":
        return echo_trailers(environ, start_response)
    if path.startswith("/interop.Test/"):
        return _grpc(environ, start_response)
    if path == "/page":
        start_response(
            "200 OK", [("Content-Type", "text/html"), ("Content-Length", str(len(PAGE)))]
        )
        return [PAGE]
    if path.startswith("/sub/"):
        return _sub(environ, start_response)
    return base_app(environ, start_response)
