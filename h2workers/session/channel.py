"""A stream as the application's pool thread sees it (GThreadH2).

The app thread reads the request body and hands response commands to the
stream's ``H2Session`` (which lives on the I/O thread) through the worker's
mailbox. Each counter has one writer (``posted`` the app thread, the core's
``Outbound.framed`` the I/O thread, and so on), so no lock is taken; a thread
waiting for body bytes or buffer room parks on its own reusable Parker.
"""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING, Any

from h2.errors import ErrorCodes

from h2workers.drivers.gthread.threads import Parker
from h2workers.errors import StreamClosed
from h2workers.proto.headers import Header
from h2workers.proto.outbound import Outbound

if TYPE_CHECKING:
    from h2workers.session.session import H2Session


class ThreadChannel:
    """A stream as its pool thread sees it (see wsgi.Channel)."""

    __slots__ = (
        "aborted",
        "acked",
        "asked",
        "chunks",
        "credited",
        "delivered",
        "ended",
        "environ",
        "finished",
        "needed",
        "outbound",
        "parker",
        "posted",
        "session",
        "stream_id",
        "taken",
        "waiter",
    )

    def __init__(
        self, session: H2Session, stream_id: int, ended: bool, outbound: Outbound
    ) -> None:
        self.session = session
        self.stream_id = stream_id
        self.chunks: deque[bytes] = deque()
        self.ended = ended
        self.aborted: ErrorCodes | None = None
        self.waiter: Parker | None = None
        self.parker: Parker | None = None
        self.environ: dict[str, Any] | None = None  # once the app has it
        self.finished = False  # the app ended or reset the stream (app thread writes)
        self.posted = 0  # response bytes handed over (app thread writes)
        # The core's queue of this stream: ``outbound.framed`` counts what of
        # ``posted`` left for the wire (only the I/O thread writes it).
        self.outbound = outbound
        # Request body accounting, as running totals. App thread: ``taken``
        # (handed to the app), ``needed`` (what its pending read() must have
        # to return), ``asked`` (what it expects to read soon: the window
        # may reopen that far on arrival), ``credited`` (``taken`` last
        # reported). I/O thread: ``delivered`` (fed from the connection),
        # ``acked`` (window credit returned).
        self.taken = self.needed = self.asked = self.credited = 0
        self.delivered = self.acked = 0

    # -- I/O thread side -----------------------------------------------------

    def feed(self, data: bytes, end: bool) -> None:
        """Queue body bytes (the session wakes the reader when worth it)."""
        if data:
            self.chunks.append(data)
            self.delivered += len(data)
        if end:
            self.ended = True

    def abort(self, code: ErrorCodes) -> None:
        self.aborted = code
        self.wake()

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            waiter.unpark()

    # -- application thread side ---------------------------------------------

    def read_chunk(self, want: int = 0, ahead: int = 0) -> bytes:
        """Next body chunk (see wsgi.Channel). The I/O thread returns window
        credit for the bytes the app expects to read (``ahead``) as they
        arrive, without a round trip through this thread, and wakes it only
        once its read can return (``want``)."""
        self.needed = self.taken + want
        if ahead > 0:
            self.asked = max(self.asked, self.taken + max(want, ahead, self.session.ack_threshold))
        while True:
            if self.chunks:
                chunk = self.chunks.popleft()
                self.taken += len(chunk)
                self._credit(self.session.ack_threshold)
                return chunk
            if self.ended:
                return b""
            if self.aborted is not None:
                raise StreamClosed("the stream was reset", self.aborted)
            self._credit(1)
            self._wait(lambda: bool(self.chunks) or self.ended, "request body")

    def _credit(self, threshold: int) -> None:
        """Report what the app took, once it is worth a message (and only if
        the I/O thread has not credited it already, see ``read_chunk``)."""
        if self.taken - self.credited >= threshold and self.taken > self.acked:
            self.credited = self.taken
            self.session.post(self.session.cmd_consumed, self, self.taken)

    def send_head(self, status: int, headers: list[Header], body: bytes, end: bool) -> None:
        self._post_body(len(body), end, self.session.cmd_head, self, status, headers, body, end)

    def send_body(self, data: bytes, end: bool) -> None:
        self._post_body(len(data), end, self.session.cmd_body, self, data, end)

    def _post_body(self, size: int, end: bool, command: Any, *args: Any) -> None:
        self._check()
        self.posted += size
        self.finished = end
        self.session.post(command, *args)
        if not end:  # the last write need not wait: nothing follows it
            self._throttle()

    def send_informational(self, status: int, headers: list[Header]) -> None:
        self._check()
        self.session.post(self.session.cmd_informational, self.stream_id, status, headers)

    def send_trailers(self, headers: list[Header]) -> None:
        self._check()
        self.finished = True
        self.session.post(self.session.cmd_trailers, self, headers)

    def reset(self, error_code: ErrorCodes) -> None:
        self.finished = True
        self.session.post(self.session.cmd_reset, self.stream_id, error_code)

    def _check(self) -> None:
        if self.aborted is not None:
            raise StreamClosed("the stream was reset", self.aborted)

    def _throttle(self) -> None:
        limit = self.session.high_water()
        outbound = self.outbound
        if self.posted - outbound.framed > limit:
            # The core resets a stream stuck on its window after ``timeout``
            # (and says so in the log); this wait is only the backstop.
            self._wait(lambda: self.posted - outbound.framed <= limit, "flow-control window", 3.0)

    def _wait(self, ready: Any, what: str, grace: float = 0.0) -> None:
        """Park until ``ready()`` or the stream is aborted (then raise)."""
        parker = self.parker
        assert parker is not None, "a channel is used from the thread serving it"
        self.waiter = parker
        deadline = time.monotonic() + self.session.wait_timeout + grace
        try:
            while not ready():
                if self.aborted is not None:
                    raise StreamClosed("the stream was reset", self.aborted)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.reset(ErrorCodes.CANCEL)
                    session = self.session
                    session.worker.log.info(
                        "HTTP/2 stream %d from %s waited %gs for the %s: reset",
                        self.stream_id,
                        session.peer_ip,
                        session.wait_timeout,
                        what,
                    )
                    raise StreamClosed(f"timed out waiting for the {what}")
                parker.park(remaining)
        finally:
            self.waiter = None
