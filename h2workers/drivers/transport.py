"""A session's transport over a non-blocking socket (TLS or not).

What every socket-based driver does the same way: read what the kernel has
(a few TLS records at a time, so that no decrypted byte stays in the SSL
object), send without blocking, half-close, close. A driver subclasses it
with how it learns that the socket is readable or writable (a selector, a
green hub).
"""

from __future__ import annotations

import socket
import ssl
from typing import Any

RECV_SIZE = 65536
TLS_RECORD = 16384  # largest TLS plaintext record
READS_PER_EVENT = 8  # a 64 KiB window of DATA comes as 5 records (frame headers)


class SocketTransport:
    """``Transport`` for ``Session``, minus ``want_write`` (the driver's)."""

    def __init__(self, sock: Any, log: Any) -> None:
        self.sock = sock
        self.log = log
        self.secure = isinstance(sock, ssl.SSLSocket)
        self.closed = False

    def read_available(self) -> tuple[bytes, bool]:
        """What the kernel has now, and whether the peer closed.

        RECV_SIZE is larger than the largest TLS record and OpenSSL returns
        one record per read, so no decrypted byte stays behind in the SSL
        object (``pending()`` is 0, and asking would release and retake the
        GIL). A full record suggests more are queued: read on (a bounded
        number of times, to stay fair to other connections).
        """
        parts: list[bytes] = []
        for _ in range(READS_PER_EVENT):
            try:
                data = self.sock.recv(RECV_SIZE)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                break
            except OSError as exc:  # ssl.SSLError included
                self.log.debug("HTTP/2 connection error: %s", exc)
                data = b""
            if not data:
                return b"".join(parts), True
            parts.append(data)
            if len(data) < TLS_RECORD:
                break
        return (parts[0] if len(parts) == 1 else b"".join(parts)), False

    def send(self, data: bytes | bytearray | memoryview) -> int:
        try:
            sent: int = self.sock.send(data)
        except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
            return 0
        return sent

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
