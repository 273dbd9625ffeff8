"""The error hierarchy of h2workers.

Protocol errors carry the RFC 9113 error code that goes on the wire, so the
code that detects a problem decides the answer (RST_STREAM or GOAWAY and its
code) in one place, and the drivers only have to send it.
"""

from __future__ import annotations

from h2.errors import ErrorCodes


class H2WorkersError(Exception):
    """Base class of every error raised by h2workers."""


class ConfigError(H2WorkersError, RuntimeError):
    """A setting has a value h2workers cannot serve with.

    A RuntimeError so that Gunicorn's ``run()`` prints it as ``Error: ...``
    and exits instead of dumping a traceback.
    """


class ProtocolViolation(H2WorkersError):
    """The peer broke the protocol; ``error_code`` is what we answer with."""

    def __init__(self, message: str, error_code: ErrorCodes = ErrorCodes.PROTOCOL_ERROR) -> None:
        super().__init__(message)
        self.error_code = error_code


class StreamViolation(ProtocolViolation):
    """Only one stream is affected: answered with RST_STREAM."""


class RequestRejected(H2WorkersError):
    """A request breaks a Gunicorn limit or policy: answered with ``status``
    (414, 431, 400) on its own stream; the connection goes on."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class InvalidResponse(H2WorkersError, ValueError):
    """The application produced a status, header or body length that cannot
    be sent: a 500 if the head is not out yet, else RST_STREAM(INTERNAL_ERROR)."""


class UnknownStream(H2WorkersError, KeyError):
    """A command named a stream the core does not serve.

    A session checks a stream's state before it commands the core, so this
    is a bug in a session or driver, never a client's doing: it is raised,
    not ignored, so that it shows (the connection is closed and logged).
    """

    def __init__(self, stream_id: int) -> None:
        super().__init__(f"stream {stream_id} is not served by this connection")
        self.stream_id = stream_id


class StreamClosed(H2WorkersError, OSError):
    """The stream an application reads or writes is gone.

    Raised in the application's thread when the client reset the stream, the
    connection dropped, or a flow-control wait ran past ``timeout``. An
    OSError, as a broken socket would be under HTTP/1.1, so apps and
    frameworks that already handle client disconnects handle this too.
    """

    def __init__(self, message: str, error_code: ErrorCodes = ErrorCodes.CANCEL) -> None:
        super().__init__(message)
        self.error_code = error_code
