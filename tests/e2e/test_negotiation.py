"""Which protocol a client gets: ALPN over TLS, prior knowledge and
``Upgrade: h2c`` over cleartext, and ``http_protocols`` switching HTTP/2 off."""

from __future__ import annotations

import socket
import ssl

import h2.events as h2e
import httpx
import pytest
from h2.config import H2Configuration
from h2.connection import H2Connection

from .util import (
    PREFACE,
    H2Client,
    curl_version_and_body,
    h1_exchange,
    h1_request,
    negotiated_alpn,
    run_tool,
)

HELLO = "Hello, world!\n"


@pytest.fixture(scope="module")
def tls_server(module_server):
    return module_server(tls=True)


@pytest.fixture(scope="module")
def h2c_server(module_server):
    return module_server(tls=False)


@pytest.fixture(scope="module")
def upgrade_server(module_server):
    """Cleartext with ``http2_cleartext = "both"`` from a config file (any Gunicorn)."""
    return module_server(tls=False, config_text='http2_cleartext = "both"\n')


@pytest.fixture(scope="module")
def h1_only_tls(module_server):
    return module_server(tls=True, config_text='http_protocols = "h1"\n')


@pytest.fixture(scope="module")
def h1_only_h2c(module_server):
    return module_server(tls=False, config_text='http_protocols = "h1"\n')


# -- TLS -------------------------------------------------------------------------


def test_httpx_negotiates_h2_over_tls(tls_server, tls_files):
    with httpx.Client(http2=True, verify=tls_files.client_context(alpn=None)) as client:
        response = client.get(tls_server.url + "/hello")
    assert response.status_code == 200
    assert response.http_version == "HTTP/2"
    assert response.text == HELLO


def test_curl_http2_and_http11_on_the_same_tls_port(tls_server, tls_files):
    url = tls_server.url + "/hello"
    assert curl_version_and_body(url, "--http2", ca=tls_files.ca) == ("2", HELLO)
    assert curl_version_and_body(url, "--http1.1", ca=tls_files.ca) == ("1.1", HELLO)


def test_tls_client_offering_only_http11_gets_http11(tls_server, tls_files):
    context = tls_files.client_context(alpn=["http/1.1"])
    assert negotiated_alpn(tls_server.port, context) == "http/1.1"
    response = h1_request(tls_server.port, "/hello", context=context)
    assert response.status == 200 and response.body == HELLO.encode()
    with httpx.Client(http2=False, verify=tls_files.client_context(alpn=None)) as client:
        assert client.get(tls_server.url + "/hello").http_version == "HTTP/1.1"


def test_tls_client_without_alpn_gets_http11(tls_server, tls_files):
    response = h1_request(tls_server.port, "/hello", context=tls_files.client_context(alpn=None))
    assert response.status == 200 and response.body == HELLO.encode()


# -- cleartext -----------------------------------------------------------------------


def test_h2c_prior_knowledge_with_curl(h2c_server):
    assert curl_version_and_body(h2c_server.url + "/hello", "--http2-prior-knowledge") == (
        "2",
        HELLO,
    )


def test_h2c_prior_knowledge_with_nghttp(h2c_server):
    out = run_tool(["nghttp", "-v", h2c_server.url + "/hello"], timeout=30)
    assert out.returncode == 0, out.stderr
    assert "recv SETTINGS frame" in out.stdout
    assert ":status: 200" in out.stdout
    assert HELLO.strip() in out.stdout


def test_plain_http11_on_the_cleartext_port(h2c_server):
    assert curl_version_and_body(h2c_server.url + "/hello", "--http1.1") == ("1.1", HELLO)
    response = h1_request(h2c_server.port, "/echo", "POST", body=b"x" * 100)
    assert response.status == 200 and response.body == b"x" * 100


def test_upgrade_h2c_is_not_honoured_by_default(h2c_server):
    """curl --http2 on http:// sends ``Upgrade: h2c``; the default answers HTTP/1.1."""
    assert curl_version_and_body(h2c_server.url + "/hello", "--http2") == ("1.1", HELLO)
    response = _raw_upgrade(h2c_server.port, b"GET", b"/hello", b"")
    assert response.startswith(b"HTTP/1.1 200"), response[:200]


def test_upgrade_h2c_honoured_with_config_file(upgrade_server):
    assert curl_version_and_body(upgrade_server.url + "/hello", "--http2") == ("2", HELLO)
    version, body = curl_version_and_body(
        upgrade_server.url + "/echo", "--http2", "--data-binary", "posted over h1"
    )
    assert (version, body) == ("2", "posted over h1")
    # prior knowledge still works with "both"
    assert curl_version_and_body(upgrade_server.url + "/hello", "--http2-prior-knowledge")[0] == "2"


def test_upgrade_h2c_post_body_becomes_stream_1(upgrade_server):
    """Raw RFC 7540 3.2 upgrade: 101, then stream 1 answers the HTTP/1.1 POST."""
    client = H2Connection(H2Configuration(client_side=True, header_encoding=None))
    settings = client.initiate_upgrade_connection()
    body = b"body carried into stream 1"
    request = (
        b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade, HTTP2-Settings\r\n"
        b"Upgrade: h2c\r\nHTTP2-Settings: " + settings + b"\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body) + body
    )
    with socket.create_connection(("127.0.0.1", upgrade_server.port), timeout=10) as sock:
        sock.sendall(request)
        buf = b""
        while b"\r\n\r\n" not in buf:
            piece = sock.recv(65536)
            assert piece, buf
            buf += piece
        head, _, rest = buf.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        sock.sendall(client.data_to_send())
        status, data, ended = None, b"", False
        events = client.receive_data(rest) if rest else []
        while True:
            for event in events:
                if isinstance(event, h2e.ResponseReceived):
                    status = dict(event.headers)[b":status"]
                    assert event.stream_id == 1
                elif isinstance(event, h2e.DataReceived):
                    data += event.data
                elif isinstance(event, h2e.StreamEnded):
                    ended = True
            if ended:
                break
            piece = sock.recv(65536)
            assert piece, "connection closed before stream 1 ended"
            events = client.receive_data(piece)
            sock.sendall(client.data_to_send())
    assert status == b"200"
    assert data == body


def test_upgrade_h2c_honoured_with_cli_flag(server, gunicorn_ver):
    if gunicorn_ver < (26, 2):
        pytest.skip("--http2-cleartext is a Gunicorn 26.2+ flag; the config file covers older")
    srv = server(tls=False, args=["--http2-cleartext", "both"])
    assert curl_version_and_body(srv.url + "/hello", "--http2") == ("2", HELLO)
    assert curl_version_and_body(srv.url + "/echo", "--http2", "--data-binary", "cli body") == (
        "2",
        "cli body",
    )


def test_upgrade_with_a_large_body_is_served_over_http11(upgrade_server):
    """A body the server would have to buffer whole (> 64 KiB) is not upgraded."""
    body = b"u" * 100_000
    raw = _raw_upgrade(upgrade_server.port, b"POST", b"/echo", body)
    assert raw.startswith(b"HTTP/1.1 200"), raw[:200]
    assert raw.endswith(body)


def test_upgrade_h2c_is_ignored_over_tls(module_server, tls_files):
    srv = module_server(tls=True, config_text='http2_cleartext = "both"\n')
    context = tls_files.client_context(alpn=["http/1.1"])
    raw = h1_exchange(srv.port, _upgrade_request(b"GET", b"/hello", b""), context)
    assert raw.startswith(b"HTTP/1.1 200"), raw[:200]
    assert raw.endswith(HELLO.encode())


def _upgrade_request(method: bytes, path: bytes, body: bytes) -> bytes:
    return (
        method + b" " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
        b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body) + body
    )


def _raw_upgrade(port: int, method: bytes, path: bytes, body: bytes) -> bytes:
    return h1_exchange(port, _upgrade_request(method, path, body))


# -- HTTP/2 switched off ------------------------------------------------------------


def test_http_protocols_h1_over_tls_picks_http11(h1_only_tls, tls_files):
    context = tls_files.client_context(alpn=["h2", "http/1.1"])
    assert negotiated_alpn(h1_only_tls.port, context) == "http/1.1"
    assert curl_version_and_body(h1_only_tls.url + "/hello", "--http2", ca=tls_files.ca) == (
        "1.1",
        HELLO,
    )


def test_http_protocols_h1_ignores_the_preface(h1_only_h2c):
    reply = h1_exchange(h1_only_h2c.port, PREFACE + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
    assert not reply.startswith(b"\x00"), "an HTTP/2 SETTINGS frame came back"
    assert reply == b"" or reply.startswith(b"HTTP/1.1 400"), reply[:200]
    assert curl_version_and_body(h1_only_h2c.url + "/hello", "--http2") == ("1.1", HELLO)


def test_http_protocols_h1_from_the_cli(server, tls_files, gunicorn_ver):
    if gunicorn_ver < (25,):
        pytest.skip("--http-protocols is a Gunicorn 25+ flag; the config file covers older")
    srv = server(tls=True, args=["--http-protocols", "h1"])
    context = tls_files.client_context(alpn=["h2", "http/1.1"])
    assert negotiated_alpn(srv.port, context) == "http/1.1"


def test_tls_h2_client_over_raw_socket(tls_server, tls_files):
    with H2Client(tls_server.port, tls_files.client_context(alpn=["h2"])) as client:
        response = client.get("/hello")
        assert response.status == 200 and bytes(response.data) == HELLO.encode()


def test_alpn_follows_the_server_preference(tls_server, tls_files):
    """``http_protocols`` defaults to h2,h1: h2 wins whatever the client's order."""
    context = ssl.create_default_context(cafile=str(tls_files.ca))
    context.set_alpn_protocols(["http/1.1", "h2"])
    assert negotiated_alpn(tls_server.port, context) == "h2"


def test_extended_connect_only_where_advertised(h2c_server, worker_class):
    """RFC 8441: AsgiH2 advertises SETTINGS_ENABLE_CONNECT_PROTOCOL (it serves
    WebSockets over HTTP/2); the WSGI workers do not, and a ``:protocol``
    there is an unknown pseudo-header: RST_STREAM(PROTOCOL_ERROR) on that
    stream only, the connection serves on."""
    from h2.errors import ErrorCodes
    from h2.settings import SettingCodes

    from tests.conftest import ASGI_WORKER

    with H2Client(h2c_server.port) as client:
        client.handshake()
        advertised = client.conn.remote_settings.get(SettingCodes.ENABLE_CONNECT_PROTOCOL, 0)
        assert advertised == (1 if worker_class == ASGI_WORKER else 0)
        if worker_class == ASGI_WORKER:
            return
        block = [(b":method", b"CONNECT"), (b":protocol", b"websocket"), (b":scheme", b"http"),
                 (b":path", b"/ws"), (b":authority", client.authority)]  # fmt: skip
        sid = client.request(block=block, end=False)
        client.wait(lambda: sid in client.resets(), what="RST_STREAM")
        assert client.resets()[sid] == ErrorCodes.PROTOCOL_ERROR
        assert client.get("/hello").status == 200
