"""TLS for AsgiH2 over memory buffers (``ssl.MemoryBIO``), on any event loop.

asyncio's own TLS (``create_server(ssl=...)`` or ``start_tls``) was the
reason AsgiH2 could not run on uvloop over TLS: uvloop may hand a new
connection's first bytes to the protocol before ``pause_reading`` in
``connection_made`` takes effect, and ``start_tls`` then never sees the
ClientHello. Here the TCP transport stays the loop's, and every byte read
goes through ``TLSLayer``: no race, the same code on both loops, our own
deadline and log line for a handshake that fails, and a half-close (FIN
after the GOAWAY) that asyncio's TLS transport cannot do.

``TLSLayer`` is the TLS state of one connection, without I/O: ciphertext in,
plaintext and ciphertext out. ``TLSTransport`` is the asyncio transport the
protocol handlers (``H2Protocol``, ``H11Protocol``) write plaintext to.
"""

from __future__ import annotations

import ssl
from typing import Any

READ_SIZE = 65536  # plaintext taken from the TLS layer per read() call


class TLSLayer:
    """One server-side TLS connection over memory buffers."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self.ssl_object = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self.handshaken = False
        self.closed_by_peer = False  # its close_notify arrived

    def receive(self, data: bytes) -> bytes:
        """Feed ciphertext; returns the plaintext it completes (b"" while
        the handshake runs). Raises ``ssl.SSLError`` for a broken peer;
        ``pending()`` then holds what to send (an alert, handshake records)."""
        self._incoming.write(data)
        if not self.handshaken:
            try:
                self.ssl_object.do_handshake()
            except ssl.SSLWantReadError:
                return b""
            self.handshaken = True
        return self._read_all()

    def _read_all(self) -> bytes:
        chunks = []
        read = self.ssl_object.read
        while True:
            try:
                chunk = read(READ_SIZE)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                self.closed_by_peer = True
                break
            if not chunk:
                self.closed_by_peer = True
                break
            chunks.append(chunk)
        return b"".join(chunks)

    def encrypt(self, data: bytes | bytearray | memoryview) -> bytes:
        """The records carrying ``data`` (and anything else due)."""
        self.ssl_object.write(data)
        return self._outgoing.read()

    def pending(self) -> bytes:
        """Records due without new plaintext (handshake, tickets, alerts)."""
        return self._outgoing.read()

    def close_notify(self) -> bytes:
        """Our close_notify alert, if TLS is up."""
        if not self.handshaken:
            return b""
        try:
            self.ssl_object.unwrap()
        except (ssl.SSLError, ValueError):  # want-read (the peer's reply), or gone
            pass
        return self._outgoing.read()


class TLSTransport:
    """What a protocol handler writes plaintext to: the connection's TCP
    transport under a ``TLSLayer`` (the loop's transport API, the parts the
    handlers use)."""

    def __init__(self, raw: Any, layer: TLSLayer) -> None:
        self.raw = raw
        self.layer = layer
        self._half_closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._half_closed or self.raw.is_closing():
            return
        self.raw.write(self.layer.encrypt(data))

    def writelines(self, pieces: Any) -> None:
        for piece in pieces:
            self.write(piece)

    def can_write_eof(self) -> bool:
        return bool(self.raw.can_write_eof())

    def write_eof(self) -> None:
        """TCP FIN after what was written (no close_notify: the client may
        still send, and its bytes are still read and dropped)."""
        if not self._half_closed and not self.raw.is_closing():
            self._half_closed = True
            self.raw.write_eof()

    def close(self) -> None:
        """close_notify (unless half-closed already), then close once written."""
        raw = self.raw
        if raw.is_closing():
            return
        if not self._half_closed:
            alert = self.layer.close_notify()
            if alert:
                raw.write(alert)
        raw.close()

    def abort(self) -> None:
        self.raw.abort()

    def is_closing(self) -> bool:
        return bool(self.raw.is_closing())

    def pause_reading(self) -> None:
        self.raw.pause_reading()

    def resume_reading(self) -> None:
        self.raw.resume_reading()

    def get_write_buffer_size(self) -> int:
        return int(self.raw.get_write_buffer_size())

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "ssl_object":
            return self.layer.ssl_object
        if name == "sslcontext":
            return self.layer.ssl_object.context
        if name == "peercert":
            return self.layer.ssl_object.getpeercert()
        if name == "cipher":
            return self.layer.ssl_object.cipher()
        return self.raw.get_extra_info(name, default)
