"""A stream's response body on its way out (part of the sans-I/O core).

The application's commands queue bytes here; the core's ``flush`` takes them
a frame at a time, as flow control allows. Chunks are kept as handed over and
taken as memoryview slices, so a body is copied once, into the frame.

``framed`` is the one count of a stream's response bytes that have left for
the wire, whichever path framed them (at once in ``H2Core.send_body``, or
later by ``flush``). A driver throttles its writer on "handed over minus
framed" and must not keep a second count: two counts of the same bytes that
drifted apart once stalled every download of small pieces after 1 MiB.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from h2workers.proto.headers import Header


@dataclass(slots=True)
class Outbound:
    """Queued response body, END_STREAM and trailers of one stream."""

    chunks: deque[bytes] = field(default_factory=deque)
    offset: int = 0  # bytes of chunks[0] already taken
    buffered: int = 0  # queued bytes not yet taken
    framed: int = 0  # body bytes framed so far, queued or not (the core writes it)
    end_queued: bool = False
    trailers: list[Header] | None = None
    blocked_since: float | None = None  # when flow control last stopped it

    @property
    def empty(self) -> bool:
        """Nothing queued: a new body may be framed ahead of the queue."""
        return not self.chunks and self.trailers is None

    @property
    def ends_on_data(self) -> bool:
        """The body is all taken and END_STREAM rides on its last frame."""
        return not self.chunks and self.end_queued and self.trailers is None

    def queue(self, data: bytes, end_stream: bool) -> None:
        if data:
            self.chunks.append(data)
            self.buffered += len(data)
        self.end_queued = self.end_queued or end_stream

    def end_with(self, trailers: list[Header]) -> None:
        self.trailers = trailers
        self.end_queued = True

    def take(self, limit: int) -> bytes | memoryview:
        """Up to ``limit`` bytes from the head of the queue.

        A large chunk is sliced without a copy; small chunks (an app
        yielding 1 KiB at a time) are joined into one frame, instead of a
        frame header, a send and a flow-control round per piece."""
        chunks = self.chunks
        if len(chunks) > 1 and len(chunks[0]) - self.offset < limit:
            parts: list[bytes | memoryview] = []
            room = limit
            while chunks and room > 0:
                part = self._take_one(room)
                parts.append(part)
                room -= len(part)
            return b"".join(parts)
        return self._take_one(limit)

    def _take_one(self, limit: int) -> bytes | memoryview:
        """Up to ``limit`` bytes of the head chunk."""
        chunk = self.chunks[0]
        size = min(len(chunk) - self.offset, limit)
        piece: bytes | memoryview
        if self.offset == 0 and size == len(chunk):
            piece = chunk
            self.chunks.popleft()
        else:
            piece = memoryview(chunk)[self.offset : self.offset + size]
            self.offset += size
            if self.offset == len(chunk):
                self.chunks.popleft()
                self.offset = 0
        self.buffered -= size
        self.framed += size
        return piece
