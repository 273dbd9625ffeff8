"""One HTTP/2 connection of the GThreadH2 worker.

``H2Session`` lives on the I/O thread: it alone touches the socket and the
core (neither h2 nor an SSL socket may be used from two threads). Each
stream's application runs on a pool thread and talks to the session through
a ``ThreadChannel`` (channel.py): request body in, response commands out via
the worker's mailbox, run here as ``cmd_*``.
"""

from __future__ import annotations

import errno
import socket
import ssl
import time
from typing import TYPE_CHECKING, Any

from h2.errors import ErrorCodes

from h2workers.app.wsgi.environ import EnvironBuilder, RequestRejected
from h2workers.app.wsgi.runner import reject, serve_stream
from h2workers.drivers.gthread.threads import Parker
from h2workers.errors import StreamClosed
from h2workers.proto import events as ev
from h2workers.proto.core import H2Core
from h2workers.proto.headers import Header, RequestHead
from h2workers.session.channel import ThreadChannel

if TYPE_CHECKING:
    from h2workers.drivers.gthread.worker import GThreadH2

RECV_SIZE = 65536
TLS_RECORD = 16384  # largest TLS plaintext record
READS_PER_EVENT = 8  # a 64 KiB window of DATA comes as 5 records (frame headers)
HIGH_WATER_MIN, HIGH_WATER_MAX, OUT_BUDGET = 65536, 1 << 20, 4 << 20
OUT_HELD = 256 * 1024  # unsent bytes past which no more body is framed
FLUSH_SLICE = 256 * 1024  # framed per step of a flush
LINGER, LINGER_BYTES = 1.0, 4 << 20  # reading on after GOAWAY: at most this long, this much


class H2Session:
    """The I/O-thread side of one HTTP/2 connection."""

    def __init__(self, worker: GThreadH2, sock: Any, peer: Any, server: Any, secure: bool) -> None:
        self.worker = worker
        self.sock = sock
        self.peer = peer
        self.peer_ip = peer[0] if isinstance(peer, tuple) else str(peer or "-")
        settings = worker.options.h2
        self.core = H2Core(settings)
        self.server = server
        self.secure = secure
        self._environ: EnvironBuilder | None = None  # made by the first stream
        self.channels: dict[int, ThreadChannel] = {}
        self.out = bytearray()
        self.post = worker.mailbox.post
        self.ack_threshold = max(16384, settings.initial_window_size // 2)
        self.wait_timeout = float(worker.cfg.timeout or 30)
        self.idle_since = self.last_sent = time.monotonic()
        self.closed = False
        self.lingering_until: float | None = None  # set once GOAWAY is out, see linger()
        self.lingered = 0
        self.want_write = False

    def environ_builder(self) -> EnvironBuilder:
        """Built on first use: an idle connection should cost as little as
        possible (two pool threads racing here build equal copies)."""
        builder = self._environ
        if builder is None:
            worker = self.worker
            builder = EnvironBuilder(
                worker.cfg, worker.base_environ, self.peer, self.server, self.secure
            )
            self._environ = builder
        return builder

    def high_water(self) -> int:
        """How much unframed response a stream may queue before its app waits.

        A lone stream gets 1 MiB (fewer thread hand-offs on a large
        download); many share a 4 MiB connection budget, 64 KiB at least.
        """
        return max(HIGH_WATER_MIN, min(HIGH_WATER_MAX, OUT_BUDGET // max(1, len(self.channels))))

    def start(self, initial: bytes = b"") -> None:
        self.core.initiate()
        if initial:
            self.receive(initial)
        self.worker.mark_dirty(self)

    def start_upgraded(self, upgrade: Any) -> None:
        events = self.core.initiate_upgrade(upgrade.http2_settings, upgrade.block, upgrade.body)
        self.dispatch(events)
        if upgrade.pending:
            self.receive(upgrade.pending)
        self.worker.mark_dirty(self)

    # -- input ---------------------------------------------------------------

    def on_readable(self) -> None:
        """Read what the kernel has, up to a few TLS records.

        RECV_SIZE is larger than the largest TLS record and OpenSSL returns
        one record per read, so no decrypted byte stays behind in the SSL
        object (``pending()`` is 0, and asking would release and retake the
        GIL). A full record suggests more are queued: read on (a bounded
        number of times, to stay fair to other connections) instead of
        going back to the selector for each one.
        """
        if self.lingering_until is not None:
            self._discard()
            return
        parts: list[bytes] = []
        for _ in range(READS_PER_EVENT):
            try:
                data = self.sock.recv(RECV_SIZE)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                break
            except OSError as exc:
                self.worker.log.debug("HTTP/2 connection error from %s: %s", self.peer, exc)
                data = b""
            if not data:
                if parts:  # what came before the close still counts
                    self.receive(b"".join(parts))
                self.close()
                return
            parts.append(data)
            if len(data) < TLS_RECORD:
                break
        if parts:  # one pass through h2 for all the records read
            self.receive(parts[0] if len(parts) == 1 else b"".join(parts))

    def receive(self, data: bytes) -> None:
        self.dispatch(self.core.receive(data, time.monotonic()))
        self.worker.mark_dirty(self)

    def dispatch(self, events: list[ev.Event]) -> None:
        fed: dict[ThreadChannel, None] = {}  # woken once per read, not per frame
        for event in events:
            if isinstance(event, ev.RequestStarted):
                self._start_stream(event.stream_id, event.head, event.end_stream)
            elif isinstance(event, ev.RequestData):
                channel = self.channels.get(event.stream_id)
                if channel is not None:
                    channel.feed(event.data, event.end_stream)
                    fed[channel] = None
            elif isinstance(event, ev.RequestTrailers):
                channel = self.channels.get(event.stream_id)
                if channel is not None:
                    channel.feed(b"", True)
                    fed[channel] = None
            elif isinstance(event, ev.StreamAborted):
                self._aborted(event)
            elif isinstance(event, ev.StreamRejected):
                self._rejected(event)
            elif isinstance(event, ev.ConnectionEnded):
                self._ended(event)
            elif isinstance(event, ev.PriorityChanged):
                channel = self.channels.get(event.stream_id)
                if channel is not None and channel.environ is not None:
                    _set_priority(channel.environ, event.weight, event.depends_on)
        for channel in fed:
            # bytes the app's reads are after count as read already: one
            # WINDOW_UPDATE for all the frames that came in this read
            self.credit(channel, min(channel.delivered, channel.asked))
            if channel.ended or channel.delivered >= channel.needed:
                self.worker.wake_later(channel)  # enough for the read(), or its end

    def _start_stream(self, stream_id: int, head: RequestHead, ended: bool) -> None:
        channel = ThreadChannel(self, stream_id, ended, self.core.outbound(stream_id))
        self.channels[stream_id] = channel
        self.worker.count_request()

        def job(parker: Parker) -> None:
            channel.parker = parker
            self.run_stream(channel, head)

        self.worker.pool.submit(job)

    def _rejected(self, event: ev.StreamRejected) -> None:
        # A refused stream is ordinary flow control a client retries; a
        # malformed one is worth a line.
        log = (
            self.worker.log.debug
            if event.error_code == ErrorCodes.REFUSED_STREAM
            else (self.worker.log.info)
        )
        log(
            "HTTP/2 stream %d from %s rejected: %s (%s)",
            event.stream_id,
            self.peer_ip,
            event.reason,
            event.error_code.name,
        )

    def _aborted(self, event: ev.StreamAborted) -> None:
        channel = self.channels.pop(event.stream_id, None)
        if channel is not None:
            channel.abort(event.error_code)
        if not event.by_peer and event.error_code != ErrorCodes.NO_ERROR and event.reason:
            self.worker.log.info(
                "HTTP/2 stream %d reset: %s (%s)",
                event.stream_id,
                event.reason,
                event.error_code.name,
            )

    def _ended(self, event: ev.ConnectionEnded) -> None:
        if event.graceful:
            return  # no new streams; the open ones finish, then flush() closes
        if not event.by_peer:
            self.worker.log.info(
                "HTTP/2 connection from %s closed: %s (%s)",
                self.peer_ip,
                event.reason,
                event.error_code.name,
            )
        for channel in self.channels.values():
            channel.abort(event.error_code or ErrorCodes.CANCEL)
        self.channels.clear()

    # -- the application's thread --------------------------------------------

    def run_stream(self, channel: ThreadChannel, head: RequestHead) -> None:
        """Serve one stream on a pool thread (never raises)."""
        ctx = self.worker.serve_context
        if channel.aborted is not None:
            return  # reset while it waited for a thread: the app never runs
        try:
            try:
                environ, req = self.environ_builder().build(channel.stream_id, head)
            except RequestRejected as exc:
                ctx.log.warning("Invalid request from ip=%s: %s", self.peer_ip, exc)
                reject(channel, exc)
                return
            # A PRIORITY frame may arrive at any time: from now on the I/O
            # thread updates the environ itself (dispatch); what came before
            # is already in ``head``.
            channel.environ = environ
            _set_priority(environ, head.priority_weight, head.priority_depends_on)
            serve_stream(ctx, channel, environ, req)
        except StreamClosed:
            pass
        except Exception:
            ctx.log.exception("Error serving HTTP/2 stream %d", channel.stream_id)
            channel.reset(ErrorCodes.INTERNAL_ERROR)
        finally:
            if not channel.finished:  # else the ending command released it
                self.post(self.cmd_done, channel)

    # -- commands, run on the I/O thread ---------------------------------------

    def cmd_head(
        self, channel: ThreadChannel, status: int, headers: list[Header], body: bytes, end: bool
    ) -> None:
        sid = channel.stream_id
        core = self.core
        core.respond(sid, status, headers, end_stream=end and not body)
        if body:
            core.send_body(sid, body, end)
        if end:
            self._release(channel)
        self.worker.mark_dirty(self)

    def cmd_body(self, channel: ThreadChannel, data: bytes, end: bool) -> None:
        # A piece that does not end the stream is only queued: ``flush``
        # frames it and wakes a writer waiting for room.
        self.core.send_body(channel.stream_id, data, end)
        if end:
            self._release(channel)
        self.worker.mark_dirty(self)

    def cmd_informational(self, stream_id: int, status: int, headers: list[Header]) -> None:
        self.core.informational(stream_id, status, headers)
        self.worker.mark_dirty(self)

    def cmd_trailers(self, channel: ThreadChannel, headers: list[Header]) -> None:
        self.core.send_trailers(channel.stream_id, headers)
        self._release(channel)
        self.worker.mark_dirty(self)

    def cmd_reset(self, stream_id: int, code: ErrorCodes) -> None:
        self.core.reset(stream_id, code)
        channel = self.channels.pop(stream_id, None)
        if channel is not None:
            channel.abort(code)
        self.worker.mark_dirty(self)

    def cmd_consumed(self, channel: ThreadChannel, taken: int) -> None:
        self.credit(channel, taken)

    def credit(self, channel: ThreadChannel, upto: int) -> None:
        """Return window credit for a stream's body up to ``upto`` bytes."""
        if upto > channel.acked:
            self.core.consumed(channel.stream_id, upto - channel.acked)
            channel.acked = upto
            self.worker.mark_dirty(self)

    def cmd_done(self, channel: ThreadChannel) -> None:
        self._release(channel)
        self.worker.mark_dirty(self)

    def _release(self, channel: ThreadChannel) -> None:
        """The app is done with the stream: the core finishes sending alone.
        A read after this sees the body end where it stands."""
        if self.channels.get(channel.stream_id) is channel:
            del self.channels[channel.stream_id]
        channel.ended = True
        channel.wake()

    # -- output ----------------------------------------------------------------

    def flush(self, now: float) -> None:
        """Frame what is queued and write it: once per loop turn."""
        if self.closed or self.lingering_until is not None:
            return
        core = self.core
        while True:  # a slice at a time: framing more than the kernel takes only copies
            for sid in core.flush(now, FLUSH_SLICE):
                channel = self.channels.get(sid)
                if channel is not None:
                    channel.wake()  # room below its high-water mark, perhaps
            data = core.data_to_send()
            if self.out:
                self.out += data
                self.write()
            elif data:
                self.write(data)  # nothing waiting: send without copying into ``out``
            if not core.capped or self.out or self.closed:
                break
        if self.channels or core.open_streams:
            self.idle_since = now
        elif core.finished and not self.out:
            self.linger(now)

    def write(self, fresh: bytes | None = None) -> None:
        """Send ``out`` (or ``fresh`` bytes when ``out`` is empty); what the
        kernel does not take waits in ``out`` for EVENT_WRITE. A retry after
        a TLS want-write starts with the same bytes, as OpenSSL requires."""
        try:
            sent = self.sock.send(self.out if fresh is None else fresh)
        except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
            sent = 0
        except OSError as exc:
            if exc.errno not in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN):
                self.worker.log.debug("HTTP/2 write to %s failed: %s", self.peer, exc)
            self.close()
            return
        if fresh is None:
            del self.out[:sent]
        elif sent < len(fresh):
            self.out += memoryview(fresh)[sent:]
        if sent:
            self.last_sent = time.monotonic()
        # Back-pressure: while the peer does not read, frame no more bodies
        # (their apps then wait at the high-water mark) instead of piling
        # framed bytes up here.
        held = len(self.out) >= OUT_HELD
        if held != self.core.hold_output:
            self.core.hold_output = held
            if not held:
                self.worker.mark_dirty(self)
        elif not self.out and self.core.capped:
            self.worker.mark_dirty(self)  # frames left unframed by the last flush
        want = bool(self.out)
        if want != self.want_write:
            self.want_write = want
            self.worker.watch(self, write=want)

    # -- lifecycle -------------------------------------------------------------

    def tick(self, now: float) -> None:
        """Once a second: flow-control timeouts, keep-alive, shutdown."""
        if self.closed:
            return
        if self.lingering_until is not None:
            if now >= self.lingering_until or not self.worker.alive:
                self.close()
            return
        self.dispatch(self.core.expire(now, self.wait_timeout))
        if self.out and now - self.last_sent >= self.wait_timeout:
            self.worker.log.info(
                "HTTP/2 connection from %s read nothing for %gs: closed",
                self.peer_ip,
                self.wait_timeout,
            )
            self.close()
            return
        if not self.worker.alive:
            self.core.start_shutdown()
        elif (
            not self.channels
            and not self.core.open_streams
            and (now - self.idle_since >= self.worker.cfg.keepalive)
        ):
            self.core.start_shutdown()  # keepalive: idle connections get GOAWAY
        self.worker.mark_dirty(self)

    def linger(self, now: float) -> None:
        """The connection is done and its last bytes (GOAWAY) are with the
        kernel: send FIN, but read on for a moment before closing.

        Closing a socket that still has unread input makes the kernel send
        a TCP reset, and a peer that was still sending (a flood, a request
        racing our GOAWAY) may then lose our GOAWAY before reading it. A
        stopping worker closes at once, as before."""
        if not self.worker.alive:
            self.close()
            return
        try:
            self.sock.shutdown(socket.SHUT_WR)  # (an SSLSocket drops its TLS state here)
        except OSError:
            self.close()
            return
        self.lingering_until = now + LINGER

    def _discard(self) -> None:
        """Read and drop what the peer still sends; close at its EOF, or
        once it sent LINGER_BYTES."""
        for _ in range(READS_PER_EVENT):
            try:
                data = self.sock.recv(RECV_SIZE)
            except (ssl.SSLError, BlockingIOError):
                return
            except OSError:
                data = b""
            self.lingered += len(data)
            if not data or self.lingered >= LINGER_BYTES:
                self.close()
                return

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for channel in self.channels.values():
            channel.abort(ErrorCodes.CANCEL)
        self.channels.clear()
        self.worker.forget(self)
        try:
            self.sock.close()
        except OSError:
            pass


def _set_priority(environ: dict[str, Any], weight: int, depends_on: int) -> None:
    environ["gunicorn.http2.priority_weight"] = weight
    environ["gunicorn.http2.priority_depends_on"] = depends_on
