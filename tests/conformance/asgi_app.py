"""The ASGI twin of ``tests/conformance/app.py`` (AsgiH2 serves it in its
place): ``tests.asgi_apps`` plus the route whose response head carries what
HTTP/2 forbids on the wire, which the server must drop or lowercase."""

from __future__ import annotations

from tests.asgi_apps import Receive, Scope, Send
from tests.asgi_apps import app as base_app
from tests.conformance.app import HOP_BY_HOP


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http" and scope["path"] == "/hop-by-hop":
        headers = [(n.encode(), v.encode()) for n, v in HOP_BY_HOP]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    await base_app(scope, receive, send)
