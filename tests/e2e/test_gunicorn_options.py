"""The worker classes under Gunicorn's own options, as its workers are run:
``worker_class`` in ``gunicorn.conf.py``, ``--preload``, and several
listeners at once (another TCP port, IPv6, a unix socket)."""

from __future__ import annotations

import grp
import os
import pwd
import signal
import socket
import subprocess
import sys
import time

import h2.config
import h2.connection
import h2.events
import pytest

from tests.conftest import ASGI_WORKER, REPO, Server, free_port, is_running, live_pids

from .util import H2Client


def h2c_get(sock: socket.socket, path: str = "/hello") -> int:
    """One HTTP/2 GET over a connected socket (h2c prior knowledge): its status."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(header_encoding=None))
    conn.initiate_connection()
    block = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"x"),
             (b":path", path.encode())]  # fmt: skip
    conn.send_headers(1, block, end_stream=True)
    sock.sendall(conn.data_to_send())
    status = 0
    while True:
        data = sock.recv(65536)
        assert data, "closed before the response ended"
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived):
                status = int(dict(event.headers)[b":status"])
            if isinstance(event, h2.events.StreamEnded):
                return status
        sock.sendall(conn.data_to_send())


def test_worker_class_from_the_config_file(server, worker_class):
    srv = server(tls=False, config_text=f"worker_class = {worker_class!r}\n")
    with H2Client(srv.port) as client:
        assert client.get("/hello").status == 200
    assert f"Using worker: {worker_class}" in srv.log()


def test_preload(server, tls_files):
    """The app imported in the master, before the fork (and, for the green
    classes, before their monkey-patching: Gunicorn warns; it still serves)."""
    srv = server(tls=True, args=["--preload"])
    with H2Client(srv.port, tls_files.client_context(alpn=["h2"])) as client:
        assert client.get("/hello").status == 200


def test_several_listeners_tcp_ipv6_and_unix(server, tmp_path):
    other = free_port()
    unix = tmp_path / "h2w.sock"
    args = ["-b", f"127.0.0.1:{other}", "-b", f"unix:{unix}"]
    ipv6 = socket.has_ipv6
    if ipv6:
        try:
            with socket.socket(socket.AF_INET6) as probe:
                probe.bind(("::1", 0))
        except OSError:
            ipv6 = False
    v6port = free_port() if ipv6 else 0
    if ipv6:
        args += ["-b", f"[::1]:{v6port}"]
    srv = server(tls=False, args=args)
    for port in (srv.port, other):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            assert h2c_get(sock) == 200
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(str(unix))
        assert h2c_get(sock) == 200
    if not ipv6:
        pytest.skip("no IPv6 loopback here (the IPv4 and unix listeners passed)")
    with socket.create_connection(("::1", v6port), timeout=10) as sock:
        assert h2c_get(sock) == 200


# -- --reload, --daemon, --user/--group, systemd socket activation ------------------

RELOAD_APPS = {
    "wsgi": """
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"VERSION"]
""",
    "asgi": """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"VERSION"})
""",
}


def _h2c_body(port: int, path: str = "/") -> bytes:
    with H2Client(port) as client:
        response = client.get(path)
        assert response.status == 200
        return bytes(response.data)


def test_reload_serves_the_changed_code(server, worker_class, tmp_path):
    """``--reload``: Gunicorn's reloader in the worker sees the module change,
    the worker stops, and its successor serves the new code."""
    kind = "asgi" if worker_class == ASGI_WORKER else "wsgi"
    module = tmp_path / f"{kind}_reloaded.py"
    module.write_text(RELOAD_APPS[kind].replace("VERSION", "one"))
    srv = server(
        tls=False,
        args=["--reload", "--pythonpath", str(tmp_path)],
        app=f"{kind}_reloaded:app",
    )
    assert _h2c_body(srv.port) == b"one"
    first = srv.worker_pid()
    module.write_text(RELOAD_APPS[kind].replace("VERSION", "two"))
    # Gunicorn's polling reloader records a file's mtime the first time it
    # scans it, which under load may be after this write: move the mtime on
    # again every two seconds until the worker restarts.
    for bump in range(15):
        later = time.time() + 5 + bump  # newer than whatever it recorded
        os.utime(module, (later, later))
        try:
            srv.worker_pid(timeout=2, other_than=first)
            break
        except AssertionError:
            continue
    else:
        raise AssertionError(f"no reload in 30 s:\n{srv.log()[-3000:]}")
    deadline = time.monotonic() + 30
    while (body := _h2c_body(srv.port)) != b"two" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert body == b"two", srv.log()[-3000:]
    assert "Worker reloading" in srv.log()


def test_daemon(server, tmp_path, worker_class):
    """``--daemon``: the command returns at once, the detached master serves,
    and SIGTERM to the pid in ``--pid`` stops it and its worker."""
    pidfile, log = tmp_path / "gunicorn.pid", tmp_path / "error.log"
    port = free_port()
    cmd = server.command(port, tls=False)
    cmd[-1:-1] = ["--daemon", "--pid", str(pidfile), "--error-logfile", str(log)]
    done = subprocess.run(cmd, cwd=REPO, env=server._env(tmp_path), timeout=30)
    assert done.returncode == 0
    deadline = time.monotonic() + 30
    while not pidfile.exists() or not pidfile.read_text().strip():
        assert time.monotonic() < deadline, log.read_text() if log.exists() else "no log"
        time.sleep(0.05)
    master = int(pidfile.read_text())
    try:
        while time.monotonic() < deadline and "Booting worker" not in log.read_text():
            time.sleep(0.05)
        assert _h2c_body(port, "/hello") == b"Hello, world!\n"
    finally:
        workers = live_pids(lambda stat: stat[1] == master)
        os.kill(master, signal.SIGTERM)
        stop_by = time.monotonic() + 30
        while any(is_running(pid) for pid in [master, *workers]):
            assert time.monotonic() < stop_by, f"daemon {master} / {workers} still running"
            time.sleep(0.05)
    assert workers, "the daemon had no worker"


def _can_run_as(user: str, group: str, env: dict[str, str]) -> str:
    """Why ``user`` cannot run this Python and import h2workers ("" if it can)."""
    try:
        probe = subprocess.run(
            [sys.executable, "-c", "import http.client, h2workers"],
            cwd=REPO, env=env, user=user, group=group, capture_output=True,
        )  # fmt: skip
    except PermissionError as exc:
        return str(exc)
    return probe.stderr.decode()[-200:] if probe.returncode else ""


@pytest.mark.skipif(os.geteuid() != 0, reason="--user/--group need root")
@pytest.mark.parametrize("user", ["root", "nobody"])
def test_user_and_group(server, user):
    """``--user ... --group nogroup`` (root starts it): the worker runs, and
    serves, as that user and group. (nobody needs a Python it may read: one
    installed under /root is not, and that case is skipped.)"""
    uid, gid = pwd.getpwnam(user).pw_uid, grp.getgrnam("nogroup").gr_gid
    if why := _can_run_as(user, "nogroup", server._env(REPO)):
        pytest.skip(f"{user} cannot run this Python: {why}")
    srv = server(tls=False, args=["--user", user, "--group", "nogroup"])
    assert _h2c_body(srv.port, "/hello") == b"Hello, world!\n"
    with open(f"/proc/{srv.worker_pid()}/status") as f:
        status = dict(line.split(":", 1) for line in f)
    assert status["Uid"].split()[:2] == [str(uid)] * 2
    assert status["Gid"].split()[:2] == [str(gid)] * 2


LAUNCHER = """
import os, socket, sys
sock = socket.socket()
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind(("127.0.0.1", int(sys.argv[1])))
sock.listen(128)
os.dup2(sock.fileno(), 3)  # the first socket systemd passes
os.set_inheritable(3, True)
os.environ.update(LISTEN_FDS="1", LISTEN_PID=str(os.getpid()))
os.execv(sys.executable, [sys.executable, *sys.argv[2:]])
"""


def test_systemd_socket_activation(server, tmp_path):
    """A socket passed as systemd does (fd 3, LISTEN_FDS, LISTEN_PID; here a
    launcher that binds it and execs Gunicorn in its own pid): served, with
    no ``--bind``."""
    port = free_port()
    cmd = server.command(port, tls=False)
    at = cmd.index("-b")
    del cmd[at : at + 2]
    launcher = tmp_path / "launcher.py"
    launcher.write_text(LAUNCHER)
    python_args = cmd[1:] if cmd[0] == sys.executable else ["-m", "gunicorn", *cmd[1:]]
    log = tmp_path / "output.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(launcher), str(port), *python_args],
            stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
            env=server._env(tmp_path), start_new_session=True,
        )  # fmt: skip
    srv = Server(proc, port, False, log, tmp_path, cmd, ())
    server.servers.append(srv)
    srv.wait_for_log("Booting worker", timeout=30)
    assert _h2c_body(port, "/hello") == b"Hello, world!\n"
    assert "systemd" in srv.log().lower() or f"127.0.0.1:{port}" in srv.log()
