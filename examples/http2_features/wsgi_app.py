"""The example site as a WSGI app (run it with GThreadH2, GeventH2 or EventletH2):

    gunicorn --pythonpath examples/http2_features --worker-class h2workers.GThreadH2 \\
        --certfile h2workers/demo/cert.pem --keyfile h2workers/demo/key.pem \\
        --bind 127.0.0.1:8443 wsgi_app:app

``/``            the page; asks for its CSS and JS first (``h2workers.preload``:
                 pushed where the client takes push, else 103 Early Hints)
``/photo/N.png`` generated images, incremental, low urgency
``/slow?ms=300`` waits, then answers: run several at once to see multiplexing
``/checksum``    a body in pieces, then its SHA-256 as a trailer
``/priority``    the priority this request had, as the app sees it
``/health``      for load balancers
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import parse_qs

from content import checksum_pieces, static

StartResponse = Callable[..., Any]


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "/")
    route = ROUTES.get(path)
    if route is not None:
        return route(environ, start_response)
    found = static(path)
    if found is None:
        start_response("404 Not Found", [("content-type", "text/plain")])
        return [b"not found\n"]
    body, headers = found
    if path in ("/", "/index.html"):
        environ["h2workers.preload"]([v for k, v in headers if k == "link"])
    start_response("200 OK", [*headers, ("content-length", str(len(body)))])
    return [body]


def slow(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    query = parse_qs(environ.get("QUERY_STRING", ""))
    ms = min(5000, int(query.get("ms", ["300"])[0]))
    time.sleep(ms / 1000)
    start_response("200 OK", [("content-type", "text/plain")])
    return [f"waited {ms} ms\n".encode()]


def checksum(environ: dict[str, Any], start_response: StartResponse) -> Iterator[bytes]:
    pieces, digest = checksum_pieces()
    start_response(
        "200 OK", [("content-type", "application/octet-stream"), ("trailer", "x-sha256")]
    )
    yield from pieces
    # sent after the last DATA frame (over HTTP/1.1: chunked, if the client sent TE: trailers)
    environ["gunicorn.http2.send_trailers"]([("x-sha256", digest)])


def priority(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    seen = {
        "protocol": environ["SERVER_PROTOCOL"],
        "rfc9218": environ.get("h2workers.priority"),
        "rfc7540_weight": environ.get("gunicorn.http2.priority_weight"),
        "rfc7540_depends_on": environ.get("gunicorn.http2.priority_depends_on"),
    }
    start_response("200 OK", [("content-type", "application/json")])
    return [json.dumps(seen).encode()]


def health(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("content-type", "text/plain")])
    return [b"ok\n"]


ROUTES: dict[str, Callable[[dict[str, Any], StartResponse], Iterable[bytes]]] = {
    "/slow": slow,
    "/checksum": checksum,
    "/priority": priority,
    "/health": health,
}
