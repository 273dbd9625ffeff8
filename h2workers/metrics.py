"""HTTP/2 figures for Gunicorn's statsd logger.

Gunicorn with ``statsd_host`` set logs through a ``Statsd`` logger that sends
``gunicorn.requests``, ``gunicorn.request.duration`` and
``gunicorn.request.status.<code>`` for every request; h2workers' requests
(HTTP/2 streams included) go through the same access log, so those keep
working. This adds what HTTP/2 has and HTTP/1.1 has not, under
``statsd_prefix`` like Gunicorn's own names:

- gauges, sent once a second by each worker: ``h2workers.connections``
  (every open connection), ``h2workers.connections.h2`` (HTTP/2 ones),
  ``h2workers.connections.http1`` (the rest: HTTP/1.1, and those still in
  their TLS handshake or preface) and ``h2workers.streams`` (streams an app
  serves);
- counters: ``h2workers.streams.refused`` (over
  ``http2_max_concurrent_streams``, or after GOAWAY),
  ``h2workers.streams.rejected.<code>`` (malformed requests),
  ``h2workers.streams.reset.<code>`` (reset by us) and
  ``h2workers.streams.reset_by_client.<code>``,
  ``h2workers.goaway.<code>`` (GOAWAY frames sent), and
  ``h2workers.flood_limit`` (a connection closed with ENHANCE_YOUR_CALM).

Without a statsd logger every call is a no-op: no socket, no formatting.
"""

from __future__ import annotations

from typing import Any

from h2.errors import ErrorCodes


class Metrics:
    """One worker's HTTP/2 figures (all calls from the worker's loop or I/O thread)."""

    def __init__(self, log: Any) -> None:
        increment = getattr(log, "increment", None)
        self._log = log if callable(increment) and callable(getattr(log, "gauge", None)) else None
        self.h2_connections = 0
        self.streams = 0

    @property
    def enabled(self) -> bool:
        return self._log is not None

    def count(self, name: str, value: int = 1) -> None:
        if self._log is not None:
            self._log.increment(f"h2workers.{name}", value)

    def count_code(self, name: str, code: ErrorCodes | int) -> None:
        """``name.<code>``, the code in lowercase (``cancel``, ``refused_stream``)."""
        if self._log is not None:
            label = code.name.lower() if isinstance(code, ErrorCodes) else str(code)
            self._log.increment(f"h2workers.{name}.{label}", 1)

    def report(self, connections: int) -> None:
        """The gauges; each worker sends its own once a tick (``connections``:
        every connection it holds open, whatever its protocol)."""
        if self._log is not None:
            self._log.gauge("h2workers.connections", connections)
            self._log.gauge("h2workers.connections.h2", self.h2_connections)
            self._log.gauge("h2workers.connections.http1", connections - self.h2_connections)
            self._log.gauge("h2workers.streams", self.streams)


NO_METRICS = Metrics(None)
