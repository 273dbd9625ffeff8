"""RFC 9113 section 8: HTTP message exchanges (8.1), malformed messages and
content-length (8.1.1), field validity (8.2.1), connection-specific fields
(8.2.2), cookies (8.2.3), request pseudo-header fields (8.3), server push
(8.4), CONNECT (8.5), as h2spec's ``http2/8.*`` and ``generic/4`` check them.

A malformed request costs its own stream only: RST_STREAM(PROTOCOL_ERROR),
never seen by the application, and the connection goes on (8.1.1 allows a
stream error; every case asserts that exact frame)."""

from __future__ import annotations

import pytest

from h2workers.proto import events as ev

from .util import (
    ENABLE_PUSH,
    END_STREAM,
    GOAWAY,
    HEADERS,
    PING,
    POST,
    PROTOCOL_ERROR,
    RST_STREAM,
    STREAM_CLOSED,
    Peer,
    assert_connection_error,
    assert_stream_error,
    data,
    headers,
    ping,
    ping_ack,
    push_promise,
    rejected,
    request_block,
    resp_data,
    resp_headers,
    rst,
)


def _rq(*extra, method=b"GET", path=b"/", drop=()):
    block = [(n, v) for n, v in request_block(path, method) if n not in drop]
    return block + list(extra)


def _malformed(peer: Peer, sid: int, block) -> None:
    """The request on ``sid`` is malformed: exactly RST_STREAM(PROTOCOL_ERROR),
    the application never sees it, and the next stream is served."""
    assert_stream_error(peer, sid, PROTOCOL_ERROR, peer.request(sid, block))
    assert rejected(peer) == [(sid, PROTOCOL_ERROR)]
    assert not peer.started()
    peer.open(sid + 2)


# -- 8.1 message exchanges ------------------------------------------------------------


def test_get_request_and_response():
    """8.1: a GET is one HEADERS with END_STREAM; the response is HEADERS and
    DATA ending the stream (h2spec generic/4/1)."""
    peer = Peer()
    started = peer.open(1, block=request_block(b"/index?q=1"))
    assert (started.head.method, started.head.path) == (b"GET", b"/index?q=1")
    assert (started.head.scheme, started.head.authority) == (b"https", b"127.0.0.1")
    assert started.end_stream
    assert peer.answer(1, b"hello") == [resp_headers(1), resp_data(1, 5)]
    assert peer.blocks(1) == [[(b":status", b"200"), (b"content-length", b"5")]]


def test_post_with_body_and_trailers():
    """8.1: request HEADERS, DATA, then a trailer section ending the stream
    (h2spec generic/4/3-4)."""
    peer = Peer()
    peer.open(1, end_stream=False, block=POST)
    trailer = headers(1, peer.encode([(b"x-checksum", b"abc")]))
    assert peer.exchange(data(1, b"body"), trailer) == []
    assert peer.events[-2:] == [
        ev.RequestData(1, b"body", False),
        ev.RequestTrailers(1, [(b"x-checksum", b"abc")]),
    ]


def test_informational_then_final_response_and_trailers():
    """8.1: a response is zero or more 1xx HEADERS, one final HEADERS, DATA,
    and optionally a trailer HEADERS with END_STREAM and no pseudo-header."""
    peer = Peer()
    peer.open(1)
    peer.core.informational(1, 103, [(b"link", b"</a.css>; rel=preload")])
    peer.core.respond(1, 200, [])
    peer.core.send_body(1, b"body")
    peer.core.send_trailers(1, [(b"x-done", b"1")])
    got = peer.frames()
    assert got == [
        resp_headers(1), resp_headers(1), resp_data(1, 4, end_stream=False),
        resp_headers(1, end_stream=True),
    ]  # fmt: skip
    assert peer.blocks(1) == [
        [(b":status", b"103"), (b"link", b"</a.css>; rel=preload")],
        [(b":status", b"200")],
        [(b"x-done", b"1")],
    ]


@pytest.mark.parametrize("after_data", [True, False], ids=["after-data", "right-after-headers"])
def test_second_headers_without_end_stream_is_malformed(after_data):
    """8.1: a HEADERS frame without END_STREAM after the request's HEADERS
    (a trailer section that does not end the stream) makes the request
    malformed (h2spec http2/8.1/1)."""
    peer = Peer()
    peer.open(1, end_stream=False, block=POST)
    frames = [data(1, b"test")] if after_data else []
    trailer = headers(1, peer.encode([(b"x-test", b"ok")]), end_stream=False)
    assert_stream_error(peer, 1, PROTOCOL_ERROR, *frames, trailer)
    assert rejected(peer) == [(1, PROTOCOL_ERROR)]


def test_headers_after_trailers_is_stream_closed():
    """8.1 / 5.1: after the trailer section ended the stream, another HEADERS
    is on a half-closed (remote) stream: stream error STREAM_CLOSED."""
    peer = Peer()
    peer.open(1, end_stream=False, block=POST)
    peer.send(headers(1, peer.encode([(b"x-t", b"1")])))
    assert_stream_error(peer, 1, STREAM_CLOSED, headers(1, peer.encode([(b"x-u", b"2")])))


# -- 8.1.1 malformed messages: content-length -------------------------------------------------


@pytest.mark.parametrize(
    "length, frames",
    [
        (b"1", [b"test!"]),  # h2spec http2/8.1.2.6/1: one DATA frame, too long
        (b"5", [b"test", b"test!"]),  # http2/8.1.2.6/2: the sum is too long
        (b"10", [b"test", b"test"]),  # the stream ends short of the length
        (b"3", []),  # END_STREAM on an empty DATA frame, no body at all
    ],
    ids=["one-frame-over", "sum-over", "sum-under", "empty"],
)
def test_content_length_must_match_data(length, frames):
    """8.1.1: a request whose content-length differs from the sum of its DATA
    payloads is malformed: stream error PROTOCOL_ERROR."""
    peer = Peer()
    peer.open(1, end_stream=False, block=_rq((b"content-length", length), method=b"POST"))
    sent = [data(1, p, end_stream=i == len(frames) - 1) for i, p in enumerate(frames)]
    assert_stream_error(peer, 1, PROTOCOL_ERROR, *(sent or [data(1, b"", end_stream=True)]))


def test_content_length_without_body_is_malformed():
    """8.1.1: HEADERS with END_STREAM and a non-zero content-length."""
    _malformed(Peer(), 1, _rq((b"content-length", b"10"), method=b"POST"))


def test_content_length_short_before_trailers_is_malformed():
    """8.1.1: trailers end the stream before content-length octets arrived."""
    peer = Peer()
    peer.open(1, end_stream=False, block=_rq((b"content-length", b"10"), method=b"POST"))
    peer.send(data(1, b"four"))
    assert_stream_error(peer, 1, PROTOCOL_ERROR, headers(1, peer.encode([(b"x-t", b"1")])))


def test_matching_content_length_is_accepted():
    """8.1.1: DATA payloads summing to content-length, even split."""
    peer = Peer()
    peer.open(1, end_stream=False, block=_rq((b"content-length", b"8"), method=b"POST"))
    assert peer.exchange(data(1, b"test"), data(1, b"test", end_stream=True)) == []
    assert peer.events[-1] == ev.RequestData(1, b"test", True)


@pytest.mark.parametrize(
    "values",
    [[b"abc"], [b"-1"], [b"1e3"], [b" 5"], [b"5", b"6"]],
    ids=["abc", "negative", "exponent", "leading-space", "conflicting"],
)
def test_invalid_content_length_is_malformed(values):
    """8.1.1 / RFC 9110 8.6: content-length must be digits, one value."""
    block = _rq(*[(b"content-length", v) for v in values], method=b"POST")
    _malformed(Peer(), 1, block)


# -- 8.2.1 field validity --------------------------------------------------------------------


FIELD_ERRORS = {
    "uppercase-name": (b"X-Test", b"ok"),  # h2spec http2/8.1.2/1
    "colon-in-name": (b"x:y", b"1"),
    "space-in-name": (b"x y", b"1"),
    "nul-in-name": (b"x\x00y", b"1"),
    "del-in-name": (b"x\x7fy", b"1"),
    "high-octet-in-name": (b"x\xffy", b"1"),
    "empty-name": (b"", b"1"),
    "cr-in-value": (b"x-a", b"a\rb"),
    "lf-in-value": (b"x-a", b"a\nb"),
    "nul-in-value": (b"x-a", b"a\x00b"),
    "leading-space": (b"x-a", b" a"),
    "trailing-tab": (b"x-a", b"a\t"),
}


@pytest.mark.parametrize("field", list(FIELD_ERRORS.values()), ids=list(FIELD_ERRORS))
def test_invalid_field_is_malformed(field):
    """8.2.1: names with uppercase, colon, controls, SP, DEL or octets above
    0x7f, and values with NUL, CR, LF or edge whitespace, are malformed."""
    _malformed(Peer(), 1, _rq(field))


@pytest.mark.parametrize("field", [(b"X-Upper", b"1"), (b"x-a", b"a\nb")], ids=["upper", "lf"])
def test_invalid_field_in_trailers_is_malformed(field):
    """8.2.1 / 8.1: the same rules hold in a trailer section."""
    peer = Peer()
    peer.open(1, end_stream=False, block=POST)
    assert_stream_error(peer, 1, PROTOCOL_ERROR, headers(1, peer.encode([field])))


def test_valid_edge_values_are_accepted():
    """8.2.1: inner whitespace, obs-text octets and an empty value are fine."""
    peer = Peer()
    fields = [(b"x-a", b"a b\tc"), (b"x-b", b"caf\xe9"), (b"x-c", b"")]
    assert peer.open(1, block=_rq(*fields)).head.headers == fields


# -- 8.2.2 connection-specific fields ---------------------------------------------------------


@pytest.mark.parametrize(
    "field",
    [
        (b"connection", b"keep-alive"),  # h2spec http2/8.1.2.2/1
        (b"keep-alive", b"timeout=5"),
        (b"proxy-connection", b"keep-alive"),
        (b"transfer-encoding", b"chunked"),
        (b"upgrade", b"websocket"),
        (b"te", b"trailers, deflate"),  # http2/8.1.2.2/2
        (b"te", b"gzip"),
    ],
    ids=lambda f: f"{f[0].decode()}={f[1].decode()}",
)
def test_connection_specific_field_is_malformed(field):
    """8.2.2: connection-specific fields, and TE with any value but
    "trailers", make a request malformed."""
    _malformed(Peer(), 1, _rq(field))


def test_te_trailers_is_accepted():
    """8.2.2: TE MAY be present with the value "trailers"."""
    assert Peer().open(1, block=_rq((b"te", b"trailers"))).head.headers == [(b"te", b"trailers")]


def test_cookie_fields_are_joined():
    """8.2.3: several cookie fields are joined with "; " for the application."""
    peer = Peer()
    block = _rq((b"cookie", b"a=1"), (b"x-y", b"2"), (b"cookie", b"b=2"))
    assert (b"cookie", b"a=1; b=2") in peer.open(1, block=block).head.headers


# -- 8.3 pseudo-header fields -----------------------------------------------------------------


PSEUDO_ERRORS = {
    "unknown-pseudo": _rq((b":foo", b"bar")),  # h2spec http2/8.1.2.1/1
    "response-pseudo": _rq((b":status", b"200")),  # http2/8.1.2.1/2
    "pseudo-after-regular": [*_rq(drop=(b":path",)), (b"x-a", b"1"), (b":path", b"/")],  # /4
    "empty-path": _rq(path=b""),  # http2/8.1.2.3/1
    "no-method": _rq(drop=(b":method",)),  # http2/8.1.2.3/2
    "no-scheme": _rq(drop=(b":scheme",)),  # http2/8.1.2.3/3
    "no-path": _rq(drop=(b":path",)),  # http2/8.1.2.3/4
    "two-methods": _rq((b":method", b"POST")),  # http2/8.1.2.3/5 (duplicate after fields)
    "two-schemes": [*_rq(drop=(b":path",)), (b":scheme", b"http"), (b":path", b"/")],  # /6
    "two-paths": [*_rq(), (b":path", b"/other")],  # http2/8.1.2.3/7
    "two-authorities": [*_rq(drop=(b":path",)), (b":authority", b"b"), (b":path", b"/")],
    "relative-path": _rq(path=b"index.html"),
    "asterisk-for-get": _rq(path=b"*"),
    "space-in-path": _rq(path=b"/a b"),
}


@pytest.mark.parametrize("block", list(PSEUDO_ERRORS.values()), ids=list(PSEUDO_ERRORS))
def test_invalid_pseudo_headers_are_malformed(block):
    """8.3 / 8.3.1: only the defined request pseudo-headers, each once, all
    before regular fields; :method, :scheme and a non-empty, origin-form
    :path are required (asterisk only for OPTIONS)."""
    _malformed(Peer(), 1, block)


def test_pseudo_header_in_trailers_is_malformed():
    """8.1 / 8.3: trailers MUST NOT include pseudo-header fields (h2spec
    http2/8.1.2.1/3)."""
    peer = Peer()
    peer.open(1, end_stream=False, block=POST)
    peer.send(data(1, b"test"))
    assert_stream_error(peer, 1, PROTOCOL_ERROR, headers(1, peer.encode([(b":method", b"POST")])))


def test_options_asterisk_and_missing_authority_are_accepted():
    """8.3.1: OPTIONS may use ":path *"; :authority may be absent."""
    peer = Peer()
    head = peer.open(1, block=_rq(method=b"OPTIONS", path=b"*", drop=(b":authority",))).head
    assert (head.method, head.path, head.authority) == (b"OPTIONS", b"*", None)


def test_host_differing_from_authority_is_malformed():
    """8.3.1: a server SHOULD treat a request as malformed if its Host field
    names another entity than :authority (this server does)."""
    _malformed(Peer(), 1, _rq((b"host", b"other.example")))


# -- 8.4 server push ----------------------------------------------------------------------------


def test_push_promise_from_client_is_protocol_error():
    """8.4: a client cannot push: a PUSH_PROMISE received by a server is a
    connection error PROTOCOL_ERROR (h2spec http2/8.2/1), on an open stream
    or not."""
    peer = Peer()
    peer.open(1, end_stream=False, block=POST)
    assert_connection_error(peer, PROTOCOL_ERROR, 1, push_promise(1, 2, peer.encode(_rq())))


def test_server_never_pushes():
    """8.4 / 6.5.2: the server advertises SETTINGS_ENABLE_PUSH 0 (or nothing)
    and, even when the client allows push, answers without PUSH_PROMISE."""
    peer = Peer(client_settings=[(ENABLE_PUSH, 1)])
    assert dict(peer.server_preface[0][3]).get(ENABLE_PUSH, 0) == 0
    peer.open(1)
    assert [f[0] for f in peer.answer(1)] == ["HEADERS", "DATA"]


# -- 8.5 CONNECT -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "block",
    [
        [(b":method", b"CONNECT"), (b":authority", b"a:443"), (b":path", b"/")],
        [(b":method", b"CONNECT"), (b":authority", b"a:443"), (b":scheme", b"https")],
        [(b":method", b"CONNECT")],
    ],
    ids=["with-path", "with-scheme", "no-authority"],
)
def test_malformed_connect(block):
    """8.5: CONNECT carries :method and :authority only; :scheme and :path
    MUST be omitted."""
    _malformed(Peer(), 1, block)


def test_connect_is_passed_to_the_application():
    """8.5: a well-formed CONNECT reaches the application, which decides."""
    head = Peer().open(1, block=[(b":method", b"CONNECT"), (b":authority", b"a:443")]).head
    assert (head.method, head.authority, head.scheme) == (b"CONNECT", b"a:443", None)


# -- over a socket -----------------------------------------------------------------------------


def test_wire_get_head_post_and_trailers(wire_server):
    """8.1 over a socket (h2spec generic/4/1-4): GET, HEAD (a final HEADERS
    with END_STREAM, no DATA), POST with a body and with trailers."""
    with wire_server.connect() as wire:
        length = (b"content-length", b"4")
        wire.send(wire.request(1), wire.request(3, method=b"HEAD"))
        post = wire.request(5, b"/echo", b"POST", [length], end_stream=False)
        wire.send(post, data(5, b"abcd", end_stream=True))
        wire.send(wire.request(7, b"/echo", b"POST", end_stream=False), data(7, b"wxyz"))
        wire.send(headers(7, wire.encoder.encode([(b"x-trailer", b"t")])))
        assert wire.wait(lambda: all(wire.ended(s) for s in (1, 3, 5, 7)))
        assert not any(f.ftype in (GOAWAY, RST_STREAM) for f in wire.raw)
        assert wire.body(1) == b"Hello, world!\n"
        head = [f for f in wire.raw if f.sid == 3]
        assert [(f.ftype, f.flags & END_STREAM) for f in head] == [(HEADERS, END_STREAM)]
        assert (wire.body(5), wire.body(7)) == (b"abcd", b"wxyz")
        for sid in (1, 3, 5, 7):
            assert wire.blocks(sid)[0][0] == (b":status", b"200")


def test_wire_malformed_request_resets_its_stream(wire_server):
    """8.2.1 / 8.1.1 over a socket (h2spec http2/8.1.2/1): an uppercase field
    name gets RST_STREAM(PROTOCOL_ERROR) and the next request is served."""
    with wire_server.connect() as wire:
        wire.send(wire.request(1, extra=[(b"X-Upper", b"1")]))
        assert wire.wait(lambda: wire.ended(1))
        wire.send(wire.request(3))
        assert wire.wait(lambda: wire.ended(3))
        got = wire.take()
        assert got[0] == rst(1, PROTOCOL_ERROR)
        assert [f[:2] for f in got[1:]] == [("HEADERS", 3), ("DATA", 3)]


def test_wire_trailers_without_end_stream(wire_server):
    """8.1 over a socket (h2spec http2/8.1/1, with an application that reads
    the whole body first, so the answer cannot race the trailers)."""
    with wire_server.connect() as wire:
        wire.send(wire.request(1, b"/echo", b"POST", end_stream=False), data(1, b"test"))
        wire.send(headers(1, wire.encoder.encode([(b"x-test", b"ok")]), end_stream=False))
        assert wire.wait(lambda: wire.ended(1))
        wire.send(ping())
        assert wire.wait(lambda: wire.raw[-1].ftype == PING)
        assert [f for f in wire.take() if f[0] != "WINDOW_UPDATE"] == [
            rst(1, PROTOCOL_ERROR), ping_ack()
        ]  # fmt: skip


def test_wire_content_length_mismatch(wire_server):
    """8.1.1 over a socket (h2spec http2/8.1.2.6/2)."""
    with wire_server.connect() as wire:
        length = (b"content-length", b"10")
        wire.send(wire.request(1, b"/echo", b"POST", [length], end_stream=False))
        wire.send(data(1, b"test"), data(1, b"test", end_stream=True))
        assert wire.wait(lambda: wire.ended(1))
        assert [f for f in wire.take() if f[0] != "WINDOW_UPDATE"] == [rst(1, PROTOCOL_ERROR)]


def test_wire_response_fields_are_valid_http2(wire_server):
    """8.2 / 8.2.2 / 8.3.2 over a socket: whatever the application puts in its
    response head, the server sends :status first, lowercase names and no
    connection-specific field; 1xx responses and trailers likewise."""
    with wire_server.connect() as wire:
        wire.send(wire.request(1, b"/hop-by-hop"), wire.request(3, b"/early-hints"))
        wire.send(wire.request(5, b"/trailers"))
        assert wire.wait(lambda: all(wire.ended(s) for s in (1, 3, 5)))
        hop = wire.blocks(1)[0]
        assert hop[0] == (b":status", b"200")
        assert (b"x-mixed-case", b"Value") in hop
        assert not {n for n, _ in hop} & {
            b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade",
            b"te",
        }  # fmt: skip
        assert [b[0] for b in wire.blocks(3)] == [(b":status", b"103"), (b":status", b"200")]
        *_, trailer = wire.blocks(5)
        assert trailer == [(b"x-checksum", b"abc123"), (b"x-count", b"2")]
        for block in wire.blocks():
            names = [n for n, _ in block]
            assert all(n == n.lower() for n in names)
            pseudo = [n for n in names if n.startswith(b":")]
            assert pseudo in ([b":status"], []) and names[: len(pseudo)] == pseudo
        assert not any(f.ftype == GOAWAY for f in wire.raw)
