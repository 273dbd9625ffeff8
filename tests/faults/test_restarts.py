"""SIGTERM, SIGHUP (reload) and --max-requests with 50 streams in flight over
10 connections, each request ``/once?id=<job>&s=0.5`` (it counts its own
executions in a state file).

The client counts every request and retries only what the server refused
in a way that says "not processed": RST_STREAM(REFUSED_STREAM), a stream
above the last_stream_id of a GOAWAY, or a connection that closed before
the server's SETTINGS (refused). Anything else is a failure. At the end all
50 are answered 200 exactly once, and each app ran exactly once.
"""

from __future__ import annotations

import select
import signal
import time
from collections import Counter, deque
from dataclasses import dataclass, field

from h2.errors import ErrorCodes
from h2.exceptions import ProtocolError
from hyperframe.frame import PingFrame

from tests.attacks.support import H2Client

JOBS = 50
CONNS = 10
PER_CONN = 5
SLEEP = 0.5
ARGS = ["--keep-alive", "10"]


@dataclass
class Outcome:
    results: dict[str, tuple[int, str]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    retries: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    connections: int = 0


class RetryingClient:
    """Many HTTP/2 connections, one event loop, safe retries only."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.hold = ""  # sent as the apps' ``hold``: they wait for its release file
        self.clients: list[H2Client] = []
        self.inflight: dict[tuple[int, int], tuple[H2Client, str]] = {}
        self.queue: deque[str] = deque()
        self.out = Outcome()

    # -- connections and sending ---------------------------------------------------

    def connect(self) -> H2Client | None:
        try:
            client = H2Client(self.port, timeout=5)
        except OSError:
            self.out.reasons["connection refused"] += 1
            return None
        self.clients.append(client)
        self.out.connections += 1
        return client

    def usable(self, client: H2Client) -> bool:
        return not client.closed and not client.goaways() and client.h2_error is None

    def load(self, client: H2Client) -> int:
        return sum(1 for c, _ in self.inflight.values() if c is client)

    def send(self, job: str, client: H2Client | None = None) -> bool:
        """Send ``job`` (on ``client`` if given, even after its GOAWAY)."""
        if client is None:
            choices = [c for c in self.clients if self.usable(c) and self.load(c) < PER_CONN]
            client = min(choices, key=self.load) if choices else self.connect()
            if client is None:
                return False
        try:
            hold = f"&hold={self.hold}" if self.hold else ""
            sid = client.request(f"/once?id={job}&s={SLEEP}{hold}")
        except (ProtocolError, OSError):
            return False
        self.inflight[(id(client), sid)] = (client, job)
        return True

    def sync(self) -> None:
        """PING every connection and wait for the ACKs: every HEADERS sent
        before has been read by the server."""
        live = [c for c in self.clients if not c.closed]
        for n, client in enumerate(live):
            client.conn.ping(b"sync%04d" % n)
            client.flush()
        for client in live:
            client.wait(lambda c=client: any(isinstance(f, PingFrame) for f in c.frames))

    # -- receiving -----------------------------------------------------------------

    def pump(self, timeout: float = 0.05) -> None:
        live = [c for c in self.clients if not c.closed]
        if live:
            readable, _, _ = select.select([c.sock for c in live], [], [], timeout)
            for client in live:
                if client.sock in readable:
                    client.pump(0)
        self.collect()

    def collect(self) -> None:
        for key, (client, job) in list(self.inflight.items()):
            verdict = self.verdict(client, key[1])
            if verdict is None:
                continue
            del self.inflight[key]
            if verdict == "ok":
                state = client.streams[key[1]]
                if job in self.out.results:
                    self.out.failures.append(f"{job}: answered twice")
                self.out.results[job] = (state.status or 0, bytes(state.data).decode())
            elif verdict.startswith("retry"):
                self.out.retries[job] += 1
                self.out.reasons[verdict] += 1
                self.queue.append(job)
            else:
                self.out.failures.append(f"{job}: {verdict}")

    @staticmethod
    def verdict(client: H2Client, sid: int) -> str | None:
        state = client.streams[sid]
        if state.ended:
            return "ok" if state.status == 200 else f"status {state.status}"
        if state.reset == ErrorCodes.REFUSED_STREAM:
            return "retry: REFUSED_STREAM"
        if state.reset is not None:
            return f"reset {state.reset}"
        goaways = client.goaways()
        if goaways and sid > min(g.last_stream_id for g in goaways):
            return "retry: above GOAWAY last_stream_id"
        if client.closed:
            if not client.settings_frames():
                return "retry: connection refused"
            return "lost: connection closed with the stream open"
        return None

    def run(self, deadline: float) -> Outcome:
        """Send what is queued (reconnecting as needed) until all answered."""
        while self.queue or self.inflight:
            assert time.monotonic() < deadline, (
                f"unfinished: queued={list(self.queue)} inflight={len(self.inflight)} "
                f"done={len(self.out.results)} failures={self.out.failures}"
            )
            while self.queue:
                if not self.send(self.queue[0]):
                    time.sleep(0.1)
                    break
                self.queue.popleft()
            self.pump()
        return self.out

    def close(self) -> None:
        for client in self.clients:
            client.close()


def _check(srv, out: Outcome, jobs: list[str]) -> set[int]:
    """All answered 200 exactly once, each app ran once; the serving pids."""
    print(f"retried {sum(out.retries.values())}: {dict(out.reasons)}; {out.connections} conns")
    assert not out.failures, out.failures
    assert sorted(out.results) == sorted(jobs)
    assert {status for status, _ in out.results.values()} == {200}
    pids = set()
    for job in jobs:
        name, pid = out.results[job][1].split()
        assert name == job
        pids.add(int(pid))
        runs = (srv.state_dir / f"once-{job}").read_text().split()
        assert len(runs) == 1, f"{job} ran {len(runs)} times: {runs}"
    return pids


def _jobs(tag: str) -> list[str]:
    return [f"{tag}{i:02d}" for i in range(JOBS)]


def _open_all(client: RetryingClient, jobs: list[str]) -> None:
    for _ in range(CONNS):
        assert client.connect() is not None
    for job in jobs:
        assert client.send(job)


def test_sigterm_with_50_streams_in_flight(server):
    srv = server(tls=False, threads=25, args=ARGS)
    worker = srv.worker_pid()
    jobs = _jobs("term")
    client = RetryingClient(srv.port)
    try:
        _open_all(client, jobs)
        client.sync()
        srv.proc.send_signal(signal.SIGTERM)
        out = client.run(time.monotonic() + 20)
    finally:
        client.close()
    assert _check(srv, out, jobs) == {worker}
    assert not out.retries, out.reasons  # all were admitted before the signal
    assert srv.proc.wait(20) == 0


def test_sighup_with_50_streams_in_flight(server):
    """Half the requests are in flight when the reload starts; the other
    half are sent on the old connections after their GOAWAY (as if they had
    crossed it): refused, retried on new connections, served by the new
    worker. The first half is held in the app until the second is sent, so
    the old connections are still open however long the new worker takes
    to boot."""
    srv = server(tls=False, threads=25, args=ARGS)
    old = srv.worker_pid()
    jobs = _jobs("hup")
    client = RetryingClient(srv.port)
    try:
        first, second = jobs[: JOBS // 2], jobs[JOBS // 2 :]
        client.hold = "hup"
        _open_all(client, first)
        client.hold = ""
        client.sync()
        srv.proc.send_signal(signal.SIGHUP)
        old_conns = list(client.clients)
        deadline = time.monotonic() + 10
        while not all(c.goaways() or c.closed for c in old_conns):
            assert time.monotonic() < deadline, "no GOAWAY after SIGHUP"
            client.pump()
        for n, job in enumerate(second):
            conn = old_conns[n % CONNS]
            assert client.send(job, conn), "an old connection closed with streams held"
        client.pump()
        (srv.state_dir / "release-hup").touch()
        out = client.run(time.monotonic() + 30)
    finally:
        client.close()
    pids = _check(srv, out, jobs)
    new = srv.worker_pid(other_than=old)
    assert pids == {old, new}, pids
    assert sum(out.retries.values()) == len(second), out.reasons


def test_max_requests_with_50_streams_in_flight(server):
    """--max-requests 20: the worker restarts twice while waves of ten
    requests keep coming; every request is answered once."""
    srv = server(tls=False, threads=25, args=[*ARGS, "--max-requests", "20"])
    first = srv.worker_pid()
    jobs = _jobs("maxreq")
    client = RetryingClient(srv.port)
    try:
        for _ in range(CONNS):
            assert client.connect() is not None
        for wave in range(0, JOBS, 10):
            client.queue.extend(jobs[wave : wave + 10])
            until = time.monotonic() + 0.3
            while time.monotonic() < until:
                while client.queue and client.send(client.queue[0]):
                    client.queue.popleft()
                client.pump()
        out = client.run(time.monotonic() + 30)
    finally:
        client.close()
    pids = _check(srv, out, jobs)
    assert first in pids and len(pids) >= 2, pids
    assert max(Counter(int(r[1].split()[1]) for r in out.results.values()).values()) <= JOBS
    assert "Autorestarting worker" in srv.log()
