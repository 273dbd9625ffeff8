"""Received bytes into frames, for h2's connection (``machine.py``).

h2 splits its input with hyperframe, whose generic parse builds a header
object, a flag set and padding and priority mixins for every frame, and
checks a frame's length only once all of it has arrived. ``EagerFrameBuffer``
refuses an overlong frame from its 9-byte header, caps CONTINUATION floods
while they arrive, and parses the two frames a request is made of (a whole
HEADERS block without padding or priority fields, an unpadded DATA frame)
with one copy of their payload; any other frame goes hyperframe's way and
fails there as before. The frames it makes are the ones hyperframe would
(``tests/test_h2conn.py`` compares them through h2), and their repr does not
hex-encode a body h2 would log with logging off.
"""

from __future__ import annotations

from h2.exceptions import DenialOfServiceError, FrameTooLargeError
from h2.frame_buffer import FrameBuffer
from hyperframe.flags import Flags
from hyperframe.frame import DataFrame, Frame, HeadersFrame

END_STREAM, END_HEADERS, PADDED, PRIORITY, ACK = 0x1, 0x4, 0x8, 0x20, 0x1
DATA_TYPE, HEADERS_TYPE, SETTINGS_TYPE, WINDOW_UPDATE_TYPE = 0x0, 0x1, 0x4, 0x8

MAX_CONTINUATIONS = 32  # per header block; h2 itself stops at 64 with PROTOCOL_ERROR


class EagerFrameBuffer(FrameBuffer):
    """Refuses an overlong frame as soon as its 9-byte header is in.

    h2 checks a frame's length only once the whole payload has arrived, so a
    peer announcing a 16 MiB frame could make us buffer 16 MiB per
    connection before the FRAME_SIZE_ERROR.
    """

    max_header_block = 1 << 20  # set by the core from http2_max_header_list_size

    def __next__(self) -> Frame:
        data: bytearray = self._data  # h2 4.3+: consumed frames are deleted in place
        if len(data) >= 9:
            length = int.from_bytes(data[:3], "big")
            if length > self.max_frame_size:
                raise FrameTooLargeError(
                    f"frame of {length} bytes announced, max {self.max_frame_size}"
                )
            if data[3] == SETTINGS_TYPE and data[4] & ACK and length:  # RFC 9113 6.5
                raise FrameTooLargeError("SETTINGS ACK with a payload")
            window_update = data[3] == WINDOW_UPDATE_TYPE and length == 4 and len(data) >= 13
            if window_update:
                data[9] &= 0x7F  # RFC 9113 6.9: the reserved bit is ignored
            if data[3] == DATA_TYPE:
                plain = self._plain_data(data, length)
                if plain is not None:
                    return plain
            elif data[3] == HEADERS_TYPE:
                head = self._plain_headers(data, length)
                if head is not None:
                    return head
        frame = super().__next__()
        quiet = QUIET_FRAMES.get(type(frame))
        if quiet is not None:
            frame.__class__ = quiet
        return frame

    def _plain_data(self, data: bytearray, length: int) -> QuietDataFrame | None:
        """A whole unpadded DATA frame, parsed with one copy of its payload.

        hyperframe's generic parse (header object, flag set, padding mixin,
        two copies) is a third of h2's cost per DATA frame. Anything less
        plain (padding, stream 0, inside a header block) goes the generic
        way and fails there as before.
        """
        end = 9 + length
        if len(data) < end or data[4] & PADDED or self._headers_buffer:
            return None
        stream_id = int.from_bytes(data[5:9], "big") & 0x7FFFFFFF
        if not stream_id:
            return None
        with memoryview(data) as view:
            payload = view[9:end].tobytes()
        frame = QuietDataFrame.received(stream_id, payload, bool(data[4] & END_STREAM))
        del data[:end]  # a bytearray drops its head in place (as h2 does)
        return frame

    def _plain_headers(self, data: bytearray, length: int) -> QuietHeadersFrame | None:
        """A whole HEADERS frame that is a whole header block with no padding
        and no priority fields (a request's usual head), parsed as
        ``_plain_data`` parses DATA; anything else goes the generic way."""
        end = 9 + length
        flags = data[4]
        if len(data) < end or flags & (PADDED | PRIORITY) or not flags & END_HEADERS:
            return None
        stream_id = int.from_bytes(data[5:9], "big") & 0x7FFFFFFF
        if not stream_id or self._headers_buffer:
            return None
        with memoryview(data) as view:
            block = view[9:end].tobytes()
        frame = QuietHeadersFrame.received(stream_id, block, bool(flags & END_STREAM))
        del data[:end]
        return frame

    def _update_header_buffer(self, f: Frame | None) -> Frame | None:
        """CONTINUATION flood guard: a header block is capped while it
        arrives (bytes and frames), not only once END_HEADERS comes."""
        result = super()._update_header_buffer(f)
        pending = self._headers_buffer
        if pending:
            if len(pending) > MAX_CONTINUATIONS:
                raise DenialOfServiceError(f"over {MAX_CONTINUATIONS} CONTINUATION frames")
            size = sum(len(frame.data) for frame in pending)
            if size > self.max_header_block:
                raise DenialOfServiceError(f"header block over {self.max_header_block} bytes")
        return result


class QuietDataFrame(DataFrame):
    """A received DATA frame whose repr does not hex-encode its payload.

    h2 logs ``repr(frame)`` for every frame it receives, even with logging
    off; for DATA that hex-encodes the whole body (a sixth of the worker's
    time on a large upload). Dispatched exactly as DataFrame.
    """

    @classmethod
    def received(cls, stream_id: int, payload: bytes, end_stream: bool) -> QuietDataFrame:
        """The frame hyperframe would parse from these parts, unpadded."""
        frame = cls.__new__(cls)
        frame.stream_id = stream_id
        frame.flags = _received_flags(_DATA_FLAGS, _END_STREAM if end_stream else ())
        frame.body_len = len(payload)
        frame.pad_length = 0
        frame.data = payload
        return frame

    def __repr__(self) -> str:
        return f"DataFrame(stream_id={self.stream_id}, {len(self.data)} bytes)"


class QuietHeadersFrame(HeadersFrame):
    """The same for HEADERS: 2% of a small request's time."""

    # Set on a frame ``_plain_headers`` made (a whole block, no padding or
    # priority fields): whether it ends the stream. None on one hyperframe
    # parsed; the machine's new-stream path takes only the plain ones.
    plain_end_stream: bool | None = None

    @classmethod
    def received(cls, stream_id: int, block: bytes, end_stream: bool) -> QuietHeadersFrame:
        """The frame hyperframe would parse: a whole block, unpadded, no priority."""
        frame = cls.__new__(cls)
        frame.stream_id = stream_id
        present = _HEADERS_END_STREAM if end_stream else _END_HEADERS
        frame.flags = _received_flags(_HEADERS_FLAGS, present)
        frame.body_len = len(block)
        frame.pad_length = 0
        frame.depends_on, frame.stream_weight, frame.exclusive = 0, 0, False
        frame.data = block
        frame.plain_end_stream = end_stream
        return frame

    def __repr__(self) -> str:
        return f"HeadersFrame(stream_id={self.stream_id})"


_DATA_FLAGS = {flag.name for flag in DataFrame.defined_flags}
_HEADERS_FLAGS = {flag.name for flag in HeadersFrame.defined_flags}
_END_STREAM, _END_HEADERS = ("END_STREAM",), ("END_HEADERS",)
_HEADERS_END_STREAM = ("END_STREAM", "END_HEADERS")


def _received_flags(defined: set[str], present: tuple[str, ...]) -> Flags:
    """What ``Flags(defined)`` plus ``add`` for each present flag give,
    without building the set of defined names again for every frame (the
    set is shared: a received frame's flags are read, never redefined)."""
    flags: Flags = Flags.__new__(Flags)
    flags._valid_flags = defined
    flags._flags = set(present)
    return flags


QUIET_FRAMES: dict[type[Frame], type[Frame]] = {
    DataFrame: QuietDataFrame,
    HeadersFrame: QuietHeadersFrame,
}
