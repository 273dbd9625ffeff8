"""``python -m h2workers.demo``: serve the demo app with GThreadH2.

Runs Gunicorn with ``--worker-class h2workers.GThreadH2`` on the embedded
certificate. ``--check`` starts it, fetches a page over HTTP/2 and
HTTP/1.1, prints what came back and stops it: a quick proof the install works.
"""

from __future__ import annotations

import argparse
import os
import socket
import ssl
import subprocess
import sys
import time

from . import CERTFILE, KEYFILE


def gunicorn_command(bind: str, threads: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--worker-class",
        "h2workers.GThreadH2",
        "--threads",
        str(threads),
        "--bind",
        bind,
        "--certfile",
        CERTFILE,
        "--keyfile",
        KEYFILE,
        "--access-logfile",
        "-",
        "h2workers.demo.app:app",
    ]


def fetch(host: str, port: int, alpn: str) -> tuple[str, bytes]:
    """GET / over TLS with the given ALPN; returns (protocol, body)."""
    import h2.config
    import h2.connection
    import h2.events

    context = ssl.create_default_context(cafile=CERTFILE)
    context.set_alpn_protocols([alpn])
    with (
        socket.create_connection((host, port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        if tls.selected_alpn_protocol() != "h2":
            tls.sendall(b"GET /info HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := tls.recv(65536):
                data += chunk
            return "HTTP/1.1", data.split(b"\r\n\r\n", 1)[1]
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        conn.send_headers(
            1,
            [
                (":method", "GET"),
                (":scheme", "https"),
                (":authority", "localhost"),
                (":path", "/info"),
            ],
            end_stream=True,
        )
        tls.sendall(conn.data_to_send())
        body = b""
        while True:
            for event in conn.receive_data(tls.recv(65536)):
                if isinstance(event, h2.events.DataReceived):
                    body += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, 1)
                if isinstance(event, h2.events.StreamEnded):
                    return "HTTP/2", body
            tls.sendall(conn.data_to_send())


def check(bind: str, threads: int) -> int:
    host, _, port_text = bind.rpartition(":")
    port = int(port_text)
    server = subprocess.Popen(gunicorn_command(bind, threads))
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                for alpn in ("h2", "http/1.1"):
                    proto, body = fetch(host, port, alpn)
                    print(f"{proto}: {body.decode()}")
                return 0
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    print("the demo server did not answer", file=sys.stderr)
                    return 1
                time.sleep(0.2)
    finally:
        server.terminate()
        server.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m h2workers.demo", description=__doc__)
    parser.add_argument("--bind", default="127.0.0.1:8443")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--check", action="store_true", help="start, fetch, print, stop")
    args = parser.parse_args()
    if args.check:
        return check(args.bind, args.threads)
    print(f"h2workers demo on https://{args.bind}/ (self-signed demo certificate)")
    print(f"  curl -k --http2 https://{args.bind}/info")
    print(f"  curl -k --http1.1 https://{args.bind}/info")
    print(f"  nghttp -v https://{args.bind}/trailers")
    command = gunicorn_command(args.bind, args.threads)
    os.execv(command[0], command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
