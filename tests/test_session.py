"""The session layer in memory: no socket, no selector, no worker.

A ``Session`` is driven here the way a driver drives it, with a transport
that records bytes (and can refuse them, like a full socket), a host that
records what the session asks of its driver, and h2's own client
``H2Connection`` on the other end. The last test runs applications on real
threads through ``SyncChannel`` (the thread driver's way), with the shapes
hypothesis draws: pieces, bodies, frame sizes and windows.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

import pytest
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import DataReceived, ResponseReceived, StreamEnded, StreamReset
from h2.settings import SettingCodes, Settings
from hyperframe.frame import DataFrame
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from h2workers.config import MAX_WINDOW, H2Settings
from h2workers.errors import StreamClosed, UnknownStream
from h2workers.peerlog import PeerLog
from h2workers.session.channel import SyncChannel
from h2workers.session.session import LINGER, OUT_HELD, Session
from h2workers.session.stream import Stream, StreamEvent, StreamState
from tests.apps import pieces_body
from tests.frames import FrameReader

MIB = 1 << 20
GET = [(":method", "GET"), (":scheme", "https"), (":authority", "t"), (":path", "/")]
POST = [(":method", "POST"), *GET[1:]]


class MemoryTransport:
    """Records what the session sends; ``take`` caps each send (0: full)."""

    def __init__(self) -> None:
        self.sent = bytearray()
        self.take: int | None = None
        self.wants: list[bool] = []
        self.half_closed = self.closed = False

    def send(self, data: bytes | bytearray | memoryview) -> int:
        n = len(data) if self.take is None else min(self.take, len(data))
        self.sent += bytes(data[:n])
        return n

    def want_write(self, want: bool) -> None:
        self.wants.append(want)

    def shutdown_write(self) -> bool:
        self.half_closed = True
        return True

    def close(self) -> None:
        self.closed = True


class Host:
    """Records what the session asks of its driver."""

    log = logging.getLogger("tests.session")
    peer_log = PeerLog(log)

    def __init__(self) -> None:
        self.started: list[Stream] = []
        self.closed_sessions: list[Session] = []
        self.on_start: Callable[[Session, Stream], None] | None = None

    def start(self, session: Session, stream: Stream) -> None:
        self.started.append(stream)
        if self.on_start is not None:
            self.on_start(session, stream)

    def wake(self, stream: Stream) -> None:
        stream.wake()

    def dirty(self, session: Session) -> None:
        pass

    def closed(self, session: Session) -> None:
        self.closed_sessions.append(session)


class NoPark:
    """For a channel used on the session's own thread: it must never wait."""

    def park(self, timeout: float) -> bool:
        raise AssertionError("a single-threaded app would wait here")

    def unpark(self) -> None:
        pass


def direct(command: Callable[..., None], *args: Any) -> None:
    command(*args)


class Pair:
    """A session and h2's client, wired through memory."""

    def __init__(
        self,
        settings: H2Settings | None = None,
        client_settings: dict[int, int] | None = None,
        keepalive: float = 2.0,
    ) -> None:
        self.host = Host()
        self.transport = MemoryTransport()
        self.session = Session(
            settings or H2Settings(),
            self.host,
            self.transport,
            ("127.0.0.1", 5000),
            ("127.0.0.1", 443),
            True,
            timeout=30.0,
            keepalive=keepalive,
            now=0.0,
        )
        self.client = H2Connection(H2Configuration(client_side=True, header_encoding="utf-8"))
        if client_settings:  # in the preface's SETTINGS (an update() waits for an ACK)
            self.client.local_settings = Settings(client=True, initial_values=client_settings)
            frame_size = self.client.local_settings.max_frame_size  # h2 reads it in __init__
            self.client.max_inbound_frame_size = frame_size
            self.client.incoming_buffer.max_frame_size = frame_size
        self.client.initiate_connection()
        self.session.start(self.client.data_to_send(), 0.0)
        self.body: dict[int, bytearray] = {}
        self.ended: set[int] = set()
        self.resets: dict[int, int] = {}

    def request(self, headers: list[tuple[str, str]] = GET, end: bool = True) -> int:
        sid = self.client.get_next_available_stream_id()
        self.client.send_headers(sid, headers, end_stream=end)
        self.body[sid] = bytearray()
        return sid

    def exchange(self, now: float = 0.0) -> list[Any]:
        """Client bytes in, session flush, session bytes to the client."""
        data = self.client.data_to_send()
        if data:
            self.session.receive(data, now)
        self.session.flush(now)
        out = bytes(self.transport.sent)
        self.transport.sent.clear()
        self.last_frames = FrameReader().feed(out)
        if self.client.state_machine.state.name == "CLOSED":
            return []  # h2's client reads nothing after GOAWAY: see last_frames
        events = self.client.receive_data(out) if out else []
        for event in events:
            if isinstance(event, DataReceived):
                self.body[event.stream_id] += event.data
                self.client.acknowledge_received_data(
                    event.flow_controlled_length, event.stream_id
                )
            elif isinstance(event, StreamEnded):
                self.ended.add(event.stream_id)
            elif isinstance(event, StreamReset):
                self.resets[event.stream_id] = event.error_code
        return events

    def channel(self, stream: Stream) -> SyncChannel:
        return SyncChannel(self.session, stream, NoPark(), direct)


def test_a_request_starts_a_stream_and_its_response_goes_out() -> None:
    pair = Pair()
    sid = pair.request()
    pair.exchange()
    (stream,) = pair.host.started
    assert (stream.stream_id, stream.head.path, stream.state) == (sid, b"/", StreamState.OPEN)
    assert pair.session.streams == {sid: stream}
    pair.channel(stream).send_head(200, [(b"x-a", b"1")], b"hello", True)
    events = pair.exchange()
    assert any(isinstance(e, ResponseReceived) for e in events)
    assert bytes(pair.body[sid]) == b"hello" and sid in pair.ended
    assert stream.state is StreamState.DONE and pair.session.streams == {}


def test_the_transition_table_ignores_races_that_ended_already() -> None:
    pair = Pair()
    pair.request()
    pair.exchange()
    (stream,) = pair.host.started
    assert stream.move(StreamEvent.APP_DONE)
    assert not stream.move(StreamEvent.ABORT)  # a reset after the app finished
    assert stream.state is StreamState.DONE


def test_a_client_reset_aborts_the_stream_and_drops_its_later_commands() -> None:
    pair = Pair()
    sid = pair.request()
    pair.exchange()
    (stream,) = pair.host.started
    pair.client.reset_stream(sid, ErrorCodes.CANCEL)
    pair.exchange()
    assert stream.state is StreamState.ABORTED and stream.abort_code == ErrorCodes.CANCEL
    pair.session.send_body(stream, b"late", True)  # posted before the app knew: dropped
    assert pair.exchange() == []
    with pytest.raises(StreamClosed):
        pair.channel(stream).send_body(b"more", False)


def test_a_stream_reset_later_in_the_same_read_never_starts_its_app() -> None:
    pair = Pair()
    doomed = pair.request(end=False)
    pair.client.reset_stream(doomed, ErrorCodes.CANCEL)
    kept = pair.request()
    started: list[int] = []

    def answer_at_once(session: Session, stream: Stream) -> None:  # as a direct driver
        started.append(stream.stream_id)
        SyncChannel(session, stream, NoPark(), direct).send_head(200, [], b"ok", True)

    pair.host.on_start = answer_at_once
    pair.exchange()  # HEADERS, RST_STREAM, HEADERS: one read
    assert started == [kept]
    assert bytes(pair.body[kept]) == b"ok"


def test_a_command_for_a_live_stream_the_core_lost_is_a_bug_that_shows() -> None:
    pair = Pair()
    sid = pair.request()
    pair.exchange()
    (stream,) = pair.host.started
    pair.session.core.reset(sid)  # behind the session's back
    with pytest.raises(UnknownStream):
        pair.session.send_body(stream, b"x", True)


def test_body_credit_is_counted_once_and_returned_as_the_app_reads() -> None:
    pair = Pair(H2Settings(initial_window_size=65535))
    sid = pair.request(POST, end=False)
    pair.exchange()
    (stream,) = pair.host.started
    channel = pair.channel(stream)
    for _ in range(4):
        pair.client.send_data(sid, b"u" * 15_000)
    pair.exchange()
    assert pair.client.local_flow_control_window(sid) == 65535 - 60_000
    taken = b""
    while len(taken) < 60_000:
        taken += channel.read_chunk(60_000 - len(taken))
    pair.exchange()
    # One owner: the core's count of credit, read through the stream. Credit
    # goes back in batches of ack_threshold while the app keeps reading...
    assert stream.taken == 60_000 and stream.inbound.acked == 45_000
    assert pair.client.local_flow_control_window(sid) == 65535 - 15_000
    # ...and all of it once the app waits for more (the core then holds
    # the 15,000 bytes, under a quarter window, for its next WINDOW_UPDATE).
    pair.session.read_upto(stream, stream.taken)
    pair.exchange()
    assert stream.inbound.acked == 60_000
    assert pair.client.local_flow_control_window(sid) == 65535 - 15_000
    pair.client.end_stream(sid)
    pair.exchange()
    assert channel.read_chunk(1) == b""


def test_a_peer_that_reads_nothing_holds_output_then_is_closed() -> None:
    pair = Pair()
    sid = pair.request()
    pair.exchange()
    (stream,) = pair.host.started
    pair.transport.take = 0  # the socket is full
    channel = SyncChannel(pair.session, stream, NoPark(), direct)
    channel.send_head(200, [], b"", False)
    pair.session.send_body(stream, b"d" * (2 * OUT_HELD), False)
    pair.client.increment_flow_control_window(4 * OUT_HELD)
    pair.client.increment_flow_control_window(4 * OUT_HELD, sid)
    pair.exchange()
    assert len(pair.session.out) >= OUT_HELD and pair.session.core.hold_output
    assert pair.transport.wants[-1] is True
    pair.session.tick(29.0)
    assert not pair.session.closed
    pair.session.tick(30.0)
    assert pair.session.closed and pair.transport.closed
    assert pair.host.closed_sessions == [pair.session]
    assert stream.state is StreamState.ABORTED


def test_back_pressure_clears_once_the_transport_drains() -> None:
    pair = Pair()
    pair.request()
    pair.exchange()
    (stream,) = pair.host.started
    pair.transport.take = 0
    pair.session.send_head(stream, 200, [], b"", False)
    pair.session.send_body(stream, b"d" * 60_000, False)
    pair.exchange()
    assert pair.session.out and pair.transport.wants == [True]
    pair.transport.take = None
    pair.session.write(1.0)
    assert not pair.session.out and pair.transport.wants == [True, False]
    assert not pair.session.core.hold_output


def test_an_idle_connection_gets_goaway_then_lingers_then_closes() -> None:
    pair = Pair(keepalive=2.0)
    pair.exchange()
    pair.session.tick(1.0)
    pair.exchange(1.0)
    assert not pair.transport.half_closed
    pair.session.tick(2.0)
    pair.exchange(2.0)
    assert pair.client.state_machine.state.name == "CLOSED"  # it got GOAWAY(NO_ERROR)
    assert pair.transport.half_closed and not pair.transport.closed
    pair.session.receive(b"late bytes are read and dropped", 2.5)
    pair.session.tick(2.0 + LINGER)
    assert pair.transport.closed


def test_a_stopping_worker_lets_streams_finish_then_closes_at_once() -> None:
    pair = Pair()
    sid = pair.request()
    pair.exchange()
    (stream,) = pair.host.started
    pair.session.stop(0.5)
    pair.exchange(0.5)
    assert not pair.transport.closed  # the open stream finishes first
    pair.channel(stream).send_head(200, [], b"ok", True)
    pair.exchange(0.6)
    (data,) = [f for f in pair.last_frames if isinstance(f, DataFrame)]
    assert (data.stream_id, data.data, "END_STREAM" in data.flags) == (sid, b"ok", True)
    assert pair.transport.closed and not pair.transport.half_closed


def test_the_high_water_mark_is_shared_by_the_streams_of_a_connection() -> None:
    pair = Pair()
    for _ in range(8):
        pair.request()
    pair.exchange()
    assert pair.session.high_water() == 4 * MIB // 8
    for _ in range(92):
        pair.request()
    pair.exchange()
    assert len(pair.session.streams) == 100
    assert pair.session.high_water() == 65536


# -- applications on real threads, as in the thread driver -----------------------


class ThreadParker:
    def __init__(self) -> None:
        self.event = threading.Semaphore(0)

    def park(self, timeout: float) -> bool:
        return self.event.acquire(timeout=timeout)

    def unpark(self) -> None:
        self.event.release()


class ThreadedApps:
    """Each stream's app runs on its own thread: it reads the request body
    ``read_size`` at a time, then writes its response in the given pieces.
    The test's own thread plays the I/O thread: it runs posted commands,
    flushes, and plays the client (uploading as its window allows)."""

    def __init__(self, pair: Pair, read_size: int) -> None:
        self.pair = pair
        self.read_size = read_size
        self.commands: queue.SimpleQueue[tuple[Callable[..., None], tuple[Any, ...]]] = (
            queue.SimpleQueue()
        )
        self.responses: dict[int, list[int]] = {}
        self.uploads: dict[int, bytes] = {}
        self.uploaded: dict[int, bytes] = {}
        self.errors: list[BaseException] = []
        self.threads: list[threading.Thread] = []
        pair.host.on_start = self.start

    def post(self, command: Callable[..., None], *args: Any) -> None:
        self.commands.put((command, args))

    def start(self, session: Session, stream: Stream) -> None:
        channel = SyncChannel(session, stream, ThreadParker(), self.post)
        thread = threading.Thread(target=self.app, args=(channel,), daemon=True)
        self.threads.append(thread)
        thread.start()

    def app(self, channel: SyncChannel) -> None:
        try:
            got = bytearray()
            while chunk := channel.read_chunk(self.read_size, 2 * self.read_size):
                got += chunk
            self.uploaded[channel.stream_id] = bytes(got)
            pieces = self.responses[channel.stream_id]
            body, at = pieces_body(sum(pieces)), 0
            channel.send_head(200, [], b"", False)
            for n in pieces:
                at += n
                channel.send_body(body[at - n : at], at == len(body))
        except BaseException as exc:  # reported by the loop
            self.errors.append(exc)

    def run(self) -> None:
        pair, sent = self.pair, dict.fromkeys(self.uploads, 0)
        for _ in range(20_000):
            for sid, data in self.uploads.items():
                room = min(
                    pair.client.local_flow_control_window(sid),
                    pair.client.max_outbound_frame_size,
                    len(data) - sent[sid],
                )
                if room > 0:
                    piece = data[sent[sid] : sent[sid] + room]
                    sent[sid] += room
                    pair.client.send_data(sid, piece, end_stream=sent[sid] == len(data))
            moved = False
            while True:
                try:
                    command, args = self.commands.get(timeout=0 if moved else 0.002)
                except queue.Empty:
                    break
                command(*args)
                moved = True
            pair.exchange()
            assert not self.errors, self.errors
            if len(pair.ended) == len(self.responses):
                break
        else:
            raise AssertionError(f"stalled: {len(pair.ended)} of {len(self.responses)} ended")
        for thread in self.threads:
            thread.join(5)


UPLOADS = [0, 1, 16384, 65535, 65536, 200_000]
PIECES = [1, 1000, 16384, 65536, MIB, MIB + 1]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.sampled_from(UPLOADS),
            st.lists(st.sampled_from(PIECES), min_size=1, max_size=6),
        ),
        min_size=1,
        max_size=3,
    ),
    st.sampled_from([1, 255, 65535, MIB, MAX_WINDOW]),
    st.sampled_from([16384, 65536, (1 << 24) - 1]),
    st.sampled_from([1, 4096, 65536]),
)
@example([(0, [1000] * 300)], MAX_WINDOW, 16384, 65536)  # the first round's stall
@example([(200_000, [MIB + 1])], 4 * MIB, (1 << 24) - 1, 4096)  # grpcio's shape
def test_threads_get_every_byte_through_the_session(
    streams: list[tuple[int, list[int]]], window: int, max_frame: int, read_size: int
) -> None:
    pair = Pair(
        client_settings={
            SettingCodes.INITIAL_WINDOW_SIZE: window,
            SettingCodes.MAX_FRAME_SIZE: max_frame,
        }
    )
    pair.client.increment_flow_control_window(MAX_WINDOW - 65535)
    apps = ThreadedApps(pair, read_size)
    budget = window * 2000  # bytes a response may take at this window, frame by frame
    for upload, pieces in streams:
        sid = pair.request(POST, end=upload == 0)
        apps.responses[sid] = [max(1, min(n, budget // len(pieces))) for n in pieces]
        if upload:
            apps.uploads[sid] = pieces_body(upload)
    apps.run()
    for sid, pieces in apps.responses.items():
        assert apps.uploaded[sid] == apps.uploads.get(sid, b"")
        assert bytes(pair.body[sid]) == pieces_body(sum(pieces))


# -- no garbage per request ---------------------------------------------------------


def test_a_served_request_leaves_no_reference_cycle() -> None:
    """Everything a request allocates is freed by reference counting when it
    ends. A cycle (the environ holding the runner's bound methods, the runner
    holding the environ) kept each request's objects until the garbage
    collector ran: 2.4 MiB more RSS over 60,000 streams on Gunicorn 23."""
    import gc

    from gunicorn.config import Config

    from h2workers.app.wsgi.context import ServeContext
    from h2workers.app.wsgi.serve import serve_h2
    from h2workers.config import server_options

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"hello"]

    class Worker:
        cfg = Config()
        wsgi = staticmethod(app)
        log = logging.getLogger("tests.session")
        peer_log = PeerLog(log)
        options = server_options(cfg)

    Worker.log.access = lambda *args: None  # type: ignore[attr-defined]
    ctx = ServeContext(Worker(), multithread=True)
    pair = Pair()
    pair.host.on_start = lambda session, stream: serve_h2(
        ctx, SyncChannel(session, stream, NoPark(), direct)
    )
    pair.request()
    pair.exchange()  # warm: the connection's own objects exist now
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(50):
            sid = pair.request()
            pair.exchange()
            assert bytes(pair.body[sid]) == b"hello"
        assert gc.collect() == 0
    finally:
        if was_enabled:
            gc.enable()
