"""What the real-app suites share: an httpx client per protocol, the big file's digest."""

from __future__ import annotations

import functools
import hashlib

import httpx
import pytest

from tests.apps import pieces_body
from tests.realapps.flask_app import BIG

MIB = 1 << 20


@pytest.fixture(params=["HTTP/2", "HTTP/1.1"])
def client(request, tls_files):
    http2 = request.param == "HTTP/2"
    context = tls_files.client_context(alpn=None)
    with httpx.Client(http1=not http2, http2=http2, verify=context, timeout=120) as c:
        c.expected_version = request.param  # type: ignore[attr-defined]
        yield c


@functools.cache
def big_sha() -> str:
    return hashlib.sha256(pieces_body(BIG)).hexdigest()


def downloaded(client, url: str) -> tuple[httpx.Response, str, int]:
    with client.stream("GET", url) as response:
        digest, size = hashlib.sha256(), 0
        for piece in response.iter_raw():
            digest.update(piece)
            size += len(piece)
    assert response.http_version == client.expected_version
    return response, digest.hexdigest(), size
