"""The example site as an ASGI app (run it with AsgiH2), the twin of
``wsgi_app.py``, through the ASGI extensions:

    gunicorn --pythonpath examples/http2_features --worker-class h2workers.AsgiH2 \\
        --certfile h2workers/demo/cert.pem --keyfile h2workers/demo/key.pem \\
        --bind 127.0.0.1:8443 asgi_app:app

Push is ``http.response.push`` (offered only where the client takes push),
early hints ``http.response.informational``, trailers
``http.response.trailers``, and the priority the app sees is in
``http.response.priority``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from content import checksum_pieces, link_paths, static

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    route = ROUTES.get(scope["path"])
    if route is not None:
        await route(scope, receive, send)
        return
    found = static(scope["path"])
    if found is None:
        await respond(send, 404, [("content-type", "text/plain")], b"not found\n")
        return
    body, headers = found
    if scope["path"] in ("/", "/index.html"):
        await preload(scope, send, [v for k, v in headers if k == "link"])
    await respond(send, 200, [*headers, ("content-length", str(len(body)))], body)


async def preload(scope: Scope, send: Send, links: list[str]) -> None:
    """Push the links where the client takes push, else a 103 Early Hints."""
    if "http.response.push" in scope.get("extensions", {}):
        for path in link_paths(links):
            await send({"type": "http.response.push", "path": path, "headers": []})
        return
    hints = [(b"link", link.encode()) for link in links]
    await send({"type": "http.response.informational", "status": 103, "headers": hints})


async def slow(scope: Scope, receive: Receive, send: Send) -> None:
    query = parse_qs(scope["query_string"].decode())
    ms = min(5000, int(query.get("ms", ["300"])[0]))
    await asyncio.sleep(ms / 1000)
    await respond(send, 200, [("content-type", "text/plain")], f"waited {ms} ms\n".encode())


async def checksum(scope: Scope, receive: Receive, send: Send) -> None:
    pieces, digest = checksum_pieces()
    trailers = "http.response.trailers" in scope.get("extensions", {})
    head = [(b"content-type", b"application/octet-stream"), (b"trailer", b"x-sha256")]
    await send(
        {"type": "http.response.start", "status": 200, "headers": head, "trailers": trailers}
    )
    for piece in pieces:
        await send({"type": "http.response.body", "body": piece, "more_body": True})
    await send({"type": "http.response.body", "body": b""})
    if trailers:
        await send({"type": "http.response.trailers", "headers": [(b"x-sha256", digest.encode())]})


async def priority(scope: Scope, receive: Receive, send: Send) -> None:
    shown = scope.get("extensions", {}).get("http.response.priority") or {}
    seen = {
        "protocol": f"HTTP/{scope['http_version']}",
        "rfc9218": {k: shown[k] for k in ("urgency", "incremental") if k in shown} or None,
        "rfc7540_weight": shown.get("weight"),
        "rfc7540_depends_on": shown.get("depends_on"),
    }
    await respond(send, 200, [("content-type", "application/json")], json.dumps(seen).encode())


async def health(scope: Scope, receive: Receive, send: Send) -> None:
    await respond(send, 200, [("content-type", "text/plain")], b"ok\n")


async def respond(send: Send, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
    encoded = [(k.encode(), v.encode()) for k, v in headers]
    await send({"type": "http.response.start", "status": status, "headers": encoded})
    await send({"type": "http.response.body", "body": body})


ROUTES: dict[str, Callable[[Scope, Receive, Send], Awaitable[None]]] = {
    "/slow": slow,
    "/checksum": checksum,
    "/priority": priority,
    "/health": health,
}
