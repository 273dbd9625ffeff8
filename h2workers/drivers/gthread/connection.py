"""The socket of one HTTP/2 connection in the GThreadH2 I/O loop.

``SocketConnection`` is the session's ``Transport`` (``drivers/transport.py``)
registered in the worker's selector. Everything else about the connection
(streams, flow, back-pressure, timeouts, closing) is the session's
(``session/session.py``).
"""

from __future__ import annotations

import selectors
import time
from typing import TYPE_CHECKING, Any

from h2workers.drivers.transport import SocketTransport

if TYPE_CHECKING:
    from h2workers.drivers.gthread.worker import GThreadH2

READ, WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE


class SocketConnection(SocketTransport):
    """A session's socket in the selector: its reader and its Transport."""

    def __init__(self, worker: GThreadH2, sock: Any, peer: Any, server: Any) -> None:
        super().__init__(sock, worker.log)
        self.worker = worker
        self.session = worker.new_session(self, peer, server)

    def on_event(self, mask: int) -> None:
        """The selector's callback: a bug here costs this connection only."""
        session = self.session
        try:
            if mask & READ:
                data, eof = self.read_available()
                if data:
                    session.receive(data, time.monotonic())
                if eof:
                    session.close()
            if mask & WRITE and not session.closed:
                session.write(time.monotonic())
        except Exception:
            self.worker.log.exception("Internal error on HTTP/2 connection from %s", session.peer)
            session.close()

    def want_write(self, want: bool) -> None:
        if not self.closed:
            self.worker.selector.modify(self.sock, READ | WRITE if want else READ, self.on_event)
