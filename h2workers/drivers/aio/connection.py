"""One connection on asyncio: protocol detection, then HTTP/2 or HTTP/1.1.

``LoopConnection`` is the ``asyncio.Protocol`` of every accepted connection.
It learns the protocol (ALPN over TLS; the preface in cleartext) and hands
the connection to ``H2Protocol`` (the shared ``Session`` over an asyncio
transport) or to ``H11Protocol`` (``http1.py``). The event loop owns the
socket; nothing here blocks. A session is only ever called from the loop's
thread, and none of its methods awaits, so each call runs whole.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import TYPE_CHECKING, Any

from h2workers.drivers.aio.tls import TLSLayer, TLSTransport
from h2workers.proto.detect import PREFACE, Protocol, bad_preface_goaway, sniff
from h2workers.session.session import Session

if TYPE_CHECKING:
    from h2workers.drivers.aio.worker import AsgiH2


class LoopConnection(asyncio.Protocol):
    """An accepted connection until its protocol is known, then its relay."""

    def __init__(self, worker: AsgiH2) -> None:
        self.worker = worker
        self.transport: Any = None  # the handler's: the TCP transport, or TLS over it
        self.handler: Any = None  # H2Protocol or H11Protocol once known
        self.raw: Any = None  # the TCP transport
        self.tls: TLSLayer | None = None
        self.head = b""  # cleartext bytes read while sniffing
        self.peer: Any = None
        self.server: Any = None
        self.deadline = 0.0  # for the TLS handshake or the preface (the tick closes it after)
        self.handshaking = False

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.raw = transport
        self.peer = transport.get_extra_info("peername")
        self.server = transport.get_extra_info("sockname")
        worker = self.worker
        worker.adopt(self)
        if worker.ssl_context is not None:
            # TLS over memory buffers (tls.py): a handshake that never
            # completes is ours to log (with its peer) and close.
            self.tls = TLSLayer(worker.ssl_context)
            self.handshaking = True
            self.deadline = time.monotonic() + worker.handshake_timeout
        elif not worker.options.prior_knowledge:
            self._become(False, b"")
        else:
            self.deadline = time.monotonic() + worker.handshake_timeout

    def data_received(self, data: bytes) -> None:
        tls = self.tls
        if tls is not None:
            data = self._decrypt(tls, data)
            if not data:
                return
        handler = self.handler
        if handler is not None:
            handler.data_received(data)
            return
        self.head += data
        verdict = sniff(self.head[: len(PREFACE)])
        if verdict is Protocol.MORE:
            return
        head, self.head = self.head, b""
        if verdict is Protocol.H2:
            self._become(True, head)
        elif "h1" in self.worker.options.protocols:
            self._become(False, head)
        else:  # h2 only: RFC 9113 3.4
            self.worker.peer_log.info("Invalid HTTP/2 preface from %s", self.peer)
            self.transport.write(bad_preface_goaway())
            self.transport.close()

    def _decrypt(self, tls: TLSLayer, data: bytes) -> bytes:
        """Ciphertext in; what TLS sends back goes out, plaintext comes
        back (b"" while the handshake runs; once it is done ALPN picks the
        handler, and the plaintext that came with it is its first input)."""
        raw = self.raw
        try:
            plain = tls.receive(data)
        except ssl.SSLError as exc:
            self.worker.log.debug("TLS handshake with %s failed: %s", self.peer, exc)
            alert = tls.pending()
            if alert and not raw.is_closing():
                raw.write(alert)
            raw.close()
            return b""
        records = tls.pending()
        if records and not raw.is_closing():
            raw.write(records)
        if self.handshaking and tls.handshaken:
            self.handshaking = False
            self.transport = TLSTransport(raw, tls)
            self._become(tls.ssl_object.selected_alpn_protocol() == "h2", plain)
            plain = b""
        if tls.closed_by_peer:  # close_notify: the end of what the client sends
            self.eof_received()
            raw.close()
        return plain

    def _become(self, h2: bool, initial: bytes) -> None:
        self.deadline = 0.0
        if h2:
            self.handler = H2Protocol(self.worker, self.transport, self.peer, self.server)
            self.handler.session.start(initial, time.monotonic())
        elif self.worker.fast_http1 and not (self.worker.options.upgrade and self.tls is None):
            from h2workers.drivers.aio.h1fast import FastProtocol

            self.handler = FastProtocol(self.worker, self, initial)
        else:  # h11, which also takes Upgrade: h2c
            from h2workers.drivers.aio.http1 import H11Protocol

            self.handler = H11Protocol(self.worker, self, initial)

    def upgrade(self, session_start: Any) -> None:
        """HTTP/1.1 switched to h2c (``Upgrade``): the session takes over."""
        self.handler = H2Protocol(self.worker, self.transport, self.peer, self.server)
        session_start(self.handler.session)

    def eof_received(self) -> bool | None:
        """The client sent FIN. An HTTP/1.1 client may do that right after
        its request and still read the response (the handler closes when it
        is sent: True keeps the transport open); HTTP/2 ends with the session."""
        handler = self.handler
        if handler is not None:
            return bool(handler.eof_received())
        return None

    def connection_lost(self, exc: BaseException | None) -> None:
        handler = self.handler
        if handler is not None:
            handler.connection_lost()
        self.worker.release(self)

    def pause_writing(self) -> None:
        if self.handler is not None:
            self.handler.pause_writing()

    def resume_writing(self) -> None:
        if self.handler is not None:
            self.handler.resume_writing()

    # -- the worker's tick and stop ---------------------------------------------------

    def tick(self, now: float) -> str | None:
        """What is unfinished past its deadline (the worker logs, then closes)."""
        handler = self.handler
        if handler is not None:
            return handler.tick(now)  # type: ignore[no-any-return]
        if 0 < self.deadline <= now:
            return "TLS handshake(s)" if self.handshaking else "connection preface(s)"
        return None

    def stop(self, now: float) -> None:
        if self.handler is not None:
            self.handler.stop(now)
        else:
            self.abort()

    def abort(self) -> None:
        self.transport.abort()


class H2Protocol:
    """An HTTP/2 connection: the shared ``Session`` over an asyncio transport
    (the session's ``Transport``)."""

    def __init__(self, worker: AsgiH2, transport: Any, peer: Any, server: Any) -> None:
        self.transport = transport
        self.worker = worker
        self.tls = transport.get_extra_info("ssl_object")  # for the ASGI tls extension
        self.secure = self.tls is not None
        self.paused = False  # the transport's buffer is above its high-water mark
        self.flush_due = False
        self.closed = False
        self.session: Session = worker.new_session(self, peer, server)

    def data_received(self, data: bytes) -> None:
        self.session.receive(data, time.monotonic())

    def eof_received(self) -> bool:
        self.session.close()
        return False

    def connection_lost(self) -> None:
        self.closed = True
        self.session.close()

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        session = self.session
        if session.wants_write and not session.closed:
            session.write(time.monotonic())

    def schedule_flush(self) -> None:
        if not self.flush_due:
            self.flush_due = True
            self.worker.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self.flush_due = False
        session = self.session
        if not session.closed:
            try:
                session.flush(time.monotonic())
            except Exception:
                log = self.worker.log
                log.exception("Internal error on HTTP/2 connection from %s", session.peer)
                session.close()

    def tick(self, now: float) -> str | None:
        self.session.tick(now)
        return None

    def stop(self, now: float) -> None:
        self.session.stop(now)

    # -- Transport ---------------------------------------------------------------

    def send(self, data: bytes | bytearray | memoryview) -> int:
        """All of it, unless the transport's buffer is full: asyncio keeps
        what the kernel did not take (a copy: ``Session.out`` is reused)."""
        if self.paused or self.closed:
            return 0
        self.transport.write(data if isinstance(data, bytes) else bytes(data))
        return len(data)

    def want_write(self, want: bool) -> None:
        pass  # resume_writing is the signal

    def shutdown_write(self) -> bool:
        """Half-close after the GOAWAY (see Session.linger): the FIN follows
        what was written (over TLS, its records)."""
        transport = self.transport
        if transport.is_closing() or not transport.can_write_eof():
            return False
        transport.write_eof()
        return True

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.transport.close()  # after what is buffered
