"""FastAPI, Starlette and Quart apps, unchanged, on AsgiH2 over HTTP/2 and
HTTP/1.1 on one port (Django's ASGI handler runs ``test_realapps.py``'s
Django tests as the twin of its WSGI one).

What their users do most: a 50 MB ``FileResponse`` (pathsend in Starlette
and FastAPI), a 20 MiB multipart upload, a streamed response, a view that
raises (a 500, and the connection serves on).
"""

from __future__ import annotations

import hashlib

import pytest

from tests.apps import pieces_body
from tests.conftest import ASGI_WORKER
from tests.realapps.conftest import MIB, big_sha, downloaded
from tests.realapps.flask_app import BIG

FRAMEWORKS = {
    "fastapi": "tests.realapps.asgi_apps:fastapi_app",
    "starlette": "tests.realapps.asgi_apps:starlette_app",
    "quart": "tests.realapps.asgi_apps:quart_app",
}


@pytest.fixture(scope="module", params=list(FRAMEWORKS))
def srv(request, module_server, worker_class):
    if worker_class != ASGI_WORKER:
        pytest.skip("ASGI apps run on AsgiH2")
    server = module_server(app=FRAMEWORKS[request.param], args=["--timeout", "60"])
    server.framework = request.param
    return server


def test_file_response_50mb(srv, client):
    response, sha, size = downloaded(client, f"{srv.url}/file")
    assert response.status_code == 200
    assert (size, sha) == (BIG, big_sha())


def test_multipart_upload_20mib(srv, client):
    data = pieces_body(20 * MIB)
    response = client.post(
        f"{srv.url}/upload",
        files={"blob": ("blob.bin", data, "application/octet-stream")},
        data={"note": "twenty mebibytes"},
    )
    assert response.status_code == 200, response.text[:500]
    assert response.http_version == client.expected_version
    assert response.json() == {
        "files": {"blob": {"filename": "blob.bin", "size": len(data),
                           "sha256": hashlib.sha256(data).hexdigest()}},
        "form": {"note": "twenty mebibytes"},
    }  # fmt: skip


def test_streaming(srv, client):
    response = client.get(f"{srv.url}/stream?n=20000")
    assert response.status_code == 200
    assert response.text == "".join(f"line {i} of 20000\n" for i in range(20000))


def test_exception_is_a_500_and_the_connection_lives(srv, client):
    response = client.get(f"{srv.url}/boom")
    assert response.status_code == 500
    assert client.get(f"{srv.url}/hello").status_code == 200
    name = {"fastapi": "FastAPI"}.get(srv.framework, srv.framework.title())
    srv.wait_for_log(f"boom from a {name} view")


def test_the_seeds_push_examples_push_their_css_and_js(srv, tls_files):
    """FastAPI's (seed 003, unchanged) and Quart's: a PUSH_PROMISE for each
    asset, the assets served on the promised streams, then the page."""
    if srv.framework == "starlette":
        pytest.skip("the seeds push with FastAPI and Quart")
    import h2.events as h2e

    from tests.e2e.util import H2Client

    with H2Client(srv.port, tls_files.client_context(alpn=["h2"])) as client:
        page = client.request("/")
        pushes = lambda: [e for e in client.events if isinstance(e, h2e.PushedStreamReceived)]  # noqa: E731
        client.wait(lambda: len(pushes()) == 2 and client.streams[page].done, what="the page")
        assert client.streams[page].status == 200
        assert b"<html>" in bytes(client.streams[page].data).lower() or b"<!doctype" in bytes(
            client.streams[page].data
        ).lower()
        served = {}
        for event in pushes():
            sid = event.pushed_stream_id
            client.wait(lambda sid=sid: sid in client.streams and client.streams[sid].done)
            served[dict(event.headers)[b":path"]] = bytes(client.streams[sid].data)
    assert served == {b"/static/style.css": b"h1 { color: teal }\n",
                      b"/static/app.js": b"console.log('pushed')\n"}  # fmt: skip
