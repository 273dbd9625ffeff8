"""The compose demo's topology, without Docker: Debian's HAProxy terminating
TLS and speaking h2 to two Gunicorn replicas (GThreadH2 with the WSGI app,
AsgiH2 with the ASGI app), from the same ``haproxy.cfg`` the compose file
mounts. The frame script passes through it, and a replica stopped mid-run
loses no request. ``docker-compose.yml`` itself is checked with Debian's
``docker-compose config`` (no Docker engine runs here)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ASGI_WORKER, REPO, ServerFactory, free_port

from .test_http2_features import EXAMPLE, SCRIPT, summary_rows

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"


@pytest.fixture(scope="module")
def replicas(tls_files, tmp_path_factory) -> Iterator[ServerFactory]:
    factory = ServerFactory(tls_files, tmp_path_factory.mktemp("replicas"))
    try:
        yield factory
    finally:
        factory.stop_all()


def start_replicas(factory: ServerFactory) -> tuple:
    args = ["--pythonpath", str(EXAMPLE)]
    gthread = factory(
        worker="h2workers.GThreadH2", tls=False, args=args, app="wsgi_app:app", threads=16
    )
    asgi = factory(worker=ASGI_WORKER, tls=False, args=args, app="asgi_app:app")
    return gthread, asgi


class Proxy:
    """HAProxy on a free port, run in the foreground; stopped by ``stop``."""

    def __init__(self, tls_files, workdir: Path, gthread_port: int, asgi_port: int) -> None:
        if not os.path.exists(HAPROXY):
            pytest.fail("haproxy is not installed (.ci/run installs Debian's)")
        cert = workdir / "site.pem"  # HAProxy finds the key beside it, as site.pem.key
        shutil.copy(tls_files.cert, cert)
        shutil.copy(tls_files.key, workdir / "site.pem.key")
        self.port = free_port()
        env = dict(
            os.environ,
            H2W_BIND=f"127.0.0.1:{self.port}",
            H2W_CERT=str(cert),
            H2W_GTHREAD=f"127.0.0.1:{gthread_port}",
            H2W_ASGI=f"127.0.0.1:{asgi_port}",
        )
        self.log_path = workdir / "haproxy.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [HAPROXY, "-db", "-f", str(EXAMPLE / "haproxy.cfg")],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        self._wait_ready(tls_files)

    def _wait_ready(self, tls_files) -> None:
        """Until a request through the proxy reaches a replica."""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log()
            try:
                response = httpx.get(
                    f"https://127.0.0.1:{self.port}/health",
                    verify=tls_files.client_context(),
                    timeout=2,
                )
                if response.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"haproxy did not come up:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture
def topology(replicas, tls_files, tmp_path) -> Iterator[tuple]:
    gthread, asgi = start_replicas(replicas)
    proxy = Proxy(tls_files, tmp_path, gthread.port, asgi.port)
    try:
        yield proxy, gthread, asgi
    finally:
        proxy.stop()
        gthread.stop()
        asgi.stop()


def test_compose_file_is_valid():
    compose = shutil.which("docker-compose")
    if compose is None:
        pytest.fail("docker-compose is not installed (.ci/run installs Debian's)")
    done = subprocess.run(
        [compose, "-f", str(REPO / "docker-compose.yml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    services = subprocess.run(
        [compose, "-f", str(REPO / "docker-compose.yml"), "config", "--services"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    ).stdout.split()
    assert sorted(services) == ["asgi", "frames", "gthread", "haproxy"]


def test_frame_script_through_haproxy(topology, tls_files):
    proxy, _, _ = topology
    command = [sys.executable, str(SCRIPT), f"https://127.0.0.1:{proxy.port}/"]
    done = subprocess.run(
        [*command, "--timeout", "30", "--cafile", str(tls_files.ca)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]
    rows = summary_rows(out)
    assert all(status == "200" for status, _ in rows.values()), rows
    # HAProxy takes no push from its servers: the page's links come as 103
    assert "PUSH_PROMISE" not in out and rows["/"][1].strip() == "(after a 103)"
    assert "x-sha256=" in rows["/checksum"][1]  # trailers pass through
    log = proxy.log()
    assert "replicas/gthread" in log and "replicas/asgi" in log  # both served


def test_a_replica_stopped_mid_run_loses_no_request(topology, tls_files):
    proxy, gthread, _ = topology
    url = f"https://127.0.0.1:{proxy.port}"
    failures: list[str] = []
    served = {"before": 0, "after": 0}
    stopped = threading.Event()
    finish = time.monotonic() + 6.0

    def load(path: str) -> None:
        context = tls_files.client_context()
        with httpx.Client(http2=True, verify=context, timeout=10) as client:
            while time.monotonic() < finish:
                phase = "after" if stopped.is_set() else "before"
                try:
                    response = client.get(url + path)
                except httpx.HTTPError as exc:
                    failures.append(f"{path}: {exc!r}")
                    continue
                if response.status_code != 200:
                    failures.append(f"{path}: {response.status_code}")
                served[phase] += 1

    paths = ["/slow?ms=50", "/", "/priority"] * 2
    clients = [threading.Thread(target=load, args=(path,)) for path in paths]
    for thread in clients:
        thread.start()
    time.sleep(2.0)
    gthread.stop()  # SIGTERM: graceful, GOAWAY to the proxy's connections
    stopped.set()
    for thread in clients:
        thread.join(30)
    assert not failures, failures[:10]
    assert served["before"] > 20 and served["after"] > 20, served
