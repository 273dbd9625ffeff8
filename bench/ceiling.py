"""The ``h2-ceiling``: what the ``h2`` library alone can do, in memory.

A client ``H2Connection`` feeds a server ``H2Connection`` (both with the default
configuration) directly, with no sockets, no TLS, no threads and no app. Per
request: the client sends GET headers (``END_STREAM``), the server decodes
them, sends response headers plus a 13-byte DATA frame with ``END_STREAM``, and
the client decodes that and returns the flow-control credit (as any real client
must, or the server's window runs dry after ~5,000 responses).

Two numbers come out: ``req_per_s`` (``h2-ceiling``) counts both ends, as
specified; ``server_req_per_s`` (``h2-ceiling-server``) times only the server
connection's calls (``receive_data`` of the request and of WINDOW_UPDATEs,
``send_headers``, ``send_data``, ``data_to_send``), which is the part a real
server pays when the client is h2load (written in C). One request at a time
goes through the connection; a server that handles several streams per read
(h2load ``-m 10``) amortises some per-call cost and can beat these numbers.

Run alone: ``python -m bench.ceiling [--requests N] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass

import h2.config
import h2.connection
import h2.events

HELLO = b"Hello, world!"

REQUEST_HEADERS = [
    (":method", "GET"),
    (":scheme", "https"),
    (":authority", "127.0.0.1:8443"),
    (":path", "/"),
    ("user-agent", "h2load nghttp2/1.52.0"),
]
RESPONSE_HEADERS = [
    (":status", "200"),
    ("server", "gunicorn"),
    ("date", "Sat, 21 Nov 2026 06:00:00 GMT"),
    ("content-type", "text/plain"),
    ("content-length", str(len(HELLO))),
]


@dataclass
class CeilingResult:
    requests: int
    seconds: float
    req_per_s: float  # client + server work: the number the table calls h2-ceiling
    server_seconds: float
    server_req_per_s: float  # server-side calls only: h2-ceiling-server
    failed: int


def _pair() -> tuple[h2.connection.H2Connection, h2.connection.H2Connection]:
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    client.initiate_connection()
    server.initiate_connection()
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send())  # SETTINGS ACK
    return client, server


def run_ceiling(requests: int) -> CeilingResult:
    """Serve ``requests`` sequential requests through two in-memory connections."""
    client, server = _pair()
    failed = 0
    server_seconds = 0.0
    clock = time.perf_counter
    start = clock()
    for _ in range(requests):
        stream_id = client.get_next_available_stream_id()
        client.send_headers(stream_id, REQUEST_HEADERS, end_stream=True)
        wire = client.data_to_send()
        t0 = clock()
        for event in server.receive_data(wire):
            if isinstance(event, h2.events.RequestReceived):
                sid = event.stream_id
                assert sid is not None
                server.send_headers(sid, RESPONSE_HEADERS)
                server.send_data(sid, HELLO, end_stream=True)
        wire = server.data_to_send()
        server_seconds += clock() - t0
        body = 0
        ended = False
        for event in client.receive_data(wire):
            if isinstance(event, h2.events.DataReceived):
                body += len(event.data)
                client.acknowledge_received_data(event.flow_controlled_length, stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                ended = True
        pending = client.data_to_send()
        if pending:
            t0 = clock()
            server.receive_data(pending)  # WINDOW_UPDATE: server-side work too
            server_seconds += clock() - t0
        if not ended or body != len(HELLO):
            failed += 1
    seconds = clock() - start
    return CeilingResult(
        requests,
        seconds,
        requests / seconds if seconds > 0 else 0.0,
        server_seconds,
        requests / server_seconds if server_seconds > 0 else 0.0,
        failed,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", "-n", type=int, default=20000)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    result = run_ceiling(args.requests)
    if args.json:
        print(json.dumps(asdict(result)))
    else:
        print(
            f"h2-ceiling: {result.requests} requests in {result.seconds:.3f}s = "
            f"{result.req_per_s:,.0f} req/s; server-side calls alone "
            f"{result.server_req_per_s:,.0f} req/s ({result.failed} failed)"
        )
    return 0 if result.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
