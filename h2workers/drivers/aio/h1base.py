"""What AsgiH2's two HTTP/1.1 protocols share, whatever parses the bytes.

``http1.py`` parses with h11 and ``h1fast.py`` with httptools (when it is
installed). Both protocols are an ``H1Protocol`` (the connection's
lifetime, deadlines and flow); both hand each request to an exchange built
on ``H1Exchange`` here (the ``AsyncChannel`` the ASGI runner also uses for
HTTP/2 streams: the request body buffered with back-pressure, the response
through the protocol's writer) and each WebSocket to one built on
``H1WebSocket``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from collections import deque
from collections.abc import Iterable
from http import HTTPStatus
from typing import Any

from h2.errors import ErrorCodes

from h2workers.app.asgi.scope import ScopeBuilder
from h2workers.errors import StreamClosed
from h2workers.proto.headers import Header, RequestHead

READ_AHEAD = 256 * 1024  # request body buffered before reading pauses
DRAIN_LIMIT = 1 << 20  # unread request body discarded to keep the connection
WEBSOCKET_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_HANDSHAKE_FIELDS = frozenset(
    (b"upgrade", b"connection", b"sec-websocket-accept", b"sec-websocket-protocol")
)


class H1Protocol:
    """What both HTTP/1.1 protocols do the same way: the connection's
    futures (``lost``, ``drained`` while writing is paused), the request-head
    and keep-alive deadlines, one scope builder per HTTP version, and the
    stop. A subclass parses, and calls ``finished`` when a response is whole."""

    exchange: H1Exchange | None  # the request being served
    websocket: H1WebSocket | None  # the connection became a WebSocket

    def __init__(self, worker: Any, conn: Any) -> None:
        self.worker = worker
        self.conn = conn
        self.transport = conn.transport
        self.builders: dict[bytes, ScopeBuilder] = {}  # by HTTP version, made on first use
        self.exchange = None
        self.websocket = None
        self.lost: asyncio.Future[None] = worker.loop.create_future()
        self.drained: asyncio.Future[None] | None = None  # while writing is paused
        self.stopping = False
        self.deadline = time.monotonic() + worker.head_timeout  # the first request head
        self.idle_deadline = 0.0  # keep-alive between requests

    def finished(self) -> None:
        """The exchange's response is whole: the next request, or close."""
        raise NotImplementedError

    def head_arriving(self, data: bytes) -> None:
        """Bytes while no request is served: the next head's deadline starts."""
        if self.exchange is None and not self.deadline and data:
            self.deadline = time.monotonic() + self.worker.head_timeout
            self.idle_deadline = 0.0

    def keep_alive(self) -> bool:
        """Between requests: wait for the next (True) or close now."""
        worker = self.worker
        if self.stopping or not worker.alive or worker.keepalive <= 0:
            self.transport.close()
            return False
        self.idle_deadline = time.monotonic() + max(worker.keepalive, 1.0)
        return True

    def builder(self, version: bytes) -> ScopeBuilder:
        builder = self.builders.get(version)
        if builder is None:
            conn = self.conn
            tls = self.transport.get_extra_info("ssl_object")
            name = "1.0" if version == b"1.0" else "1.1"
            builder = self.worker.serve_context.builder(conn.peer, conn.server, tls, name)
            self.builders[version] = builder
        return builder

    def exchanges(self) -> Iterable[H1Exchange]:
        """The requests a lost connection must wake (served or waiting)."""
        return () if self.exchange is None else (self.exchange,)

    # -- flow and lifetime -------------------------------------------------------

    def pause_writing(self) -> None:
        if self.drained is None:
            self.drained = self.worker.loop.create_future()

    def resume_writing(self) -> None:
        drained, self.drained = self.drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)

    def connection_lost(self) -> None:
        if not self.lost.done():
            self.lost.set_result(None)
        self.resume_writing()
        for exchange in self.exchanges():
            exchange.wake()
        if self.websocket is not None:
            self.websocket.feed(b"")

    def tick(self, now: float) -> str | None:
        if self.exchange is not None or self.websocket is not None:
            return None
        if 0 < self.deadline <= now:
            return "HTTP/1.1 request head(s)"
        if 0 < self.idle_deadline <= now:
            self.transport.close()  # keep-alive over: not worth a line
        return None

    def stop(self, now: float) -> None:
        self.stopping = True
        if self.exchange is None and self.websocket is None:
            self.transport.close()


class H1Exchange:
    """One HTTP/1.1 request and its response: the ASGI runner's channel.
    Subclasses write the response (``send_*``)."""

    stream_id = 1

    def __init__(self, protocol: H1Protocol, method: bytes, version: bytes, headers: Any) -> None:
        self.protocol = protocol
        self.method = method
        self.version = version  # b"1.1" or b"1.0"
        self.headers: list[Header] = headers
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.ended = False  # the request body's end was seen
        self.paused = False  # reading paused: the app is behind
        self.waiter: asyncio.Future[None] | None = None
        self.dropping = 0  # > 0: the response is done, the rest of the body is dropped
        self.complete = False  # the response's end was sent

    # fed by the protocol

    def feed(self, data: bytes) -> None:
        if self.dropping:
            self.dropping -= min(self.dropping, len(data))
            if not self.dropping:
                self.protocol.transport.close()
            return
        self.chunks.append(data)
        self.buffered += len(data)
        if self.buffered >= READ_AHEAD and not self.paused:
            self.paused = True
            self.protocol.transport.pause_reading()
        self.wake()

    def feed_end(self) -> None:
        self.ended = True
        self.wake()

    def discard(self) -> bool:
        """The app is done and did not read the whole body: read and drop up
        to DRAIN_LIMIT more so the connection can serve the next request."""
        self.chunks.clear()
        self.dropping = DRAIN_LIMIT
        if self.paused:
            self.paused = False
            self.protocol.transport.resume_reading()
        return True

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def wants_trailers(self) -> bool:
        """Trailers go out only to an HTTP/1.1 client that said ``TE: trailers``."""
        return self.version == b"1.1" and any(
            n == b"te" and b"trailers" in v.lower() for n, v in self.headers
        )

    def extra_headers(self) -> list[Header]:
        """What every response gets: the date, the server, a close when stopping."""
        extra = [(b"date", http_date()), (b"server", b"h2workers")]
        if self.protocol.stopping or not self.protocol.worker.alive:
            extra.append((b"connection", b"close"))
        return extra

    def may_send_informational(self, status: int) -> bool:
        if status != 100 and not self.protocol.worker.options.http1_early_hints:
            return False  # the operator's proxy cannot take them (config.http1_early_hints)
        return self.version == b"1.1" and not self.protocol.lost.done()

    # -- AsyncChannel ------------------------------------------------------------

    async def read_chunk(self, want: int = 0, ahead: int = 0) -> bytes:
        while not self.chunks:
            if self.ended:
                return b""
            self.check()
            self.waiter = self.protocol.worker.loop.create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        chunk = self.chunks.popleft()
        self.buffered -= len(chunk)
        if self.paused and self.buffered < READ_AHEAD // 2:
            self.paused = False
            self.protocol.transport.resume_reading()
        return chunk

    def body_ended(self) -> bool:
        return self.ended and not self.chunks

    def reset(self, error_code: ErrorCodes) -> None:
        """HTTP/1.1 has no reset: close, so the client sees the response cut."""
        self.protocol.transport.close()

    async def wait_closed(self) -> None:
        await asyncio.shield(self.protocol.lost)

    def push(self, block: list[Header]) -> bool:
        return False  # HTTP/1.1 has no push (the extension is not offered)

    def finish(self) -> None:
        """The app's task is over (whatever happened)."""
        if not self.complete and not self.protocol.lost.done():
            self.protocol.transport.close()

    async def drain(self) -> None:
        """Wait while the transport's buffer is over its high-water mark."""
        drained = self.protocol.drained
        if drained is not None:
            await drained
            self.check()

    def completed(self) -> None:
        self.complete = True
        self.protocol.finished()

    def check(self) -> None:
        if self.protocol.lost.done():
            raise StreamClosed("the client closed the connection")


class H1WebSocket:
    """A WebSocket over HTTP/1.1 (RFC 6455) once the opening handshake is
    read: the socket's bytes in and out (``WebSocketTransport``).
    Subclasses write the 101 and a denial."""

    def __init__(self, protocol: H1Protocol, headers: Iterable[Header]) -> None:
        self.protocol = protocol
        self.key = next(v for n, v in headers if n == b"sec-websocket-key").strip()
        self.inbox: deque[bytes] = deque()
        self.buffered = 0
        self.eof = False
        self.paused = False
        self.switched = False  # the 101 went out: bytes are WebSocket frames
        self.waiter: asyncio.Future[None] | None = None

    def feed(self, data: bytes) -> None:
        if data:
            self.inbox.append(data)
            self.buffered += len(data)
            if self.buffered >= READ_AHEAD and not self.paused:
                self.paused = True
                self.protocol.transport.pause_reading()
        else:
            self.eof = True
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def accept_block(self, subprotocol: str | None, headers: list[Header]) -> list[Header]:
        """The 101's fields (RFC 6455 4.2.2)."""
        accept = base64.b64encode(hashlib.sha1(self.key + WEBSOCKET_GUID).digest())
        block = [(b"upgrade", b"websocket"), (b"connection", b"Upgrade"),
                 (b"sec-websocket-accept", accept)]  # fmt: skip
        if subprotocol is not None:
            block.append((b"sec-websocket-protocol", subprotocol.encode()))
        return block + [(n, v) for n, v in headers if n not in _HANDSHAKE_FIELDS]

    @staticmethod
    def denial_block(headers: list[Header], body: bytes, end: bool) -> list[Header]:
        """A denial's fields: its length when the body is whole, and a close
        (the connection cannot go on as HTTP/1.1 after an upgrade request)."""
        block = [(n, v) for n, v in headers if n != b"connection"]
        if end and not any(n == b"content-length" for n, _ in block):
            block.append((b"content-length", b"%d" % len(body)))
        block.append((b"connection", b"close"))
        return block

    def switched_with(self, trailing: bytes) -> None:
        """The 101 is out; what the client sent after its request is frames."""
        self.switched = True
        if trailing:
            self.feed(trailing)
        self.protocol.transport.resume_reading()

    async def read(self) -> bytes:
        while not self.inbox:
            if self.eof:
                return b""
            self.waiter = self.protocol.worker.loop.create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        data = self.inbox.popleft()
        self.buffered -= len(data)
        if self.paused and self.buffered < READ_AHEAD // 2:
            self.paused = False
            self.protocol.transport.resume_reading()
        return data

    async def write(self, data: bytes) -> None:
        protocol = self.protocol
        if protocol.lost.done():
            raise StreamClosed("the client closed the connection")
        protocol.transport.write(data)
        drained = protocol.drained
        if drained is not None:
            await drained

    def close(self) -> None:
        self.protocol.transport.close()


def asks_websocket(method: bytes, headers: Iterable[Header]) -> bool:
    """RFC 6455 4.2.1: a GET with Upgrade: websocket, Connection: upgrade, a
    key, version 13 (anything else is served as a plain request)."""
    if method != b"GET":
        return False
    values: dict[bytes, bytes] = {}
    for name, value in headers:
        values[name] = values[name] + b"," + value if name in values else value
    tokens = {t.strip() for t in values.get(b"connection", b"").lower().split(b",")}
    return (
        b"websocket" in values.get(b"upgrade", b"").lower()
        and b"upgrade" in tokens
        and bool(values.get(b"sec-websocket-key"))
        and values.get(b"sec-websocket-version", b"").strip() == b"13"
    )


def request_head(method: bytes, target: bytes, headers: list[Header]) -> RequestHead:
    return RequestHead(method=method, scheme=None, authority=None, path=target, headers=headers)


_REASONS = {int(status): status.phrase.encode() for status in HTTPStatus}


def reason(status: int) -> bytes:
    return _REASONS.get(status, b"")


_date_cache: tuple[int, bytes] = (0, b"")


def http_date() -> bytes:
    """The Date header, formatted once a second."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now)).encode())
    return _date_cache[1]
