"""A stream as a blocking application sees it: threads and greenlets alike.

``SyncChannel`` implements the WSGI runner's ``Channel`` on a session's
``Stream``. Its application reads the request body and hands response
commands to the session through ``post``, which a driver supplies: a
mailbox to the I/O thread for pool threads, a plain call for greenlets that
share the session's hub. It waits on a ``Parker`` the driver gives it (a
thread's reusable lock, a green event): what differs between drivers is
only how a stream waits and where a command runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from h2.errors import ErrorCodes

from h2workers.errors import StreamClosed
from h2workers.proto.headers import Header
from h2workers.session.session import Session
from h2workers.session.stream import Stream, StreamState

Post = Callable[..., None]  # post(command, *args): run command(*args) on the session's thread


class Parker(Protocol):
    """How the application side waits (see drivers: threads, greenlets)."""

    def park(self, timeout: float) -> bool:
        """Wait for ``unpark`` (or a permit left before); False on timeout."""

    def unpark(self) -> None: ...


class SyncChannel:
    """One stream as its (blocking) application sees it (see wsgi.Channel)."""

    __slots__ = ("ended_by_app", "parker", "post", "session", "stream", "stream_id")

    def __init__(self, session: Session, stream: Stream, parker: Parker, post: Post) -> None:
        self.session = session
        self.stream = stream
        self.stream_id = stream.stream_id
        self.parker = parker
        self.post = post
        self.ended_by_app = False  # the app sent its last command (app side only)

    # -- request body ------------------------------------------------------------

    def read_chunk(self, want: int = 0, ahead: int = 0) -> bytes:
        """Next body chunk (see wsgi.Channel). The session returns window
        credit for the bytes the app expects to read (``ahead``) as they
        arrive, without a round trip through this side, and wakes it only
        once its read can return (``want``)."""
        stream = self.stream
        threshold = self.session.ack_threshold
        stream.needed = stream.taken + want
        if ahead > 0:
            stream.asked = max(stream.asked, stream.taken + max(want, ahead, threshold))
        while True:
            if stream.chunks:
                chunk = stream.chunks.popleft()
                stream.taken += len(chunk)
                self._report_read(threshold)
                return chunk
            if stream.body_done:
                return b""
            self._check()
            self._report_read(1)
            self._wait(lambda: bool(stream.chunks) or stream.body_done, "request body")

    def _report_read(self, threshold: int) -> None:
        """Tell the session what the app took, once it is worth a message
        (and only if the session has not credited it already)."""
        stream = self.stream
        taken = stream.taken
        if taken - stream.reported >= threshold and taken > stream.inbound.acked:
            stream.reported = taken
            self.post(self.session.read_upto, stream, taken)

    # -- response ----------------------------------------------------------------

    def send_head(self, status: int, headers: list[Header], body: bytes, end: bool) -> None:
        self._post_body(len(body), end, self.session.send_head, status, headers, body, end)

    def send_body(self, data: bytes, end: bool) -> None:
        self._post_body(len(data), end, self.session.send_body, data, end)

    def _post_body(self, size: int, end: bool, command: Any, *args: Any) -> None:
        self._check()
        self.stream.posted += size
        self.ended_by_app = end
        self.post(command, self.stream, *args)
        if not end:  # the last write need not wait: nothing follows it
            self._throttle()

    def send_informational(self, status: int, headers: list[Header]) -> None:
        self._check()
        self.post(self.session.send_informational, self.stream, status, headers)

    def send_trailers(self, headers: list[Header]) -> None:
        self._check()
        self.ended_by_app = True
        self.post(self.session.send_trailers, self.stream, headers)

    def reset(self, error_code: ErrorCodes) -> None:
        self.ended_by_app = True
        self.post(self.session.reset, self.stream, error_code)

    def finish(self) -> None:
        """The application returned: release the stream if it did not end it."""
        if not self.ended_by_app:
            self.post(self.session.app_done, self.stream)

    # -- waiting -------------------------------------------------------------------

    def _check(self) -> None:
        stream = self.stream
        if stream.state is StreamState.ABORTED:
            raise StreamClosed("the stream was reset", stream.abort_code)

    def _throttle(self) -> None:
        stream = self.stream
        limit = self.session.high_water()
        outbound = stream.outbound
        if stream.posted - outbound.framed > limit:
            # The core resets a stream stuck on its window after ``timeout``
            # (and says so in the log); this wait is only the backstop.
            self._wait(lambda: stream.posted - outbound.framed <= limit, "flow-control window", 3.0)

    def _wait(self, ready: Callable[[], bool], what: str, grace: float = 0.0) -> None:
        """Park until ``ready()`` or the stream is aborted (then raise)."""
        stream = self.stream
        session = self.session
        parker = self.parker
        stream.waiter = parker
        deadline = time.monotonic() + session.timeout + grace
        try:
            while not ready():
                self._check()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.reset(ErrorCodes.CANCEL)
                    session.host.log.info(
                        "HTTP/2 stream %d from %s waited %gs for the %s: reset",
                        self.stream_id,
                        session.peer_ip,
                        session.timeout,
                        what,
                    )
                    raise StreamClosed(f"timed out waiting for the {what}")
                parker.park(remaining)
        finally:
            stream.waiter = None
