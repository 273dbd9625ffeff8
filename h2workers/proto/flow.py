"""A stream's request-body counts (part of the sans-I/O core).

``received`` counts the body bytes the core handed to its driver and
``acked`` those whose flow-control credit went back to the client (or is
owed, batched into the next WINDOW_UPDATE). Only the core writes them; a
session or an application side reads them from any thread and tells the
core how far the app has read (``H2Core.credit_upto``), never keeping a
copy of its own.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Inbound:
    """Request-body accounting of one stream."""

    received: int = 0  # body bytes handed out (checked against content-length)
    acked: int = 0  # of those, bytes whose window credit was given back
    flow_controlled: bool = True  # False for the body of an h2c upgrade request

    @property
    def unacknowledged(self) -> int:
        """Bytes handed out whose credit the client has not had back."""
        return self.received - self.acked if self.flow_controlled else 0
