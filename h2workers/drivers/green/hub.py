"""What the green driver needs from a green-thread library.

``GreenH2`` (``worker.py``) and ``GreenConnection`` (``connection.py``) are
written once against this small interface; ``gevent_hub.py`` and
``eventlet_hub.py`` implement it. Everything here is what the two libraries
both do, under one name: start a green thread, park one, wait
for a socket, run a callback at the end of the loop iteration, a semaphore,
a bounded pool, a deadline.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol


class Semaphore(Protocol):
    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool: ...
    def release(self) -> Any: ...
    def locked(self) -> bool: ...


class Pool(Protocol):
    """Green threads for connections, at most ``worker_connections``."""

    def spawn(self, run: Callable[..., Any], *args: Any) -> Any:
        """Start ``run``; waits while the pool is full."""
        ...

    def kill_all(self, timeout: float) -> None: ...


class StopEvent(Protocol):
    """Set once (from a signal handler too); wakes the worker's loop."""

    def set(self) -> None: ...
    def wait(self, timeout: float) -> Any: ...


class Hub(Protocol):
    """A green-thread library, as the green driver uses it."""

    Timeout: type[BaseException]  # what a deadline raises
    name: str  # the library, for log lines

    def patch(self) -> None:
        """Monkey-patch the standard library (before the app is imported) and
        make the hub fresh after the fork."""
        ...

    def green_socket(self, fd: int, family: int) -> Any:
        """A listener Gunicorn made, re-created as a green socket."""
        ...

    def spawn(self, run: Callable[..., Any], *args: Any) -> Any:
        """A green thread that ``kill`` can stop."""
        ...

    def new_greenlet(self, run: Callable[[Any], None]) -> Any:
        """A green thread not started yet: its ``switch(value)`` starts it
        (nothing joins or kills it)."""
        ...

    def park(self) -> Any:
        """Give the hub this green thread until something switches back into
        it (returns the value switched in)."""
        ...

    def kill(self, greenlet: Any) -> None:
        """Stop a green thread soon (not before the caller yields)."""
        ...

    def sleep(self, seconds: float) -> None: ...

    def wait_read(self, fd: int) -> None: ...

    def wait_write(self, fd: int, timeout: float) -> bool:
        """False when ``timeout`` passed first."""
        ...

    def call_soon(self, run: Callable[[], None]) -> None:
        """Run ``run`` in the hub once every green thread ready now has run."""
        ...

    def semaphore(self) -> Semaphore: ...

    def pool(self, size: int) -> Pool: ...

    def stop_event(self) -> StopEvent: ...

    def deadline(self, seconds: float) -> Callable[[], None]:
        """Raise ``Timeout`` in this green thread after ``seconds``, unless
        the returned function (cancel) is called first."""
        ...
