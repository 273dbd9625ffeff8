"""GeventH2: the green driver on gevent.

Patches as Gunicorn's own gevent worker does (``monkey.patch_all()`` before
the app is imported, then ``hub.reinit()`` after the fork).
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import gevent
import gevent.event
import gevent.lock
import gevent.pool
from gevent import hub, monkey
from gevent.socket import wait_read, wait_write
from greenlet import greenlet

from h2workers.drivers.green.hub import Pool, Semaphore, StopEvent
from h2workers.drivers.green.worker import GreenH2


class _GeventPool:
    def __init__(self, size: int) -> None:
        self._pool = gevent.pool.Pool(size)

    def spawn(self, run: Callable[..., Any], *args: Any) -> Any:
        return self._pool.spawn(run, *args)

    def kill_all(self, timeout: float) -> None:
        self._pool.kill(block=True, timeout=timeout)


class GeventHub:
    """``Hub`` on gevent."""

    Timeout = gevent.Timeout
    name = "gevent"

    def patch(self) -> None:
        monkey.patch_all()
        hub.reinit()

    def green_socket(self, fd: int, family: int) -> Any:
        return socket.socket(family, socket.SOCK_STREAM, fileno=fd)

    def spawn(self, run: Callable[..., Any], *args: Any) -> Any:
        return gevent.spawn(run, *args)

    def new_greenlet(self, run: Callable[[Any], None]) -> Any:
        return greenlet(run, gevent.get_hub())

    def park(self) -> Any:
        return gevent.get_hub().switch()

    def kill(self, greenlet: Any) -> None:
        greenlet.kill(block=False)

    def sleep(self, seconds: float) -> None:
        gevent.sleep(seconds)

    def wait_read(self, fd: int) -> None:
        wait_read(fd)

    def wait_write(self, fd: int, timeout: float) -> bool:
        try:
            wait_write(fd, timeout=timeout)
        except TimeoutError:
            return False
        return True

    def call_soon(self, run: Callable[[], None]) -> None:
        gevent.get_hub().loop.run_callback(run)

    def semaphore(self) -> Semaphore:
        sem: Semaphore = gevent.lock.Semaphore(0)
        return sem

    def pool(self, size: int) -> Pool:
        return _GeventPool(size)

    def stop_event(self) -> StopEvent:
        event: StopEvent = gevent.event.Event()
        return event

    def deadline(self, seconds: float) -> Callable[[], None]:
        timer = gevent.Timeout(seconds)
        timer.start()
        return timer.close  # type: ignore[no-any-return]


class GeventH2(GreenH2):
    """Gunicorn worker class ``h2workers.GeventH2``."""

    hub = GeventHub()
