"""One HTTP/2 connection on gevent: a reader and a writer greenlet.

``GreenConnection`` is the session's ``Transport`` (``drivers/transport.py``)
over a non-blocking gevent socket. Its reader greenlet waits for the socket
to be readable and feeds ``Session.receive``; its writer greenlet waits for
the session to be dirty (or the socket writable, while the kernel's buffer
is full) and runs ``Session.flush`` / ``Session.write``. Everything else is
the session's. A session is only ever called from greenlets of one hub, and
none of its methods yields, so each call runs whole.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import gevent
import gevent.event
from gevent.socket import wait_read, wait_write

from h2workers.drivers.transport import SocketTransport
from h2workers.session.session import Session

if TYPE_CHECKING:
    from h2workers.drivers.gevent.worker import GeventH2

WRITE_WAIT = 1.0  # how long the writer waits for writability before it looks again


class GreenConnection(SocketTransport):
    """A session's socket: its reader, its writer, and its Transport."""

    def __init__(self, worker: GeventH2, sock: Any, peer: Any, server: Any) -> None:
        super().__init__(sock, worker.log)
        sock.setblocking(False)
        self.worker = worker
        self.dirty = gevent.event.Event()
        self.session = worker.new_session(self, peer, server)
        self.greenlets: list[gevent.Greenlet] = []

    def serve(self, begin: Callable[[Session], None]) -> None:
        """Run the connection in this greenlet until it closes."""
        session = self.session
        self.greenlets = [gevent.getcurrent(), gevent.spawn(self._guard, self._write_loop)]
        self._guard(lambda: begin(session))
        self._guard(self._read_loop)
        session.close()

    def _guard(self, loop: Callable[[], None]) -> None:
        """A bug here costs this connection, never the worker."""
        try:
            loop()
        except gevent.GreenletExit:
            pass
        except Exception:
            self.log.exception("Internal error on HTTP/2 connection from %s", self.session.peer)
            self.session.close()

    def _read_loop(self) -> None:
        session, fd = self.session, self.sock.fileno()
        while not session.closed:
            data, eof = self.read_available()
            if data:
                session.receive(data, time.monotonic())
            if eof:
                return
            if not data:
                wait_read(fd)

    def _write_loop(self) -> None:
        session, fd = self.session, self.sock.fileno()
        while not session.closed:
            if session.wants_write:
                try:
                    wait_write(fd, timeout=WRITE_WAIT)
                except gevent.socket.timeout:
                    continue  # the session's tick closes a peer that reads nothing
                session.write(time.monotonic())
                continue
            self.dirty.wait()
            self.dirty.clear()
            session.flush(time.monotonic())

    # -- Transport ---------------------------------------------------------------

    def want_write(self, want: bool) -> None:
        if want:
            self.dirty.set()  # the writer goes to wait for writability

    def close(self) -> None:
        super().close()
        self.dirty.set()
        current = gevent.getcurrent()
        for greenlet in self.greenlets:
            if greenlet is not current:
                greenlet.kill(block=False)
