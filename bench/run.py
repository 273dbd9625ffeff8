"""Benchmark h2workers against its peers, side by side: ``python -m bench.run``.

For every scenario and round, each server is started in turn on 127.0.0.1 (one
worker, pinned to core 0 when ``taskset`` exists), polled until it answers a
real request, loaded with h2load (pinned to core 1), and stopped. The server
order rotates from round to round; the table shows medians over rounds and the
ratio to ``gunicorn-native`` in the same scenario. The ``idle`` scenario has no
h2load run: this process holds N idle HTTP/2 connections and reads the worker's
RSS (``bench/idle.py``). See ``bench/README.md``.
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
from .idle import FD_MARGIN, measure_idle, raise_nofile
from .loadgen import H2LOAD, H2loadResult, run_h2load
from .scenarios import SCENARIO_KEYS, SCENARIOS, Scenario, Settings
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
from .table import CEILING_SERVER_SUFFIX, Cell, Round, describe, problems, render

MIB = 1024 * 1024
SERVER_CORE = 0
CLIENT_CORE = 1


@dataclass
class Env:
    workdir: Path
    tls: TLSFiles
    upload_file: Path
    start_failures: dict[tuple[str, bool, str, bool], str] = field(default_factory=dict)
    nofile: int = 0  # the open-file limit raised for the idle scenario, 0 if not run


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


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


def _run_idle(round_: Round, master_pid: int, port: int, settings: Settings) -> None:
    """The ``idle`` scenario's numbers for one server (see ``bench/idle.py``)."""
    round_.wanted, round_.held = settings.idle_conns, 0
    try:
        result = measure_idle(master_pid, port, settings.idle_conns,
                              _core(settings, CLIENT_CORE))
    except Exception as exc:  # a harness bug must not lose the other servers' numbers
        round_.problem = f"idle measurement failed: {exc!r}"
        round_.failures = settings.idle_conns + 1
        return
    round_.value = result.growth_mib
    round_.p50_ms = result.request_ms
    round_.wanted, round_.held = result.wanted, result.held
    round_.alone_ms, round_.base_rss_mib = result.alone_ms, result.base_rss_mib
    round_.request_failed = result.request_ms is None
    round_.request_timed_out = "timed out" in result.request_error
    round_.failures = result.failures
    round_.problem = result.problem


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
    app = "hello" if scenario.kind in ("requests", "idle") else "bodies"
    idle = scenario.kind == "idle"
    key = (name, scenario.tls, app, idle)
    if key in env.start_failures:
        round_.problem, round_.start_failed = env.start_failures[key], True
        return round_
    h1 = scenario.h1 or spec.h1
    tls = env.tls if scenario.tls else None
    server = None
    try:
        for attempt in range(2):
            launch = Launch(name, app, tls, free_port(), env.workdir,
                            hold_idle=settings.idle_conns if idle else 0)
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
        if idle:
            _run_idle(round_, server.proc.pid, server.launch.port, settings)
        else:
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


def iterate(settings: Settings, env: Env) -> Iterator[tuple[Scenario, str, Round]]:
    for scenario in settings.scenarios:
        names = scenario.servers(settings.servers)
        for round_index in range(settings.rounds):
            for name in rotated(names, round_index):
                for row, round_ in run_one(scenario, name, round_index + 1, settings, env):
                    _log(f"[{scenario.key} round {round_index + 1}/{settings.rounds}] {row}: "
                         f"{describe(round_, scenario.unit)}")
                    yield scenario, row, round_


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
        *([f"idle: {settings.idle_conns} connections, open-file limit {env.nofile} "
           "(the client's, inherited by the servers)"] if env.nofile else []),
    ])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__.split("\n\n")[0],
        epilog="servers: " + "; ".join(f"{s.name} = {s.about}" for s in SERVERS.values()),
    )
    parser.add_argument("--quick", action="store_true",
                        help="CI smoke test: ~300 requests, 1 round, 8 MiB bodies, "
                        "100 idle connections")
    parser.add_argument("--rounds", type=int, help="rounds per scenario (default 3; quick 1)")
    parser.add_argument("--requests", "-n", type=int,
                        help="requests per h2load run (default 20000; quick 300)")
    parser.add_argument("--body-mb", type=int,
                        help="MiB per download/upload (default 100; quick 8)")
    parser.add_argument("--idle-conns", type=int,
                        help="idle HTTP/2 connections in the idle scenario "
                        "(default 1000; quick 100)")
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
    for option in ("rounds", "requests", "body_mb", "idle_conns"):
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
        idle_conns=args.idle_conns or (100 if args.quick else 1000),
    )
    nofile = 0
    if any(s.kind == "idle" for s in settings.scenarios):
        # Before any server starts: they inherit this process's limit.
        nofile = raise_nofile(settings.idle_conns + FD_MARGIN)
        if nofile < settings.idle_conns + FD_MARGIN:
            _log(f"note: open-file limit {nofile} is below {settings.idle_conns} idle "
                 f"connections + {FD_MARGIN}; fewer will be held")
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
        with open(upload_file, "rb") as fh:  # into the page cache now, or the first
            while fh.read(MIB):  # upload round pays for it (h2load, not the server)
                pass
        env = Env(workdir, make_cert(workdir), upload_file, nofile=nofile)
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
    table, legend = render(cells, settings)
    print(table)
    details = problems(cells)
    if details:
        print("\nproblems:\n" + details)
    print(f"\n{'interrupted after' if interrupted else 'finished in'} {elapsed:.0f}s")
    print("\n".join(legend))
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
