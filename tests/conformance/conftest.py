"""Fixtures of the conformance suite: a real Gunicorn per transport."""

from __future__ import annotations

import pytest

from .util import WireServer


@pytest.fixture(scope="module", params=["h2c", "tls"])
def wire_server(request, module_server, tls_files) -> WireServer:
    """``gunicorn -k h2workers.GThreadH2 tests.conformance.app:app``,
    cleartext (prior knowledge) or TLS with ALPN h2; one of each per module."""
    tls = request.param == "tls"
    server = module_server(tls=tls, app="tests.conformance.app:app")
    context = tls_files.client_context(alpn=("h2",)) if tls else None
    return WireServer(request.param, server.port, context)
