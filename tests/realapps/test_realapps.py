"""Flask and Django apps, unchanged, over HTTP/2 and HTTP/1.1 on one port.

What their users do most: Flask ``send_file`` of 50 MB (``wsgi.file_wrapper``
in 8 KiB blocks: the first round stalled it after 1 MiB), a 20 MiB multipart
upload, a streamed response, redirects built from the request's scheme and
host, cookies, a view that raises; Django ``FileResponse``,
``StreamingHttpResponse`` and a CSRF-protected form POST over HTTPS.
"""

from __future__ import annotations

import hashlib
import re

import pytest

from tests.apps import pieces_body
from tests.realapps.conftest import MIB, big_sha, downloaded
from tests.realapps.flask_app import BIG


@pytest.fixture(scope="module")
def flask_srv(module_server):  # one per worker class (see tests.conftest.WORKERS)
    return module_server(app="tests.realapps.flask_app:app", threads=8, args=["--timeout", "60"])


@pytest.fixture(scope="module")
def django_srv(module_server):
    return module_server(app="tests.realapps.django_app:application", threads=8,
                         args=["--timeout", "60"])  # fmt: skip


# -- Flask ---------------------------------------------------------------------------


def test_flask_send_file_50mb(flask_srv, client):
    response, sha, size = downloaded(client, f"{flask_srv.url}/file")
    assert response.status_code == 200
    assert (size, sha) == (BIG, big_sha())


def test_flask_multipart_upload_20mib(flask_srv, client):
    data = pieces_body(20 * MIB)
    response = client.post(
        f"{flask_srv.url}/upload",
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


def test_flask_streaming(flask_srv, client):
    response = client.get(f"{flask_srv.url}/stream?n=20000")
    assert response.status_code == 200
    assert response.text == "".join(f"line {i} of 20000\n" for i in range(20000))


def test_flask_redirect_keeps_scheme_and_host(flask_srv, client):
    response = client.get(f"{flask_srv.url}/redirect", follow_redirects=True)
    assert response.status_code == 200
    assert [r.status_code for r in response.history] == [302]
    host = f"127.0.0.1:{flask_srv.port}"
    assert response.json() == {"scheme": "https", "host": host, "url": f"https://{host}/landing"}


def test_flask_cookies_round_trip(flask_srv, client):
    response = client.get(f"{flask_srv.url}/cookie/set")
    assert response.status_code == 200
    assert len(response.headers.get_list("set-cookie")) == 2  # two fields, not folded
    assert client.get(f"{flask_srv.url}/cookie/get").json() == {
        "flavour": "oatmeal",
        "size": "large",
    }


def test_flask_exception_is_a_500_and_the_connection_lives(flask_srv, client):
    seen = len(flask_srv.log())
    response = client.get(f"{flask_srv.url}/boom")
    assert response.status_code == 500
    assert client.get(f"{flask_srv.url}/landing").status_code == 200
    log = flask_srv.wait_for_log("boom from a Flask view")
    assert "boom from a Flask view" in log[seen:]


# -- Django ---------------------------------------------------------------------------


def test_django_file_response(django_srv, client):
    response, sha, size = downloaded(client, f"{django_srv.url}/file")
    assert response.status_code == 200
    assert (size, sha) == (BIG, big_sha())


def test_django_streaming_http_response(django_srv, client):
    response = client.get(f"{django_srv.url}/stream?n=50000")
    assert response.status_code == 200
    assert response.text == "".join(f"row {i}\n" for i in range(50000))


def test_django_csrf_form_post(django_srv, client):
    url = f"{django_srv.url}/form"
    origin = {"Origin": django_srv.url, "Referer": url}
    refused = client.post(url, data={"name": "x"}, headers=origin)  # no token, no cookie
    assert refused.status_code == 403
    page = client.get(url)
    assert page.status_code == 200
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)[1]
    accepted = client.post(url, data={"name": "ada", "csrfmiddlewaretoken": token}, headers=origin)
    assert accepted.status_code == 200, accepted.text[:500]
    assert accepted.json() == {"name": "ada", "secure": True}


def test_logs_are_clean(flask_srv, django_srv):
    for srv in (flask_srv, django_srv):
        log = srv.log()
        assert "WORKER TIMEOUT" not in log
        # Only the deliberate Flask exception may leave a traceback.
        assert log.count("Traceback") == log.count("Exception on /boom [GET]"), log[-3000:]
