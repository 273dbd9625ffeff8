"""HTTP/1.1 on the asyncio worker, through httptools (llhttp, Node.js's
parser, in C), when it is installed: ``http1_parser`` chooses.

The same service as ``http1.py`` (h11), at the speed of a C parser:
Gunicorn's request policy through the shared app layer, a request head
within ``timeout`` and no larger than Gunicorn's limits allow, ``keepalive``
between requests, pipelined requests served one after another, request
bodies under back-pressure, trailers to clients that sent ``TE: trailers``,
103 Early Hints, and WebSockets (``Upgrade: websocket``). h11 validates the
responses it writes; here the ASGI runner has already checked every
header (``app/response.check_headers``), so the writer only frames them:
Content-Length when the length is known, chunked otherwise (HTTP/1.1), or
the end of the connection (HTTP/1.0). ``Upgrade: h2c`` is h11's: a worker
that accepts it in cleartext parses HTTP/1.1 with h11 (``connection.py``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING

import httptools

from h2workers.app.asgi.serve import serve_request, serve_websocket
from h2workers.app.response import has_no_body
from h2workers.drivers.aio.h1base import (
    H1Exchange,
    H1Protocol,
    H1WebSocket,
    asks_websocket,
    http_date,
    reason,
    request_head,
)
from h2workers.proto.headers import Header, RequestHead

if TYPE_CHECKING:
    from h2workers.drivers.aio.connection import LoopConnection
    from h2workers.drivers.aio.worker import AsgiH2

_SERVER = b"server: h2workers\r\n"


class FastProtocol(H1Protocol):
    """One HTTP/1.1 connection parsed by httptools (its callbacks below)."""

    exchange: FastExchange | None
    websocket: FastWebSocket | None

    def __init__(self, worker: AsgiH2, conn: LoopConnection, initial: bytes) -> None:
        super().__init__(worker, conn)
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.headers: list[Header] = []
        self.in_head = False  # between a request's first byte and its head's end
        self.head_bytes = 0
        self.refusal: tuple[int, str] | None = None  # found in a callback, answered after it
        self.parsing: FastExchange | None = None  # the request whose body is arriving
        self.waiting: deque[tuple[FastExchange, RequestHead]] = deque()  # pipelined
        self.asked_websocket: RequestHead | None = None
        self.closing = False  # close once the current response is whole
        if initial:
            self.data_received(initial)

    # -- input -----------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        websocket = self.websocket
        if websocket is not None and websocket.switched:
            websocket.feed(data)
            return
        if self.closing:
            return  # past a request we could not parse on from: ignore the rest
        self.head_arriving(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self._upgraded(data[exc.args[0] :])
            return
        except httptools.HttpParserError as exc:
            refusal = self.refusal or (400, f"malformed request: {exc}")
            self._refuse(*refusal)
            return
        if self.in_head:
            self.head_bytes += len(data)
            if self.head_bytes > self.worker.head_limit:
                self._refuse(431, "request head over Gunicorn's limits")

    def eof_received(self) -> bool:
        """The client half-closed: what it asked for is answered, then closed."""
        if self.websocket is not None and self.websocket.switched:
            self.websocket.feed(b"")
            return True
        parsing = self.parsing
        cut = parsing is not None and not parsing.ended  # its body can never be whole
        if self.exchange is None or (cut and parsing is self.exchange):
            self.transport.close()  # the app reading that body sees the disconnect
            return True
        if cut and self.waiting and self.waiting[-1][0] is parsing:
            self.waiting.pop()  # never served: its request did not arrive whole
        self.closing = True  # close after the responses in progress and queued
        return True

    # httptools' callbacks

    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []
        self.in_head = True
        self.head_bytes = 0

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.in_head:  # not a chunked body's trailer fields: those are dropped,
            self.headers.append((name.lower(), value))  # never mistaken for headers

    def on_headers_complete(self) -> None:
        self.in_head = False
        self.deadline = 0.0
        parser = self.parser
        version = parser.get_http_version().encode()
        if version not in (b"1.0", b"1.1"):
            self.refusal = (400, f"HTTP version {version!r}")
            raise ValueError(self.refusal[1])  # httptools stops parsing
        hosts = sum(1 for name, _ in self.headers if name == b"host")
        if hosts > 1 or (hosts == 0 and version == b"1.1"):  # RFC 9112 3.2, as h11
            self.refusal = (400, "an HTTP/1.1 request needs one Host header")
            raise ValueError(self.refusal[1])
        method = parser.get_method()
        head = request_head(method, self.url, self.headers)
        if parser.should_upgrade() and asks_websocket(method, self.headers):
            self.asked_websocket = head  # served when httptools stops at the upgrade
            return
        exchange = FastExchange(self, method, version, self.headers, parser.should_keep_alive())
        self.parsing = exchange
        self.worker.count_request()
        if self.exchange is None:
            self._serve(exchange, head)
        else:
            self.waiting.append((exchange, head))
            self.transport.pause_reading()  # a pipelined request waits its turn

    def on_body(self, body: bytes) -> None:
        if self.parsing is not None:
            self.parsing.feed(body)

    def on_message_complete(self) -> None:
        parsing = self.parsing
        if parsing is None:
            return
        parsing.feed_end()
        if parsing is self.exchange and parsing.complete:
            self._next()  # its response was whole; the rest of its body is drained

    # -- serving -----------------------------------------------------------------

    def _serve(self, exchange: FastExchange, head: RequestHead) -> None:
        self.exchange = exchange
        ctx = self.worker.serve_context
        builder = self.builder(exchange.version)
        self.worker.start_task(serve_request(ctx, exchange, builder, head))

    def _upgraded(self, trailing: bytes) -> None:
        """httptools stopped at an ``Upgrade`` request: a WebSocket is served;
        any other (h2c here, or an unknown protocol) is answered as a plain
        request, and the connection closes after it."""
        head, self.asked_websocket = self.asked_websocket, None
        if head is None:
            parsing = self.parsing
            if parsing is not None and not parsing.ended:
                parsing.feed_end()
            self.closing = True
            return
        if self.exchange is not None:
            self._refuse(400, "a WebSocket request pipelined behind another request")
            return
        self.worker.count_request()
        self.websocket = websocket = FastWebSocket(self, head.headers, trailing)
        ctx = self.worker.serve_context
        version = self.parser.get_http_version().encode()
        self.worker.start_task(serve_websocket(ctx, websocket, self.builder(version), head))

    def _refuse(self, status: int, why: str) -> None:
        """A request the parser or our rules refuse: a 4xx, then close (after
        the response in progress, if one is)."""
        self.worker.log.debug("HTTP/1.1 request from %s refused: %s", self.conn.peer, why)
        if self.exchange is not None:
            self.closing = True
            self.transport.pause_reading()
            return
        phrase = reason(status)
        body = b"%d %s\n" % (status, phrase)
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%s"
            % (status, phrase, len(body), body)
        )
        self.transport.close()

    def finished(self) -> None:
        """The exchange's response is whole: the next request, or close."""
        exchange = self.exchange
        if exchange is None:
            return
        if not exchange.keep_alive:
            self.transport.close()
        elif exchange.ended:
            self._next()
        else:
            exchange.discard()  # on_message_complete goes on to the next

    def _next(self) -> None:
        self.exchange = None
        if self.waiting:
            exchange, head = self.waiting.popleft()
            self._serve(exchange, head)
            if not exchange.paused:  # its body may still be on its way
                self.transport.resume_reading()
            return
        if self.closing:
            self.transport.close()
        elif self.keep_alive():
            self.transport.resume_reading()

    def exchanges(self) -> Iterable[H1Exchange]:
        """The one served and the pipelined ones waiting."""
        served = () if self.exchange is None else (self.exchange,)
        return (*served, *(exchange for exchange, _ in self.waiting))


def _lines(headers: list[Header]) -> bytes:
    return b"".join([b"%s: %s\r\n" % pair for pair in headers])


class FastExchange(H1Exchange):
    """An HTTP/1.1 request's response, framed here (see the module docstring)."""

    protocol: FastProtocol

    def __init__(
        self,
        protocol: FastProtocol,
        method: bytes,
        version: bytes,
        headers: list[Header],
        keep_alive: bool,
    ) -> None:
        super().__init__(protocol, method, version, headers)
        self.keep_alive = keep_alive  # the request allows it (and, later, the response)
        self.framing = b""  # b"length", b"chunked", b"close" or b"none"
        self.trailers_ok = False

    async def send_head(self, status: int, headers: list[Header], body: bytes, end: bool) -> None:
        self.check()
        protocol = self.protocol
        extra = [(b"date", http_date())]
        if has_no_body(self.method.decode("latin-1"), status):
            self.framing = b"none"
        elif any(name == b"content-length" for name, _ in headers):
            self.framing = b"length"
        elif end:
            self.framing = b"length"
            extra.append((b"content-length", b"%d" % len(body)))
        elif self.version == b"1.1":
            self.framing = b"chunked"
            extra.append((b"transfer-encoding", b"chunked"))
            self.trailers_ok = self.wants_trailers()
        else:
            self.framing = b"close"  # HTTP/1.0 without a length: the close ends it
        self.keep_alive = (
            self.keep_alive
            and self.framing != b"close"
            and not (protocol.closing and not protocol.waiting)  # the last one to serve
            and not protocol.stopping
            and protocol.worker.alive
        )
        if not self.keep_alive:
            extra.append((b"connection", b"close"))
        elif self.version == b"1.0":
            extra.append((b"connection", b"keep-alive"))
        head = b"HTTP/1.1 %d %s\r\n%s%s%s\r\n" % (
            status,
            reason(status),
            _lines(headers),
            _lines(extra),
            _SERVER,
        )
        protocol.transport.write(head + self._framed(body, end))
        if end:
            self.completed()
        else:
            await self.drain()

    async def send_body(self, data: bytes, end: bool) -> None:
        self.check()
        out = self._framed(data, end)
        if out:
            self.protocol.transport.write(out)
        if end:
            self.completed()
        else:
            await self.drain()

    def _framed(self, data: bytes, end: bool) -> bytes:
        framing = self.framing
        if framing == b"chunked":
            out = b"%x\r\n%s\r\n" % (len(data), data) if data else b""
            return out + b"0\r\n\r\n" if end else out
        return b"" if framing == b"none" else data

    def send_informational(self, status: int, headers: list[Header]) -> None:
        if self.may_send_informational(status):
            head = b"HTTP/1.1 %d %s\r\n%s\r\n" % (status, reason(status), _lines(headers))
            self.protocol.transport.write(head)

    def send_trailers(self, headers: list[Header]) -> None:
        if self.protocol.lost.done():
            return
        if self.framing == b"chunked":
            fields = _lines(headers) if self.trailers_ok else b""
            self.protocol.transport.write(b"0\r\n%s\r\n" % fields)
        self.completed()


class FastWebSocket(H1WebSocket):
    """The opening handshake's answer, written here: a 101, or a denial.
    (The app's subprotocol needs no check of its own: ``ASGIWebSocket``
    accepts only one the client offered, which its header carried.)"""

    protocol: FastProtocol

    def __init__(self, protocol: FastProtocol, headers: list[Header], trailing: bytes) -> None:
        super().__init__(protocol, headers)
        self.trailing = trailing  # what the client sent after its request

    async def accept(self, subprotocol: str | None, headers: list[Header]) -> None:
        block = self.accept_block(subprotocol, headers)
        self.protocol.transport.write(b"HTTP/1.1 101 Switching Protocols\r\n%s\r\n" % _lines(block))
        self.switched_with(self.trailing)

    async def deny(self, status: int, headers: list[Header], body: bytes, end: bool) -> None:
        transport = self.protocol.transport
        if status:
            block = self.denial_block(headers, body, end)
            transport.write(b"HTTP/1.1 %d %s\r\n%s\r\n" % (status, reason(status), _lines(block)))
        if body:
            transport.write(body)
        if end:
            transport.close()
