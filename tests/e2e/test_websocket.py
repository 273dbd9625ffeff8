"""AsgiH2's WebSockets over HTTP/1.1 (RFC 6455), with the ``websockets``
library as the client: the handshake and subprotocol, text and binary
echo, fragmented and large messages, the size limit (1009), closes both
ways, the ``websocket.http.response`` denial, an app that raises (1011),
the access log, and the keep-alive ping."""

from __future__ import annotations

import json

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from h2workers.app.catalogue import EXTENSIONS, offered
from tests.conftest import ASGI_WORKER

from .util import h1_request, wait_for_file

pytestmark = pytest.mark.usefixtures("asgi_only")


@pytest.fixture
def asgi_only(worker_class):
    if worker_class != ASGI_WORKER:
        pytest.skip("WebSockets are AsgiH2's")


@pytest.fixture(scope="module")
def ws_srv(module_server, worker_class):
    if worker_class != ASGI_WORKER:
        pytest.skip("WebSockets are AsgiH2's")
    return module_server(
        tls=False,
        config_text="websocket_max_message_size = 2 * 1024 * 1024\n"
        "websocket_ping_interval = 0.5\nwebsocket_ping_timeout = 2\n",
    )


def _url(srv, path="/ws"):
    return f"ws://127.0.0.1:{srv.port}{path}"


def test_echo_text_and_binary_with_a_subprotocol(ws_srv):
    with connect(_url(ws_srv), subprotocols=["chat"], open_timeout=5) as ws:
        assert ws.subprotocol == "chat"
        assert ws.response.headers["x-ws"] == "yes"
        ws.send("hello")
        assert ws.recv(timeout=5) == "hello"
        ws.send(b"\x00\x01binary")
        assert ws.recv(timeout=5) == b"\x00\x01binary"
        ws.send(["frag", "mented"])  # one message in two frames
        assert ws.recv(timeout=5) == "fragmented"
        ws.send("scope")
        scope = json.loads(ws.recv(timeout=5))
    assert scope == {
        "scheme": "ws",
        "path": "/ws",
        "http_version": "1.1",
        "subprotocols": ["chat"],
        "extensions": sorted(
            offered(EXTENSIONS, h2=False, tls=False, push=False, scope="websocket")
        ),
    }


def test_large_messages_both_ways_and_the_size_limit(ws_srv):
    with connect(_url(ws_srv), open_timeout=5, max_size=4 * 1024 * 1024) as ws:
        ws.send("big")
        assert ws.recv(timeout=10) == b"b" * (1 << 20)
        payload = bytes(range(256)) * 4096  # 1 MiB, under the 2 MiB limit
        ws.send(payload)
        assert ws.recv(timeout=10) == payload
        ws.send(b"x" * (3 << 20))  # past it: closed with 1009
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


def test_the_app_closes_and_the_client_closes(ws_srv):
    with connect(_url(ws_srv), open_timeout=5) as ws:
        ws.send("close")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4000, "asked")
    with connect(_url(ws_srv, "/ws?id=bye"), open_timeout=5) as ws:
        ws.send("hi")
        ws.recv(timeout=5)
        ws.close(code=1001, reason="going away")
    assert wait_for_file(ws_srv.state_dir / "ws-disconnect-bye", timeout=5) == "1001"


def test_a_denial_is_an_http_response(ws_srv):
    with pytest.raises(InvalidStatus) as refused:
        connect(_url(ws_srv, "/ws?deny=1"), open_timeout=5)
    response = refused.value.response
    assert response.status_code == 401 and response.body == b"no entry\n"


def test_an_app_that_raises_closes_with_1011_and_the_worker_serves_on(ws_srv):
    with connect(_url(ws_srv), open_timeout=5) as ws:
        ws.send("raise")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
    assert closed.value.rcvd.code == 1011
    ws_srv.wait_for_log("raised in a WebSocket")
    assert h1_request(ws_srv.port, "/hello").status == 200


def test_keepalive_pings_are_sent_and_answered(ws_srv):
    """The server pings every 0.5 s here; the client's pongs keep it open."""
    with connect(_url(ws_srv), open_timeout=5, ping_interval=None) as ws:
        ws.send("hello")
        assert ws.recv(timeout=5) == "hello"
        with pytest.raises(TimeoutError):
            ws.recv(timeout=2.0)  # nothing but pings (answered by the library) meanwhile
        ws.send("still")
        assert ws.recv(timeout=5) == "still"


def test_a_client_that_never_answers_pings_is_closed_with_1011(ws_srv):
    """websocket_ping_timeout (2 s here): pings without a pong close the
    connection with 1011. A raw socket plays a client that stopped
    answering (the library would answer)."""
    import base64
    import os
    import socket

    key = base64.b64encode(os.urandom(16)).decode()
    with socket.create_connection(("127.0.0.1", ws_srv.port), timeout=10) as sock:
        sock.sendall(
            (
                f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(4096)
        head, _, frames = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 "), head
        opcodes, close_code = [], None
        while close_code is None:
            while len(frames) < 2 or len(frames) < 2 + (frames[1] & 0x7F):
                chunk = sock.recv(4096)
                assert chunk, f"closed without a close frame after {opcodes}"
                frames += chunk
            opcode, length = frames[0] & 0x0F, frames[1] & 0x7F  # short frames only
            payload, frames = frames[2 : 2 + length], frames[2 + length :]
            opcodes.append(opcode)
            if opcode == 0x8:
                close_code = int.from_bytes(payload[:2], "big")
    assert 0x9 in opcodes  # pinged first
    assert close_code == 1011


def test_a_plain_get_to_the_websocket_route_is_not_upgraded(ws_srv):
    """Without the handshake's headers it is an HTTP request: the app is
    called with a websocket scope only for a real handshake."""
    assert h1_request(ws_srv.port, "/hello").status == 200


# -- RFC 8441: WebSockets over HTTP/2 (a raw h2 client, wsproto framing) ------------


def _h2_websocket(srv, path="/ws", extra=()):
    from wsproto.connection import Connection, ConnectionType

    from .util import H2Client

    client = H2Client(srv.port)
    client.handshake()
    block = [(b":method", b"CONNECT"), (b":protocol", b"websocket"), (b":scheme", b"http"),
             (b":path", path.encode()), (b":authority", client.authority),
             (b"sec-websocket-version", b"13"), *extra]  # fmt: skip
    sid = client.request(block=block, end=False)
    return client, sid, Connection(ConnectionType.CLIENT)


def _messages(client, sid, ws, count, timeout=5.0):
    """The next ``count`` wsproto events the server sent on the stream."""
    from wsproto.events import BytesMessage, CloseConnection, TextMessage

    got = []

    def enough():
        seen = getattr(ws, "seen", 0)  # bytes of the stream already unframed
        data = bytes(client.streams[sid].data[seen:])
        ws.seen = seen + len(data)
        if data:
            ws.receive_data(data)
            got.extend(e for e in ws.events()
                       if isinstance(e, (TextMessage, BytesMessage, CloseConnection)))  # fmt: skip
        return len(got) >= count or client.streams[sid].done

    client.wait(enough, timeout=timeout, what="WebSocket messages")
    return got


def test_extended_connect_is_advertised_and_a_websocket_runs_over_a_stream(ws_srv):
    from h2.settings import SettingCodes
    from wsproto.events import BytesMessage, CloseConnection, TextMessage

    client, sid, ws = _h2_websocket(ws_srv, extra=[(b"sec-websocket-protocol", b"chat")])
    try:
        assert client.conn.remote_settings[SettingCodes.ENABLE_CONNECT_PROTOCOL] == 1
        client.wait(lambda: client.streams[sid].status is not None, what="the 200")
        assert client.streams[sid].status == 200
        assert client.streams[sid].header(b"sec-websocket-protocol") == b"chat"
        client.send_body(sid, ws.send(TextMessage(data="over h2")), end=False)
        client.send_body(sid, ws.send(BytesMessage(data=b"\x00\xff")), end=False)
        echoed = _messages(client, sid, ws, 2)
        assert [e.data for e in echoed] == ["over h2", b"\x00\xff"]
        client.send_body(sid, ws.send(TextMessage(data="close")), end=False)
        closed = _messages(client, sid, ws, 1)
        assert isinstance(closed[0], CloseConnection) and closed[0].code == 4000
        client.wait(lambda: client.streams[sid].ended, what="END_STREAM")
        assert client.get("/hello").status == 200  # the connection serves on
    finally:
        client.close()


def test_a_websocket_stream_reset_by_the_client_is_a_disconnect(ws_srv):
    from h2.errors import ErrorCodes
    from wsproto.events import TextMessage

    client, sid, ws = _h2_websocket(ws_srv, "/ws?id=h2reset")
    try:
        client.send_body(sid, ws.send(TextMessage(data="ping")), end=False)
        _messages(client, sid, ws, 1)
        client.conn.reset_stream(sid, ErrorCodes.CANCEL)
        client.flush()
        assert wait_for_file(ws_srv.state_dir / "ws-disconnect-h2reset", timeout=5)
    finally:
        client.close()


def test_extended_connect_denied_is_an_http_response_on_the_stream(ws_srv):
    client, sid, _ = _h2_websocket(ws_srv, "/ws?deny=1")
    try:
        state = client.response(sid)
        assert state.status == 401 and bytes(state.data) == b"no entry\n" and state.ended
    finally:
        client.close()
