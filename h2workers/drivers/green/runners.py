"""Green threads kept between streams.

A stream runs in a green thread of its own. Started fresh, each one cost
an mmap and a munmap: CPython gives every greenlet its own stack of frames,
and its first call maps a 16 KiB chunk for it, unmapped again when the
greenlet dies (page faults and TLB flushes: a fifth of a small request's
time on GeventH2). A green thread that has served a stream parks in the hub
and takes the next one instead, up to ``KEEP`` of them idle; past that
they end as before. Each stream still starts with an empty context
(``contextvars``), as a new green thread would.

Streams wait in one queue, and each one started also asks the hub to hand
one waiting stream to a green thread. A green thread that finishes its
stream takes the next waiting one itself: the ten streams of one read are
served by one green thread, one after the other, as long as none of them
blocks, instead of by ten green threads switched to in turn (each switch
trades the CPU's caches for another stack of frames). A stream that blocks
lets the hub run, which hands the next waiting stream to another green
thread: no stream waits for another one's blocking call, as before.
"""

from __future__ import annotations

from collections import deque
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
        # Work not yet taken; never longer than the hub's pending _start
        # calls (one per run(), each takes at most one), so none is left behind.
        self.waiting: deque[_Job] = deque()

    def run(self, work: Callable[..., None], *args: Any) -> None:
        """Start ``work(*args)`` soon (``work`` must not raise: nothing joins it)."""
        self.waiting.append(_Job(work, args))
        self.hub.call_soon(self._start)

    def _start(self) -> None:
        """In the hub: the oldest waiting work to a green thread, unless a
        green thread that finished its own work has taken it already."""
        if self.waiting:
            idle = self.idle
            runner = idle.pop() if idle else self.hub.new_greenlet(self._serve)
            runner.switch(self.waiting.popleft())

    def _serve(self, job: Any) -> None:
        current = getcurrent()
        waiting = self.waiting
        while True:
            if isinstance(job, _Job):
                while job is not None:
                    current.gr_context = None  # an empty context, as a new green thread has
                    job.work(*job.args)
                    job = waiting.popleft() if waiting else None
                if len(self.idle) >= self.keep:
                    return
                self.idle.append(current)
            job = self.hub.park()  # anything but a _Job (a stray wake-up) parks again
