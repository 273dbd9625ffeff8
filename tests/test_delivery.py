"""Response delivery for every shape users produce, against the core in memory.

The 1 MiB stall of the first round came from two layers counting the same
response bytes: every test passed because our clients used 64 KiB windows and
our apps 64 KiB pieces. Here hypothesis draws the shapes instead: pieces from
1 byte to 4 MiB, client frame sizes from 16 KiB to 16 MiB, stream and
connection windows from 1 byte to 2^31-1, one stream or several. A writer
throttled the way a driver throttles its app (it waits while more than a
high-water mark of what it handed over is unframed, by the core's own
``Outbound.framed``) must never wait with nothing left to move, and the
client must get every byte, in order, with END_STREAM.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from h2.events import DataReceived, StreamEnded
from h2.settings import SettingCodes
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from h2workers.config import MAX_WINDOW
from h2workers.proto.outbound import Outbound
from tests.apps import pieces_body
from tests.frames import Client

MIB = 1 << 20
# Each list crosses a boundary of ours or of the protocol: frame size,
# window defaults, the high-water marks (64 KiB, 1 MiB), the flush slice.
PIECE_EDGES = [1, 1000, 8192, 16383, 16384, 16385, 65535, 65536, 262144, MIB, MIB + 1, 4 * MIB]
WINDOW_EDGES = [1, 255, 1023, 16383, 16384, 65535, 65536, MIB, 4 * MIB, MAX_WINDOW]
FRAME_EDGES = [16384, 16385, 65536, MIB, 4 * MIB, (1 << 24) - 1]
HIGH_WATERS = [65536, MIB]
MAX_BODY = 6 * MIB


def _piece_sizes() -> st.SearchStrategy[int]:
    return st.one_of(st.sampled_from(PIECE_EDGES), st.integers(1, 4 * MIB))


@st.composite
def shapes(draw: st.DrawFn) -> Shape:
    window = draw(st.one_of(st.sampled_from(WINDOW_EDGES), st.integers(1, MAX_WINDOW)))
    # Bodies that would take more than ~3,000 frames at this window are cut:
    # the boundaries are all crossed well before.
    budget = min(MAX_BODY, window * 3000)
    streams = []
    for _ in range(draw(st.integers(1, 3))):
        sizes, total = [], 0
        for size in draw(st.lists(_piece_sizes(), min_size=1, max_size=40)):
            size = min(size, budget - total)
            if size <= 0:
                break
            sizes.append(size)
            total += size
        streams.append(sizes)
    return Shape(
        pieces=streams,
        window=window,
        connection_extra=draw(st.sampled_from([0, 1, MIB, MAX_WINDOW - 65535])),
        max_frame=draw(st.one_of(st.sampled_from(FRAME_EDGES), st.integers(16384, (1 << 24) - 1))),
        high_water=draw(st.sampled_from(HIGH_WATERS)),
    )


@dataclass
class Shape:
    pieces: list[list[int]]  # per stream, the sizes the app hands over
    window: int  # the client's SETTINGS_INITIAL_WINDOW_SIZE
    connection_extra: int  # added to the client's 65,535-byte connection window
    max_frame: int  # the client's SETTINGS_MAX_FRAME_SIZE
    high_water: int  # unframed bytes past which the writer waits


@dataclass
class Writer:
    """An app writing one response through a driver that throttles it."""

    stream_id: int
    body: bytes
    sizes: list[int]
    outbound: Outbound
    posted: int = 0
    waiting: bool = False
    received: bytearray = field(default_factory=bytearray)
    ended: bool = False

    @property
    def done(self) -> bool:
        return not self.sizes and not self.waiting


def deliver(shape: Shape) -> None:
    client = Client(
        client_settings={
            SettingCodes.INITIAL_WINDOW_SIZE: shape.window,
            SettingCodes.MAX_FRAME_SIZE: shape.max_frame,
        }
    )
    if shape.connection_extra:
        client.conn.increment_flow_control_window(shape.connection_extra)
    writers = []
    for sizes in shape.pieces:
        sid = client.request()
        client.exchange()
        client.core.respond(sid, 200, [])
        body = pieces_body(sum(sizes))
        writers.append(Writer(sid, body, list(sizes), client.core.counts(sid)[1]))
    by_id = {w.stream_id: w for w in writers}
    idle_rounds = 0
    while not all(w.ended for w in writers):
        for w in writers:
            _write_until_throttled(client, w, shape.high_water)
        _, events = client.exchange(now=0.0)
        for event in events:
            if isinstance(event, DataReceived):
                by_id[event.stream_id].received += event.data
            elif isinstance(event, StreamEnded):
                by_id[event.stream_id].ended = True
        moved = False
        for w in writers:
            # The core's count is what the client got: no byte framed twice or lost.
            assert w.outbound.framed == len(w.received)
            if w.waiting and w.posted - w.outbound.framed <= shape.high_water:
                w.waiting, moved = False, True
        moved = moved or bool(events)
        idle_rounds = 0 if moved else idle_rounds + 1
        waiting = [w.stream_id for w in writers if w.waiting]
        assert idle_rounds < 2, f"stalled: writers {waiting} wait, nothing moves"
    for w in writers:
        assert bytes(w.received) == w.body


def _write_until_throttled(client: Client, w: Writer, high_water: int) -> None:
    """Hand pieces to the core as the driver would, until the writer waits."""
    start = w.posted
    while w.sizes and not w.waiting:
        size = w.sizes.pop(0)
        end = not w.sizes
        client.core.send_body(w.stream_id, w.body[w.posted : w.posted + size], end_stream=end)
        w.posted += size
        # As ThreadChannel._throttle: the last write never waits.
        w.waiting = not end and w.posted - w.outbound.framed > high_water
    assert w.posted >= start


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shapes())
# The defect of the first round: 1 KiB pieces, curl's windows.
@example(Shape([[1000] * 1200], 10 * MIB, 32 * MIB, 16384, MIB))
# grpcio: 4 MiB frames and windows, one piece of 1 MiB + 5.
@example(Shape([[MIB + 5]], 4 * MIB, 4 * MIB, 4 * MIB, MIB))
# nghttp -w 8: a 255-byte window.
@example(Shape([[16384] * 8], 255, 0, 16384, MIB))
# Several streams sharing a 65,535-byte connection window.
@example(Shape([[8192] * 20, [1] * 300, [MIB]], 65535, 0, 16384, 65536))
def test_every_shape_is_delivered_whole(shape: Shape) -> None:
    deliver(shape)
