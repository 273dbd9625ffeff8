"""AsgiH2: HTTP/2 and HTTP/1.1 for ASGI apps on asyncio (uvloop if installed).

One event loop per worker; a task per HTTP/2 stream and per HTTP/1.1
request. The loop owns the sockets (``create_server`` over Gunicorn's
listeners, TLS with ALPN by asyncio's SSL transport); each connection is a
``LoopConnection`` that becomes an HTTP/2 ``Session`` (shared with every
other driver) or an h11 connection. The ASGI ``lifespan`` runs before the
first connection is accepted and after the last one closed. Works on
Gunicorn 23 (which has no ASGI worker) and on the newest.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import signal
import sys
import time
from collections.abc import Coroutine
from typing import Any

from h2workers.app.asgi.lifespan import Lifespan, LifespanFailed
from h2workers.app.asgi.runner import ASGIApp
from h2workers.app.asgi.serve import AsgiContext, serve_h2
from h2workers.drivers.aio.connection import H2Protocol, LoopConnection
from h2workers.drivers.base import H2Worker
from h2workers.session.channel import AsyncChannel
from h2workers.session.session import Session
from h2workers.session.stream import Stream

TICK = 1.0
WORKER_BOOT_ERROR = 3  # Gunicorn's exit code: the arbiter stops instead of respawning


class AsgiH2(H2Worker):
    """Gunicorn worker class ``h2workers.AsgiH2``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # WebSockets over HTTP/2 (RFC 8441): SETTINGS_ENABLE_CONNECT_PROTOCOL
        h2 = dataclasses.replace(self.options.h2, enable_connect_protocol=True)
        self.options = dataclasses.replace(self.options, h2=h2)
        self.conns: set[LoopConnection] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.fast_http1 = self.options.fast_http1  # httptools parses HTTP/1.1

    def init_process(self) -> None:
        """A fresh loop after the fork: uvloop's when it is installed (TLS
        is ours, over the loop's TCP transports: see tls.py)."""
        self.loop = _new_loop()
        asyncio.set_event_loop(self.loop)
        super().init_process()

    def load_wsgi(self) -> None:
        super().load_wsgi()
        self.asgi_app = as_asgi3(self.wsgi)

    serve_context: AsgiContext  # type: ignore[assignment]

    def run(self) -> None:
        try:
            self.loop.run_until_complete(self._serve())
        finally:
            self.loop.close()

    async def _serve(self) -> None:
        self.stop_requested = asyncio.Event()
        self._watch_signals()
        lifespan = Lifespan(self.asgi_app, self.log)
        try:
            await lifespan.startup()
        except LifespanFailed as exc:
            self.log.error("Application startup failed, worker stopping: %s", exc)
            sys.exit(WORKER_BOOT_ERROR)
        state = lifespan.state if lifespan.supported else None
        self.serve_context = AsgiContext(self, self.asgi_app, state)
        servers = [await self._listen(listener) for listener in self.sockets]
        while self.alive:
            self._tick()
            try:
                await asyncio.wait_for(self.stop_requested.wait(), TICK)
            except asyncio.TimeoutError:
                pass
        for server in servers:
            server.close()
        await self._stop()
        await lifespan.shutdown()

    async def _listen(self, listener: Any) -> asyncio.AbstractServer:
        return await self.loop.create_server(
            lambda: LoopConnection(self),
            sock=listener.sock,  # TLS: LoopConnection runs it (see tls.py)
            backlog=self.cfg.backlog,
        )

    def _watch_signals(self) -> None:
        """SIGTERM (and ``max_requests``) wake the loop at once: GOAWAY now."""
        loop = self.loop
        loop.add_signal_handler(signal.SIGTERM, self._request_stop)
        for sig, handler in ((signal.SIGQUIT, self.handle_quit), (signal.SIGINT, self.handle_quit),
                             (signal.SIGUSR1, self.handle_usr1)):  # fmt: skip
            loop.add_signal_handler(sig, handler, sig, None)

    def _request_stop(self) -> None:
        self.alive = False
        self.stop_requested.set()

    def count_request(self) -> None:
        super().count_request()
        if not self.alive:
            self.stop_requested.set()

    def _tick(self) -> None:
        now = time.monotonic()
        self.heartbeat()
        self.trim_heap(now)
        expired: dict[str, list[Any]] = {}
        late: list[LoopConnection] = []
        for conn in list(self.conns):
            what = conn.tick(now)
            if what is not None:
                expired.setdefault(what, []).append(conn.peer)
                late.append(conn)
        self.log_unfinished(expired)
        for conn in late:
            conn.abort()

    async def _stop(self) -> None:
        """GOAWAY everywhere; requests in progress get ``graceful_timeout``."""
        now = time.monotonic()
        deadline = now + self.cfg.graceful_timeout
        for conn in list(self.conns):
            conn.stop(now)
        while self.conns and time.monotonic() < deadline:
            self.notify()
            await asyncio.sleep(0.1)
        for conn in list(self.conns):
            conn.abort()
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=1.0)

    # -- connections and tasks -----------------------------------------------------

    def adopt(self, conn: LoopConnection) -> None:
        self.adopted += 1
        self.conns.add(conn)

    def release(self, conn: LoopConnection) -> None:
        self.conns.discard(conn)

    def start_task(self, work: Coroutine[Any, Any, None]) -> None:
        task = self.loop.create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # -- the sessions' Host --------------------------------------------------------

    def start(self, session: Session, stream: Stream) -> None:
        if not self.admit(session, stream):
            return
        self.start_task(serve_h2(self.serve_context, AsyncChannel(session, stream)))

    def wake(self, stream: Stream) -> None:
        stream.wake()

    def dirty(self, session: Session) -> None:
        transport = session.transport
        assert isinstance(transport, H2Protocol)
        transport.schedule_flush()

    def closed(self, session: Session) -> None:
        pass  # the LoopConnection leaves the table when asyncio reports the loss


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()  # type: ignore[no-any-return, unused-ignore]


def as_asgi3(app: Any) -> ASGIApp:
    """ASGI 3 as it is; an ASGI 2 app (a class, or a callable of one
    argument returning the coroutine function) wrapped."""
    if _is_asgi2(app):

        async def asgi3(scope: Any, receive: Any, send: Any) -> None:
            instance = app(scope)
            await instance(receive, send)

        return asgi3
    return app  # type: ignore[no-any-return]


def _is_asgi2(app: Any) -> bool:
    if inspect.isclass(app):
        return True
    plain = inspect.isfunction(app) or inspect.ismethod(app)
    call = app if plain else type(app).__call__
    if inspect.iscoroutinefunction(call):
        return False
    try:
        return len(inspect.signature(call).parameters) == 1
    except (TypeError, ValueError):
        return False
