"""The worker classes as Gunicorn loads them: by name, each with its extra."""

from __future__ import annotations

import sys

import pytest

import h2workers
from h2workers.errors import ConfigError


@pytest.mark.parametrize("name", ["GThreadH2", "GeventH2", "EventletH2", "AsgiH2"])
def test_each_worker_class_loads_by_its_name(name: str) -> None:
    worker = getattr(h2workers, name)
    assert worker.__name__ == name
    assert name in h2workers.__all__


@pytest.mark.parametrize(
    ("name", "library", "extra"),
    [("GeventH2", "gevent", "gevent"), ("EventletH2", "eventlet", "eventlet"),
     ("AsgiH2", "h11", "asgi"), ("AsgiH2", "wsproto", "asgi")],
)  # fmt: skip
def test_a_worker_without_its_library_names_the_extra_to_install(
    monkeypatch: pytest.MonkeyPatch, name: str, library: str, extra: str
) -> None:
    monkeypatch.setitem(sys.modules, library, None)  # as if not installed
    with pytest.raises(ConfigError, match=rf"{library}.*pip install 'h2workers\[{extra}\]'"):
        getattr(h2workers, name)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError):
        h2workers.NoSuchH2  # noqa: B018


def test_eventlet_refuses_its_select_hub_past_what_select_can_watch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from gunicorn.config import Config

    cfg = Config()
    monkeypatch.setenv("EVENTLET_HUB", "selects")
    h2workers.EventletH2.check_config(cfg, None)  # 1,000, the default, fits
    cfg.set("worker_connections", 5000)
    with pytest.raises(ConfigError, match=r"worker_connections is 5000.*selects hub"):
        h2workers.EventletH2.check_config(cfg, None)
    monkeypatch.setenv("EVENTLET_HUB", "epolls")
    h2workers.EventletH2.check_config(cfg, None)
