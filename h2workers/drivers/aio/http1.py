"""HTTP/1.1 on the asyncio worker, through ``h11``.

``H11Protocol`` parses with h11 (sans-I/O, as the h2 side is) and serves one
request at a time; each request is an ``H11Exchange``, the ``AsyncChannel``
the ASGI runner uses for HTTP/2 streams too, so the app layer cannot tell
the two apart but for ``http_version``. Gunicorn's rules apply as on HTTP/2:
the request policy (limits, trusted peers, scheme headers), a request head
within ``timeout``, ``keepalive`` between requests, and ``Upgrade: h2c``
when ``http2_cleartext`` allows it. ``h1fast.py`` is the same on httptools
(``http1_parser``); what both share is in ``h1base.py``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import h11

from h2workers.app.asgi.serve import serve_request, serve_websocket
from h2workers.app.response import has_no_body
from h2workers.drivers.aio.h1base import (
    H1Exchange,
    H1Protocol,
    H1WebSocket,
    asks_websocket,
    reason,
    request_head,
)
from h2workers.errors import StreamClosed
from h2workers.proto.headers import Header, RequestHead
from h2workers.proto.upgrade import SWITCHING_PROTOCOLS, upgrade_block, upgrade_settings
from h2workers.session.session import Session

if TYPE_CHECKING:
    from h2workers.drivers.aio.connection import LoopConnection
    from h2workers.drivers.aio.worker import AsgiH2


class H11Protocol(H1Protocol):
    """One HTTP/1.1 connection: requests one after another."""

    exchange: H11Exchange | None
    websocket: H11WebSocket | None

    def __init__(self, worker: AsgiH2, conn: LoopConnection, initial: bytes) -> None:
        super().__init__(worker, conn)
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=worker.head_limit)
        self.upgrading: _Upgrading | None = None  # an h2c upgrade reading its body
        if initial:
            self.data_received(initial)

    # -- input -----------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        websocket = self.websocket
        if websocket is not None and websocket.switched:
            websocket.feed(data)
            return
        self.head_arriving(data)
        self.h11.receive_data(data)
        self._next()

    def eof_received(self) -> bool:
        """The client half-closed: the response in progress is still sent."""
        if self.websocket is not None and self.websocket.switched:
            self.websocket.feed(b"")
            return True
        self.h11.receive_data(b"")
        self._next()
        return True

    def _next(self) -> None:
        """Take the events h11 has: a request, its body, its end."""
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as exc:
                self._bad_request(exc)
                return
            if event is h11.NEED_DATA:
                return
            if event is h11.PAUSED:
                self.transport.pause_reading()  # a pipelined request waits its turn
                return
            if isinstance(event, h11.Request):
                self._start(event)
            elif isinstance(event, h11.Data):
                if self.upgrading is not None:
                    self.upgrading.body.append(event.data)
                elif self.exchange is not None:
                    self.exchange.feed(event.data)
            elif isinstance(event, h11.EndOfMessage):
                if self.upgrading is not None:
                    self._switch(self.upgrading)
                    return
                if self.exchange is not None:
                    self.exchange.feed_end()
                self._maybe_next_cycle()
            elif isinstance(event, h11.ConnectionClosed):
                if self.exchange is None:
                    self.transport.close()
                return

    def _start(self, request: h11.Request) -> None:
        self.deadline = 0.0
        if request.http_version not in (b"1.0", b"1.1"):
            self._refuse(400, f"HTTP version {request.http_version!r}")
            return
        if self.worker.options.upgrade and self.worker.ssl_context is None:
            shaped = _GunicornShaped(request)
            settings = upgrade_settings(shaped)
            if settings is not None:
                self.upgrading = _Upgrading(settings, upgrade_block(shaped))
                return  # the body follows; then 101 and HTTP/2
        self.worker.count_request()
        if asks_websocket(request.method, request.headers):
            self.websocket = H11WebSocket(self, request)
            serve = serve_websocket(
                self.worker.serve_context,
                self.websocket,
                self.builder(request.http_version),
                _head(request),
            )
            self.worker.start_task(serve)
            return
        head = _head(request)
        self.exchange = exchange = H11Exchange(self, request)
        builder = self.builder(request.http_version)
        self.worker.start_task(serve_request(self.worker.serve_context, exchange, builder, head))

    def _switch(self, upgrading: _Upgrading) -> None:
        """``Upgrade: h2c`` (RFC 7540 3.2): 101, then the session serves the
        request as stream 1 and reads the client's preface from what follows."""
        pending = self.h11.trailing_data[0]
        self.transport.write(SWITCHING_PROTOCOLS)
        body = b"".join(upgrading.body)

        def begin(session: Session) -> None:
            session.start_upgraded(
                upgrading.settings, upgrading.block, body, pending, time.monotonic()
            )

        self.transport.resume_reading()
        self.conn.upgrade(begin)

    def _bad_request(self, exc: h11.RemoteProtocolError) -> None:
        self._refuse(exc.error_status_hint, str(exc))

    def _refuse(self, status: int, why: str) -> None:
        """A request h11 or our rules refuse: a 4xx, then close."""
        self.worker.log.debug("HTTP/1.1 request from %s refused: %s", self.conn.peer, why)
        if self.h11.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            phrase = reason(status)
            body = b"%d %s\n" % (status, phrase)
            headers = [(b"content-length", b"%d" % len(body)), (b"connection", b"close")]
            try:
                for event in (
                    h11.Response(status_code=status, headers=headers, reason=phrase),
                    h11.Data(data=body),
                    h11.EndOfMessage(),
                ):
                    self._write(self.h11.send(event))
            except h11.LocalProtocolError:
                pass
        self.transport.close()

    # -- the exchange's end ----------------------------------------------------

    def finished(self) -> None:
        """The app's response is whole: next request, or close."""
        self._maybe_next_cycle()

    def _maybe_next_cycle(self) -> None:
        conn = self.h11
        if conn.our_state is h11.MUST_CLOSE:
            self.transport.close()  # after the response
            return
        if conn.our_state is not h11.DONE:
            return  # the response is not whole yet
        if conn.their_state in (h11.MUST_CLOSE, h11.CLOSED):
            self.transport.close()
            return
        if conn.their_state is h11.SEND_BODY:
            exchange = self.exchange
            if exchange is not None and not exchange.discard():
                self.transport.close()  # too much unread body to drain
            return
        if conn.their_state is not h11.DONE:
            return
        self.exchange = None
        if not self.keep_alive():
            return
        conn.start_next_cycle()
        self.transport.resume_reading()
        self._next()

    def _write(self, data: bytes | None) -> None:
        if data:
            self.transport.write(data)


def _head(request: h11.Request) -> RequestHead:
    return request_head(request.method, request.target, list(request.headers))


@dataclass
class _Upgrading:
    settings: bytes
    block: list[Header]
    body: list[bytes] = field(default_factory=list)


class _GunicornShaped:
    """An h11 request as ``proto/upgrade.py`` reads one (Gunicorn's shape)."""

    def __init__(self, request: h11.Request) -> None:
        self.method = request.method.decode("latin-1")
        self.uri = request.target.decode("latin-1")
        self.version = (1, 1) if request.http_version == b"1.1" else (1, 0)
        self.headers = [(n.decode("latin-1").upper(), v.decode("latin-1"))
                        for n, v in request.headers]  # fmt: skip


class H11Exchange(H1Exchange):
    """An HTTP/1.1 request's response, written through h11."""

    def __init__(self, protocol: H11Protocol, request: h11.Request) -> None:
        super().__init__(protocol, request.method, request.http_version, list(request.headers))
        self.h11 = protocol.h11
        self.chunked = False  # the response's framing can carry trailers

    async def send_head(self, status: int, headers: list[Header], body: bytes, end: bool) -> None:
        self.check()
        headers = list(headers)
        names = {name for name, _ in headers}
        if end and b"content-length" not in names and not has_no_body(self.method.decode(), status):
            headers.append((b"content-length", b"%d" % len(body)))
        headers += self.extra_headers()
        self.chunked = b"content-length" not in names and self.wants_trailers()
        try:
            self._send(h11.Response(status_code=status, headers=headers, reason=reason(status)))
        except h11.LocalProtocolError as exc:
            raise StreamClosed(f"response refused by h11: {exc}") from exc
        await self.send_body(body, end)

    async def send_body(self, data: bytes, end: bool) -> None:
        self.check()
        if data:
            self._send(h11.Data(data=data))
        if end:
            self._send(h11.EndOfMessage())
            self.completed()
            return
        await self.drain()

    def send_informational(self, status: int, headers: list[Header]) -> None:
        if self.may_send_informational(status):
            event = h11.InformationalResponse(
                status_code=status, headers=headers, reason=reason(status)
            )
            self._send(event)

    def send_trailers(self, headers: list[Header]) -> None:
        if self.protocol.lost.done():
            return
        self._send(h11.EndOfMessage(headers=headers if self.chunked else []))
        self.completed()

    def _send(self, event: Any) -> None:
        data = self.h11.send(event)
        if data:
            self.protocol.transport.write(data)


class H11WebSocket(H1WebSocket):
    """The opening handshake's answer through h11: a 101, or a denial."""

    protocol: H11Protocol

    def __init__(self, protocol: H11Protocol, request: h11.Request) -> None:
        super().__init__(protocol, request.headers)

    async def accept(self, subprotocol: str | None, headers: list[Header]) -> None:
        protocol = self.protocol
        block = self.accept_block(subprotocol, headers)
        switching = h11.InformationalResponse(status_code=101, headers=block, reason=reason(101))
        protocol._write(protocol.h11.send(switching))
        self.switched_with(protocol.h11.trailing_data[0])

    async def deny(self, status: int, headers: list[Header], body: bytes, end: bool) -> None:
        protocol = self.protocol
        conn = protocol.h11
        if status:
            block = self.denial_block(headers, body, end)
            protocol._write(conn.send(h11.Response(status_code=status, headers=block,
                                                   reason=reason(status))))  # fmt: skip
        if body:
            protocol._write(conn.send(h11.Data(data=body)))
        if end:
            protocol._write(conn.send(h11.EndOfMessage()))
            protocol.transport.close()
