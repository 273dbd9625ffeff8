"""Running ``h2load`` and reading what it printed.

h2load's "time for request" line only has min/max/mean/sd, so the median and
p99 come from its ``--log-file`` (one line per request: start time in
microseconds since the epoch, status code, microseconds until the end of the
response; status -1 for a failed stream).

h2load ``--h1`` cannot read the status of a response whose status line has no
reason phrase (``HTTP/1.1 200 \\r\\n``, which Hypercorn sends and RFC 9112
allows): it counts such a response as failed with no status code. When every
request is "done", none errored or timed out, no status was read at all, and
the body bytes add up to exactly what the app sends, the result is marked
``status_unread`` and counted as successful, with that caveat shown.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

H2LOAD = shutil.which("h2load")

_FINISHED = re.compile(r"finished in ([\d.]+)(us|ms|s), ([\d.]+) req/s")
_REQUESTS = re.compile(
    r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
    r"(\d+) failed, (\d+) errored, (\d+) timeout"
)
_STATUS = re.compile(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx")
_TRAFFIC_DATA = re.compile(r"traffic: .*?, [\d.]+\w*B \((\d+)\) data")
_TIME_FOR_REQUEST = re.compile(r"time for request:\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)")
_PROTOCOL = re.compile(r"Application protocol: (\S+)")
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


def _seconds(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if match is None:
        return float("nan")
    return float(match.group(1)) * _UNITS[match.group(2)]


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    rank = max(0, min(len(sorted_values) - 1, round(fraction * len(sorted_values) + 0.5) - 1))
    return sorted_values[rank]


@dataclass
class H2loadResult:
    """What one h2load run reported. ``failures`` counts every request that did not succeed."""

    argv: list[str]
    requested: int = 0
    returncode: int | None = None
    elapsed: float = float("nan")
    req_per_s: float = float("nan")
    total: int = 0
    done: int = 0
    succeeded: int = 0
    failed: int = 0
    errored: int = 0
    timed_out: int = 0
    status: dict[str, int] = field(default_factory=dict)
    data_bytes: int = 0
    protocol: str = ""
    mean_request_s: float = float("nan")
    max_request_s: float = float("nan")
    latencies_s: list[float] = field(default_factory=list)
    status_unread: bool = False
    error: str = ""
    output: str = ""

    @property
    def parsed(self) -> bool:
        return self.total > 0

    @property
    def failures(self) -> int:
        """Requests that did not succeed with a 2xx (failed, errored, timed out, unfinished).

        In h2load's summary "errored" and "timeout" are subsets of "failed", and
        "succeeded" counts 2xx/3xx answers only.
        """
        if not self.parsed or self.status_unread:
            return 0
        return self.total - min(self.succeeded, self.status.get("2xx", self.succeeded))

    @property
    def ok(self) -> bool:
        return (not self.error and self.parsed and self.failures == 0
                and (self.succeeded > 0 or self.status_unread))

    @property
    def caveat(self) -> str:
        if self.status_unread:
            return ("h2load --h1 could not read the status (no reason phrase); "
                    "bodies complete, so counted as successful")
        return ""

    def problem(self) -> str:
        if self.error:
            return self.error
        if not self.parsed:
            lines = [line for line in self.output.splitlines() if line.strip()]
            return "h2load: " + (" | ".join(lines[-3:]) or f"exit code {self.returncode}")
        if self.failures:
            codes = ", ".join(f"{n} {k}" for k, n in self.status.items() if n and k != "2xx")
            extra = f" ({codes})" if codes else ""
            return (f"{self.failures}/{self.total} requests failed: {self.failed} failed, "
                    f"{self.errored} errored, {self.timed_out} timeout{extra}")
        return ""

    def latency(self, fraction: float) -> float:
        return percentile(self.latencies_s, fraction)


def parse_output(result: H2loadResult, text: str) -> None:
    """Fill ``result`` from h2load's stdout."""
    result.output = text
    if match := _FINISHED.search(text):
        result.elapsed = float(match.group(1)) * _UNITS[match.group(2)]
        result.req_per_s = float(match.group(3))
    if match := _REQUESTS.search(text):
        (result.total, _started, result.done, result.succeeded, result.failed,
         result.errored, result.timed_out) = (int(g) for g in match.groups())
    if match := _STATUS.search(text):
        result.status = dict(zip(("2xx", "3xx", "4xx", "5xx"), map(int, match.groups()),
                                 strict=True))
    if match := _TRAFFIC_DATA.search(text):
        result.data_bytes = int(match.group(1))
    if match := _TIME_FOR_REQUEST.search(text):
        result.mean_request_s = _seconds(match.group(3))
        result.max_request_s = _seconds(match.group(2))
    if match := _PROTOCOL.search(text):
        result.protocol = match.group(1)


def read_log(path: Path) -> list[float]:
    """Sorted durations (seconds) of the successful requests in an h2load --log-file."""
    durations = []
    try:
        with open(path) as fh:
            for line in fh:
                parts = line.split("\t")
                if len(parts) >= 3 and parts[1].strip() != "-1":
                    durations.append(int(parts[2]) / 1e6)
    except (OSError, ValueError):
        return []
    durations.sort()
    return durations


def run_h2load(
    url: str,
    *,
    requests: int,
    clients: int,
    streams: int,
    h1: bool,
    core: int | None,
    timeout: float,
    data_file: Path | None = None,
    log_latency: bool = False,
    expect_data: int | None = None,
) -> H2loadResult:
    """Run h2load once; never raises for a failing server, the result says what happened.

    ``expect_data`` is the total response body size in bytes if every request
    succeeds; it is only used to vouch for responses h2load could not read the
    status of (see the module docstring).
    """
    from .servers import pinned  # late: servers imports this module

    if H2LOAD is None:
        return H2loadResult([], requested=requests,
                            error="h2load not found (apt-get install nghttp2-client)")
    argv = [H2LOAD, "-n", str(requests), "-c", str(clients), "-m", str(streams), "-t", "1",
            "-N", "30s"]
    if h1:
        argv.append("--h1")
    if data_file is not None:
        argv += ["-d", str(data_file)]
    log_fd, log_name = tempfile.mkstemp(prefix="h2load-", suffix=".tsv")
    os.close(log_fd)
    log_path = Path(log_name)
    argv += ["--log-file", str(log_path), url]
    argv = pinned(argv, core)
    result = H2loadResult(argv, requested=requests)
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=timeout, check=False)
        result.returncode = proc.returncode
        parse_output(result, proc.stdout.decode(errors="replace")
                     + proc.stderr.decode(errors="replace"))
        if log_latency or data_file is not None or requests == 1:
            result.latencies_s = read_log(log_path)
        if h1 and expect_data is not None:
            _check_unread_status(result, expect_data)
        if not result.parsed and not result.error:
            result.error = result.problem()
    except subprocess.TimeoutExpired as exc:
        result.error = f"h2load did not finish within {timeout:.0f}s"
        out = exc.stdout or b""
        result.output = out.decode(errors="replace") if isinstance(out, bytes) else str(out)
    finally:
        log_path.unlink(missing_ok=True)
    return result


def _check_unread_status(result: H2loadResult, expect_data: int) -> None:
    if (result.parsed and result.total == result.done and result.succeeded == 0
            and result.errored == 0 and result.timed_out == 0
            and sum(result.status.values()) == 0 and result.data_bytes == expect_data):
        result.status_unread = True


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
