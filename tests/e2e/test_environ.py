"""The WSGI environ of an HTTP/2 request: what HTTP/1.1 would give for the
same request, by Gunicorn's own rules for forwarded and underscore headers."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.frames import priority_update

from .util import H2Client, h1_request

# Keys that differ between the protocols by nature.
PROTOCOL_SPECIFIC = {
    "SERVER_PROTOCOL",
    "HTTP_VERSION",
    "REMOTE_PORT",
    "HTTP_CONNECTION",
    "gunicorn.http2.priority_weight",
    "gunicorn.http2.priority_depends_on",
    "h2workers.priority",
}
PATHS = [
    "/environ",
    "/environ?",
    "/environ/a%20b/c%2Fd?x=1&y=%20z&x=2",
    "/environ/%E2%82%AC/caf%C3%A9?q=%E2%82%AC&empty=",
    "/environ//double//slashes/?a=b?c",
    "/environ/semi;colon/./dot/../x?k",
    "/environ/plus+sign?a+b=c+d",
]


@pytest.fixture(scope="module")
def tls_srv(module_server):
    return module_server(tls=True)


@pytest.fixture(scope="module")
def trusted_h2c(module_server):
    """127.0.0.1 is in the default forwarded_allow_ips."""
    return module_server(tls=False)


@pytest.fixture(scope="module")
def untrusted_h2c(module_server):
    return module_server(tls=False, args=["--forwarded-allow-ips", "10.9.9.9"])


def _h2_environ(srv, path, headers=(), context=None, **kwargs):
    with H2Client(srv.port, context) as client:
        response = client.get(path, headers=headers, **kwargs)
        assert response.status == 200, bytes(response.data)
        return response.json()


def _h1_environ(srv, path, headers=(), context=None):
    response = h1_request(srv.port, path, headers=headers, context=context)
    assert response.status == 200, response.raw[:300]
    return response.json()


def _comparable(environ: dict) -> dict:
    return {k: v for k, v in environ.items() if k not in PROTOCOL_SPECIFIC}


def test_environ_over_tls(tls_srv, tls_files):
    with httpx.Client(http2=True, verify=tls_files.client_context(alpn=None)) as client:
        response = client.get(tls_srv.url + "/environ?a=1")
    assert response.http_version == "HTTP/2"
    environ = response.json()
    assert environ["SERVER_PROTOCOL"] == "HTTP/2.0"
    assert environ["HTTP_HOST"] == f"127.0.0.1:{tls_srv.port}"
    assert environ["wsgi.url_scheme"] == "https"
    assert environ["REMOTE_ADDR"] == "127.0.0.1"
    assert environ["REQUEST_METHOD"] == "GET"
    assert environ["PATH_INFO"] == "/environ"
    assert environ["QUERY_STRING"] == "a=1"
    assert environ["SCRIPT_NAME"] == ""


def test_environ_over_h2c(trusted_h2c):
    environ = _h2_environ(trusted_h2c, "/environ", [("x-custom", "yes")])
    assert environ["SERVER_PROTOCOL"] == "HTTP/2.0"
    assert environ["wsgi.url_scheme"] == "http"
    assert environ["REMOTE_ADDR"] == "127.0.0.1"
    assert environ["HTTP_HOST"] == f"127.0.0.1:{trusted_h2c.port}"
    assert environ["HTTP_X_CUSTOM"] == "yes"


def test_host_comes_from_authority(trusted_h2c):
    with H2Client(trusted_h2c.port) as client:
        block = [
            (b":method", b"GET"),
            (b":scheme", b"http"),
            (b":authority", b"example.test:8443"),
            (b":path", b"/environ"),
        ]
        environ = client.get(block=block).json()
    assert environ["HTTP_HOST"] == "example.test:8443"


@pytest.mark.parametrize("path", PATHS)
def test_same_environ_as_http11_over_tls(tls_srv, tls_files, path):
    headers = [("X-Custom", "value 1"), ("Accept", "*/*"), ("Cookie", "a=b")]
    h2 = _h2_environ(tls_srv, path, [(k.lower(), v) for k, v in headers],
                     tls_files.client_context(alpn=["h2"]))  # fmt: skip
    h1 = _h1_environ(tls_srv, path, headers, tls_files.client_context(alpn=["http/1.1"]))
    assert h2["SERVER_PROTOCOL"] == "HTTP/2.0" and h1["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert _comparable(h2) == _comparable(h1)


@pytest.mark.parametrize("path", PATHS[:3])
def test_same_environ_as_http11_over_h2c(trusted_h2c, path):
    h2 = _h2_environ(trusted_h2c, path)
    h1 = _h1_environ(trusted_h2c, path)
    assert _comparable(h2) == _comparable(h1)


def test_same_body_headers_as_http11(trusted_h2c):
    body = b"a=1&b=2"
    headers = [("content-type", "application/x-www-form-urlencoded")]
    with H2Client(trusted_h2c.port) as client:
        response = client.get(
            "/environ?read=1",
            method="POST",
            headers=[*headers, ("content-length", str(len(body)))],
            body=body,
        )
        h2 = response.json()
    h1 = h1_request(trusted_h2c.port, "/environ?read=1", "POST", headers, body=body).json()
    assert h2["CONTENT_TYPE"] == h1["CONTENT_TYPE"] == "application/x-www-form-urlencoded"
    assert h2["CONTENT_LENGTH"] == h1["CONTENT_LENGTH"] == "7"
    assert h2["body_length"] == h1["body_length"] == 7
    assert _comparable(h2) == _comparable(h1)


# -- forged headers ------------------------------------------------------------------


def test_forwarded_proto_from_untrusted_peer_is_ignored(untrusted_h2c):
    forged = [("x-forwarded-proto", "https"), ("x-forwarded-ssl", "on")]
    h2 = _h2_environ(untrusted_h2c, "/environ", forged)
    h1 = _h1_environ(untrusted_h2c, "/environ", forged)
    assert h2["wsgi.url_scheme"] == "http"
    assert h1["wsgi.url_scheme"] == "http"
    assert _comparable(h2) == _comparable(h1)


def test_https_scheme_pseudo_header_from_untrusted_peer_is_ignored(untrusted_h2c):
    with H2Client(untrusted_h2c.port) as client:
        block = [
            (b":method", b"GET"),
            (b":scheme", b"https"),
            (b":authority", b"127.0.0.1"),
            (b":path", b"/environ"),
        ]
        assert client.get(block=block).json()["wsgi.url_scheme"] == "http"


def test_forwarded_proto_from_trusted_peer_counts(trusted_h2c):
    """The positive control: the same header from a trusted peer is honoured."""
    forged = [("x-forwarded-proto", "https")]
    assert _h2_environ(trusted_h2c, "/environ", forged)["wsgi.url_scheme"] == "https"
    assert _h1_environ(trusted_h2c, "/environ", forged)["wsgi.url_scheme"] == "https"


def test_underscore_headers_are_dropped(untrusted_h2c):
    forged = [("x_forwarded_for", "6.6.6.6"), ("script_name", "/evil"), ("x-real", "kept")]
    for environ in (
        _h2_environ(untrusted_h2c, "/environ", forged),
        _h1_environ(untrusted_h2c, "/environ", forged),
    ):
        assert environ["SCRIPT_NAME"] == ""
        assert environ["PATH_INFO"] == "/environ"
        assert "HTTP_X_FORWARDED_FOR" not in environ
        assert "HTTP_SCRIPT_NAME" not in environ
        assert environ["HTTP_X_REAL"] == "kept"
        assert "6.6.6.6" not in json.dumps(environ)


def test_underscore_headers_from_trusted_peer_like_http11(trusted_h2c):
    headers = [("script_name", "/environ"), ("x_other", "1")]
    h2 = _h2_environ(trusted_h2c, "/environ/environ", headers)
    h1 = _h1_environ(trusted_h2c, "/environ/environ", headers)
    assert (h2["SCRIPT_NAME"], h2["PATH_INFO"]) == (h1["SCRIPT_NAME"], h1["PATH_INFO"])
    assert _comparable(h2) == _comparable(h1)


# -- priority ------------------------------------------------------------------------


def test_priority_defaults(trusted_h2c):
    environ = _h2_environ(trusted_h2c, "/environ")
    assert environ["gunicorn.http2.priority_weight"] == 16
    assert environ["gunicorn.http2.priority_depends_on"] == 0
    assert environ["h2workers.priority"] == {"urgency": 3, "incremental": False}


def test_rfc9218_priority_header(trusted_h2c):
    with H2Client(trusted_h2c.port) as client:
        environ = client.get("/environ", headers=[("priority", "u=1, i")]).json()
    assert environ["h2workers.priority"] == {"urgency": 1, "incremental": True}


def test_priority_update_during_request_body(trusted_h2c):
    """A PRIORITY_UPDATE (RFC 9218 7.1) for a stream already running reaches the app."""
    with H2Client(trusted_h2c.port) as client:
        sid = client.request("/environ?read=1&hint=1", "POST", end=False)
        client.wait(lambda: bool(client.streams[sid].informational), what="103 from the app")
        client.send_raw(priority_update(sid, b"u=0"))
        client.send_body(sid, b"body", end=True)
        environ = client.response(sid).json()
    assert environ["h2workers.priority"] == {"urgency": 0, "incremental": False}
    assert environ["gunicorn.http2.priority_weight"] == 16


def test_priority_from_headers_frame(trusted_h2c):
    with H2Client(trusted_h2c.port) as client:
        assert client.get("/hello").status == 200  # stream 1
        environ = client.get(
            "/environ", priority_weight=200, priority_depends_on=1, priority_exclusive=False
        ).json()
    assert environ["gunicorn.http2.priority_weight"] == 200
    assert environ["gunicorn.http2.priority_depends_on"] == 1


def test_priority_frame_before_headers(trusted_h2c):
    """PRIORITY for a stream not opened yet (RFC 9113 5.3.4) applies when it opens."""
    with H2Client(trusted_h2c.port) as client:
        client.handshake()
        client.conn.prioritize(3, weight=42, depends_on=1)
        client.flush()
        assert client.get("/hello").status == 200  # stream 1
        environ = client.get("/environ", stream_id=3).json()
    assert environ["gunicorn.http2.priority_weight"] == 42
    assert environ["gunicorn.http2.priority_depends_on"] == 1


def test_priority_frame_during_request_body(trusted_h2c):
    """PRIORITY after HEADERS, before END_STREAM: the app sees it once it has
    read the body. The app signals it is running (103) before the frame is sent."""
    with H2Client(trusted_h2c.port) as client:
        assert client.get("/hello").status == 200  # stream 1
        sid = client.request("/environ?read=1&hint=1", "POST", end=False)
        client.wait(lambda: bool(client.streams[sid].informational), what="103 from the app")
        client.conn.prioritize(sid, weight=77, depends_on=1)
        client.flush()
        client.send_body(sid, b"body after priority", end=True)
        environ = client.response(sid).json()
    assert environ["body_length"] == len(b"body after priority")
    assert environ["gunicorn.http2.priority_weight"] == 77
    assert environ["gunicorn.http2.priority_depends_on"] == 1
