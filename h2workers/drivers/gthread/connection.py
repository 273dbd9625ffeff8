"""The socket of one HTTP/2 connection in the GThreadH2 I/O loop.

``SocketConnection`` is the session's ``Transport`` over a non-blocking
socket (TLS or not) registered in the worker's selector, and its reader.
Everything else about the connection (streams, flow, back-pressure,
timeouts, closing) is the session's (``session/session.py``).
"""

from __future__ import annotations

import selectors
import socket
import ssl
import time
from typing import TYPE_CHECKING, Any

from h2workers.session.session import Session

if TYPE_CHECKING:
    from h2workers.drivers.gthread.worker import GThreadH2

RECV_SIZE = 65536
TLS_RECORD = 16384  # largest TLS plaintext record
READS_PER_EVENT = 8  # a 64 KiB window of DATA comes as 5 records (frame headers)
READ, WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE


class SocketConnection:
    """A session's socket: the reader, and the session's Transport."""

    def __init__(self, worker: GThreadH2, sock: Any, peer: Any, server: Any) -> None:
        self.worker = worker
        self.sock = sock
        secure = isinstance(sock, ssl.SSLSocket)
        self.session = Session(
            worker.options.h2,
            worker,
            self,
            peer,
            server,
            secure,
            timeout=float(worker.cfg.timeout or 30),
            keepalive=float(worker.cfg.keepalive),
            now=time.monotonic(),
        )
        self.closed = False

    def on_event(self, mask: int) -> None:
        """The selector's callback: a bug here costs this connection only."""
        session = self.session
        try:
            if mask & READ:
                self.on_readable()
            if mask & WRITE and not session.closed:
                session.write(time.monotonic())
        except Exception:
            self.worker.log.exception("Internal error on HTTP/2 connection from %s", session.peer)
            session.close()

    def on_readable(self) -> None:
        """Read what the kernel has, up to a few TLS records.

        RECV_SIZE is larger than the largest TLS record and OpenSSL returns
        one record per read, so no decrypted byte stays behind in the SSL
        object (``pending()`` is 0, and asking would release and retake the
        GIL). A full record suggests more are queued: read on (a bounded
        number of times, to stay fair to other connections) instead of
        going back to the selector for each one.
        """
        session = self.session
        parts: list[bytes] = []
        for _ in range(READS_PER_EVENT):
            try:
                data = self.sock.recv(RECV_SIZE)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                break
            except (ssl.SSLError, OSError) as exc:
                self.worker.log.debug("HTTP/2 connection error from %s: %s", session.peer, exc)
                data = b""
            if not data:
                if parts:  # what came before the close still counts
                    session.receive(b"".join(parts), time.monotonic())
                session.close()
                return
            parts.append(data)
            if len(data) < TLS_RECORD:
                break
        if parts:  # one pass through h2 for all the records read
            session.receive(parts[0] if len(parts) == 1 else b"".join(parts), time.monotonic())

    # -- Transport ---------------------------------------------------------------

    def send(self, data: bytes | bytearray | memoryview) -> int:
        try:
            sent: int = self.sock.send(data)
        except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
            return 0
        return sent

    def want_write(self, want: bool) -> None:
        if not self.closed:
            self.worker.selector.modify(self.sock, READ | WRITE if want else READ, self.on_event)

    def shutdown_write(self) -> bool:
        try:
            self.sock.shutdown(socket.SHUT_WR)  # (an SSLSocket drops its TLS state here)
        except OSError:
            return False
        return True

    def close(self) -> None:
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass
