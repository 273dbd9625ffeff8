"""Harness for the end-to-end tests: real Gunicorn processes on 127.0.0.1.

``server`` (per test) and ``module_server`` (shared by a module's tests)
are factories: ``server(tls=True, args=[...], config_text=None, ...)``
starts ``gunicorn -w 1`` with the h2workers worker on a free port, waits
until a real request succeeds and returns a ``Server``. Every server is
stopped when its fixture ends (SIGTERM, bounded wait, SIGKILL to its
process group) and the harness asserts that no process of it is left.

``H2W_GUNICORN=/path/to/gunicorn`` runs every test against that Gunicorn
binary (e.g. a Gunicorn 23 virtualenv) instead of ``python -m gunicorn``.
"""

from __future__ import annotations

import functools
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # so tests can import tests.apps
    sys.path.insert(0, str(REPO))

WORKER = "h2workers.GThreadH2"
# Every worker class that exists. Every suite that starts a server (e2e,
# conformance, attacks, faults, interop, real apps) runs against each: a new
# driver joins all of them by adding its name here.
WORKERS = [WORKER, "h2workers.GeventH2", "h2workers.EventletH2", "h2workers.AsgiH2"]
ASGI_WORKER = "h2workers.AsgiH2"
# The ASGI twin of each WSGI test app: AsgiH2 serves it in the WSGI one's place.
ASGI_TWINS = {
    "tests.apps:app": "tests.asgi_apps:app",
    "tests.interop.app:app": "tests.interop.asgi_app:app",
    "tests.conformance.app:app": "tests.conformance.asgi_app:app",
    "tests.realapps.django_app:application": "tests.realapps.django_app:asgi_application",
}
START_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0
PORT_TRIES = 5


class StartError(Exception):
    """Gunicorn did not come up."""


def app_for(worker: str, app: str) -> str:
    """The app a worker class serves: AsgiH2 serves the ASGI twin of a WSGI
    test app, and a test of a WSGI-only app (Flask, Django's WSGI handler)
    does not apply to it."""
    module = app.split(":")[0].rsplit(".", 1)[-1]
    if worker != ASGI_WORKER or "asgi" in module:  # an ASGI app already
        return app
    twin = ASGI_TWINS.get(app)
    if twin is None:
        pytest.skip(f"{app} is a WSGI app; AsgiH2 serves ASGI apps")
    return twin


@dataclass(frozen=True)
class TLSFiles:
    ca: Path
    cert: Path
    key: Path

    def client_context(self, alpn: Sequence[str] | None = ("h2", "http/1.1")) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca))
        if alpn:
            context.set_alpn_protocols(list(alpn))
        return context


def gunicorn_command(binary: str | None = None) -> list[str]:
    binary = binary or os.environ.get("H2W_GUNICORN") or None
    if binary and os.sep in binary:
        binary = os.path.abspath(binary)  # .ci/run's are relative to the repository
    return [binary] if binary else [sys.executable, "-m", "gunicorn"]


@functools.cache
def _version_of(command: tuple[str, ...]) -> tuple[int, ...]:
    out = subprocess.run(
        [*command, "--version"], capture_output=True, text=True, timeout=60, check=True
    )
    text = (out.stdout + out.stderr).strip()  # "gunicorn (version 23.0.0)"
    number = text.rsplit(" ", 1)[-1].rstrip(")")
    return tuple(int(p) for p in number.split(".") if p.isdigit())


@functools.cache
def _help_of(command: tuple[str, ...]) -> str:
    out = subprocess.run([*command, "--help"], capture_output=True, text=True, timeout=60)
    return out.stdout


def gunicorn_has_flag(flag: str, binary: str | None = None) -> bool:
    return flag in _help_of(tuple(gunicorn_command(binary)))


def gunicorn_version(binary: str | None = None) -> tuple[int, ...]:
    return _version_of(tuple(gunicorn_command(binary)))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, pgid) of a process, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[1]), int(fields[2])


def is_running(pid: int) -> bool:
    """The process exists and is not a zombie."""
    stat = _proc_stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def _all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def live_pids(pred: object) -> list[int]:
    found = []
    for pid in _all_pids():
        stat = _proc_stat(pid)
        if stat is not None and stat[0] not in ("Z", "X") and pred(stat):  # type: ignore[operator]
            found.append(pid)
    return found


@dataclass
class Server:
    """A running Gunicorn master (one worker) and what a test needs of it."""

    proc: subprocess.Popen[bytes]
    port: int
    tls: bool
    log_path: Path
    state_dir: Path
    command: list[str]
    version: tuple[int, ...]
    stopped: bool = field(default=False)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def worker_pids(self) -> list[int]:
        return live_pids(lambda stat: stat[1] == self.pid)

    def worker_pid(self, timeout: float = 15.0, other_than: int | None = None) -> int:
        """The pid of the (single) worker, waiting for it to be (re)spawned."""
        deadline = time.monotonic() + timeout
        while True:
            pids = [p for p in self.worker_pids() if p != other_than]
            if len(pids) == 1:
                return pids[0]
            if time.monotonic() > deadline:
                raise AssertionError(f"expected one worker of {self.pid}, found {pids}")
            time.sleep(0.05)

    def wait_for_log(self, text: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while text not in (log := self.log()):
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not in the server log:\n{log[-3000:]}")
            time.sleep(0.05)
        return log

    def group_pids(self) -> list[int]:
        return live_pids(lambda stat: stat[2] == self.pid)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM, bounded wait, SIGKILL to the group; assert nothing is left."""
        if self.stopped:
            return
        self.stopped = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.proc.wait(10)
        deadline = time.monotonic() + 10
        while (left := self.group_pids()) and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        assert not left, f"processes of server {self.pid} left after stop: {left}"


def _http1_probe(port: int, tls: TLSFiles | None) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as raw:
            raw.settimeout(2.0)
            sock: socket.socket = raw
            if tls is not None:
                sock = tls.client_context(alpn=None).wrap_socket(raw, server_hostname="127.0.0.1")
            sock.sendall(b"GET /hello HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n")
            data = b""
            while len(data) < 12:
                piece = sock.recv(4096)
                if not piece:
                    break
                data += piece
            # Any response means up (an example app may have no /hello); an
            # h2-only cleartext port answers HTTP/1.1 with GOAWAY: up all the same.
            return data.startswith(b"HTTP/1.1 ") or data[3:4] == b"\x07"
    except OSError:
        return False


class ServerFactory:
    """Starts servers and stops every one it started."""

    def __init__(self, tls: TLSFiles, workdir: Path, worker: str = WORKER) -> None:
        self.tls_files = tls
        self.workdir = workdir
        self.worker = worker  # the worker class a server gets unless told otherwise
        self.servers: list[Server] = []
        self.count = 0

    def _files(self, config_text: str | None) -> tuple[Path, Path, Path | None]:
        self.count += 1
        base = self.workdir / f"server{self.count}"
        base.mkdir(parents=True)
        state = base / "state"
        state.mkdir()
        config = None
        if config_text is not None:
            config = base / "gunicorn.conf.py"
            config.write_text(config_text)
        return base / "output.log", state, config

    def command(
        self,
        port: int,
        *,
        worker: str | None = None,
        tls: bool = True,
        args: Sequence[str] = (),
        config: Path | None = None,
        app: str = "tests.apps:app",
        gunicorn: str | None = None,
        threads: int = 4,
    ) -> list[str]:
        cmd = [
            *gunicorn_command(gunicorn), "-w", "1", "--threads", str(threads),
            "-b", f"127.0.0.1:{port}", "--log-level", "info", "--graceful-timeout", "5",
        ]  # fmt: skip
        # a configuration file that names the worker class is obeyed (no -k)
        if config is None or "worker_class" not in config.read_text():
            cmd[len(gunicorn_command(gunicorn)) : 0] = ["-k", worker or self.worker]
        if tls:
            cmd += ["--certfile", str(self.tls_files.cert), "--keyfile", str(self.tls_files.key)]
        if config is not None:
            cmd += ["-c", str(config)]
        if gunicorn_has_flag("--no-control-socket", gunicorn):  # one shared path otherwise
            cmd.append("--no-control-socket")
        return [*cmd, *args, app_for(worker or self.worker, app)]

    def _env(self, state: Path) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("GUNICORN_CMD_ARGS", None)
        env["H2W_STATE_DIR"] = str(state)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def __call__(
        self,
        worker: str | None = None,
        tls: bool = True,
        args: Sequence[str] = (),
        config_text: str | None = None,
        app: str = "tests.apps:app",
        gunicorn: str | None = None,
        threads: int = 4,
    ) -> Server:
        log_path, state, config = self._files(config_text)
        version = gunicorn_version(gunicorn)
        last = ""
        for _ in range(PORT_TRIES):
            port = free_port()
            cmd = self.command(
                port, worker=worker, tls=tls, args=args, config=config, app=app,
                gunicorn=gunicorn, threads=threads,
            )  # fmt: skip
            with open(log_path, "ab") as out:
                proc = subprocess.Popen(
                    cmd, stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
                    env=self._env(state), start_new_session=True,
                )  # fmt: skip
            server = Server(proc, port, tls, log_path, state, cmd, version)
            self.servers.append(server)
            outcome = self._wait_ready(server)
            if outcome == "ready":
                return server
            server.stop()
            last = server.log()
            if outcome != "port in use":
                break
        raise StartError(f"gunicorn did not start:\n{last[-4000:]}")

    def _wait_ready(self, server: Server) -> str:
        tls = self.tls_files if server.tls else None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if server.proc.poll() is not None:
                return "port in use" if "Connection in use" in server.log() else "exited"
            if "Connection in use" in server.log():
                return "port in use"
            if _http1_probe(server.port, tls):
                return "ready"
            time.sleep(0.05)
        return "timeout"

    def run_to_exit(
        self,
        args: Sequence[str] = (),
        config_text: str | None = None,
        tls: bool = False,
        gunicorn: str | None = None,
        timeout: float = 30.0,
        app: str = "tests.apps:app",
    ) -> tuple[int | None, str]:
        """Start a server expected to fail; (exit code or None if it ran, output)."""
        log_path, state, config = self._files(config_text)
        cmd = self.command(
            free_port(), tls=tls, args=args, config=config, gunicorn=gunicorn, app=app
        )
        with open(log_path, "ab") as out:
            proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
                env=self._env(state), start_new_session=True,
            )  # fmt: skip
        server = Server(proc, 0, tls, log_path, state, cmd, gunicorn_version(gunicorn))
        self.servers.append(server)
        try:
            code: int | None = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            code = None
        server.stop()
        return code, server.log()

    def stop_all(self) -> None:
        errors = []
        for server in self.servers:
            try:
                server.stop()
            except AssertionError as exc:
                errors.append(str(exc))
        self.servers.clear()
        assert not errors, errors


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    import trustme

    directory = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    files = TLSFiles(directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
    ca.cert_pem.write_to_path(str(files.ca))
    leaf.private_key_pem.write_to_path(str(files.key))
    with open(files.cert, "wb") as f:
        for pem in leaf.cert_chain_pems:
            f.write(pem.bytes())
    return files


def short_name(worker: str) -> str:
    return worker.rsplit(".", 1)[-1]


@pytest.fixture(scope="session", params=WORKERS, ids=short_name)
def worker_class(request: pytest.FixtureRequest) -> str:
    """The worker class under test: every server-starting suite runs per class."""
    return str(request.param)


@pytest.fixture
def server(tls_files: TLSFiles, tmp_path: Path, worker_class: str) -> Iterator[ServerFactory]:
    factory = ServerFactory(tls_files, tmp_path / "servers", worker_class)
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture(scope="module")
def module_server(
    tls_files: TLSFiles, tmp_path_factory: pytest.TempPathFactory, worker_class: str
) -> Iterator[ServerFactory]:
    factory = ServerFactory(tls_files, tmp_path_factory.mktemp("servers"), worker_class)
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture(scope="session")
def gunicorn_ver() -> tuple[int, ...]:
    return gunicorn_version()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "wsgi: WSGI-only behaviour (readline, gunicorn.socket): not run on AsgiH2"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(reason="WSGI-only behaviour; AsgiH2 serves ASGI apps")
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_asgi = callspec is not None and callspec.params.get("worker_class") == ASGI_WORKER
        if on_asgi and item.get_closest_marker("wsgi"):
            item.add_marker(skip)
