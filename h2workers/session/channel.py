"""A stream as its application sees it: blocking (threads, greenlets) or
awaiting (asyncio tasks), over one piece of bookkeeping.

``StreamChannel`` holds everything that does not wait: taking request-body
chunks and reporting them to the session (which reopens the window),
handing response commands over, and deciding whether the app must wait (for
body bytes, or for room below the high-water mark). ``SyncChannel`` waits on
a ``Parker`` its driver gives it (a thread's lock, a green semaphore) and
hands commands over through ``post`` (a mailbox to the I/O thread, or a
plain call where the app shares the session's hub); ``AsyncChannel`` awaits
a future and calls the session directly (the task runs on the session's
loop). What differs between drivers is only how a stream waits and where a
command runs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Protocol

from h2.errors import ErrorCodes

from h2workers.errors import StreamClosed
from h2workers.proto.headers import Header
from h2workers.session.session import PUSHES_PER_CONNECTION, PUSHES_PER_STREAM, Session
from h2workers.session.stream import Stream, StreamState

Post = Callable[..., None]  # post(command, *args): run command(*args) on the session's thread


class Parker(Protocol):
    """How a blocking application side waits (see drivers: threads, greenlets)."""

    def park(self, timeout: float) -> bool:
        """Wait for ``unpark`` (or a permit left before); False on timeout."""

    def unpark(self) -> None: ...


def _direct(command: Any, *args: Any) -> None:
    command(*args)


class StreamChannel:
    """What a stream's application side does without waiting."""

    __slots__ = ("ended_by_app", "post", "session", "stream", "stream_id")

    def __init__(self, session: Session, stream: Stream, post: Post = _direct) -> None:
        self.session = session
        self.stream = stream
        self.stream_id = stream.stream_id
        self.post = post
        self.ended_by_app = False  # the app sent its last command (app side only)

    # -- request body ------------------------------------------------------------

    def _next_chunk(self, want: int, ahead: int) -> bytes | None:
        """The next body chunk, b"" at the end, or None: wait for bytes.

        The session returns window credit for the bytes the app expects to
        read (``ahead``) as they arrive, without a round trip through this
        side, and wakes it only once its read can return (``want``)."""
        stream = self.stream
        threshold = self.session.ack_threshold
        stream.needed = stream.taken + want
        if ahead > 0:
            stream.asked = max(stream.asked, stream.taken + max(want, ahead, threshold))
        if stream.chunks:
            chunk = stream.chunks.popleft()
            stream.taken += len(chunk)
            self._report_read(threshold)
            return chunk
        if stream.body_done:
            return b""
        self._check()
        self._report_read(1)
        return None

    def _body_ready(self) -> bool:
        stream = self.stream
        return bool(stream.chunks) or stream.body_done

    def body_ended(self) -> bool:
        stream = self.stream
        return stream.body_done and not stream.chunks

    def _report_read(self, threshold: int) -> None:
        """Tell the session what the app took, once it is worth a message
        (and only if the session has not credited it already)."""
        stream = self.stream
        taken = stream.taken
        if taken - stream.reported >= threshold and taken > stream.inbound.acked:
            stream.reported = taken
            self.post(self.session.read_upto, stream, taken)

    # -- response ----------------------------------------------------------------

    def _queue_body(self, size: int, end: bool, command: Any, *args: Any) -> bool:
        """Hand a head or body over; True if the app must now wait for room."""
        self._check()
        stream = self.stream
        stream.posted += size
        self.ended_by_app = end
        self.post(command, stream, *args)
        return not end and self._over_high_water()  # the last write need not wait

    def _over_high_water(self) -> bool:
        stream = self.stream
        return stream.posted - stream.outbound.framed > self.session.high_water()

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

    @property
    def can_push(self) -> bool:
        return self.session.core.can_push

    def push(self, block: list[Header]) -> bool:
        """PUSH_PROMISE the request ``block`` (on the session's thread, in
        order with this stream's other commands); its app runs on the
        promised stream. False if the client takes no push or a cap is
        reached (read here without a lock: the session checks again)."""
        self._check()
        session, stream = self.session, self.stream
        if not self.can_push or stream.pushes >= PUSHES_PER_STREAM:
            return False
        if session.pushed >= PUSHES_PER_CONNECTION:
            return False
        self.post(session.push, stream, block)
        return True

    def end(self) -> None:
        """End the response where it stands (END_STREAM after what is queued);
        an end never waits for room."""
        if not self.ended_by_app and self.stream.state is StreamState.OPEN:
            self._queue_body(0, True, self.session.send_body, b"", True)

    def finish(self) -> None:
        """The application returned: release the stream if it did not end it."""
        if not self.ended_by_app:
            self.post(self.session.app_done, self.stream)

    # -- waiting -------------------------------------------------------------------

    def _check(self) -> None:
        stream = self.stream
        if stream.state is StreamState.ABORTED:
            raise StreamClosed("the stream was reset", stream.abort_code)

    def _deadline(self, grace: float) -> float:
        return time.monotonic() + self.session.timeout + grace

    def _expire(self, what: str) -> StreamClosed:
        """A wait ran past ``timeout``: reset the stream, say so, and return
        the error the waiting app gets."""
        self.reset(ErrorCodes.CANCEL)
        session = self.session
        session.host.peer_log.info(
            "HTTP/2 stream %d from %s waited %gs for the %s: reset",
            self.stream_id,
            session.peer_ip,
            session.timeout,
            what,
        )
        return StreamClosed(f"timed out waiting for the {what}")


# The core resets a stream stuck on its window after ``timeout`` (and says so
# in the log); a wait for room only adds this much as a backstop.
ROOM_GRACE = 3.0


class SyncChannel(StreamChannel):
    """One stream as its blocking application sees it (see wsgi.Channel)."""

    __slots__ = ("parker",)

    def __init__(self, session: Session, stream: Stream, parker: Parker, post: Post) -> None:
        super().__init__(session, stream, post)
        self.parker = parker

    def read_chunk(self, want: int = 0, ahead: int = 0) -> bytes:
        """Next body chunk (see wsgi.Channel)."""
        while (chunk := self._next_chunk(want, ahead)) is None:
            self._wait(self._body_ready, "request body")
        return chunk

    def send_head(self, status: int, headers: list[Header], body: bytes, end: bool) -> None:
        if self._queue_body(len(body), end, self.session.send_head, status, headers, body, end):
            self._wait_for_room()

    def send_body(self, data: bytes, end: bool) -> None:
        if self._queue_body(len(data), end, self.session.send_body, data, end):
            self._wait_for_room()

    def _wait_for_room(self) -> None:
        self._wait(lambda: not self._over_high_water(), "flow-control window", ROOM_GRACE)

    def _wait(self, ready: Callable[[], bool], what: str, grace: float = 0.0) -> None:
        """Park until ``ready()`` or the stream is aborted (then raise)."""
        stream = self.stream
        parker = self.parker
        stream.waiter = parker
        deadline = self._deadline(grace)
        try:
            while not ready():
                self._check()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise self._expire(what)
                parker.park(remaining)
        finally:
            stream.waiter = None


class AsyncChannel(StreamChannel):
    """One stream as its ASGI task sees it (see asgi.runner.AsyncChannel).

    More than one task of an app may wait on a stream at once (Starlette
    streams a body while another task awaits ``receive()`` for the
    disconnect): every waiter is woken, each checks its own condition.
    """

    __slots__ = ("waiting",)

    def __init__(self, session: Session, stream: Stream) -> None:
        super().__init__(session, stream)
        self.waiting: list[asyncio.Future[None]] = []
        stream.waiter = self

    def finish(self) -> None:
        """The app's task is over: the stream lets go of its channel too
        (each refers to the other; left so, every stream was garbage only
        the cycle collector could free, and it ran every few requests)."""
        super().finish()
        if self.stream.waiter is self:
            self.stream.waiter = None

    def unpark(self) -> None:
        """The session's wake: every waiting task looks again."""
        waiting, self.waiting = self.waiting, []
        for future in waiting:
            if not future.done():
                future.set_result(None)

    async def read_chunk(self, want: int = 0, ahead: int = 0) -> bytes:
        while (chunk := self._next_chunk(want, ahead)) is None:
            await self._wait(self._body_ready, "request body")
        return chunk

    async def send_head(self, status: int, headers: list[Header], body: bytes, end: bool) -> None:
        if self._queue_body(len(body), end, self.session.send_head, status, headers, body, end):
            await self._wait_for_room()

    async def send_body(self, data: bytes, end: bool) -> None:
        if self._queue_body(len(data), end, self.session.send_body, data, end):
            await self._wait_for_room()

    async def _wait_for_room(self) -> None:
        await self._wait(lambda: not self._over_high_water(), "flow-control window", ROOM_GRACE)

    async def wait_closed(self) -> None:
        """Until the stream is reset, its connection is gone, or its response
        is whole (no deadline: an app may watch for the disconnect as long as
        it streams)."""
        while self.stream.state is StreamState.OPEN:
            await self._next_wake(None)

    async def _wait(self, ready: Callable[[], bool], what: str, grace: float = 0.0) -> None:
        """Until ``ready()`` or the stream is aborted (then raise)."""
        deadline = self._deadline(grace)
        while not ready():
            self._check()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._expire(what)
            await self._next_wake(remaining)

    async def _next_wake(self, timeout: float | None) -> None:
        future = asyncio.get_running_loop().create_future()
        self.waiting.append(future)
        if timeout is None:
            await future
            return
        handle = future.get_loop().call_later(timeout, _settle, future)
        try:
            await future
        finally:
            handle.cancel()


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
