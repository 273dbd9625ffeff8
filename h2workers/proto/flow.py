"""Request-body counts and the policy that gives window back (part of the
sans-I/O core).

``received`` counts the body bytes the core handed to its driver and
``acked`` those whose flow-control credit went back to the client (or is
owed, batched into the next WINDOW_UPDATE). Only the core writes them; a
session or an application side reads them from any thread and tells the
core how far the app has read (``H2Core.credit_upto``), never keeping a
copy of its own.

``Credit`` decides when that credit goes out as WINDOW_UPDATE frames.
"""

from __future__ import annotations

from dataclasses import dataclass

from h2.connection import H2Connection
from h2.exceptions import ProtocolError

from h2workers.config import MAX_WINDOW, H2Settings


@dataclass(slots=True)
class Inbound:
    """Request-body accounting of one stream."""

    received: int = 0  # body bytes handed out (checked against content-length)
    acked: int = 0  # of those, bytes whose window credit was given back
    flow_controlled: bool = True  # False for the body of an h2c upgrade request
    owed: int = 0  # credited bytes whose stream WINDOW_UPDATE is not sent yet

    @property
    def unacknowledged(self) -> int:
        """Bytes handed out whose credit the client has not had back."""
        return self.received - self.acked if self.flow_controlled else 0


class Credit:
    """When receive window goes back to the client.

    A WINDOW_UPDATE goes out once a quarter of a stream window (half of one
    for the connection) is owed, so a client streaming a body never waits
    for a half-window round trip (h2's own policy), and the amount held
    back stays below one window.
    """

    def __init__(self, h2: H2Connection, settings: H2Settings) -> None:
        self._h2 = h2
        self._settings = settings
        self._stream_step = max(1, settings.initial_window_size // 4)
        self._conn_step = max(1, settings.initial_window_size // 2)
        self._conn_owed = 0  # credited bytes whose connection WINDOW_UPDATE is not sent yet

    def open_connection_window(self) -> None:
        """Raise the connection window so that it never binds before the
        per-stream windows do: a stream whose app reads slowly must not
        stall its siblings. Memory stays bounded by streams x stream window.

        One stream window more than all streams can hold: the credit held
        back until a WINDOW_UPDATE is worth sending (< one window) never
        starves a stream that has window of its own."""
        s = self._settings
        wanted = min(MAX_WINDOW, (s.max_concurrent_streams + 1) * s.initial_window_size)
        increment = wanted - self._h2.inbound_flow_control_window
        if increment > 0:
            self._h2.increment_flow_control_window(increment)

    def give(self, sid: int, inbound: Inbound | None, nbytes: int) -> None:
        """``nbytes`` of ``sid`` were read (or will never be): credit the
        connection, and the stream while ``inbound`` (its counts, None once
        its request is complete) may still receive."""
        if nbytes <= 0:
            return
        self._conn_owed += nbytes
        if self._conn_owed >= self._conn_step:
            self._h2.increment_flow_control_window(self._conn_owed)
            self._conn_owed = 0
        if inbound is not None:
            inbound.owed += nbytes
            if inbound.owed >= self._stream_step:
                self._reopen(sid, inbound.owed)
                inbound.owed = 0

    def _reopen(self, sid: int, nbytes: int) -> None:
        """Stream WINDOW_UPDATE, unless h2 closed the stream meanwhile:
        events are translated after h2 read a whole batch, so a later frame
        of the same read (END_STREAM, RST_STREAM) may have closed it."""
        try:
            self._h2.increment_flow_control_window(nbytes, sid)
        except ProtocolError:  # StreamClosedError
            pass
