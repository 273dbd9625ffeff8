"""Server definitions and process handling: TLS cert, start, readiness, stop.

Every server runs as its own process group (``start_new_session``) so that a
master and its workers are stopped together: SIGTERM to the master first, a
bounded wait, then SIGKILL to whatever is left of the group it started.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .apps import HELLO
from .loadgen import H2LOAD, H2loadResult, run_h2load

REPO = Path(__file__).resolve().parent.parent
TASKSET = shutil.which("taskset")
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
GUNICORN_COMMON = ["--log-level", "warning", "--graceful-timeout", "5", "--timeout", "120"]
# The idle scenario: room for 2000 connections, idle ones kept for 60 s (Gunicorn's
# default keep-alive is 2 s, Hypercorn's 5 s) and a listen backlog that takes a burst of
# connects (Hypercorn's default is 100; Gunicorn's is 2048 already).
IDLE_GUNICORN = ["--keep-alive", "60"]  # and --worker-connections, see idle_gunicorn()
IDLE_HYPERCORN = ["--keep-alive", "60", "--backlog", "2048"]


def idle_gunicorn(conns: int) -> list[str]:
    """Room for ``conns`` idle connections and the extra request (2,000 at least,
    as before), and a listen backlog that holds a burst of that many."""
    room = max(2000, conns + 100)
    return ["--worker-connections", str(room), "--backlog", str(room)]


class StartError(Exception):
    """The server did not come up; the message says why."""


@dataclass(frozen=True)
class TLSFiles:
    certfile: Path
    keyfile: Path
    how: str


def make_cert(directory: Path) -> TLSFiles:
    """A throwaway cert for 127.0.0.1/localhost: ``trustme`` if installed, else openssl."""
    certfile, keyfile = directory / "cert.pem", directory / "key.pem"
    if importlib.util.find_spec("trustme") is not None:
        import trustme

        ca = trustme.CA()
        leaf = ca.issue_cert("127.0.0.1", "localhost")
        leaf.private_key_pem.write_to_path(str(keyfile))
        leaf.cert_chain_pems[0].write_to_path(str(certfile))
        return TLSFiles(certfile, keyfile, "trustme")
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("need trustme (pip install trustme) or the openssl command")
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout", str(keyfile), "-out", str(certfile),
        ],
        check=True,
        capture_output=True,
    )
    return TLSFiles(certfile, keyfile, "openssl")


def free_port() -> int:
    """A port the kernel says is free right now on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def pinned(cmd: list[str], core: int | None) -> list[str]:
    """Prefix ``cmd`` with ``taskset -c core`` when both are available."""
    if core is None or TASKSET is None:
        return cmd
    return [TASKSET, "-c", str(core), *cmd]


@dataclass(frozen=True)
class Launch:
    """How to start one server for one scenario."""

    server: str
    app: str  # "hello" or "bodies"
    tls: TLSFiles | None
    port: int
    workdir: Path
    hold_idle: int = 0  # idle connections to hold (the ``idle`` scenario), 0: none


@dataclass(frozen=True)
class ServerSpec:
    """A benchmarked server. ``h1`` servers are driven with ``h2load --h1``."""

    name: str
    kind: str  # "gunicorn", "hypercorn", "ceiling"
    worker: str = ""
    h1: bool = False
    asgi: bool = False
    needs: str = ""  # module that must be importable
    about: str = ""
    config: str = ""  # gunicorn.conf.py text (h2workers' config-file-only settings)

    def missing(self) -> str | None:
        """Why this server cannot run here, or None."""
        if self.needs and importlib.util.find_spec(self.needs) is None:
            return f"{self.needs} not installed; pip install -r bench/requirements.txt"
        return None

    def command(self, launch: Launch) -> list[str]:
        bind = f"127.0.0.1:{launch.port}"
        if self.kind == "gunicorn":
            cmd = [
                sys.executable, "-m", "gunicorn", "-k", self.worker, "--threads", "4", "-w", "1",
                "-b", bind, "--http-protocols", "h2,h1", *GUNICORN_COMMON,
            ]
            if launch.tls is not None:
                cmd += ["--certfile", str(launch.tls.certfile), "--keyfile",
                        str(launch.tls.keyfile)]
            else:
                cmd += ["--http2-cleartext", "prior-knowledge"]
            if launch.hold_idle:
                cmd += [*IDLE_GUNICORN, *idle_gunicorn(launch.hold_idle)]
            if self.config:
                config = launch.workdir / f"{self.name}.conf.py"
                config.write_text(self.config)
                cmd += ["-c", str(config)]
            return [*cmd, f"bench.apps:{launch.app}{'_asgi' if self.asgi else ''}"]
        if self.kind == "uvicorn":
            cmd = [sys.executable, "-m", "uvicorn", "--workers", "1", "--host", "127.0.0.1",
                   "--port", str(launch.port), "--log-level", "warning", "--no-access-log",
                   "--http", "h11" if "h11" in self.name else "httptools",
                   "--loop", _uvicorn_loop()]
            if launch.tls is not None:
                cmd += ["--ssl-certfile", str(launch.tls.certfile), "--ssl-keyfile",
                        str(launch.tls.keyfile)]
            return [*cmd, f"bench.apps:{launch.app}_asgi"]
        if self.kind == "hypercorn":
            config = launch.workdir / "hypercorn.toml"
            if not config.exists():
                # Hypercorn's WSGI adapter buffers request bodies, 16 MiB max by default,
                # and Hypercorn closes a connection after 1000 requests by default, which
                # h2load does not reconnect after; Gunicorn has neither limit.
                config.write_text(
                    "wsgi_max_body_size = 4294967296\nkeep_alive_max_requests = 2147483647\n"
                )
            cmd = [sys.executable, "-m", "hypercorn", "-w", "1", "-b", bind, "-c", str(config),
                   "--log-level", "WARNING"]
            if launch.tls is not None:
                cmd += ["--certfile", str(launch.tls.certfile), "--keyfile",
                        str(launch.tls.keyfile)]
            if launch.hold_idle:
                cmd += [*IDLE_HYPERCORN]
            target = f"asgi:bench.apps:{launch.app}_asgi" if self.asgi else (
                f"wsgi:bench.apps:{launch.app}")
            return [*cmd, target]
        raise ValueError(f"{self.name} is not a server process")


def _uvicorn_loop() -> str:
    """The loop AsgiH2 runs on: uvloop when installed (see drivers/aio/worker.py)."""
    return "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"


SERVERS: dict[str, ServerSpec] = {
    spec.name: spec
    for spec in (
        ServerSpec("h2workers", "gunicorn", worker="h2workers.GThreadH2",
                   about="gunicorn -k h2workers.GThreadH2 --threads 4 -w 1"),
        ServerSpec("gunicorn-native", "gunicorn", worker="gthread",
                   about="gunicorn -k gthread --threads 4 -w 1 --http-protocols h2,h1"),
        ServerSpec("hypercorn", "hypercorn", needs="hypercorn",
                   about="hypercorn -w 1 (asyncio) serving the same WSGI app"),
        ServerSpec("h2workers-h1", "gunicorn", worker="h2workers.GThreadH2", h1=True,
                   about="the h2workers server, driven with h2load --h1"),
        ServerSpec("h2-ceiling", "ceiling",
                   about="h2 library alone, client+server H2Connection in memory"),
        ServerSpec("hypercorn-asgi", "hypercorn", asgi=True, needs="hypercorn",
                   about="hypercorn -w 1 serving the ASGI twin of the app"),
        ServerSpec("h2workers-gevent", "gunicorn", worker="h2workers.GeventH2", needs="gevent",
                   about="gunicorn -k h2workers.GeventH2 -w 1"),
        ServerSpec("h2workers-eventlet", "gunicorn", worker="h2workers.EventletH2",
                   needs="eventlet", about="gunicorn -k h2workers.EventletH2 -w 1"),
        ServerSpec("h2workers-asgi", "gunicorn", worker="h2workers.AsgiH2", asgi=True,
                   needs="h11", about="gunicorn -k h2workers.AsgiH2 -w 1 (the ASGI twin)"),
        ServerSpec("h2workers-asgi-h1", "gunicorn", worker="h2workers.AsgiH2", asgi=True,
                   h1=True, needs="httptools",
                   about="AsgiH2 driven with h2load --h1 (httptools)"),
        ServerSpec("h2workers-asgi-h11", "gunicorn", worker="h2workers.AsgiH2", asgi=True,
                   h1=True, needs="h11", config="http1_parser = 'h11'\n",
                   about="AsgiH2 driven with h2load --h1, http1_parser = 'h11'"),
        ServerSpec("gunicorn-asgi", "gunicorn", worker="asgi", asgi=True,
                   about="gunicorn -k asgi -w 1 --http-protocols h2,h1 (Gunicorn 25+)"),
        ServerSpec("uvicorn-h11", "uvicorn", asgi=True, h1=True, needs="uvicorn",
                   about="uvicorn --http h11 (HTTP/1.1 only), same loop as AsgiH2"),
        ServerSpec("uvicorn-httptools", "uvicorn", asgi=True, h1=True, needs="uvicorn",
                   about="uvicorn --http httptools (HTTP/1.1 only), same loop as AsgiH2"),
        ServerSpec("gunicorn-gevent", "gunicorn", worker="gevent", needs="gevent",
                   about="gunicorn -k gevent -w 1 --http-protocols h2,h1 (Gunicorn 25+)"),
    )
}
DEFAULT_SERVERS = ["h2workers", "gunicorn-native", "hypercorn", "h2workers-h1", "h2-ceiling",
                   "h2workers-gevent", "h2workers-eventlet", "gunicorn-gevent",
                   "h2workers-asgi", "gunicorn-asgi", "hypercorn-asgi"]


@dataclass
class RunningServer:
    spec: ServerSpec
    launch: Launch
    proc: subprocess.Popen[bytes]
    log_path: Path
    argv: list[str] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        scheme = "https" if self.launch.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.launch.port}"

    def log_tail(self, lines: int = 6) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        kept = [line.strip() for line in text.splitlines() if line.strip()]
        return " | ".join(kept[-lines:])


def _tcp_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _probe(server: RunningServer, h1: bool, timeout: float) -> H2loadResult:
    """One real request, over the protocol the scenario will use."""
    return run_h2load(
        server.base_url + "/", requests=1, clients=1, streams=1, h1=h1, core=None,
        timeout=timeout, expect_data=len(HELLO),
    )


def start(spec: ServerSpec, launch: Launch, h1: bool, core: int | None) -> RunningServer:
    """Start ``spec`` and return once it has answered a real request, or raise StartError."""
    log_path = launch.workdir / f"{spec.name}-{launch.port}.log"
    argv = pinned(spec.command(launch), core)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            argv, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
    server = RunningServer(spec, launch, proc, log_path, argv)
    try:
        _wait_ready(server, h1)
    except BaseException:
        stop(server)
        raise
    return server


def _wait_ready(server: RunningServer, h1: bool) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    delay = 0.02
    last = "no answer"
    while True:
        code = server.proc.poll()
        if code is not None:
            raise StartError(f"exited with code {code}: {server.log_tail()}")
        if _tcp_open(server.launch.port):
            result = _probe(server, h1, max(1.0, min(10.0, deadline - time.monotonic())))
            if result.ok:
                return
            last = result.problem()
        if time.monotonic() > deadline:
            raise StartError(f"not ready after {START_TIMEOUT:.0f}s ({last}): {server.log_tail()}")
        time.sleep(delay)  # poll interval, not a synchronisation delay
        delay = min(delay * 1.5, 0.25)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop(server: RunningServer) -> None:
    """SIGTERM the server, wait, then SIGKILL anything left in its process group."""
    proc = server.proc
    pgid = proc.pid  # start_new_session: the group id is the leader's pid
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            proc.wait(timeout=STOP_TIMEOUT)
    # Workers that outlived their master (or were orphaned by a crash).
    deadline = time.monotonic() + STOP_TIMEOUT
    while _group_alive(pgid):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            break
        time.sleep(0.05)


def check_tools() -> list[str]:
    """Problems that stop the whole run (nothing to drive the servers with)."""
    problems = []
    if H2LOAD is None:
        problems.append("h2load not found: apt-get install nghttp2-client")
    return problems
