"""The ASGI twin of ``tests/interop/app.py`` (AsgiH2 serves it in its place):
the echo with trailers, the gRPC service (as plain ASGI, ``grpc-status`` in
``http.response.trailers``) and the browser page, over ``tests.asgi_apps``.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import AsyncIterator
from typing import Any

from tests.asgi_apps import Receive, Scope, Send, _Reader, _start
from tests.asgi_apps import app as base_app
from tests.interop.app import PAGE, SVG, TYPES


async def _send_body(send: Send, body: bytes, more: bool = True) -> None:
    await send({"type": "http.response.body", "body": body, "more_body": more})


async def _trailers(send: Send, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.trailers", "headers": headers})


async def echo_trailers(scope: Scope, receive: Receive, send: Send) -> None:
    await _start(send, 200, [(b"content-type", b"application/octet-stream")], trailers=True)
    reader = _Reader(receive)
    digest, count = hashlib.sha256(), 0
    while piece := await reader.read(65536):
        digest.update(piece)
        count += len(piece)
        await _send_body(send, piece)
    await _send_body(send, b"", more=False)
    await _trailers(send, [(b"x-sha256", digest.hexdigest().encode()),
                           (b"x-count", str(count).encode())])  # fmt: skip


async def _messages(reader: _Reader) -> AsyncIterator[bytes]:
    while head := await reader.read(5):
        if len(head) < 5:
            raise ValueError("truncated gRPC message prefix")
        (length,) = struct.unpack(">I", head[1:])
        data = await reader.read(length)
        if len(data) < length:
            raise ValueError("truncated gRPC message")
        yield data


def _frame(message: bytes) -> bytes:
    return struct.pack(">BI", 0, len(message)) + message


async def grpc(scope: Scope, receive: Receive, send: Send) -> None:
    method = scope["path"].rsplit("/", 1)[-1]
    reader = _Reader(receive)
    await _start(send, 200, [(b"content-type", b"application/grpc")], trailers=True)
    status = b"0"
    if method == "Unary":
        async for message in _messages(reader):
            await _send_body(send, _frame(message[::-1]))
    elif method == "ServerStream":
        request = await anext(_messages(reader))
        count, size = struct.unpack(">II", request)
        for i in range(count):
            await _send_body(send, _frame(bytes([i % 256]) * size))
    elif method == "ClientStream":
        digest, count = hashlib.sha256(), 0
        async for message in _messages(reader):
            digest.update(message)
            count += 1
        await _send_body(send, _frame(struct.pack(">I", count) + digest.digest()))
    elif method == "Echo":
        async for message in _messages(reader):
            await _send_body(send, _frame(message))
    else:
        status = b"12"
    await _send_body(send, b"", more=False)
    headers = [(b"grpc-status", status)]
    if status != b"0":
        headers.append((b"grpc-message", b"unknown method"))
    await _trailers(send, headers)


async def _whole(send: Send, content_type: str, body: bytes) -> None:
    await _start(send, 200, [(b"content-type", content_type.encode()),
                             (b"content-length", b"%d" % len(body))])  # fmt: skip
    await _send_body(send, body, more=False)


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    path: Any = scope.get("path", "")
    if scope["type"] != "http":
        await base_app(scope, receive, send)
    elif path == "/echo-trailers":
        await echo_trailers(scope, receive, send)
    elif path.startswith("/interop.Test/"):
        await grpc(scope, receive, send)
    elif path == "/page":
        await _whole(send, "text/html", PAGE)
    elif path.startswith("/sub/"):
        name = path.rsplit("/", 1)[-1]
        kind = name.rsplit(".", 1)[-1]
        if kind == "svg":
            body = SVG
        elif kind == "css":
            body = f"/* {name} */ body {{ margin: 0 }}".encode()
        else:
            body = f"window.loaded{name.split('.')[0][6:]} = true;".encode()
        await _whole(send, TYPES[kind], body)
    else:
        await base_app(scope, receive, send)
