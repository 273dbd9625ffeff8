"""Results of ``python -m bench.run``: per-round numbers, per-cell medians, the table."""

from __future__ import annotations

from dataclasses import dataclass, field

from .loadgen import median
from .scenarios import BASELINE, Scenario, Settings
from .servers import SERVERS

CEILING_SERVER_SUFFIX = "-server"


@dataclass
class Round:
    """One server's result in one round of one scenario."""

    round: int
    value: float | None = None  # req/s, MiB/s or MiB of RSS growth; None when not measured
    failures: int = 0
    problem: str = ""
    start_failed: bool = False
    skipped: bool = False
    p50_ms: float | None = None  # idle: the extra request made with the connections open
    p99_ms: float | None = None
    mean_ms: float | None = None
    protocol: str = ""
    caveat: str = ""
    # idle only
    wanted: int | None = None  # idle connections asked for
    held: int | None = None  # ... and still open at the end
    alone_ms: float | None = None  # the extra request before they were opened
    base_rss_mib: float | None = None
    request_failed: bool = False
    request_timed_out: bool = False

    @property
    def tail_ratio(self) -> float | None:
        if self.p50_ms is None or self.p99_ms is None or self.p50_ms <= 0:
            return None
        return self.p99_ms / self.p50_ms

    @property
    def kib_per_conn(self) -> float | None:
        """Idle: RSS growth per connection, only when every connection was held (growth
        with fewer held also pays for the accepted sockets left waiting)."""
        if self.value is None or not self.held or not self.held_all:
            return None
        return self.value * 1024 / self.held

    @property
    def held_all(self) -> bool:
        return self.wanted is None or self.held == self.wanted


@dataclass
class Cell:
    scenario: str
    server: str
    unit: str
    rounds: list[Round] = field(default_factory=list)

    @property
    def values(self) -> list[float]:
        return [r.value for r in self.rounds if r.value is not None]

    @property
    def median(self) -> float | None:
        values = self.values
        return median(values) if values else None

    def median_of(self, attr: str) -> float | None:
        values = [getattr(r, attr) for r in self.rounds if getattr(r, attr) is not None]
        return median(values) if values else None

    @property
    def failures(self) -> int:
        return sum(r.failures for r in self.rounds)

    @property
    def never_started(self) -> bool:
        return bool(self.rounds) and all(r.start_failed for r in self.rounds)

    @property
    def idle(self) -> bool:
        return any(r.wanted is not None for r in self.rounds)

    @property
    def held_all(self) -> bool:
        return all(r.held_all for r in self.rounds if not r.start_failed)

    def p50_text(self) -> str:
        """The p50 column; idle: the extra request, or how it failed in every round."""
        p50 = self.median_of("p50_ms")
        if p50 is not None or not any(r.request_failed for r in self.rounds):
            return _fmt(p50, 1)
        return "timeout" if all(r.request_timed_out for r in self.rounds
                                if r.request_failed) else "failed"

    def note(self) -> str:
        if self.never_started:
            return _reason(self.rounds[0].problem)
        if self.idle:
            return self._idle_note()
        bad = [r for r in self.rounds if r.problem]
        if not bad:
            caveats = {r.caveat for r in self.rounds if r.caveat}
            return "status unread by h2load, bodies verified" if caveats else ""
        kinds = []
        if any(r.start_failed for r in bad):
            kinds.append("failed to start")
        if any(r.failures for r in bad):
            kinds.append("requests failed")
        if any(r.problem and not r.failures and not r.start_failed for r in bad):
            kinds.append("error")
        return f"{' + '.join(kinds)} in {len(bad)}/{len(self.rounds)} rounds"

    def _idle_note(self) -> str:
        ran = [r for r in self.rounds if r.wanted is not None and not r.start_failed]
        parts = []
        helds = [r.held for r in ran if r.held is not None]
        if helds:
            low, high = min(helds), max(helds)
            parts.append(f"held {low}{'' if low == high else f'-{high}'}/{ran[0].wanted}")
        per_conn = self.median_of("kib_per_conn")
        if per_conn is not None:
            parts.append(f"{per_conn:,.0f} KiB/conn")
        alone = self.median_of("alone_ms")
        if alone is not None:
            parts.append(f"alone {alone:.1f} ms")
        text = ", ".join(parts)
        rounds = len(self.rounds)
        kinds = []
        if failed := sum(1 for r in ran if r.request_failed):
            kinds.append(f"extra request failed in {failed}/{rounds} rounds")
        if started := sum(1 for r in self.rounds if r.start_failed):
            kinds.append(f"failed to start in {started}/{rounds} rounds")
        if other := sum(1 for r in ran if r.problem and r.held_all and not r.request_failed):
            kinds.append(f"error in {other}/{rounds} rounds")
        return "; ".join(filter(None, [text, *kinds]))


def _reason(problem: str, limit: int = 70) -> str:
    """The most telling part of a problem: the last line of a log tail."""
    if problem.startswith("skipped: "):
        return short(problem.split(";", 1)[0], limit)
    last = problem.rsplit(" | ", 1)[-1]
    prefix = "failed to start: " if problem.startswith("failed to start") else ""
    return short(prefix + last if prefix and prefix not in last else last, limit)


def short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _fmt(value: float | None, digits: int = 0) -> str:
    if value is None or value != value:  # None or NaN
        return "-"
    return f"{value:,.{digits}f}"


def describe(round_: Round, unit: str) -> str:
    """One round, for the progress log."""
    if round_.skipped:
        return round_.problem
    if round_.value is None:
        return "FAILED: " + short(round_.problem, 200)
    if round_.wanted is not None:
        request = ("timed" if round_.p50_ms is None else f"{round_.p50_ms:.1f} ms")
        text = (f"RSS +{round_.value:,.1f} {unit} from {_fmt(round_.base_rss_mib, 1)} MiB, "
                f"held {round_.held}/{round_.wanted}, extra request "
                f"{'failed' if round_.request_failed else request}")
    else:
        text = f"{round_.value:,.1f} {unit}"
    if round_.p99_ms is not None and unit == "req/s":
        text += f" (p50 {round_.p50_ms:.1f} ms, p99 {round_.p99_ms:.1f} ms)"
    if round_.problem:
        text += " !! " + short(round_.problem, 300)
    return text


def _ratio(scenario: Scenario, cell: Cell, base: Cell | None) -> str:
    """The ``vs gunicorn-native`` column; idle: ``*`` when either side held fewer than N."""
    base_median = base.median if base is not None else None
    if cell.median is None or not base_median:
        return "-"
    ratio = f"{cell.median / base_median:.2f}x"
    if not scenario.lower_is_better:
        return ratio
    assert base is not None
    if base_median < 0:
        return "- (lower=better)"
    unequal = not (cell.held_all and base.held_all)
    return f"{ratio}{'*' if unequal else ''} (lower=better)"


def _tail(scenario: Scenario, cell: Cell) -> str:
    ratio = cell.median_of("tail_ratio")
    if ratio is None:
        return "-"
    flag = "!" if scenario.tail_target is not None and ratio > scenario.tail_target else ""
    return f"{ratio:.1f}x{flag}"


def rows_of(names: list[str]) -> list[str]:
    out = []
    for name in names:
        out.append(name)
        if SERVERS[name].kind == "ceiling":
            out.append(name + CEILING_SERVER_SUFFIX)
    return out


def render(cells: dict[tuple[str, str], Cell], settings: Settings) -> tuple[str, list[str]]:
    """The table, and the legend lines that explain it."""
    headers = ["scenario", "server", "median", "unit", "min-max", "p50 ms", "p99 ms", "p99/p50",
               "failed", f"vs {BASELINE}", "note"]
    rows: list[list[str]] = []
    fewer: list[str] = []  # idle: servers that did not hold every connection
    for scenario in settings.scenarios:
        base = cells.get((scenario.key, BASELINE))
        for name in rows_of(scenario.servers(settings.servers)):
            cell = cells.get((scenario.key, name))
            if cell is None:
                continue
            value = cell.median
            values = cell.values
            digits = 0 if scenario.unit == "req/s" else 1
            spread = (f"{min(values):,.{digits}f}-{max(values):,.{digits}f}"
                      if len(values) > 1 else "-")
            ratio = _ratio(scenario, cell, base)
            if cell.idle and not cell.held_all:
                fewer.append(name)
            if value is None:
                shown = ("skipped" if all(r.skipped for r in cell.rounds) else
                         "failed to start" if cell.never_started else "FAILED")
                ratio = "-"
            else:
                shown = _fmt(value, digits)
            rows.append([
                settings.title(scenario), name, shown, scenario.unit, spread,
                cell.p50_text(), _fmt(cell.median_of("p99_ms"), 1),
                _tail(scenario, cell), str(cell.failures), ratio, cell.note(),
            ])
        rows.append([])
    rows = rows[:-1] if rows and not rows[-1] else rows
    widths = [max(len(h), *(len(r[i]) for r in rows if r)) for i, h in enumerate(headers)]
    right = {2, 4, 5, 6, 7, 8, 9}

    def line(cols: list[str]) -> str:
        cells_ = [c.rjust(w) if i in right else c.ljust(w)
                  for i, (c, w) in enumerate(zip(cols, widths, strict=True))]
        return "  ".join(cells_).rstrip()

    out = [line(headers), line(["-" * w for w in widths])]
    out += [line(r) if r else "" for r in rows]
    return "\n".join(out), legend(settings, fewer)


def legend(settings: Settings, fewer: list[str]) -> list[str]:
    keys = {s.key: s for s in settings.scenarios}
    lines = [f"vs {BASELINE} = median / median of {BASELINE} in the same scenario: "
             "higher is better for req/s and MiB/s"]
    if "idle" in keys:
        lines.append(
            f"idle: median = RSS growth (MiB) of the server's worker with "
            f"{settings.idle_conns} idle HTTP/2 connections open, LOWER is better, and so "
            f"is a ratio below 1.00x (growth / {BASELINE}'s growth); p50 ms = one HTTP/1.1 "
            "request made while they were open (note: 'alone' = the same request before); "
            "failed = connections not held + failed extra requests")
    if fewer:
        lines.append(f"*: not like for like: {', '.join(fewer)} held fewer than "
                     f"{settings.idle_conns} connections (see note), so its growth is for "
                     "fewer connections (the rest accepted and left waiting, or refused)")
    targets = [s for s in settings.scenarios if s.tail_target is not None]
    if any(s.kind == "requests" for s in settings.scenarios):
        text = "p99/p50: median over rounds of each round's p99 / p50"
        if targets:
            text += "; '!' marks a row above its tail target (" + ", ".join(
                f"{s.key}: p99 <= {s.tail_target:g}x p50" for s in targets) + ")"
        lines.append(text)
    return lines


def problems(cells: dict[tuple[str, str], Cell]) -> str:
    """Each distinct problem once, with the scenarios it happened in."""
    where: dict[tuple[str, str], list[str]] = {}
    for (scenario, server), cell in cells.items():
        for r in cell.rounds:
            if r.problem:
                keys = where.setdefault((server, r.problem), [])
                if scenario not in keys:
                    keys.append(scenario)
    return "\n".join(
        f"  {server} [{', '.join(scenarios)}]: {short(problem, 600)}"
        for (server, problem), scenarios in where.items()
    )
