"""HTTP/2 worker classes for Gunicorn.

Use one with ``gunicorn --worker-class h2workers.GThreadH2 ...`` (or
``GeventH2``, ``EventletH2``, ``AsgiH2``). The worker classes are imported
lazily so that importing the package (for example to read the settings)
never pulls in a concurrency library, and a class whose library is missing
says which extra to install.
"""

from __future__ import annotations

import importlib
from typing import Any

from h2workers.errors import ConfigError

__version__ = "0.1.0"
__all__ = ["AsgiH2", "EventletH2", "GThreadH2", "GeventH2", "__version__"]

# class name: (module, the libraries it needs, the extra that installs them)
_WORKERS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "GThreadH2": ("h2workers.drivers.gthread.worker", (), ""),
    "GeventH2": ("h2workers.drivers.green.gevent_hub", ("gevent",), "gevent"),
    "EventletH2": ("h2workers.drivers.green.eventlet_hub", ("eventlet",), "eventlet"),
    "AsgiH2": ("h2workers.drivers.aio.worker", ("h11", "wsproto"), "asgi"),
}


def __getattr__(name: str) -> Any:
    if name not in _WORKERS:
        raise AttributeError(name)
    module, libraries, extra = _WORKERS[name]
    for library in libraries:
        try:
            importlib.import_module(library)
        except ImportError as exc:
            raise ConfigError(
                f"h2workers.{name} needs {library}, which is not installed: "
                f"pip install 'h2workers[{extra}]'"
            ) from exc
    return getattr(importlib.import_module(module), name)
