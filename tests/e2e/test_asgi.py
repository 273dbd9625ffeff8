"""What only AsgiH2 does: lifespan, ASGI 2 apps, the scope's extensions
(``tls``, ``http.response.priority``), ``http.disconnect`` while a response
streams. The rest of AsgiH2's behaviour runs in every other suite, against
the ASGI twin of the test app."""

from __future__ import annotations

import h2.events as h2e
import pytest
from h2.errors import ErrorCodes

from tests.apps import HELLO
from tests.conftest import ASGI_WORKER

from .util import H2Client, h1_request, wait_for_file


@pytest.fixture
def asgi(worker_class):
    if worker_class != ASGI_WORKER:
        pytest.skip("ASGI only")


@pytest.mark.usefixtures("asgi")
def test_a_failed_startup_stops_the_worker_with_the_apps_message(server):
    code, log = server.run_to_exit(app="tests.asgi_variants:failing_startup", timeout=30)
    assert code not in (None, 0), log[-2000:]
    assert "Application startup failed" in log and "the database is unreachable" in log
    assert "Worker failed to boot" in log  # the arbiter stops instead of respawning


@pytest.mark.usefixtures("asgi")
def test_an_asgi2_app_is_served(server):
    srv = server(tls=False, app="tests.asgi_variants:Asgi2App")
    with H2Client(srv.port) as client:
        assert bytes(client.get("/").data) == b"asgi2 2"
    assert h1_request(srv.port, "/").body == b"asgi2 1.1"


@pytest.mark.usefixtures("asgi")
def test_lifespan_state_reaches_every_scope_and_tls_shows_the_connection(server, tls_files):
    srv = server(tls=True)
    with H2Client(srv.port, tls_files.client_context(alpn=["h2"])) as client:
        scope = client.get("/scope").json()
    assert scope["state"] == {"started_by": "lifespan"}
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert {"http.response.trailers", "http.response.early_hint", "http.response.pathsend",
            "http.response.priority", "tls"} <= set(scope["extensions"])  # fmt: skip
    tls = scope["tls"]
    assert tls["tls_version"] in (0x0303, 0x0304) and isinstance(tls["cipher_suite"], int)
    assert tls["client_cert_chain"] == [] and tls["client_cert_name"] is None
    over_h1 = h1_request(srv.port, "/scope", context=tls_files.client_context(alpn=None))
    assert over_h1.json()["http_version"] == "1.1" and over_h1.json()["tls"] == tls


@pytest.mark.usefixtures("asgi")
def test_no_tls_extension_in_cleartext(server):
    srv = server(tls=False)
    with H2Client(srv.port) as client:
        scope = client.get("/scope").json()
    assert "tls" not in scope["extensions"] and scope["tls"] is None


@pytest.mark.usefixtures("asgi")
@pytest.mark.parametrize("protocol", ["h2", "http/1.1"])
def test_a_client_gone_mid_response_is_a_disconnect_and_a_failed_send(server, protocol):
    """The listening task gets ``http.disconnect``; the streaming one's send
    raises OSError (ASGI 2.4); the worker serves on."""
    srv = server(tls=False)
    if protocol == "h2":
        with H2Client(srv.port) as client:
            sid = client.request("/wait-disconnect?id=h2")
            client.wait(lambda: len(client.streams[sid].data) >= 10, what="some ticks")
            client.conn.reset_stream(sid, ErrorCodes.CANCEL)
            client.flush()
            wait_for_file(srv.state_dir / "disconnect-h2", timeout=5)
            wait_for_file(srv.state_dir / "send-failed-h2", timeout=5)
            assert client.get("/hello").status == 200
    else:
        import socket

        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
            sock.sendall(b"GET /wait-disconnect?id=h1 HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(100).startswith(b"HTTP/1.1 200")
        wait_for_file(srv.state_dir / "disconnect-h1", timeout=5)
        wait_for_file(srv.state_dir / "send-failed-h1", timeout=5)
    assert h1_request(srv.port, "/hello").status == 200


# -- server push (http.response.push) --------------------------------------------------


def _pushes(client):
    return [e for e in client.events if isinstance(e, h2e.PushedStreamReceived)]


@pytest.mark.usefixtures("asgi")
@pytest.mark.parametrize("form", ["message", "call"])
def test_push_promises_and_the_app_serves_the_promised_streams(server, form):
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
            sid = event.pushed_stream_id
            client.wait(lambda sid=sid: sid in client.streams and client.streams[sid].done)
            assert client.streams[sid].status == 200
        assert bytes(client.streams[promised[b"/hello"].pushed_stream_id].data) == HELLO
        assert len(client.streams[promised[b"/pieces?bytes=1000"].pushed_stream_id].data) == 1000


@pytest.mark.usefixtures("asgi")
def test_no_push_when_the_client_disabled_it_or_over_http11(server):
    from h2.settings import SettingCodes

    srv = server(tls=False)
    with H2Client(srv.port) as client:
        client.conn.update_settings({SettingCodes.ENABLE_PUSH: 0})
        client.flush()
        state = client.response(client.request("/push"))
        assert state.header(b"x-push-offered") == b"no" and not _pushes(client)
    assert h1_request(srv.port, "/push").header("x-push-offered") == "no"


@pytest.mark.usefixtures("asgi")
def test_pushes_are_capped_per_request(server):
    from h2workers.session.session import PUSHES_PER_STREAM

    srv = server(tls=False)
    with H2Client(srv.port) as client:
        client.ignore_stream_limit()
        page = client.request(f"/push?n={PUSHES_PER_STREAM + 10}")
        client.wait(lambda: client.streams[page].done, what="the page")
        assert len(_pushes(client)) == PUSHES_PER_STREAM
        assert client.get("/hello").status == 200


@pytest.mark.usefixtures("asgi")
def test_a_client_reset_of_a_promised_stream_costs_that_stream_only(server):
    srv = server(tls=False)
    with H2Client(srv.port, auto_ack=False) as client:
        page = client.request("/push")
        client.wait(lambda: len(_pushes(client)) == 2, what="the promises")
        for event in _pushes(client):
            client.conn.reset_stream(event.pushed_stream_id, ErrorCodes.CANCEL)
        client.flush()
        client.auto_ack = True
        client.wait(lambda: client.streams[page].done, what="the page")
        assert client.streams[page].status == 200
        assert not client.goaways() and client.get("/hello").status == 200
