"""Priority decides the order of response bytes: the core, without sockets.

The client here reads like a real one on a slow link: its streams have large
windows and the connection window reopens only by what it has read, 64 KiB
at a time, so each flush is a decision of which stream gets the next bytes.
"""

from __future__ import annotations

import pytest
from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from hyperframe.frame import DataFrame, GoAwayFrame, SettingsFrame
from hypothesis import given
from hypothesis import strategies as st

from h2workers.errors import ProtocolViolation
from h2workers.proto import events as ev
from h2workers.proto.machine import NO_RFC7540_PRIORITIES
from h2workers.proto.priority import (
    PRIORITY_UPDATE_TYPE,
    DependencyTree,
    StreamPriority,
    parse_field,
    parse_update,
)
from tests.frames import (
    PREFACE,
    RawClient,
    get_request,
    of_type,
    priority_update,
    raw_frame,
)

SIZE = 4 * 2**20  # each response
STEP = 65_535  # the connection window the client reopens at a time


def slow_client(client_settings: dict[int, int] | None = None) -> RawClient:
    raw = RawClient(handshake=False)
    raw.core.initiate()
    settings = SettingsFrame(0)
    settings.settings = {SettingCodes.INITIAL_WINDOW_SIZE: 2**30, **(client_settings or {})}
    raw.send_bytes(PREFACE + settings.serialize())
    raw.read()
    raw.send(SettingsFrame(0, flags=["ACK"]))
    return raw


def open_streams(raw: RawClient, *requests: tuple[int, list, tuple | None]) -> None:
    for sid, extra, weights in requests:
        raw.send(raw.headers(sid, get_request(extra=extra), priority=weights))


def respond_all(raw: RawClient, sids: list[int], size: int = SIZE) -> None:
    for sid in sids:
        raw.core.respond(sid, 200, [])
        raw.core.send_body(sid, b"x" * size, end_stream=True)


def read_until(raw: RawClient, done, on_step=None) -> dict[int, int]:
    """Read as the window allows until ``done(received)``; returns bytes per stream."""
    received: dict[int, int] = {}
    while not done(received):
        frames = of_type(raw.read(), DataFrame)
        assert frames, "stalled"
        for frame in frames:
            received[frame.stream_id] = received.get(frame.stream_id, 0) + len(frame.data)
        if on_step is not None:
            on_step(received)
        raw.send(raw.window_update(0, sum(len(f.data) for f in frames)))
    return received


def complete(sid: int):
    return lambda received: received.get(sid, 0) >= SIZE


# -- RFC 9218 ----------------------------------------------------------------


def test_server_says_it_does_not_use_rfc7540_priorities():
    raw = RawClient()
    (settings,) = [
        f for f in raw.handshake_frames if isinstance(f, SettingsFrame) and "ACK" not in f.flags
    ]
    assert settings.settings[NO_RFC7540_PRIORITIES] == 1


def test_urgent_response_completes_before_the_other_gets_a_tenth():
    raw = slow_client()
    open_streams(raw, (1, [(b"priority", b"u=5")], None), (3, [(b"priority", b"u=0")], None))
    respond_all(raw, [1, 3])
    received = read_until(raw, complete(3))
    assert received.get(1, 0) < SIZE / 10


def test_priority_update_mid_transfer_flips_the_order():
    raw = slow_client()
    open_streams(raw, (1, [(b"priority", b"u=1")], None), (3, [(b"priority", b"u=4")], None))
    respond_all(raw, [1, 3])
    before = read_until(raw, lambda r: r.get(1, 0) >= SIZE // 4)
    assert before.get(3, 0) == 0
    events = raw.send(priority_update(1, b"u=6"), priority_update(3, b"u=0"))
    assert [e.priority.urgency for e in events] == [6, 0]
    after = read_until(raw, complete(3))
    assert after.get(1, 0) < SIZE / 10  # the rest of 1 waited for all of 3


def test_incremental_streams_of_one_urgency_interleave():
    raw = slow_client()
    field = [(b"priority", b"u=2, i")]
    open_streams(raw, (1, field, None), (3, field, None), (5, [(b"priority", b"u=4")], None))
    respond_all(raw, [1, 3, 5])
    order: list[int] = []
    frames_seen = []

    def note(received):
        frames_seen.append(dict(received))

    read_until(raw, lambda r: r.get(1, 0) + r.get(3, 0) >= SIZE, note)
    order = [f.stream_id for f in of_type(raw.received, DataFrame)]
    assert 5 not in order
    assert order[:8] == [1, 3] * 4
    last = frames_seen[-1]
    assert abs(last[1] - last[3]) <= 16_384


def test_non_incremental_streams_go_in_stream_order():
    raw = slow_client()
    open_streams(raw, (1, [], None), (3, [], None), (5, [], None))
    respond_all(raw, [5, 3, 1])  # queued in the other order
    received = read_until(raw, complete(1))
    assert received.get(3, 0) < STEP  # what the last window had room for
    assert received.get(5, 0) == 0


def test_server_priority_header_overrides_the_client_until_it_updates():
    raw = slow_client()
    open_streams(raw, (1, [(b"priority", b"u=0")], None), (3, [(b"priority", b"u=1")], None))
    raw.core.respond(1, 200, [(b"priority", b"u=7")])
    raw.core.send_body(1, b"x" * SIZE, end_stream=True)
    respond_all(raw, [3])
    received = read_until(raw, lambda r: r.get(3, 0) >= SIZE // 4)
    assert received.get(1, 0) < STEP  # the app's u=7 put it last
    raw.send(priority_update(1, b"u=0"))  # the newest signal wins
    received = read_until(raw, complete(1))
    assert received.get(3, 0) < STEP


def test_early_priority_update_applies_when_the_request_arrives():
    raw = slow_client()
    assert raw.send(priority_update(3, b"u=0, i")) == []
    (started,) = raw.send(raw.headers(3, get_request()))
    assert started.head.priority == StreamPriority(urgency=0, incremental=True)


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (priority_update(1, b"u=1", on_stream=1), ErrorCodes.PROTOCOL_ERROR),
        (priority_update(0, b"u=1"), ErrorCodes.PROTOCOL_ERROR),
        (raw_frame(PRIORITY_UPDATE_TYPE, 0, 0, b"\0\0"), ErrorCodes.FRAME_SIZE_ERROR),
    ],
)
def test_invalid_priority_update_is_a_connection_error(frame, code):
    raw = slow_client()
    open_streams(raw, (1, [], None))
    events = raw.send(frame)
    assert isinstance(events[-1], ev.ConnectionEnded)
    (goaway,) = of_type(raw.read(), GoAwayFrame)
    assert goaway.error_code == code


# -- RFC 7540 ----------------------------------------------------------------


def test_weights_share_bandwidth_in_proportion():
    raw = slow_client()
    open_streams(raw, (1, [], (256, 0, False)), (3, [], (32, 0, False)))
    respond_all(raw, [1, 3])
    received = read_until(raw, lambda r: sum(r.values()) >= SIZE)
    assert 7 <= received[1] / received[3] <= 9


def test_dependent_stream_waits_for_its_parent():
    raw = slow_client()
    open_streams(raw, (1, [], (16, 0, False)), (3, [], (256, 1, False)))
    respond_all(raw, [3, 1])
    received = read_until(raw, complete(1))
    assert received.get(3, 0) < STEP
    rest = SIZE - received.get(3, 0)
    assert read_until(raw, lambda r: r.get(3, 0) >= rest)[3] == rest  # then the rest


def test_rfc9218_wins_when_a_client_sends_both():
    raw = slow_client()
    # RFC 7540 says 1 first (3 depends on it); RFC 9218 says 3 first
    open_streams(
        raw,
        (1, [(b"priority", b"u=6")], (256, 0, False)),
        (3, [(b"priority", b"u=1")], (1, 1, True)),
    )
    respond_all(raw, [1, 3])
    received = read_until(raw, complete(3))
    assert received.get(1, 0) < SIZE / 10


def test_client_without_rfc7540_priorities_has_them_ignored():
    raw = slow_client({NO_RFC7540_PRIORITIES: 1})
    open_streams(raw, (1, [], (1, 0, False)), (3, [], (256, 0, False)))
    respond_all(raw, [1, 3])
    received = read_until(raw, complete(1))  # default order: by stream id
    assert received.get(3, 0) < STEP


def test_priority_frame_reaches_the_app_with_both_schemes():
    raw = slow_client()
    open_streams(raw, (1, [(b"priority", b"u=1")], None))
    (event,) = raw.send(raw.priority(1, 64, 0, False))
    assert event == ev.PriorityChanged(1, StreamPriority(urgency=1, weight=64))


# -- parsing and the tree ------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"u=0", (0, False)),
        (b"u=5, i", (5, True)),
        (b"i=?0, u=1", (1, False)),
        (b"i=?1", (3, True)),
        (b"u=8", (3, False)),  # out of range: ignored
        (b"u=-1, i=1", (3, False)),  # wrong types: ignored
        (b"u=2;x=1, foo=bar, i;y", (2, True)),  # parameters and unknown keys
        (b"u=1, u=4", (4, False)),  # the last wins
        (b"", (3, False)),
    ],
)
def test_parse_field(value, expected):
    assert parse_field(value) == expected


@given(st.binary(max_size=64))
def test_parse_field_never_fails_and_stays_in_range(value):
    urgency, incremental = parse_field(value)
    assert 0 <= urgency <= 7
    assert isinstance(incremental, bool)


def test_parse_update_reads_the_prioritized_stream():
    assert parse_update(0, b"\x80\0\0\x05u=2") == (5, b"u=2")  # the reserved bit is ignored
    with pytest.raises(ProtocolViolation):
        parse_update(0, b"\0\0\0\0u=2")


def test_tree_exclusive_dependency_adopts_the_siblings():
    tree = DependencyTree(limit=10)
    for sid in (1, 3, 5):
        tree.set(sid, 16, 0, False)
    tree.set(7, 16, 0, True)
    assert [tree.ancestors(sid) for sid in (1, 3, 5, 7)] == [[7], [7], [7], []]


def test_tree_moving_under_a_descendant_breaks_the_cycle():
    tree = DependencyTree(limit=10)
    tree.set(1, 16, 0, False)
    tree.set(3, 16, 1, False)
    tree.set(1, 16, 3, False)  # 3 moves up to 1's old parent first
    assert tree.ancestors(1) == [3]
    assert tree.ancestors(3) == []


def test_tree_ended_stream_hands_its_weight_to_its_children():
    tree = DependencyTree(limit=10)
    tree.set(1, 64, 0, False)
    tree.set(3, 30, 1, False)
    tree.set(5, 10, 1, False)
    tree.remove(1)
    assert (tree.nodes[3].parent, tree.nodes[3].weight, tree.nodes[5].weight) == (0, 48, 16)


def test_tree_keeps_a_bounded_number_of_idle_nodes():
    tree = DependencyTree(limit=4)
    for sid in range(1, 200, 2):
        tree.set(sid, 16, sid + 1000, False)
    assert len(tree.nodes) <= 4
