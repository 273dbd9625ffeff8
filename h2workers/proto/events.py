"""What the sans-I/O core tells its driver. Plain data, no behaviour.

The events name no HTTP/2 frame and carry a protocol-neutral ``RequestHead``:
an HTTP/1.1 connection (h11, for the ASGI worker) can produce the same ones
with its request as stream 1, so that one app layer serves both.
"""

from __future__ import annotations

from dataclasses import dataclass

from h2.errors import ErrorCodes

from h2workers.proto.headers import Header, RequestHead
from h2workers.proto.priority import StreamPriority


@dataclass(slots=True)
class RequestStarted:
    """A valid request head arrived: hand the stream to the application."""

    stream_id: int
    head: RequestHead
    end_stream: bool


@dataclass(slots=True)
class RequestData:
    """Request body bytes for a stream; ``end_stream`` marks the last."""

    stream_id: int
    data: bytes
    end_stream: bool


@dataclass(slots=True)
class RequestTrailers:
    """Trailer fields ending a request body."""

    stream_id: int
    trailers: list[Header]


@dataclass(slots=True)
class StreamAborted:
    """A stream the application may be serving is gone.

    ``by_peer`` tells a client RST_STREAM from our own reset (a malformed
    message, a flow-control wait past its timeout, the connection closing).
    """

    stream_id: int
    error_code: ErrorCodes
    by_peer: bool
    reason: str = ""


@dataclass(slots=True)
class StreamRejected:
    """A stream was refused or reset before the application saw it."""

    stream_id: int
    error_code: ErrorCodes
    reason: str


@dataclass(slots=True)
class PriorityChanged:
    """A PRIORITY or PRIORITY_UPDATE frame changed a served stream's
    priority: ``priority`` is the whole new value the application sees."""

    stream_id: int
    priority: StreamPriority


@dataclass(slots=True)
class ConnectionEnded:
    """No more streams will run: the peer sent GOAWAY or broke the protocol.

    ``error_code`` is the code of the GOAWAY (received or sent). Streams up to
    ``last_stream_id`` may still finish if ``graceful``.
    """

    error_code: ErrorCodes
    by_peer: bool
    graceful: bool
    reason: str = ""


Event = (
    RequestStarted
    | RequestData
    | RequestTrailers
    | StreamAborted
    | StreamRejected
    | PriorityChanged
    | ConnectionEnded
)
