"""Log lines about what clients did, bounded under floods.

A client's protocol error is worth one plain line (who, which stream,
what), but a flood is thousands of the same mistake a second, from one
peer or from many: one line each would bury everything else in the log
and cost the worker more than answering the flood. So each kind of line
(its format string) is written at most ``burst`` times a second; past
that the lines are counted, and once a second one summary line says how
many were left out and shows the last of them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

BURST = 5  # lines of one kind written each second before they are summarised


class PeerLog:
    """Wraps Gunicorn's logger; the worker calls ``tick`` about once a second."""

    def __init__(self, log: Any, burst: int = BURST, clock: Callable[[], float] = time.monotonic):
        self.log = log
        self.burst = burst
        self.clock = clock
        self.window_start = clock()
        self.written: dict[str, int] = {}  # format -> lines written this second
        self.left_out: dict[str, tuple[Callable[..., None], tuple[Any, ...], int]] = {}

    def info(self, msg: str, *args: Any) -> None:
        self._line(self.log.info, msg, args)

    def warning(self, msg: str, *args: Any) -> None:
        self._line(self.log.warning, msg, args)

    def _line(self, write: Callable[..., None], msg: str, args: tuple[Any, ...]) -> None:
        if self.clock() - self.window_start >= 1.0:
            self.tick()
        written = self.written.get(msg, 0)
        if written < self.burst:
            self.written[msg] = written + 1
            write(msg, *args)
            return
        _, _, count = self.left_out.get(msg, (write, args, 0))
        self.left_out[msg] = (write, args, count + 1)

    def tick(self) -> None:
        """Write one summary per kind of line left out since the last tick."""
        now = self.clock()
        seconds = max(now - self.window_start, 1.0)
        for msg, (write, args, count) in self.left_out.items():
            write("%d more like this in the last %.0fs, the last: " + msg, count, seconds, *args)
        self.left_out.clear()
        self.written.clear()
        self.window_start = now
