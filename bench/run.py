"""Benchmark h2workers against its peers, side by side: ``python -m bench.run``.

For every scenario and round, each server is started in turn on 127.0.0.1 (one
worker, pinned to core 0 when ``taskset`` exists), polled until it answers a
real request, loaded with h2load (pinned to core 1), and stopped. The server
order rotates from round to round; the table shows medians over rounds and the
ratio to ``gunicorn-native`` in the same scenario. See ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import math
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType

from .apps import HELLO
from .loadgen import H2LOAD, H2loadResult, median, run_h2load
from .servers import (
    DEFAULT_SERVERS,
    REPO,
    SERVERS,
    TASKSET,
    Launch,
    ServerSpec,
    StartError,
    TLSFiles,
    check_tools,
    free_port,
    make_cert,
    pinned,
    start,
    stop,
)

MIB = 1024 * 1024
SERVER_CORE = 0
CLIENT_CORE = 1
BASELINE = "gunicorn-native"
CEILING_SERVER_SUFFIX = "-server"


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    kind: str  # "requests", "download" or "upload"
    clients: int = 1
    streams: int = 1
    tls: bool = True
    h1: bool = False  # every server is driven with h2load --h1

    @property
    def unit(self) -> str:
        return "req/s" if self.kind == "requests" else "MiB/s"

    def servers(self, chosen: list[str]) -> list[str]:
        """The chosen servers that take part in this scenario, in the chosen order."""
        names = []
        for name in chosen:
            spec = SERVERS[name]
            if spec.kind == "ceiling" and (self.kind != "requests" or self.h1):
                continue  # the ceiling is an HTTP/2 request/response number
            if spec.h1 and self.h1:
                continue  # identical to plain h2workers here
            names.append(name)
        return names


SCENARIOS: list[Scenario] = [
    Scenario("c10m10", "h2 TLS -c 10 -m 10", "requests", 10, 10),
    Scenario("c1m100", "h2 TLS -c 1 -m 100", "requests", 1, 100),
    Scenario("c100m1", "h2 TLS -c 100 -m 1", "requests", 100, 1),
    Scenario("c100m10", "h2 TLS -c 100 -m 10", "requests", 100, 10),
    Scenario("h2c", "h2c -c 10 -m 10", "requests", 10, 10, tls=False),
    Scenario("h1", "HTTP/1.1 TLS --h1 -c 10", "requests", 10, 1, h1=True),
    Scenario("download", "download 1 stream TLS", "download"),
    Scenario("upload", "upload 1 stream TLS", "upload"),
]
SCENARIO_KEYS = [s.key for s in SCENARIOS]


@dataclass
class Round:
    """One server's result in one round of one scenario."""

    round: int
    value: float | None = None  # req/s or MiB/s; None when nothing was measured
    failures: int = 0
    problem: str = ""
    start_failed: bool = False
    skipped: bool = False
    p50_ms: float | None = None
    p99_ms: float | None = None
    mean_ms: float | None = None
    protocol: str = ""
    caveat: str = ""


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

    def note(self) -> str:
        if self.never_started:
            return _reason(self.rounds[0].problem)
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


@dataclass
class Settings:
    requests: int
    rounds: int
    body_mb: int
    servers: list[str]
    scenarios: list[Scenario]
    pin: bool


@dataclass
class Env:
    workdir: Path
    tls: TLSFiles
    upload_file: Path
    start_failures: dict[tuple[str, bool, str], str] = field(default_factory=dict)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _reason(problem: str, limit: int = 70) -> str:
    """The most telling part of a problem: the last line of a log tail."""
    if problem.startswith("skipped: "):
        return _short(problem.split(";", 1)[0], limit)
    last = problem.rsplit(" | ", 1)[-1]
    prefix = "failed to start: " if problem.startswith("failed to start") else ""
    return _short(prefix + last if prefix and prefix not in last else last, limit)


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def rotated(names: list[str], round_index: int) -> list[str]:
    """Round 0: A B C; round 1: B C A; round 2: C A B; ..."""
    if not names:
        return []
    shift = round_index % len(names)
    return names[shift:] + names[:shift]


def _core(settings: Settings, core: int) -> int | None:
    return core if settings.pin else None


def run_ceiling(settings: Settings, requests: int, round_index: int) -> tuple[Round, Round]:
    """Both ends in memory (``h2-ceiling``) and the server calls alone (``-server``)."""
    argv = pinned([sys.executable, "-m", "bench.ceiling", "--json", "-n", str(requests)],
                  _core(settings, SERVER_CORE))
    both, server = Round(round_index), Round(round_index)
    try:
        proc = subprocess.run(argv, cwd=REPO, capture_output=True, timeout=600, check=False)
        data = json.loads(proc.stdout.decode().strip().splitlines()[-1])
        both.value = float(data["req_per_s"])
        server.value = float(data["server_req_per_s"])
        both.failures = server.failures = int(data["failed"])
        if both.failures:
            both.problem = server.problem = f"{both.failures} in-memory requests failed"
    except (subprocess.TimeoutExpired, ValueError, IndexError, KeyError) as exc:
        both.problem = server.problem = f"ceiling run failed: {exc!r}"
        both.failures = server.failures = 1
    return both, server


def _measure(
    scenario: Scenario, spec: ServerSpec, base_url: str, settings: Settings, env: Env
) -> H2loadResult:
    h1 = scenario.h1 or spec.h1
    client = _core(settings, CLIENT_CORE)
    if scenario.kind == "requests":
        requests = max(settings.requests, scenario.clients)
        return run_h2load(
            base_url + "/", requests=requests, clients=scenario.clients,
            streams=1 if h1 else scenario.streams, h1=h1, core=client,
            timeout=120 + requests / 50, log_latency=True, expect_data=requests * len(HELLO),
        )
    timeout = 120 + settings.body_mb * 2.0
    size = settings.body_mb * MIB
    if scenario.kind == "download":
        return run_h2load(f"{base_url}/big?mb={settings.body_mb}", requests=1, clients=1,
                          streams=1, h1=h1, core=client, timeout=timeout, expect_data=size)
    return run_h2load(f"{base_url}/upload?expect={size}", requests=1, clients=1, streams=1,
                      h1=h1, core=client, timeout=timeout, data_file=env.upload_file,
                      expect_data=len(b"%d\n" % size))


def _fill(round_: Round, result: H2loadResult, scenario: Scenario, settings: Settings) -> None:
    round_.failures = result.failures
    round_.protocol = result.protocol
    round_.caveat = result.caveat
    if not result.ok:
        round_.problem = result.problem()
        # Unparsed output (h2load crashed or timed out): count every request as failed.
        round_.failures = result.failures if result.parsed else result.requested
    if result.latencies_s:
        round_.p50_ms = result.latency(0.50) * 1e3  # one-stream scenarios: the transfer time
        if scenario.kind == "requests":
            round_.p99_ms = result.latency(0.99) * 1e3
    if not math.isnan(result.mean_request_s):
        round_.mean_ms = result.mean_request_s * 1e3
    if result.succeeded == 0 and not result.status_unread:
        return
    if scenario.kind == "requests":
        round_.value = result.req_per_s
        return
    size = settings.body_mb * MIB
    expected = size if scenario.kind == "download" else len(b"%d\n" % size)
    if result.data_bytes != expected:
        what = "body" if scenario.kind == "download" else "answer"
        round_.problem = f"wrong {what} length: {result.data_bytes} bytes, expected {expected}"
        round_.failures = max(round_.failures, 1)
        return
    seconds = result.latencies_s[0] if result.latencies_s else result.elapsed
    if seconds > 0 and not math.isnan(seconds):
        round_.value = settings.body_mb / seconds


def run_one(
    scenario: Scenario, name: str, round_index: int, settings: Settings, env: Env
) -> list[tuple[str, Round]]:
    """Measure one server once; the ceiling yields two rows."""
    spec = SERVERS[name]
    if spec.kind == "ceiling":
        both, server_only = run_ceiling(settings, settings.requests, round_index)
        return [(name, both), (name + CEILING_SERVER_SUFFIX, server_only)]
    return [(name, _run_server(scenario, spec, round_index, settings, env))]


def _run_server(
    scenario: Scenario, spec: ServerSpec, round_index: int, settings: Settings, env: Env
) -> Round:
    name = spec.name
    round_ = Round(round_index)
    missing = spec.missing()
    if missing:
        round_.problem, round_.start_failed, round_.skipped = f"skipped: {missing}", True, True
        return round_
    app = "hello" if scenario.kind == "requests" else "bodies"
    key = (name, scenario.tls, app)
    if key in env.start_failures:
        round_.problem, round_.start_failed = env.start_failures[key], True
        return round_
    h1 = scenario.h1 or spec.h1
    tls = env.tls if scenario.tls else None
    server = None
    try:
        for attempt in range(2):
            launch = Launch(name, app, tls, free_port(), env.workdir)
            try:
                server = start(spec, launch, h1, _core(settings, SERVER_CORE))
                break
            except StartError as exc:
                text = str(exc)
                if attempt == 0 and "in use" in text.lower():
                    continue  # lost the free-port race: try another port
                env.start_failures[key] = f"failed to start: {text}"
                round_.problem, round_.start_failed = env.start_failures[key], True
                return round_
        assert server is not None
        result = _measure(scenario, spec, server.base_url, settings, env)
        _fill(round_, result, scenario, settings)
        if server.proc.poll() is not None:
            round_.problem = (round_.problem + "; " if round_.problem else "") + (
                f"server exited with code {server.proc.returncode}: {server.log_tail(3)}")
        elif round_.problem and (tail := server.log_tail(2)):
            round_.problem += f"; server log: {tail}"
    finally:
        if server is not None:
            stop(server)
    return round_


def _fmt(value: float | None, digits: int = 0) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:,.{digits}f}"


def _describe(round_: Round, unit: str) -> str:
    if round_.skipped:
        return round_.problem
    if round_.value is None:
        return "FAILED: " + _short(round_.problem, 200)
    text = f"{round_.value:,.1f} {unit}"
    if round_.p99_ms is not None and unit == "req/s":
        text += f" (p50 {round_.p50_ms:.1f} ms, p99 {round_.p99_ms:.1f} ms)"
    if round_.problem:
        text += " !! " + _short(round_.problem, 200)
    return text


def iterate(settings: Settings, env: Env) -> Iterator[tuple[Scenario, str, Round]]:
    for scenario in settings.scenarios:
        names = scenario.servers(settings.servers)
        for round_index in range(settings.rounds):
            for name in rotated(names, round_index):
                for row, round_ in run_one(scenario, name, round_index + 1, settings, env):
                    _log(f"[{scenario.key} round {round_index + 1}/{settings.rounds}] {row}: "
                         f"{_describe(round_, scenario.unit)}")
                    yield scenario, row, round_


def render(cells: dict[tuple[str, str], Cell], settings: Settings) -> str:
    headers = ["scenario", "server", "median", "unit", "min-max", "p50 ms", "p99 ms", "failed",
               f"vs {BASELINE}", "note"]
    rows: list[list[str]] = []
    for scenario in settings.scenarios:
        names = _rows(scenario.servers(settings.servers))
        base = cells.get((scenario.key, BASELINE))
        base_median = base.median if base is not None else None
        for name in names:
            cell = cells.get((scenario.key, name))
            if cell is None:
                continue
            value = cell.median
            values = cell.values
            digits = 0 if scenario.unit == "req/s" else 1
            spread = (f"{min(values):,.{digits}f}-{max(values):,.{digits}f}"
                      if len(values) > 1 else "-")
            if value is None:
                shown = ("skipped" if all(r.skipped for r in cell.rounds) else
                         "failed to start" if cell.never_started else "FAILED")
                ratio = "-"
            else:
                shown = _fmt(value, digits)
                ratio = f"{value / base_median:.2f}x" if base_median else "-"
            rows.append([
                scenario.title, name, shown, scenario.unit, spread,
                _fmt(cell.median_of("p50_ms"), 1), _fmt(cell.median_of("p99_ms"), 1),
                str(cell.failures), ratio, cell.note(),
            ])
        rows.append([])
    rows = rows[:-1] if rows and not rows[-1] else rows
    widths = [max(len(h), *(len(r[i]) for r in rows if r)) for i, h in enumerate(headers)]
    right = {2, 4, 5, 6, 7, 8}

    def line(cols: list[str]) -> str:
        cells_ = [c.rjust(w) if i in right else c.ljust(w)
                  for i, (c, w) in enumerate(zip(cols, widths, strict=True))]
        return "  ".join(cells_).rstrip()

    out = [line(headers), line(["-" * w for w in widths])]
    out += [line(r) if r else "" for r in rows]
    return "\n".join(out)


def _rows(names: list[str]) -> list[str]:
    out = []
    for name in names:
        out.append(name)
        if SERVERS[name].kind == "ceiling":
            out.append(name + CEILING_SERVER_SUFFIX)
    return out


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
        f"  {server} [{', '.join(scenarios)}]: {_short(problem, 600)}"
        for (server, problem), scenarios in where.items()
    )


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def banner(settings: Settings, env: Env) -> str:
    h2load_version = "missing"
    if H2LOAD:
        proc = subprocess.run([H2LOAD, "--version"], capture_output=True, check=False)
        h2load_version = proc.stdout.decode().strip()
    pin = (f"server core {SERVER_CORE}, h2load core {CLIENT_CORE}" if settings.pin
           else "off (no taskset)" if TASKSET is None else "off")
    versions = ", ".join(f"{d} {_version(d)}" for d in ("gunicorn", "h2", "hypercorn"))
    return "\n".join([
        f"python {platform.python_version()}, {versions}, {h2load_version}",
        f"requests/run {settings.requests}, rounds {settings.rounds}, body {settings.body_mb} "
        f"MiB, TLS cert via {env.tls.how}, pinning: {pin}",
        "servers: " + ", ".join(settings.servers),
    ])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__.split("\n\n")[0],
        epilog="servers: " + "; ".join(f"{s.name} = {s.about}" for s in SERVERS.values()),
    )
    parser.add_argument("--quick", action="store_true",
                        help="CI smoke test: ~300 requests, 1 round, 8 MiB bodies")
    parser.add_argument("--rounds", type=int, help="rounds per scenario (default 3; quick 1)")
    parser.add_argument("--requests", "-n", type=int,
                        help="requests per h2load run (default 20000; quick 300)")
    parser.add_argument("--body-mb", type=int,
                        help="MiB per download/upload (default 100; quick 8)")
    parser.add_argument("--servers", default=",".join(DEFAULT_SERVERS),
                        help=f"comma-separated, from: {', '.join(SERVERS)}")
    parser.add_argument("--scenarios", default=",".join(SCENARIO_KEYS),
                        help=f"comma-separated, from: {', '.join(SCENARIO_KEYS)}")
    parser.add_argument("--no-pin", action="store_true", help="do not use taskset")
    parser.add_argument("--json", type=Path, help="also write every round's numbers here")
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 if a server failed to start or a request failed "
                        "(skipped servers do not count)")
    args = parser.parse_args(argv)
    for option, known in (("servers", SERVERS), ("scenarios", SCENARIO_KEYS)):
        chosen = [x.strip() for x in getattr(args, option).split(",") if x.strip()]
        unknown = [x for x in chosen if x not in known]
        if unknown or not chosen:
            parser.error(f"--{option}: unknown {unknown or 'empty list'}; known: {list(known)}")
        setattr(args, option, chosen)
    for option in ("rounds", "requests", "body_mb"):
        value = getattr(args, option)
        if value is not None and value < 1:
            parser.error(f"--{option.replace('_', '-')} must be at least 1")
    return args


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    fatal = check_tools()
    if fatal:
        for problem in fatal:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    settings = Settings(
        requests=args.requests or (300 if args.quick else 20000),
        rounds=args.rounds or (1 if args.quick else 3),
        body_mb=args.body_mb or (8 if args.quick else 100),
        servers=args.servers,
        scenarios=[s for s in SCENARIOS if s.key in args.scenarios],
        pin=TASKSET is not None and not args.no_pin,
    )
    for name in settings.servers:
        missing = SERVERS[name].missing()
        if missing:
            _log(f"note: {name} will be skipped: {missing}")
    signal.signal(signal.SIGTERM, _terminate)
    cells: dict[tuple[str, str], Cell] = {}
    with tempfile.TemporaryDirectory(prefix="h2bench-") as tmp:
        workdir = Path(tmp)
        upload_file = workdir / "upload.bin"
        with open(upload_file, "wb") as fh:
            fh.truncate(settings.body_mb * MIB)  # sparse zeros: cheap to make and to read
        env = Env(workdir, make_cert(workdir), upload_file)
        print(banner(settings, env), flush=True)
        started = time.monotonic()
        interrupted = False
        try:
            for scenario, name, round_ in iterate(settings, env):
                cell = cells.setdefault((scenario.key, name), Cell(scenario.key, name,
                                                                   scenario.unit))
                cell.rounds.append(round_)
        except KeyboardInterrupt:
            interrupted = True
            _log("interrupted: printing what was measured so far")
        elapsed = time.monotonic() - started
    print()
    print(render(cells, settings))
    details = problems(cells)
    if details:
        print("\nproblems:\n" + details)
    print(f"\n{'interrupted after' if interrupted else 'finished in'} {elapsed:.0f}s; "
          f"ratio = median / median of {BASELINE} in the same scenario (higher is better)")
    if args.json:
        payload = {
            "settings": {**asdict(settings), "scenarios": [s.key for s in settings.scenarios]},
            "cells": [asdict(c) for c in cells.values()],
        }
        args.json.write_text(json.dumps(payload, indent=2))
    if interrupted:
        return 130
    if args.strict and any(r.problem and not r.skipped for c in cells.values() for r in c.rounds):
        return 1
    return 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
