"""The worker classes as Gunicorn loads them: by name, each with its extra."""

from __future__ import annotations

import sys

import pytest

import h2workers
from h2workers.errors import ConfigError


@pytest.mark.parametrize("name", ["GThreadH2", "GeventH2"])
def test_each_worker_class_loads_by_its_name(name: str) -> None:
    worker = getattr(h2workers, name)
    assert worker.__name__ == name
    assert name in h2workers.__all__


def test_a_worker_without_its_library_names_the_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "gevent", None)  # as if not installed
    with pytest.raises(ConfigError, match=r"pip install 'h2workers\[gevent\]'"):
        h2workers.GeventH2  # noqa: B018


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError):
        h2workers.NoSuchH2  # noqa: B018
