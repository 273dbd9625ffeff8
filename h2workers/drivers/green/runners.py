"""Green threads kept between streams.

A stream runs in a green thread of its own. Started fresh, each one cost
an mmap and a munmap: CPython gives every greenlet its own stack of frames,
and its first call maps a 16 KiB chunk for it, unmapped again when the
greenlet dies (page faults and TLB flushes: a fifth of a small request's
time on GeventH2). A green thread that has served a stream parks in the hub
and takes the next one instead, up to ``KEEP`` of them idle; past that
they end as before. Each stream still starts with an empty context
(``contextvars``), as a new green thread would.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from greenlet import getcurrent

from h2workers.drivers.green.hub import Hub

KEEP = 128  # idle green threads kept (about 20 KiB each)


class _Job:
    __slots__ = ("args", "work")

    def __init__(self, work: Callable[..., None], args: tuple[Any, ...]) -> None:
        self.work = work
        self.args = args


class GreenRunners:
    """Runs each piece of work in a green thread, reusing idle ones."""

    def __init__(self, hub: Hub, keep: int = KEEP) -> None:
        self.hub = hub
        self.keep = keep
        self.idle: list[Any] = []  # parked green threads, the last parked first

    def run(self, work: Callable[..., None], *args: Any) -> None:
        """Start ``work(*args)`` soon (``work`` must not raise: nothing joins it)."""
        idle = self.idle
        runner = idle.pop() if idle else self.hub.new_greenlet(self._serve)
        self.hub.resume(runner, _Job(work, args))

    def _serve(self, job: Any) -> None:
        current = getcurrent()
        while True:
            if isinstance(job, _Job):
                current.gr_context = None  # an empty context, as a new green thread has
                job.work(*job.args)
                job = None
                if len(self.idle) >= self.keep:
                    return
                self.idle.append(current)
            job = self.hub.park()  # anything but a _Job (a stray wake-up) parks again
