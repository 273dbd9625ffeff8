"""One HTTP/2 connection on green threads: a reader, and a writer at times.

``GreenConnection`` is the session's ``Transport`` (``drivers/transport.py``)
over a non-blocking green socket, on the worker's ``Hub`` (gevent or
eventlet). Its reader greenlet waits for the socket
to be readable and feeds ``Session.receive``. A dirty session is flushed by
one callback at the end of the hub's loop iteration, however many commands
made it dirty (the thread driver's end-of-turn flush); only while the
kernel's buffer is full does a writer greenlet exist, to wait for
writability (an idle connection costs one greenlet, its reader). A
session is only ever called from one hub, and none of its methods yields,
so each call runs whole.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from greenlet import GreenletExit, getcurrent

from h2workers.drivers.transport import SocketTransport
from h2workers.session.session import Session

if TYPE_CHECKING:
    from h2workers.drivers.green.worker import GreenH2

WRITE_WAIT = 1.0  # how long the writer waits for writability before it looks again


class GreenConnection(SocketTransport):
    """A session's socket: its reader, its writer, and its Transport."""

    def __init__(self, worker: GreenH2, sock: Any, peer: Any, server: Any) -> None:
        super().__init__(sock, worker.log)
        sock.setblocking(False)
        self.worker = worker
        self.hub = worker.hub
        self.flush_due = False  # a flush callback is scheduled
        self.writer: Any = None  # a greenlet while the kernel's buffer is full
        self.session = worker.new_session(self, peer, server)
        self.reader: Any = None  # the greenlet serving the connection

    def serve(self, begin: Callable[[Session], None]) -> None:
        """Run the connection in this greenlet until it closes."""
        session = self.session
        self.reader = getcurrent()
        self._guard(lambda: begin(session))
        self._guard(self._read_loop)
        session.close()

    def _guard(self, loop: Callable[[], None]) -> None:
        """A bug here costs this connection, never the worker."""
        try:
            loop()
        except GreenletExit:
            pass
        except Exception:
            self.log.exception("Internal error on HTTP/2 connection from %s", self.session.peer)
            self.session.close()

    def _read_loop(self) -> None:
        session, fd, wait_read = self.session, self.sock.fileno(), self.hub.wait_read
        while not session.closed:
            data, eof = self.read_available()
            if data:
                session.receive(data, time.monotonic())
            if eof:
                return
            if not data:
                wait_read(fd)

    def schedule_flush(self) -> None:
        if not self.flush_due:
            self.flush_due = True
            self.hub.call_soon(self._flush)

    def _flush(self) -> None:
        self.flush_due = False
        if not self.session.closed:
            self._guard(lambda: self.session.flush(time.monotonic()))

    def _write_loop(self) -> None:
        session, fd = self.session, self.sock.fileno()
        try:
            while session.wants_write and not session.closed:
                if self.hub.wait_write(fd, WRITE_WAIT):
                    session.write(time.monotonic())
                # else: look again (the session's tick closes a peer that reads nothing)
        finally:
            self.writer = None

    # -- Transport ---------------------------------------------------------------

    def want_write(self, want: bool) -> None:
        if want and self.writer is None and not self.closed:
            self.writer = self.hub.spawn(self._guard, self._write_loop)

    def close(self) -> None:
        super().close()
        current = getcurrent()
        for greenlet in (self.reader, self.writer):
            if greenlet is not None and greenlet is not current:
                self.hub.kill(greenlet)
