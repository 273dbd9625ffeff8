"""The ``idle`` scenario: what N idle HTTP/2 connections cost a server.

The benchmark process itself is the client. It opens N TLS connections at once
(non-blocking sockets and a selector), negotiates ``h2`` with ALPN, sends the
client preface and SETTINGS with the ``h2`` library, and counts a connection as
established once it has read the server's SETTINGS and the server has
acknowledged its own. The server's worker process is found under the master,
and its VmRSS (``/proc/PID/status``) is read before and after, each time
polled until it stops changing. With the connections still open, one more
client makes an HTTP/1.1 request on a fresh connection and is timed: idle
connections should not delay anybody else. Then everything is closed.

A server that cannot take all N (e.g. one thread per HTTP/2 connection) is not
an error of the harness: opening stops when no connection has made progress
for a few seconds, and the result says how many were held.
"""

from __future__ import annotations

import contextlib
import errno
import http.client
import os
import resource
import selectors
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import h2.config
import h2.connection
import h2.events
import h2.exceptions

from .apps import HELLO

KIB = 1024
OPEN_STALL_S = 4.0  # give up opening when no connection progressed for this long
REQUEST_TIMEOUT_S = 10.0
RSS_POLL_S = 0.1
RSS_STABLE_READS = 5  # consecutive reads within RSS_TOLERANCE_KIB of each other
RSS_TOLERANCE_KIB = 64
RSS_MAX_WAIT_S = 10.0
FD_MARGIN = 64  # descriptors beyond N: listening socket, logs, the extra request...
FD_RESERVE = 32  # descriptors the client keeps free for /proc reads and the extra request


def open_deadline(conns: int) -> float:
    """Seconds allowed for opening ``conns`` connections (handshakes are serial on
    the server's one core)."""
    return 10.0 + conns * 0.03


# -- file descriptors --------------------------------------------------------------------


def raise_nofile(need: int) -> int:
    """Raise this process's soft RLIMIT_NOFILE to ``need`` if the hard limit allows.

    Servers started afterwards inherit the new limit. Returns the soft limit now in force.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return soft if soft != resource.RLIM_INFINITY else 1 << 30


def nofile_of(pid: int) -> int | None:
    """The soft ``Max open files`` of a process, from /proc/PID/limits."""
    try:
        with open(f"/proc/{pid}/limits") as fh:
            for line in fh:
                if line.startswith("Max open files"):
                    value = line.split()[3]
                    return 1 << 30 if value == "unlimited" else int(value)
    except (OSError, ValueError, IndexError):
        return None
    return None


# -- processes and memory ----------------------------------------------------------------


def _ppids() -> dict[int, int]:
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 1:
            out[int(entry)] = int(fields[1])
    return out


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def vm_rss_kib(pid: int) -> int | None:
    """VmRSS of ``pid`` in KiB, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def worker_pid(master: int) -> int:
    """The process that serves connections: the master's descendant with the largest RSS
    (Gunicorn's one worker; Hypercorn's spawned worker, not multiprocessing's resource
    tracker), or the master itself when it has no children."""
    ppids = _ppids()
    found: list[int] = []
    todo = [master]
    while todo:
        parent = todo.pop()
        children = [pid for pid, ppid in ppids.items() if ppid == parent]
        found += children
        todo += children
    candidates = [pid for pid in found if "_tracker" not in _cmdline(pid)]
    if not candidates:
        return master
    return max(candidates, key=lambda pid: vm_rss_kib(pid) or 0)


def stable_rss_kib(pid: int, idle: Callable[[float], None]) -> tuple[int | None, bool]:
    """Poll VmRSS until RSS_STABLE_READS reads agree within RSS_TOLERANCE_KIB.

    ``idle(seconds)`` is called between reads (it keeps the client connections
    serviced). Returns the last read and whether it settled within RSS_MAX_WAIT_S.
    """
    reads: list[int] = []
    deadline = time.monotonic() + RSS_MAX_WAIT_S
    while True:
        rss = vm_rss_kib(pid)
        if rss is None:
            return (reads[-1] if reads else None), False
        reads = [*reads[-(RSS_STABLE_READS - 1) :], rss]
        if len(reads) == RSS_STABLE_READS and max(reads) - min(reads) <= RSS_TOLERANCE_KIB:
            return rss, True
        if time.monotonic() > deadline:
            return rss, False
        idle(RSS_POLL_S)


# -- the idle HTTP/2 clients -------------------------------------------------------------


def client_context(alpn: list[str]) -> ssl.SSLContext:
    """TLS client context for the throwaway cert (no verification)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(alpn)
    return context


CONNECTING, HANDSHAKE, PREFACE, OPEN, CLOSED = "connecting", "handshake", "preface", "open", (
    "closed")


class _Conn:
    def __init__(self, sock: socket.socket) -> None:
        self.raw = sock
        self.sock: socket.socket | ssl.SSLSocket = sock
        self.state = CONNECTING
        self.h2: h2.connection.H2Connection | None = None
        self.out = b""
        self.got_settings = False
        self.acked = False
        self.error = ""
        self.was_open = False


class IdleClients:
    """N HTTP/2 client connections driven by one selector, never sending a request."""

    def __init__(self, port: int, count: int) -> None:
        self.port = port
        self.count = count
        self.context = client_context(["h2"])
        self.selector = selectors.DefaultSelector()
        self.conns: list[_Conn] = []
        self.unopened: dict[str, int] = {}  # sockets that could not even be created
        self.last_progress = time.monotonic()

    def __enter__(self) -> IdleClients:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for conn in self.conns:
            out[conn.state] = out.get(conn.state, 0) + 1
        if missing := sum(self.unopened.values()):
            out["never created"] = missing
        return out

    @property
    def held(self) -> int:
        return sum(1 for c in self.conns if c.state == OPEN)

    @property
    def lost(self) -> int:
        """Connections that were established and then closed."""
        return sum(1 for c in self.conns if c.was_open and c.state == CLOSED)

    def errors(self) -> dict[str, int]:
        out = dict(self.unopened)
        for conn in self.conns:
            if conn.error:
                out[conn.error] = out.get(conn.error, 0) + 1
        return out

    def open(self, deadline_s: float) -> str:
        """Start every connection and drive them until all are open or closed, nothing
        progressed for OPEN_STALL_S, or ``deadline_s`` passed. Returns why it stopped."""
        budget = _fd_budget()
        for opened in range(self.count):
            if opened >= budget:
                self.unopened[f"client's open-file limit ({FD_RESERVE} kept free)"] = (
                    self.count - opened)
                break
            try:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            except OSError as exc:  # e.g. EMFILE: out of descriptors
                self.unopened[f"socket(): {_short_error(exc)}"] = self.count - opened
                break
            sock.setblocking(False)
            conn = _Conn(sock)
            self.conns.append(conn)
            code = sock.connect_ex(("127.0.0.1", self.port))
            if code not in (0, errno.EINPROGRESS):
                self._fail(conn, f"connect: {os.strerror(code)}")
                continue
            self.selector.register(sock, selectors.EVENT_WRITE, conn)
        self.last_progress = started = time.monotonic()
        while True:
            pending = sum(1 for c in self.conns if c.state not in (OPEN, CLOSED))
            if not pending:
                return "all settled"
            now = time.monotonic()
            if now - started > deadline_s:
                return f"deadline of {deadline_s:.0f}s passed with {pending} still opening"
            if now - self.last_progress > OPEN_STALL_S:
                return f"no progress for {OPEN_STALL_S:.0f}s with {pending} still opening"
            self.pump(0.1)

    def pump(self, timeout: float) -> None:
        """Handle whatever is ready within ``timeout`` seconds."""
        if not self.selector.get_map():
            time.sleep(timeout)
            return
        for key, mask in self.selector.select(timeout):
            conn: _Conn = key.data
            try:
                self._step(conn, mask)
            except (OSError, h2.exceptions.ProtocolError) as exc:
                self._fail(conn, _short_error(exc))

    def pump_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self.pump(left)

    def _progress(self) -> None:
        self.last_progress = time.monotonic()

    def _want(self, conn: _Conn, events: int) -> None:
        self.selector.modify(conn.raw, events, conn)

    def _step(self, conn: _Conn, mask: int) -> None:
        if conn.state == CONNECTING:
            code = conn.raw.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code:
                self._fail(conn, f"connect: {os.strerror(code)}")
                return
            conn.sock = self.context.wrap_socket(conn.raw, do_handshake_on_connect=False)
            conn.state = HANDSHAKE
            self._progress()
        if conn.state == HANDSHAKE:
            try:
                assert isinstance(conn.sock, ssl.SSLSocket)
                conn.sock.do_handshake()
            except ssl.SSLWantReadError:
                self._want(conn, selectors.EVENT_READ)
                return
            except ssl.SSLWantWriteError:
                self._want(conn, selectors.EVENT_WRITE)
                return
            alpn = conn.sock.selected_alpn_protocol()
            if alpn != "h2":
                self._fail(conn, f"ALPN chose {alpn!r}, not h2")
                return
            conn.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
            conn.h2.initiate_connection()
            conn.out += conn.h2.data_to_send()
            conn.state = PREFACE
            self._progress()
        if mask & selectors.EVENT_READ or conn.state == PREFACE:
            self._read(conn)
        self._flush(conn)

    def _read(self, conn: _Conn) -> None:
        assert conn.h2 is not None
        while conn.state in (PREFACE, OPEN):
            try:
                data = conn.sock.recv(65536)
            except (ssl.SSLWantReadError, BlockingIOError):
                return
            if not data:
                self._fail(conn, "closed by server")
                return
            self._progress()
            for event in conn.h2.receive_data(data):
                if isinstance(event, h2.events.RemoteSettingsChanged):
                    conn.got_settings = True
                elif isinstance(event, h2.events.SettingsAcknowledged):
                    conn.acked = True
                elif isinstance(event, h2.events.ConnectionTerminated):
                    self._fail(conn, f"GOAWAY {event.error_code!s}")
                    return
            conn.out += conn.h2.data_to_send()  # SETTINGS ACK, PING ACK, ...
            if conn.state == PREFACE and conn.got_settings and conn.acked:
                conn.state = OPEN
                conn.was_open = True

    def _flush(self, conn: _Conn) -> None:
        if conn.state in (CLOSED, CONNECTING, HANDSHAKE):
            return
        while conn.out:
            try:
                sent = conn.sock.send(conn.out)
            except (ssl.SSLWantWriteError, BlockingIOError):
                self._want(conn, selectors.EVENT_READ | selectors.EVENT_WRITE)
                return
            conn.out = conn.out[sent:]
        self._want(conn, selectors.EVENT_READ)

    def _fail(self, conn: _Conn, error: str) -> None:
        if conn.state == CLOSED:
            return
        conn.state = CLOSED
        conn.error = error
        self._progress()
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(conn.raw)
        with contextlib.suppress(OSError):
            conn.sock.close()

    def close(self) -> None:
        for conn in self.conns:
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(conn.raw)
            with contextlib.suppress(OSError):
                conn.sock.close()
        self.selector.close()


def _fd_budget() -> int:
    """How many more descriptors this process may open, keeping FD_RESERVE free."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY:
        return 1 << 30
    try:
        in_use = len(os.listdir("/proc/self/fd"))
    except OSError:
        in_use = 0
    return max(0, soft - in_use - FD_RESERVE)


def _short_error(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {exc.reason or type(exc).__name__}"
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"{type(exc).__name__}: {os.strerror(exc.errno)}"
    return type(exc).__name__


# -- the extra request -------------------------------------------------------------------


def timed_request(port: int, timeout: float) -> tuple[float | None, str]:
    """One HTTP/1.1 GET / on a fresh TLS connection: (seconds from connect to the whole
    body, "") or (None, what went wrong)."""
    started = time.monotonic()
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout,
                                       context=client_context(["http/1.1"]))
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        body = response.read()
        elapsed = time.monotonic() - started
    except (OSError, http.client.HTTPException) as exc:
        waited = time.monotonic() - started
        what = "timed out" if isinstance(exc, TimeoutError) else _short_error(exc)
        return None, f"{what} after {waited:.1f}s"
    finally:
        conn.close()
    if response.status != 200 or body != HELLO:
        return None, f"answered {response.status} with {len(body)} body bytes"
    return elapsed, ""


# -- one measurement ---------------------------------------------------------------------


@dataclass
class IdleResult:
    wanted: int
    held: int = 0
    growth_mib: float | None = None
    base_rss_mib: float | None = None
    request_ms: float | None = None  # the extra request, with the N connections open
    alone_ms: float | None = None  # the same request before they were opened
    request_error: str = ""
    problem: str = ""

    @property
    def failures(self) -> int:
        return (self.wanted - self.held) + (1 if self.request_ms is None else 0)

    def add(self, problem: str) -> None:
        self.problem = f"{self.problem}; {problem}" if self.problem else problem


@contextlib.contextmanager
def on_core(core: int | None) -> Iterator[None]:
    """Run the client (this thread) on ``core`` for the duration, if given."""
    if core is None or not hasattr(os, "sched_setaffinity"):
        yield
        return
    before = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {core})
    except OSError:
        yield
        return
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def measure_idle(master_pid: int, port: int, conns: int, client_core: int | None) -> IdleResult:
    """RSS growth of the serving process for ``conns`` idle HTTP/2 connections, and the
    time of one HTTP/1.1 request made while they are open."""
    result = IdleResult(conns)
    pid = worker_pid(master_pid)
    limit = nofile_of(pid)
    if limit is not None and limit < conns + FD_MARGIN:
        result.add(f"server's open-file limit is {limit}")
    with on_core(client_core):
        timed_request(port, REQUEST_TIMEOUT_S)  # warm-up: first HTTP/1.1 request
        result.alone_ms = _ms(timed_request(port, REQUEST_TIMEOUT_S)[0])
        base, settled = stable_rss_kib(pid, time.sleep)
        if base is None:
            result.add("server worker exited before the connections were opened")
            return result
        if not settled:
            result.add("RSS still changing before the connections were opened")
        result.base_rss_mib = base / KIB
        with IdleClients(port, conns) as clients:
            why = clients.open(open_deadline(conns))
            rss, settled = stable_rss_kib(pid, clients.pump_for)
            if rss is not None:
                result.growth_mib = (rss - base) / KIB
            if not settled:
                result.add("RSS did not settle with the connections open")
            seconds, error = timed_request(port, REQUEST_TIMEOUT_S)
            result.request_ms, result.request_error = _ms(seconds), error
            clients.pump(0)
            result.held = clients.held
            if result.held < conns:
                errors = ", ".join(f"{n} {e}" for e, n in clients.errors().items())
                states = ", ".join(f"{n} {s}" for s, n in clients.counts().items() if s != OPEN)
                result.add(f"held {result.held} of {conns} idle connections ({why}; "
                           f"not open: {states}{'; ' + errors if errors else ''})")
            if clients.lost:
                result.add(f"{clients.lost} established connections were closed by the server")
            if error:
                result.add(f"extra request with the connections open: {error}")
            if vm_rss_kib(pid) is None:
                result.add("server worker exited")
    return result


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1e3
