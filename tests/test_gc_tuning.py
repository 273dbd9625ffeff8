"""The worker's collector settings once the app is loaded (drivers/base._tune_gc)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from h2workers.drivers.base import GC_YOUNG_THRESHOLD

SCRIPT = """
import gc, json
{before}
young = gc.get_threshold()[0]
from h2workers.drivers import base
base._tune_gc()
print(json.dumps([gc.isenabled(), young, gc.get_threshold()[0], gc.get_freeze_count() > 0]))
"""


def _run(before: str) -> list:
    code = SCRIPT.format(before=before)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def test_the_loaded_app_is_frozen_and_young_collections_come_less_often():
    enabled, young, after, frozen = _run("")
    assert young < GC_YOUNG_THRESHOLD  # CPython's own (700; 2000 in 3.14)
    assert (enabled, after, frozen) == (True, GC_YOUNG_THRESHOLD, True)


@pytest.mark.parametrize(
    ("before", "enabled", "frozen"),
    [
        ("gc.set_threshold(50_000)", True, True),  # the user's higher threshold is kept
        ("gc.disable()", False, False),  # a collector turned off is left alone
    ],
)
def test_what_the_user_chose_is_kept(before, enabled, frozen):
    is_enabled, young, after, is_frozen = _run(before)
    assert (is_enabled, after, is_frozen) == (enabled, young, frozen)
