"""The log of what clients did stays readable under a flood: a few lines of
each kind a second, then one summary with the count and the last one."""

from __future__ import annotations

from typing import Any

from h2workers.peerlog import PeerLog


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def info(self, msg: str, *args: Any) -> None:
        self.lines.append(("info", msg % args))

    def warning(self, msg: str, *args: Any) -> None:
        self.lines.append(("warning", msg % args))


def make(burst: int = 3) -> tuple[PeerLog, Recorder, Clock]:
    recorder, clock = Recorder(), Clock()
    return PeerLog(recorder, burst=burst, clock=clock), recorder, clock


def test_a_few_lines_pass_unchanged() -> None:
    log, out, _ = make()
    log.info("stream %d from %s reset", 1, "10.0.0.1")
    log.warning("Invalid request from ip=%s: %s", "10.0.0.2", "bad")
    log.info("stream %d from %s reset", 3, "10.0.0.1")
    log.tick()
    assert out.lines == [
        ("info", "stream 1 from 10.0.0.1 reset"),
        ("warning", "Invalid request from ip=10.0.0.2: bad"),
        ("info", "stream 3 from 10.0.0.1 reset"),
    ]


def test_a_flood_is_summarised_once_a_second_per_kind() -> None:
    log, out, clock = make(burst=3)
    for n in range(1000):
        log.info("connection from %s closed: flood", f"10.0.{n // 256}.{n % 256}")
    log.info("other kind %d", 1)
    assert len(out.lines) == 4  # three of the flood, and the other kind
    clock.now += 1.0
    log.tick()
    assert out.lines[-1] == (
        "info",
        "997 more like this in the last 1s, the last: connection from 10.0.3.231 closed: flood",
    )
    log.tick()  # nothing left out since: nothing more
    assert len(out.lines) == 5


def test_the_budget_refills_each_second_without_a_tick() -> None:
    log, out, clock = make(burst=1)
    log.info("x %d", 1)
    log.info("x %d", 2)  # left out
    clock.now += 1.5
    log.info("x %d", 3)  # a new second: the summary first, then the line
    assert out.lines == [
        ("info", "x 1"),
        ("info", "1 more like this in the last 2s, the last: x 2"),
        ("info", "x 3"),
    ]


def test_the_level_is_kept() -> None:
    log, out, _ = make(burst=1)
    for n in range(3):
        log.warning("w %d", n)
    log.tick()
    assert out.lines == [
        ("warning", "w 0"),
        ("warning", "2 more like this in the last 1s, the last: w 2"),
    ]
