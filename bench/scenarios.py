"""What ``python -m bench.run`` measures: the scenarios and the run's settings."""

from __future__ import annotations

from dataclasses import dataclass

from .servers import SERVERS

BASELINE = "gunicorn-native"


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str  # "{n}" is replaced by the number of idle connections
    kind: str  # "requests", "download", "upload" or "idle"
    clients: int = 1
    streams: int = 1
    tls: bool = True
    h1: bool = False  # every server is driven with h2load --h1
    tail_target: float | None = None  # p99 should stay within this multiple of p50

    @property
    def unit(self) -> str:
        return {"requests": "req/s", "idle": "MiB"}.get(self.kind, "MiB/s")

    @property
    def lower_is_better(self) -> bool:
        return self.kind == "idle"

    def servers(self, chosen: list[str]) -> list[str]:
        """The chosen servers that take part in this scenario, in the chosen order."""
        names = []
        for name in chosen:
            spec = SERVERS[name]
            if spec.kind == "ceiling" and (self.kind != "requests" or self.h1):
                continue  # the ceiling is an HTTP/2 request/response number
            if spec.h1 and self.kind == "idle":
                continue  # idle holds HTTP/2 connections
            if spec.h1 and self.h1 and spec.kind == "gunicorn" and not spec.config:
                continue  # the same worker as its HTTP/2 entry, which runs --h1 here too
            names.append(name)
        return names


SCENARIOS: list[Scenario] = [
    Scenario("c10m10", "h2 TLS -c 10 -m 10", "requests", 10, 10),
    Scenario("c1m100", "h2 TLS -c 1 -m 100", "requests", 1, 100),
    Scenario("c100m1", "h2 TLS -c 100 -m 1", "requests", 100, 1),
    Scenario("c100m10", "h2 TLS -c 100 -m 10", "requests", 100, 10, tail_target=3.0),
    Scenario("h2c", "h2c -c 10 -m 10", "requests", 10, 10, tls=False),
    Scenario("h1", "HTTP/1.1 TLS --h1 -c 10", "requests", 10, 1, h1=True),
    Scenario("download", "download 1 stream TLS", "download"),
    Scenario("upload", "upload 1 stream TLS", "upload"),
    Scenario("idle", "idle: {n} h2 TLS conns, RSS", "idle"),
]
SCENARIO_KEYS = [s.key for s in SCENARIOS]


@dataclass
class Settings:
    requests: int
    rounds: int
    body_mb: int
    servers: list[str]
    scenarios: list[Scenario]
    pin: bool
    idle_conns: int = 1000

    def title(self, scenario: Scenario) -> str:
        return scenario.title.replace("{n}", str(self.idle_conns))
