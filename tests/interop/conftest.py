"""Servers and clients for the interop suite.

Every worker class in ``tests.conftest.WORKERS`` (through ``module_server``)
and transport gets one server per module: TLS with ALPN, and h2c prior
knowledge. A new driver joins the matrix by being added there.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.apps import pieces_body
from tests.conftest import Server, ServerFactory

TRANSPORTS = ["tls", "h2c"]
APP = "tests.interop.app:app"


@pytest.fixture(scope="module", params=TRANSPORTS)
def srv(request: pytest.FixtureRequest, module_server: ServerFactory) -> Server:
    return module_server(
        tls=request.param == "tls", app=APP, threads=8,
        args=["--access-logfile", "-", "--timeout", "60"],
    )  # fmt: skip


@pytest.fixture(scope="session")
def payloads(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """Upload bodies by size, written once (the same bytes /pieces serves)."""
    directory = tmp_path_factory.mktemp("payloads")
    files = {}
    for size in (1, 1 << 20, 16 << 20, 100 << 20):
        path = directory / f"body-{size}.bin"
        path.write_bytes(pieces_body(size))
        files[size] = path
    return files
