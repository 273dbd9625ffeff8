"""Whose bytes go first: the byte shares of prioritised responses, side by side.

    python -m bench.priority                          # h2workers' four classes and the peers
    python -m bench.priority --servers h2workers,gunicorn-native

Each case opens one h2c connection whose client reads like a slow link:
every stream's window is 1 GiB and the connection window reopens only by
what it has read (64 KiB), so each window update is the server's choice of
which response gets the next bytes. The responses are 4 MiB (``/big?mb=4``
of ``bench/apps.py``), asked for at once. Printed per case and server:

- urgency: ``u=5`` then ``u=0``; the share of the ``u=5`` response when the
  ``u=0`` one completes (RFC 9218: close to 0%);
- update: ``u=1`` and ``u=4``; once a quarter of the first is in, a
  PRIORITY_UPDATE swaps them; what more of the first arrived before the
  second completed (close to 0%);
- weights: RFC 7540 weights 256 and 32 on siblings; heavy:light bytes while
  both send (about 8);
- incremental: two ``u=3, i``; the smaller's share (close to 50%) and the
  longest run of one stream's frames (small: they interleave);
- default: no signal at all; the second response's share when the first
  completes (RFC 9218's default is one after the other: close to 0%).

Ratios and shares only: no time is measured.
"""

from __future__ import annotations

import argparse
import socket
import struct
import tempfile
from collections.abc import Callable
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import h2.settings

from bench.servers import SERVERS, Launch, free_port, start, stop

SIZE = 4 * 2**20
PEERS = ["h2workers", "h2workers-gevent", "h2workers-eventlet", "h2workers-asgi"]
PEERS += ["gunicorn-native", "gunicorn-asgi", "hypercorn"]


class SlowReader:
    """An h2c client that reopens only the connection window, as it reads."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None)
        )
        self.conn.local_settings = h2.settings.Settings(
            client=True, initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 2**30}
        )
        self.conn.initiate_connection()
        self.sock.sendall(self.conn.data_to_send())
        self.seen: dict[int, int] = {}
        self.runs: list[int] = []  # stream id of each DATA frame, in order
        self.done: set[int] = set()

    def get(self, priority: str | None = None, weight: int | None = None) -> int:
        sid = self.conn.get_next_available_stream_id()
        block = [
            (b":method", b"GET"),
            (b":scheme", b"http"),
            (b":authority", b"127.0.0.1"),
            (b":path", b"/big?mb=4"),
        ]
        if priority is not None:
            block.append((b"priority", priority.encode()))
        extra = {} if weight is None else {"priority_weight": weight, "priority_depends_on": 0}
        self.conn.send_headers(sid, block, end_stream=True, **extra)
        self.sock.sendall(self.conn.data_to_send())
        return sid

    def update(self, sid: int, value: bytes) -> None:
        payload = struct.pack(">I", sid) + value
        frame = struct.pack(">I", len(payload))[1:] + bytes((0x10, 0, 0, 0, 0, 0)) + payload
        self.sock.sendall(frame)

    def read_until(self, done: Callable[[dict[int, int]], bool]) -> dict[int, int]:
        while not done(self.seen):
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the server closed the connection")
            arrived = 0
            for event in self.conn.receive_data(data):
                if isinstance(event, h2.events.DataReceived):
                    sid = event.stream_id
                    self.seen[sid] = self.seen.get(sid, 0) + len(event.data)
                    self.runs.append(sid)
                    arrived += event.flow_controlled_length
                elif isinstance(event, h2.events.StreamEnded):
                    self.done.add(event.stream_id)
            if arrived:
                self.conn.increment_flow_control_window(arrived)
            self.sock.sendall(self.conn.data_to_send())
        return dict(self.seen)

    def close(self) -> None:
        self.sock.close()


def share(part: int, whole: int = SIZE) -> str:
    return f"{100 * part / whole:.1f}%"


def case_urgency(port: int) -> str:
    client = SlowReader(port)
    lazy, urgent = client.get("u=5"), client.get("u=0")
    seen = client.read_until(lambda s: s.get(urgent, 0) >= SIZE)
    client.close()
    return f"u=5 had {share(seen.get(lazy, 0))} when u=0 completed"


def case_update(port: int) -> str:
    client = SlowReader(port)
    first, second = client.get("u=1"), client.get("u=4")
    at_swap = client.read_until(lambda s: s.get(first, 0) >= SIZE // 4)
    client.update(first, b"u=6")
    client.update(second, b"u=0")
    seen = client.read_until(lambda s: s.get(second, 0) >= SIZE)
    client.close()
    more = seen[first] - at_swap[first]
    return f"after the swap the first got {share(more)} more before the second completed"


def case_weights(port: int) -> str:
    client = SlowReader(port)
    heavy, light = client.get(weight=256), client.get(weight=32)
    seen = client.read_until(lambda s: s.get(heavy, 0) >= SIZE // 2)
    client.close()
    ratio = seen[heavy] / max(1, seen.get(light, 0))
    return f"heavy:light = {ratio:.1f}:1 while both sent"


def case_incremental(port: int) -> str:
    client = SlowReader(port)
    one, two = client.get("u=3, i"), client.get("u=3, i")
    seen = client.read_until(lambda s: s.get(one, 0) + s.get(two, 0) >= SIZE)
    client.close()
    longest, run = 1, 1
    for before, after in zip(client.runs, client.runs[1:], strict=False):
        run = run + 1 if before == after else 1
        longest = max(longest, run)
    smaller = min(seen.get(one, 0), seen.get(two, 0))
    return f"smaller share {share(smaller, SIZE)} of 4 MiB, longest run {longest} frames"


def case_default(port: int) -> str:
    client = SlowReader(port)
    first, second = client.get(), client.get()
    seen = client.read_until(lambda s: s.get(first, 0) >= SIZE)
    client.close()
    return f"the second had {share(seen.get(second, 0))} when the first completed"


CASES = {
    "urgency": case_urgency,
    "update": case_update,
    "weights": case_weights,
    "incremental": case_incremental,
    "default": case_default,
}


def measure(name: str, workdir: Path) -> dict[str, str]:
    spec = SERVERS[name]
    missing = spec.missing()
    if missing:
        return dict.fromkeys(CASES, f"skipped: {missing}")
    launch = Launch(name, "bodies", None, free_port(), workdir)
    server = start(spec, launch, h1=False, core=None)
    try:
        results = {}
        for case, run in CASES.items():
            try:
                results[case] = run(launch.port)
            except (OSError, ConnectionError) as exc:
                results[case] = f"failed: {exc}"
        return results
    finally:
        stop(server)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", default=",".join(PEERS))
    args = parser.parse_args()
    names = [name for name in args.servers.split(",") if name]
    with tempfile.TemporaryDirectory() as tmp:
        table = {name: measure(name, Path(tmp)) for name in names}
    width = max(len(name) for name in names)
    for case in CASES:
        print(f"\n{case}")
        for name in names:
            print(f"  {name:<{width}}  {table[name][case]}")


if __name__ == "__main__":
    main()
