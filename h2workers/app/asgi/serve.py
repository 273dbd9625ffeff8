"""Serving one request with an ASGI app, as Gunicorn serves a request.

Driver-neutral: the asyncio driver runs ``serve_h2`` in a task per HTTP/2
stream (its ``AsyncChannel`` from ``session/channel.py``) and
``serve_request`` per HTTP/1.1 request (``drivers/aio/http1.py``). The
sequence is the WSGI workers': the request policy (``scope.ScopeBuilder``),
``pre_request``, the app (``runner.ASGIStream``), the error log, the access
log, ``post_request`` (``app/hooks.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from h2.errors import ErrorCodes

from h2workers.app.asgi.runner import ASGIApp, ASGIStream, PushExtension, Scope, rejected
from h2workers.app.asgi.scope import ScopeBuilder, tls_extension
from h2workers.app.asgi.websocket import (
    ASGIWebSocket,
    StreamWebSocket,
    WebSocketTransport,
    websocket_scope,
)
from h2workers.app.hooks import HookContext, request_hooks
from h2workers.app.request import RequestInfo
from h2workers.errors import RequestRejected, StreamClosed
from h2workers.proto.headers import RequestHead
from h2workers.proto.priority import StreamPriority
from h2workers.session.stream import Stream, StreamState


class AsgiContext(HookContext):
    """What serving a request needs from the worker, looked up once."""

    def __init__(self, worker: Any, app: ASGIApp, state: dict[str, Any] | None) -> None:
        super().__init__(worker)
        self.app = app
        self.state = state  # lifespan's, copied into each scope (None: no lifespan)
        self.websocket = worker.options.websocket  # limits and keep-alive pings
        # post_request gets an environ: build one only if someone reads it
        self.wants_environ = self.access_log or self.calls_post_request
        # what every request may use, whatever its protocol (see connection_extensions)
        self.extensions: dict[str, Any] = {
            "http.response.trailers": {},
            "http.response.early_hint": {},
            "http.response.pathsend": {},
        }

    def builder(self, peer: Any, server: Any, tls: Any, http_version: str) -> ScopeBuilder:
        """The scope builder of a connection (``tls``: its SSL object, or None)."""
        extensions = dict(self.extensions)
        if tls is not None:
            extensions["tls"] = tls_extension(tls)
        return ScopeBuilder(self.cfg, peer, server, tls is not None, http_version, extensions)


async def serve_request(
    ctx: AsgiContext,
    channel: Any,
    builder: ScopeBuilder,
    head: RequestHead,
    stream: Stream | None = None,
) -> None:
    """One request inside the worker's hooks; never raises (but for
    cancellation). ``channel``: an ``AsyncChannel`` with ``finish()``;
    ``stream``: the HTTP/2 stream, whose priority the scope shows."""
    try:
        try:
            scope, req = builder.build(channel.stream_id, head, ctx.state)
            if stream is not None:
                stream.watch_priority(_priority_extension(scope))
        except RequestRejected as exc:
            ctx.peer_log.warning("Invalid request from ip=%s: %s", builder.client_ip, exc)
            await rejected(channel, exc)
            return
        with request_hooks(ctx, req) as exchange:
            expect = any(n == b"expect" and v.lower() == b"100-continue" for n, v in head.headers)
            runner = ASGIStream(ctx.app, channel, scope, expect_continue=expect)
            if stream is not None and channel.can_push:
                scope["extensions"]["http.response.push"] = PushExtension(runner)
            exchange.response = runner.info
            if ctx.wants_environ:
                exchange.environ = access_environ(scope, req)
            await runner.run()
            if runner.error is not None:
                ctx.log.error("Error handling request %s", req.uri, exc_info=runner.error)
            exchange.logged = runner.info
    except StreamClosed:
        pass
    except Exception:
        ctx.log.exception("Error serving request %d", channel.stream_id)
        channel.reset(ErrorCodes.INTERNAL_ERROR)
    finally:
        channel.finish()


async def serve_h2(ctx: AsgiContext, channel: Any) -> None:
    """One HTTP/2 stream (a task per stream)."""
    session, stream = channel.session, channel.stream
    if stream.state is not StreamState.OPEN:
        channel.finish()
        return  # reset before its task ran
    builder: ScopeBuilder | None = session.app_context
    if builder is None:
        tls = getattr(session.transport, "tls", None)  # the driver's SSL object
        builder = session.app_context = ctx.builder(session.peer, session.server, tls, "2")
    head = stream.head
    if head.method == b"CONNECT" and head.protocol == b"websocket":  # RFC 8441
        try:
            await serve_websocket(ctx, StreamWebSocket(channel), builder, head, stream.stream_id)
        finally:
            channel.finish()
        return
    await serve_request(ctx, channel, builder, head, stream)


async def serve_websocket(
    ctx: AsgiContext,
    transport: WebSocketTransport,
    builder: ScopeBuilder,
    head: RequestHead,
    stream_id: int = 1,
) -> None:
    """One WebSocket inside the worker's hooks; never raises (but for
    cancellation). The access log shows 101, or the denial's status."""
    try:
        scope, req = builder.build(stream_id, head, ctx.state)
    except RequestRejected as exc:
        ctx.peer_log.warning("Invalid request from ip=%s: %s", builder.client_ip, exc)
        body = f"{exc.status} {exc.reason}\n".encode()
        await transport.deny(exc.status, [(b"content-length", b"%d" % len(body))], body, True)
        return
    with request_hooks(ctx, req) as exchange:
        ws = ASGIWebSocket(ctx.app, transport, websocket_scope(scope), ctx.websocket)
        exchange.response = ws.info
        if ctx.wants_environ:
            exchange.environ = access_environ(scope, req)
        await ws.run()
        if ws.error is not None:
            ctx.log.error("Error handling WebSocket %s", req.uri, exc_info=ws.error)
        exchange.logged = ws.info


def _priority_extension(scope: Scope) -> Callable[[StreamPriority], None]:
    """``http.response.priority``: Gunicorn's asgi worker's keys (RFC 7540
    ``weight`` and ``depends_on``) and RFC 9218's ``urgency`` and
    ``incremental``, kept current as PRIORITY and PRIORITY_UPDATE frames
    arrive."""
    shown: dict[str, int | bool] = {}
    scope["extensions"]["http.response.priority"] = shown

    def show(priority: StreamPriority) -> None:
        shown.update(priority.as_dict())

    return show


def access_environ(scope: Scope, req: RequestInfo) -> dict[str, Any]:
    """The environ Gunicorn's access log and ``post_request`` read, from the
    scope (an ASGI request has no WSGI environ of its own)."""
    client = scope.get("client")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": req.method,
        "RAW_URI": req.uri,
        "PATH_INFO": scope["path"],
        "QUERY_STRING": req.query,
        "SCRIPT_NAME": scope["root_path"],
        "SERVER_PROTOCOL": "HTTP/2.0" if scope["http_version"] == "2" else "HTTP/1.1",
        "wsgi.url_scheme": scope["scheme"],
        "REMOTE_ADDR": client[0] if client else "",
        "REMOTE_PORT": str(client[1]) if client else "",
    }
    for name, value in req.headers:
        key = "HTTP_" + name.replace("-", "_")
        environ[key] = value if key not in environ else f"{environ[key]},{value}"
    return environ
