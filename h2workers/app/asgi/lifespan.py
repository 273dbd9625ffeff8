"""The ASGI ``lifespan`` protocol: startup before the first connection is
accepted, shutdown after the last one closed.

An app without lifespan support (it raises on the ``lifespan`` scope, or
returns, before answering startup) is served all the same, with a debug
line, as uvicorn's ``lifespan=auto`` does. ``startup.failed`` stops the
worker with the app's message. The ``state`` dict the app fills in is copied
into every request's scope.
"""

from __future__ import annotations

import asyncio
from typing import Any

from h2workers.app.asgi.runner import ASGIApp, Message
from h2workers.app.asgi.scope import ASGI_VERSION
from h2workers.errors import H2WorkersError


class LifespanFailed(H2WorkersError):
    """The app answered ``lifespan.startup.failed`` (or failed shutdown)."""


class Lifespan:
    """Runs the app's lifespan task beside the worker."""

    def __init__(self, app: ASGIApp, log: Any) -> None:
        self.app = app
        self.log = log
        self.state: dict[str, Any] = {}
        self.supported = True
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._answer: asyncio.Future[Message] | None = None
        self._asking = ""  # the message whose answer is awaited
        self._task: asyncio.Task[None] | None = None

    async def startup(self) -> None:
        """Raises LifespanFailed if the app refused to start."""
        scope = {"type": "lifespan", "asgi": ASGI_VERSION, "state": self.state}
        self._task = asyncio.get_running_loop().create_task(self._run(scope))
        answer = await self._ask("lifespan.startup")
        if answer["type"] == "lifespan.startup.failed":
            raise LifespanFailed(answer.get("message", "") or "lifespan startup failed")

    async def shutdown(self) -> None:
        if not self.supported or self._task is None:
            return
        answer = await self._ask("lifespan.shutdown")
        if answer["type"] == "lifespan.shutdown.failed":
            self.log.error("ASGI lifespan shutdown failed: %s", answer.get("message", ""))
        await asyncio.wait([self._task], timeout=1.0)

    async def _ask(self, kind: str) -> Message:
        self._asking = kind
        self._answer = asyncio.get_running_loop().create_future()
        await self._inbox.put({"type": kind})
        return await self._answer

    async def _run(self, scope: dict[str, Any]) -> None:
        try:
            await self.app(scope, self._inbox.get, self._send)
        except Exception as exc:
            self._unsupported(f"{type(exc).__name__}: {exc}")
        else:
            self._unsupported("its lifespan returned")

    def _unsupported(self, why: str) -> None:
        """The app ended its lifespan task without answering: at startup, it
        does not support lifespan; at shutdown, there is nothing to wait for."""
        answer = self._answer
        if answer is None or answer.done():
            return
        if self._asking == "lifespan.startup":
            self.supported = False
            self.log.debug("ASGI lifespan not supported by the app (%s)", why)
        else:
            self.log.error("ASGI lifespan ended during shutdown (%s)", why)
        answer.set_result({"type": self._asking + ".complete"})

    async def _send(self, message: Message) -> None:
        kind = message["type"]
        if kind not in (
            "lifespan.startup.complete",
            "lifespan.startup.failed",
            "lifespan.shutdown.complete",
            "lifespan.shutdown.failed",
        ):
            raise RuntimeError(f"unexpected ASGI lifespan message {kind!r}")
        answer = self._answer
        if answer is None or answer.done():
            raise RuntimeError(f"{kind} sent when nothing was asked")
        answer.set_result(message)
