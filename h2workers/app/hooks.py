"""The hook sequence of every request: HTTP/1.1 and HTTP/2, WSGI and ASGI.

Gunicorn runs ``pre_request``, the application, the access log line and
``post_request`` around each request; ``request_hooks`` is that sequence
once, for Gunicorn's HTTP/1.1 path (``wsgi/http1.py``), HTTP/2 streams
(``wsgi/serve.py``) and ASGI requests (``asgi/serve.py``), so that they
cannot drift apart. ``HookContext`` holds what the hooks need from the
worker, looked up once per worker; each interface extends it.
"""

from __future__ import annotations

import logging
from datetime import datetime
from types import TracebackType
from typing import Any


class HookContext:
    """What the hooks need from the worker, looked up once per worker
    (Gunicorn's ``Config`` attribute access is slow enough to show per request)."""

    def __init__(self, worker: Any) -> None:
        cfg = worker.cfg
        self.worker = worker
        self.cfg = cfg
        self.log = worker.log
        self.peer_log = worker.peer_log  # a client's mistakes, bounded under floods
        self.http1_early_hints = worker.options.http1_early_hints
        self.pre_request = cfg.pre_request
        self.post_request = cfg.post_request
        # Gunicorn's default pre_request writes one debug line, its default
        # post_request nothing: skipped when they would do nothing
        self.calls_pre_request = _overridden(self.pre_request) or _debug_enabled(worker.log)
        self.calls_post_request = _overridden(self.post_request)
        # Gunicorn's statsd logger counts requests in its access(): it is
        # called for them even with no access log line to write
        statsd = callable(getattr(worker.log, "increment", None))
        self.access_log = statsd or _access_log_enabled(worker.log, cfg)


def _overridden(hook: Any) -> bool:
    """The hook is the user's, not Gunicorn's default."""
    return getattr(hook, "__module__", "") != "gunicorn.config"


def _debug_enabled(log: Any) -> bool:
    error_log = getattr(log, "error_log", None)
    return error_log is None or bool(error_log.isEnabledFor(logging.DEBUG))


def _access_log_enabled(log: Any, cfg: Any) -> bool:
    enabled = getattr(log, "access_log_enabled", None)  # Gunicorn 25+
    if enabled is not None:
        return bool(enabled)
    return bool(  # Gunicorn 23/24: the same rule as its Logger.access
        cfg.accesslog
        or cfg.logconfig
        or getattr(cfg, "logconfig_dict", None)
        or getattr(cfg, "logconfig_json", None)
        or (cfg.syslog and not cfg.disable_redirect_access_to_syslog)
    )


class Exchange:
    """What the request's body of work tells the hooks around it."""

    __slots__ = ("environ", "logged", "response")

    def __init__(self, environ: dict[str, Any]) -> None:
        self.environ = environ  # filled in by then if it starts empty (HTTP/1.1)
        self.response: Any = None  # what post_request gets
        self.logged: Any = None  # set once the response is whole: the access log's


class request_hooks:  # lowercase: used as a function, ``with request_hooks(...)``
    """``pre_request``; the body of the ``with`` (the app); the access log
    line if the body set ``logged``; ``post_request``, whatever happened
    (its own failure is logged, never raised). A class, not a generator
    context manager: this runs for every request."""

    __slots__ = ("ctx", "exchange", "req", "started")

    def __init__(self, ctx: HookContext, req: Any, environ: dict[str, Any] | None = None) -> None:
        self.ctx = ctx
        self.req = req
        self.exchange = Exchange({} if environ is None else environ)
        self.started = datetime.now() if ctx.access_log else None

    def __enter__(self) -> Exchange:
        ctx = self.ctx
        if ctx.calls_pre_request:
            ctx.pre_request(ctx.worker, self.req)
        return self.exchange

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        ctx, exchange = self.ctx, self.exchange
        if self.started is not None and exchange.logged is not None:
            elapsed = datetime.now() - self.started
            ctx.log.access(exchange.logged, self.req, exchange.environ, elapsed)
        if ctx.calls_post_request:
            try:
                ctx.post_request(ctx.worker, self.req, exchange.environ, exchange.response)
            except Exception:
                ctx.log.exception("Exception in post_request hook")
