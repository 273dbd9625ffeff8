"""Shared helpers for the conformance suite: RFC 9113 sections 3 to 8 and RFC 7541.

Two ways to talk to the server, both with hand-built frames:

* ``Peer`` drives an in-memory ``H2Core`` (exact and fast);
* ``Wire`` talks to a real Gunicorn (``-k h2workers.GThreadH2``) over a socket,
  h2c or TLS with ALPN ``h2``, so the worker's own path (preface sniffing,
  reads, writes, closing the socket after GOAWAY) is covered as well.

What the server writes is split into frames by a reader that depends on
neither h2 nor hyperframe, and every frame is rendered by ``describe`` as a
short tuple. Expected frames are written with the constructors below
(``rst(1, PROTOCOL_ERROR)``, ``goaway(PROTOCOL_ERROR, last=1)``), which build
the same tuples, so tests compare whole lists and a failure shows both sides.
"""

from __future__ import annotations

import ssl
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import hpack
from h2.errors import ErrorCodes

from h2workers.config import H2Settings
from h2workers.proto import events as ev
from h2workers.proto.core import H2Core
from tests.frames import (
    ACK,
    CONTINUATION,
    DATA,
    ENABLE_PUSH,
    END_HEADERS,
    END_STREAM,
    GOAWAY,
    HEADER_TABLE_SIZE,
    HEADERS,
    INITIAL_WINDOW_SIZE,
    MAX_CONCURRENT_STREAMS,
    MAX_FRAME_SIZE,
    MAX_HEADER_LIST_SIZE,
    NAMES,
    PADDED,
    PING,
    PREFACE,
    PRIORITY,
    PRIORITY_FLAG,
    PUSH_PROMISE,
    RST_STREAM,
    SETTINGS,
    WINDOW_UPDATE,
    RawFrame,
    RawFrameReader,
    continuation,
    data,
    goaway_frame,
    headers,
    ping,
    priority,
    priority_fields,
    push_promise,
    rst_stream,
    settings,
    window_update,
)
from tests.frames import raw_frame as frame
from tests.sockets import FrameSocket

Header = tuple[bytes, bytes]

# The frame builders and numbers are tests/frames.py's; the RFC tests import
# them from here with the rest (``frame`` is ``raw_frame``).
__all__ = [
    "ACK",
    "CONTINUATION",
    "DATA",
    "ENABLE_PUSH",
    "END_HEADERS",
    "END_STREAM",
    "GOAWAY",
    "HEADERS",
    "HEADER_TABLE_SIZE",
    "INITIAL_WINDOW_SIZE",
    "MAX_CONCURRENT_STREAMS",
    "MAX_FRAME_SIZE",
    "MAX_HEADER_LIST_SIZE",
    "NAMES",
    "PADDED",
    "PING",
    "PREFACE",
    "PRIORITY",
    "PRIORITY_FLAG",
    "PUSH_PROMISE",
    "RST_STREAM",
    "SETTINGS",
    "WINDOW_UPDATE",
    "RawFrame",
    "RawFrameReader",
    "continuation",
    "data",
    "frame",
    "goaway_frame",
    "headers",
    "ping",
    "priority",
    "priority_fields",
    "push_promise",
    "rst_stream",
    "settings",
    "window_update",
]

NO_ERROR = ErrorCodes.NO_ERROR
PROTOCOL_ERROR = ErrorCodes.PROTOCOL_ERROR
INTERNAL_ERROR = ErrorCodes.INTERNAL_ERROR
FLOW_CONTROL_ERROR = ErrorCodes.FLOW_CONTROL_ERROR
STREAM_CLOSED = ErrorCodes.STREAM_CLOSED
FRAME_SIZE_ERROR = ErrorCodes.FRAME_SIZE_ERROR
REFUSED_STREAM = ErrorCodes.REFUSED_STREAM
CANCEL = ErrorCodes.CANCEL
COMPRESSION_ERROR = ErrorCodes.COMPRESSION_ERROR
ENHANCE_YOUR_CALM = ErrorCodes.ENHANCE_YOUR_CALM

MAX_WINDOW = 2**31 - 1
DEFAULT_WINDOW = 65_535
DEFAULT_MAX_FRAME = 16_384


# -- frames the client sends ----------------------------------------------------


def request_block(
    path: bytes = b"/",
    method: bytes = b"GET",
    extra: Iterable[Header] = (),
    scheme: bytes = b"https",
) -> list[Header]:
    """A well-formed request header list (RFC 9113 8.3.1)."""
    return [
        (b":method", method),
        (b":scheme", scheme),
        (b":path", path),
        (b":authority", b"127.0.0.1"),
        *extra,
    ]


# -- frames the server sends ----------------------------------------------------


def _code(value: int) -> ErrorCodes | int:
    try:
        return ErrorCodes(value)
    except ValueError:
        return value


def describe(f: RawFrame) -> tuple:
    """A frame as a comparable tuple; see the constructors below."""
    assert not f.reserved, f"server set the reserved bit: {f}"
    name = NAMES[f.ftype] if f.ftype < len(NAMES) else f"TYPE_{f.ftype:#x}"
    p = f.payload
    if f.ftype == DATA:
        return (name, f.sid, f.flags, len(p))
    if f.ftype == RST_STREAM:
        assert len(p) == 4 and f.flags == 0, f
        return (name, f.sid, _code(int.from_bytes(p, "big")))
    if f.ftype == SETTINGS:
        assert len(p) % 6 == 0, f
        pairs = tuple(struct.unpack(">HI", p[i : i + 6]) for i in range(0, len(p), 6))
        return (name, f.sid, f.flags, pairs)
    if f.ftype == PING:
        return (name, f.sid, f.flags, p)
    if f.ftype == GOAWAY:
        assert len(p) >= 8 and f.flags == 0, f
        last, code = struct.unpack(">II", p[:8])
        return (name, f.sid, _code(code), last)
    if f.ftype == WINDOW_UPDATE:
        assert len(p) == 4 and f.flags == 0, f
        return (name, f.sid, int.from_bytes(p, "big"))
    return (name, f.sid, f.flags)


def rst(sid: int, code: int) -> tuple:
    return ("RST_STREAM", sid, _code(code))


def goaway(code: int, last: int) -> tuple:
    return ("GOAWAY", 0, _code(code), last)


def ping_ack(payload: bytes = b"h2spec!!") -> tuple:
    return ("PING", 0, ACK, payload)


SETTINGS_ACK = ("SETTINGS", 0, ACK, ())


def wu(sid: int, increment: int) -> tuple:
    return ("WINDOW_UPDATE", sid, increment)


def resp_headers(sid: int, end_stream: bool = False) -> tuple:
    return ("HEADERS", sid, END_HEADERS | (END_STREAM if end_stream else 0))


def resp_data(sid: int, size: int, end_stream: bool = True) -> tuple:
    return ("DATA", sid, END_STREAM if end_stream else 0, size)


# -- the in-memory server ----------------------------------------------------------


class _Blocks:
    """Decodes the server's header blocks once each, in order, with an
    independent HPACK decoder (CONTINUATION frames joined to their HEADERS)."""

    raw: list[RawFrame]

    def _setup_blocks(self) -> None:
        self.decoder = hpack.Decoder()
        self._decoded = 0
        self._pending: tuple[int, bytes] | None = None
        self._blocks: list[tuple[int, list[Header]]] = []

    def blocks(self, sid: int | None = None) -> list[list[Header]]:
        """Header blocks received so far (on ``sid``, or all of them)."""
        for f in self.raw[self._decoded :]:
            if f.ftype == HEADERS:
                fragment = _field_block(f)
                self._pending = (f.sid, fragment)
            elif f.ftype == CONTINUATION and self._pending is not None:
                self._pending = (self._pending[0], self._pending[1] + f.payload)
            else:
                continue
            if f.flags & END_HEADERS:
                stream, block = self._pending
                fields = self.decoder.decode(block, raw=True)
                self._blocks.append((stream, [(bytes(n), bytes(v)) for n, v in fields]))
                self._pending = None
        self._decoded = len(self.raw)
        return [block for stream, block in self._blocks if sid is None or stream == sid]


def _field_block(f: RawFrame) -> bytes:
    """The field block fragment of a HEADERS frame, without padding/priority."""
    body = f.payload
    pad = 0
    if f.flags & PADDED:
        pad, body = body[0], body[1:]
    if f.flags & PRIORITY_FLAG:
        body = body[5:]
    return body[: len(body) - pad]


class Peer(_Blocks):
    """A hand-written client wired to an ``H2Core``: exact frames both ways.

    The connection starts as h2spec's does: preface, a SETTINGS frame (with
    ``client_settings``), the server's preface read, its SETTINGS acknowledged.
    With ``handshake=False`` nothing is sent: the test writes the preface.
    """

    def __init__(
        self,
        server: H2Settings | None = None,
        client_settings: Iterable[tuple[int, int]] = (),
        handshake: bool = True,
    ) -> None:
        self.core = H2Core(server or H2Settings())
        self.encoder = hpack.Encoder()
        self.reader = RawFrameReader()
        self.events: list[ev.Event] = []
        self.raw: list[RawFrame] = []  # everything the server wrote, in order
        self._setup_blocks()
        self.core.initiate()
        self.server_preface = self.frames()  # written before any client byte
        if handshake:
            self.send(PREFACE, settings(*client_settings))
            self.server_preface += self.frames()
            self.send(settings(ack=True))

    def encode(self, block: Iterable[Header]) -> bytes:
        return self.encoder.encode(list(block))

    def send(self, *chunks: bytes) -> list[ev.Event]:
        out = self.core.receive(b"".join(chunks))
        self.events += out
        return out

    def read_raw(self, now: float = 0.0) -> list[RawFrame]:
        self.core.flush(now)
        got = self.reader.feed(self.core.data_to_send())
        self.raw += got
        return got

    def frames(self) -> list[tuple]:
        """The frames written since the last read, described."""
        return [describe(f) for f in self.read_raw()]

    def exchange(self, *chunks: bytes) -> list[tuple]:
        self.send(*chunks)
        return self.frames()

    def request(
        self,
        sid: int,
        block: Iterable[Header] | None = None,
        end_stream: bool = True,
        **kwargs,
    ) -> bytes:
        """HEADERS for a request (a GET unless ``block`` says otherwise)."""
        return headers(sid, self.encode(block or request_block()), end_stream, **kwargs)

    def open(self, sid: int, end_stream: bool = True, block: Iterable[Header] | None = None):
        """Open a stream with a valid request; the application sees it."""
        got = self.send(self.request(sid, block, end_stream))
        assert [type(e) for e in got] == [ev.RequestStarted], got
        assert self.frames() == []
        return got[0]

    def answer(self, sid: int, body: bytes = b"ok") -> list[tuple]:
        """The application's response (200 and ``body``); the frames written.
        As a session does, nothing is sent for a stream already aborted."""
        if not self.core.is_serving(sid):
            return self.frames()
        self.core.respond(sid, 200, [(b"content-length", str(len(body)).encode())])
        self.core.send_body(sid, body, end_stream=True)
        return self.frames()

    def started(self) -> list[ev.RequestStarted]:
        return [e for e in self.events if isinstance(e, ev.RequestStarted)]


def assert_alive(peer: Peer, payload: bytes = b"alive?!!") -> None:
    """The connection still works: a PING is answered (RFC 9113 6.7)."""
    assert not peer.core.terminated
    assert peer.exchange(ping(payload)) == [ping_ack(payload)]


def assert_connection_error(peer: Peer, code: int, last: int, *chunks: bytes) -> None:
    """Sending ``chunks`` is a connection error (RFC 9113 5.4.1): exactly one
    GOAWAY with ``code`` and ``last`` as last stream id, nothing after it."""
    got = peer.exchange(*chunks)
    assert got == [goaway(code, last)]
    assert peer.core.terminated and peer.core.finished
    assert peer.exchange(ping()) == []  # nothing is read or written after it


def assert_stream_error(peer: Peer, sid: int, code: int, *chunks: bytes) -> None:
    """Sending ``chunks`` is a stream error (RFC 9113 5.4.2): exactly one
    RST_STREAM for ``sid`` with ``code``; the connection lives on."""
    got = peer.exchange(*chunks)
    assert got == [rst(sid, code)]
    assert_alive(peer)


def assert_stream_or_connection_error(
    peer: Peer, sid: int, code: int, last: int, *chunks: bytes
) -> str:
    """Where the RFC allows either: RST_STREAM(sid, code) and the connection
    goes on, or GOAWAY(code, last); the code is checked either way."""
    got = peer.exchange(*chunks)
    if got == [rst(sid, code)]:
        assert_alive(peer)
        return "stream"
    assert got == [goaway(code, last)]
    assert peer.core.terminated
    return "connection"


def rejected(peer: Peer) -> list[tuple[int, ErrorCodes]]:
    """(stream id, code) of the streams the core refused or aborted."""
    return [
        (e.stream_id, e.error_code)
        for e in peer.events
        if isinstance(e, (ev.StreamRejected, ev.StreamAborted))
    ]


# -- the real server --------------------------------------------------------------


class Wire(FrameSocket, _Blocks):
    """The raw client (tests/sockets.py) to a running server (h2c or TLS +
    ALPN h2), with this suite's vocabulary: described frames, blocks."""

    def __init__(
        self, port: int, context: ssl.SSLContext | None = None, timeout: float = 5.0
    ) -> None:
        super().__init__(port, context, timeout=timeout)
        self._setup_blocks()
        self.mark = 0

    def wait(self, predicate: Callable[[], bool], timeout: float | None = None) -> bool:
        return self._poll(predicate, self.timeout if timeout is None else timeout, 0.2)

    def start(self, *client_settings: tuple[int, int]) -> list[tuple]:
        """Preface and SETTINGS; wait for the server's SETTINGS and its ACK of
        ours, acknowledge its SETTINGS. Returns what the server sent."""
        self.send(PREFACE, settings(*client_settings))
        assert self.wait(lambda: self._seen(SETTINGS, 0) and self._seen(SETTINGS, ACK)), self.raw
        self.send(settings(ack=True))
        return self.take()

    def request(
        self,
        sid: int,
        path: bytes = b"/hello",
        method: bytes = b"GET",
        extra: Iterable[Header] = (),
        end_stream: bool = True,
        **kwargs,
    ) -> bytes:
        """HEADERS for a request to the test application."""
        block = request_block(path, method, extra, scheme=self.scheme)
        return headers(sid, self.encoder.encode(block), end_stream, **kwargs)

    def ended(self, sid: int) -> bool:
        """The server ended (END_STREAM) or reset stream ``sid``."""
        return any(
            f.sid == sid
            and (f.ftype == RST_STREAM or (f.ftype in (DATA, HEADERS) and f.flags & END_STREAM))
            for f in self.raw
        )

    def body(self, sid: int) -> bytes:
        return b"".join(f.payload for f in self.raw if f.ftype == DATA and f.sid == sid)

    def _seen(self, ftype: int, flags: int) -> bool:
        return any(f.ftype == ftype and f.flags == flags for f in self.raw)

    def take(self) -> list[tuple]:
        """The frames received since the last ``take``, described."""
        got = [describe(f) for f in self.raw[self.mark :]]
        self.mark = len(self.raw)
        return got

    def closed_after(self, timeout: float | None = None) -> bool:
        """Read until the server closes the connection (or the timeout)."""
        return self.wait(lambda: self.closed, timeout)


def wire_connection_error(wire: Wire, code: int, last: int, *chunks: bytes) -> None:
    """Over a socket: exactly one GOAWAY(code, last), then the server closes
    the TCP connection (RFC 9113 5.4.1)."""
    wire.send(*chunks)
    assert wire.closed_after(), f"connection still open; got {wire.take()}"
    assert wire.take() == [goaway(code, last)]


def wire_stream_error(wire: Wire, sid: int, code: int, *chunks: bytes) -> None:
    """Over a socket: exactly RST_STREAM(sid, code); the connection still
    answers a PING afterwards (RFC 9113 5.4.2)."""
    wire.send(*chunks)
    assert wire.wait(lambda: any(f.ftype == RST_STREAM for f in wire.raw[wire.mark :]))
    wire.send(ping(b"after rs"))
    assert wire.wait(lambda: wire.raw[-1:] and wire.raw[-1].ftype == PING)
    assert wire.take() == [rst(sid, code), ping_ack(b"after rs")]


@dataclass(frozen=True)
class WireServer:
    """A running server a ``Wire`` can connect to."""

    name: str  # "h2c" or "tls"
    port: int
    context: ssl.SSLContext | None

    def connect(self, *client_settings: tuple[int, int], start: bool = True) -> Wire:
        wire = Wire(self.port, self.context)
        if start:
            wire.start(*client_settings)
        return wire

    @property
    def scheme(self) -> bytes:
        return b"http" if self.context is None else b"https"


POST = request_block(method=b"POST")


def open_post(peer: Peer, sid: int = 1) -> None:
    """Open a POST stream whose body is still to come."""
    peer.open(sid, end_stream=False, block=POST)


def respond(peer: Peer, sid: int, body: bytes) -> list[tuple]:
    """Answer 200 with ``body`` and return the frames the server wrote
    (nothing for a stream already aborted, as a session does)."""
    if not peer.core.is_serving(sid):
        return peer.frames()
    peer.core.respond(sid, 200, [])
    peer.core.send_body(sid, body, end_stream=True)
    return peer.frames()
