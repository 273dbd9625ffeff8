"""The demo's WSGI app: plain WSGI plus the names Gunicorn 25+ defined."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

StartResponse = Callable[..., Any]

PAGE = b"""<!doctype html>
<html><head><title>h2workers demo</title><link rel="stylesheet" href="/style.css"></head>
<body><h1>Served over %(proto)s by h2workers</h1>
<ul>
<li><a href="/slow?n=6">/slow?n=6</a>: six streams of one connection run side by side</li>
<li><a href="/stream">/stream</a>: a body streamed chunk by chunk</li>
<li><a href="/info">/info</a>: what the app sees (protocol, priority)</li>
<li>/trailers: a response with trailers (try <code>nghttp -v</code>)</li>
</ul></body></html>
"""


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "/")
    if path == "/":
        hints = environ.get("wsgi.early_hints")
        if hints is not None:
            hints([("Link", "</style.css>; rel=preload; as=style")])
        body = PAGE % {b"proto": environ["SERVER_PROTOCOL"].encode()}
        return _send(start_response, "200 OK", "text/html; charset=utf-8", body)
    if path == "/style.css":
        return _send(start_response, "200 OK", "text/css", b"body{font-family:sans-serif}")
    if path == "/slow":
        time.sleep(1.0)
        return _send(start_response, "200 OK", "text/plain", b"slept 1s\n")
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _ticks()
    if path == "/info":
        info = {
            "protocol": environ["SERVER_PROTOCOL"],
            "scheme": environ["wsgi.url_scheme"],
            "priority_weight": environ.get("gunicorn.http2.priority_weight"),
            "priority_depends_on": environ.get("gunicorn.http2.priority_depends_on"),
        }
        return _send(start_response, "200 OK", "application/json", json.dumps(info).encode())
    if path == "/trailers":
        return _with_trailers(environ, start_response)
    return _send(start_response, "404 Not Found", "text/plain", b"not found\n")


def _send(start_response: StartResponse, status: str, ctype: str, body: bytes) -> list[bytes]:
    start_response(status, [("Content-Type", ctype), ("Content-Length", str(len(body)))])
    return [body]


def _ticks() -> Iterator[bytes]:
    for i in range(5):
        yield f"tick {i}\n".encode()
        time.sleep(0.2)


def _with_trailers(environ: dict[str, Any], start_response: StartResponse) -> Iterator[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Trailer", "x-checksum")])
    yield b"body first, then trailers\n"
    send_trailers = environ.get("gunicorn.http2.send_trailers")
    if send_trailers is not None:
        send_trailers([("x-checksum", "demo-42")])
