"""The names an app gets are the ones the reference documents.

``h2workers/app/catalogue.py`` is the table the reference page
(docs/reference/app.md) is generated from; here real requests on every
worker class, over HTTP/2 (TLS and h2c, with and without push) and
HTTP/1.1, get exactly the environ keys or ASGI extensions it lists."""

from __future__ import annotations

import pytest
from h2.settings import SettingCodes

from h2workers.app.catalogue import ENVIRON, EXTENSIONS, offered
from tests.conftest import ASGI_WORKER

from .util import H2Client, h1_request


@pytest.fixture(scope="module")
def tls_srv(module_server):
    return module_server(tls=True)


@pytest.fixture(scope="module")
def h2c_srv(module_server):
    return module_server(tls=False)


def _catalogue(worker_class):
    return EXTENSIONS if worker_class == ASGI_WORKER else ENVIRON


def _shown(names: list[str], worker_class: str) -> set[str]:
    if worker_class == ASGI_WORKER:
        return set(names)  # the extensions
    # the environ: the keys of WSGI, Gunicorn and h2workers, not CGI's
    return {n for n in names if n.split(".")[0] in ("wsgi", "gunicorn", "h2workers")}


def _h2_names(srv, context=None, push=True):
    with H2Client(srv.port, context) as client:
        if not push:
            client.conn.update_settings({SettingCodes.ENABLE_PUSH: 0})
        response = client.get("/names")
        assert response.status == 200, bytes(response.data)
        return response.json()


@pytest.mark.parametrize("push", [True, False], ids=["push", "no-push"])
def test_http2_over_tls(tls_srv, tls_files, worker_class, push):
    names = _h2_names(tls_srv, tls_files.client_context(alpn=["h2"]), push)
    expected = offered(_catalogue(worker_class), h2=True, tls=True, push=push)
    assert _shown(names, worker_class) == expected


@pytest.mark.parametrize("push", [True, False], ids=["push", "no-push"])
def test_http2_cleartext(h2c_srv, worker_class, push):
    expected = offered(_catalogue(worker_class), h2=True, tls=False, push=push)
    assert _shown(_h2_names(h2c_srv, push=push), worker_class) == expected


def test_http11_over_tls(tls_srv, tls_files, worker_class):
    response = h1_request(tls_srv.port, "/names", context=tls_files.client_context(alpn=None))
    expected = offered(_catalogue(worker_class), h2=False, tls=True, push=False)
    assert _shown(response.json(), worker_class) == expected


def test_http11_cleartext(h2c_srv, worker_class):
    response = h1_request(h2c_srv.port, "/names")
    expected = offered(_catalogue(worker_class), h2=False, tls=False, push=False)
    assert _shown(response.json(), worker_class) == expected
