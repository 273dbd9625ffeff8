"""What only AsgiH2 does: lifespan, ASGI 2 apps, the scope's extensions
(``tls``, ``http.response.priority``), ``http.disconnect`` while a response
streams. The rest of AsgiH2's behaviour runs in every other suite, against
the ASGI twin of the test app."""

from __future__ import annotations

import pytest
from h2.errors import ErrorCodes

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
