"""The socket under the test clients, and the one raw HTTP/2 client.

``H2Client`` (tests/e2e) speaks HTTP/2 through h2, on purpose: an
independent implementation to check ours against. ``FrameSocket`` is the
raw client: frames the test writes itself go out as bytes, what the server
writes is split by the 9-octet header alone (``RawFrameReader``) and, when a
test asks, parsed by hyperframe. The attack suite (``RawConn``) and the wire
conformance suite (``Wire``) add their own vocabulary to it. How a client
connects, reads, notices the server closing and waits lives here once: a
change to it (a socket option, how a TLS close is read) then reaches every
suite alike.
"""

from __future__ import annotations

import select
import socket
import ssl
import time
from collections.abc import Callable
from typing import ClassVar, TypeVar

import hpack
from hyperframe.frame import Frame

from tests.frames import RawFrame, RawFrameReader

_Peer = TypeVar("_Peer", bound="SocketPeer")


class SocketPeer:
    """A client socket to the test server on 127.0.0.1:``port``: h2c (prior
    knowledge), or TLS when ``context`` is given, where ALPN must pick h2.

    Subclasses turn what ``_recv`` returns into frames in their ``pump``.
    """

    #: recv() errors that mean the server closed or broke the connection.
    closed_by: ClassVar[tuple[type[OSError], ...]] = (ConnectionResetError, BrokenPipeError)
    #: recv() errors that mean nothing has arrived yet (checked before ``closed_by``).
    idle_on: ClassVar[tuple[type[OSError], ...]] = ()

    def __init__(
        self,
        port: int,
        context: ssl.SSLContext | None = None,
        *,
        timeout: float = 10.0,
        rcvbuf: int | None = None,
    ) -> None:
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            if rcvbuf is not None:  # before connect, so the window scale follows it
                raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            raw.settimeout(timeout)
            raw.connect(("127.0.0.1", port))
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            raw.close()
            raise
        self.sock: socket.socket = raw
        if context is not None:
            self.sock = context.wrap_socket(raw, server_hostname="127.0.0.1")
            assert self.sock.selected_alpn_protocol() == "h2", self.sock.selected_alpn_protocol()
        self.scheme = b"https" if context is not None else b"http"
        self.authority = f"127.0.0.1:{port}".encode()
        self.timeout = timeout
        self.closed = False
        self.closed_at: float | None = None  # time.monotonic() when the close was read

    def _recv(self, timeout: float) -> bytes | None:
        """What arrives within ``timeout``: None if nothing did, b"" once the
        connection is closed (``closed`` and ``closed_at`` record it)."""
        if self.closed:
            return b""
        # TLS may hold decrypted bytes the kernel no longer reports as readable.
        pending = isinstance(self.sock, ssl.SSLSocket) and self.sock.pending()
        if not pending and not select.select([self.sock], [], [], timeout)[0]:
            return None
        try:
            data = self.sock.recv(1 << 20)
        except self.idle_on:
            return None
        except self.closed_by:
            data = b""
        if not data:
            self.closed = True
            self.closed_at = time.monotonic()
        return data

    def pump(self, timeout: float) -> bool | None:
        """Read what arrives within ``timeout`` and take it in."""
        raise NotImplementedError

    def _poll(self, predicate: Callable[[], bool], timeout: float, step: float) -> bool:
        """Pump, ``step`` seconds at a time, until ``predicate()`` holds, the
        server closes or ``timeout`` runs out; whether it holds in the end."""
        deadline = time.monotonic() + timeout
        while not predicate():
            left = deadline - time.monotonic()
            if left <= 0 or self.closed:
                return predicate()
            self.pump(min(left, step))
        return True

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self: _Peer) -> _Peer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


DATA_KEPT = 1 << 20  # bytes of what the server wrote a FrameSocket keeps as they came


class FrameSocket(SocketPeer):
    """The raw HTTP/2 client: bytes out, frames in (see the module docstring).

    The server cuts attacking and malformed connections off, TLS ones
    possibly mid-record: any failed read (an ``ssl.SSLError`` is an
    ``OSError``) is the close, a read that would block is nothing yet.
    """

    closed_by = (OSError,)
    idle_on = (BlockingIOError,)

    def __init__(
        self,
        port: int,
        context: ssl.SSLContext | None = None,
        *,
        timeout: float = 10.0,
        rcvbuf: int | None = None,
    ) -> None:
        super().__init__(port, context, timeout=timeout, rcvbuf=rcvbuf)
        self.encoder = hpack.Encoder()
        self.reader = RawFrameReader()
        self.raw: list[RawFrame] = []  # every frame the server wrote, in order
        self.received = 0  # bytes
        self.data = bytearray()  # the first DATA_KEPT bytes (e.g. an HTTP/1.1 answer)
        self.send_failed = False
        self._parsed: list[Frame] = []

    @property
    def frames(self) -> list[Frame]:
        """``raw`` as hyperframe parses it (made as tests ask for it)."""
        parsed = self._parsed
        parsed.extend(frame.parsed() for frame in self.raw[len(parsed) :])
        return parsed

    def forget(self) -> None:
        """Drop the frames read so far (a long test keeps only new ones)."""
        self.raw.clear()
        self._parsed.clear()

    def send(self, *chunks: bytes) -> bool:
        """Write ``chunks``; False once the server has closed the connection
        (what it sent before may still be read)."""
        try:
            self.sock.sendall(b"".join(chunks))
            return True
        except OSError:
            self.send_failed = True
            return False

    def pump(self, timeout: float) -> bool:
        """Read what arrives within ``timeout``; False if nothing did."""
        data = self._recv(timeout)
        if not data:
            return False
        if self.received < DATA_KEPT:
            self.data += data[: DATA_KEPT - self.received]
        self.received += len(data)
        self.raw += self.reader.feed(data)
        return True
