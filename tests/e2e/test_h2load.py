"""Smoke load with h2load: many streams on several connections, 0 failures."""

from __future__ import annotations

import pytest

from .util import h2load

REQUESTS = 2000


@pytest.fixture(scope="module")
def tls_srv(module_server):
    return module_server(tls=True, threads=8)


@pytest.fixture(scope="module")
def h2c_srv(module_server):
    return module_server(tls=False, threads=8)


def _check(result: dict[str, int], requests: int = REQUESTS) -> None:
    assert result["succeeded"] == requests, result
    assert result["2xx"] == requests, result
    assert result["failed"] == result["errored"] == result["timeout"] == 0, result


def test_h2load_tls(tls_srv):
    _check(h2load(tls_srv.url + "/hello", "-n", str(REQUESTS), "-c", "10", "-m", "10"))
    assert tls_srv.worker_pid() in tls_srv.worker_pids()


def test_h2load_h2c(h2c_srv):
    _check(h2load(h2c_srv.url + "/hello", "-n", str(REQUESTS), "-c", "10", "-m", "10"))


def test_h2load_http11(h2c_srv):
    _check(h2load(h2c_srv.url + "/hello", "--h1", "-n", str(REQUESTS), "-c", "10", "-m", "10"))


def test_h2load_http11_over_tls(tls_srv):
    _check(h2load(tls_srv.url + "/hello", "--h1", "-n", "500", "-c", "10", "-m", "1"), 500)


def test_h2load_post_bodies(h2c_srv, tmp_path):
    body = tmp_path / "body.bin"
    body.write_bytes(b"0123456789abcdef" * 4096)  # 64 KiB, one window per stream
    _check(
        h2load(h2c_srv.url + "/upload-count", "-d", str(body), "-n", "200", "-c", "4", "-m", "8"),
        200,
    )


def test_server_log_is_clean_after_load(tls_srv, h2c_srv):
    for srv in (tls_srv, h2c_srv):
        log = srv.log()
        assert "Traceback" not in log, log[-3000:]
        assert "[ERROR]" not in log, log[-3000:]
