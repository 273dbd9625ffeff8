"""The socket under the raw HTTP/2 test clients.

``H2Client`` (tests/e2e), ``RawConn`` (tests/attacks) and ``Wire``
(tests/conformance) each speak HTTP/2 their own way (h2, hyperframe, bytes
by hand), on purpose, so that none depends on the others' view of a frame.
How they connect, read, notice the server closing and wait is the same,
though, and lives here once: a change to it (a socket option, how a TLS
close is read) then reaches every suite alike.
"""

from __future__ import annotations

import select
import socket
import ssl
import time
from collections.abc import Callable
from typing import ClassVar, TypeVar

_Peer = TypeVar("_Peer", bound="SocketPeer")


class SocketPeer:
    """A client socket to the test server on 127.0.0.1:``port``: h2c (prior
    knowledge), or TLS when ``context`` is given, where ALPN must pick h2.

    Subclasses turn what ``_recv`` returns into frames in their ``pump``.
    """

    #: recv() errors that mean the server closed or broke the connection.
    closed_by: ClassVar[tuple[type[OSError], ...]] = (ConnectionResetError, BrokenPipeError)
    #: recv() errors that mean nothing has arrived yet (checked after ``closed_by``).
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
        except self.closed_by:
            data = b""
        except self.idle_on:
            return None
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
