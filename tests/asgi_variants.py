"""ASGI apps for AsgiH2's start-up paths (tests/e2e/test_asgi.py)."""

from __future__ import annotations

from typing import Any


async def failing_startup(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Refuses to start: the worker must stop with this message."""
    assert scope["type"] == "lifespan"
    await receive()
    await send({"type": "lifespan.startup.failed", "message": "the database is unreachable"})


class Asgi2App:
    """An ASGI 2 app: a class whose instance (one per scope) is awaited."""

    def __init__(self, scope: dict[str, Any]) -> None:
        self.scope = scope

    async def __call__(self, receive: Any, send: Any) -> None:
        if self.scope["type"] != "http":
            return
        body = b"asgi2 " + self.scope["http_version"].encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"%d" % len(body))]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})
