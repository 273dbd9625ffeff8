"""GThreadH2: HTTP/2 and HTTP/1.1 for WSGI apps on a thread pool.

One I/O thread (the worker's main thread) owns every socket: it accepts,
does TLS handshakes without blocking, tells HTTP/2 from HTTP/1.1 (ALPN, or
the cleartext preface), and runs each HTTP/2 connection's core. Pool threads
run only application code: one job per HTTP/2 stream, so a connection's
streams run side by side, and one job per HTTP/1.1 request on Gunicorn's own
HTTP/1.1 code. A connection with nothing in flight holds no thread.

See docs/architecture.md for the picture.
"""

from __future__ import annotations

import contextlib
import errno
import os
import selectors
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any

from h2workers.app.wsgi.context import ServeContext
from h2workers.app.wsgi.http1 import (
    H1Connection,
    Upgrade,
    head_complete,
)
from h2workers.app.wsgi.serve import serve_h2
from h2workers.drivers.base import H2Worker, close_quietly
from h2workers.drivers.gthread.connection import SocketConnection
from h2workers.drivers.gthread.threads import Mailbox, Parker, ThreadPool
from h2workers.proto.detect import PREFACE, Protocol, bad_preface_goaway, sniff
from h2workers.session.channel import SyncChannel
from h2workers.session.session import Session
from h2workers.session.stream import Stream

READ, WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE
TICK = 1.0


class _Pending:
    """A connection before its protocol is known: TLS handshake or preface sniff."""

    def __init__(self, sock: Any, peer: Any, server: Any, deadline: float) -> None:
        self.sock = sock
        self.peer = peer
        self.server = server
        self.deadline = deadline
        self.buf = b""


class GThreadH2(H2Worker):
    """Gunicorn worker class ``h2workers.GThreadH2``."""

    @classmethod
    def check_config(cls, cfg: Any, log: Any) -> None:
        super().check_config(cfg, log)
        if cfg.worker_connections <= cfg.threads and cfg.keepalive:
            log.warning(
                "worker_connections (%s) <= threads (%s): few connections can be held",
                cfg.worker_connections,
                cfg.threads,
            )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conns: dict[Any, None] = {}  # every open connection object
        self.to_flush: dict[Session, None] = {}
        self.waking: list[Stream] = []
        self.accepting = False

    def init_process(self) -> None:
        self.selector = selectors.DefaultSelector()
        self.mailbox = Mailbox(self._command_failed)
        self.pool = ThreadPool(max(1, self.cfg.threads), self._job_failed)
        super().init_process()

    def handle_exit(self, sig: int, frame: Any) -> None:
        self.alive = False  # the signal wake-up fd gets the loop moving

    # -- the I/O loop ----------------------------------------------------------

    def run(self) -> None:
        self.serve_context = ServeContext(self, multithread=True)  # the app is loaded by now
        self.selector.register(self.mailbox.fileno(), READ, self._on_mailbox)
        self.selector.register(self.PIPE[0], READ, self._on_signal_pipe)
        self._set_accepting(True)
        next_tick = 0.0
        stop_deadline: float | None = None
        while True:
            now = time.monotonic()
            if now >= next_tick:
                self._tick(now)
                next_tick = now + TICK
            if not self.alive:
                if stop_deadline is None:
                    stop_deadline = now + self.cfg.graceful_timeout
                    self._begin_stop()
                if not self.conns or now >= stop_deadline:
                    break
            self._flush()  # what the tick or the stop decided goes out now
            self._poll(max(0.0, next_tick - now))
        self._finish_stop()

    def _poll(self, timeout: float) -> None:
        try:
            ready = self.selector.select(timeout)
        except OSError as exc:
            if exc.errno != errno.EINTR:
                raise
            ready = []
        for key, mask in ready:
            key.data(mask)
        self.mailbox.run_all()
        self._flush()

    def _flush(self) -> None:
        now = time.monotonic()
        to_flush = self.to_flush
        while to_flush:
            session = next(iter(to_flush))
            del to_flush[session]
            session.flush(now)
        waking = self.waking
        while waking:
            waking.pop().wake()

    # -- the sessions' Host ------------------------------------------------------

    def start(self, session: Session, stream: Stream) -> None:
        """Run a new stream's app on a pool thread."""
        if not self.admit(session, stream):
            return
        post, ctx = self.mailbox.post, self.serve_context
        self.pool.submit(lambda parker: serve_h2(ctx, SyncChannel(session, stream, parker, post)))

    def wake(self, stream: Stream) -> None:
        """Wake a reader once this turn's output is sent: its thread would
        otherwise take the GIL from the I/O thread before the client gets
        the WINDOW_UPDATE that lets it send on."""
        self.waking.append(stream)

    def dirty(self, session: Session) -> None:
        self.to_flush[session] = None

    def closed(self, session: Session) -> None:
        conn = session.transport
        self._unregister(conn)
        self.conns.pop(conn, None)
        self.to_flush.pop(session, None)
        self._maybe_resume_accepting()

    def _on_mailbox(self, mask: int) -> None:
        self.mailbox.drain_pipe()  # the queue itself is run on every loop turn

    def _on_signal_pipe(self, mask: int) -> None:
        try:
            os.read(self.PIPE[0], 4096)
        except OSError:
            pass

    def _tick(self, now: float) -> None:
        self.heartbeat()
        self.trim_heap(now)
        expired: dict[str, list[Any]] = {}
        stale: list[Any] = []
        for conn in list(self.conns):
            if isinstance(conn, SocketConnection):
                conn.session.tick(now)
            elif isinstance(conn, (_Pending, H1Connection)) and 0 < conn.deadline <= now:
                if isinstance(conn, _Pending) or conn.initial:
                    expired.setdefault(self._unfinished(conn), []).append(conn.peer)
                stale.append(conn)
        self.log_unfinished(expired)
        for conn in stale:  # after the log line: a client that sees the close finds it
            self._drop(conn)

    def _unfinished(self, conn: Any) -> str:
        if isinstance(conn, H1Connection):
            return "HTTP/1.1 request head(s)"
        return "TLS handshake(s)" if self.ssl_context else "connection preface(s)"

    # -- accepting -------------------------------------------------------------

    def _set_accepting(self, enabled: bool) -> None:
        if enabled == self.accepting:
            return
        for listener in self.sockets:
            if enabled:
                listener.setblocking(False)
                self.selector.register(listener, READ, self._acceptor(listener))
            else:
                self.selector.unregister(listener)
        self.accepting = enabled

    def _acceptor(self, listener: Any) -> Callable[[int], None]:
        return lambda mask: self._accept(listener)

    def _accept(self, listener: Any) -> None:
        while self.alive and len(self.conns) < self.cfg.worker_connections:
            try:
                client, peer = listener.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self.log.error("accept() failed: %s", exc)
                    return
                raise
            self._adopt(client, peer, listener.getsockname())
        if len(self.conns) >= self.cfg.worker_connections:
            self._set_accepting(False)

    def _adopt(self, client: socket.socket, peer: Any, server: Any) -> None:
        self.adopted += 1
        client.setblocking(False)
        if client.family in (socket.AF_INET, socket.AF_INET6):
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        deadline = time.monotonic() + self.handshake_timeout
        if self.ssl_context is not None:
            tls = self.ssl_context.wrap_socket(
                client,
                server_side=True,
                do_handshake_on_connect=False,
                suppress_ragged_eofs=self.cfg.suppress_ragged_eofs,
            )
            pending = _Pending(tls, peer, server, deadline)
            self._register(pending, READ, lambda mask: self._handshake(pending))
        elif self.options.prior_knowledge:
            pending = _Pending(client, peer, server, deadline)
            self._register(pending, READ, lambda mask: self._sniff(pending))
        else:
            self._idle_h1(H1Connection(client, peer, server))

    def _register(self, conn: Any, events: int, handler: Callable[[int], None]) -> None:
        self.conns[conn] = None
        self.selector.register(conn.sock, events, handler)

    def _unregister(self, conn: Any) -> None:
        try:
            self.selector.unregister(conn.sock)
        except (KeyError, ValueError, OSError):
            pass

    # -- protocol detection ----------------------------------------------------

    def _handshake(self, pending: _Pending) -> None:
        try:
            pending.sock.do_handshake()
        except ssl.SSLWantReadError:
            self.selector.modify(pending.sock, READ, lambda mask: self._handshake(pending))
            return
        except ssl.SSLWantWriteError:
            self.selector.modify(pending.sock, WRITE, lambda mask: self._handshake(pending))
            return
        except (ssl.SSLError, OSError) as exc:
            self.log.debug("TLS handshake with %s failed: %s", pending.peer, exc)
            self._drop(pending)
            return
        self._unregister(pending)
        del self.conns[pending]
        if pending.sock.selected_alpn_protocol() == "h2":
            self._start_h2(pending)
        else:
            self._idle_h1(H1Connection(pending.sock, pending.peer, pending.server))

    def _sniff(self, pending: _Pending) -> None:
        try:
            data = pending.sock.recv(len(PREFACE) - len(pending.buf))
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(pending)
            return
        pending.buf += data
        verdict = sniff(pending.buf)
        if verdict is Protocol.MORE:
            return  # a prefix of the preface: wait for the rest
        self._unregister(pending)
        del self.conns[pending]
        if verdict is Protocol.H2:
            self._start_h2(pending)
        elif "h1" in self.options.protocols:
            self._idle_h1(H1Connection(pending.sock, pending.peer, pending.server, pending.buf))
        else:  # h2 only: RFC 9113 3.4, an invalid preface is a connection error
            self.peer_log.info("Invalid HTTP/2 preface from %s", pending.peer)
            with contextlib.suppress(OSError):
                pending.sock.send(bad_preface_goaway())
            close_quietly(pending.sock)

    def _start_h2(self, pending: _Pending) -> None:
        conn = SocketConnection(self, pending.sock, pending.peer, pending.server)
        self._register(conn, READ, conn.on_event)
        conn.session.start(pending.buf, time.monotonic())
        if conn.session.secure:
            conn.on_event(READ)  # TLS may hold decrypted bytes the selector won't report

    # -- HTTP/1.1 ----------------------------------------------------------------

    def _idle_h1(self, conn: H1Connection) -> None:
        """Wait, without a thread, for the next request on an HTTP/1.1 connection."""
        if not self.alive:
            self._drop(conn)
            return
        if conn.has_buffered_input() or head_complete(conn.initial, self.head_limit):
            self.conns[conn] = None
            self._dispatch_h1(conn)
            return
        wait = self.head_timeout if conn.initial else max(self.keepalive, 1.0)
        conn.deadline = time.monotonic() + wait
        self._register(conn, READ, lambda mask: self._h1_readable(conn))

    def _h1_readable(self, conn: H1Connection) -> None:
        """Read the request head here, so that a client sending it slowly
        (slowloris) holds no pool thread: the pool gets whole heads."""
        try:
            data = conn.sock.recv(65536)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(conn)
            return
        started = not conn.initial
        conn.initial += data
        if head_complete(conn.initial, self.head_limit):
            self._unregister(conn)
            self._dispatch_h1(conn)
        elif started:
            conn.deadline = time.monotonic() + self.head_timeout

    def _dispatch_h1(self, conn: H1Connection) -> None:
        conn.deadline = 0.0  # owned by a pool thread now: no idle timeout
        self.count_request()
        keepalive = self.alive and self.keepalive > 0
        self.pool.submit(lambda parker: self._serve_h1(conn, keepalive, parker))

    def _serve_h1(self, conn: H1Connection, keepalive: bool, parker: Parker) -> None:
        """One HTTP/1.1 request, on a pool thread, with Gunicorn's code."""
        conn.sock.setblocking(True)
        outcome: bool | Upgrade = False
        try:
            outcome = self.serve_h1_request(conn, keepalive)
        finally:
            self.mailbox.post(self._h1_done, conn, outcome)

    def _h1_done(self, conn: H1Connection, outcome: bool | Upgrade) -> None:
        if isinstance(outcome, Upgrade):
            del self.conns[conn]
            conn.sock.setblocking(False)
            h2 = SocketConnection(self, conn.sock, conn.peer, conn.server)
            self._register(h2, READ, h2.on_event)
            upgrade, now = outcome, time.monotonic()
            h2.session.start_upgraded(
                upgrade.http2_settings, upgrade.block, upgrade.body, upgrade.pending, now
            )
        elif outcome and self.alive:
            conn.sock.setblocking(False)
            del self.conns[conn]
            self._idle_h1(conn)
        else:
            self._drop(conn)

    # -- bookkeeping ---------------------------------------------------------------

    def _drop(self, conn: Any) -> None:
        self._unregister(conn)
        self.conns.pop(conn, None)
        close_quietly(conn.sock)
        self._maybe_resume_accepting()

    def _maybe_resume_accepting(self) -> None:
        if self.alive and not self.accepting and len(self.conns) < self.cfg.worker_connections:
            self._set_accepting(True)

    def _command_failed(self, exc: BaseException) -> None:
        self.log.error("Internal error running a stream's command", exc_info=exc)

    def _job_failed(self, exc: BaseException) -> None:
        self.log.error("Unexpected error in a pool thread", exc_info=exc)

    def _begin_stop(self) -> None:
        """Stop accepting; close what is idle; let sessions send GOAWAY."""
        self._set_accepting(False)
        for conn in list(self.conns):
            if isinstance(conn, _Pending) or (isinstance(conn, H1Connection) and conn.deadline):
                self._drop(conn)
            elif isinstance(conn, SocketConnection):
                conn.session.stop(time.monotonic())

    def _finish_stop(self) -> None:
        for conn in list(self.conns):
            if isinstance(conn, SocketConnection):
                conn.session.close()
            else:
                self._drop(conn)
        self.pool.stop(timeout=1.0)
        for listener in self.sockets:
            close_quietly(listener)
        self.mailbox.close()
