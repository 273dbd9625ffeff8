"""What every h2workers worker class does the same way, whatever its model.

``H2Worker`` is the Gunicorn ``Worker`` part each driver shares: the
``http2_*`` settings checked in the master before any worker forks, the
request count behind ``max_requests``, the arbiter's heartbeat and the
parent check on each tick, the one log line a tick for connections that
never finished their TLS handshake, preface or request head, and how an
HTTP/1.1 request's error is reported (as Gunicorn's own workers do). A
driver adds its loop, where application code runs, and how a stream waits.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import gc
import os
import ssl
import time
from collections.abc import Callable, Sized
from typing import Any

from gunicorn import http
from gunicorn import sock as gsock
from gunicorn.workers import base
from h2.errors import ErrorCodes

from h2workers.app.wsgi.context import ServeContext
from h2workers.app.wsgi.http1 import (
    H1Connection,
    H1Exchange,
    Upgrade,
    next_request,
    request_head_limit,
    start_upgrade,
)
from h2workers.config import ServerOptions, server_options
from h2workers.metrics import Metrics
from h2workers.peerlog import PeerLog
from h2workers.proto.upgrade import upgrade_settings
from h2workers.session.session import Session
from h2workers.session.stream import Stream

TRIM_AFTER_CONNECTIONS, TRIM_INTERVAL = 100, 5.0


def _libc_function(name: str) -> Callable[..., int] | None:
    try:
        function: Callable[..., int] = getattr(
            ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), name
        )
    except (OSError, AttributeError):  # not glibc
        return None
    return function


_malloc_trim = _libc_function("malloc_trim")
_mallopt = _libc_function("mallopt")
# glibc's mallopt parameters, and what a worker sets them to (see _tune_malloc)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD, TRIM_THRESHOLD = 1 << 20, 8 << 20


def _tune_malloc() -> None:
    """Keep a worker's large, short-lived buffers on the heap.

    A download moves 256 KiB slices (and apps hand over pieces of 64 KiB to
    1 MiB); above glibc's 128 KiB mmap threshold each one was mapped and
    unmapped again, or the heap top grew and was trimmed back, at every
    slice: 154,000 page faults a gigabyte in a worker, and a third of the
    download rate. Buffers under 1 MiB now come from the heap and up to 8
    MiB of free heap stays mapped (``trim_heap`` still returns memory after
    a burst of connections)."""
    if _mallopt is not None:
        _mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        _mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)


# The cycle collector's first threshold in a worker (CPython's is 700). The
# streams in flight keep a few dozen container objects each alive, so at 700
# a young collection came every 25 requests or so, each walking the objects
# of every request in flight: 8-15% of a small request's time at -c100 -m10.
GC_YOUNG_THRESHOLD = 10_000


def _tune_gc() -> None:
    """Once the app is loaded: ``gc.freeze()`` moves what exists now (the
    app, its imports) out of the collector's way for the worker's life, and
    young collections come every GC_YOUNG_THRESHOLD allocations. A threshold
    the user raised is kept, and a collector turned off stays off; a
    ``post_worker_init`` hook that sets its own runs after this."""
    if not gc.isenabled():
        return
    gc.collect()  # loading's own garbage is not kept for the worker's life
    gc.freeze()
    young, *older = gc.get_threshold()
    if young < GC_YOUNG_THRESHOLD:
        gc.set_threshold(GC_YOUNG_THRESHOLD, *older)


class H2Worker(base.Worker):  # type: ignore[misc]
    """The base of the h2workers worker classes."""

    options: ServerOptions
    serve_context: ServeContext  # set in run(), once the app is loaded
    ssl_context: ssl.SSLContext | None  # None when the listeners are cleartext
    head_limit: int  # the longest request head Gunicorn's limits allow
    head_timeout: float
    keepalive: float
    sockets: list[Any]
    conns: Sized  # every open connection, whatever its protocol (the driver's)
    alive: bool
    nr: int
    max_requests: int

    @classmethod
    def check_config(cls, cfg: Any, log: Any) -> None:
        """Validate the http2_* settings in the master, before any worker forks."""
        server_options(cfg)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.options = server_options(self.cfg)
        self.adopted = 0  # connections accepted since the heap was last trimmed
        self.trimmed_at = 0.0
        self.metrics = Metrics(self.log)  # statsd figures (no-ops without statsd_host)
        self.peer_log = PeerLog(self.log)  # what clients did, summarised under floods

    def init_process(self) -> None:
        """What both drivers need before the app loads (a green driver has
        patched the standard library by now, so its SSL context is green)."""
        self.ssl_context = self._ssl_context() if self.cfg.is_ssl else None
        self.head_limit = request_head_limit(self.cfg)
        # read per request: Gunicorn's Config attribute access costs a microsecond
        self.head_timeout = float(self.cfg.timeout)  # a request head must arrive in this
        self.keepalive = float(self.cfg.keepalive)  # an idle HTTP/1.1 connection's life (0: none)
        _tune_malloc()
        super().init_process()

    def load_wsgi(self) -> None:
        super().load_wsgi()
        _tune_gc()

    @property
    def handshake_timeout(self) -> float:
        """For a TLS handshake or a cleartext preface, as Gunicorn's ``timeout``."""
        return max(1.0, self.head_timeout)

    def _ssl_context(self) -> ssl.SSLContext:
        context: ssl.SSLContext = gsock.ssl_context(self.cfg)
        context.set_alpn_protocols(self.options.alpn)
        return context

    def new_session(self, transport: Any, peer: Any, server: Any) -> Session:
        """A session for a connection whose protocol turned out to be h2."""
        return Session(
            self.options.h2,
            self,
            transport,
            peer,
            server,
            transport.secure,
            timeout=self.head_timeout or 30.0,
            keepalive=self.keepalive,
            now=time.monotonic(),
            metrics=self.metrics,
        )

    def admit(self, session: Session, stream: Stream) -> bool:
        """Whether a new stream is served (and counted). One that arrives
        after ``max_requests`` or a stop signal, before our GOAWAY reached
        the client, is refused with REFUSED_STREAM, which tells the client
        it was not processed and may be retried (RFC 9113 8.7): a worker
        serves at most ``max_requests``."""
        if self.alive:
            self.count_request()
            return True
        session.reset(stream, ErrorCodes.REFUSED_STREAM)
        return False

    def count_request(self) -> None:
        """One more request (HTTP/1.1 or stream); past ``max_requests`` the
        worker stops gracefully, as Gunicorn's own workers do."""
        self.nr += 1
        if self.nr >= self.max_requests and self.alive:
            self.log.info("Autorestarting worker after current request.")
            self.alive = False

    def heartbeat(self) -> None:
        """Once a tick: tell the arbiter we live; stop if it is gone."""
        self.notify()
        self.metrics.report(len(self.conns))
        self.peer_log.tick()
        if self.ppid != os.getppid():
            self.log.info("Parent changed, shutting down: %s", self)
            self.alive = False

    def log_unfinished(self, expired: dict[str, list[Any]]) -> None:
        """One line a tick per kind of unfinished connection closed, however
        many clients (a slowloris opens hundreds)."""
        for what, peers in expired.items():
            first = peers[0]
            self.log.info(
                "%d %s not complete after %gs, closed (from %s%s)",
                len(peers),
                what,
                self.head_timeout,
                first[0] if isinstance(first, tuple) else "-",
                " and others" if len(peers) > 1 else "",
            )

    def serve_h1_request(self, conn: H1Connection, keepalive: bool) -> bool | Upgrade:
        """One HTTP/1.1 request on Gunicorn's code, its head already read
        (``conn.initial``): False to close the connection, True to keep it
        for the next request, or the ``Upgrade`` to h2c (cleartext only)."""
        conn.sock.settimeout(self.head_timeout or None)
        req = None
        try:
            req = next_request(conn, self.cfg)
            if req is None:
                return False
            may_upgrade = self.options.upgrade and self.ssl_context is None
            settings = upgrade_settings(req) if may_upgrade else None
            if settings is not None:
                return start_upgrade(conn, req, settings)
            return H1Exchange(self.serve_context, conn, req).serve(keepalive)
        except Exception as exc:
            self.h1_error(req, conn.sock, conn.peer, exc)
            return False

    def h1_error(self, req: Any, sock: Any, peer: Any, exc: Exception) -> None:
        """An HTTP/1.1 request failed: a client gone is a debug line, as in
        Gunicorn's workers; anything else goes to Gunicorn's handle_error."""
        if isinstance(exc, http.errors.NoMoreData):
            self.log.debug("Ignored premature client disconnection. %s", exc)
        elif isinstance(exc, TimeoutError):
            self.log.debug("HTTP/1.1 connection from %s timed out", peer)
        elif isinstance(exc, ssl.SSLError) and exc.args[0] == ssl.SSL_ERROR_EOF:
            self.log.debug("ssl connection closed")
        elif isinstance(exc, OSError) and exc.errno in (
            errno.EPIPE,
            errno.ECONNRESET,
            errno.ENOTCONN,
        ):
            self.log.debug("Ignoring connection error: %s", exc)
        elif isinstance(exc, OSError) and not isinstance(exc, ssl.SSLError):
            self.log.exception("Socket error processing request.")
        else:
            self.handle_error(req, sock, peer, exc)

    def trim_heap(self, now: float) -> None:
        """Give the heap back after a burst of connections.

        TLS handshakes allocate and free a lot; with many in flight at once
        glibc keeps the freed memory (about 8 MiB after 1,000 concurrent
        handshakes). ``malloc_trim`` returns it, at most every few seconds.
        """
        if _malloc_trim is None or self.adopted < TRIM_AFTER_CONNECTIONS:
            return
        if now - self.trimmed_at >= TRIM_INTERVAL:
            self.adopted = 0
            self.trimmed_at = now
            _malloc_trim(0)


def close_quietly(sock: Any) -> None:
    """Close a socket whose peer may be gone already."""
    try:
        sock.close()
    except OSError:
        pass
