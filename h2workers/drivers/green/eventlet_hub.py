"""EventletH2: the green driver on eventlet.

Patches as Gunicorn 23's eventlet worker did (``hubs.use_hub()`` then
``eventlet.monkey_patch()`` before the app is imported). Gunicorn 27 has no
eventlet worker any more; nothing here imports one. Eventlet itself is in
bugfix-only maintenance: prefer ``GeventH2`` for new deployments (see the
README for what eventlet cannot do).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import Any

import eventlet
import eventlet.greenpool
import eventlet.patcher
import eventlet.semaphore
import greenlet
from eventlet import hubs

from h2workers.drivers.green.hub import Pool, Semaphore
from h2workers.drivers.green.worker import GreenH2
from h2workers.errors import ConfigError

_os_write = eventlet.patcher.original("os").write
SELECT_LIMIT = 1000  # FD_SETSIZE (1024) less the listeners, pipes and log files
SENDFILE_BLOCK = 65536


class _EventletPool:
    def __init__(self, size: int) -> None:
        self._pool = eventlet.greenpool.GreenPool(size)

    def spawn(self, run: Callable[..., Any], *args: Any) -> Any:
        return self._pool.spawn(run, *args)

    def kill_all(self, timeout: float) -> None:
        for greenthread in list(self._pool.coroutines_running):
            greenthread.kill()
        with eventlet.Timeout(timeout, False):
            self._pool.waitall()


class _StopEvent:
    """A pipe, not eventlet's Event: set from a signal handler, an Event only
    schedules the waiter, and the hub sleeps on in epoll until its next timer
    (up to a tick late); a byte in a pipe the hub watches wakes it at once."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        self._set = False

    def set(self) -> None:
        if not self._set:  # one byte ever: the pipe never fills
            self._set = True
            _os_write(self._write, b"!")  # eventlet's own os.write may wait in the hub

    def wait(self, timeout: float) -> bool:
        try:
            hubs.trampoline(self._read, read=True, timeout=timeout)
        except eventlet.Timeout:
            return False
        return True


class EventletHub:
    """``Hub`` on eventlet."""

    Timeout = eventlet.Timeout
    name = "eventlet"

    def patch(self) -> None:
        hubs.use_hub()
        eventlet.monkey_patch()
        if not hasattr(eventlet.greenio.GreenSocket, "sendfile"):
            # the socket's own would refuse (non-blocking) or block the hub
            eventlet.greenio.GreenSocket.sendfile = _green_sendfile

    def green_socket(self, fd: int, family: int) -> Any:
        return eventlet.greenio.GreenSocket(family, socket.SOCK_STREAM, fileno=fd)

    def spawn(self, run: Callable[..., Any], *args: Any) -> Any:
        return eventlet.spawn(run, *args)

    def new_greenlet(self, run: Callable[[Any], None]) -> Any:
        return greenlet.greenlet(run, hubs.get_hub().greenlet)

    def park(self) -> Any:
        return hubs.get_hub().switch()

    def kill(self, greenlet: Any) -> None:
        # eventlet.kill switches into the target at once: schedule it instead
        hubs.get_hub().schedule_call_global(0, eventlet.kill, greenlet)

    def sleep(self, seconds: float) -> None:
        eventlet.sleep(seconds)

    def wait_read(self, fd: int) -> None:
        hubs.trampoline(fd, read=True)

    def wait_write(self, fd: int, timeout: float) -> bool:
        try:
            hubs.trampoline(fd, write=True, timeout=timeout)
        except eventlet.Timeout:
            return False
        return True

    def call_soon(self, run: Callable[[], None]) -> None:
        hubs.get_hub().schedule_call_global(0, run)

    def semaphore(self) -> Semaphore:
        sem: Semaphore = eventlet.semaphore.Semaphore(0)
        return sem

    def pool(self, size: int) -> Pool:
        return _EventletPool(size)

    def stop_event(self) -> _StopEvent:
        return _StopEvent()

    def deadline(self, seconds: float) -> Callable[[], None]:
        timer = eventlet.Timeout(seconds)
        return timer.cancel  # type: ignore[no-any-return]


class EventletH2(GreenH2):
    """Gunicorn worker class ``h2workers.EventletH2``."""

    hub = EventletHub()

    @classmethod
    def check_config(cls, cfg: Any, log: Any) -> None:
        """eventlet's select() hub cannot watch descriptors past FD_SETSIZE:
        refuse it at start-up rather than crash with the 1,025th socket."""
        super().check_config(cfg, log)
        hub = os.environ.get("EVENTLET_HUB", "")
        if hub.rsplit(".", 1)[-1] == "selects" and cfg.worker_connections > SELECT_LIMIT:
            raise ConfigError(
                f"worker_connections is {cfg.worker_connections}, but eventlet's selects hub "
                f"(EVENTLET_HUB={hub}) handles at most {SELECT_LIMIT}: lower it or use the "
                "default hub"
            )


def _green_sendfile(sock: Any, file: Any, offset: int = 0, count: int | None = None) -> int:
    """``socket.sendfile`` for a green socket: blocks read from the file and
    sent with the green ``sendall``, so other green threads run meanwhile."""
    if offset:
        file.seek(offset)
    sent = 0
    while count is None or sent < count:
        block = file.read(SENDFILE_BLOCK if count is None else min(SENDFILE_BLOCK, count - sent))
        if not block:
            break
        sock.sendall(block)
        sent += len(block)
    if sent and hasattr(file, "seek"):
        file.seek(offset + sent)
    return sent
