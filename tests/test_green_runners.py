"""drivers/green/runners.GreenRunners on each library's hub: a green thread
serves one stream after another, each in an empty context; streams started
together are served by one green thread while none blocks, and by one
green thread each, all at the same time, when they block; up to KEEP of
them wait idle, and a stray wake-up of an idle one runs nothing."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

SCRIPT = """
import contextvars, json
from greenlet import getcurrent
from h2workers.drivers.green.{module} import {hub_class}
from h2workers.drivers.green.runners import GreenRunners

hub = {hub_class}()
runners = GreenRunners(hub, keep=2)
var = contextvars.ContextVar("var", default="empty")
seen = []

blocked = []
release = hub.semaphore()

def work(name):
    seen.append((name, id(getcurrent()), var.get()))
    var.set(name)

def blocking(name):
    work(name)
    blocked.append(name)
    if len(blocked) == 4:  # all four blocked at once: let them go
        for _ in range(4):
            release.release()
    release.acquire()

def main():
    runners.run(work, "a")
    hub.sleep(0.01)
    runners.run(work, "b")  # the same green thread, parked after "a"
    hub.sleep(0.01)
    stray = runners.idle[-1]
    hub.call_soon(lambda: stray.switch("not a job"))  # a stray wake-up: parks again, runs nothing
    hub.sleep(0.01)
    for name in "cdef":  # four at once that never block: one green thread
        runners.run(work, name)
    hub.sleep(0.01)
    for name in "ghij":  # four at once that block: four green threads, two kept
        runners.run(blocking, name)
    hub.sleep(0.05)
    kept = {{"idle": len(runners.idle), "stray_idle": stray in runners.idle}}
    print(json.dumps({{"seen": seen, "blocked": blocked, **kept}}))

hub.spawn(main)
hub.sleep(0.2)
"""


@pytest.mark.parametrize(
    ("module", "hub_class", "library"),
    [("gevent_hub", "GeventHub", "gevent"), ("eventlet_hub", "EventletHub", "eventlet")],
)
def test_green_threads_are_reused_with_a_fresh_context(module, hub_class, library):
    pytest.importorskip(library)
    code = SCRIPT.format(module=module, hub_class=hub_class)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    seen = result["seen"]
    assert [name for name, _, _ in seen] == list("abcdefghij")
    assert all(value == "empty" for _, _, value in seen)  # no context carried over
    assert seen[0][1] == seen[1][1]  # "b" ran in the green thread that served "a"
    assert len({green for _, green, _ in seen[2:6]}) == 1  # none blocks: one thread
    assert len({green for _, green, _ in seen[6:]}) == 4  # each blocks: four threads
    assert result["blocked"] == list("ghij")  # all four were blocked at once
    assert result["idle"] == 2 and result["stray_idle"]  # KEEP idle; the stray parked again
