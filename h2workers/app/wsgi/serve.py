"""Serving one HTTP/2 stream with a WSGI app, as Gunicorn serves a request.

Driver-neutral: a driver calls ``serve_h2`` where application code runs (a
pool thread, a greenlet) with the stream's ``SyncChannel``. The sequence is
Gunicorn's: the request policy (``environ.EnvironBuilder``), ``pre_request``,
the app (``runner.WSGIStream``), the error log, the access log,
``post_request``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from h2.errors import ErrorCodes

from h2workers.app.hooks import request_hooks
from h2workers.app.request import RequestInfo
from h2workers.app.wsgi.context import ServeContext
from h2workers.app.wsgi.environ import EnvironBuilder, RequestRejected
from h2workers.app.wsgi.runner import Channel, WSGIStream, reject
from h2workers.errors import StreamClosed
from h2workers.proto.headers import RequestHead
from h2workers.proto.priority import StreamPriority
from h2workers.session.channel import SyncChannel
from h2workers.session.stream import StreamState


def serve_stream(
    ctx: ServeContext,
    channel: Channel,
    environ: dict[str, Any],
    req: RequestInfo,
    head: RequestHead | None = None,
) -> None:
    """Serve one stream inside the worker's hooks, error log and access log."""
    with request_hooks(ctx, req, environ) as exchange:
        stream = WSGIStream(ctx.app, channel, environ, req, head)
        exchange.response = stream.info  # the hooks see it even if run() fails
        stream.run()  # never raises: a failure becomes a 500 or a reset
        if stream.error is not None:
            ctx.log.error("Error handling request %s", req.uri, exc_info=stream.error)
        exchange.logged = stream.info


def serve_h2(ctx: ServeContext, channel: SyncChannel) -> None:
    """Serve one stream where the driver runs application code; never raises."""
    session, stream = channel.session, channel.stream
    if stream.state is not StreamState.OPEN:
        return  # reset while it waited for a thread: the app never runs
    try:
        try:
            environ, req = _environ_builder(ctx, session).build(stream.stream_id, stream.head)
        except RequestRejected as exc:
            ctx.peer_log.warning("Invalid request from ip=%s: %s", session.peer_ip, exc)
            reject(channel, exc)
            return
        environ["wsgi.multithread"] = ctx.multithread
        stream.watch_priority(_priority_keys(environ, req))
        serve_stream(ctx, channel, environ, req, stream.head)
    except StreamClosed:
        pass
    except Exception:
        ctx.log.exception("Error serving HTTP/2 stream %d", stream.stream_id)
        channel.reset(ErrorCodes.INTERNAL_ERROR)
    finally:
        channel.finish()


def _environ_builder(ctx: ServeContext, session: Any) -> EnvironBuilder:
    """One per connection, built on first use: an idle connection should
    cost as little as possible (two threads racing here build equal copies)."""
    builder: EnvironBuilder | None = session.app_context
    if builder is None:
        builder = EnvironBuilder(
            ctx.cfg, ctx.base_environ, session.peer, session.server, session.secure
        )
        session.app_context = builder
    return builder


def _priority_keys(environ: dict[str, Any], req: RequestInfo) -> Callable[[StreamPriority], None]:
    """Keep the priority keys (and the request's fields) current: Gunicorn's
    RFC 7540 pair, and ``h2workers.priority`` with RFC 9218's values."""

    def show(priority: StreamPriority) -> None:
        req.priority_weight, req.priority_depends_on = priority.weight, priority.depends_on
        environ["gunicorn.http2.priority_weight"] = priority.weight
        environ["gunicorn.http2.priority_depends_on"] = priority.depends_on
        environ["h2workers.priority"] = {
            "urgency": priority.urgency,
            "incremental": priority.incremental,
        }

    return show
