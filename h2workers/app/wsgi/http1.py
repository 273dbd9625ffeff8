"""HTTP/1.1 on an h2workers worker: Gunicorn's own code path, plus two names.

Requests are parsed by Gunicorn's ``RequestParser`` and answered through
``gunicorn.http.wsgi.create`` and its ``Response``, exactly as Gunicorn's
gthread worker does, on a blocking socket in the application's thread. On
top, for apps that move between protocols unchanged:

* ``wsgi.early_hints`` (Gunicorn 25+ has it; added here on 23/24) sends
  ``HTTP/1.1 103 Early Hints``;
* ``gunicorn.http2.send_trailers`` sends chunked trailers when the client
  said ``TE: trailers`` and the response is chunked (silently dropped
  otherwise, as HTTP/1.1 requires).

An ``Upgrade: h2c`` request is recognised here and handed back to the driver
as an ``Upgrade`` (RFC 7540 3.2).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from gunicorn import util
from gunicorn.http import RequestParser
from gunicorn.http import wsgi as gwsgi

from h2workers.app.hooks import request_hooks
from h2workers.app.push import preload
from h2workers.app.response import encode_headers
from h2workers.app.wsgi.context import ServeContext
from h2workers.proto.headers import Header
from h2workers.proto.upgrade import SWITCHING_PROTOCOLS, upgrade_block


@dataclass
class Upgrade:
    """An HTTP/1.1 request that switched the connection to h2c."""

    http2_settings: bytes
    block: list[Header]
    body: bytes
    pending: bytes  # bytes read past the request: the client's HTTP/2 preface


class H1Connection:
    """A connection served with HTTP/1.1; owned by one thread at a time."""

    def __init__(self, sock: Any, peer: Any, server: Any, initial: bytes = b"") -> None:
        self.sock = sock
        self.peer = peer
        self.server = server
        self.initial = initial
        self.parser: Any = None
        self.deadline = 0.0

    def has_buffered_input(self) -> bool:
        """Bytes already read (pipelined request) that the selector cannot see."""
        if self.parser is not None and self.parser.unreader.buf.getvalue():
            return True
        pending = getattr(self.sock, "pending", None)
        return bool(pending and pending())


def request_head_limit(cfg: Any) -> int:
    """The longest request head Gunicorn's limits allow (1 MiB if unlimited)."""
    line: int = cfg.limit_request_line
    fields: int = cfg.limit_request_fields
    size: int = cfg.limit_request_field_size
    if line <= 0 or fields <= 0 or size <= 0:
        return 1 << 20
    return line + 2 + fields * (size + 2) + 2


def head_complete(buffered: bytes, limit: int) -> bool:
    """Whether the bytes read so far hold a whole request head, or more than
    any valid head (then the parser answers with its error)."""
    return b"\r\n\r\n" in buffered or len(buffered) > limit


def start_upgrade(conn: H1Connection, req: Any, settings: bytes) -> Upgrade:
    """Read the upgrade request's body, answer 101, describe stream 1."""
    body = req.body.read() if req.body is not None else b""
    pending = conn.parser.unreader.buf.getvalue()
    util.write(conn.sock, SWITCHING_PROTOCOLS)
    return Upgrade(settings, upgrade_block(req), body or b"", pending)


def next_request(conn: H1Connection, cfg: Any) -> Any:
    """Parse the next request with Gunicorn's parser (None: connection done)."""
    if conn.parser is None:
        conn.parser = RequestParser(cfg, conn.sock, conn.peer)
    if conn.initial:  # read by the I/O thread: it comes before what is still unread
        conn.parser.unreader.unread(conn.initial)
        conn.initial = b""
    try:
        return next(conn.parser)
    except StopIteration:
        return None


def _no_early_hints(headers: list[tuple[str, str]]) -> None:
    """``wsgi.early_hints`` with ``http1_early_hints = False``."""


class H1Exchange:
    """One request/response on Gunicorn's HTTP/1.1 machinery."""

    def __init__(self, ctx: ServeContext, conn: H1Connection, req: Any) -> None:
        self.ctx = ctx
        self.conn = conn
        self.req = req
        self.trailers: list[tuple[str, str]] | None = None

    def serve(self, keepalive_allowed: bool) -> bool:
        """Run the app; returns whether the connection may be kept alive.
        An error before the head is sent propagates (the driver answers 500
        through Gunicorn's ``handle_error``)."""
        ctx, req, conn = self.ctx, self.req, self.conn
        with request_hooks(ctx, req) as exchange:
            resp, environ = gwsgi.create(req, conn.sock, conn.peer, conn.server, ctx.cfg)
            exchange.environ, exchange.response = environ, resp
            environ["wsgi.multithread"] = ctx.multithread
            if not ctx.http1_early_hints:  # the operator's proxy cannot take them
                environ["wsgi.early_hints"] = _no_early_hints
            elif "wsgi.early_hints" not in environ:  # Gunicorn 25+ has its own
                environ["wsgi.early_hints"] = self._early_hints_sender(resp)
            environ["gunicorn.http2.send_trailers"] = self._set_trailers
            # no push over HTTP/1.1: the links go out as 103 Early Hints
            environ["h2workers.preload"] = partial(
                preload, push=None, early_hints=environ["wsgi.early_hints"]
            )
            if not keepalive_allowed:
                resp.force_close()
            try:
                result = ctx.app(environ, resp.start_response)
                try:
                    if isinstance(result, environ["wsgi.file_wrapper"]):
                        resp.write_file(result)
                    else:
                        for item in result:
                            resp.write(item)
                    self._finish(resp)
                finally:
                    exchange.logged = resp
                    close = getattr(result, "close", None)
                    if close is not None:
                        close()
            except Exception:
                if not resp.headers_sent:
                    raise
                # Too late for a 500: the connection is the only way to say it.
                ctx.log.exception("Error handling request %s", req.uri)
                return False
            return not resp.should_close()

    def _set_trailers(self, headers: list[tuple[str, str]]) -> None:
        encode_headers(headers)  # same checks as any response header
        self.trailers = list(headers)

    def _finish(self, resp: Any) -> None:
        te = next((v for n, v in self.req.headers if n == "TE"), "")
        wants = "trailers" in (t.strip().lower() for t in te.split(","))
        if not (self.trailers and wants and resp.chunked):
            resp.close()
            return
        if not resp.headers_sent:
            resp.send_headers()
        lines = "".join(f"{name}: {value.strip()}\r\n" for name, value in self.trailers)
        util.write(self.conn.sock, b"0\r\n" + lines.encode("latin-1") + b"\r\n")

    def _early_hints_sender(self, resp: Any) -> Any:
        def send(headers: list[tuple[str, str]]) -> None:
            if resp.headers_sent or self.req.version < (1, 1):
                return
            encode_headers(headers)
            lines = "".join(f"{name}: {value.strip()}\r\n" for name, value in headers)
            util.write(
                self.conn.sock, b"HTTP/1.1 103 Early Hints\r\n" + lines.encode("latin-1") + b"\r\n"
            )

        return send
