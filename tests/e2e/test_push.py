"""Server push (PUSH_PROMISE) from WSGI (``gunicorn.http2.push``) and ASGI
(``http.response.push``) apps, and ``h2workers.preload``, which pushes or
sends 103 Early Hints, whichever the client can use."""

from __future__ import annotations

import h2.events as h2e
import pytest
from h2.errors import ErrorCodes
from h2.settings import SettingCodes

from tests.apps import HELLO, PRELOADED
from tests.conftest import ASGI_WORKER

from .util import H2Client, h1_exchange, h1_request, parse_h1

# -- server push (http.response.push) --------------------------------------------------


def _pushes(client):
    return [e for e in client.events if isinstance(e, h2e.PushedStreamReceived)]


@pytest.mark.parametrize("form", ["message", "call"])
def test_push_promises_and_the_app_serves_the_promised_streams(server, worker_class, form):
    if form == "call" and worker_class != ASGI_WORKER:
        pytest.skip("awaiting the extension is ASGI's form")
    srv = server(tls=False)
    with H2Client(srv.port) as client:
        page = client.request("/push" + ("?call=1" if form == "call" else ""))
        client.wait(lambda: len(_pushes(client)) == 2 and client.streams[page].done)
        assert client.streams[page].header(b"x-push-offered") == b"yes"
        promised = {dict(e.headers)[b":path"]: e for e in _pushes(client)}
        assert set(promised) == {b"/hello", b"/pieces?bytes=1000"}
        for event in promised.values():
            assert event.parent_stream_id == page and event.pushed_stream_id % 2 == 0
            headers = dict(event.headers)
            assert headers[b":method"] == b"GET" and headers[b"x-pushed"] == b"1"
            assert headers[b":authority"] == client.authority
            assert headers[b":scheme"] == b"http"
            sid = event.pushed_stream_id
            client.wait(lambda sid=sid: sid in client.streams and client.streams[sid].done)
            assert client.streams[sid].status == 200
        assert bytes(client.streams[promised[b"/hello"].pushed_stream_id].data) == HELLO
        assert len(client.streams[promised[b"/pieces?bytes=1000"].pushed_stream_id].data) == 1000


def test_no_push_when_the_client_disabled_it_or_over_http11(server):
    srv = server(tls=False)
    with H2Client(srv.port) as client:
        client.conn.update_settings({SettingCodes.ENABLE_PUSH: 0})
        client.flush()
        state = client.response(client.request("/push"))
        assert state.header(b"x-push-offered") == b"no" and not _pushes(client)
    assert h1_request(srv.port, "/push").header("x-push-offered") == "no"


def test_pushes_are_capped_per_request(server):
    from h2workers.session.session import PUSHES_PER_STREAM

    srv = server(tls=False)
    with H2Client(srv.port) as client:
        client.ignore_stream_limit()
        page = client.request(f"/push?n={PUSHES_PER_STREAM + 10}")
        client.wait(lambda: client.streams[page].done, what="the page")
        assert len(_pushes(client)) == PUSHES_PER_STREAM
        assert client.get("/hello").status == 200


def test_a_client_reset_of_a_promised_stream_costs_that_stream_only(server):
    srv = server(tls=False)
    with H2Client(srv.port, auto_ack=False) as client:
        page = client.request("/push?size=1000000")  # more than the stream window
        client.wait(lambda: len(_pushes(client)) == 2, what="the promises")
        big = next(e for e in _pushes(client) if dict(e.headers)[b":path"] != b"/hello")
        client.conn.reset_stream(big.pushed_stream_id, ErrorCodes.CANCEL)
        # what arrived so far still counts against the connection window
        taken = sum(len(state.data) for state in client.streams.values())
        if taken:
            client.conn.increment_flow_control_window(taken)
        client.flush()
        client.auto_ack = True
        client.wait(lambda: client.streams[page].done, what="the page")
        assert client.streams[page].status == 200
        assert not client.goaways() and client.get("/hello").status == 200


# -- h2workers.preload ----------------------------------------------------------


@pytest.mark.wsgi
def test_preload_pushes_what_it_can_and_hints_the_rest(server):
    srv = server(tls=False)
    with H2Client(srv.port) as client:
        page = client.get("/preload")
        assert page.header(b"x-preload") == b"early_hints"  # the cross-origin link
        (pushed,) = _pushes(client)
        assert dict(pushed.headers)[b":path"] == b"/hello"
        (hints,) = page.informational
        assert [v for n, v in hints if n == b"link"] == [PRELOADED[1].encode()]


@pytest.mark.wsgi
def test_preload_sends_early_hints_to_a_client_without_push(server):
    srv = server(tls=False)
    with H2Client(srv.port) as client:
        client.conn.update_settings({SettingCodes.ENABLE_PUSH: 0})
        client.flush()
        page = client.get("/preload")
        assert page.header(b"x-preload") == b"early_hints" and not _pushes(client)
        (hints,) = page.informational
        assert [v for n, v in hints if n == b"link"] == [link.encode() for link in PRELOADED]


@pytest.mark.wsgi
def test_preload_sends_early_hints_over_http11(server):
    srv = server(tls=False)
    request = b"GET /preload HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    hint, final = parse_h1(h1_exchange(srv.port, request))
    assert hint.status == 103
    assert [v for n, v in hint.headers if n.lower() == "link"] == PRELOADED
    assert final.header("x-preload") == "early_hints"
