"""The green driver: HTTP/2 and HTTP/1.1 for WSGI apps on green threads.

Gunicorn's gevent/eventlet model, on the shared session layer, written once
against ``hub.Hub`` (``gevent_hub.py`` makes it ``GeventH2``,
``eventlet_hub.py`` ``EventletH2``): the worker monkey-patches the standard
library before the app is imported (as Gunicorn's own green workers do),
then runs a green thread per connection and one per stream, bounded by
``worker_connections`` and ``http2_max_concurrent_streams``, never by a
thread count. HTTP/1.1 runs on Gunicorn's own code in the connection's green
thread. See docs/architecture.md for what the shared layers do.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import time
from collections.abc import Callable
from typing import Any, ClassVar, cast

from h2workers.app.wsgi.context import ServeContext
from h2workers.app.wsgi.http1 import (
    H1Connection,
    Upgrade,
    head_complete,
)
from h2workers.app.wsgi.serve import serve_h2
from h2workers.drivers.base import H2Worker, close_quietly
from h2workers.drivers.green.connection import GreenConnection
from h2workers.drivers.green.hub import Hub
from h2workers.drivers.green.runners import GreenRunners
from h2workers.proto.detect import PREFACE, Protocol, bad_preface_goaway, sniff
from h2workers.session.channel import SyncChannel
from h2workers.session.session import Session
from h2workers.session.stream import Stream

TICK = 1.0


class GreenParker:
    """How a stream's greenlet waits (``SyncChannel``'s Parker). Most streams
    never wait: the semaphore is made on the first wait, not per stream."""

    __slots__ = ("_hub", "_permit", "_sem")

    def __init__(self, hub: Hub) -> None:
        self._hub = hub
        self._sem: Any = None
        self._permit = False  # an unpark before any park

    def park(self, timeout: float) -> bool:
        if self._permit:
            self._permit = False
            return True
        if self._sem is None:
            self._sem = self._hub.semaphore()
        return bool(self._sem.acquire(timeout=timeout))

    def unpark(self) -> None:
        sem = self._sem
        if sem is None:
            self._permit = True
        elif sem.locked():  # at most one permit waits
            sem.release()


class GreenH2(H2Worker):
    """The base of ``GeventH2`` and ``EventletH2``: all but the library."""

    hub: ClassVar[Hub]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conns: set[Any] = set()  # open connections (HTTP/2 and HTTP/1.1)
        # unfinished connections past their deadline: the tick logs, then closes them
        self.expired: dict[str, list[tuple[Any, Any]]] = {}

    def init_process(self) -> None:
        """Patch before the app is imported, as Gunicorn's green workers do."""
        self.hub.patch()
        self.sockets = [self.hub.green_socket(s.sock.detach(), s.FAMILY) for s in self.sockets]
        self.stop_requested = self.hub.stop_event()  # wakes the loop at once
        super().init_process()

    def handle_exit(self, sig: int, frame: Any) -> None:
        self.alive = False
        self.stop_requested.set()

    def count_request(self) -> None:
        super().count_request()
        if not self.alive:  # max_requests: GOAWAY now, not at the next tick
            self.stop_requested.set()

    def handle_quit(self, sig: int, frame: Any) -> None:
        self.hub.spawn(super().handle_quit, sig, frame)  # not in the signal handler

    def handle_usr1(self, sig: int, frame: Any) -> None:
        self.hub.spawn(super().handle_usr1, sig, frame)

    # -- the loop ------------------------------------------------------------------

    def run(self) -> None:
        self.serve_context = ServeContext(self, multithread=True)  # the app is loaded
        self.runners = GreenRunners(self.hub)  # the streams' green threads
        self.pool = self.hub.pool(self.cfg.worker_connections)
        acceptors = [self.hub.spawn(self._accept_loop, listener) for listener in self.sockets]
        while self.alive:
            self._tick()
            self.stop_requested.wait(TICK)
        for greenlet in acceptors:
            self.hub.kill(greenlet)
        for listener in self.sockets:
            close_quietly(listener)
        self._stop()

    def _tick(self) -> None:
        self.heartbeat()
        self.trim_heap(time.monotonic())
        now = time.monotonic()
        for conn in list(self.conns):
            if isinstance(conn, GreenConnection):
                conn.session.tick(now)
        expired, self.expired = self.expired, {}
        self.log_unfinished({what: [peer for peer, _ in late] for what, late in expired.items()})
        for late in expired.values():  # after the log line: a client that sees the close finds it
            for _, sock in late:
                close_quietly(sock)

    def _stop(self) -> None:
        """GOAWAY on every HTTP/2 connection; streams and HTTP/1.1 requests in
        progress get ``graceful_timeout`` to finish; then what is left is killed."""
        now = time.monotonic()
        deadline = now + self.cfg.graceful_timeout
        for conn in list(self.conns):
            if isinstance(conn, GreenConnection):
                conn.session.stop(now)
        while self.conns and time.monotonic() < deadline:
            self.notify()
            self.hub.sleep(0.1)
        for conn in list(self.conns):
            if isinstance(conn, GreenConnection):
                conn.session.close()
        self.pool.kill_all(timeout=1.0)

    # -- accepting and telling protocols apart ----------------------------------------

    def _accept_loop(self, listener: Any) -> None:
        server = listener.getsockname()
        while self.alive:
            try:
                client, peer = listener.accept()
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self.log.error("accept() failed: %s", exc)
                    self.hub.sleep(0.1)
                continue
            self.adopted += 1
            self.pool.spawn(self._handle, client, peer, server)  # waits while the pool is full

    def _handle(self, client: Any, peer: Any, server: Any) -> None:
        if client.family in (socket.AF_INET, socket.AF_INET6):
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock, h2, initial = self._negotiate(client, peer)
        except (OSError, self.hub.Timeout):
            return  # closed, or left to the tick to close
        if h2:
            self._serve_h2(sock, peer, server, lambda session: session.start(initial, _now()))
        else:
            self._serve_h1(H1Connection(sock, peer, server, initial))

    def _negotiate(self, client: Any, peer: Any) -> tuple[Any, bool, bytes]:
        """(socket, h2?, bytes read): the TLS handshake and ALPN, or the
        cleartext preface; at most ``timeout`` seconds, like a request head."""
        what = "TLS handshake(s)" if self.ssl_context else "connection preface(s)"
        sock = client  # the object that owns the descriptor (TLS wraps it)
        cancel = self.hub.deadline(self.handshake_timeout)
        try:
            if self.ssl_context is not None:
                sock = self.ssl_context.wrap_socket(
                    client,
                    server_side=True,
                    do_handshake_on_connect=False,
                    suppress_ragged_eofs=self.cfg.suppress_ragged_eofs,
                )
                sock.do_handshake()
                return sock, sock.selected_alpn_protocol() == "h2", b""
            if not self.options.prior_knowledge:
                return client, False, b""
            return self._sniff(client, peer)
        except self.hub.Timeout:
            self.expired.setdefault(what, []).append((peer, sock))
            raise
        except OSError as exc:
            self.log.debug("Connection from %s failed before its protocol: %s", peer, exc)
            close_quietly(sock)
            raise
        finally:
            cancel()

    def _sniff(self, client: Any, peer: Any) -> tuple[Any, bool, bytes]:
        head = b""
        while (verdict := sniff(head)) is Protocol.MORE:
            data = client.recv(len(PREFACE) - len(head))
            if not data:
                raise ConnectionResetError("closed before its preface")
            head += data
        if verdict is Protocol.H2:
            return client, True, head
        if "h1" not in self.options.protocols:  # h2 only: RFC 9113 3.4
            self.peer_log.info("Invalid HTTP/2 preface from %s", peer)
            with contextlib.suppress(OSError):
                client.sendall(bad_preface_goaway())
            raise ConnectionResetError("invalid preface")
        return client, False, head

    # -- HTTP/2 ------------------------------------------------------------------------

    def _serve_h2(self, sock: Any, peer: Any, server: Any, begin: Any) -> None:
        conn = GreenConnection(self, sock, peer, server)
        self.conns.add(conn)
        try:
            conn.serve(begin)
        finally:
            self.conns.discard(conn)

    # the sessions' Host

    def start(self, session: Session, stream: Stream) -> None:
        if not self.admit(session, stream):
            return
        channel = SyncChannel(session, stream, GreenParker(self.hub), self._post)
        self.runners.run(serve_h2, self.serve_context, channel)  # serve_h2 never raises

    def _post(self, command: Any, *args: Any) -> None:
        """A stream's command runs at once: its greenlet shares the hub. A
        failing one (a bug of ours) is logged and costs its connection."""
        try:
            command(*args)
        except Exception:
            self.log.exception("Internal error running a stream's command")
            command.__self__.close()

    def wake(self, stream: Stream) -> None:
        stream.wake()

    def dirty(self, session: Session) -> None:
        cast(GreenConnection, session.transport).schedule_flush()

    def closed(self, session: Session) -> None:
        self.conns.discard(session.transport)

    # -- HTTP/1.1 ----------------------------------------------------------------------

    def _serve_h1(self, conn: H1Connection) -> None:
        """Requests one after another on Gunicorn's code, in this greenlet."""
        self.conns.add(conn)
        sock = conn.sock
        head: bool | None = False
        try:
            first = True
            while self.alive and (head := self._read_head(conn, first)):
                first = False
                self.count_request()
                outcome = self.serve_h1_request(conn, self.alive and self.keepalive > 0)
                if isinstance(outcome, Upgrade):
                    self.conns.discard(conn)
                    self._serve_h2(sock, conn.peer, conn.server, _upgraded(outcome))
                    return
                if not outcome or self.keepalive <= 0:
                    break
        finally:
            self.conns.discard(conn)
            if head is not None:  # None: too slow, the tick logs and closes it
                close_quietly(sock)

    def _read_head(self, conn: H1Connection, first: bool) -> bool | None:
        """Read a whole request head before Gunicorn's parser sees it: the
        first byte within ``timeout`` (``keepalive`` between requests), the
        rest within ``timeout``. False: the connection is done; None: the
        head was too slow (the tick logs it, then closes it)."""
        sock = conn.sock
        while not (conn.has_buffered_input() or head_complete(conn.initial, self.head_limit)):
            started = bool(conn.initial)
            wait = self.head_timeout if first or started else max(self.keepalive, 1.0)
            sock.settimeout(wait)
            try:
                data = sock.recv(65536)
            except TimeoutError:
                if first or started:
                    late = self.expired.setdefault("HTTP/1.1 request head(s)", [])
                    late.append((conn.peer, sock))
                    return None
                return False
            except OSError:
                return False
            if not data:
                return False
            conn.initial += data
        return True


def _upgraded(upgrade: Upgrade) -> Callable[[Session], None]:
    """How a session begins on a connection upgraded from HTTP/1.1."""

    def begin(session: Session) -> None:
        session.start_upgraded(
            upgrade.http2_settings, upgrade.block, upgrade.body, upgrade.pending, _now()
        )

    return begin


def _now() -> float:
    return time.monotonic()
